-- The cache against the real Redis of spec/support/with-redis: dictionary
-- access, keys, exact values, refused input, transport and server errors,
-- namespaces and the object's lifecycle. Every test has a namespace of its
-- own and checks what reached Redis with H.raw / H.keys_of.
local rcache = require "rcache_live"
local H = require "support.helpers"
local cjson = require "cjson"

local lit, same_float, clock = H.lit, H.same_float, H.clock

-- n tables nested in each other: nested(1) = { 1 }, nested(2) = { { 1 } }.
local function nested(n)
  local t = { 1 }
  for _ = 2, n do t = { t } end
  return t
end

-- How many tables deep v goes.
local function depth_of(v)
  local d = 0
  while type(v) == "table" do
    d = d + 1
    v = v[1]
  end
  return d
end

local function record_type(cache, key)
  return H.raw("TYPE", H.record_key(cache, key))
end

local function exists(cache, key)
  return H.raw("EXISTS", H.record_key(cache, key)) == 1
end

local function pttl(cache, key)
  return H.raw("PTTL", H.record_key(cache, key))
end

local function in_range(lo, hi, x, what)
  assert.is_true(x > lo and x <= hi, ("%s = %s, expected in (%s, %s]"):format(what or "value", tostring(x), lo, hi))
end

describe("dictionary access", function()
  local cache, ns
  before_each(function() cache, ns = H.cache() end)
  after_each(function() cache:close() end)

  it("sets, gets and deletes through cache[key]", function()
    cache["user:1"] = { name = "Alice", age = 25 }
    assert.same({ name = "Alice", age = 25 }, cache["user:1"])
    assert.equal("string", record_type(cache, "user:1"))
    cache["user:1"] = nil
    assert.is_nil(cache["user:1"])
    assert.is_false(exists(cache, "user:1"))
  end)

  it("get_record, set_record, delete_record (true/false) and exists", function()
    assert.equal(0, select("#", cache:set_record("k", { v = 1 })))
    assert.same({ v = 1 }, cache:get_record("k"))
    assert.is_true(cache:exists("k"))
    assert.is_true(cache:delete_record("k"))
    assert.is_false(exists(cache, "k"))
    assert.is_false(cache:delete_record("k"))
    assert.is_false(cache:exists("k"))
    assert.is_nil(cache:get_record("k"))
  end)

  it("ttl is float seconds with millisecond precision, nil on a miss", function()
    cache:set_record("k", 1, 1.5)
    local ttl = cache:ttl("k")
    assert.equal("float", H.number_type(ttl))
    in_range(1.4, 1.5, ttl, "ttl")
    in_range(1400, 1500, pttl(cache, "k"), "PTTL")
    cache:set_record("ms", 1, 2.345)
    in_range(2200, 2345, pttl(cache, "ms"), "PTTL")
    assert.is_nil(cache:ttl("missing"))
  end)

  it("cache[k] = v and set_record without ttl use default_ttl", function()
    cache.k = 1
    in_range(3599000, 3600000, pttl(cache, "k"), "PTTL")
    local short = H.cache { default_ttl = 2.5 }
    short.k = 1
    short:set_record("j", 2)
    in_range(2400, 2500, pttl(short, "k"), "PTTL")
    in_range(2400, 2500, pttl(short, "j"), "PTTL")
    short:close()
  end)

  it("a fractional ttl expires the record on time", function()
    cache:set_record("k", { v = 1 }, 0.25)
    in_range(0.15, 0.25, cache:ttl("k"), "ttl")
    assert.same({ v = 1 }, cache.k)
    H.sleep(0.35)
    assert.is_nil(cache.k)
    assert.is_nil(cache:ttl("k"))
    assert.is_false(cache:exists("k"))
  end)

  it("each record keeps its own ttl", function()
    cache:set_record("a", 1, 10)
    cache:set_record("b", 2, 100)
    cache.c = 3
    in_range(9.9, 10, cache:ttl("a"), "ttl a")
    in_range(99.9, 100, cache:ttl("b"), "ttl b")
    in_range(3599.9, 3600, cache:ttl("c"), "ttl c")
    -- rewriting one changes only that one
    cache:set_record("a", 1, 20)
    in_range(19.9, 20, cache:ttl("a"), "ttl a")
    in_range(99.8, 100, cache:ttl("b"), "ttl b")
  end)

  it("a miss is nil, one value, not an error", function()
    assert.is_nil(cache.nothing)
    assert.equal(1, select("#", cache:get_record("nothing")))
    assert.is_nil(cache:get_record("nothing"))
    assert.same({}, H.keys_of(ns))
  end)
end)

