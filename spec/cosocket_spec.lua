-- The cosocket transport against the blocking one. The same chunk of Lua
-- runs inside a real nginx (LuaJIT, cosockets; spec/support/nginx/eval.lua)
-- and here (Lua 5.4, hiredis), each in a namespace of its own on the same
-- private redis-server, and both must answer alike: the same values, the
-- same error messages word for word, the same records left behind. Then
-- what only the connection pool has to get right: restarts and stale
-- connections, stalls, handshakes, nginx's phases. Tagged #nginx (see
-- .busted): `make test-nginx` runs it.

describe("the cosocket transport #nginx", function()
  local rcache, json, Server, Nginx, http
  local server, nginx, url

  setup(function()
    rcache = require "rcache_live"
    json = rcache.json
    Server = require "support.server"
    Nginx = require "support.nginx"
    http = require "support.http"
    local root = Nginx.ROOT
    server = Server.new()
    url = "redis://127.0.0.1:" .. server.port
    nginx = Nginx.new {
      include = root .. "/spec/support/nginx/eval.conf",
      lua_path = root .. "/spec/support/nginx/?.lua",
    }
  end)

  teardown(function()
    if nginx then nginx:stop() end
    if server then server:destroy() end
  end)

  local namespaces = 0
  local function fresh_ns()
    namespaces = namespaces + 1
    return "co" .. namespaces
  end

  local function escape(s)
    return (s:gsub("[^%w%-_%.~]", function(c) return ("%%%02X"):format(c:byte()) end))
  end

  -- What the chunk returned or raised, in nginx; extra is more query text.
  local function remote(chunk, u, ns, extra)
    local res = http.request("POST", ("%s/eval?url=%s&ns=%s%s"):format(nginx.url, escape(u), ns,
      extra or ""), { body = chunk })
    assert.equal(200, res.status, res.body)
    return json.decode(res.body), res
  end

  -- The same, here over the blocking connection, through the same JSON.
  local function here(chunk, u, ns)
    local fn = assert(load(chunk, "=eval"))
    local r = table.pack(pcall(fn, rcache, u, ns))
    local values = {}
    for i = 2, r.n do values[i - 1] = r[i] == nil and json.null or r[i] end
    return json.decode(json.encode { ok = r[1], values = values })
  end

  -- The records of a namespace (or why they cannot be listed) and its keys
  -- (without the namespace), read here.
  local function contents(ns)
    local cache = rcache.new { url = url, namespace = ns }
    local listed, records = pcall(cache.get_all_records, cache)
    cache:close()
    -- which bad record a listing names first depends on SCAN's order
    if not listed then records = "not listable" end
    local keys = {}
    for line in server:cli("--scan", "--pattern", ns .. ":*"):gmatch("[^\n]+") do
      keys[#keys + 1] = line:sub(#ns + 1)
    end
    table.sort(keys)
    return { records = records, keys = keys }
  end

  -- Runs chunk both ways, each in a fresh namespace (prepared by prepare(ns)
  -- when given); asserts equal answers and equal contents; returns the
  -- answer.
  local function both(chunk, prepare, u)
    local ns_here, ns_there = fresh_ns(), fresh_ns()
    if prepare then
      prepare(ns_here)
      prepare(ns_there)
    end
    local mine = here(chunk, u or url, ns_here)
    local theirs = remote(chunk, u or url, ns_there)
    assert.same(mine, theirs)
    assert.same(contents(ns_here), contents(ns_there))
    return theirs
  end

  local HEAD = "local rcache, url, ns = ...\nlocal c = rcache.new { url = url, namespace = ns }\n"

  describe("gives the answers of the blocking connection", function()
    it("for single-record operations on every kind of value", function()
      local answer = both(HEAD .. [[
        c.a = { s = "x\0y\r\n$3\r\n", list = rcache.array(), nested = { { 1, 2.5, rcache.null } },
                big = 4503599627370497, neg = -17, f = 0.1, t = true, o = {} }
        c[42] = "forty-two"
        c:set_record("short", { 1 }, 30)
        c:set_record("gone", 1)
        c.gone = nil
        return c.a, c[42], c:get_record("none"), c:exists("a"), c:exists("none"), c:ttl("none"),
          c:ttl("short") > 29 and c:ttl("short") <= 30, c:delete_record(42), c:delete_record(42), c.gone
      ]])
      assert.is_true(answer.ok)
      assert.equal("x\0y\r\n$3\r\n", answer.values[1].s)
      assert.equal(4503599627370497, answer.values[1].big)
      assert.equal("forty-two", answer.values[2])
      assert.same({ json.null, true, false, json.null, true, true, false, json.null },
        { table.unpack(answer.values, 3, 10) })
    end)

    it("for update, add, bulk_delete, listings and cleanup", function()
      local answer = both(HEAD .. [[
        local n_added = c:add({ k1 = 1, k2 = { x = 1, keep = "me" }, [3] = "three" }, 60)
        local merged = c:update("k2", { y = 2, x = rcache.null })
        local created = c:update("k4", { new = true })
        local deleted = c:bulk_delete { "k1", "missing" }
        local keys = {}
        for k in c:records() do keys[#keys + 1] = k end
        table.sort(keys)
        local some = c:get_all_records("k*")
        -- idle for 0 minutes means last touched before now: let a millisecond pass
        local sleep = ngx and ngx.sleep or function(s) os.execute("sleep " .. s) end
        sleep(0.01)
        local cleaned = c:cleanup_inactive_records(0)
        return n_added, merged, created, deleted, keys, some, cleaned, c:get_all_records()
      ]])
      assert.is_true(answer.ok)
      assert.same({ 3, { x = json.null, keep = "me", y = 2 }, { new = true }, 1, { "3", "k2", "k4" } },
        { table.unpack(answer.values, 1, 5) })
      assert.equal(3, answer.values[7])
    end)

    it("with Active TTL: a read gives the record its stored TTL again", function()
      local answer = both([[
        local rcache, url, ns = ...
        local c = rcache.new { url = url, namespace = ns, active_ttl = true }
        c:set_record("k", { v = 1 }, 2)
        local t0 = c:ttl("k")
        local sleep = ngx and ngx.sleep or function(s) os.execute("sleep " .. s) end
        sleep(0.3)
        local before = c:ttl("k")
        local v = c.k
        local after = c:ttl("k")
        return v, t0 > 1.9, before < 1.8, after > 1.9
      ]])
      assert.same({ ok = true, values = { { v = 1 }, true, true, true } }, answer)
    end)
  end)

  describe("refuses bad input with the same message, writing nothing", function()
    local cases = {
      "c[1.5] = 1",
      "return c[{}]",
      "c:set_record('k', nil)",
      "c:set_record('k', 1, 0)",
      "c:set_record('k', 1, '10')",
      "c.k = function() end",
      "c.k = { 0/0 }",
      "local t = {} t.self = t c.k = t",
      "c:update('k', { 1, 2 })",
      "c:update('k', 'x')",
      "c:update('k', { [true] = 1 })",
      "c:add { ok = 1, bad = function() end }",
      "c:add('x')",
      "c:bulk_delete { 1.5 }",
      "c:get_all_records(5)",
      "c:cleanup_inactive_records(-1)",
      "return c:ttl(nil)",
    }
    for _, statement in ipairs(cases) do
      it(statement, function()
        local answer = both(HEAD .. statement)
        assert.is_false(answer.ok)
        assert.matches("^rcache_live: [%w_]+: ", answer.values[1])
      end)
    end
  end)

  describe("reads data another client wrote as the blocking connection does", function()
    -- a hash, a string that is not JSON and a truncated document under
    -- record keys
    local function foreign(ns)
      local cache = rcache.new { url = url, namespace = ns }
      local internal = require("rcache_live.core").internal
      server:cli("HSET", (internal.key(cache, "h")), "f", "v")
      server:cli("SET", (internal.key(cache, "j")), "not json")
      server:cli("SET", (internal.key(cache, "t")), '{"a": [1, 2')
      cache:close()
    end
    for _, statement in ipairs {
      "return c.h", "return c.j", "return c.t", "return c:update('j', { a = 1 })",
      "return c:update('h', { a = 1 })", "return c:exists('h'), c:ttl('j') == math.huge",
    } do
      it(statement, function()
        both(HEAD .. statement, foreign)
      end)
    end

    it("return c:get_all_records() (with one record that is not JSON)", function()
      local answer = both(HEAD .. "c.ok = 1 return c:get_all_records()", function(ns)
        local cache = rcache.new { url = url, namespace = ns }
        server:cli("SET", (require("rcache_live.core").internal.key(cache, "j")), "not json")
        cache:close()
      end)
      assert.matches('record "j" is not valid JSON', answer.values[1], 1, true)
    end)
  end)

  it("reloads the scripts after SCRIPT FLUSH, for every operation", function()
    for _, statement in ipairs {
      "c.k = 1 return c.k", "return c:update('k', { a = 1 })", "return c:add { a = 1, b = 2 }",
      "c.k = 1 return c:delete_record('k')", "c.k = 1 return c:cleanup_inactive_records(0)",
      "return c:bulk_delete { 'a', 'b' }",
    } do
      assert.equal("OK", server:cli("SCRIPT", "FLUSH"))
      local answer = remote(HEAD .. statement, url, fresh_ns())
      assert.is_true(answer.ok, statement .. ": " .. tostring(answer.values[1]))
    end
  end)

  describe("connections", function()
    it("a refused port: the same message", function()
      local answer = both(HEAD .. "return c.k", nil, "redis://127.0.0.1:" .. Server.free_port())
      assert.is_false(answer.ok)
      assert.matches("^rcache_live: get_record: connection refused %(127%.0%.0%.1:%d+%)$", answer.values[1])
    end)

    it("a server restarted under the pool: the next operation succeeds on a fresh connection", function()
      local ns = fresh_ns()
      -- fill the pool with connections (several requests at once)
      for _ = 1, 3 do assert.is_true(remote(HEAD .. "c.k = 1 return c.k", url, ns).ok) end
      server:kill()
      local down = remote(HEAD .. "return c.k", url, ns)
      assert.same({ ok = false, values = { "rcache_live: get_record: connection refused (127.0.0.1:"
        .. server.port .. ")" } }, down)
      server:start()
      assert.same({ ok = true, values = { 7 } }, remote(HEAD .. "c.k = 7 return c.k", url, ns))
      -- a pooled connection the server closed before nginx noticed: the
      -- kill runs from the worker without yielding, so the pool cannot
      -- have seen the close when the next operation takes the connection
      local answer = remote(HEAD .. [[
        c.k = 8
        local port = url:match(":(%d+)$")
        os.execute("redis-cli -p " .. port .. " CLIENT KILL TYPE normal >/dev/null")
        return c.k
      ]], url, ns)
      assert.same({ ok = true, values = { 8 } }, answer)
    end)

    it("a stalled server: 'timed out' after timeout, then the right record", function()
      local ns = fresh_ns()
      local chunk = [[
        local rcache, url, ns = ...
        local c = rcache.new { url = url, namespace = ns, timeout = 0.3 }
        return c.k
      ]]
      assert.is_true(remote(HEAD .. "c.k = 'v'", url, ns).ok)
      local wait = server:debug_sleep(1.5)
      os.execute("sleep 0.2") -- until the stall has begun
      local answer = remote(chunk, url, ns)
      wait()
      assert.same({ ok = false, values = { "rcache_live: get_record: timed out (127.0.0.1:" .. server.port .. ")" } },
        answer)
      assert.same({ ok = true, values = { "v" } }, remote(chunk, url, ns))
      wait = server:debug_sleep(1.5)
      os.execute("sleep 0.2")
      assert.same(answer, here(chunk, url, ns))
      wait()
    end)

    it("db: records go to the database the url names", function()
      local ns = fresh_ns()
      local answer = remote(HEAD .. "c.k = 1 return c.k", url .. "/3", ns)
      assert.same({ ok = true, values = { 1 } }, answer)
      local cache = rcache.new { url = url .. "/3", namespace = ns }
      local key = require("rcache_live.core").internal.key(cache, "k")
      cache:close()
      assert.equal("1", server:cli("-n", "3", "EXISTS", key))
      assert.equal("0", server:cli("EXISTS", key))
    end)
  end)

  describe("a server with a password", function()
    local secured
    setup(function()
      secured = Server.new { "requirepass s3cret-pw" }
      secured.auth = { nil, "s3cret-pw" }
    end)
    teardown(function() if secured then secured:destroy() end end)

    for _, case in ipairs {
      { "the right password", "redis://:s3cret-pw@127.0.0.1:%d", true },
      { "a wrong password", "redis://:wrong@127.0.0.1:%d", false },
      { "no password", "redis://127.0.0.1:%d", false },
    } do
      it(case[1] .. ": the same answer", function()
        local answer = both(HEAD .. "c.k = 1 return c.k", nil, case[2]:format(secured.port))
        assert.equal(case[3], answer.ok)
        if not case[3] then
          assert.matches("^rcache_live: set_record: authentication %a+", answer.values[1])
          assert.not_matches("s3cret", answer.values[1])
        end
      end)
    end
  end)

  it("refuses I/O in a phase without cosockets, with a clear error", function()
    local _, res = remote("return 1", url, fresh_ns(), "&header_filter=1")
    assert.equal("rcache_live: get_record: no network I/O in nginx's header_filter phase "
      .. "(cosockets are not available there)", res.headers["x-filter-error"])
  end)

  it("safe(): nil, err instead of raising; true for a method with no result", function()
    local answer = both(HEAD .. [[
      local s = rcache.safe(c)
      local a, a_err = s:set_record(1.5, 1)
      local b, b_err = s:get_record("none")
      local set = s:set_record("k", { 1 })
      local got = s:get_record("k")
      local down = rcache.safe(rcache.new { url = "redis://127.0.0.1:1" })
      local d, d_err = down:get_record("k")
      return a, a_err, b, b_err, set, got, d, d_err
    ]])
    assert.same({ ok = true, values = {
      json.null, "rcache_live: set_record: key must be a string or an integer, got a float (1.5)",
      json.null, json.null, true, { 1 },
      json.null, "rcache_live: get_record: connection refused (127.0.0.1:1)",
    } }, answer)
  end)
end)
