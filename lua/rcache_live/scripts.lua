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

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The bucket's own keys expire shortly after their last record, so
-- bookkeeping of an idle bucket goes away by itself: a new deadline later
-- than the expiry index's own moves all three (they are set together, so
-- one PTTL tells) to that deadline plus an eighth of the time left. The
-- eighth spares a busy bucket three commands on almost every access: they
-- run again only once its deadlines have moved on by that much.
local function keep_alive(deadline, now)
  if redis.call('PTTL', E) < deadline - now then
    local until_ms = deadline + math.floor((deadline - now) / 8)
    redis.call('PEXPIREAT', A, until_ms)
    redis.call('PEXPIREAT', E, until_ms)
    redis.call('PEXPIREAT', T, until_ms)
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
local record_prefix = string.sub(A, 1, -2) .. 'r:'

-- Makes the bucket whose keys start at KEYS[i] the one the functions here
-- work on (the write script takes several buckets in one call).
local function use_bucket(i)
  A, E, T = KEYS[i], KEYS[i + 1], KEYS[i + 2]
  record_prefix = string.sub(A, 1, -2) .. 'r:'
end

-- A bookkeeping command; if another client took the key, stop the script
-- (before any record is written: bookkeeping goes first).
local function book(cmd, k, ...)
  local r = redis.pcall(cmd, k, ...)
  if type(r) == 'table' and r.err then
    error({ refused = 'bookkeeping key ' .. k .. ' holds a ' .. redis.call('TYPE', k).ok ..
      ', not a ' .. (k == T and 'hash' or 'zset') })
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
    if left >= 0 then -- (0: in its last millisecond, still readable)
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

