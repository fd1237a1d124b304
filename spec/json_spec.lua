-- Exact JSON codec (src/json.c) through rcache_live.json.
-- Runs on Lua 5.1/LuaJIT/5.2 (no integer subtype) and 5.3/5.4.

local json = require "rcache_live.json"

local HAVE_INTEGERS = math.type ~= nil
local loadstring = loadstring or load

-- Bit-for-bit equality of two floats (keeps -0.0 apart from 0.0).
local function same_float(x, y)
  if string.pack then return string.pack("<d", x) == string.pack("<d", y) end
  return x == y and 1 / x == 1 / y
end

-- The error raised by f(...), which must fail.
local function error_of(f, ...)
  local ok, err = pcall(f, ...)
  assert.is_false(ok, "expected an error")
  assert.is_string(err)
  return err
end

local function assert_encode_error(cause_pattern, v)
  assert.matches("^rcache_live%.json: encode: " .. cause_pattern .. "$", error_of(json.encode, v))
end

local function assert_decode_error(cause_pattern, s)
  assert.matches("^rcache_live%.json: decode: " .. cause_pattern .. "$", error_of(json.decode, s))
end

local function array(t) return setmetatable(t, json.array_mt) end

-- n nested arrays around the innermost table inner (default {1}).
local function nested_arrays(n, inner)
  local t = inner or { 1 }
  for _ = 2, n do t = { t } end
  return t
end

local FLOATS = {
  0.1, 1 / 3, 2.0, 5e-324, 1.7976931348623157e308, -0.0, 1e21,
  123456789012345680000.0, -2.5, 1e-7, 2 ^ 53, 2 ^ 63, 0.0,
}

