-- The pieces the nginx cosocket transport is made of, outside nginx: the
-- RESP reader (core.reader), the request builders (internal.format,
-- internal.request) and internal.result, which reads a reply as the
-- blocking connection does. The round trips go to the real test server over
-- a plain TCP socket (bash's /dev/tcp), bytes in, bytes out, so these run
-- under every Lua and under ASan and valgrind with the rest of the suite.
local H = require "support.helpers"
local rcache = require "rcache_live"
local core = require "rcache_live.core"
local internal = core.internal

-- Sends bytes to the test server over TCP and returns what it answered
-- within a short while.
local function roundtrip(bytes)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(bytes)
  f:close()
  local p = assert(io.popen(("bash -c 'exec 3<>/dev/tcp/127.0.0.1/%d; cat %s >&3; timeout 0.3 cat <&3'")
    :format(H.port, H.shell_quote(path)), "r"))
  local reply = p:read("*a")
  p:close()
  os.remove(path)
  return reply
end

-- A reader fed these chunks; returns it.
local function fed(...)
  local reader = core.reader()
  for i = 1, select("#", ...) do reader:feed((select(i, ...))) end
  return reader
end

describe("core.reader", function()
  it("gives each whole reply once, as Lua values", function()
    local reader = fed("+OK\r\n:42\r\n$5\r\nh\0\r\nx\r\n$-1\r\n*2\r\n*1\r\n:1\r\n-ERR no\r\n")
    local values = {}
    while reader:ready() do values[#values + 1] = reader:take() end
    assert.same({ "OK", 42, "h\0\r\nx", false, { { 1 }, { err = "ERR no" } } }, values)
    assert.is_false(reader:ready())
  end)

  it("waits for the last byte of a reply fed one byte at a time", function()
    local bytes = "*3\r\n$3\r\nabc\r\n:-7\r\n*0\r\n"
    local reader = core.reader()
    for i = 1, #bytes do
      assert.is_false(reader:ready(), "ready after byte " .. (i - 1))
      reader:feed(bytes:sub(i, i))
    end
    assert.is_true(reader:ready())
    assert.same({ "abc", -7, {} }, reader:take())
  end)

  it("reports a protocol error as nil, cause", function()
    local ready, cause = fed("@what\r\n"):ready()
    assert.is_nil(ready)
    assert.matches("^protocol error: ", cause)
  end)

  it("tells a NOSCRIPT reply apart; take without a reply raises", function()
    local reader = fed("-NOSCRIPT No matching script\r\n")
    assert.is_true(reader:ready())
    assert.is_true(reader:noscript())
    reader:take()
    assert.is_false(reader:noscript())
    assert.has_error(function() reader:take() end, "rcache_live: the reader holds no reply")
  end)
end)

describe("internal.format", function()
  it("writes each command as a RESP array of bulk strings, numbers as their text", function()
    assert.equal("*3\r\n$3\r\nSET\r\n$3\r\nk\r\n\r\n$2\r\n12\r\n*2\r\n$3\r\nGET\r\n$0\r\n\r\n",
      internal.format("op", { { "SET", "k\r\n", 12 }, { "GET", "" } }))
    assert.equal("", internal.format("op", {}))
  end)

  it("refuses an argument that is neither string nor number, naming it", function()
    assert.has_error(function() internal.format("add", { { "SET", {} } }) end,
      "rcache_live: add: command argument 2 is a table")
    assert.has_error(function() internal.format("add", { "SET" }) end)
  end)

  it("is what Redis reads: a pipeline over a raw socket", function()
    local key = H.namespace("format")
    local reply = roundtrip(internal.format("op", { { "SET", key, "v\r\n" }, { "GET", key }, { "DEL", key } }))
    local reader = fed(reply)
    local values = {}
    while reader:ready() do values[#values + 1] = reader:take() end
    assert.same({ "OK", "v\r\n", 1 }, values)
  end)
end)

describe("internal.request and internal.result", function()
  for _, track in ipairs { true, false } do
    it("send the blocking connection's commands and read replies the same way (track = " .. tostring(track) .. ")",
      function()
        local cache = H.cache { track = track, active_ttl = track }
        local value = { name = "Zoë", list = rcache.array(), n = 9007199254740991, f = 0.1 }
        local function over_the_wire(op, ...)
          local reader = fed(roundtrip(internal.request(cache, op, ...)))
          assert.is_true(reader:ready())
          return internal.result(cache, op, (...), reader)
        end
        assert.equal(0, select("#", over_the_wire("set_record", "k", value, 60)))
        assert.same(value, cache:get_record("k"))
        assert.same(value, over_the_wire("get_record", "k"))
        assert.is_nil(over_the_wire("get_record", "missing"))
        assert.is_true(over_the_wire("exists", "k"))
        local ttl = over_the_wire("ttl", "k")
        assert.is_true(ttl > 50 and ttl <= 60, tostring(ttl)) -- each raw round trip waits 0.3 s
        assert.is_true(over_the_wire("delete_record", "k"))
        assert.is_false(over_the_wire("delete_record", "k"))
        assert.is_nil(cache:get_record("k"))
        cache:close()
      end)
  end

  it("refuse bad input before building anything, with the blocking connection's words", function()
    local cache = H.cache()
    assert.has_error(function() internal.request(cache, "set_record", 1.5, 1) end,
      "rcache_live: set_record: key must be a string or an integer, got a float (1.5)")
    assert.has_error(function() internal.request(cache, "set_record", "k", nil) end,
      "rcache_live: set_record: value is nil (delete_record deletes)")
    assert.has_error(function() internal.request(cache, "set_record", "k", 1, -1) end,
      "rcache_live: set_record: ttl must be a positive number of seconds (at least 0.001), got -1")
    assert.has_error(function() internal.request(cache, "flush", "k") end)
    cache:close()
  end)

  it("raise for an error reply, an unexpected one and a record that is not JSON, naming the key", function()
    local cache = H.cache()
    local function holding(bytes)
      local reader = fed(bytes)
      assert.is_true(reader:ready())
      return reader
    end
    assert.has_error(function() internal.result(cache, "get_record", "k", holding("-WRONGTYPE no\r\n")) end,
      'rcache_live: get_record: record "k": WRONGTYPE no')
    local ok, err = pcall(internal.result, cache, "get_record", "k", holding("$3\r\n{x}\r\n"))
    assert.is_false(ok)
    assert.matches('^rcache_live: get_record: record "k" is not valid JSON: invalid JSON at byte 2: ', err)
    assert.has_error(function() internal.result(cache, "exists", "k", holding("$1\r\nx\r\n")) end,
      'rcache_live: exists: record "k": unexpected reply')
    assert.has_error(function() internal.result(cache, "get_record", "k", core.reader()) end,
      "rcache_live: the reader holds no reply")
    cache:close()
  end)
end)

describe("a cache made for the cosocket transport", function()
  it("is refused by the blocking entry points, which would block nginx's worker", function()
    local c = core.new { namespace = "wire", default_ttl = 60, track = true, transport = "cosocket" }
    for _, call in ipairs {
      function() return core.methods.get_record(c, "k") end,
      function() return internal.pipeline(c, "op", { { "PING" } }) end,
      function() return internal.load_scripts(c, "op") end,
    } do
      local ok, err = pcall(call)
      assert.is_false(ok)
      assert.matches("this cache does its I/O over nginx cosockets", err, 1, true)
    end
    assert.matches("cosocket", tostring(c), 1, true)
    c:close()
  end)

  it("cannot be asked for outside nginx", function()
    assert.has_error(function() rcache.new { transport = "cosocket" } end,
      "rcache_live: new: option 'transport' must be \"hiredis\" outside nginx (\"cosocket\" needs nginx's lua "
        .. "module), got string")
  end)
end)
