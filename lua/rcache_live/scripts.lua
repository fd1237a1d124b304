-- The server-side scripts (see "Data layout in Redis" in README.md). They
-- never re-encode a record: its JSON is passed through as bytes, because
-- Redis's own cjson would round numbers (update splices JSON text, below).
--
-- Every script works on one bucket: KEYS[1..3] are its access index (a),
-- expiry index (e) and TTL hash (t), all named "<ns>:{<bucket>}:<x>" so they
-- share one hash slot with the bucket's records "<ns>:{<bucket>}:r:<key>".
-- Times are the server's clock (TIME), in milliseconds.

local common = [=[
local A, E, T = KEYS[1], KEYS[2], KEYS[3]
local record_prefix = string.sub(A, 1, -2) .. 'r:'

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The bucket's own keys expire with their last record, so bookkeeping of an
-- idle bucket goes away by itself.
local function keep_alive(keys, deadline, now)
  for _, k in ipairs(keys) do
    if redis.call('PTTL', k) < deadline - now then
      redis.call('PEXPIREAT', k, deadline)
    end
  end
end
]=]

-- GET a record; with Active TTL also reset its TTL to the one it was stored
-- with. An access refreshes the record's entry in the access index.
-- ARGV: key, active ("1"/"0"), default TTL in ms
local read = common .. [=[
local v = redis.call('GET', KEYS[4])
if not v then return false end
local key, now = ARGV[1], now_ms()
redis.call('ZADD', A, 'XX', now, key)
if ARGV[2] == '1' then
  local ttl = tonumber(redis.call('HGET', T, key)) or tonumber(ARGV[3])
  redis.call('PEXPIRE', KEYS[4], ttl)
  redis.call('ZADD', E, now + ttl, key)
  if redis.call('PTTL', E) < ttl then keep_alive({A, E, T}, now + ttl, now) end
end
return v
]=]

-- What every write shares: the type check of the bucket keys, storing one
-- record with its bookkeeping, and dropping the entries of records Redis
-- has expired (a bounded number per call, so the indexes stay bounded by the
-- live records without anybody calling anything).
local writes = common .. [=[
-- An error if another client took a bookkeeping key, else nil.
local function foreign_bucket_key()
  for k, want in pairs({ [A] = 'zset', [E] = 'zset', [T] = 'hash' }) do
    local kind = redis.call('TYPE', k).ok
    if kind ~= 'none' and kind ~= want then
      return redis.error_reply('bookkeeping key ' .. k .. ' holds a ' .. kind .. ', not a ' .. want)
    end
  end
end

-- SET one record for px ms (0: keep its expiry), remembering its TTL; with
-- track, also its access and expiry. Returns its deadline (0: none).
local function store(record_key, key, json, px, ttl, now, track)
  if px > 0 then
    redis.call('SET', record_key, json, 'PX', px)
  else
    redis.call('SET', record_key, json, 'KEEPTTL')
    px = redis.call('PTTL', record_key)
  end
  if not track then return 0 end
  redis.call('HSET', T, key, ttl)
  redis.call('ZADD', A, now, key)
  if px <= 0 then return 0 end
  redis.call('ZADD', E, now + px, key)
  return now + px
end

local function prune(now, limit)
  local stale = redis.call('ZRANGEBYSCORE', E, '-inf', now, 'LIMIT', 0, limit)
  for _, key in ipairs(stale) do
    local left = redis.call('PTTL', record_prefix .. key)
    if left > 0 then
      redis.call('ZADD', E, now + left, key)
    elseif left == -1 then
      redis.call('ZREM', E, key)
    else
      redis.call('ZREM', A, key)
      redis.call('ZREM', E, key)
      redis.call('HDEL', T, key)
    end
  end
end
]=]

