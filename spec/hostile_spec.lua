-- Hostile input: whatever a caller passes, or another client leaves under our
-- keys, ends in a clear error or an exact round trip; never a crash, a hang,
-- or a command injected into the protocol. Each test has a namespace of its
-- own and checks what reached Redis with H.raw / H.keys_of / H.monitor.
-- The big cases (64 MB values, 1,000,000-entry tables) are timed: the whole
-- file stays well under 30 s.
local rcache = require "rcache_live"
local H = require "support.helpers"

local lit = H.lit

local clock = H.clock

-- Runs fn and returns the seconds it took, then its results.
local function timed(fn)
  local t0 = clock()
  local r = H.pack(fn())
  return clock() - t0, H.unpack(r, 1, r.n)
end

-- Fails unless the elapsed time stays under a generous bound (catches a
-- quadratic path or a hang that the timeout would only report much later).
local function bounded(seconds, limit, what)
  assert.is_true(seconds < limit, ("%s took %.2f s (limit %d s)"):format(what, seconds, limit))
end

-- Runs fn with the garbage collector stopped (a 1,000,000-entry table makes
-- the incremental collector walk it over and over), restarting it after.
local function without_gc(fn)
  collectgarbage("stop")
  local ok, err = pcall(fn)
  collectgarbage("restart")
  if not ok then error(err, 0) end
end

-- Exact equality: same types, integers vs floats kept apart (without an
-- integer subtype: as the codec tells them apart), floats bit for bit (-0.0
-- is not 0.0), strings byte for byte, tables by raw contents.
-- Returns true, or false and where they differ.
local function exact(a, b, path)
  path = path or "value"
  if type(a) ~= type(b) then
    return false, ("%s: %s vs %s"):format(path, type(a), type(b))
  end
  if type(a) == "number" then
    if H.number_type(a) ~= H.number_type(b) then
      return false, ("%s: %s vs %s"):format(path, H.number_type(a), H.number_type(b))
    end
    if H.number_type(a) == "float" then
      if not H.same_float(a, b) then
        return false, ("%s: %.17g vs %.17g"):format(path, a, b)
      end
    elseif a ~= b then
      return false, ("%s: %d vs %d"):format(path, a, b)
    end
    return true
  end
  if type(a) ~= "table" then
    if rawequal(a, b) then return true end
    return false, path .. " differs"
  end
  for k, v in next, a do
    local ok, where = exact(v, rawget(b, k), path .. "[" .. tostring(k):sub(1, 20) .. "]")
    if not ok then return false, where end
  end
  for k in next, b do
    if rawget(a, k) == nil then return false, path .. ": extra key " .. tostring(k):sub(1, 20) end
  end
  return true
end

local function assert_exact(expected, actual, what)
  local ok, where = exact(expected, actual)
  assert(ok, (what and what .. ": " or "") .. tostring(where))
end