-- SET records with their bookkeeping, in one call for any number of
-- buckets: first the bookkeeping of every bucket (a key another client took
-- stops the script before any record is written), then the records, then
-- each bucket's pruning and expiry. Within a bucket each bookkeeping key
-- takes one command for all its records (HSET, ZADD with many pairs), so a
-- call costs a few commands per bucket plus one SET per record.
-- KEYS: per bucket its a, e and t keys, then its record keys. ARGV: the
-- records' expire-in and stored TTL in ms (one for the whole call), then
-- per bucket the number of its records followed by key, JSON per record.
local write = writes .. [=[
-- book(cmd, k, list...) in chunks of at most 1000 arguments (unpack's limit)
local function book_all(cmd, k, list)
  for from = 1, #list, 1000 do book(cmd, k, unpack(list, from, math.min(from + 999, #list))) end
end

-- The bookkeeping of the bucket whose keys start at KEYS[k] and records'
-- arguments at ARGV[at]: one command per bookkeeping key for all its records.
local function book_bucket(k, at, n, now, px, ttl)
  use_bucket(k)
  local ttls, accesses, expiries = {}, {}, {}
  for i = 1, n do
    local key = ARGV[at + (i - 1) * 2]
    ttls[2 * i - 1], ttls[2 * i] = key, ttl
    accesses[2 * i - 1], accesses[2 * i] = now, key
    expiries[2 * i - 1], expiries[2 * i] = now + px, key
  end
  book_all('HSET', T, ttls)
  book_all('ZADD', A, accesses)
  book_all('ZADD', E, expiries)
  return { k = k, at = at, n = n }
end

return finish(function()
  local now, px, ttl = now_ms(), tonumber(ARGV[1]), ARGV[2]
  if #KEYS == 4 then -- one record (cache[k] = v): no lists to build
    store(KEYS[4], ARGV[4], ARGV[5], px, ttl, now, true)
    prune(now, 17)
    keep_alive(now + px, now)
    return 1
  end
  local buckets, k, at = {}, 1, 3
  while at <= #ARGV do
    local n = tonumber(ARGV[at])
    buckets[#buckets + 1] = book_bucket(k, at + 1, n, now, px, ttl)
    k, at = k + 3 + n, at + 1 + 2 * n
  end
  local total = 0
  for _, b in ipairs(buckets) do
    for i = 1, b.n do
      redis.call('SET', KEYS[b.k + 2 + i], ARGV[b.at + (i - 1) * 2 + 1], 'PX', px)
    end
    total = total + b.n
  end
  for _, b in ipairs(buckets) do
    use_bucket(b.k)
    prune(now, 16 + b.n)
    keep_alive(now + px, now)
  end
  return total
end)
]=]

-- Merge top-level fields into a record, atomically, in one round trip.
-- The merge is done on the JSON text: the members being set get their new
-- value text (encoded exactly by the client), the others keep theirs byte
-- for byte, new ones are appended. The text is checked on the way by the
-- same rules as the client's decoder (numbers are never converted, only
-- range-checked); Redis's cjson only decodes keys that contain escapes. A missing record is created with the default
-- TTL; an existing one keeps the TTL it has left, or with Active TTL gets
-- the one it was stored with again.
-- KEYS[4]: the record key; ARGV: key, active, default TTL ms, track, then
-- per field: name, name as a JSON string, value as JSON. Returns the merged
-- JSON, or { "NOTJSON", record, cause } for a record that is not valid JSON
-- (the client words the error as its own decoder does); errors:
-- "NOTOBJECT ..." or Redis's own.
local update = writes .. [=[
local find, byte, sub = string.find, string.byte, string.sub
-- what ends a run of plain string bytes: a quote, a backslash or a control byte
local STRING_STOP = '["\\%z' .. string.char(1) .. '-' .. string.char(31) .. ']'
local ESCAPES = { [34] = 1, [92] = 1, [47] = 1, [98] = 1, [102] = 1, [110] = 1, [114] = 1, [116] = 1 }

-- The parse below follows the client's decoder (RFC 8259, as yajl reads
-- it) and raises on anything it would refuse, so the merge never writes a
-- record the client could not read back. Each returns the index just past
-- what it read.
local function bad(what) error(what, 0) end

local function skip_space(s, i)
  local b = byte(s, i)
  if b ~= 32 and b ~= 9 and b ~= 10 and b ~= 13 then return i end
  return find(s, '[^ \t\n\r]', i) or #s + 1
end

local function after_string(s, i)
  local j = i + 1
  while true do
    local q = find(s, STRING_STOP, j)
    if not q then bad('unterminated string') end
    local b = byte(s, q)
    if b == 34 then return q + 1 end
    if b ~= 92 then bad('control character in a string') end
    local e = byte(s, q + 1)
    if e == 117 then
      if not find(s, '^%x%x%x%x', q + 2) then bad('bad \\u escape') end
      j = q + 6
    elseif ESCAPES[e] then
      j = q + 2
    else
      bad('bad escape')
    end
  end
end

-- (Only a number with an exponent, or with 300 digits or more, can be out
-- of the double range: the others skip the conversion.)
local function after_number(s, i)
  local _, e = find(s, '^-?%d+', i)
  if not e then bad('unexpected character at byte ' .. i) end
  local first = byte(s, i) == 45 and i + 1 or i
  if e > first and byte(s, first) == 48 then bad('bad number') end -- a leading zero
  local b = byte(s, e + 1)
  if b == 46 then
    local _, f = find(s, '^%d+', e + 2)
    if not f then bad('bad number') end
    e = f
    b = byte(s, e + 1)
  end
  if b ~= 101 and b ~= 69 and e - i < 300 then return e + 1 end
  if b == 101 or b == 69 then
    local _, f = find(s, '^[-+]?%d+', e + 2)
    if not f then bad('bad number') end
    e = f
  end
  local x = tonumber(sub(s, i, e))
  if x ~= x or x == math.huge or x == -math.huge then bad('number out of range') end
  return e + 1
end

local after_value
local function after_container(s, i, depth, close, member)
  if depth > 128 then bad('nesting deeper than 128 levels') end
  local j = skip_space(s, i + 1)
  if byte(s, j) == close then return j + 1 end
  while true do
    if member then
      if byte(s, j) ~= 34 then bad('expected a key') end
      j = skip_space(s, after_string(s, j))
      if byte(s, j) ~= 58 then bad("expected ':'") end
      j = skip_space(s, j + 1)
    end
    j = skip_space(s, after_value(s, j, depth))
    local b = byte(s, j)
    if b == close then return j + 1 end
    if b ~= 44 then bad("expected ',' or a closing bracket") end
    j = skip_space(s, j + 1)
  end
end

local WORDS = { [116] = 'true', [102] = 'false', [110] = 'null' } -- by first byte

after_value = function(s, i, depth)
  local c = byte(s, i)
  if c == 34 then return after_string(s, i) end
  if c == 123 then return after_container(s, i, depth + 1, 125, true) end
  if c == 91 then return after_container(s, i, depth + 1, 93, false) end
  local word = WORDS[c]
  if word then
    if sub(s, i, i + #word - 1) ~= word then bad('unexpected character at byte ' .. i) end
    return i + #word
  end
  return after_number(s, i)
end

-- The members of the object text old, checked, with the fields set:
-- existing members keep their bytes and their place (a set field's
-- duplicates collapse into one), new fields come last.
local function merge(old, fields, order)
  local parts, seen = {}, {}
  if old then
    local i = skip_space(old, 1)
    if byte(old, i) ~= 123 then
      after_value(old, i, 0)
      error({ notobject = true })
    end
    i = skip_space(old, i + 1)
    while byte(old, i) ~= 125 do
      if byte(old, i) ~= 34 then bad('expected a key') end
      local key_end = after_string(old, i)
      local name = sub(old, i + 1, key_end - 2)
      if find(name, '\\', 1, true) then
        local ok, decoded = pcall(cjson.decode, sub(old, i, key_end - 1))
        if ok then name = decoded end
      end
      local colon = skip_space(old, key_end)
      if byte(old, colon) ~= 58 then bad("expected ':'") end
      local value_end = after_value(old, skip_space(old, colon + 1), 1)
      if fields[name] then
        if not seen[name] then parts[#parts + 1] = fields[name] end
        seen[name] = true
      else
        parts[#parts + 1] = sub(old, i, value_end - 1)
      end
      i = skip_space(old, value_end)
      if byte(old, i) == 44 then
        i = skip_space(old, i + 1)
        if byte(old, i) ~= 34 then bad('expected a key') end
      elseif byte(old, i) ~= 125 then
        bad("expected ',' or '}'")
      end
    end
    if skip_space(old, i + 1) <= #old then bad('trailing garbage') end
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
  local ok, json = pcall(merge, old, fields, order)
  if not ok then
    if type(json) == 'table' and json.notobject then
      return redis.error_reply('NOTOBJECT the record is not a JSON object')
    end
    return { 'NOTJSON', old, tostring(json) }
  end
  local record_key = KEYS[4]
  if not track then
    if old then
      redis.call('SET', record_key, json, 'KEEPTTL')
    else
      redis.call('SET', record_key, json, 'PX', default_ttl)
    end
    return json
  end
  local now = now_ms()
  -- a new record, or one without an access entry (its bookkeeping was lost):
  -- stored as any write stores one
  if not old or book('ZADD', A, now, key) == 1 then
    local ttl = old and (tonumber(book('HGET', T, key)) or default_ttl) or default_ttl
    local deadline = store(record_key, key, json, (old and not active) and 0 or ttl, ttl, now, true)
    prune(now, 17)
    if deadline > 0 then keep_alive(deadline, now) end
    return json
  end
  -- a tracked record: its access time is set (above); its TTL and expiry
  -- entry change only with Active TTL, which gives it its stored TTL again
  if not active then
    redis.call('SET', record_key, json, 'KEEPTTL')
    return json
  end
  local ttl = tonumber(book('HGET', T, key)) or default_ttl
  book('ZADD', E, now + ttl, key)
  redis.call('SET', record_key, json, 'PX', ttl)
  keep_alive(now + ttl, now)
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
local record_prefix = string.sub(A, 1, -2) .. 'r:'
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
  redis.call('ZREM', E, unpack(keys, from, upto))
  redis.call('HDEL', T, unpack(keys, from, upto))
end
-- they are the access index's lowest ranks: one range removal, no lookups
redis.call('ZREMRANGEBYRANK', A, 0, #keys - 1)
return {deleted, #keys}
]=]

return { read = read, write = write, delete = delete, cleanup = cleanup, update = update }