-- SET records of one bucket with their bookkeeping.
-- KEYS[4..]: record keys; ARGV: n, then per record: key, JSON, expire-in ms
-- (0: keep the record's current expiry), stored TTL in ms
local write = writes .. [=[
local refused = foreign_bucket_key()
if refused then return refused end
local now, n = now_ms(), tonumber(ARGV[1])
local last = 0
for i = 1, n do
  local at = 2 + (i - 1) * 4
  local deadline = store(KEYS[3 + i], ARGV[at], ARGV[at + 1], tonumber(ARGV[at + 2]), ARGV[at + 3], now, true)
  if deadline > last then last = deadline end
end
prune(now, 16 + n)
if last > 0 then keep_alive({A, E, T}, last, now) end
return n
]=]

-- Merge top-level fields into a record, atomically, in one round trip.
-- The merge is done on the JSON text: the members being set get their new
-- value text (encoded exactly by the client), the others keep theirs byte
-- for byte, new ones are appended. Redis's cjson only checks that the record
-- is a valid JSON object (its numbers are never re-encoded), and decodes
-- keys that contain escapes. A missing record is created with the default
-- TTL; an existing one keeps the TTL it has left, or with Active TTL gets
-- the one it was stored with again.
-- KEYS[4]: the record key; ARGV: key, active, default TTL ms, track, then
-- per field: name, name as a JSON string, value as JSON. Returns the merged
-- JSON; errors: "NOTJSON <cause>", "NOTOBJECT ...", or Redis's own.
local update = writes .. [=[
local key, active, default_ttl, track = ARGV[1], ARGV[2] == '1', tonumber(ARGV[3]), ARGV[4] == '1'
if track then
  local refused = foreign_bucket_key()
  if refused then return refused end
end
local fields, order = {}, {}
for at = 5, #ARGV, 3 do
  fields[ARGV[at]] = ARGV[at + 1] .. ':' .. ARGV[at + 2]
  order[#order + 1] = ARGV[at]
end

local old = redis.pcall('GET', KEYS[4])
if type(old) == 'table' and old.err then return old end

-- index just past the JSON string starting at i
local function after_string(s, i)
  local j = i + 1
  while true do
    local q = string.find(s, '["\\]', j)
    if string.byte(s, q) == 34 then return q + 1 end
    j = q + 2
  end
end
local function after_value(s, i)
  local c = string.byte(s, i)
  if c == 34 then return after_string(s, i) end
  if c == 123 or c == 91 then
    local depth, j = 0, i
    while true do
      local p = string.find(s, '[{}%[%]"]', j)
      local b = string.byte(s, p)
      if b == 34 then
        j = after_string(s, p)
      else
        depth = depth + ((b == 123 or b == 91) and 1 or -1)
        j = p + 1
        if depth == 0 then return j end
      end
    end
  end
  return string.find(s, '[,}%]%s]', i) or #s + 1
end
local function skip_space(s, i) return string.find(s, '[^%s]', i) end

local parts, seen, px, ttl = {}, {}, default_ttl, default_ttl
if old then
  local ok, value = pcall(cjson.decode, old)
  if not ok then return redis.error_reply('NOTJSON ' .. tostring(value)) end
  local open = skip_space(old, 1)
  if type(value) ~= 'table' or string.byte(old, open) ~= 123 then
    return redis.error_reply('NOTOBJECT the record is not a JSON object')
  end
  local i = skip_space(old, open + 1)
  while string.byte(old, i) ~= 125 do
    local key_end = after_string(old, i)
    local name = string.sub(old, i + 1, key_end - 2)
    if string.find(name, '\\', 1, true) then name = cjson.decode(string.sub(old, i, key_end - 1)) end
    local value_start = skip_space(old, skip_space(old, key_end) + 1)
    local value_end = after_value(old, value_start)
    if fields[name] then
      if not seen[name] then parts[#parts + 1] = fields[name] end
      seen[name] = true
    else
      parts[#parts + 1] = string.sub(old, i, value_end - 1)
    end
    i = skip_space(old, value_end)
    if string.byte(old, i) == 44 then i = skip_space(old, i + 1) end
  end
  ttl = tonumber(redis.call('HGET', T, key)) or default_ttl
  if active then
    px = ttl
  else
    px = redis.call('PTTL', KEYS[4])
    if px < 0 then px = 0 end
  end
end
for _, name in ipairs(order) do
  if not seen[name] then parts[#parts + 1] = fields[name] end
end
local json = '{' .. table.concat(parts, ',') .. '}'
local now = now_ms()
local deadline = store(KEYS[4], key, json, px, ttl, now, track)
if track then
  prune(now, 17)
  if deadline > 0 then keep_alive({A, E, T}, deadline, now) end
end
return json
]=]

-- DEL records of one bucket and their bookkeeping. KEYS[4..]: record keys;
-- ARGV: the user keys. Returns how many records existed.
local delete = common .. [=[
local n = 0
for i = 1, #ARGV do
  n = n + redis.call('DEL', KEYS[3 + i])
end
redis.call('ZREM', A, unpack(ARGV))
redis.call('ZREM', E, unpack(ARGV))
redis.call('HDEL', T, unpack(ARGV))
return n
]=]

-- Delete up to ARGV[2] records of one bucket not accessed for ARGV[1] ms,
-- oldest first. Returns {records deleted, index entries removed}; a caller
-- that got a full batch calls again.
local cleanup = common .. [=[
local idle, batch = tonumber(ARGV[1]), tonumber(ARGV[2])
local cutoff = now_ms() - idle
local keys = redis.call('ZRANGEBYSCORE', A, '-inf', '(' .. cutoff, 'LIMIT', 0, batch)
if #keys == 0 then return {0, 0} end
local deleted = 0
for from = 1, #keys, 500 do
  local upto = math.min(from + 499, #keys)
  local records = {}
  for i = from, upto do records[#records + 1] = record_prefix .. keys[i] end
  deleted = deleted + redis.call('DEL', unpack(records))
  redis.call('ZREM', A, unpack(keys, from, upto))
  redis.call('ZREM', E, unpack(keys, from, upto))
  redis.call('HDEL', T, unpack(keys, from, upto))
end
return {deleted, #keys}
]=]

return { read = read, write = write, delete = delete, cleanup = cleanup, update = update }
