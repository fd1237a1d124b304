-- Settings: rcache_live.config.resolve(options, getenv, op) with a stand-in
-- environment, the URLs, the checks on every option, the module's own
-- fields (in a subprocess with a real environment) and caches made from a
-- URL or the environment reaching the test server.
local config = require "rcache_live.config"
local rcache = require "rcache_live"
local H = require "support.helpers"

local lit = H.lit

-- A getenv reading only the given table.
local function env(vars)
  return function(name) return vars[name] end
end

local function resolve(options, vars)
  return config.resolve(options, env(vars or {}), "new")
end

-- The error resolve raises for options and vars (it must raise).
local function resolve_error(options, vars)
  return H.error_of(config.resolve, options, env(vars or {}), "new")
end

local REDIS_VARS = {
  "REDIS_HOST", "REDIS_PORT", "REDIS_DB", "REDIS_USERNAME", "REDIS_PASSWORD", "REDIS_SOCKET",
  "REDIS_DEFAULT_TTL", "REDIS_ACTIVE_TTL", "REDIS_URL",
}

-- Runs H.lua -e script with only the given REDIS_* variables (the others
-- unset) and this process's module paths; returns its output (stdout and
-- stderr) and whether it exited with 0.
local function run_lua(vars, script)
  local words = { "env" }
  for _, name in ipairs(REDIS_VARS) do words[#words + 1] = "-u " .. name end
  local names = {}
  for name in pairs(vars) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do words[#words + 1] = name .. "=" .. H.shell_quote(vars[name]) end
  words[#words + 1] = "LUA_PATH=" .. H.shell_quote(package.path)
  words[#words + 1] = "LUA_CPATH=" .. H.shell_quote(package.cpath)
  words[#words + 1] = H.lua .. " -e " .. H.shell_quote(script) .. " 2>&1"
  local out, code = H.run(table.concat(words, " "))
  return out, code == 0
end

-- Prints the module's fields as sorted "name=value" lines.
local PRINT_CONFIG = [[
  local config = require "rcache_live.config"
  local lines = {}
  for k, v in pairs(config) do
    if type(v) ~= "function" and type(v) ~= "table" then lines[#lines + 1] = k .. "=" .. tostring(v) end
  end
  table.sort(lines)
  io.write(table.concat(lines, "\n"), "\n")
]]

describe("config.resolve defaults", function()
  it("without options or environment", function()
    for _, options in ipairs { false, {} } do
      local s = resolve(options or nil)
      assert.same({
        host = "127.0.0.1", port = 6379, db = 0, default_ttl = 3600, active_ttl = false, track = true,
        namespace = "rcache", connect_timeout = 5, timeout = 5,
        transport = "hiredis", pool_size = 30, keepalive_timeout = 60,
      }, s)
      assert.equal("integer", H.number_type(s.port))
    end
  end)

  it("reads the process environment when getenv is nil", function()
    local out, ok = run_lua({ REDIS_PORT = "6391", REDIS_ACTIVE_TTL = "yes" }, [[
      local s = require("rcache_live.config").resolve(nil, nil, "new")
      io.write(s.port, " ", tostring(s.active_ttl))
    ]])
    assert.is_true(ok, out)
    assert.equal("6391 true", out)
  end)
end)

describe("config.resolve environment", function()
  it("reads each variable", function()
    local cases = {
      { { REDIS_HOST = "cache.local" }, "host", "cache.local" },
      { { REDIS_PORT = "6390" }, "port", 6390 },
      { { REDIS_DB = "3" }, "db", 3 },
      { { REDIS_USERNAME = "bob" }, "username", "bob" },
      { { REDIS_PASSWORD = "s3cret" }, "password", "s3cret" },
      { { REDIS_SOCKET = "/run/redis.sock" }, "socket", "/run/redis.sock" },
      { { REDIS_DEFAULT_TTL = "60" }, "default_ttl", 60 },
      { { REDIS_DEFAULT_TTL = "0.5" }, "default_ttl", 0.5 },
    }
    for _, case in ipairs(cases) do
      local s = resolve(nil, case[1])
      assert.equal(case[3], s[case[2]], case[2])
    end
    assert.equal("integer", H.number_type(resolve(nil, { REDIS_PORT = "6390" }).port))
  end)

  it("reads REDIS_ACTIVE_TTL as true/1/yes or false/0/no, any case", function()
    for text, want in pairs {
      ["true"] = true, ["1"] = true, yes = true, TRUE = true, Yes = true,
      ["false"] = false, ["0"] = false, no = false, FALSE = false, NO = false,
    } do
      assert.equal(want, resolve(nil, { REDIS_ACTIVE_TTL = text }).active_ttl, text)
    end
  end)

  it("ignores empty variables", function()
    local vars = {}
    for _, name in ipairs(REDIS_VARS) do vars[name] = "" end
    assert.same(resolve(nil, {}), resolve(nil, vars))
  end)

  it("lets explicit options win over the environment", function()
    local vars = {
      REDIS_HOST = "envhost", REDIS_PORT = "6390", REDIS_DB = "4", REDIS_USERNAME = "envuser",
      REDIS_PASSWORD = "envpass", REDIS_DEFAULT_TTL = "60", REDIS_ACTIVE_TTL = "true",
    }
    local s = resolve({
      host = "opthost", port = 7000, db = 1, username = "optuser", password = "optpass",
      default_ttl = 5, active_ttl = false,
    }, vars)
    assert.equal("opthost", s.host)
    assert.equal(7000, s.port)
    assert.equal(1, s.db)
    assert.equal("optuser", s.username)
    assert.equal("optpass", s.password)
    assert.equal(5, s.default_ttl)
    assert.is_false(s.active_ttl)
    -- and what options leave out still comes from the environment
    s = resolve({ port = 7000 }, vars)
    assert.equal("envhost", s.host)
    assert.equal(4, s.db)
    assert.equal(60, s.default_ttl)
    assert.is_true(s.active_ttl)
  end)

  it("an explicit host, port or url replaces an environment socket", function()
    local vars = { REDIS_SOCKET = "/run/env.sock", REDIS_HOST = "envhost" }
    assert.equal("/run/env.sock", resolve(nil, vars).socket)
    assert.is_nil(resolve({ host = "h" }, vars).socket)
    assert.is_nil(resolve({ port = 7000 }, vars).socket)
    local s = resolve({ url = "redis://urlhost:7001" }, vars)
    assert.is_nil(s.socket)
    assert.equal("urlhost", s.host)
    assert.equal(7001, s.port)
    s = resolve({ url = "redis://urlhost" }, { REDIS_PORT = "6390" })
    assert.equal(6379, s.port) -- the url's default port, not the environment's
  end)

  it("takes REDIS_URL, with its parts overridden by the single variables", function()
    local url = "redis://urluser:urlpass@urlhost:1111/2"
    local s = resolve(nil, { REDIS_URL = url })
    assert.equal("urlhost", s.host)
    assert.equal(1111, s.port)
    assert.equal(2, s.db)
    assert.equal("urluser", s.username)
    assert.equal("urlpass", s.password)
    s = resolve(nil, {
      REDIS_URL = url, REDIS_HOST = "envhost", REDIS_PORT = "2222", REDIS_DB = "5",
      REDIS_USERNAME = "envuser", REDIS_PASSWORD = "envpass",
    })
    assert.same({ "envhost", 2222, 5, "envuser", "envpass" }, { s.host, s.port, s.db, s.username, s.password })
    s = resolve(nil, { REDIS_URL = url, REDIS_PORT = "2222" })
    assert.same({ "urlhost", 2222, 2, "urluser", "urlpass" }, { s.host, s.port, s.db, s.username, s.password })
    s = resolve(nil, { REDIS_URL = "unix:///run/url.sock?db=6", REDIS_DB = "7" })
    assert.equal("/run/url.sock", s.socket)
    assert.equal(7, s.db)
  end)

  it("refuses bad values naming the variable", function()
    local cases = {
      { { REDIS_PORT = "abc" }, 'REDIS_PORT must be a number, got "abc"$' },
      { { REDIS_DB = "first" }, 'REDIS_DB must be a number, got "first"$' },
      { { REDIS_DEFAULT_TTL = "1h" }, 'REDIS_DEFAULT_TTL must be a number, got "1h"$' },
      { { REDIS_ACTIVE_TTL = "maybe" }, 'REDIS_ACTIVE_TTL must be true/1/yes or false/0/no, got "maybe"$' },
      { { REDIS_URL = "http://host" }, "url must start with redis:// or unix://" },
    }
    for _, case in ipairs(cases) do
      assert.matches("^rcache_live: new: " .. case[2], resolve_error(nil, case[1]))
    end
    -- a number out of range is refused by the setting's check
    assert.matches("^rcache_live: new: setting 'port' must be an integer from 1 to 65535, got 70000$",
      resolve_error(nil, { REDIS_PORT = "70000" }))
    assert.matches("^rcache_live: new: setting 'default_ttl' must be a number of seconds >= 0%.001, got %-5$",
      resolve_error(nil, { REDIS_DEFAULT_TTL = "-5" }))
    -- an explicit option does not hide a broken variable
    assert.matches("^rcache_live: new: REDIS_PORT must be a number",
      resolve_error({ port = 7000 }, { REDIS_PORT = "abc" }))
  end)

  it("names the operation it was given", function()
    assert.matches("^rcache_live: config: REDIS_PORT ",
      H.error_of(config.resolve, nil, env { REDIS_PORT = "x" }, "config"))
  end)
end)

describe("config URLs", function()
  local cases = {
    { "redis://host", { host = "host", port = 6379, db = 0 } },
    { "redis://host:6390/4", { host = "host", port = 6390, db = 4 } },
    { "redis://host/3", { host = "host", port = 6379, db = 3 } },
    { "redis://:pass@host", { host = "host", password = "pass" }, { "username" } },
    { "redis://user@host", { host = "host", username = "user" }, { "password" } },
    { "redis://user:pass@host:6390/3", { host = "host", port = 6390, db = 3, username = "user", password = "pass" } },
    { "redis://us%40er:p%3Aw%2F%25%40@host", { host = "host", username = "us@er", password = "p:w/%@" } },
    { "redis://[::1]:6380", { host = "::1", port = 6380 } },
    { "redis://[::1]", { host = "::1", port = 6379 } },
    { "unix:///path/to/sock?db=2", { socket = "/path/to/sock", db = 2 } },
    { "unix:///path/to/sock", { socket = "/path/to/sock", db = 0 } },
    { "unix://:pw@/path/to/sock", { socket = "/path/to/sock", password = "pw" } },
  }
  for _, case in ipairs(cases) do
    it("parses " .. case[1], function()
      local s = resolve { url = case[1] }
      for k, v in pairs(case[2]) do assert.equal(v, s[k], k) end
      for _, k in ipairs(case[3] or { "password" }) do
        if case[2][k] == nil then assert.is_nil(s[k], k) end
      end
      if not case[2].socket then assert.is_nil(s.socket) end
    end)
  end

  it("refuses other schemes and unparsable urls", function()
    for _, url in ipairs { "http://host", "rediss://host:6380", "host:6379", "REDIS//host", "" } do
      local err = resolve_error { url = url }
      if url == "" then
        assert.matches("^rcache_live: new: option 'url' must be a non%-empty string, got string$", err)
      else
        assert.matches("^rcache_live: new: url must start with redis:// or unix://, got ", err)
      end
    end
    assert.matches("^rcache_live: new: cannot parse the url$", resolve_error { url = "redis://host:abc" })
    assert.matches("^rcache_live: new: setting 'port' must be an integer from 1 to 65535, got 70000$",
      resolve_error { url = "redis://host:70000" })
  end)

  it("never shows the password of a url it refuses", function()
    for _, url in ipairs {
      "rediss://user:s3cret@host:6380", "http://:s3cret@host", "redis://user:s3cret@host:abc",
    } do
      local err = resolve_error { url = url }
      assert.matches("^rcache_live: new: ", err)
      assert.is_nil(err:find("s3cret", 1, true), err)
    end
  end)
end)

describe("config option checks", function()
  local cases = {
    { { bogus = 1 }, 'unknown option "bogus" %(options: active_ttl, codec, connect_timeout, db, default_ttl, host, '
      .. "keepalive_timeout, namespace, password, pool_size, port, socket, timeout, track, transport, url, "
      .. "username%)$" },
    { { [1] = "x" }, 'unknown option "1" ' },
    { { port = "x" }, "option 'port' must be an integer from 1 to 65535, got string$" },
    { { port = 0 }, "option 'port' must be an integer from 1 to 65535, got 0$" },
    { { port = 70000 }, "option 'port' must be an integer from 1 to 65535, got 70000$" },
    { { port = 6379.5 }, "option 'port' must be an integer from 1 to 65535, got 6379%.5$" },
    { { db = -1 }, "option 'db' must be an integer from 0 to %d+, got %-1$" },
    { { db = "0" }, "option 'db' must be an integer from 0 to %d+, got string$" },
    { { default_ttl = 0 }, "option 'default_ttl' must be a number of seconds >= 0%.001, got 0$" },
    { { default_ttl = -5 }, "option 'default_ttl' must be a number of seconds >= 0%.001, got %-5$" },
    { { default_ttl = math.huge }, "option 'default_ttl' must be a number of seconds >= 0%.001, got inf$" },
    { { timeout = 0 }, "option 'timeout' must be a positive number of seconds, got 0$" },
    { { connect_timeout = -1 }, "option 'connect_timeout' must be a positive number of seconds, got %-1$" },
    { { active_ttl = "yes" }, "option 'active_ttl' must be a boolean, got string$" },
    { { track = 1 }, "option 'track' must be a boolean, got 1$" },
    { { host = "" }, "option 'host' must be a non%-empty string, got string$" },
    { { password = 1234 }, "option 'password' must be a non%-empty string, got 1234$" },
    { { namespace = "a{b" }, "option 'namespace' must be 1 to 128 letters, digits or _ %. %- : /, got string$" },
    { { namespace = "a}b" }, "option 'namespace' must be 1 to 128 letters" },
    { { namespace = "a*" }, "option 'namespace' must be 1 to 128 letters" },
    { { namespace = "a?b" }, "option 'namespace' must be 1 to 128 letters" },
    { { namespace = "a b" }, "option 'namespace' must be 1 to 128 letters" },
    { { namespace = "" }, "option 'namespace' must be 1 to 128 letters" },
    { { namespace = ("n"):rep(200) }, "option 'namespace' must be 1 to 128 letters" },
    { { namespace = ("n"):rep(129) }, "option 'namespace' must be 1 to 128 letters" },
    { { codec = { encode = function() end } }, "option 'codec' must be a table with encode and decode functions, got table$" },
    { { codec = "cjson" }, "option 'codec' must be a table with encode and decode functions, got string$" },
    { { active_ttl = true, track = false }, "active_ttl needs track = true " },
  }
  for _, case in ipairs(cases) do
    local key = next(case[1])
    it(("refuses %s = %s"):format(tostring(key), tostring(case[1][key]):sub(1, 20)), function()
      assert.matches("^rcache_live: new: " .. case[2], resolve_error(case[1]))
      -- and so does new, before connecting
      assert.matches("^rcache_live: new: " .. case[2], H.error_of(rcache.new, case[1]))
    end)
  end

  it("refuses options that are not a table", function()
    for _, v in ipairs { "x", 42, true, print } do
      assert.matches("^rcache_live: new: options must be a table, got " .. type(v) .. "$", resolve_error(v))
    end
  end)

  it("accepts the edges", function()
    assert.equal(("n"):rep(128), resolve({ namespace = ("n"):rep(128) }).namespace)
    assert.equal("app_1.v-2:cache/x", resolve({ namespace = "app_1.v-2:cache/x" }).namespace)
    assert.equal(1, resolve({ port = 1 }).port)
    assert.equal(65535, resolve({ port = 65535 }).port)
    assert.equal(0.001, resolve({ default_ttl = 0.001 }).default_ttl)
    assert.equal(0.25, resolve({ timeout = 0.25 }).timeout)
    local cjson = require "cjson"
    assert.equal(cjson, resolve({ codec = cjson }).codec)
    assert.is_true(resolve({ active_ttl = true }).active_ttl)
    assert.is_true(resolve(nil, { REDIS_ACTIVE_TTL = "yes" }).track)
    -- track = false alone is fine; with Active TTL from the environment it is not
    assert.is_false(resolve({ track = false }).track)
    assert.matches("^rcache_live: new: active_ttl needs track = true",
      resolve_error({ track = false }, { REDIS_ACTIVE_TTL = "1" }))
  end)
end)

describe("the config module's own fields", function()
  it("show the environment's settings with the password masked", function()
    local out, ok = run_lua({ REDIS_PASSWORD = "s3cret", REDIS_PORT = "6390" }, PRINT_CONFIG)
    assert.is_true(ok, out)
    assert.truthy(out:find("\nport=6390\n", 1, true), out)
    assert.truthy(out:find("\npassword=********\n", 1, true), out)
    assert.truthy(out:find("\nhost=127.0.0.1\n", 1, true), out)
    assert.truthy(out:find("\nnamespace=rcache\n", 1, true), out)
    assert.is_nil(out:find("s3cret", 1, true), out)
    assert.is_nil(out:find("\nerror=", 1, true), out)
  end)

  it("mask a password that comes in REDIS_URL", function()
    local out, ok = run_lua({ REDIS_URL = "redis://bob:s3cret@db.local:6391/2" }, PRINT_CONFIG)
    assert.is_true(ok, out)
    for _, line in ipairs { "host=db.local", "port=6391", "db=2", "username=bob", "password=********" } do
      assert.truthy(out:find("\n" .. line .. "\n", 1, true), line .. " in\n" .. out)
    end
    assert.is_nil(out:find("s3cret", 1, true), out)
  end)

  it("hold the error of a bad environment instead of raising, without the password", function()
    local out, ok = run_lua({ REDIS_PORT = "abc" }, PRINT_CONFIG)
    assert.is_true(ok, out)
    assert.truthy(out:find('error=rcache_live: config: REDIS_PORT must be a number, got "abc"\n', 1, true), out)
    out, ok = run_lua({ REDIS_URL = "rediss://bob:s3cret@db.local:6380" }, PRINT_CONFIG)
    assert.is_true(ok, out)
    assert.truthy(out:find("error=rcache_live: config: url must start with redis:// or unix://", 1, true), out)
    assert.is_nil(out:find("s3cret", 1, true), out)
  end)
end)

describe("caches made from settings", function()
  local function roundtrip(cache, ns)
    local value = { from = ns, n = 1700000000123456789 }
    cache.k = value
    assert.same(value, cache.k)
    -- the same server: a cache of the same namespace on the test socket reads it
    local check = rcache.new { socket = H.socket, namespace = ns }
    assert.same(value, check.k)
    assert.is_true(check:delete_record("k"))
    check:close()
  end

  it("reach the test server from redis://127.0.0.1:<port>", function()
    local ns = H.namespace("url")
    local cache = rcache.new { url = "redis://127.0.0.1:" .. H.port, namespace = ns }
    assert.matches("127%.0%.0%.1:" .. H.port, tostring(cache))
    roundtrip(cache, ns)
    cache:close()
  end)

  it("reach the test server from unix://<socket>", function()
    local ns = H.namespace("unix")
    local cache = rcache.new { url = "unix://" .. H.socket, namespace = ns }
    assert.matches("unix:" .. lit(H.socket), tostring(cache))
    roundtrip(cache, ns)
    cache:close()
  end)

  it("select the url's database", function()
    for _, url in ipairs { "redis://127.0.0.1:" .. H.port .. "/3", "unix://" .. H.socket .. "?db=3" } do
      local ns = H.namespace("db")
      local cache = rcache.new { url = url, namespace = ns }
      cache.k = "in db 3"
      local rk = H.record_key(cache, "k")
      assert.equal("1", H.cli("-n", "3", "EXISTS", rk), url)
      assert.equal(0, H.raw("EXISTS", rk), url) -- not in db 0
      assert.equal('"in db 3"', H.cli("-n", "3", "GET", rk))
      assert.equal("in db 3", cache.k)
      assert.is_true(cache:delete_record("k"))
      cache:close()
    end
  end)

  for _, case in ipairs {
    { "REDIS_SOCKET", function() return { REDIS_SOCKET = H.socket } end },
    { "REDIS_URL", function() return { REDIS_URL = "redis://127.0.0.1:" .. H.port } end },
    { "REDIS_HOST and REDIS_PORT", function() return { REDIS_HOST = "127.0.0.1", REDIS_PORT = tostring(H.port) } end },
  } do
    it("reach the test server from " .. case[1] .. " in a new process", function()
      local ns = H.namespace("env")
      local out, ok = run_lua(case[2](), ([[
        local rcache = require "rcache_live"
        local c = rcache.new { namespace = %q }
        c.k = { written_by = "child" }
        io.write(c.k.written_by)
      ]]):format(ns))
      assert.is_true(ok, out)
      assert.equal("child", out)
      local check = rcache.new { socket = H.socket, namespace = ns }
      assert.same({ written_by = "child" }, check.k)
      assert.is_true(check:delete_record("k"))
      check:close()
    end)
  end
end)

describe("config review cases", function()
  local config = require "rcache_live.config"
  local function env(t) return function(name) return t[name] end end

  it("an explicit url takes nothing of the connection from the environment", function()
    local s = config.resolve({ url = "redis://other:7000" },
      env { REDIS_PASSWORD = "envpw", REDIS_DB = "3", REDIS_USERNAME = "envuser", REDIS_SOCKET = "/x" }, "new")
    assert.same({ "other", 7000, 0 }, { s.host, s.port, s.db })
    assert.is_nil(s.password)
    assert.is_nil(s.username)
    assert.is_nil(s.socket)
  end)

  it("refuses a default_ttl below one millisecond, from options and from the environment", function()
    assert.matches("^rcache_live: new: option 'default_ttl' must be a number of seconds >= 0%.001, got 0%.0004$",
      H.error_of(config.resolve, { default_ttl = 0.0004 }, env {}, "new"))
    assert.matches("^rcache_live: new: setting 'default_ttl' must be a number of seconds >= 0%.001",
      H.error_of(config.resolve, {}, env { REDIS_DEFAULT_TTL = "0.0004" }, "new"))
    assert.equal(0.001, config.resolve({ default_ttl = 0.001 }, env {}, "new").default_ttl)
  end)
end)
