-- The server-side scripts of the bookkeeping (see "Data layout in Redis" in
-- README.md). They never look inside a record: the record's JSON is passed
-- through as bytes, because Redis's own cjson would round numbers.
--
-- Every script works on one bucket: KEYS[1..3] are its access index (a),
-- expiry index (e) and TTL hash (t), all named "<ns>:{<bucket>}:<x>" so they
-- share one hash slot with the bucket's records "<ns>:{<bucket>}:r:<key>".
-- Times are the server's clock (TIME), in milliseconds.

local common = [[
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
]]

-- GET a record; with Active TTL also reset its TTL to the one it was stored
-- with. An access refreshes the record's entry in the access index.
-- ARGV: key, active ("1"/"0"), default TTL in ms
local read = common .. [[
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
]]

-- SET records of one bucket with their bookkeeping, then drop the entries of
-- records Redis has expired (a bounded number per call).
-- KEYS[4..]: record keys; ARGV: n, then per record: key, JSON, expire-in ms
-- (0: keep the record's current expiry), stored TTL in ms
local write = common .. [[
-- refuse before writing anything if another client took a bookkeeping key
for k, want in pairs({ [A] = 'zset', [E] = 'zset', [T] = 'hash' }) do
  local kind = redis.call('TYPE', k).ok
  if kind ~= 'none' and kind ~= want then
    return redis.error_reply('bookkeeping key ' .. k .. ' holds a ' .. kind .. ', not a ' .. want)
  end
end
local now, n = now_ms(), tonumber(ARGV[1])
local last = 0
for i = 1, n do
  local at = 2 + (i - 1) * 4
  local key, json, px, ttl = ARGV[at], ARGV[at + 1], tonumber(ARGV[at + 2]), ARGV[at + 3]
  if px > 0 then
    redis.call('SET', KEYS[3 + i], json, 'PX', px)
  else
    redis.call('SET', KEYS[3 + i], json, 'KEEPTTL')
    px = redis.call('PTTL', KEYS[3 + i])
  end
  redis.call('HSET', T, key, ttl)
  redis.call('ZADD', A, now, key)
  if px > 0 then
    redis.call('ZADD', E, now + px, key)
    if now + px > last then last = now + px end
  end
end
local stale = redis.call('ZRANGEBYSCORE', E, '-inf', now, 'LIMIT', 0, 16 + n)
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
if last > 0 then keep_alive({A, E, T}, last, now) end
return n
]]

-- DEL records of one bucket and their bookkeeping. KEYS[4..]: record keys;
-- ARGV: the user keys. Returns how many records existed.
local delete = common .. [[
local n = 0
for i = 1, #ARGV do
  n = n + redis.call('DEL', KEYS[3 + i])
end
redis.call('ZREM', A, unpack(ARGV))
redis.call('ZREM', E, unpack(ARGV))
redis.call('HDEL', T, unpack(ARGV))
return n
]]

-- Delete up to ARGV[2] records of one bucket not accessed for ARGV[1] ms,
-- oldest first. Returns {records deleted, index entries removed}; a caller
-- that got a full batch calls again.
local cleanup = common .. [[
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
]]

return { read = read, write = write, delete = delete, cleanup = cleanup }