describe("rcache_live.json", function()
  describe("module", function()
    it("exports encode, decode, null and array_mt", function()
      assert.is_function(json.encode)
      assert.is_function(json.decode)
      assert.equal("userdata", type(json.null))
      assert.is_table(json.array_mt)
      assert.equal("array", rawget(json.array_mt, "__jsontype"))
    end)

    local has_cjson, cjson = pcall(require, "cjson")
    if has_cjson then
      it("uses the same null as lua-cjson", function()
        assert.equal(cjson.null, json.null)
      end)
    else
      pending("uses the same null as lua-cjson (lua-cjson not installed)")
    end
  end)

  describe("scalars", function()
    it("encodes booleans and null", function()
      assert.equal("true", json.encode(true))
      assert.equal("false", json.encode(false))
      assert.equal("null", json.encode(json.null))
      assert.equal(true, json.decode("true"))
      assert.equal(false, json.decode("false"))
      assert.equal(json.null, json.decode("null"))
    end)

    it("refuses nil at top level", function()
      assert.equal("rcache_live.json: encode: cannot encode nil", error_of(json.encode, nil))
    end)

    it("refuses NaN and infinities", function()
      assert_encode_error("cannot encode NaN or infinity", 0 / 0)
      assert_encode_error("cannot encode NaN or infinity", math.huge)
      assert_encode_error("cannot encode NaN or infinity", -math.huge)
      assert_encode_error("cannot encode NaN or infinity %(at %[2%]%)", { 1, 0 / 0 })
    end)

    it("refuses functions, threads and userdata with the path", function()
      assert_encode_error("cannot encode a function", print)
      assert_encode_error("cannot encode a function %(at %.user%.tags%[3%]%)",
        { user = { tags = { "a", "b", print } } })
      assert_encode_error("cannot encode a thread %(at %.co%)", { co = coroutine.create(function() end) })
      assert_encode_error("cannot encode a userdata.*%(at %[1%]%)", { io.stdout })
      assert_encode_error("cannot encode a function %(at %[\"my key\"%]%[1%]%)", { ["my key"] = { print } })
    end)
  end)

  describe("strings", function()
    it("round-trips control characters, quotes and backslashes", function()
      local s = "\0\r\n\"\\"
      assert.equal('"\\u0000\\r\\n\\"\\\\"', json.encode(s))
      assert.equal(s, json.decode(json.encode(s)))
    end)

    it("escapes each control byte as \\b \\t \\n \\f \\r or \\u00xx, and nothing else", function()
      local short = { [8] = "\\b", [9] = "\\t", [10] = "\\n", [12] = "\\f", [13] = "\\r" }
      for b = 0, 255 do
        local c = string.char(b)
        local want = short[b] or (b < 32 and ("\\u%04x"):format(b)) or (c == '"' and '\\"')
          or (c == "\\" and "\\\\") or c
        assert.equal('"x' .. want .. 'y' .. want .. '"', json.encode("x" .. c .. "y" .. c))
      end
    end)

    it("passes every byte through, also invalid UTF-8", function()
      local bytes = {}
      for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
      local all = table.concat(bytes)
      assert.equal(all, json.decode(json.encode(all)))
      local high = {}
      for i = 0x80, 0xff do high[#high + 1] = string.char(i) end
      local raw = table.concat(high)
      assert.equal('"' .. raw .. '"', json.encode(raw)) -- not escaped, not validated
      assert.equal(raw, json.decode(json.encode(raw)))
      assert.equal("\255\254", json.decode('"\255\254"'))
    end)

    it("does not escape '/' and writes compact output", function()
      assert.equal('"a/b"', json.encode("a/b"))
      assert.equal('{"a":[1,"x",true]}', json.encode({ a = { 1, "x", true } }))
    end)

    it("decodes JSON escapes", function()
      assert.equal("\195\169/\240\159\152\128\0",
        json.decode('"\\u00e9\\/\\ud83d\\ude00\\u0000"'))
    end)
  end)

  describe("integers", function()
    if HAVE_INTEGERS then
      it("round-trip exactly, including the extremes", function()
        for _, i in ipairs({ math.maxinteger, math.mininteger, 1700000000123456789, 0, -1,
                             9007199254740993, -9007199254740993 }) do
          local text = json.encode(i)
          assert.equal(string.format("%d", i), text)
          local back = json.decode(text)
          assert.equal("integer", math.type(back))
          assert.equal(i, back)
        end
        assert.equal("9223372036854775807", json.encode(math.maxinteger))
        assert.equal("-9223372036854775808", json.encode(math.mininteger))
      end)

      it("round-trip random 64-bit integers", function()
        math.randomseed(4242)
        for _ = 1, 2000 do
          local bytes = {}
          for k = 1, 8 do bytes[k] = math.random(0, 255) end
          local i = string.unpack("<i8", string.char(table.unpack(bytes)))
          local back = json.decode(json.encode({ i }))[1]
          assert.equal("integer", math.type(back))
          assert.equal(i, back)
        end
      end)

      it("decode to floats beyond int64, like Lua's lexer", function()
        local x = json.decode("99999999999999999999")
        assert.equal("float", math.type(x))
        assert.is_true(same_float(loadstring("return 99999999999999999999")(), x))
        assert.equal("float", math.type(json.decode("9223372036854775808")))
        assert.is_true(same_float(2 ^ 63, json.decode("9223372036854775808")))
        assert.equal("float", math.type(json.decode("-9223372036854775809")))
        assert.equal(math.mininteger, json.decode("-9223372036854775808"))
        assert.equal("integer", math.type(json.decode("-9223372036854775808")))
        assert.equal("integer", math.type(json.decode("-0")))
      end)
    else
      it("encode integral values up to 2^53 as integer text", function()
        assert.equal("3", json.encode(3))
        assert.equal("-42", json.encode(-42))
        assert.equal("9007199254740991", json.encode(2 ^ 53 - 1))
        assert.equal("9007199254740992", json.encode(2 ^ 53)) -- what decode reads back exactly
        assert.equal(2 ^ 53, json.decode("9007199254740992"))
        -- the integer token -0 is the integer 0, not -0.0 (as on 5.3+)
        assert.equal(math.huge, 1 / json.decode("-0"))
        assert.equal("0", json.encode(json.decode("-0")))
      end)

      it("refuse integer tokens beyond 2^53", function()
        assert_decode_error("integer 9007199254740993 cannot be represented exactly by this Lua %(beyond 2%^53%)",
          "9007199254740993")
        assert_decode_error("integer %-99999999999999999999 cannot be represented exactly by this Lua %(beyond 2%^53%)",
          "[-99999999999999999999]")
      end)
    end
  end)

  describe("floats", function()
    it("round-trip bit for bit", function()
      for _, x in ipairs(FLOATS) do
        local text = json.encode(x)
        -- floats always look like floats; 5.1/5.2 write integral values up to 2^53 as integers
        if HAVE_INTEGERS or x ~= math.floor(x) or math.abs(x) > 2 ^ 53 or 1 / x < 0 then
          assert.matches("[.e]", text)
        else
          assert.matches("^%-?%d+$", text)
        end
        local back = json.decode(text)
        assert.is_true(same_float(x, back), text)
        if HAVE_INTEGERS then assert.equal("float", math.type(back), text) end
      end
    end)

    it("use the shortest of 15, 16 or 17 digits", function()
      assert.equal("0.1", json.encode(0.1))
      assert.equal("0.3333333333333333", json.encode(1 / 3))
      assert.equal("-0.0", json.encode(-0.0))
      assert.equal("1e+21", json.encode(1e21))
      assert.equal("1.7976931348623157e+308", json.encode(1.7976931348623157e308))
      assert.equal("1.2345678901234568e+20", json.encode(123456789012345680000.0))
      if HAVE_INTEGERS then assert.equal("2.0", json.encode(2.0)) end
    end)

    it("decode '.' and exponent tokens as floats, always", function()
      for _, text in ipairs({ "2.0", "1e2", "1E2", "-0.0", "0.5", "1e-400" }) do
        local x = json.decode(text)
        assert.equal("number", type(x))
        if HAVE_INTEGERS then assert.equal("float", math.type(x), text) end
      end
      assert.equal(100, json.decode("1e2"))
      assert.is_true(same_float(-0.0, json.decode("-0.0")))
    end)

    if string.pack then
      it("round-trip random bit patterns", function()
        math.randomseed(1234)
        for _ = 1, 5000 do
          local bytes = {}
          for k = 1, 8 do bytes[k] = math.random(0, 255) end
          local x = string.unpack("<d", string.char(table.unpack(bytes)))
          if x == x and x ~= math.huge and x ~= -math.huge then
            local back = json.decode(json.encode({ x }))[1]
            assert.is_true(same_float(x, back), string.format("%a", x))
          end
        end
      end)
    end
  end)

  -- LuaJIT formats numbers itself, so string.format cannot show the C locale.
  local FORMAT_IS_LOCALIZED = type(jit) ~= "table"

  -- A locale whose decimal point is a comma, or nil; leaves LC_NUMERIC as it was.
  local function find_comma_locale()
    local old = os.setlocale(nil, "numeric")
    local found
    for _, name in ipairs({ "de_DE.UTF-8", "de_DE.utf8", "de_DE", "fr_FR.UTF-8", "fr_FR.utf8", "nl_NL.UTF-8" }) do
      if os.setlocale(name, "numeric") and
         (not FORMAT_IS_LOCALIZED or string.format("%.1f", 0.5) == "0,5") then
        found = name
        break
      end
    end
    os.setlocale(old, "numeric")
    return found
  end

  describe("numbers under LC_NUMERIC with a comma", function()
    local comma = find_comma_locale()
    if not comma then
      pending("no comma-decimal locale could be set (de_DE.UTF-8, fr_FR.UTF-8, ...)")
      return
    end

    it("are written and read with '.' (" .. comma .. ")", function()
      local old = os.setlocale(nil, "numeric")
      finally(function() os.setlocale(old, "numeric") end)
      assert.truthy(os.setlocale(comma, "numeric"))
      if FORMAT_IS_LOCALIZED then
        assert.equal("0,5", string.format("%.1f", 0.5)) -- the locale is in effect
      end
      assert.equal("0.5", json.encode(0.5))
      assert.equal("-1.25e-07", json.encode(-1.25e-7))
      assert.equal("0.3333333333333333", json.encode(1 / 3))
      assert.equal(HAVE_INTEGERS and "[1.5,2500.0]" or "[1.5,2500]", json.encode({ 1.5, 2.5e3 }))
      assert.is_true(same_float(0.25, json.decode("0.25")))
      assert.is_true(same_float(1.5, json.decode("[1.5]")[1]))
      for _, x in ipairs(FLOATS) do
        assert.is_true(same_float(x, json.decode(json.encode(x))))
      end
    end)
  end)

  describe("tables", function()
    it("tell {} from the marked empty array []", function()
      assert.equal("{}", json.encode({}))
      assert.equal("[]", json.encode(array({})))
      assert.equal("[]", json.encode(setmetatable({}, { __jsontype = "array" })))
      local a, o = json.decode("[]"), json.decode("{}")
      assert.equal(json.array_mt, getmetatable(a))
      assert.is_nil(getmetatable(o))
      assert.equal("[]", json.encode(a))
      assert.equal("{}", json.encode(o))
    end)

    it("encode sequences as arrays and string keys as objects", function()
      assert.equal("[1,2,3]", json.encode({ 1, 2, 3 }))
      assert.equal('{"a":1}', json.encode({ a = 1 }))
      assert.equal('[[],{},[{"k":"v"}]]', json.encode({ array({}), {}, { { k = "v" } } }))
    end)

    it("keep null in arrays and objects", function()
      assert.equal("[1,null,3]", json.encode({ 1, json.null, 3 }))
      local t = json.decode("[1,null,3]")
      assert.equal(1, t[1])
      assert.equal(json.null, t[2])
      assert.equal(3, t[3])
      assert.equal("[1,null,3]", json.encode(t))
      assert.equal('{"a":null}', json.encode({ a = json.null }))
      assert.equal(json.null, json.decode('{"a":null}').a)
    end)

    it("give decoded arrays the array metatable and objects none", function()
      local v = json.decode('{"list":[{"x":[]}],"obj":{"y":[1]}}')
      assert.is_nil(getmetatable(v))
      assert.equal(json.array_mt, getmetatable(v.list))
      assert.is_nil(getmetatable(v.list[1]))
      assert.equal(json.array_mt, getmetatable(v.list[1].x))
      assert.is_nil(getmetatable(v.obj))
      assert.equal(json.array_mt, getmetatable(v.obj.y))
    end)

    it("round-trip a record", function()
      local rec = {
        id = 42, name = "Zoë \"quoted\" / \0 end", ok = true, no = false,
        score = 0.5, gone = json.null, tags = { "a", "b" }, empty = array({}),
        nested = { x = { y = { z = { -1, 2.5, "s" } } } },
      }
      local back = json.decode(json.encode(rec))
      assert.same(rec, back)
      assert.equal(json.array_mt, getmetatable(back.tags))
      assert.equal(json.array_mt, getmetatable(back.empty))
      assert.is_nil(getmetatable(back.nested.x))
      assert.equal("[]", json.encode(back.empty))
    end)

    it("read only __jsontype, with rawget, and run no metamethods", function()
      local boom = function() error("metamethod called") end
      local t = setmetatable({ 1, 2 }, {
        __index = boom, __newindex = boom, __len = boom, __pairs = boom, __ipairs = boom,
        __tostring = boom, __eq = boom, __lt = boom, __le = boom, __concat = boom,
      })
      assert.equal("[1,2]", json.encode(t))
      assert.equal('{"k":"v"}', json.encode(setmetatable({ k = "v" }, { __index = boom, __pairs = boom })))
      -- a marker reachable only through __index does not count
      assert.equal("{}", json.encode(setmetatable({}, { __index = { __jsontype = "array" } })))
      assert.equal("{}", json.encode(setmetatable({}, { __jsontype = "object" })))
    end)

    it("encode a shared (not cyclic) table twice", function()
      local s = { 1 }
      assert.equal("[[1],[1]]", json.encode({ s, s }))
    end)

    it("refuse sparse arrays", function()
      assert_encode_error("sparse array: key 5 but only 3 elements", { [1] = 1, [2] = 2, [5] = 5 })
      assert_encode_error("sparse array: key 3 but only 2 elements %(at %.a%)", { a = { 1, nil, 3 } })
      assert_encode_error("array key 0 out of range.*", { [0] = "a", [1] = "b" })
      assert_encode_error("array key %-1 out of range.*", { [-1] = "a" })
    end)

    it("refuse mixed and odd keys", function()
      assert_encode_error("table mixes array and object keys", { 1, 2, x = 3 })
      assert_encode_error("table mixes array and object keys %(at %.t%)", { t = { x = 1, [10] = 2 } })
      assert_encode_error("cannot use a boolean as an object key", { [true] = 1 })
      assert_encode_error("cannot use a table as an object key", { [{}] = 1 })
      assert_encode_error("cannot use the number 1%.5 as a key.*", { [1.5] = 1 })
      assert_encode_error("cannot use the number 1%.5 as a key.*", { a = 1, [1.5] = 2 })
      assert_encode_error("table marked as array has a string key", array({ a = 1 }))
    end)

    it("refuse cyclic tables with the path of the cycle", function()
      local t = {}
      t.a = { b = t }
      assert_encode_error("cyclic table %(at %.a%.b%)", t)
      local c = {}
      c[1] = c
      assert_encode_error("cyclic table %(at %[1%]%)", c)
      local d = { x = {} }
      d.x.y = d.x
      assert_encode_error("cyclic table %(at %.x%.y%)", d)
    end)

    it("accept 128 levels of nesting and refuse 129", function()
      local deep = string.rep("[", 128) .. "1" .. string.rep("]", 128)
      assert.equal(deep, json.encode(nested_arrays(128)))
      assert_encode_error("nesting deeper than 128 levels %(at %[1%].*%)", nested_arrays(129))
      assert_encode_error("nesting deeper than 128 levels .*", nested_arrays(128, { {} }))
      -- several containers at levels 127 and 128
      local inner = { { 1, "two", json.null }, { k = false }, array({}), 3 }
      assert.equal(string.rep("[", 126) .. '[[1,"two",null],{"k":false},[],3]' .. string.rep("]", 126),
        json.encode(nested_arrays(127, inner)))
      local obj = { v = 1 }
      for _ = 2, 128 do obj = { o = obj } end
      assert.equal(string.rep('{"o":', 127) .. '{"v":1}' .. string.rep("}", 127), json.encode(obj))
      assert.same(obj, json.decode(json.encode(obj)))
    end)

    it("decode 128 levels of nesting and refuse 129", function()
      local ok128 = string.rep("[", 128) .. string.rep("]", 128)
      assert.equal(ok128, json.encode(json.decode(ok128)))
      assert_decode_error("nesting deeper than 128 levels.*", string.rep("[", 129) .. string.rep("]", 129))
      assert_decode_error("nesting deeper than 128 levels.*", string.rep('{"a":', 129) .. "1" .. string.rep("}", 129))
    end)
  end)

  describe("calls within calls", function()
    -- A finalizer may run inside an encode or decode (whenever Lua
    -- allocates) and use the codec itself: each call must keep its own
    -- state, and both results must be right.
    it("stay apart when a finalizer encodes and decodes mid-call", function()
      local inner = {}
      local function finalizer()
        inner[#inner + 1] = json.encode({ inner = { 1, 2, "three" } })
        inner[#inner + 1] = json.decode('{"k":[true,null]}')
      end
      -- garbage with a finalizer: 5.1 and LuaJIT run __gc on userdata only
      local function garbage()
        if newproxy then
          getmetatable(newproxy(true)).__gc = finalizer
        else
          setmetatable({}, { __gc = finalizer })
        end
      end
      local doc = {}
      for i = 1, 300 do doc[i] = { id = i, name = ("name %d"):format(i), list = { i, i + 0.5 } } end
      local text = json.encode(doc)
      for _ = 1, 20 do
        for _ = 1, 200 do garbage() end
        assert.equal(text, json.encode(doc))
        for _ = 1, 200 do garbage() end
        assert.same(doc, json.decode(text))
      end
      collectgarbage()
      assert.is_true(#inner > 0, "no finalizer ran")
      for i = 1, #inner, 2 do
        assert.equal('{"inner":[1,2,"three"]}', inner[i])
        if inner[i + 1] then assert.same({ k = { true, json.null } }, inner[i + 1]) end
      end
    end)

    it("work after a huge document, and after a failed one", function()
      local big = string.rep("x", 200000)
      assert.equal('"' .. big .. '"', json.encode(big))
      assert.equal('{"a":1}', json.encode({ a = 1 }))
      error_of(json.encode, { a = { b = print } })
      assert.equal('[1,"x"]', json.encode({ 1, "x" }))
      error_of(json.decode, '{"a":[1,2')
      assert.same({ a = { 1, 2 } }, json.decode('{"a":[1,2]}'))
    end)
  end)

  describe("decode errors", function()
    it("report the byte and yajl's reason", function()
      assert_decode_error("invalid JSON at byte 6: trailing garbage", "[1,2]x")
      assert_decode_error("invalid JSON at byte 0: premature EOF", "")
      assert_decode_error("invalid JSON at byte 4: premature EOF", "[1,2")
    end)

    it("refuse invalid JSON and trailing garbage", function()
      for _, text in ipairs({ "   ", "[1 2]", "[1,]", '{"a":1,}', '{"a" 1}', "{a:1}", "tru", "nul", "01",
                              "'x'", "NaN", "Infinity", "-", "1.", "1e", "1 2", "[1] [2]", "\"a\nb\"",
                              "[1]\0", "/* c */ 1" }) do
        assert_decode_error("invalid JSON at byte %d+: .+", text)
      end
    end)

    it("wants a string", function()
      assert.matches("bad argument #1", error_of(json.decode, 42))
      assert.matches("bad argument #1", error_of(json.decode))
    end)
  end)

  describe("interoperability with lua-cjson", function()
    local ok, cjson = pcall(require, "cjson")
    if not ok then
      pending("lua-cjson not installed")
      return
    end

    local record = {
      id = 1001, name = "Zoë / \"q\" \\ \t", active = true, deleted = false, ratio = 0.25,
      parent = json.null, tags = { "x", "y", "z" }, matrix = { { 1, 2 }, { 3, 4 } },
      profile = { city = "Köln", zip = "50667", geo = { lat = 50.9375, lon = 6.9603 } },
    }

    it("cjson decodes what we encode", function()
      assert.same(record, cjson.decode(json.encode(record)))
    end)

    it("we decode what cjson encodes", function()
      assert.same(record, json.decode(cjson.encode(record)))
      assert.equal("a/b", json.decode(cjson.encode("a/b"))) -- cjson writes "a\/b"
    end)
  end)
end)