describe("keys", function()
  local cache, ns
  before_each(function() cache, ns = H.cache() end)
  after_each(function() cache:close() end)

  local function odd_keys()
    return {
      "with space", "new\nline", "tab\tand\r", "nul\0byte", "\0", "{}", "}:a", "{", "}", "*", "?", "[", "]",
      "[a-z]", "\\", "%", "é☃", "\255\254\0\1", ("k"):rep(100 * 1024) .. "end",
    }
  end

  it("any bytes round trip and are listed back exactly", function()
    local keys = odd_keys()
    local expected = {}
    for i, k in ipairs(keys) do
      cache[k] = { i = i }
      expected[k] = { i = i }
    end
    for i, k in ipairs(keys) do
      assert.same({ i = i }, cache[k], ("key %q"):format(k:sub(1, 40)))
      assert.equal("string", record_type(cache, k))
    end
    local all = cache:get_all_records()
    assert.same(expected, all)
    local seen = {}
    for k, v in H.pairs(cache) do seen[k] = v end
    assert.same(expected, seen)
  end)

  it("glob characters in keys are listed by an escaped pattern, only them", function()
    for _, k in ipairs { "*", "?", "[", "a*b", "aXb" } do cache[k] = k end
    assert.same({ ["*"] = "*" }, cache:get_all_records("\\*"))
    assert.same({ ["["] = "[" }, cache:get_all_records("\\["))
    assert.same({ ["a*b"] = "a*b" }, cache:get_all_records("a\\*b"))
    assert.same({ ["a*b"] = "a*b", aXb = "aXb" }, cache:get_all_records("a?b"))
  end)

  it("deletes keys made of any bytes", function()
    for _, k in ipairs(odd_keys()) do
      cache[k] = 1
      assert.is_true(cache:delete_record(k))
      assert.is_false(exists(cache, k))
    end
    assert.same({}, cache:get_all_records())
  end)

  it("an integer key is its decimal text: cache[1] and cache['1'] are one record", function()
    cache[1] = "one"
    assert.equal("one", cache["1"])
    cache["2"] = "two"
    assert.equal("two", cache[2])
    -- the extremes: 64 bits, or +-2^53 where numbers have no integer subtype
    local min, max = "-9223372036854775808", "9223372036854775807"
    if not H.has_integers then min, max = "-9007199254740991", "9007199254740991" end
    cache[H.mininteger] = "min"
    assert.equal("min", cache[min])
    assert.equal(H.record_key(cache, min), H.record_key(cache, H.mininteger))
    assert.matches(":r:" .. lit(min) .. "$", H.record_key(cache, H.mininteger))
    cache:set_record(H.maxinteger, "max")
    assert.equal("max", cache:get_record(max))
    assert.same({ ["1"] = "one", ["2"] = "two", [min] = "min", [max] = "max" }, cache:get_all_records())
    cache[1] = nil
    assert.is_nil(cache["1"])
    assert.is_true(cache:delete_record("2"))
    assert.is_nil(cache[2])
  end)

  if not H.has_integers then
    it("an integral number is an integer key up to 2^53 (no integer subtype: 2.0 is 2)", function()
      cache[2.0] = "two"
      assert.equal("two", cache["2"])
      assert.equal(H.record_key(cache, "2"), H.record_key(cache, 2.0))
      assert.equal(H.record_key(cache, "0"), H.record_key(cache, -0.0)) -- -0.0 == 0: one key
      cache[-2 ^ 53] = "low" -- keys go up to 2^53 itself
      assert.equal("low", cache["-9007199254740992"])
      assert.is_true(cache:delete_record(2))
      assert.is_true(cache:delete_record(-2 ^ 53))
      assert.same({}, cache:get_all_records())
    end)
  end

  local BAD_KEYS = {
    { "a float", 1.5, "a float %(1%.5%)" },
    { "a boolean", true, "boolean" },
    { "a table", {}, "table" },
    { "a function", print, "function" },
  }
  if H.has_integers then
    table.insert(BAD_KEYS, 2, { "an integral float", 2.0, "a float %(2%.0%)" })
  else -- integral, but beyond what a double holds exactly
    table.insert(BAD_KEYS, 2, { "a number beyond 2^53", 2 ^ 54, "a float %(1%.8014398509482e%+16%)" })
  end
  for _, case in ipairs(BAD_KEYS) do
    local what, key, got = case[1], case[2], case[3]
    it(what .. " as a key raises naming its type, and nothing is written", function()
      local ops = {
        { "set_record", function() cache:set_record(key, 1) end },
        { "set_record", function() cache[key] = 1 end },
        { "get_record", function() return cache:get_record(key) end },
        { "get_record", function() return cache[key] end },
        { "delete_record", function() return cache:delete_record(key) end },
        { "delete_record", function() cache[key] = nil end },
        { "exists", function() return cache:exists(key) end },
        { "ttl", function() return cache:ttl(key) end },
        { "update", function() return cache:update(key, { a = 1 }) end },
        { "bulk_delete", function() return cache:bulk_delete { "good", key } end },
      }
      -- a Lua table turns the key 2.0 into 2, so add never sees that float
      if key ~= 2.0 then
        ops[#ops + 1] = { "add", function() return cache:add { good = 1, [key] = 2 } end }
      end
      for _, op in ipairs(ops) do
        assert.matches("^rcache_live: " .. op[1] .. ": key must be a string or an integer, got " .. got .. "$",
          H.error_of(op[2]))
      end
      assert.same({}, H.keys_of(ns))
    end)
  end
end)

describe("keys named like methods", function()
  local cache, ns
  before_each(function() cache, ns = H.cache() end)
  after_each(function() cache:close() end)

  it("are stored and read with get_record, while cache.<name> stays the method", function()
    local names = { "update", "add", "get_record", "set_record", "close", "records", "exists", "ttl" }
    for _, name in ipairs(names) do
      cache:set_record(name, { name = name })
    end
    -- the module's single-record functions also take caches inside nginx,
    -- so they are not the blocking cache's C methods
    local single = { get_record = true, set_record = true, exists = true, ttl = true }
    for _, name in ipairs(names) do
      if not single[name] then assert.equal(rcache[name], cache[name]) end
      assert.is_function(cache[name])
      assert.same({ name = name }, cache:get_record(name))
      assert.same({ name = name }, rcache.get_record(cache, name))
      assert.is_true(cache:exists(name))
    end
    local records = 0
    for _, k in ipairs(H.keys_of(ns)) do
      if k:find(":r:", 1, true) then records = records + 1 end
    end
    assert.equal(#names, records)
    local all = cache:get_all_records()
    for _, name in ipairs(names) do assert.same({ name = name }, all[name]) end
  end)

  it("cache.update = v writes the record 'update'", function()
    cache.update = { v = 1 }
    assert.equal(rcache.update, cache.update)
    assert.same({ v = 1 }, cache:get_record("update"))
    -- the method still works, on another key and on the record named update
    assert.same({ a = 1 }, cache:update("other", { a = 1 }))
    assert.same({ v = 1, w = 2 }, cache:update("update", { w = 2 }))
    assert.same({ v = 1, w = 2 }, rcache.get_record(cache, "update"))
    cache.update = nil
    assert.is_nil(cache:get_record("update"))
    assert.equal(rcache.update, cache.update)
  end)
end)

describe("values through Redis", function()
  local cache, ns
  before_each(function() cache, ns = H.cache() end)
  after_each(function() cache:close() end)

  -- Stores v, returns what a read gives back and the bytes stored.
  local function roundtrip(v)
    cache:set_record("v", v)
    return cache:get_record("v"), H.raw("GET", H.record_key(cache, "v"))
  end

  if H.has_integers then
    it("integers stay integers, to the last digit", function()
      local ints = { 0, 1, -1, 42, 9007199254740993, math.maxinteger, math.mininteger, 1700000000123456789 }
      for _, n in ipairs(ints) do
        local back, stored = roundtrip(n)
        assert.equal("integer", math.type(back), tostring(n))
        assert.equal(n, back)
        assert.equal(tostring(n), stored)
      end
      local back, stored = roundtrip { ts = 1700000000123456789, list = { math.maxinteger, math.mininteger } }
      assert.equal("integer", math.type(back.ts))
      assert.equal(1700000000123456789, back.ts)
      assert.equal(math.maxinteger, back.list[1])
      assert.equal(math.mininteger, back.list[2])
      assert.truthy(stored:find("1700000000123456789", 1, true))
    end)
  else
    it("integral numbers up to 2^53 are stored as integer text and come back equal", function()
      local ints = { { 0, "0" }, { 1, "1" }, { -1, "-1" }, { 42, "42" }, { 2 ^ 53 - 1, "9007199254740991" },
        { -(2 ^ 53 - 1), "-9007199254740991" }, { 1700000000123456, "1700000000123456" },
        -- 2^53 is the last the decoder reads back exactly; beyond it, a float
        { 2 ^ 53, "9007199254740992" }, { 2 ^ 54, "18014398509481984.0" }, { 2 ^ 63, "9.223372036854776e+18" } }
      for _, case in ipairs(ints) do
        local back, stored = roundtrip(case[1])
        assert.equal(case[2], stored)
        assert.equal(case[1], back)
      end
      local back, stored = roundtrip { ts = 1700000000123456, list = { 2 ^ 53 - 1, -(2 ^ 53 - 1) } }
      assert.same({ ts = 1700000000123456, list = { 2 ^ 53 - 1, -(2 ^ 53 - 1) } }, back)
      assert.truthy(stored:find('"list":[9007199254740991,-9007199254740991]', 1, true), stored)
    end)

    it("a record holding an integer beyond 2^53 raises on read, naming the record", function()
      -- another client (or a 5.3+ process) wrote a 64-bit integer
      H.raw("SET", H.record_key(cache, "big"), '{"id":9223372036854775807}')
      local err = H.error_of(cache.get_record, cache, "big")
      assert.matches('^rcache_live: get_record: record "big" is not valid JSON: integer 9223372036854775807 '
        .. "cannot be represented exactly by this Lua %(beyond 2%^53%)$", err)
      assert.equal('{"id":9223372036854775807}', H.raw("GET", H.record_key(cache, "big")))
    end)
  end

  it("floats come back bit for bit and stay floats", function()
    local floats = { 0.1, 1 / 3, 2.0, 5e-324, 1.7976931348623157e308, -0.0, 0.0, 1e21, -2.5, 2 ^ 63, 1e-7 }
    for _, x in ipairs(floats) do
      local back, stored = roundtrip(x)
      assert.is_true(same_float(x, back), ("%.17g came back as %s (stored %s)"):format(x, tostring(back), stored))
      -- another JSON reader sees a float too; without a float subtype an
      -- integral value up to 2^53 (2.0, 0.0) is an integer, written as one
      if H.number_type(x) == "float" then
        assert.truthy(stored:find("[%.eE]"), stored)
      else
        assert.matches("^%d+$", stored)
      end
    end
    local back = roundtrip(floats)
    for i, x in ipairs(floats) do assert.is_true(same_float(x, back[i]), tostring(x)) end
  end)

  it("an empty array stays an array and is stored again as []", function()
    local back, stored = roundtrip(rcache.array())
    assert.equal("[]", stored)
    assert.is_table(back)
    assert.is_nil(next(back))
    assert.equal(rcache.array_mt, getmetatable(back))
    assert.equal("[]", rcache.json.encode(back))
    cache:set_record("again", back)
    assert.equal("[]", H.raw("GET", H.record_key(cache, "again")))
    back, stored = roundtrip { list = rcache.array(), n = 1 }
    assert.equal("[]", rcache.json.encode(back.list))
    cache:set_record("again", back)
    assert.equal("[]", rcache.json.encode(cache.again.list))
    assert.truthy(H.raw("GET", H.record_key(cache, "again")):find('"list":[]', 1, true))
    assert.truthy(stored:find('"list":[]', 1, true))
  end)

  it("an empty object stays {}", function()
    local back, stored = roundtrip {}
    assert.equal("{}", stored)
    assert.same({}, back)
    assert.equal("{}", rcache.json.encode(back))
    back, stored = roundtrip { inner = {} }
    assert.equal('{"inner":{}}', stored)
    assert.equal("{}", rcache.json.encode(back.inner))
  end)

  it("null keeps its position in arrays and objects", function()
    local back, stored = roundtrip { 1, rcache.null, 3 }
    assert.equal("[1,null,3]", stored)
    assert.equal(3, #back)
    assert.equal(1, back[1])
    assert.equal(rcache.null, back[2])
    assert.equal(3, back[3])
    back, stored = roundtrip { rcache.null, rcache.null }
    assert.equal("[null,null]", stored)
    assert.equal(rcache.null, back[2])
    back, stored = roundtrip { a = rcache.null }
    assert.equal('{"a":null}', stored)
    assert.equal(rcache.null, back.a)
    back = roundtrip(rcache.null)
    assert.equal(rcache.null, back)
    assert.equal(cjson.null, back)
  end)

  it("nested objects and arrays come back the same", function()
    local doc = {
      user = { name = "Alice", age = 25, tags = { "a", "b", { deep = { 1, 2, { 3 } } } } },
      matrix = { { 1, 2 }, { 3, 4 }, rcache.array() },
      flags = { on = true, off = false },
    }
    local back = roundtrip(doc)
    assert.same(doc, back)
    assert.equal(3, back.user.tags[3].deep[3][1])
    assert.equal("integer", H.number_type(back.matrix[2][2]))
  end)

  it("strings with all 256 byte values come back the same, as values and object keys", function()
    local bytes = {}
    for b = 0, 255 do bytes[#bytes + 1] = string.char(b) end
    local s = table.concat(bytes)
    local back = roundtrip(s)
    assert.equal(s, back)
    back = roundtrip { [s] = s, list = { s, "" } }
    assert.equal(s, back[s])
    assert.equal(s, back.list[1])
    assert.equal("", back.list[2])
  end)

  it("booleans come back as booleans", function()
    assert.is_true((roundtrip(true)))
    assert.is_false((roundtrip(false)))
    assert.same({ t = true, f = false, list = { false, true } }, (roundtrip { t = true, f = false, list = { false, true } }))
  end)

  it("the stored bytes are JSON that lua-cjson reads", function()
    local doc = {
      name = "Alice \"A\" \\ é ☃\n\t", age = 25, score = 0.5, ok = true, no = false, none = rcache.null,
      tags = { "x", "y" }, nested = { deeper = { 1, 2, 3 } }, empty = {}, neg = -17, small = 1e-7,
    }
    cache:set_record("doc", doc)
    local stored = H.raw("GET", H.record_key(cache, "doc"))
    local other = cjson.decode(stored)
    assert.equal(doc.name, other.name)
    assert.equal(25, other.age)
    assert.equal(0.5, other.score)
    assert.equal(-17, other.neg)
    assert.equal(1e-7, other.small)
    assert.is_true(other.ok)
    assert.is_false(other.no)
    assert.equal(cjson.null, other.none)
    assert.same({ "x", "y" }, other.tags)
    assert.same({ 1, 2, 3 }, other.nested.deeper)
    assert.same({}, other.empty)
    -- and what cjson writes, the cache reads
    H.raw("SET", H.record_key(cache, "from-cjson"), cjson.encode { a = { 1, 2 }, b = "text", c = true })
    assert.same({ a = { 1, 2 }, b = "text", c = true }, cache["from-cjson"])
  end)
end)

describe("bad input", function()
  local cache, ns
  before_each(function() cache, ns = H.cache() end)
  after_each(function() cache:close() end)

  local cyclic = { name = "loop" }
  cyclic.self = cyclic

  -- { what, value, pattern of the cause (the end of the message) }
  local BAD = {
    { "a function", function() end, "cannot encode a function$" },
    { "a userdata (io.stdout)", io.stdout, "cannot encode a userdata" },
    { "a coroutine", coroutine.create(function() end), "cannot encode a thread$" },
    { "a cyclic table", cyclic, "cyclic table %(at %.self%)$" },
    { "NaN", 0 / 0, "cannot encode NaN or infinity$" },
    { "inf", math.huge, "cannot encode NaN or infinity$" },
    { "-inf", -math.huge, "cannot encode NaN or infinity$" },
    { "NaN inside a table", { a = { b = 0 / 0 } }, "cannot encode NaN or infinity %(at %.a%.b%)$" },
    { "a function inside a table", { ok = 1, f = print }, "cannot encode a function %(at %.f%)$" },
    { "nesting 129 deep", nested(129), "nesting deeper than 128 levels %(at %[1%]" },
    { "a sparse array {1, nil, 3}", { 1, nil, 3 }, "sparse array: key 3 but only 2 elements$" },
    { "a sparse array {[1]=1, [5]=5}", { [1] = 1, [5] = 5 }, "sparse array: key 5 but only 2 elements$" },
    { "mixed keys {1, a=2}", { 1, a = 2 }, "table mixes array and object keys$" },
    { "a boolean object key", { [true] = 1 }, "cannot use a boolean as an object key$" },
  }

  -- Writes the record "old" (ttl 100 s) and returns a check that it and
  -- every key of the namespace are as before.
  local function snapshot()
    cache:set_record("old", { v = "old" }, 100)
    local keys = H.keys_of(ns)
    local stored = H.raw("GET", H.record_key(cache, "old"))
    return function()
      assert.same(keys, H.keys_of(ns))
      assert.equal(stored, H.raw("GET", H.record_key(cache, "old")))
      assert.same({ v = "old" }, cache.old)
      in_range(99, 100, cache:ttl("old"), "ttl of old")
      assert.is_false(exists(cache, "new"))
    end
  end

  for _, case in ipairs(BAD) do
    local what, value, cause = case[1], case[2], case[3]

    it("set_record refuses " .. what .. " and writes nothing", function()
      local unchanged = snapshot()
      assert.matches("^rcache_live: set_record: " .. cause, H.error_of(cache.set_record, cache, "new", value))
      assert.matches("^rcache_live: set_record: " .. cause, H.error_of(cache.set_record, cache, "old", value))
      unchanged()
    end)

    it("cache[k] = v refuses " .. what .. " and writes nothing", function()
      local unchanged = snapshot()
      assert.matches("^rcache_live: set_record: " .. cause, H.error_of(function() cache.new = value end))
      assert.matches("^rcache_live: set_record: " .. cause, H.error_of(function() cache.old = value end))
      unchanged()
    end)

    it("add refuses " .. what .. " among good values and writes none of them", function()
      local unchanged = snapshot()
      assert.matches('^rcache_live: add: record "new": ' .. cause,
        H.error_of(cache.add, cache, { good1 = 1, new = value, good2 = { x = 2 } }))
      assert.matches('^rcache_live: add: record "old": ' .. cause,
        H.error_of(cache.add, cache, { good1 = 1, old = value, good2 = { x = 2 } }))
      assert.is_false(exists(cache, "good1"))
      assert.is_false(exists(cache, "good2"))
      unchanged()
    end)
  end

  it("nesting 128 deep is stored and read back", function()
    cache:set_record("deep", nested(128))
    assert.equal(128, depth_of(cache.deep))
    cache.deep2 = nested(128)
    assert.equal(128, depth_of(cache.deep2))
    assert.equal(1, cache:add { deep3 = nested(128) })
    assert.equal(128, depth_of(cache.deep3))
  end)

  it("a nil value in set_record is refused (delete_record deletes)", function()
    local unchanged = snapshot()
    local pattern = "^rcache_live: set_record: value is nil %(delete_record deletes%)$"
    assert.matches(pattern, H.error_of(cache.set_record, cache, "new", nil))
    assert.matches(pattern, H.error_of(cache.set_record, cache, "new"))
    assert.matches(pattern, H.error_of(cache.set_record, cache, "old", nil, 10))
    unchanged()
  end)

  local BAD_TTLS = {
    { "0", 0, "ttl must be a positive number of seconds %(at least 0%.001%), got 0$" },
    { "-1", -1, "ttl must be a positive number of seconds %(at least 0%.001%), got %-1$" },
    { "0.0001", 0.0001, "ttl must be a positive number of seconds %(at least 0%.001%), got 0%.0001$" },
    { "NaN", 0 / 0, "ttl must be a positive number of seconds %(at least 0%.001%), got %-?nan$" },
    { "inf", math.huge, "ttl must be a positive number of seconds %(at least 0%.001%), got inf$" },
    { '"10"', "10", "ttl must be a number of seconds, got string$" },
    { "a table", {}, "ttl must be a number of seconds, got table$" },
  }
  for _, case in ipairs(BAD_TTLS) do
    local what, ttl, cause = case[1], case[2], case[3]
    it("ttl " .. what .. " is refused by set_record and add, nothing written", function()
      local unchanged = snapshot()
      assert.matches("^rcache_live: set_record: " .. cause, H.error_of(cache.set_record, cache, "new", 1, ttl))
      assert.matches("^rcache_live: set_record: " .. cause, H.error_of(cache.set_record, cache, "old", 1, ttl))
      assert.matches("^rcache_live: add: " .. cause, H.error_of(cache.add, cache, { new = 1, old = 2 }, ttl))
      unchanged()
    end)
  end

  it("the smallest ttl, 0.001 s, is accepted", function()
    cache:set_record("k", 1, 0.001)
    cache:set_record("j", 1, 0.0006) -- rounds to 1 ms
    H.sleep(0.05)
    assert.is_nil(cache.k)
    assert.is_nil(cache.j)
  end)
end)

describe("Redis errors", function()
  local dead, ns
  before_each(function()
    ns = H.namespace("dead")
    dead = rcache.new { host = "127.0.0.1", port = H.dead_port, namespace = ns }
  end)
  after_each(function() dead:close() end)

  local where = "127%.0%.0%.1:" .. H.dead_port

  local OPS = {
    { "get_record", "get_record", function(c) return c:get_record("k") end },
    { "cache[k]", "get_record", function(c) return c.k end },
    { "set_record", "set_record", function(c) c:set_record("k", 1) end },
    { "cache[k] = v", "set_record", function(c) c.k = 1 end },
    { "delete_record", "delete_record", function(c) return c:delete_record("k") end },
    { "cache[k] = nil", "delete_record", function(c) c.k = nil end },
    { "exists", "exists", function(c) return c:exists("k") end },
    { "ttl", "ttl", function(c) return c:ttl("k") end },
    { "update", "update", function(c) return c:update("k", { a = 1 }) end },
    { "add", "add", function(c) return c:add { k = 1, j = 2 } end },
    { "bulk_delete", "bulk_delete", function(c) return c:bulk_delete { "k", "j" } end },
    { "get_all_records", "get_all_records", function(c) return c:get_all_records() end },
    { "pairs", "records", function(c) for _ in H.pairs(c) do end end },
    { "cleanup_inactive_records", "cleanup_inactive_records", function(c) return c:cleanup_inactive_records(0) end },
  }

  for _, case in ipairs(OPS) do
    local what, op, fn = case[1], case[2], case[3]
    it(what .. " on a dead port raises connection refused at once", function()
      local t0 = clock()
      local err = H.error_of(fn, dead)
      assert.matches("^rcache_live: " .. op .. ": connection refused %(" .. where .. "%)$", err)
      assert.is_true(clock() - t0 < 1, "took too long")
    end)
  end

  it("the same cache keeps raising cleanly after errors, without hanging", function()
    local t0 = clock()
    for _ = 1, 3 do
      for _, case in ipairs(OPS) do
        assert.matches("^rcache_live: " .. case[2] .. ": connection refused %(" .. where .. "%)$",
          H.error_of(case[3], dead))
      end
    end
    assert.is_true(clock() - t0 < 2, "took too long")
    assert.matches('namespace "' .. lit(ns) .. '"', tostring(dead))
  end)

  it("a missing unix socket raises naming the path", function()
    local path = H.dir .. "/no-such.sock"
    local cache = rcache.new { socket = path, namespace = H.namespace() }
    for _, case in ipairs(OPS) do
      assert.matches("^rcache_live: " .. case[2] .. ": no such file or directory %(unix:" .. lit(path) .. "%)$",
        H.error_of(case[3], cache))
    end
    cache:close()
  end)

  -- Runs script in a fresh interpreter like this one (so a crash cannot
  -- take busted down); returns its output and whether it exited normally.
  local function run_lua(script)
    local cmd = ("LUA_PATH=%s LUA_CPATH=%s %s -e %s 2>&1; echo \"exit=$?\""):format(
      H.shell_quote(package.path), H.shell_quote(package.cpath), H.lua, H.shell_quote(script))
    local p = assert(io.popen(cmd))
    local out = p:read("*a")
    p:close()
    return out
  end

  for _, transport in ipairs { "tcp", "unix" } do
    it("a connection the server closed (" .. transport .. ") raises, then reconnects; no crash", function()
      local where_text = transport == "tcp" and ("127.0.0.1:" .. H.port) or ("unix:" .. H.socket)
      local options = transport == "tcp" and ("port = %d"):format(H.port) or ("socket = %q"):format(H.socket)
      local ns2 = H.namespace("killed")
      local out = run_lua(([[
        local rcache = require "rcache_live"
        local c = rcache.new { %s, db = 9, namespace = %q }
        local killer = rcache.new { socket = %q, track = false, namespace = "killer" }
        c.x = 1
        -- the only connection on db 9 is c's
        local list = require("rcache_live.core").internal.pipeline(killer, "list", { { "CLIENT", "LIST" } })[1]
        local id = assert(list:match("id=(%%d+)[^\n]* db=9 "))
        assert(require("rcache_live.core").internal.pipeline(killer, "kill", { { "CLIENT", "KILL", "ID", id } })[1] == 1)
        print(pcall(c.get_record, c, "x"))
        print(pcall(c.get_record, c, "x"))
        c:delete_record("x")
      ]]):format(options, ns2, H.socket))
      local first, second, status = out:match("^([^\n]*)\n([^\n]*)\n(exit=%d+)\n$")
      assert.equal("exit=0", status, out)
      assert.is_true(first == "true\t1"
        or first == "false\trcache_live: get_record: connection closed by the server (" .. where_text .. ")", first)
      assert.equal("true\t1", second)
    end)
  end

  describe("records written by someone else", function()
    local cache, cns
    before_each(function() cache, cns = H.cache() end)
    after_each(function() cache:close() end)

    it("a record that is not JSON raises naming the key, and the cache keeps working", function()
      cache.good = { v = 1 }
      H.raw("SET", H.record_key(cache, "k"), "not json", "PX", 100000)
      local pattern = '^rcache_live: get_record: record "k" is not valid JSON: .'
      assert.matches(pattern, H.error_of(cache.get_record, cache, "k"))
      assert.matches(pattern, H.error_of(function() return cache.k end))
      assert.matches('^rcache_live: get_all_records: record "k" is not valid JSON: .',
        H.error_of(cache.get_all_records, cache))
      assert.matches('^rcache_live: update: record "k" is not valid JSON: .',
        H.error_of(cache.update, cache, "k", { a = 1 }))
      assert.equal("not json", H.raw("GET", H.record_key(cache, "k")))
      -- the key is quoted printably in the message
      H.raw("SET", H.record_key(cache, "bad\nkey\""), "{")
      assert.matches('^rcache_live: get_record: record "bad\\x0akey\\"" is not valid JSON: ',
        H.error_of(cache.get_record, cache, "bad\nkey\""))
      -- other keys still work, and the bad record can be replaced
      assert.same({ v = 1 }, cache.good)
      cache.other = 2
      assert.equal(2, cache.other)
      cache.k = { fixed = true }
      assert.same({ fixed = true }, cache.k)
    end)

    it("a record key holding a hash raises WRONGTYPE naming the key, and the cache keeps working", function()
      cache.good = { v = 1 }
      local rk = H.record_key(cache, "k")
      H.raw("HSET", rk, "f", "v")
      assert.matches('^rcache_live: get_record: record "k": WRONGTYPE ', H.error_of(cache.get_record, cache, "k"))
      assert.matches('^rcache_live: get_record: record "k": WRONGTYPE ', H.error_of(function() return cache.k end))
      assert.matches('^rcache_live: update: record "k": WRONGTYPE ', H.error_of(cache.update, cache, "k", { a = 1 }))
      assert.equal("v", H.raw("HGET", rk, "f")) -- the update wrote nothing
      assert.same({ v = 1 }, cache.good)
      cache.other = 2
      assert.equal(2, cache.other)
    end)

    for _, case in ipairs {
      { "not JSON", function(rk) H.raw("SET", rk, "not json") end },
      { "a hash", function(rk) H.raw("HSET", rk, "f", "v") end },
    } do
      it("after update fails on a record that is " .. case[1] .. ", add and update still write", function()
        case[2](H.record_key(cache, "k"))
        H.error_of(cache.update, cache, "k", { a = 1 })
        assert.is_true(cache:delete_record("k")) -- changes the key update had read
        assert.equal(2, cache:add { x = 1, y = 2 })
        assert.equal(1, cache.x)
        assert.equal(2, cache.y)
        assert.same({ a = 1 }, cache:update("z", { a = 1 }))
        assert.same({ a = 1 }, cache.z)
        assert.equal(2, cache:bulk_delete { "x", "y" })
      end)
    end
  end)
end)

describe("namespaces", function()
  local a, b, nsa, nsb
  before_each(function()
    a, nsa = H.cache()
    b, nsb = H.cache()
  end)
  after_each(function()
    a:close()
    b:close()
  end)

  -- Fills both caches with the same keys, different values.
  local function fill()
    for _, k in ipairs { "k1", "k2", "k3" } do
      a[k] = "a-" .. k
      b[k] = "b-" .. k
    end
  end

  it("keep the same key apart", function()
    fill()
    assert.equal("a-k1", a.k1)
    assert.equal("b-k1", b.k1)
    assert.not_equal(H.record_key(a, "k1"), H.record_key(b, "k1"))
    assert.equal("b-k1", cjson.decode(H.raw("GET", H.record_key(b, "k1"))))
  end)

  it("delete and bulk_delete of one never touch the other", function()
    fill()
    local before = H.keys_of(nsb)
    assert.is_true(a:delete_record("k1"))
    assert.equal(2, a:bulk_delete { "k2", "k3", "missing" })
    a.k1 = nil
    assert.same({}, a:get_all_records())
    assert.same(before, H.keys_of(nsb))
    assert.same({ k1 = "b-k1", k2 = "b-k2", k3 = "b-k3" }, b:get_all_records())
  end)

  it("get_all_records and pairs list only their own records", function()
    fill()
    a.only_a = true
    assert.same({ k1 = "a-k1", k2 = "a-k2", k3 = "a-k3", only_a = true }, a:get_all_records())
    local seen = {}
    for k, v in H.pairs(b) do seen[k] = v end
    assert.same({ k1 = "b-k1", k2 = "b-k2", k3 = "b-k3" }, seen)
  end)

  it("cleanup_inactive_records(0) of one leaves the other", function()
    fill()
    local before = H.keys_of(nsb)
    H.sleep(0.02)
    assert.equal(3, a:cleanup_inactive_records(0))
    assert.same({}, a:get_all_records())
    for _, k in ipairs(H.keys_of(nsa)) do
      assert.is_nil(k:find(":r:", 1, true), k)
    end
    assert.same(before, H.keys_of(nsb))
    assert.equal("b-k2", b.k2)
  end)

  it("a namespace that extends another (ns and ns:sub) stays apart", function()
    local sub, nssub = H.cache { namespace = nsa .. ":sub" }
    assert.equal(nsa .. ":sub", nssub)
    fill()
    sub.k1 = "sub-k1"
    assert.same({ k1 = "a-k1", k2 = "a-k2", k3 = "a-k3" }, a:get_all_records())
    assert.same({ k1 = "sub-k1" }, sub:get_all_records())
    H.sleep(0.02)
    assert.equal(3, a:cleanup_inactive_records(0))
    assert.equal(0, a:bulk_delete { "k1" })
    assert.equal("sub-k1", sub.k1)
    assert.equal(1, sub:cleanup_inactive_records(0))
    assert.is_nil(sub.k1)
    assert.same({ k1 = "b-k1", k2 = "b-k2", k3 = "b-k3" }, b:get_all_records())
    sub:close()
  end)

  it("user keys that look like bookkeeping never collide with it", function()
    local keys = { "a", "e", "t", ":a", "}:a", "{00}:a", "{00}:t", "r:x", "{00}:r:x", nsa .. ":{00}:a", ":r:" }
    for i, k in ipairs(keys) do a[k] = { i = i } end
    local records = 0
    for _, key in ipairs(H.keys_of(nsa)) do
      local rest = key:sub(#nsa + 2)
      local kind = H.raw("TYPE", key)
      if rest:match("^{%x%x}:r:") then
        assert.equal("string", kind, key)
        records = records + 1
      elseif rest:match("^{%x%x}:[ae]$") then
        assert.equal("zset", kind, key)
      elseif rest:match("^{%x%x}:t$") then
        assert.equal("hash", kind, key)
      else
        error("unexpected key " .. key)
      end
    end
    assert.equal(#keys, records)
    local expected = {}
    for i, k in ipairs(keys) do
      assert.same({ i = i }, a[k], k)
      expected[k] = { i = i }
      -- its bucket's bookkeeping names it
      local prefix = H.record_key(a, k):sub(1, #nsa + 6)
      assert.matches("^" .. lit(nsa) .. ":{%x%x}:$", prefix)
      assert.is_number(tonumber(H.raw("ZSCORE", prefix .. "a", k)), k)
      assert.is_number(tonumber(H.raw("ZSCORE", prefix .. "e", k)), k)
      assert.equal("3600000", H.raw("HGET", prefix .. "t", k))
    end
    assert.same(expected, a:get_all_records())
    -- deleting them one by one leaves the others readable
    for i, k in ipairs(keys) do
      assert.is_true(a:delete_record(k), k)
      for j = i + 1, #keys do assert.same({ i = j }, a[keys[j]]) end
    end
    assert.same({}, a:get_all_records())
  end)
end)

describe("the cache object", function()
  local function connections()
    local n = 0
    for _ in H.raw("CLIENT", "LIST"):gmatch("[^\n]+") do n = n + 1 end
    return n
  end

  -- Polls until the server counts n connections (it notices a close on its
  -- next event loop turn); returns the last count.
  local function settle_at(n)
    local count = connections()
    for _ = 1, 40 do
      if count == n then break end
      H.sleep(0.025)
      count = connections()
    end
    return count
  end

  it("many caches live in one Lua state at once", function()
    local caches, names = {}, {}
    for i = 1, 50 do
      caches[i], names[i] = H.cache()
      caches[i].k = { i = i }
    end
    for i = 1, 50 do
      assert.same({ i = i }, caches[i].k)
      assert.same({ k = { i = i } }, caches[i]:get_all_records())
    end
    for i = 1, 50 do caches[i]:close() end
  end)

  it("close twice is harmless", function()
    local cache = H.cache()
    cache.k = 1
    assert.has_no.errors(function() cache:close() end)
    assert.has_no.errors(function() cache:close() end)
    assert.has_no.errors(function() rcache.close(cache) end)
    local never_used = H.cache()
    assert.has_no.errors(function() never_used:close() end)
    assert.has_no.errors(function() never_used:close() end)
  end)

  it("use after close raises 'the cache is closed' naming the operation, and writes nothing", function()
    local cache, ns = H.cache()
    cache.k = 1
    local keys = H.keys_of(ns)
    cache:close()
    local ops = {
      { "get_record", function() return cache:get_record("k") end },
      { "get_record", function() return cache.k end },
      { "set_record", function() cache:set_record("k", 2) end },
      { "set_record", function() cache.k = 2 end },
      { "delete_record", function() return cache:delete_record("k") end },
      { "delete_record", function() cache.k = nil end },
      { "exists", function() return cache:exists("k") end },
      { "ttl", function() return cache:ttl("k") end },
      { "update", function() return cache:update("k", { a = 1 }) end },
      { "add", function() return cache:add { k = 2 } end },
      { "bulk_delete", function() return cache:bulk_delete { "k" } end },
      { "get_all_records", function() return cache:get_all_records() end },
      { "records", function() return cache:records() end },
      { "records", function() for _ in H.pairs(cache) do end end },
      { "cleanup_inactive_records", function() return cache:cleanup_inactive_records(0) end },
    }
    local wrong = {}
    for _, op in ipairs(ops) do
      local err = H.error_of(op[2])
      if not err:match("^rcache_live: " .. op[1] .. ": the cache is closed$") then
        wrong[#wrong + 1] = op[1] .. " -> " .. err
      end
    end
    assert.same(keys, H.keys_of(ns))
    assert.same({}, wrong)
  end)

  it("garbage collection closes the connection", function()
    collectgarbage("collect")
    collectgarbage("collect")
    local before = connections()
    local function make_and_drop()
      local caches = {}
      for i = 1, 20 do
        caches[i] = H.cache()
        caches[i].k = i
        assert.equal(i, caches[i].k)
      end
      assert.equal(before + 20, connections())
    end
    make_and_drop()
    collectgarbage("collect")
    collectgarbage("collect")
    assert.equal(before, settle_at(before))
  end)

  it("close() closes the connection at once", function()
    collectgarbage("collect")
    collectgarbage("collect")
    local before = connections()
    local cache = H.cache()
    cache.k = 1
    assert.equal(before + 1, connections())
    cache:close()
    assert.equal(before, settle_at(before))
  end)

  it("tostring names the namespace and the address, never a password", function()
    local ns = H.namespace()
    local cache = rcache.new { socket = H.socket, namespace = ns, password = "hunter2-secret" }
    local text = tostring(cache)
    assert.matches('^rcache_live cache %(namespace "' .. lit(ns) .. '", unix:' .. lit(H.socket) .. "%): 0?x?%x+$", text)
    assert.is_nil(text:find("hunter2", 1, true))
    local tcp = rcache.new { url = ("redis://bob:hunter2-secret@127.0.0.1:%d/0"):format(H.port), namespace = ns }
    text = tostring(tcp)
    assert.matches('^rcache_live cache %(namespace "' .. lit(ns) .. '", 127%.0%.0%.1:' .. H.port .. "%): ", text)
    assert.is_nil(text:find("hunter2", 1, true))
    assert.not_equal(tostring(cache), tostring(tcp))
    cache:close()
    tcp:close()
    assert.matches("^rcache_live cache %(closed%): ", tostring(cache))
    assert.is_nil(tostring(cache):find("hunter2", 1, true))
  end)
end)
