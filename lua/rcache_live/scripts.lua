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
-- idle bucket goes away by itself: a new deadline later than the expiry
-- index's own moves all three (they are set together, so one PTTL tells).
local function keep_alive(deadline, now)
  if redis.call('PTTL', E) < deadline - now then
    redis.call('PEXPIREAT', A, deadline)
    redis.call('PEXPIREAT', E, deadline)
    redis.call('PEXPIREAT', T, deadline)
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
  keep_alive(now + ttl, now)
end
return v
]=]

-- What every write shares: storing one record with its bookkeeping, and
-- dropping the entries of records Redis has expired (a bounded number per
-- call, so the indexes stay bounded by the live records without anybody
-- calling anything). Scripts built on it run their body as main() through
-- finish(), which turns a refused bookkeeping key into a clean error reply.
local writes = common .. [=[
local WANT = { [A] = 'zset', [E] = 'zset', [T] = 'hash' }

-- A bookkeeping command; if another client took the key, stop the script
-- (before any record is written: bookkeeping goes first).
local function book(cmd, k, ...)
  local r = redis.pcall(cmd, k, ...)
  if type(r) == 'table' and r.err then
    error({ refused = 'bookkeeping key ' .. k .. ' holds a ' .. redis.call('TYPE', k).ok ..
      ', not a ' .. WANT[k] })
  end
  return r
end

-- SET one record for px ms (0: keep its expiry), remembering its TTL; with
-- track, also its access and expiry. Returns its deadline (0: none).
local function store(record_key, key, json, px, ttl, now, track)
  if px <= 0 then px = redis.call('PTTL', record_key) end
  if track then
    book('HSET', T, key, ttl)
    book('ZADD', A, now, key)
    if px > 0 then book('ZADD', E, now + px, key) end
  end
  if px > 0 then
    redis.call('SET', record_key, json, 'PX', px)
  else
    redis.call('SET', record_key, json, 'KEEPTTL')
  end
  if not track or px <= 0 then return 0 end
  return now + px
end

local function finish(main)
  local ok, result = pcall(main)
  if ok then return result end
  if type(result) == 'table' and result.refused then return redis.error_reply(result.refused) end
  error(result)
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
return finish(function()
  local now, n = now_ms(), tonumber(ARGV[1])
  local last = 0
  for i = 1, n do
    local at = 2 + (i - 1) * 4
    local deadline = store(KEYS[3 + i], ARGV[at], ARGV[at + 1], tonumber(ARGV[at + 2]), ARGV[at + 3], now, true)
    if deadline > last then last = deadline end
  end
  prune(now, 16 + n)
  if last > 0 then keep_alive(last, now) end
  return n
end)
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
-- JSON, or { "NOTJSON", record, cause } for a record that is not valid JSON
-- (the client words the error as its own decoder does); errors:
-- "NOTOBJECT ..." or Redis's own.
local update = writes .. [=[
local find, byte, sub = string.find, string.byte, string.sub

-- index just past the JSON string that starts at i
local function after_string(s, i)
  local j = i + 1
  while true do
    local q = find(s, '["\\]', j)
    if byte(s, q) == 34 then return q + 1 end
    j = q + 2
  end
end

-- index just past the JSON value that starts at i
local function after_value(s, i)
  local c = byte(s, i)
  if c == 34 then return after_string(s, i) end
  if c == 123 or c == 91 then
    local depth, j = 0, i
    while true do
      local p = find(s, '[{}%[%]"]', j)
      local b = byte(s, p)
      if b == 34 then
        j = after_string(s, p)
      else
        depth = depth + ((b == 123 or b == 91) and 1 or -1)
        j = p + 1
        if depth == 0 then return j end
      end
    end
  end
  return find(s, '[,}%]%s]', i) or #s + 1
end

-- index of the first non-space at or after i (compact JSON: i itself)
local function skip_space(s, i)
  local b = byte(s, i)
  if b ~= 32 and b ~= 9 and b ~= 10 and b ~= 13 then return i end
  return find(s, '[^%s]', i)
end

-- Raises unless v holds only what the client's codec reads back: finite
-- numbers and at most 128 levels of nesting (cjson alone would accept NaN,
-- Infinity and 1000 levels). Returns v.
local function check(v, depth)
  local t = type(v)
  if t == 'number' then
    if v ~= v or v == math.huge or v == -math.huge then error('NaN or infinity', 0) end
  elseif t == 'table' then
    if depth > 128 then error('nesting deeper than 128 levels', 0) end
    for _, item in pairs(v) do check(item, depth + 1) end
  end
  return v
end

-- The members of the object text old, with the fields set: existing
-- members keep their place (a set field's duplicates collapse into one),
-- new fields come last.
local function merge(old, fields, order)
  local parts, seen = {}, {}
  if old then
    local i = skip_space(old, skip_space(old, 1) + 1)
    while byte(old, i) ~= 125 do
      local key_end = after_string(old, i)
      local name = sub(old, i + 1, key_end - 2)
      if find(name, '\\', 1, true) then name = cjson.decode(sub(old, i, key_end - 1)) end
      local value_end = after_value(old, skip_space(old, skip_space(old, key_end) + 1))
      if fields[name] then
        if not seen[name] then parts[#parts + 1] = fields[name] end
        seen[name] = true
      else
        parts[#parts + 1] = sub(old, i, value_end - 1)
      end
      i = skip_space(old, value_end)
      if byte(old, i) == 44 then i = skip_space(old, i + 1) end
    end
  end
  for _, name in ipairs(order) do
    if not seen[name] then parts[#parts + 1] = fields[name] end
  end
  return '{' .. table.concat(parts, ',') .. '}'
end

return finish(function()
  local key, active, default_ttl, track = ARGV[1], ARGV[2] == '1', tonumber(ARGV[3]), ARGV[4] == '1'
  local fields, order = {}, {}
  for at = 5, #ARGV, 3 do
    fields[ARGV[at]] = ARGV[at + 1] .. ':' .. ARGV[at + 2]
    order[#order + 1] = ARGV[at]
  end
  local old = redis.pcall('GET', KEYS[4])
  if type(old) == 'table' and old.err then return old end
  local px, ttl = default_ttl, default_ttl
  if old then
    local ok, value = pcall(cjson.decode, old)
    if ok then ok, value = pcall(check, value, 1) end
    if not ok then return { 'NOTJSON', old, tostring(value) } end
    if byte(old, skip_space(old, 1)) ~= 123 then
      return redis.error_reply('NOTOBJECT the record is not a JSON object')
    end
    if track then ttl = tonumber(redis.call('HGET', T, key)) or default_ttl end
    px = active and ttl or 0 -- 0: keep the time it has left
  end
  local json = merge(old, fields, order)
  local now = track and now_ms() or 0
  local deadline = store(KEYS[4], key, json, px, ttl, now, track)
  if track then
    prune(now, 17)
    if deadline > 0 then keep_alive(deadline, now) end
  end
  return json
end)
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
