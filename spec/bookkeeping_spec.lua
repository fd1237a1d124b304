-- Bookkeeping against the real server: Active TTL, track = false, the access
-- index, cleanup_inactive_records, the tracker staying bounded by itself, the
-- data layout in Redis (README, "Data layout in Redis") and scripts the
-- server lost. Every check reads what is really in Redis (H.raw, H.keys_of,
-- H.monitor).
local H = require "support.helpers"

-- The bucket prefix "<ns>:{<bb>}:" of a user key.
local function prefix_of(cache, ns, key)
  return H.record_key(cache, key):sub(1, #ns + 6)
end

local function pttl(cache, key)
  return H.raw("PTTL", H.record_key(cache, key))
end

-- The server's clock in ms (the scripts use the same).
local function server_ms()
  local t = H.raw("TIME")
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function zscore(zset, member)
  local s = H.raw("ZSCORE", zset, member)
  return s and tonumber(s) or nil
end

local function access_of(cache, ns, key) return zscore(prefix_of(cache, ns, key) .. "a", key) end
local function expiry_of(cache, ns, key) return zscore(prefix_of(cache, ns, key) .. "e", key) end

-- Totals over every bucket of a namespace: records, ZCARD a, ZCARD e, HLEN t.
local function totals(ns)
  local n = { r = 0, a = 0, e = 0, t = 0 }
  local esc = ns:gsub("%p", "%%%0")
  for _, k in ipairs(H.keys_of(ns)) do
    local kind = k:match("^" .. esc .. ":{%x%x}:(%a)$")
    if k:match("^" .. esc .. ":{%x%x}:r:") then
      n.r = n.r + 1
    elseif kind == "a" or kind == "e" then
      n[kind] = n[kind] + H.raw("ZCARD", k)
    elseif kind == "t" then
      n.t = n.t + H.raw("HLEN", k)
    else
      error("unexpected key " .. k)
    end
  end
  return n
end

-- keys[b] = list of n keys (prefix .. i) falling in bucket b, for every one
-- of the 256 buckets (keys found by trying, through the record key).
local function keys_per_bucket(cache, ns, tag, n)
  local found, full, i = {}, 0, 0
  while full < 256 do
    i = i + 1
    local key = tag .. i
    local bucket = prefix_of(cache, ns, key):sub(-4, -3)
    local list = found[bucket]
    if not list then list = {}; found[bucket] = list end
    if #list < n then
      list[#list + 1] = key
      if #list == n then full = full + 1 end
    end
  end
  return found
end

local count = H.count

local CLEANUP_ERR = "^rcache_live: cleanup_inactive_records: past_minutes must be a number >= 0, got "

describe("Active TTL", function()
  it("a read (cache[k] and get_record) resets the TTL to the one the record was stored with", function()
    local cache, ns = H.cache { active_ttl = true, default_ttl = 100 }
    cache:set_record("a", { v = 1 }, 2)
    cache:set_record("b", { v = 2 }, 2)
    H.sleep(0.6)
    assert.is_true(pttl(cache, "a") < 1500)
    assert.is_true(pttl(cache, "b") < 1500)
    assert.same({ v = 1 }, cache.a)
    assert.same({ v = 2 }, cache:get_record("b"))
    local now = server_ms()
    for _, k in ipairs { "a", "b" } do
      local left = pttl(cache, k)
      assert.is_true(left > 1900 and left <= 2000, k .. ": " .. left)
      -- the expiry index follows the new deadline
      local e = expiry_of(cache, ns, k)
      assert.is_true(math.abs(e - (now + 2000)) < 100, k .. ": " .. e - now)
      assert.equal("2000", H.raw("HGET", prefix_of(cache, ns, k) .. "t", k))
    end
    cache:close()
  end)

  it("update resets the TTL to the stored TTL; add{...}, 2 stores 2 s and reads reset to it", function()
    local cache, ns = H.cache { active_ttl = true, default_ttl = 100 }
    cache:set_record("u", { a = 1 }, 2)
    assert.equal(2, cache:add({ p = { n = 1 }, q = { n = 2 } }, 2))
    H.sleep(0.6)
    for _, k in ipairs { "u", "p", "q" } do assert.is_true(pttl(cache, k) < 1500, k) end
    assert.same({ a = 1, b = 2 }, cache:update("u", { b = 2 }))
    local left = pttl(cache, "u")
    assert.is_true(left > 1900 and left <= 2000, "update: " .. left)
    assert.equal("2000", H.raw("HGET", prefix_of(cache, ns, "u") .. "t", "u"))
    assert.same({ n = 1 }, cache.p)
    left = pttl(cache, "p")
    assert.is_true(left > 1900 and left <= 2000, "add then read: " .. left)
    assert.equal("2000", H.raw("HGET", prefix_of(cache, ns, "q") .. "t", "q"))
    assert.is_true(pttl(cache, "q") < 1500, "q was not read")
    cache:close()
  end)

  it("a read is one command, one EVALSHA, on the wire", function()
    local cache = H.cache { active_ttl = true, default_ttl = 100 }
    cache:set_record("k", { v = 1 }, 2)
    local lines, value = H.monitor(function() return cache.k end)
    assert.same({ v = 1 }, value)
    assert.equal(1, #lines, table.concat(lines, "\n"))
    assert.equal("EVALSHA", H.command_name(lines[1]))
    lines, value = H.monitor(function() return cache:get_record("k") end)
    assert.same({ v = 1 }, value)
    assert.equal(1, #lines, table.concat(lines, "\n"))
    assert.equal("EVALSHA", H.command_name(lines[1]))
    cache:close()
  end)

  it("with active_ttl = false reads never change the TTL and update keeps the time left", function()
    local cache, ns = H.cache { active_ttl = false, default_ttl = 100 }
    cache:set_record("r", { v = 1 }, 2)
    cache:set_record("u", { a = 1 }, 2)
    H.sleep(0.6)
    local before = pttl(cache, "r")
    assert.is_true(before < 1500)
    assert.same({ v = 1 }, cache.r)
    assert.same({ v = 1 }, cache:get_record("r"))
    local after = pttl(cache, "r")
    assert.is_true(after <= before and after > 0, before .. " -> " .. after)
    before = pttl(cache, "u")
    assert.same({ a = 1, b = 2 }, cache:update("u", { b = 2 }))
    after = pttl(cache, "u")
    assert.is_true(after <= before and after > 0, "update: " .. before .. " -> " .. after)
    -- the TTL it was stored with stays the one of set_record
    assert.equal("2000", H.raw("HGET", prefix_of(cache, ns, "u") .. "t", "u"))
    cache:close()
  end)
end)

describe("track = false", function()
  it("a read is a single GET and a write a single SET with PX", function()
    local cache = H.cache { track = false, default_ttl = 100 }
    assert.is_false(cache:exists("k")) -- connected before MONITOR starts
    local lines = H.monitor(function() cache.k = { v = 1 } end)
    assert.equal(1, #lines, table.concat(lines, "\n"))
    assert.equal(('"SET" "%s" "{\\"v\\":1}" "PX" "100000"'):format(H.record_key(cache, "k")), lines[1])
    local value
    lines, value = H.monitor(function() return cache.k end)
    assert.same({ v = 1 }, value)
    assert.same({ ('"GET" "%s"'):format(H.record_key(cache, "k")) }, lines)
    cache:close()
  end)

  it("writes no bookkeeping keys, whatever the operation", function()
    local cache, ns = H.cache { track = false }
    cache.a = { v = 1 }
    cache:set_record("b", { v = 2 }, 5)
    cache:update("a", { w = 2 })
    cache:add({ d = 1, e = 2, f = 3, g = 4 }, 5)
    assert.same({ v = 1, w = 2 }, cache.a)
    assert.same({ v = 2 }, cache:get_record("b"))
    assert.equal(1, cache:bulk_delete { "g" })
    assert.is_true(cache:delete_record("f"))
    local keys = H.keys_of(ns)
    assert.equal(4, #keys)
    for _, k in ipairs(keys) do
      assert.matches("^" .. ns:gsub("%p", "%%%0") .. ":{%x%x}:r:[abde]$", k)
    end
    cache:close()
  end)

  it("update creating a record and add without ttl use default_ttl", function()
    local cache, ns = H.cache { track = false, default_ttl = 100 }
    assert.same({ w = 3 }, cache:update("c", { w = 3 }))
    assert.equal(2, cache:add { d = 1, e = 2 })
    for _, k in ipairs { "c", "d", "e" } do
      local left = pttl(cache, k)
      assert.is_true(left > 99000 and left <= 100000, k .. ": " .. tostring(left))
    end
    assert.equal(3, #H.keys_of(ns))
    cache:close()
  end)

  it("cleanup_inactive_records raises a clear error and deletes nothing", function()
    local cache, ns = H.cache { track = false }
    cache.k = 1
    H.sleep(0.05)
    assert.equal("rcache_live: cleanup_inactive_records: needs track = true (without it no access is recorded)",
      H.error_of(cache.cleanup_inactive_records, cache, 0))
    assert.equal(1, #H.keys_of(ns))
    cache:close()
  end)

  it("active_ttl = true with track = false is refused", function()
    assert.matches("^rcache_live: new: active_ttl needs track = true",
      H.error_of(H.cache, { track = false, active_ttl = true }))
  end)
end)

describe("access tracking", function()
  it("a write puts the key in the access index at the server's time", function()
    local cache, ns = H.cache()
    cache.k = { v = 1 }
    local now = server_ms()
    local score = access_of(cache, ns, "k")
    assert.is_number(score)
    assert.is_true(score <= now and now - score < 100, now - score)
    cache:close()
  end)

  it("a read moves the access forward; a miss writes nothing", function()
    local cache, ns = H.cache()
    cache.k = { v = 1 }
    local first = access_of(cache, ns, "k")
    H.sleep(0.2)
    assert.same({ v = 1 }, cache.k)
    local second = access_of(cache, ns, "k")
    assert.is_true(second - first >= 150, second - first)
    assert.is_nil(cache.missing)
    assert.is_nil(access_of(cache, ns, "missing"))
    local other, ns2 = H.cache()
    assert.is_nil(other.nothing)
    assert.same({}, H.keys_of(ns2))
    other:close()
    cache:close()
  end)

  it("update is an access; its expiry entry moves only with Active TTL", function()
    for _, active in ipairs { false, true } do
      local cache, ns = H.cache { active_ttl = active, default_ttl = 100 }
      cache:set_record("u", { a = 1 }, 5)
      local access, expiry = access_of(cache, ns, "u"), expiry_of(cache, ns, "u")
      H.sleep(0.2)
      cache:update("u", { b = 2 })
      local label = "active_ttl = " .. tostring(active)
      assert.is_true(access_of(cache, ns, "u") - access >= 150, label)
      if active then
        assert.is_true(expiry_of(cache, ns, "u") - expiry >= 150, label)
      else
        assert.equal(expiry, expiry_of(cache, ns, "u"), label)
      end
      assert.equal("5000", H.raw("HGET", prefix_of(cache, ns, "u") .. "t", "u"), label)
      cache:close()
    end
  end)

  it("update gives a record without bookkeeping its entries, keeping its time left", function()
    local cache, ns = H.cache { default_ttl = 100 }
    cache.other = { v = 1 } -- the namespace exists
    H.raw("SET", H.record_key(cache, "lost"), '{"a":1}', "PX", 50000)
    assert.same({ a = 1, b = 2 }, cache:update("lost", { b = 2 }))
    local left = pttl(cache, "lost")
    assert.is_true(left > 49000 and left <= 50000, left)
    assert.is_number(access_of(cache, ns, "lost"))
    local expiry = expiry_of(cache, ns, "lost")
    assert.is_true(math.abs(expiry - (server_ms() + left)) < 200, expiry)
    assert.equal("100000", H.raw("HGET", prefix_of(cache, ns, "lost") .. "t", "lost"))
    cache:close()
  end)

  it("get_all_records, records and pairs are no access: score and TTL unchanged, even with Active TTL", function()
    local cache, ns = H.cache { active_ttl = true }
    cache:set_record("x", { v = 1 }, 2)
    cache:set_record("y", { v = 2 }, 2)
    H.sleep(0.3)
    local score, left = access_of(cache, ns, "x"), pttl(cache, "x")
    assert.same({ x = { v = 1 }, y = { v = 2 } }, cache:get_all_records())
    assert.same({ x = { v = 1 } }, cache:get_all_records("x"))
    local seen = {}
    for k, v in cache:records() do seen[k] = v end
    for k, v in H.pairs(cache) do seen[k .. "!"] = v end
    assert.same({ x = { v = 1 }, y = { v = 2 }, ["x!"] = { v = 1 }, ["y!"] = { v = 2 } }, seen)
    assert.equal(score, access_of(cache, ns, "x"))
    local now_left = pttl(cache, "x")
    assert.is_true(now_left <= left and now_left < 1800, left .. " -> " .. now_left)
    cache:close()
  end)
end)

describe("cleanup_inactive_records", function()
  it("deletes records idle for past_minutes, counts them, keeps recently read ones", function()
    local cache, ns = H.cache()
    for i = 1, 10 do cache["k" .. i] = { i = i } end
    H.sleep(1.2)
    for i = 1, 3 do assert.same({ i = i }, cache["k" .. i]) end
    assert.equal(7, cache:cleanup_inactive_records(1 / 60))
    assert.same({ k1 = { i = 1 }, k2 = { i = 2 }, k3 = { i = 3 } }, cache:get_all_records())
    -- the deleted records' entries are gone from a, e and t
    for i = 4, 10 do
      local k, p = "k" .. i, prefix_of(cache, ns, "k" .. i)
      assert.is_nil(zscore(p .. "a", k), k)
      assert.is_nil(zscore(p .. "e", k), k)
      assert.equal(0, H.raw("HEXISTS", p .. "t", k), k)
    end
    assert.same({ r = 3, a = 3, e = 3, t = 3 }, totals(ns))
    assert.equal(0, cache:cleanup_inactive_records(1 / 60))
    cache:close()
  end)

  it("takes fractional minutes (0.01 = 0.6 s)", function()
    local cache = H.cache()
    for i = 1, 5 do cache["k" .. i] = i end
    H.sleep(0.3)
    assert.equal(0, cache:cleanup_inactive_records(0.01))
    assert.equal(5, count(cache:get_all_records()))
    H.sleep(0.4)
    assert.equal(5, cache:cleanup_inactive_records(0.01))
    assert.same({}, cache:get_all_records())
    cache:close()
  end)

  it("with 0 deletes every idle record and leaves no bookkeeping", function()
    local cache, ns = H.cache()
    cache:add { a = 1, b = 2, c = 3, d = 4 }
    cache.e = 5
    H.sleep(0.05)
    assert.equal(5, cache:cleanup_inactive_records(0))
    assert.same({}, H.keys_of(ns))
  end)

  it("deletes more records than one batch, also beyond 1000 in one bucket, with EVALSHA only", function()
    local cache, ns = H.cache()
    -- 1100 keys of one bucket
    local target = prefix_of(cache, ns, "big-1")
    local records, n, i = {}, 0, 0
    while n < 1100 do
      i = i + 1
      local key = "big-" .. i
      if prefix_of(cache, ns, key) == target then
        records[key] = i
        n = n + 1
      end
    end
    for j = 1, 1400 do records["spread-" .. j] = j end
    assert.equal(2500, cache:add(records))
    -- (a few of the spread keys may land there too)
    assert.is_true(H.raw("ZCARD", target .. "a") >= 1100)
    -- (one bucket's bookkeeping written in chunks: every entry is there)
    assert.equal(H.raw("ZCARD", target .. "a"), H.raw("ZCARD", target .. "e"))
    assert.equal(H.raw("ZCARD", target .. "a"), H.raw("HLEN", target .. "t"))
    assert.equal("3600000", H.raw("HGET", target .. "t", "big-1")) -- default_ttl, in ms
    H.sleep(0.05)
    local lines, deleted = H.monitor(function() return cache:cleanup_inactive_records(0) end)
    assert.equal(2500, deleted)
    for _, line in ipairs(lines) do assert.equal("EVALSHA", H.command_name(line), line) end
    -- 256 buckets, then the full one again for its last 100
    assert.equal(257, #lines)
    assert.same({}, H.keys_of(ns))
    cache:close()
  end)

  it("refuses bad past_minutes and deletes nothing", function()
    local cache, ns = H.cache()
    cache:add { a = 1, b = 2 }
    H.sleep(0.05)
    assert.matches(CLEANUP_ERR .. "%-1$", H.error_of(cache.cleanup_inactive_records, cache, -1))
    assert.matches(CLEANUP_ERR .. "x$", H.error_of(cache.cleanup_inactive_records, cache, "x"))
    assert.matches(CLEANUP_ERR .. "nil$", H.error_of(cache.cleanup_inactive_records, cache, nil))
    assert.matches(CLEANUP_ERR .. "nil$", H.error_of(cache.cleanup_inactive_records, cache))
    assert.matches(CLEANUP_ERR .. "%-?nan$", H.error_of(cache.cleanup_inactive_records, cache, 0 / 0))
    assert.matches(CLEANUP_ERR .. "inf$", H.error_of(cache.cleanup_inactive_records, cache, math.huge))
    assert.matches(CLEANUP_ERR .. "%-inf$", H.error_of(cache.cleanup_inactive_records, cache, -math.huge))
    assert.matches(CLEANUP_ERR .. "0$", H.error_of(cache.cleanup_inactive_records, cache, "0"))
    assert.same({ r = 2, a = 2, e = 2, t = 2 }, totals(ns))
    cache:close()
  end)
end)

describe("the tracker", function()
  it("stays bounded without user action: writes prune the entries of expired records", function()
    local cache, ns = H.cache()
    -- one long-lived record per bucket keeps every bucket's bookkeeping alive
    local per_bucket = keys_per_bucket(cache, ns, "anchor-", 2)
    for _, list in pairs(per_bucket) do cache:set_record(list[1], 1, 60) end
    -- (a TTL long enough that none expires before the last is written, even
    -- on a loaded machine: the writes would prune them early)
    local started = os.time()
    for i = 1, 300 do cache:set_record("short-" .. i, i, 1.5) end
    assert.is_true(os.time() - started <= 1, "300 writes took more than a second")
    H.sleep(1.8)
    -- the short records are gone from Redis, their entries still indexed
    assert.same({ r = 256, a = 556, e = 556, t = 556 }, totals(ns))
    -- 600 writes, at least one in every bucket
    for _, list in pairs(per_bucket) do cache:set_record(list[2], 2, 60) end
    for i = 1, 344 do cache:set_record("long-" .. i, i, 60) end
    assert.same({ r = 856, a = 856, e = 856, t = 856 }, totals(ns))
    cache:close()
  end)

  it("the literal case: 300 expired then 600 live records leave exactly 600 entries", function()
    local cache, ns = H.cache()
    for i = 1, 300 do cache:set_record("short-" .. i, i, 0.3) end
    H.sleep(0.6)
    for i = 1, 600 do cache:set_record("long-" .. i, i, 60) end
    assert.same({ r = 600, a = 600, e = 600, t = 600 }, totals(ns))
    cache:close()
  end)

  it("a bucket's keys expire shortly after its last record: nothing is left of expired records", function()
    local cache, ns = H.cache()
    for i = 1, 200 do cache:set_record("k" .. i, i, 0.3) end
    local keys = H.keys_of(ns)
    assert.is_true(#keys > 200 + 3 * 100, #keys) -- records and their buckets' a, e, t
    for _, k in ipairs(keys) do
      local left = H.raw("PTTL", k)
      -- records: their TTL; bucket keys: an eighth more
      local most = k:find(":r:", 1, true) and 300 or 300 + 300 / 8
      assert.is_true(left > 0 and left <= most, k .. ": " .. tostring(left))
    end
    H.sleep(1)
    assert.same({}, H.keys_of(ns))
    cache:close()
  end)
end)

describe("data layout", function()
  -- FNV-1a 32 of the key bytes, modulo 256 (README, "Data layout in Redis");
  -- plain arithmetic, exact in doubles too: 16777619 = 2^24 + 403
  local function xor8(x, y)
    local r, bit = 0, 1
    for _ = 1, 8 do
      if x % 2 ~= y % 2 then r = r + bit end
      x, y, bit = math.floor(x / 2), math.floor(y / 2), bit * 2
    end
    return r
  end
  local function bucket_of(key)
    local h = 2166136261
    for i = 1, #key do
      local low = h % 256
      h = h - low + xor8(low, key:byte(i))
      h = ((h % 256) * 16777216 + h * 403) % 4294967296
    end
    return ("%02x"):format(h % 256)
  end

  it("a record is <ns>:{<bb>}:r:<key>, its a/e/t share the tag; a, e zsets, t the stored TTL in ms", function()
    local cache, ns = H.cache()
    local esc = ns:gsub("%p", "%%%0")
    local keys = { "user:1", "", "é", "a b", "{x}", "42" }
    for _, k in ipairs(keys) do cache:set_record(k, { k = k }, 2.5) end
    cache[7] = 7
    keys[#keys + 1] = "7"
    for _, k in ipairs(keys) do
      local rk = H.record_key(cache, k)
      local bb = rk:match("^" .. esc .. ":{(%x%x)}:r:")
      assert.is_string(bb, rk)
      assert.matches("^[0-9a-f][0-9a-f]$", bb)
      assert.equal(bucket_of(k), bb, k)
      assert.equal(ns .. ":{" .. bb .. "}:r:" .. k, rk)
      assert.is_string(H.raw("GET", rk), rk)
      local p = ns .. ":{" .. bb .. "}:"
      assert.equal("zset", H.raw("TYPE", p .. "a"))
      assert.equal("zset", H.raw("TYPE", p .. "e"))
      assert.equal("hash", H.raw("TYPE", p .. "t"))
      assert.is_number(zscore(p .. "a", k))
      assert.is_number(zscore(p .. "e", k))
      assert.equal(k == "7" and "3600000" or "2500", H.raw("HGET", p .. "t", k))
      -- same hash tag, same cluster slot
      local slot = H.raw("CLUSTER", "KEYSLOT", rk)
      if type(slot) == "number" then
        for _, x in ipairs { "a", "e", "t" } do assert.equal(slot, H.raw("CLUSTER", "KEYSLOT", p .. x)) end
      end
    end
    -- nothing but records and bookkeeping keys
    for _, k in ipairs(H.keys_of(ns)) do
      assert.matches("^" .. esc .. ":{%x%x}:[aetr]", k)
    end
    cache:close()
  end)

  it("t holds the stored TTL as integer ms on every write path", function()
    local cache, ns = H.cache { default_ttl = 100 }
    cache.set = 1
    cache:set_record("set_ttl", 1, 2.5)
    cache:add { add = 1 }
    cache:add({ add_ttl = 1 }, 0.25)
    cache:update("update", { x = 1 })
    local want = { set = "100000", set_ttl = "2500", add = "100000", add_ttl = "250", update = "100000" }
    local got = {}
    for k in pairs(want) do got[k] = H.raw("HGET", prefix_of(cache, ns, k) .. "t", k) end
    assert.same(want, got)
    cache:close()
  end)

  it("2000 keys spread over more than 200 buckets", function()
    local cache, ns = H.cache()
    local records = {}
    for i = 1, 2000 do records["key-" .. i] = i end
    assert.equal(2000, cache:add(records))
    local buckets = {}
    for _, k in ipairs(H.keys_of(ns)) do
      local bb, kind = k:match(":{(%x%x)}:(%a)$")
      if kind == "a" then buckets[bb] = true end
    end
    assert.is_true(count(buckets) > 200, count(buckets))
    assert.same({ r = 2000, a = 2000, e = 2000, t = 2000 }, totals(ns))
    cache:close()
  end)
end)

describe("scripts lost on the server (SCRIPT FLUSH)", function()
  local function flush() assert.equal("OK", H.raw("SCRIPT", "FLUSH")) end

  it("get, set, update, delete_record still work: the scripts are reloaded", function()
    local cache, ns = H.cache { active_ttl = true }
    cache.k = { v = 1 }
    flush()
    cache:set_record("s", { v = 2 }, 5)
    assert.equal("5000", H.raw("HGET", prefix_of(cache, ns, "s") .. "t", "s"))
    flush()
    assert.same({ v = 1 }, cache.k)
    flush()
    assert.same({ v = 2 }, cache:get_record("s"))
    flush()
    assert.same({ v = 1, w = 2 }, cache:update("k", { w = 2 }))
    assert.same({ v = 1, w = 2 }, cache.k)
    flush()
    assert.is_true(cache:delete_record("s"))
    assert.is_nil(cache.s)
    assert.same({ r = 1, a = 1, e = 1, t = 1 }, totals(ns))
    cache:close()
  end)

  it("add still writes everything once, and stays all-or-nothing", function()
    local cache, ns = H.cache()
    flush()
    assert.matches("^rcache_live: add: ", H.error_of(cache.add, cache, { a = 1, b = 2, c = function() end }))
    assert.same({}, H.keys_of(ns))
    flush()
    local records = {}
    for i = 1, 40 do records["k" .. i] = { i = i } end
    assert.equal(40, cache:add(records, 5))
    assert.same(records, cache:get_all_records())
    assert.same({ r = 40, a = 40, e = 40, t = 40 }, totals(ns))
    cache:close()
  end)

  it("bulk_delete and cleanup still work", function()
    local cache, ns = H.cache()
    local records = {}
    for i = 1, 30 do records["k" .. i] = i end
    cache:add(records)
    flush()
    assert.equal(10, cache:bulk_delete { "k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9", "k10", "none" })
    assert.same({ r = 20, a = 20, e = 20, t = 20 }, totals(ns))
    H.sleep(0.05)
    flush()
    assert.equal(20, cache:cleanup_inactive_records(0))
    assert.same({}, H.keys_of(ns))
    cache:close()
  end)
end)

describe("bookkeeping keys taken by another client", function()
  it("refuses the write with a clear error and writes no record", function()
    local cache, ns = H.cache()
    local prefix = prefix_of(cache, ns, "victim")
    H.raw("SET", prefix .. "a", "not a zset")
    local err = H.error_of(cache.set_record, cache, "victim", { v = 1 })
    assert.matches("^rcache_live: set_record: record \"victim\": bookkeeping key "
      .. prefix:gsub("%p", "%%%0") .. "a holds a string, not a zset", err)
    assert.equal(0, H.raw("EXISTS", H.record_key(cache, "victim")))
    -- other buckets keep working
    local other = "other"
    while prefix_of(cache, ns, other) == prefix do other = other .. "x" end
    cache[other] = { ok = true }
    assert.same({ ok = true }, cache[other])
    cache:close()
  end)

  it("stops an add spanning many buckets before any of its records is written", function()
    local cache, ns = H.cache()
    local records = {}
    for i = 1, 50 do records["k" .. i] = { i = i } end
    -- the bucket of the last key in the call's order is taken: the buckets
    -- before it have had their bookkeeping written by then
    local prefix = prefix_of(cache, ns, "k50")
    for _, k in ipairs { "a", "e", "t" } do H.raw("DEL", prefix .. k) end
    H.raw("SET", prefix .. "t", "not a hash")
    local err = H.error_of(cache.add, cache, records)
    assert.matches("^rcache_live: add: bookkeeping key " .. prefix:gsub("%p", "%%%0")
      .. "t holds a string, not a hash", err)
    for i = 1, 50 do assert.equal(0, H.raw("EXISTS", H.record_key(cache, "k" .. i)), "k" .. i) end
    cache:close()
  end)
end)