-- The key as the C core quotes it in messages: in double quotes, '"' and
-- '\' escaped, control bytes as \xNN, at most 64 bytes then "...".
local function quoted(key)
  local shown = key:sub(1, 64):gsub('[%z\1-\31\127"\\]', function(c)
    if c == '"' or c == "\\" then return "\\" .. c end
    return ("\\x%02x"):format(c:byte())
  end)
  return '"' .. shown .. '"' .. (#key > 64 and "..." or "")
end

-- The message names the record: the core's quoting or Lua's %q.
local function assert_names_key(err, key)
  assert(err:find(quoted(key), 1, true) or err:find(("%q"):format(key), 1, true),
    ("message does not name the key %q: %s"):format(key:sub(1, 40), err:sub(1, 300)))
end

local function record_key(cache, key) return H.record_key(cache, key) end
local function raw_get(cache, key) return H.raw("GET", record_key(cache, key)) end
local function raw_set(cache, key, text) return H.raw("SET", record_key(cache, key), text) end

-- The cache still works for other keys: a write and a read of a fresh key.
local function still_works(cache)
  local key = "still-works-" .. tostring(clock())
  cache:set_record(key, { ok = true, n = 1.5 })
  assert.same({ ok = true, n = 1.5 }, cache:get_record(key))
  assert.is_true(cache:delete_record(key))
end

-- The sorted list of a table's keys.
local function keys_of(t)
  local ks = {}
  for k in pairs(t) do ks[#ks + 1] = k end
  table.sort(ks)
  return ks
end

-- Strings that look like the Redis protocol, glob patterns or format
-- directives, or hold bytes that break naive code.
local INJECTION = "k\r\nSET injected 1\r\n"
local ODD_STRINGS = {
  INJECTION,
  "*3\r\n$3\r\nSET\r\n$8\r\ninjected\r\n$1\r\n1\r\n",
  "\r\n", "\n", "\r", "$-1\r\n", "-ERR injected\r\n", "+OK\r\n", ":1\r\n", "*-1\r\n", "_\r\n",
  "a\0b", "\0", "\0\0\0", "*", "?", "[", "]", "\\", "{}", "{", "}", "{00}", "$", "%s%n%d%%", "'\"`",
  "", " ", "\t", "\27[31m", "\255\254", "é☃", "ns:{00}:r:x", "EVAL \"return 1\" 0",
}

describe("protocol-looking keys and values", function()
  local cache, ns
  before_each(function() cache, ns = H.cache() end)
  after_each(function() cache:close() end)

  it("a key with CR/LF and a command round-trips and injects nothing (MONITOR)", function()
    -- connect (and load scripts) outside MONITOR: this cache and H.raw's
    assert.is_false(cache:exists("warm-up"))
    H.raw("PING")
    local lines, value = H.monitor(function()
      cache:set_record(INJECTION, { v = 1 })
      local v = cache:get_record(INJECTION)
      assert.is_true(cache:exists(INJECTION))
      return v
    end)
    assert.same({ v = 1 }, value)
    -- one command per operation, none of them a SET of its own
    assert.equal(3, #lines, table.concat(lines, "\n"))
    assert.same({ "EVALSHA", "EVALSHA", "EXISTS" },
      { H.command_name(lines[1]), H.command_name(lines[2]), H.command_name(lines[3]) })
    assert.equal(0, H.raw("EXISTS", "injected"))
    -- the only keys with "injected" in their name are record keys
    for _, k in ipairs(H.raw("KEYS", "*injected*")) do
      assert.matches("^t%x+%-ns%-%d+:{%x%x}:r:k\r\nSET injected 1\r\n$", k)
    end
    assert.equal('{"v":1}', raw_get(cache, INJECTION))
  end)

  it("the same text as a value round-trips and injects nothing (MONITOR)", function()
    assert.is_false(cache:exists("warm-up"))
    H.raw("PING")
    local lines, value = H.monitor(function()
      cache:set_record("k", INJECTION)
      cache:set_record("t", { [INJECTION] = INJECTION, list = { INJECTION } })
      return cache:get_record("k")
    end)
    assert.equal(INJECTION, value)
    assert.same({ [INJECTION] = INJECTION, list = { INJECTION } }, cache:get_record("t"))
    assert.equal(3, #lines, table.concat(lines, "\n"))
    for _, line in ipairs(lines) do assert.equal("EVALSHA", H.command_name(line)) end
    assert.equal(0, H.raw("EXISTS", "injected"))
    assert.equal('"k\\r\\nSET injected 1\\r\\n"', raw_get(cache, "k"))
  end)

  it("every odd key works with every operation, and only its own record is touched", function()
    for i, key in ipairs(ODD_STRINGS) do
      local what = ("key #%d %q"):format(i, key)
      cache[key] = { i = i }
      assert.same({ i = i }, cache[key], what)
      assert.is_true(cache:exists(key), what)
      local ttl = cache:ttl(key)
      assert.is_true(ttl > 3599 and ttl <= 3600, what)
      assert.same({ i = i, u = true }, cache:update(key, { u = true }), what)
      assert.same({ [key] = { i = i, u = true } }, cache:get_all_records(), what)
      local seen = {}
      for k, v in cache:records() do seen[k] = v end
      assert.same({ [key] = { i = i, u = true } }, seen, what)
      assert.equal(1, cache:bulk_delete { key }, what)
      assert.is_nil(cache[key], what)
      assert.equal(1, cache:add { [key] = key }, what)
      assert.equal(key, cache:get_record(key), what)
      -- a bad record under the key: the messages name it printably
      raw_set(cache, key, "{")
      local err = H.error_of(cache.get_record, cache, key)
      assert.matches("^rcache_live: get_record: record .* is not valid JSON: ", err)
      assert_names_key(err, key)
      assert_names_key(H.error_of(cache.update, cache, key, { a = 1 }), key)
      assert.is_nil(err:find("[\r\n%z]"), "raw control bytes in: " .. err)
      assert.is_true(cache:delete_record(key), what)
      assert.same({}, H.keys_of(ns), what)
    end
    assert.equal(0, H.raw("EXISTS", "injected"))
  end)

  it("odd strings as values, object keys and array elements round-trip exactly", function()
    local object, list = {}, {}
    for i, s in ipairs(ODD_STRINGS) do
      object[s] = s
      list[i] = s
      cache:set_record(i, s)
    end
    cache.object = object
    cache.list = list
    assert_exact(object, cache.object, "object")
    assert_exact(list, cache.list, "list")
    for i, s in ipairs(ODD_STRINGS) do assert.equal(s, cache[i]) end
    assert.equal(0, H.raw("EXISTS", "injected"))
  end)

  it("integer keys at the edges are their decimal text", function()
    -- 64 bits; without an integer subtype, up to 2^53, where doubles stop being exact
    local edges = H.has_integers and { math.maxinteger, math.mininteger, 0, -1, 1, 9007199254740993, -9007199254740993 }
      or { 2 ^ 53, -2 ^ 53, 0, -1, 1, 2 ^ 53 - 1, -(2 ^ 53 - 1) }
    local expected = {}
    for i, k in ipairs(edges) do
      local text = ("%d"):format(k)
      cache[k] = i
      assert.equal(i, cache[text])
      assert.equal(record_key(cache, text), record_key(cache, k))
      assert.equal("string", H.raw("TYPE", record_key(cache, text)))
      expected[text] = i
    end
    assert.same(expected, cache:get_all_records())
    local min = ("%d"):format(edges[2])
    assert.same({ [min] = 2 }, cache:get_all_records(min))
    assert.equal(#edges, cache:bulk_delete(edges))
    assert.same({}, H.keys_of(ns))
  end)

  it("float, table, userdata, boolean and function keys are refused naming the type, nothing written", function()
    local ran = false
    local hostile = setmetatable({}, {
      __tostring = function() ran = true; error("__tostring ran") end,
      __index = function() ran = true; error("__index ran") end,
      __eq = function() ran = true; error("__eq ran") end,
      __name = "Hostile",
    })
    local cases = {
      { 0.5, "a float %(0%.5%)" },
      { 2.0 ^ 63, "a float %(9%.2233720368548e%+18%)" }, { math.huge, "a float %(inf%)" },
      { -math.huge, "a float %(%-inf%)" }, { 0 / 0, "a float %(%-?nan%)" },
      { hostile, "table" }, { {}, "table" }, { io.stdout, "userdata" }, { rcache.null, "userdata" },
      { true, "boolean" }, { print, "function" }, { coroutine.create(function() end), "thread" },
    }
    if H.has_integers then -- without the subtype these are the integers 1 and 0
      cases[#cases + 1] = { 1.0, "a float %(1%.0%)" }
      cases[#cases + 1] = { -0.0, "a float %(%-0%.0%)" }
    else
      cases[#cases + 1] = { 2 ^ 53 + 2, "a float %(9%.007199254741e%+15%)" }
    end
    for _, case in ipairs(cases) do
      local key, want = case[1], case[2]
      local tail = want:sub(1, 7) == "a float" and want or lit(want)
      for op, call in pairs {
        get_record = function() return cache:get_record(key) end,
        set_record = function() cache:set_record(key, 1) end,
        delete_record = function() cache[key] = nil end,
        exists = function() return cache:exists(key) end,
        add = H.number_type(key) ~= "float" and function() return cache:add { [key] = 1 } end or nil,
        update = function() return cache:update(key, { a = 1 }) end,
        bulk_delete = function() return cache:bulk_delete { key } end,
      } do
        assert.matches("^rcache_live: " .. op .. ": key must be a string or an integer, got " .. tail .. "$",
          H.error_of(call))
      end
    end
    assert.is_false(ran)
    assert.same({}, H.keys_of(ns))
    still_works(cache)
  end)
end)

describe("1 MB keys", function()
  local cache, ns
  before_each(function() cache, ns = H.cache() end)
  after_each(function() cache:close() end)

  -- 1 MiB holding every byte value (NUL, CR, LF, '*', '[', '\', ...) 4096 times
  local every_byte = {}
  for b = 0, 255 do every_byte[#every_byte + 1] = string.char(b) end
  local BIG_KEY = table.concat(every_byte):rep(4096)
  local PLAIN_KEY = ("k"):rep(1048576) -- 1 MiB

  it("set, get, exists, ttl, update, list and delete", function()
    for _, key in ipairs { PLAIN_KEY, BIG_KEY } do
      assert.equal(1048576, #key)
      local seconds = timed(function()
        cache[key] = { v = 1 }
        assert.same({ v = 1 }, cache[key])
        assert.is_true(cache:exists(key))
        assert.is_true(cache:ttl(key) > 3599)
        assert.same({ v = 1, w = 2 }, cache:update(key, { w = 2 }))
        local all = cache:get_all_records()
        assert.same({ key }, keys_of(all))
        assert.same({ v = 1, w = 2 }, all[key])
        assert.is_true(cache:delete_record(key))
        assert.is_false(cache:exists(key))
        assert.same({}, H.keys_of(ns))
      end)
      bounded(seconds, 10, "1 MB key operations")
    end
  end)

  it("a 1 MB key is listed by itself as a pattern (no glob characters in it)", function()
    cache[PLAIN_KEY] = 1
    cache[PLAIN_KEY .. "x"] = 2
    cache.short = 3
    assert.same({ [PLAIN_KEY] = 1 }, cache:get_all_records(PLAIN_KEY))
    assert.same({ [PLAIN_KEY] = 1, [PLAIN_KEY .. "x"] = 2 }, cache:get_all_records(PLAIN_KEY .. "*"))
  end)

  it("add and bulk_delete with 1 MB keys", function()
    assert.equal(2, cache:add { [PLAIN_KEY] = 1, [BIG_KEY] = 2 })
    assert.equal(1, cache[PLAIN_KEY])
    assert.equal(2, cache[BIG_KEY])
    assert.equal(2, cache:bulk_delete { PLAIN_KEY, BIG_KEY })
    assert.same({}, H.keys_of(ns))
  end)

  it("errors name a 1 MB key in a short message", function()
    -- read path (C core): quoted, cut at 64 bytes
    raw_set(cache, BIG_KEY, "{")
    local err = H.error_of(cache.get_record, cache, BIG_KEY)
    assert.matches("^rcache_live: get_record: record " .. lit(quoted(BIG_KEY)) .. " is not valid JSON: ", err)
    assert.is_true(#err < 400, "message of " .. #err .. " bytes")
    -- the Lua layer's messages (update over a non-object, a refused value in
    -- add, update over another type) must not carry the whole megabyte either
    raw_set(cache, BIG_KEY, "[1]")
    err = H.error_of(cache.update, cache, BIG_KEY, { a = 1 })
    assert.matches("^rcache_live: update: record .* is not a JSON object$", err)
    assert.is_true(#err < 400, "update message of " .. #err .. " bytes")
    err = H.error_of(cache.add, cache, { [BIG_KEY] = { f = print } })
    assert.matches("^rcache_live: add: record .*: cannot encode a function %(at %.f%)$", err)
    assert.is_true(#err < 400, "add message of " .. #err .. " bytes")
    H.raw("DEL", record_key(cache, BIG_KEY))
    H.raw("HSET", record_key(cache, BIG_KEY), "f", "v")
    err = H.error_of(cache.update, cache, BIG_KEY, { a = 1 })
    assert.matches("^rcache_live: update: record .*: WRONGTYPE ", err)
    assert.is_true(#err < 400, "update WRONGTYPE message of " .. #err .. " bytes")
  end)
end)

describe("big values", function()
  local cache, ns
  before_each(function() cache, ns = H.cache() end)
  after_each(function()
    cache:close()
    collectgarbage() -- the next test's timing starts without this one's garbage
  end)

  it("a 64 MB string round-trips exactly with the default timeout", function()
    local reps = math.floor(64 * 1048576 / 19) -- 64 MiB
    local s = ("0123456789abcdef\"\\/"):rep(reps)
    local write = timed(function() cache:set_record("big", s) end)
    local read, got = timed(function() return cache:get_record("big") end)
    assert.is_true(s == got, "the 64 MB string came back different")
    -- stored as one JSON string: quotes plus the escaped '"' and '\'
    assert.equal(#s + 2 + 2 * reps, H.raw("STRLEN", record_key(cache, "big")))
    bounded(write, 20, "writing 64 MB")
    bounded(read, 20, "reading 64 MB")
    assert.is_true(cache:delete_record("big"))
    still_works(cache)
  end)

  it("a 64 MB table of 1 MB strings round-trips exactly", function()
    local t = {}
    for i = 1, 64 do t[i] = string.char(64 + i % 26):rep(1048576 - 8) .. ("%08d"):format(i) end
    local write = timed(function() cache:set_record("big", t) end)
    local read, got = timed(function() return cache:get_record("big") end)
    assert.equal(64, #got)
    for i = 1, 64 do assert.is_true(t[i] == got[i], "element " .. i .. " differs") end
    bounded(write, 20, "writing a 64 MB table")
    bounded(read, 20, "reading a 64 MB table")
    assert.is_true(cache:delete_record("big"))
  end)

  it("a 1 MB string of every byte value (escapes included) round-trips exactly", function()
    local bytes = {}
    for b = 0, 255 do bytes[#bytes + 1] = string.char(b) end
    local s = table.concat(bytes):rep(4096)
    cache.bytes = s
    cache.obj = { [s] = s }
    assert.is_true(s == cache.bytes)
    local obj = cache.obj
    assert.is_true(obj[s] == s)
  end)

  it("1,000,000 array entries round-trip exactly", function()
    without_gc(function()
      local t = {}
      for i = 1, 1000000 do t[i] = i % 7 == 0 and i + 0.5 or i end
      local write = timed(function() cache.arr = t end)
      local read, got = timed(function() return cache.arr end)
      assert.equal(1000000, #got)
      for i = 1, 1000000 do
        if got[i] ~= t[i] or H.number_type(got[i]) ~= H.number_type(t[i]) then
          error(("element %d: %s vs %s"):format(i, tostring(t[i]), tostring(got[i])))
        end
      end
      assert.equal(getmetatable(got), rcache.array_mt)
      bounded(write + read, 15, "a 1,000,000-entry array")
    end)
  end)

  it("1,000,000 object entries round-trip exactly", function()
    without_gc(function()
      local t = {}
      for i = 1, 1000000 do t["k" .. i] = i end
      local write = timed(function() cache.obj = t end)
      local read, got = timed(function() return cache.obj end)
      local n = 0
      for k, v in next, got do
        n = n + 1
        if t[k] ~= v or H.number_type(v) ~= "integer" then error(("entry %s differs"):format(k)) end
      end
      assert.equal(1000000, n)
      bounded(write + read, 15, "a 1,000,000-entry object")
    end)
  end)
end)

describe("nesting", function()
  local cache, ns
  before_each(function() cache, ns = H.cache() end)
  after_each(function() cache:close() end)

  -- n arrays nested in each other: { { ... { 1 } } }
  local function nested(n)
    local t = { 1 }
    for _ = 2, n do t = { t } end
    return t
  end
  local function nested_object(n)
    local t = { v = 1 }
    for _ = 2, n do t = { a = t } end
    return t
  end

  it("10,000 levels are refused with a clear error and nothing written", function()
    local deep, deep_object = nested(10000), nested_object(10000)
    local msg = "nesting deeper than 128 levels %(at "
    assert.matches("^rcache_live: set_record: " .. msg .. "%[1%]%[1%]", H.error_of(cache.set_record, cache, "k", deep))
    assert.matches("^rcache_live: set_record: " .. msg .. "%.a%.a", H.error_of(function() cache.k = deep_object end))
    assert.matches("^rcache_live: add: record \"bad\": " .. msg,
      H.error_of(cache.add, cache, { good = 1, bad = deep, also = 2 }))
    -- update names the field, either as a path (.f[1]...) or by name
    local err = H.error_of(cache.update, cache, "k", { f = deep })
    assert.matches("^rcache_live: update: .*nesting deeper than 128 levels %(at ", err)
    assert.is_truthy(err:find('field "f"', 1, true) or err:find("(at .f[1]", 1, true), err)
    assert.same({}, H.keys_of(ns))
    still_works(cache)
  end)

  it("128 levels are stored, 129 are not", function()
    cache.ok = nested(128)
    assert_exact(nested(128), cache.ok)
    assert.matches("nesting deeper than 128 levels", H.error_of(cache.set_record, cache, "no", nested(129)))
    assert.is_false(cache:exists("no"))
  end)

  for _, case in ipairs {
    { "arrays", ("["):rep(10000) .. "1" .. ("]"):rep(10000) },
    { "objects", ('{"a":'):rep(10000) .. "1" .. ("}"):rep(10000) },
    { "unclosed arrays (1,000,000)", ("["):rep(1000000) },
  } do
    it("10,000-deep " .. case[1] .. " written by another client: an error naming the key", function()
      cache.good = { v = 1 }
      raw_set(cache, "deep", case[2])
      local want = 'record "deep" is not valid JSON: nesting deeper than 128 levels %(at byte %d+%)$'
      local seconds = timed(function()
        assert.matches("^rcache_live: get_record: " .. want, H.error_of(cache.get_record, cache, "deep"))
        assert.matches("^rcache_live: get_all_records: " .. want, H.error_of(cache.get_all_records, cache))
        assert.matches("^rcache_live: records: " .. want, H.error_of(function()
          for _ in cache:records() do end
        end))
        assert.matches("^rcache_live: update: " .. want, H.error_of(cache.update, cache, "deep", { a = 1 }))
      end)
      bounded(seconds, 5, "refusing deep JSON")
      assert.equal(case[2], raw_get(cache, "deep")) -- update wrote nothing
      assert.same({ v = 1 }, cache.good)
      cache.deep = { fixed = true } -- overwritten through the API
      assert.same({ fixed = true }, cache.deep)
      assert.is_true(cache:delete_record("deep"))
      assert.same({ good = { v = 1 } }, cache:get_all_records())
    end)
  end

  it("with codec = cjson, a deep record raises naming the key too", function()
    local ok, cjson = pcall(require, "cjson")
    assert.is_true(ok, "lua-cjson is a test dependency")
    local loose = H.cache { namespace = ns, codec = cjson.new() }
    raw_set(cache, "deep", ("["):rep(10000) .. ("]"):rep(10000))
    assert.matches('^rcache_live: get_record: record "deep" is not valid JSON: .',
      H.error_of(loose.get_record, loose, "deep"))
    assert.matches("^rcache_live: set_record: .", H.error_of(loose.set_record, loose, "k", nested(10000)))
    assert.is_false(cache:exists("k"))
    loose:close()
  end)
end)

describe("invalid UTF-8", function()
  local cache, ns
  before_each(function() cache, ns = H.cache() end)
  after_each(function() cache:close() end)

  local every_byte = {}
  for b = 0, 255 do every_byte[#every_byte + 1] = string.char(b) end
  local STRINGS = {
    table.concat(every_byte),
    "\192\128", "\193\191", "\224\128\128", "\224\159\191", "\240\128\128\128", -- overlong
    "\237\160\128", "\237\175\191", "\237\176\128", "\237\191\191",               -- lone surrogates
    "\237\160\189\237\184\128",                                                    -- a surrogate pair in UTF-8
    "\244\144\128\128", "\248\136\128\128\128", "\252\132\128\128\128\128",        -- beyond U+10FFFF
    "\128", "\191", "\254", "\255", "\226\130", "x\226", "\226\130x",             -- stray and cut sequences
  }

  it("values round-trip byte for byte", function()
    for i, s in ipairs(STRINGS) do
      cache:set_record(i, s)
      assert.equal(s, cache[i], ("string #%d"):format(i))
    end
    cache.all = STRINGS
    assert_exact(STRINGS, cache.all)
  end)

  it("object keys and user keys round-trip and are listed exactly", function()
    local object, expected = {}, {}
    for i, s in ipairs(STRINGS) do
      object[s] = i
      cache[s] = i
      expected[s] = i
    end
    cache.object = object
    assert_exact(object, cache.object)
    expected.object = object
    assert_exact(expected, cache:get_all_records())
    for i, s in ipairs(STRINGS) do assert.equal(i, cache[s]) end
    assert.equal(#STRINGS, cache:bulk_delete(STRINGS))
  end)
end)

describe("metatables on values", function()
  local cache, ns
  before_each(function() cache, ns = H.cache() end)
  after_each(function() cache:close() end)

  local EVENTS = { "__index", "__newindex", "__pairs", "__len", "__tostring", "__eq", "__lt", "__le",
    "__concat", "__call", "__close", "__unm", "__add" }

  -- A metatable whose metamethods set ran[event] and then raise, yield
  -- (what a coroutine-yielding __pairs does) or return garbage.
  local function hostile_mt(kind, ran)
    local mt = { __name = "Hostile", __metatable = "locked" }
    for _, event in ipairs(EVENTS) do
      mt[event] = function(...)
        ran[event] = true
        if kind == "raise" then error("metamethod " .. event .. " ran") end
        if kind == "yield" then coroutine.yield("yielded from " .. event) end
        return function() return "garbage", print end, 42, "garbage"
      end
    end
    return mt
  end

  -- Runs fn in a coroutine; a yield out of it fails the test.
  local function no_yield(fn)
    local co = coroutine.create(fn)
    local r = H.pack(coroutine.resume(co))
    assert(r[1], r[2])
    assert.equal("dead", coroutine.status(co), "the operation yielded: " .. tostring(r[2]))
    return H.unpack(r, 2, r.n)
  end

  for _, kind in ipairs { "raise", "yield", "garbage" } do
    it("metamethods that " .. kind .. " never run: the raw contents round-trip", function()
      local ran = {}
      local mt = hostile_mt(kind, ran)
      local value = setmetatable({
        name = "raw",
        list = setmetatable({ 1, 2, setmetatable({ x = 1 }, mt) }, mt),
        empty = setmetatable({}, mt),
      }, mt)
      local plain = { name = "raw", list = { 1, 2, { x = 1 } }, empty = {} }
      no_yield(function()
        cache:set_record("k", value)
        cache.k2 = value
        assert.equal(2, cache:add { k3 = value, k4 = setmetatable({ 7, 8 }, mt) })
      end)
      for _, k in ipairs { "k", "k2", "k3" } do assert_exact(plain, cache[k], k) end
      assert_exact({ 7, 8 }, cache.k4)
      assert.same({}, ran)
      -- refused values with metatables: the error comes from the encoder
      local bad = setmetatable({ f = print }, mt)
      assert.equal("rcache_live: set_record: cannot encode a function (at .f)",
        H.error_of(cache.set_record, cache, "bad", bad))
      assert.equal("rcache_live: set_record: cannot use a table as an object key",
        H.error_of(cache.set_record, cache, "bad", { [setmetatable({}, mt)] = 1 }))
      assert.same({}, ran)
      assert.is_false(cache:exists("bad"))
    end)
  end

  it("__jsontype reached through __index does not mark an array (raw lookup)", function()
    local marker = setmetatable({}, { __index = { __jsontype = "array" } })
    cache.k = setmetatable({}, marker)
    assert.equal("{}", raw_get(cache, "k"))
    cache.k = setmetatable({}, rcache.array_mt)
    assert.equal("[]", raw_get(cache, "k"))
  end)

  for _, kind in ipairs { "raise", "yield", "garbage" } do
    it("update merges the raw fields and runs no metamethod (" .. kind .. ")", function()
      cache.k = { a = 1 }
      local ran = {}
      local fields = setmetatable({ b = 2, c = setmetatable({ 3 }, hostile_mt(kind, ran)) }, hostile_mt(kind, ran))
      local ok, merged = pcall(no_yield, function() return cache:update("k", fields) end)
      assert.same({}, ran)
      assert.is_true(ok, tostring(merged))
      assert_exact({ a = 1, b = 2, c = { 3 } }, merged)
      assert_exact({ a = 1, b = 2, c = { 3 } }, cache.k)
    end)
  end

  it("an update whose fields' __pairs would yield runs it not, and leaves the connection clean", function()
    cache.k = { a = 1 }
    local fields = setmetatable({ b = 2 }, {
      __pairs = function(t)
        coroutine.yield("yielded")
        return next, t, nil
      end,
    })
    local co = coroutine.create(function() return cache:update("k", fields) end)
    assert.is_true((coroutine.resume(co)))
    -- whatever happened inside, the connection must be left clean: another
    -- client changes the record, then a transaction (add) must go through
    H.raw("SET", record_key(cache, "k"), '{"a":5}')
    assert.equal(1, cache:add { other = 1 })
    assert.equal(1, cache.other)
    assert.equal("dead", coroutine.status(co), "update yielded out of the library")
  end)
end)

describe("numbers at the edges", function()
  local cache, ns
  before_each(function() cache, ns = H.cache() end)
  after_each(function() cache:close() end)

  local NUMBERS = {
    H.maxinteger, H.mininteger, 0, -1,
    0.0, -0.0, 1.0, -1.0, 0.1, 1 / 3, 2.0 ^ 53, 2.0 ^ 53 + 2, 2.0 ^ 63, -2.0 ^ 63, 2.0 ^ 64,
    4.9406564584124654e-324, -4.9406564584124654e-324, -- smallest subnormal
    2.2250738585072009e-308,                             -- largest subnormal
    2.2250738585072014e-308,                             -- smallest normal
    1.7976931348623157e308, -1.7976931348623157e308,     -- largest finite
    1e300, 1e-300, 123456789012345678e-20, 5e-324 * 3,
  }
  if H.has_integers then -- 2^53 + 1, which no double holds; a 19-digit timestamp
    for _, i in ipairs { 9007199254740993, -9007199254740993, 1700000000123456789 } do NUMBERS[#NUMBERS + 1] = i end
  end

  it("integers and floats at the edges round-trip bit for bit, keeping their type", function()
    for i, x in ipairs(NUMBERS) do
      cache:set_record("n", x)
      assert_exact(x, cache.n, ("number #%d (%.17g)"):format(i, x))
    end
    cache.list = NUMBERS
    assert_exact(NUMBERS, cache.list)
    local object = {}
    for i, x in ipairs(NUMBERS) do object["n" .. i] = x end
    cache.object = object
    assert_exact(object, cache.object)
  end)

  it("NaN and infinities are refused anywhere, nothing written", function()
    for _, x in ipairs { 0 / 0, -(0 / 0), math.huge, -math.huge } do
      assert.equal("rcache_live: set_record: cannot encode NaN or infinity",
        H.error_of(cache.set_record, cache, "k", x))
      assert.equal("rcache_live: set_record: cannot encode NaN or infinity (at [2])",
        H.error_of(cache.set_record, cache, "k", { 1, x }))
      assert.equal('rcache_live: add: record "k": cannot encode NaN or infinity (at .x)',
        H.error_of(cache.add, cache, { k = { x = x } }))
    end
    assert.same({}, H.keys_of(ns))
  end)
end)

describe("records another client wrote", function()
  local cache, ns
  before_each(function()
    cache, ns = H.cache()
    cache.good = { v = 1 }
  end)
  after_each(function() cache:close() end)

  -- The bad record can be overwritten, deleted and listed around afterwards.
  local function recovers(key)
    assert.same({ v = 1 }, cache.good)
    still_works(cache)
    cache:set_record(key, { fixed = 1 })
    assert.same({ fixed = 1 }, cache:get_record(key))
    assert.same({ good = { v = 1 }, [key] = { fixed = 1 } }, cache:get_all_records())
    assert.is_true(cache:delete_record(key))
    assert.same({ good = { v = 1 } }, cache:get_all_records())
  end

  for _, case in ipairs {
    { "hash", function(rk) H.raw("HSET", rk, "f", "v") end },
    { "list", function(rk) H.raw("RPUSH", rk, "a") end },
    { "set", function(rk) H.raw("SADD", rk, "a") end },
    { "zset", function(rk) H.raw("ZADD", rk, 1, "a") end },
    { "stream", function(rk) H.raw("XADD", rk, "*", "f", "v") end },
  } do
    it("a " .. case[1] .. " under a record key: reads and updates raise naming the key, nothing changes", function()
      local rk = record_key(cache, "bad")
      case[2](rk)
      assert.matches('^rcache_live: get_record: record "bad": WRONGTYPE ', H.error_of(cache.get_record, cache, "bad"))
      assert.matches('^rcache_live: update: record "bad": WRONGTYPE ',
        H.error_of(cache.update, cache, "bad", { a = 1 }))
      assert.equal(case[1], H.raw("TYPE", rk)) -- the update wrote nothing
      assert.is_true(cache:exists("bad"))
      assert.equal(math.huge, cache:ttl("bad"))
      -- the failed update leaves the connection clean: the record changes, add goes through
      H.raw("PEXPIRE", rk, 100000)
      assert.equal(1, cache:add { other = 1 })
      assert.is_true(cache:delete_record("other"))
      recovers("bad")
    end)

    it("a " .. case[1] .. " under a record key: a listing raises naming the key", function()
      case[2](record_key(cache, "bad"))
      assert.matches('^rcache_live: get_all_records: record "bad"', H.error_of(cache.get_all_records, cache))
      assert.matches('^rcache_live: records: record "bad"', H.error_of(function()
        for _ in cache:records() do end
      end))
      -- a pattern that leaves it out lists the rest
      assert.same({ good = { v = 1 } }, cache:get_all_records("g*"))
      assert.equal(1, cache:bulk_delete { "bad" })
      assert.same({ good = { v = 1 } }, cache:get_all_records())
    end)
  end

  -- Texts no JSON reader accepts: every read raises naming the key.
  local INVALID = {
    { "empty", "", "byte 0: premature EOF" },
    { "blank", "  \r\n\t", "byte 5: premature EOF" },
    { "NaN", "NaN", "byte 1: invalid char in json text" },
    { "-NaN", "-NaN", "byte 1: malformed number, a digit is required after the minus sign" },
    { "nan", "nan", "byte 1: invalid string in json text" },
    { "Infinity", "Infinity", "byte 1: invalid char in json text" },
    { "-Infinity", "-Infinity", "byte 1: malformed number, a digit is required after the minus sign" },
    { "inf", "inf", "byte 1: invalid char in json text" },
    { "[NaN]", "[NaN]", "byte 2: invalid char in json text" },
    { "a UTF-8 BOM before JSON", "\239\187\191{\"a\":1}", "byte 1: invalid char in json text" },
    { "a UTF-16 BOM", "\255\254{}", "byte 1: invalid char in json text" },
    { "a trailing comma", '{"a":1,}', "byte 8: invalid object key (must be a string)" },
    { "two documents", "{} {}", "byte 4: trailing garbage" },
    { "trailing garbage", '{"a":1}x', "byte 8: trailing garbage" },
    { "a NUL after JSON", "{}\0", "byte 3: trailing garbage" },
    { "a NUL inside a string", '"a\0b"', "byte 2: invalid character inside string" },
    { "a raw newline inside a string", '"a\nb"', "byte 2: invalid character inside string" },
    { "a bad escape", '"\\x41"', "byte 2: inside a string, '\\' occurs before a character which it may not" },
    { "a short \\u escape", '"\\u12"', "byte 5: invalid (non-hex) character occurs after '\\u' inside string" },
    { "single quotes", "{'a':1}", "byte 2: invalid char in json text" },
    { "a comment", "/* c */ {}", "byte 0: probable comment found in input text, comments are not enabled" },
    { "a leading zero", "01", "byte 2: trailing garbage" },
    { "a bare word", "undefined", "byte 1: invalid char in json text" },
    { "a lone minus", "[-]", "byte 2: malformed number, a digit is required after the minus sign" },
    { "a cut exponent", "1e+", "byte 3: malformed number, a digit is required after the exponent" },
    { "RESP", "+OK\r\n", "byte 1: invalid char in json text" },
    -- objects that lenient readers (Redis's own cjson among them) accept
    { "a raw newline in a member", '{"a":"x\ny"}', "byte 7: invalid character inside string" },
    { "a tab in a member name", '{"a\tb":1}', "byte 3: invalid character inside string" },
    { "a leading zero in a member", '{"a":01}', "byte 6: after key and value, inside map, I expect ',' or '}'" },
    { "a hex member", '{"a":0x10}', "byte 7: invalid char in json text" },
    { "a plus sign", '{"a":+1}', "byte 6: invalid char in json text" },
    { "a bare decimal point", '{"a":1.}', "byte 7: malformed number, a digit is required after the decimal point" },
    { "no digit before the point", '{"a":-.5}', "byte 6: malformed number, a digit is required after the minus sign" },
    { "an object then a NUL", '{"a":1}\0', "byte 8: trailing garbage" },
  }

  for _, case in ipairs(INVALID) do
    it("invalid JSON (" .. case[1] .. "): get, listings and update raise naming the key", function()
      raw_set(cache, "bad", case[2])
      local tail = 'record "bad" is not valid JSON: invalid JSON at ' .. lit(case[3]) .. "$"
      assert.matches("^rcache_live: get_record: " .. tail, H.error_of(cache.get_record, cache, "bad"))
      assert.matches("^rcache_live: get_all_records: " .. tail, H.error_of(cache.get_all_records, cache))
      assert.matches("^rcache_live: records: " .. tail, H.error_of(function()
        for _ in cache:records() do end
      end))
      -- update refuses it too (a text that is no object may be called that)
      local err = H.error_of(cache.update, cache, "bad", { a = 1 })
      if not err:find('^rcache_live: update: record "bad" is not a JSON object$') then
        assert.matches("^rcache_live: update: " .. tail, err)
      end
      assert.equal(case[2], raw_get(cache, "bad")) -- nothing was written over it
      recovers("bad")
    end)
  end

  -- Numbers JSON can spell but no finite double holds: reading one must not
  -- hand back an infinity the library itself refuses to write.
  for _, text in ipairs { "1e999", "-1e999", "[1e999]", '{"n":1e999}', "1" .. ("0"):rep(400),
                          '{"n":-1' .. ("0"):rep(400) .. '}', '{"n":1' .. ("0"):rep(400) .. '.5}' } do
    it("an out-of-range number (" .. text:sub(1, 12) .. ") raises naming the key", function()
      raw_set(cache, "huge", text)
      local tail = 'record "huge" is not valid JSON: .*'
      local ok, value = pcall(cache.get_record, cache, "huge")
      assert.is_false(ok, "read back as " .. tostring(type(value) == "table" and value[1] or value))
      assert.matches("^rcache_live: get_record: " .. tail, value)
      assert.matches("^rcache_live: get_all_records: " .. tail, H.error_of(cache.get_all_records, cache))
      -- update's own check of the text refuses it too, and writes nothing
      local err = H.error_of(cache.update, cache, "huge", { a = 1 })
      if not err:find('^rcache_live: update: record "huge" is not a JSON object$') then
        assert.matches("^rcache_live: update: " .. tail, err)
      end
      assert.equal(text, raw_get(cache, "huge"))
      recovers("huge")
    end)
  end

  it("JSON another reader would accept reads as a definite value", function()
    for _, case in ipairs {
      { '{"a":1,"a":2}', { a = 2 } },                        -- duplicate keys: the last wins
      { '{"a":{"x":1},"a":[2]}', { a = { 2 } } },
      { "-0", 0 },                                            -- an integer token: integer 0
      { "1e-999", 0.0 },                                      -- underflow: nearest double
      { '"\\u0000"', "\0" },
      { '"\\ud83d\\ude00"', "\240\159\152\128" },             -- a surrogate pair: UTF-8
      { '"\\ud800"', "?" },                                    -- a lone high surrogate: "?" (yajl)
      { '"\\udc00x"', "\237\176\128x" },                       -- a lone low one: its 3 bytes (yajl)
      { ' \t\r\n{"a" : [ 1 , 2 ] }\n ', { a = { 1, 2 } } },   -- whitespace anywhere
      { '"\255\254"', "\255\254" },                           -- raw bytes pass through
      { "null", rcache.null },
      -- beyond 64 bits: a float (without an integer subtype these raise, see below)
      H.has_integers and { "9223372036854775808", 9223372036854775808.0 } or nil,
      H.has_integers and { "-9223372036854775809", -9223372036854775809.0 } or nil,
    } do
      raw_set(cache, "k", case[1])
      assert_exact(case[2], cache.k, ("%q"):format(case[1]))
    end
  end)

  if not H.has_integers then
    it("an integer token beyond 2^53 raises naming the key: no number here holds it exactly", function()
      for _, text in ipairs { "9223372036854775808", "-9223372036854775809", "9007199254740993",
        '{"a":123456789012345678901234567890}', "[1,-9007199254740993]" } do
        raw_set(cache, "k", text)
        local err = H.error_of(cache.get_record, cache, "k")
        assert.matches('^rcache_live: get_record: record "k" is not valid JSON: integer %-?%d+ '
          .. "cannot be represented exactly by this Lua %(beyond 2%^53%)$", err)
        assert.equal(text, raw_get(cache, "k"))
      end
      recovers("k")
    end)
  end

  it("update merges into every object record get reads, however it is spelled", function()
    local deep = ('{"d":'):rep(128) .. "1" .. ("}"):rep(128) -- 128 levels: the most get reads
    for _, text in ipairs {
      '{"a":"\\ud800"}', '{"a":"\\udc00x"}', '{"a":"\\ud83d\\ude00"}', '{"a":"\255\254"}', '{"a":1,"a":2}',
      '{"a":1e-999}', '{"a":"\\u0000"}', '{"\\u0000":1}',
      '{"\\u0062":1}', ' {"a" : [ 1 , { } ] } ', '{"a":-0}', '{"a":1E+2}', deep,
      H.has_integers and '{"a":123456789012345678901234567890}' or nil, -- a float (see above where not)
    } do
      raw_set(cache, "k", text)
      local before = cache:get_record("k")
      local ok, merged = pcall(cache.update, cache, "k", { b = 2 })
      assert.is_true(ok, ("%q: %s"):format(text:sub(1, 40), tostring(merged)))
      before.b = 2
      assert_exact(before, merged, ("%q"):format(text:sub(1, 40)))
      assert_exact(before, cache:get_record("k"), ("%q read back"):format(text:sub(1, 40)))
    end
  end)

  it("update over JSON that is not an object raises naming the key, nothing written", function()
    for _, text in ipairs { "[1,2]", "[]", "5", '"s"', "true", "null" } do
      raw_set(cache, "k", text)
      assert.equal('rcache_live: update: record "k" is not a JSON object',
        H.error_of(cache.update, cache, "k", { a = 1 }))
      assert.equal(text, raw_get(cache, "k"))
    end
    H.raw("SET", record_key(cache, "k"), "[1]")
    assert.equal(1, cache:add { other = 1 }) -- the connection is clean
    assert.is_true(cache:delete_record("other"))
    recovers("k")
  end)

  for _, case in ipairs {
    { "an object record", { name = "Alice \"A\" \\ \n\1", n = 1.5, i = -42, big = H.maxinteger,
      list = { 1, 2.5, rcache.null, true, false }, empty = rcache.array(), obj = {}, deep = { x = { y = "z" } } } },
    { "an array record", { "x", { 1 }, { k = "v" }, -0.0 } },
    { "a number record", 123456789 },
    { "a string record", "ab\"\\\1c" },
  } do
    it("JSON cut at every position (" .. case[1] .. "): a valid prefix reads as itself, else an error naming the key",
    function()
      cache:set_record("t", case[2])
      local json = raw_get(cache, "t")
      local valid = 0
      for cut = 0, #json - 1 do
        local prefix = json:sub(1, cut)
        raw_set(cache, "t", prefix)
        local decodes, expected = pcall(rcache.json.decode, prefix)
        local ok, got = pcall(cache.get_record, cache, "t")
        if decodes then
          valid = valid + 1
          assert.is_true(ok, got)
          assert_exact(expected, got, ("prefix %q"):format(prefix))
        else
          assert.is_false(ok, ("prefix %q read as a value"):format(prefix))
          assert.matches('^rcache_live: get_record: record "t" is not valid JSON: invalid JSON at byte %d+: .', got)
        end
      end
      if type(case[2]) == "number" then
        assert.equal(#json - 1, valid) -- "1", "12", ... are numbers of their own
      else
        assert.equal(0, valid) -- no prefix of an object, array or string is JSON
      end
      -- one cut through a listing and an update
      raw_set(cache, "t", json:sub(1, math.floor(#json / 2)))
      if type(case[2]) ~= "number" then
        assert.matches('^rcache_live: get_all_records: record "t" is not valid JSON: ',
          H.error_of(cache.get_all_records, cache))
        assert.matches('^rcache_live: update: record "t" is not valid JSON: ',
          H.error_of(cache.update, cache, "t", { a = 1 }))
      end
      recovers("t")
    end)
  end

  it("update agrees with get on 1,000 mutated records: refuses what get refuses, writing nothing", function()
    local base = '{"name":"A\\"}\\\\","n":-1.5e3,"list":[1,{"x":[]},"]"],"o":{"p":null,"q":true},"e":""}'
    local alphabet = '{}[]",:\\ 0123456789.eE+-truefalsn\0\n\t\255x'
    local rk = record_key(cache, "k")
    local rng = 12345 -- a fixed LCG: the same 1,000 texts on every run
    local function random(n)
      rng = (rng * 1103515245 + 12345) % 2147483648
      return math.floor(rng / 65536) % n + 1
    end
    local problems = {}
    local seconds = timed(function()
      for _ = 1, 1000 do
        local s = base
        for _ = 1, random(3) do
          local pos, c = random(#s), random(#alphabet)
          local ch = alphabet:sub(c, c)
          local how = random(3)
          if how == 1 then s = s:sub(1, pos - 1) .. s:sub(pos + 1)
          elseif how == 2 then s = s:sub(1, pos - 1) .. ch .. s:sub(pos)
          else s = s:sub(1, pos - 1) .. ch .. s:sub(pos + 1) end
        end
        H.raw("SET", rk, s)
        local readable, before = pcall(cache.get_record, cache, "k")
        local updated, merged = pcall(cache.update, cache, "k", { n = 7, z = 1 })
        local after = H.raw("GET", rk)
        local why
        if readable and type(before) == "table" and getmetatable(before) ~= rcache.array_mt then
          if not updated then
            why = "update refused a record get reads: " .. tostring(merged)
          else
            before.n, before.z = 7, 1
            local same, where = exact(before, merged)
            local back_ok, back = pcall(cache.get_record, cache, "k")
            if not same then why = "merged differs: " .. where
            elseif not back_ok then why = "the merged record does not read back: " .. back
            elseif not exact(before, back) then why = "the stored record differs from the merge" end
          end
        elseif readable then
          if updated then why = "update merged into a record that is no object" end
        elseif updated then
          why = "update succeeded on a record get refuses: " .. before
        elseif after ~= s then
          why = "update raised (" .. merged .. ") but rewrote the record as " .. ("%q"):format(after)
        elseif not merged:find('^rcache_live: update: record "k" ') then
          why = "unclear error: " .. merged
        end
        if why and #problems < 5 then problems[#problems + 1] = ("%q: %s"):format(s, why) end
      end
    end)
    assert.same({}, problems)
    bounded(seconds, 10, "1,000 mutated records")
    still_works(cache)
  end)

  it("cleanup deletes a record another client overwrote with junk", function()
    cache:set_record("junk", { v = 1 })
    H.raw("SET", record_key(cache, "junk"), "\0\255junk", "KEEPTTL")
    H.sleep(0.01) -- cleanup(0) takes records accessed before this millisecond
    assert.equal(2, cache:cleanup_inactive_records(0)) -- "good" and "junk"
    assert.is_false(cache:exists("junk"))
    assert.same({}, cache:get_all_records())
  end)
end)

describe("glob characters in listing patterns", function()
  local cache, ns
  before_each(function() cache, ns = H.cache() end)
  after_each(function() cache:close() end)

  -- A Redis glob matching exactly the key s.
  local function escape(s)
    return (s:gsub("[%*%?%[%]\\]", "\\%0"))
  end

  local KEYS = { "a*b", "a?b", "a[b", "a]b", "a\\b", "axb", "ab", "a[x]b", "a\0b", "*", "?", "[", "\\", "a-b",
    "[a-z]", "\\*" }

  it("an escaped pattern lists only the literal key", function()
    local records = {}
    for i, k in ipairs(KEYS) do records[k] = i end
    cache:add(records)
    for i, k in ipairs(KEYS) do
      assert.same({ [k] = i }, cache:get_all_records(escape(k)), ("key %q, pattern %q"):format(k, escape(k)))
    end
  end)

  it("unescaped, the same characters are globs", function()
    local records = {}
    for i, k in ipairs(KEYS) do records[k] = i end
    cache:add(records)
    local function set(...)
      local t = {}
      for _, k in ipairs { ... } do t[k] = true end
      return keys_of(t)
    end
    assert.same(set("a*b", "a-b", "a?b", "a[b", "a[x]b", "a\0b", "a\\b", "a]b", "ab", "axb"),
      keys_of(cache:get_all_records("a*b")))
    assert.same(set("a*b", "a-b", "a?b", "a[b", "a\0b", "a\\b", "a]b", "axb"), keys_of(cache:get_all_records("a?b")))
    assert.same(set("a*b", "axb"), keys_of(cache:get_all_records("a[x*]b")))
    assert.same({ "ab" }, keys_of(cache:get_all_records("a\\b"))) -- "\b" is a plain b
    assert.same(keys_of(records), keys_of(cache:get_all_records("*")))
  end)

  it("a pattern never reaches another namespace", function()
    local other = H.cache()
    other["a*b"] = "other"
    other.x = "other"
    cache["a*b"] = "mine"
    for _, pattern in ipairs { "*", "a\\*b", "*:*", "*{*}*", "*r:*", "\\*", "[^a]*" } do
      for k, v in pairs(cache:get_all_records(pattern)) do
        assert.equal("mine", v, ("pattern %q listed %q"):format(pattern, k))
      end
    end
    other:close()
  end)

  it("hostile patterns end quickly with an exact answer", function()
    cache[("a"):rep(60)] = 1
    cache.ab = 2
    local seconds = timed(function()
      assert.same({}, cache:get_all_records(("a*"):rep(50) .. "b"))
      assert.same({ ab = 2 }, cache:get_all_records(("*"):rep(100000) .. "b"))
      assert.same({}, cache:get_all_records(("[a"):rep(100000)))
      assert.same({}, cache:get_all_records(("\\"):rep(100001)))
      assert.same({}, cache:get_all_records("\0"))
    end)
    bounded(seconds, 5, "hostile patterns")
  end)
end)
