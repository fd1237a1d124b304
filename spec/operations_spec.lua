-- The batch operations of the Lua layer against the real server:
-- update, add, bulk_delete, get_all_records / records / pairs, and the
-- interchange of records with lua-cjson.

local rcache = require "rcache_live"
local H = require "support.helpers"

local function escape(s) return (s:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0")) end

-- Bit-for-bit equality of two floats.
local same_float = H.same_float

-- The command names of MONITOR lines: { "EVALSHA", "GET", ... }.
local function names(lines)
  local out = {}
  for i, line in ipairs(lines) do out[i] = H.command_name(line) end
  return out
end

-- A cache that has already connected (its SCRIPT LOADs are behind it), so
-- MONITOR shows only what the operation under test sends.
local function warm_cache(options)
  local cache, ns = H.cache(options)
  assert.is_nil(cache:get_record("warm-up"))
  return cache, ns
end

local count = H.count

-- The record's stored bytes (false when it does not exist).
local function stored(cache, key) return H.raw("GET", H.record_key(cache, key)) end

local function pttl(cache, key) return H.raw("PTTL", H.record_key(cache, key)) end

describe("update", function()
  it("merges top-level fields and returns the merged record", function()
    local cache = H.cache()
    cache:set_record("user:1", { name = "Alice", age = 25, tags = { "a", "b" } })
    local merged = cache:update("user:1", { age = 26, city = "Paris" })
    local expected = { name = "Alice", age = 26, city = "Paris", tags = { "a", "b" } }
    assert.same(expected, merged)
    assert.same(expected, cache:get_record("user:1"))
    assert.equal("integer", H.number_type(cache:get_record("user:1").age))
  end)

  it("replaces a nested field as a whole (top level only) and can set a field to null", function()
    local cache = H.cache()
    cache:set_record("k", { a = { x = 1, y = 2 }, b = true })
    cache:update("k", { a = { z = 3 }, b = rcache.null })
    local got = cache:get_record("k")
    assert.same({ z = 3 }, got.a)
    assert.equal(rcache.null, got.b)
  end)

  it("keeps the TTL an existing record has left", function()
    local cache = H.cache { default_ttl = 3600 }
    cache:set_record("k", { a = 1 }, 50)
    cache:update("k", { b = 2 })
    local left = pttl(cache, "k")
    assert.is_true(left > 45000 and left <= 50000, "PTTL " .. tostring(left))
  end)

  it("creates a missing record with default_ttl", function()
    local cache, ns = H.cache { default_ttl = 100 }
    assert.same({}, H.keys_of(ns))
    local merged = cache:update("new", { a = 1, s = "x" })
    assert.same({ a = 1, s = "x" }, merged)
    assert.same({ a = 1, s = "x" }, cache:get_record("new"))
    local left = pttl(cache, "new")
    assert.is_true(left > 95000 and left <= 100000, "PTTL " .. tostring(left))
  end)

  it("works without tracking (track = false), creating with default_ttl and merging", function()
    local cache = H.cache { track = false, default_ttl = 100 }
    assert.same({ a = 1 }, cache:update("k", { a = 1 }))
    assert.same({ a = 1, b = 2 }, cache:update("k", { b = 2 }))
    assert.same({ a = 1, b = 2 }, cache:get_record("k"))
    local left = pttl(cache, "k")
    assert.is_true(left > 95000 and left <= 100000, "PTTL " .. tostring(left))
  end)

  it("refuses fields that are not a table, naming update, and writes nothing", function()
    local cache, ns = H.cache()
    for _, bad in ipairs { { "a string", "string" }, { 42, "number" }, { true, "boolean" } } do
      assert.matches("^rcache_live: update: fields must be a table, got " .. bad[2] .. "$",
        H.error_of(cache.update, cache, "k", bad[1]))
    end
    assert.matches("^rcache_live: update: fields must be a table, got nil$",
      H.error_of(cache.update, cache, "k", nil))
    assert.matches("^rcache_live: update: fields must be a table, got nil$",
      H.error_of(function() return cache:update("k") end))
    assert.same({}, H.keys_of(ns))
  end)

  it("refuses an array of fields with a clear error and writes nothing", function()
    local cache, ns = H.cache()
    assert.matches("^rcache_live: update: fields must be a table of named fields, not an array$",
      H.error_of(cache.update, cache, "k", { 1, 2, 3 }))
    assert.matches("^rcache_live: update: fields must be a table of named fields, not an array$",
      H.error_of(cache.update, cache, "k", rcache.array()))
    assert.same({}, H.keys_of(ns))
  end)

  it("refuses bad values inside fields (function, NaN, inf) and writes nothing", function()
    local cache, ns = H.cache()
    local cases = {
      { { ok = 1, f = print }, 'field "f": cannot encode a function' },
      { { ok = 1, n = 0 / 0 }, 'field "n": cannot encode NaN or infinity' },
      { { ok = 1, n = math.huge }, 'field "n": cannot encode NaN or infinity' },
    }
    -- a missing record stays missing
    for _, case in ipairs(cases) do
      assert.matches("^rcache_live: update: " .. case[2] .. "$",
        H.error_of(cache.update, cache, "missing", case[1]))
    end
    assert.same({}, H.keys_of(ns))
    -- an existing record is unchanged
    cache:set_record("k", { a = 1 })
    local before = stored(cache, "k")
    for _, case in ipairs(cases) do
      assert.matches("^rcache_live: update: " .. case[2] .. "$",
        H.error_of(cache.update, cache, "k", case[1]))
    end
    assert.equal(before, stored(cache, "k"))
    assert.same({ a = 1 }, cache:get_record("k"))
    assert.is_false(stored(cache, "missing"))
  end)

  it("refuses bad keys naming update", function()
    local cache, ns = H.cache()
    assert.matches("^rcache_live: update: key must be a string or an integer, got boolean$",
      H.error_of(cache.update, cache, true, { a = 1 }))
    assert.matches("^rcache_live: update: key must be a string or an integer, got table$",
      H.error_of(cache.update, cache, {}, { a = 1 }))
    assert.same({}, H.keys_of(ns))
  end)

  for _, case in ipairs {
    { "a JSON array", "[1,2,3]", "not a JSON object" },
    { "an empty JSON array", "[]", "not a JSON object" },
    { "a JSON string", '"hello"', "not a JSON object" },
    { "a JSON number", "42", "not a JSON object" },
  } do
    it("refuses to merge into a record that is " .. case[1] .. "; the cache works afterwards", function()
      local cache = H.cache()
      local rk = H.record_key(cache, "odd")
      assert.equal("OK", H.raw("SET", rk, case[2]))
      assert.matches('^rcache_live: update: record "odd" is ' .. case[3] .. "$",
        H.error_of(cache.update, cache, "odd", { a = 1 }))
      assert.equal(case[2], H.raw("GET", rk))
      -- the failed update left the connection clean: a change to the record
      -- does not abort the next transaction of this connection
      assert.equal("OK", H.raw("SET", rk, '"changed"'))
      assert.equal(2, cache:add { other = { v = 1 }, another = { v = 2 } })
      assert.same({ v = 1 }, cache:get_record("other"))
      assert.same({ v = 2 }, cache:get_record("another"))
      assert.same({ a = 1 }, cache:update("fresh", { a = 1 }))
      assert.same({ a = 1 }, cache:get_record("fresh"))
    end)
  end

  it("refuses a record that is not valid JSON, naming the key; the cache works afterwards", function()
    local cache = H.cache()
    local rk = H.record_key(cache, "bad")
    H.raw("SET", rk, "{nope")
    assert.matches('^rcache_live: update: record "bad" is not valid JSON: ',
      H.error_of(cache.update, cache, "bad", { a = 1 }))
    assert.equal("{nope", H.raw("GET", rk))
    H.raw("SET", rk, "{}")
    assert.equal(1, cache:add { other = { v = 1 } })
    assert.same({ v = 1 }, cache:get_record("other"))
  end)

  it("is atomic across processes: 2 x 500 concurrent updates of one record lose nothing", function()
    local cache, ns = H.cache()
    local child = [[
      local id, ns = ID, NS
      local rcache = require "rcache_live"
      local c = rcache.new { socket = os.getenv("RCACHE_TEST_SOCKET"), namespace = ns }
      -- barrier: both processes start updating at the same moment
      c:update("barrier", { ["p" .. id] = true })
      local deadline = os.time() + 10
      repeat
        local b = c:get_record("barrier")
        assert(os.time() < deadline, "the other process never arrived")
      until b.p1 and b.p2
      for i = 1, 500 do
        local merged = c:update("shared", { ["f" .. id .. "_" .. i] = id * 100000 + i })
        assert(merged["f" .. id .. "_" .. i] == id * 100000 + i, "update did not return its field")
      end
      c:close()
      io.write("done ", id)
    ]]
    local env = ("LUA_PATH=%s LUA_CPATH=%s RCACHE_TEST_SOCKET=%s "):format(
      H.shell_quote(os.getenv("LUA_PATH") or package.path),
      H.shell_quote(os.getenv("LUA_CPATH") or package.cpath),
      H.shell_quote(H.socket))
    local procs = {}
    for id = 1, 2 do
      local code = ("ID, NS = %d, %q\n"):format(id, ns) .. child
      -- the shell reports the exit status (io.popen's close does on 5.2+ only)
      procs[id] = assert(io.popen(env .. H.lua .. " -e " .. H.shell_quote(code) .. " 2>&1; echo \" exit=$?\""))
    end
    -- read and close both before asserting, so that no process outlives the test
    local results = {}
    for id = 1, 2 do
      results[id] = procs[id]:read("*a")
      procs[id]:close()
    end
    for id = 1, 2 do assert.equal("done " .. id .. " exit=0\n", results[id]) end
    local record = cache:get_record("shared")
    assert.equal(1000, count(record))
    for id = 1, 2 do
      for i = 1, 500 do
        local v = record["f" .. id .. "_" .. i]
        assert.equal(id * 100000 + i, v, "f" .. id .. "_" .. i)
        assert.equal("integer", H.number_type(v))
      end
    end
  end)

  it("keeps the untouched fields exact (integers stay integers, floats bit for bit)", function()
    local cache = H.cache()
    -- the largest integers this runtime holds: 64 bits, or 2^53 without an integer subtype
    local big = H.has_integers and 1700000000123456789 or 1700000000123456
    local floats = { tenth = 0.1, third = 1 / 3, two = 2.0 }
    if not H.has_integers then floats.two = 2.5 end -- 2.0 is the integer 2 there
    cache:set_record("n", {
      max = H.maxinteger, min = H.mininteger, big = big,
      tenth = floats.tenth, third = floats.third, two = floats.two,
    })
    local merged = cache:update("n", { other = "x" })
    for _, got in ipairs { merged, cache:get_record("n") } do
      assert.equal("x", got.other)
      for name, want in pairs { max = H.maxinteger, min = H.mininteger, big = big } do
        assert.equal("integer", H.number_type(got[name]), name)
        assert.equal(want, got[name], name)
      end
      for name, want in pairs(floats) do
        assert.equal("float", H.number_type(got[name]), name)
        assert.is_true(same_float(want, got[name]), name)
      end
    end
    local bytes = stored(cache, "n")
    assert.truthy(bytes:find(H.has_integers and "9223372036854775807" or "9007199254740991", 1, true), bytes)
    assert.truthy(bytes:find(H.has_integers and "-9223372036854775808" or "-9007199254740991", 1, true), bytes)
    assert.truthy(bytes:find(("%d"):format(big), 1, true), bytes)
  end)

  it("takes one round trip: a single EVALSHA on the record's bucket", function()
    for _, options in ipairs { {}, { track = false }, { active_ttl = true } } do
      local cache = warm_cache(options)
      cache:set_record("k", { a = 1 })
      local lines, merged = H.monitor(function() return cache:update("k", { b = 2 }) end)
      assert.same({ a = 1, b = 2 }, merged)
      assert.same({ "EVALSHA" }, names(lines))
      local rk = H.record_key(cache, "k")
      local prefix = rk:match("^(.*:{%x%x}:)r:")
      assert.truthy(lines[1]:find(('"4" "%sa" "%se" "%st" "%s"'):format(prefix, prefix, prefix, rk), 1, true), lines[1])
    end
  end)

  it("merges on the JSON text: other members keep their bytes, escaped and duplicate keys are handled", function()
    local cache = H.cache()
    local rk = H.record_key(cache, "k")
    H.raw("SET", rk, '{"n\\u0061me":"old", "dup":1, "dup":2 , "keep" : [ {"}":"]"}, 1.50, 1e300 ] }')
    local merged = cache:update("k", { name = "new", dup = 3 })
    assert.same({ name = "new", dup = 3, keep = { { ["}"] = "]" }, 1.5, 1e300 } }, merged)
    assert.equal('{"name":"new","dup":3,"keep" : [ {"}":"]"}, 1.50, 1e300 ]}', H.raw("GET", rk))
  end)
end)

describe("add", function()
  it("writes all records with the default TTL and returns their count", function()
    local cache = H.cache { default_ttl = 50 }
    local records = { a = { n = 1 }, b = { s = "two" }, [3] = { list = { 1, 2, 3 } }, ["with space"] = "text" }
    assert.equal(4, cache:add(records))
    for k, v in pairs(records) do
      assert.same(v, cache:get_record(k))
      local left = pttl(cache, k)
      assert.is_true(left > 45000 and left <= 50000, "PTTL " .. tostring(left))
    end
    assert.same({ list = { 1, 2, 3 } }, cache:get_record("3"))
  end)

  it("uses the ttl given as 2nd argument (seconds, fractional)", function()
    local cache = H.cache { default_ttl = 3600 }
    assert.equal(2, cache:add({ a = { 1 }, b = { 2 } }, 7.5))
    for _, k in ipairs { "a", "b" } do
      local left = pttl(cache, k)
      assert.is_true(left > 7000 and left <= 7500, "PTTL " .. tostring(left))
    end
  end)

  it("works without tracking (track = false), with the default TTL and a given ttl", function()
    local cache = H.cache { track = false, default_ttl = 100 }
    assert.equal(2, cache:add { a = { 1 }, b = { 2 } })
    assert.same({ 1 }, cache:get_record("a"))
    local left = pttl(cache, "a")
    assert.is_true(left > 95000 and left <= 100000, "PTTL " .. tostring(left))
    assert.equal(1, cache:add({ c = { 3 } }, 10))
    left = pttl(cache, "c")
    assert.is_true(left > 9000 and left <= 10000, "PTTL " .. tostring(left))
  end)

  it("writes none when one value among 100 good ones is bad", function()
    local cache, ns = H.cache()
    local records = {}
    for i = 1, 100 do records["good" .. i] = { i = i } end
    records.bad = { f = print }
    assert.matches('^rcache_live: add: record "bad": cannot encode a function %(at %.f%)$',
      H.error_of(cache.add, cache, records))
    assert.same({}, H.keys_of(ns))
    records.bad = { n = 0 / 0 }
    assert.matches('^rcache_live: add: record "bad": cannot encode NaN or infinity %(at %.n%)$',
      H.error_of(cache.add, cache, records))
    assert.same({}, H.keys_of(ns))
  end)

  it("writes none when one key has a bad type", function()
    local cache, ns = H.cache()
    local records = {}
    for i = 1, 20 do records["good" .. i] = { i = i } end
    records[true] = { x = 1 }
    assert.matches("^rcache_live: add: key must be a string or an integer, got boolean$",
      H.error_of(cache.add, cache, records))
    records[true] = nil
    records[1.5] = { x = 1 }
    assert.matches("^rcache_live: add: key must be a string or an integer, got a float %(1%.5%)$",
      H.error_of(cache.add, cache, records))
    assert.same({}, H.keys_of(ns))
  end)

  it("refuses a non-table and a bad ttl, writing nothing", function()
    local cache, ns = H.cache()
    assert.matches("^rcache_live: add: records must be a table, got string$",
      H.error_of(cache.add, cache, "a"))
    assert.matches("^rcache_live: add: ttl must be a number of seconds, got string$",
      H.error_of(cache.add, cache, { a = 1 }, "10"))
    assert.matches("^rcache_live: add: ttl must be a positive number of seconds %(at least 0%.001%), got 0$",
      H.error_of(cache.add, cache, { a = 1 }, 0))
    assert.matches("^rcache_live: add: ttl must be a positive number of seconds %(at least 0%.001%), got %-1$",
      H.error_of(cache.add, cache, { a = 1 }, -1))
    assert.same({}, H.keys_of(ns))
  end)

  it("takes one round trip: one EVALSHA for all the buckets", function()
    local cache = warm_cache()
    local records, buckets = {}, {}
    for i = 1, 20 do
      records["k" .. i] = { i = i }
      buckets[H.record_key(cache, "k" .. i):match("{(%x%x)}")] = true
    end
    assert.is_true(count(buckets) > 10, "the records span many buckets")
    local lines, n = H.monitor(function() return cache:add(records) end)
    assert.equal(20, n)
    assert.same({ "EVALSHA" }, names(lines))
    for i = 1, 20 do assert.same({ i = i }, cache:get_record("k" .. i)) end
  end)

  it("writes 10,000 records in one call: more arguments than a C function's stack holds on 5.1", function()
    local cache = H.cache()
    local records = {}
    for i = 1, 10000 do records["r" .. i] = i end
    assert.equal(10000, cache:add(records, 60))
    local all = cache:get_all_records()
    assert.equal(10000, count(all))
    for i = 1, 10000, 999 do assert.equal(i, all["r" .. i]) end
    cache:close()
  end)

  it("add{} returns 0 and sends nothing", function()
    local cache, ns = warm_cache()
    local lines, n = H.monitor(function() return cache:add {} end)
    assert.equal(0, n)
    assert.same({}, lines)
    assert.same({}, H.keys_of(ns))
  end)

  it("writes 1000 records in one add", function()
    local cache = warm_cache()
    local records = {}
    for i = 1, 1000 do records["r" .. i] = { i = i, s = ("v%04d"):format(i) } end
    local lines, n = H.monitor(function() return cache:add(records) end)
    assert.equal(1000, n)
    assert.same({ "EVALSHA" }, names(lines))
    local all = cache:get_all_records()
    assert.equal(1000, count(all))
    for i = 1, 1000 do assert.same(records["r" .. i], all["r" .. i]) end
  end)
end)

describe("bulk_delete", function()
  it("returns the number that existed, deletes exactly those and ignores missing ones", function()
    local cache = H.cache()
    cache:add { a = { 1 }, b = { 2 }, c = { 3 }, d = { 4 }, ["1"] = { 5 } }
    assert.equal(3, cache:bulk_delete { "a", "b", "missing", 1, "also-missing" })
    for _, k in ipairs { "a", "b", "1" } do
      assert.is_false(stored(cache, k))
      local prefix = H.record_key(cache, k):match("^(.-:{%x%x}:)")
      assert.is_false(H.raw("HGET", prefix .. "t", k))
      assert.is_false(H.raw("ZSCORE", prefix .. "a", k))
    end
    assert.same({ c = { 3 }, d = { 4 } }, cache:get_all_records())
  end)

  it("counts a key listed twice once", function()
    local cache = H.cache()
    cache:add { a = { 1 } }
    assert.equal(1, cache:bulk_delete { "a", "a" })
    assert.is_false(stored(cache, "a"))
  end)

  it("raises on a bad key type and deletes nothing", function()
    local cache = H.cache()
    cache:add { a = { 1 }, b = { 2 } }
    assert.matches("^rcache_live: bulk_delete: key must be a string or an integer, got boolean$",
      H.error_of(cache.bulk_delete, cache, { "a", true, "b" }))
    assert.matches("^rcache_live: bulk_delete: key must be a string or an integer, got table$",
      H.error_of(cache.bulk_delete, cache, { "a", {} }))
    assert.matches("^rcache_live: bulk_delete: keys must be a list, got string$",
      H.error_of(cache.bulk_delete, cache, "a"))
    assert.same({ a = { 1 }, b = { 2 } }, cache:get_all_records())
  end)

  it("returns 0 for an empty list and sends nothing", function()
    local cache = warm_cache()
    cache:add { a = { 1 } }
    local lines, n = H.monitor(function() return cache:bulk_delete {} end)
    assert.equal(0, n)
    assert.same({}, lines)
    assert.same({ 1 }, cache:get_record("a"))
  end)

  it("takes one round trip: MULTI, EVALSHA per bucket, EXEC", function()
    local cache = warm_cache()
    cache:add { a = { 1 }, b = { 2 }, c = { 3 } }
    local lines, n = H.monitor(function() return cache:bulk_delete { "a", "b", "c" } end)
    assert.equal(3, n)
    local got = names(lines)
    assert.equal("MULTI", got[1])
    assert.equal("EXEC", got[#got])
    for i = 2, #got - 1 do assert.equal("EVALSHA", got[i]) end
  end)

  it("works without tracking (track = false)", function()
    local cache = H.cache { track = false }
    cache:set_record("a", { 1 }, 100)
    cache:set_record("b", { 2 }, 100)
    assert.equal(1, cache:bulk_delete { "a", "zz" })
    assert.is_false(stored(cache, "a"))
    assert.same({ 2 }, cache:get_record("b"))
  end)
end)

describe("get_all_records and records", function()
  it("returns exactly this namespace's records", function()
    local cache, ns = H.cache()
    local other = H.cache()
    local sub = H.cache { namespace = ns .. ":sub" }
    cache:add { a = { mine = 1 }, b = { mine = 2 } }
    other:add { a = { theirs = 1 }, c = { theirs = 3 } }
    sub:add { a = { sub = 1 }, d = { sub = 4 } }
    assert.same({ a = { mine = 1 }, b = { mine = 2 } }, cache:get_all_records())
    assert.same({ a = { theirs = 1 }, c = { theirs = 3 } }, other:get_all_records())
    assert.same({ a = { sub = 1 }, d = { sub = 4 } }, sub:get_all_records())
  end)

  it("returns keys with colons and integer keys as text", function()
    local cache = H.cache()
    cache:add { ["a:b:c"] = { 1 }, [7] = { 2 }, ["{x}"] = { 3 } }
    assert.same({ ["a:b:c"] = { 1 }, ["7"] = { 2 }, ["{x}"] = { 3 } }, cache:get_all_records())
  end)

  it("globs the pattern over user keys only", function()
    local cache = H.cache()
    cache:add {
      ["user:1"] = { 1 }, ["user:2"] = { 2 }, ["user:10"] = { 10 },
      ["x:user:1"] = { "x" }, admin = { "a" }, user = { "u" },
    }
    local star = { ["user:1"] = { 1 }, ["user:2"] = { 2 }, ["user:10"] = { 10 } }
    local one = { ["user:1"] = { 1 }, ["user:2"] = { 2 } }
    assert.same(star, cache:get_all_records("user:*"))
    assert.same(one, cache:get_all_records("user:?"))
    local seen = {}
    for k, v in cache:records("user:*") do seen[k] = v end
    assert.same(star, seen)
    assert.same({}, cache:get_all_records("nobody:*"))
    assert.matches("^rcache_live: get_all_records: pattern must be a string, got number$",
      H.error_of(cache.get_all_records, cache, 5))
  end)

  it("lists 3000 records exactly over several SCAN pages, with SCAN not KEYS", function()
    local cache, ns = warm_cache()
    local records = {}
    for i = 1, 3000 do records["k" .. i] = { i = i, f = i + 0.5, s = "v" .. i } end
    assert.equal(3000, cache:add(records))
    local lines, all = H.monitor(function() return cache:get_all_records() end)
    assert.equal(3000, count(all))
    for i = 1, 3000 do
      local v = all["k" .. i]
      assert.same(records["k" .. i], v)
      assert.equal("integer", H.number_type(v.i))
    end
    local scans, mgets = 0, 0
    for i, name in ipairs(names(lines)) do
      assert.are_not.equal("KEYS", name)
      if name == "SCAN" then
        scans = scans + 1
        assert.matches(escape(('"MATCH" "%s:{[0-9a-f][0-9a-f]}:r:*" "COUNT" "1000"'):format(ns)) .. "$",
          lines[i])
      elseif name == "MGET" then
        mgets = mgets + 1
      else
        error("unexpected command " .. lines[i])
      end
    end
    assert.is_true(scans >= 2, "SCAN pages: " .. scans)
    assert.is_true(mgets >= 2, "MGETs: " .. mgets)
  end)

  it("is not an access: the access index is unchanged", function()
    local cache = H.cache()
    cache:add { a = { 1 } }
    local prefix = H.record_key(cache, "a"):match("^(.-:{%x%x}:)")
    local before = H.raw("ZSCORE", prefix .. "a", "a")
    H.sleep(0.05)
    cache:get_all_records()
    for _ in cache:records() do end
    assert.equal(before, H.raw("ZSCORE", prefix .. "a", "a"))
  end)

  it("gives {} and an empty iteration for an empty namespace", function()
    local cache = H.cache()
    assert.same({}, cache:get_all_records())
    for k in cache:records() do error("unexpected key " .. tostring(k)) end
    for k in H.pairs(cache) do error("unexpected key " .. tostring(k)) end
  end)

  it("raises naming the key of a record that is invalid JSON", function()
    local cache = H.cache()
    cache:add { good = { 1 } }
    H.raw("SET", H.record_key(cache, "bad"), "{nope")
    assert.matches('^rcache_live: get_all_records: record "bad" is not valid JSON: ',
      H.error_of(cache.get_all_records, cache))
    assert.matches('^rcache_live: records: record "bad" is not valid JSON: ',
      H.error_of(function() for _ in cache:records() do end end))
  end)

  it("records() is a plain iterator and pairs(cache) gives the same set", function()
    local cache = H.cache()
    local records = {}
    for i = 1, 50 do records["k" .. i] = { i = i } end
    records.text = "hello"
    cache:add(records)
    local via_records, n = {}, 0
    for k, v in cache:records() do
      assert.is_nil(via_records[k], "key listed twice: " .. k)
      via_records[k], n = v, n + 1
    end
    assert.equal(51, n)
    assert.same(records, via_records)
    assert.same(records, cache:get_all_records())
    if H.has_pairs_metamethod then
      local via_pairs = {}
      for k, v in pairs(cache) do via_pairs[k] = v end
      assert.same(records, via_pairs)
    else -- 5.1 and LuaJIT ignore __pairs: pairs refuses the userdata
      assert.matches("table expected, got userdata", H.error_of(pairs, cache))
    end
  end)
end)

describe("codec interchange with lua-cjson", function()
  local cjson = require "cjson"

  local ordinary = {
    user = { name = "Alice", age = 25, admin = false, nested = { tags = { "a", "b" }, deep = { ok = true } } },
    count = { n = 3 },
    text = "just a string",
    flag = true,
    list = { 1, 2, 3 },
  }

  it("reads with the default codec what the cjson codec wrote", function()
    local with_cjson, ns = H.cache { codec = cjson }
    local plain = H.cache { namespace = ns }
    assert.equal(count(ordinary), with_cjson:add(ordinary))
    for k, v in pairs(ordinary) do assert.same(v, plain:get_record(k)) end
    assert.same(ordinary, plain:get_all_records())
    with_cjson:set_record("with-null", { a = cjson.null, b = 1 })
    local got = plain:get_record("with-null")
    assert.equal(rcache.null, got.a)
  end)

  it("reads with the cjson codec what the default codec wrote; the bytes are cjson-readable", function()
    local plain, ns = H.cache()
    local with_cjson = H.cache { codec = cjson, namespace = ns }
    assert.equal(count(ordinary), plain:add(ordinary))
    for k, v in pairs(ordinary) do
      assert.same(v, with_cjson:get_record(k))
      assert.same(v, cjson.decode(stored(plain, k)))
    end
    assert.same(ordinary, with_cjson:get_all_records())
    plain:set_record("with-null", { a = rcache.null, b = 1 })
    assert.equal(cjson.null, with_cjson:get_record("with-null").a)
    -- update through either codec merges into what the other wrote
    with_cjson:update("user", { age = 26 })
    assert.equal(26, plain:get_record("user").age)
    assert.equal("Alice", plain:get_record("user").name)
  end)

  it("rcache.json round trips and rcache.null is cjson.null", function()
    local value = {
      s = "x\"y\n", i = 42, f = 0.1, big = H.maxinteger, b = false, n = rcache.null,
      list = { 1, "two", { three = 3 } }, empty = rcache.array(),
    }
    local text = rcache.json.encode(value)
    assert.is_string(text)
    local back = rcache.json.decode(text)
    assert.same(value, back)
    assert.equal("integer", H.number_type(back.big))
    assert.equal(H.maxinteger, back.big)
    assert.equal(rcache.array_mt, getmetatable(back.empty))
    assert.equal("[]", rcache.json.encode(back.empty))
    assert.equal(rcache.null, back.n)
    assert.equal(cjson.null, rcache.null)
    assert.equal(rcache.null, rcache.json.null)
  end)
end)

describe("add review cases", function()
  it("names the record whose value cannot be encoded, and writes nothing", function()
    local cache, ns = H.cache()
    local err = H.error_of(cache.add, cache, { a = 1, key4 = { callback = print } })
    assert.matches('^rcache_live: add: record "key4": cannot encode a function', err)
    assert.same({}, H.keys_of(ns))
    cache:close()
  end)

  it("refuses two keys that name the same record (1 and \"1\"), writing nothing", function()
    local cache, ns = H.cache()
    local err = H.error_of(cache.add, cache, { [1] = "a", ["1"] = "b" })
    -- either key can come first: the order of a table walk is not defined
    local a, b = err:match('^rcache_live: add: keys (%S+) and (%S+) name the same record$')
    assert.is_truthy(a, err)
    assert.same({ ['"1"'] = true, ["1"] = true }, { [a] = true, [b] = true })
    assert.same({}, H.keys_of(ns))
    cache:close()
  end)
end)
