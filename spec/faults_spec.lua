-- Faults: a server killed, stopped, stalled, unreachable or restarted with
-- other credentials while a cache is open; writes cut half-way; which calls
-- may be retried. Everything runs against private servers started by
-- spec/support/server.lua (the shared server of with-redis is never
-- touched), with timeouts of a second or less and every wait bounded.
local rcache = require "rcache_live"
local Server = require "support.server"
local H = require "support.helpers"
local system = require "system" -- luasystem comes with busted

local now = system.monotime

local lit = H.lit

local deepcompare = require("luassert.util").deepcompare

local function read_file(path)
  local f = io.open(path)
  if not f then return "" end
  local text = f:read("*a")
  f:close()
  return text
end

-- pcall fn; returns its error message (failing the test if it succeeded)
-- and how many seconds the call took.
local function timed_error(fn, ...)
  local t0 = now()
  local ok, err = pcall(fn, ...)
  local took = now() - t0
  assert(not ok, "expected an error")
  return tostring(err), took
end

local function within(limit, took, what)
  assert.is_true(took <= limit, ("%s took %.3f s, more than %.3f s"):format(what or "the call", took, limit))
end

-- Where messages say the server is: "unix:<path>" or "127.0.0.1:<port>".
local function where_of(server, transport)
  if transport == "unix" then return "unix:" .. server.socket end
  return "127.0.0.1:" .. server.port
end

-- Options for a cache on server over transport, in a fresh namespace.
local function options(server, transport, extra)
  local o = { namespace = H.namespace("faults") }
  if transport == "unix" then o.socket = server.socket else o.port = server.port end
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

-- Runs a Lua script in a fresh interpreter like this one (a crash cannot
-- take busted down) with extra environment variables; returns its output
-- and exit line.
local function run_lua(script, env)
  local vars = {}
  for k, v in pairs(env or {}) do vars[#vars + 1] = k .. "=" .. H.shell_quote(v) end
  local cmd = ("env %s LUA_PATH=%s LUA_CPATH=%s %s -e %s 2>&1; echo \"exit=$?\""):format(
    table.concat(vars, " "), H.shell_quote(package.path), H.shell_quote(package.cpath), H.lua,
    H.shell_quote(script))
  local p = assert(io.popen(cmd))
  local out = p:read("*a")
  p:close()
  return out
end

-- Every operation once, each raising the same way while the server is away.
local OPS = {
  { "get_record", function(c) return c:get_record("k") end },
  { "set_record", function(c) c:set_record("k", 1) end },
  { "delete_record", function(c) return c:delete_record("k") end },
  { "exists", function(c) return c:exists("k") end },
  { "ttl", function(c) return c:ttl("k") end },
  { "update", function(c) return c:update("k", { a = 1 }) end },
  { "add", function(c) return c:add { k = 1, j = 2 } end },
  { "bulk_delete", function(c) return c:bulk_delete { "k", "j" } end },
  { "get_all_records", function(c) return c:get_all_records() end },
  { "records", function(c) for _ in c:records() do end end },
  { "cleanup_inactive_records", function(c) return c:cleanup_inactive_records(0) end },
}

-- The cache works: every kind of call, with the values checked.
local function assert_works(cache)
  cache:set_record("s", { n = 1 })
  assert.same({ n = 1 }, cache:get_record("s"))
  assert.same({ n = 1, m = 2 }, cache:update("s", { m = 2 }))
  assert.equal(2, cache:add { a1 = 1, a2 = { 2 } })
  assert.is_true(cache:exists("a1"))
  assert.same({ s = { n = 1, m = 2 }, a1 = 1, a2 = { 2 } }, cache:get_all_records())
  assert.equal(1, cache:bulk_delete { "a2", "nope" })
  assert.is_true(cache:delete_record("a1"))
  H.sleep(0.01) -- cleanup(0) takes records accessed before this millisecond
  assert.equal(1, cache:cleanup_inactive_records(0))
  assert.same({}, cache:get_all_records())
end

describe("a server killed with SIGKILL while a cache is open", function()
  local server
  setup(function() server = Server.new() end)
  teardown(function() server:destroy() end)
  before_each(function()
    if not server:alive() then server:start() end
  end)

  for _, transport in ipairs { "unix", "tcp" } do
    it("(" .. transport .. ") the next call raises a connection error within timeout; every call while it is down "
      .. "raises at once; the same cache works again once a server listens there", function()
      local where = lit(where_of(server, transport))
      local cache = rcache.new(options(server, transport, { timeout = 1, connect_timeout = 1 }))
      cache:set_record("before", "x")
      assert.equal("x", cache:get_record("before"))
      server:kill()

      local err, took = timed_error(cache.get_record, cache, "before")
      local cause = err:match("^rcache_live: get_record: ([%a ]+) %(" .. where .. "%)$")
      assert.is_truthy(cause == "connection closed by the server" or cause == "connection refused", err)
      within(1, took)

      -- a dead server's unix socket file stays: connecting is refused
      for _ = 1, 2 do
        for _, case in ipairs(OPS) do
          err, took = timed_error(case[2], cache)
          assert.matches("^rcache_live: " .. case[1] .. ": connection refused %(" .. where .. "%)$", err)
          within(0.5, took, case[1])
        end
      end
      assert.matches("%(namespace \"[^\"]+\", " .. where .. "%)", tostring(cache))

      server:start()
      assert_works(cache)
      assert.is_nil(cache:get_record("before")) -- the new server has no data
      cache:close()
    end)

    it("(" .. transport .. ") after a restart the first call succeeds: the connection the old server dropped "
      .. "is replaced before anything is sent on it", function()
      local cache = rcache.new(options(server, transport, { timeout = 1 }))
      cache:set_record("k", 1)
      server:kill()
      server:start()
      local ok, err = pcall(cache.get_record, cache, "k")
      assert.is_true(ok, err)
      assert.is_nil(err) -- the new server is empty
      assert_works(cache)
      cache:close()
    end)
  end

  it("a connection the server closed while idle (CLIENT KILL, Redis's own `timeout` does the same) is "
    .. "replaced: the next call succeeds", function()
    local cache = rcache.new(options(server, "unix"))
    cache:set_record("k", "v")
    assert.matches("^[1-9]", server:cli("CLIENT", "KILL", "TYPE", "normal"))
    local ok, value = pcall(cache.get_record, cache, "k")
    assert.is_true(ok, value)
    assert.equal("v", value)
    cache:close()
  end)

  it("a server stopped cleanly (its socket file removed): every call raises 'no such file or directory' "
    .. "at once, then the same cache works when it is back", function()
    local cache = rcache.new(options(server, "unix", { timeout = 1, connect_timeout = 1 }))
    cache:set_record("k", "v")
    server:stop()
    assert.is_nil(io.open(server.socket))
    local where = lit(where_of(server, "unix"))
    local err = timed_error(cache.get_record, cache, "k")
    assert.matches("^rcache_live: get_record: [%a ]+ %(" .. where .. "%)$", err)
    for _, case in ipairs(OPS) do
      local took
      err, took = timed_error(case[2], cache)
      assert.matches("^rcache_live: " .. case[1] .. ": no such file or directory %(" .. where .. "%)$", err)
      within(0.5, took, case[1])
    end
    server:start()
    assert_works(cache)
    cache:close()
  end)
end)

describe("a server that stalls longer than timeout", function()
  local server
  setup(function() server = Server.new() end)
  teardown(function() server:destroy() end)

  -- Each case: a call made while the server stalls, and what the records
  -- of the namespace may be afterwards (it may have run once the stall
  -- ended: a timed-out write's outcome is unknown).
  local base = { k1 = "one", k2 = "two" }
  local CASES = {
    { "get_record", function(c) return c:get_record("k1") end, { base } },
    { "set_record", function(c) c:set_record("k1", "new-one") end, { base, { k1 = "new-one", k2 = "two" } } },
    { "update", function(c) return c:update("k3", { a = 1 }) end, { base, { k1 = "one", k2 = "two", k3 = { a = 1 } } } },
    { "add", function(c) return c:add { k3 = "three", k4 = "four" } end,
      { base, { k1 = "one", k2 = "two", k3 = "three", k4 = "four" } } },
    { "get_all_records", function(c) return c:get_all_records() end, { base } },
  }

  -- After the stall: the next call reads k2's record (not the reply meant
  -- for the call that timed out), then the namespace is one of the states
  -- allowed, exactly.
  local function assert_right_records(cache, allowed)
    assert.equal("two", cache:get_record("k2"))
    local all = cache:get_all_records()
    local matched = false
    for _, state in ipairs(allowed) do
      if deepcompare(state, all, true) then matched = true end
    end
    assert.is_true(matched, "unexpected records after the stall")
  end

  for _, transport in ipairs { "unix", "tcp" } do
    for _, case in ipairs(CASES) do
      local op, fn, allowed = case[1], case[2], case[3]
      if transport == "unix" or op == "get_record" or op == "add" then
        it("SIGSTOP (" .. transport .. "): " .. op .. " raises 'timed out' within timeout + 0.5 s; after SIGCONT "
          .. "the next call gets the right record", function()
          local cache = rcache.new(options(server, transport, { timeout = 0.5 }))
          cache:add(base)
          server:pause()
          finally(function() server:resume() end)
          local err, took = timed_error(fn, cache)
          server:resume()
          assert.matches("^rcache_live: " .. op .. ": timed out %(" .. lit(where_of(server, transport)) .. "%)$", err)
          within(1.0, took)
          assert.is_true(took >= 0.45, ("gave up after %.3f s, before the timeout"):format(took))
          assert_right_records(cache, allowed)
          cache:close()
        end)
      end
    end
  end

  it("SIGSTOP: a write that timed out still lands once the server resumes ('timed out' means the outcome "
    .. "is unknown, not that nothing was written)", function()
    local cache = rcache.new(options(server, "unix", { timeout = 0.3 }))
    cache:add(base)
    server:pause()
    finally(function() server:resume() end)
    assert.matches("^rcache_live: set_record: timed out %(", H.error_of(cache.set_record, cache, "k1", "new-one"))
    server:resume()
    local value
    for _ = 1, 50 do
      value = cache:get_record("k1")
      if value == "new-one" then break end
      os.execute("sleep 0.02")
    end
    assert.equal("new-one", value)
    cache:close()
  end)

  it("SIGSTOP: a call made while the server is still stopped times out again, cleanly", function()
    local cache = rcache.new(options(server, "unix", { timeout = 0.3 }))
    cache:add(base)
    server:pause()
    finally(function() server:resume() end)
    for _ = 1, 2 do -- the second one reconnects: the kernel accepts, the handshake times out
      local err, took = timed_error(cache.get_record, cache, "k1")
      assert.matches("^rcache_live: get_record: timed out %(", err)
      within(0.8, took)
    end
    server:resume()
    assert_right_records(cache, { base })
    cache:close()
  end)

  it("SIGSTOP: an add of megabytes gives up in a bounded time (timeout bounds each send, not the call)", function()
    local cache = rcache.new(options(server, "unix", { timeout = 0.3 }))
    cache:add(base)
    local big = {}
    for i = 1, 10000 do big["b" .. i] = ("y"):rep(300) end
    server:pause()
    finally(function() server:resume() end)
    local err, took = timed_error(cache.add, cache, big)
    server:resume()
    assert.matches("^rcache_live: add: timed out %(", err)
    within(3 * 0.3 + 0.5, took)
    assert.equal("two", cache:get_record("k2"))
    local all = cache:get_all_records()
    local n = 0
    for _ in pairs(all) do n = n + 1 end
    assert.is_true(n == 2 or n == 10002, "a partial add: " .. n .. " records")
    cache:close()
  end)

  -- DEBUG SLEEP from another connection; returns once the server is seen
  -- asleep, and the function that waits for the end of the stall.
  local function stall(seconds)
    local probe = rcache.new { socket = server.socket, namespace = "probe", timeout = 0.2, track = false }
    probe:exists("x") -- connected before the stall
    local wait = server:debug_sleep(seconds)
    local asleep = false
    for _ = 1, 50 do
      if not pcall(probe.exists, probe, "x") then
        asleep = true
        break
      end
      os.execute("sleep 0.01")
    end
    probe:close()
    assert(asleep, "the server did not start sleeping")
    return wait
  end

  for _, case in ipairs(CASES) do
    local op, fn, allowed = case[1], case[2], case[3]
    if op ~= "update" then
      it("DEBUG SLEEP 1.5 from another client: " .. op .. " (timeout 0.5) raises 'timed out' within 1 s; "
        .. "after the stall the next call gets the right record", function()
        local cache = rcache.new(options(server, "unix", { timeout = 0.5 }))
        cache:add(base)
        local wait = stall(1.5)
        finally(wait)
        local err, took = timed_error(fn, cache)
        assert.matches("^rcache_live: " .. op .. ": timed out %(" .. lit(where_of(server, "unix")) .. "%)$", err)
        within(1.0, took)
        wait()
        assert_right_records(cache, allowed)
        cache:close()
      end)
    end
  end
end)

describe("a server that cannot be reached", function()
  it("connection refused (nothing listens on the port): raises at once naming the address", function()
    local port = Server.free_port()
    local cache = rcache.new { port = port, namespace = H.namespace(), connect_timeout = 1, timeout = 1 }
    for _ = 1, 2 do
      local err, took = timed_error(cache.get_record, cache, "k")
      assert.equal("rcache_live: get_record: connection refused (127.0.0.1:" .. port .. ")", err)
      within(1 + 0.2, took)
    end
    cache:close()
  end)

  it("an unknown host fails name resolution within connect_timeout, naming the host", function()
    local cache = rcache.new { host = "nonexistent.invalid", namespace = H.namespace(), connect_timeout = 1 }
    for _ = 1, 2 do
      local err, took = timed_error(cache.set_record, cache, "k", 1)
      local cause = err:match("^rcache_live: set_record: (.+) %(nonexistent%.invalid:6379%)$")
      assert.is_truthy(cause, err)
      assert.is_true(cause ~= "connection refused" and cause ~= "timed out", err)
      within(1 + 0.5, took)
    end
    cache:close()
  end)

  it("a unix socket path that does not exist raises 'no such file or directory' naming the path", function()
    local path = H.dir .. "/faults-no-such.sock"
    local cache = rcache.new { socket = path, namespace = H.namespace(), connect_timeout = 1 }
    local err, took = timed_error(cache.get_record, cache, "k")
    assert.equal("rcache_live: get_record: no such file or directory (unix:" .. path .. ")", err)
    within(1 + 0.2, took)
    cache:close()
  end)

  it("a connect that gets no answer gives up after connect_timeout, not timeout", function()
    -- a stopped server with a full accept queue: further SYNs are dropped
    local server = Server.new { "tcp-backlog 1" }
    finally(function() server:destroy() end)
    server:pause()
    for _ = 1, 2 do -- these two fill the queue (accepted by the kernel, never answered)
      local filler = rcache.new { port = server.port, namespace = "filler", connect_timeout = 0.2, timeout = 0.2 }
      pcall(filler.exists, filler, "k")
      filler:close()
    end
    local cache = rcache.new { port = server.port, namespace = H.namespace(), connect_timeout = 0.3, timeout = 3 }
    local err, took = timed_error(cache.get_record, cache, "k")
    assert.equal("rcache_live: get_record: timed out (127.0.0.1:" .. server.port .. ")", err)
    within(0.3 + 0.5, took)
    cache:close()
  end)
end)

describe("add and update cut by a fault", function()
  local N = 2000
  local pad = ("p"):rep(100)
  local CHILD = [[
    local rcache = require "rcache_live"
    local socket, ns, n, pad = arg[1], arg[2], tonumber(arg[3]), arg[4]
    local cache = rcache.new { socket = socket, namespace = ns, timeout = 5, connect_timeout = 2 }
    local records, fields = {}, {}
    for i = 1, n do
      records["k" .. i] = { i = i, gen = "new", pad = pad }
      fields["f" .. i] = "new"
    end
    cache:exists("warm-up") -- connected, scripts loaded
    io.write("ready\n") io.flush()
    local ok, err = pcall(cache.add, cache, records)
    io.write(ok and "acked add\n" or ("failed add: " .. tostring(err) .. "\n")) io.flush()
    ok, err = pcall(cache.update, cache, "big", fields)
    io.write(ok and "acked update\n" or ("failed update: " .. tostring(err) .. "\n")) io.flush()
    io.write("done\n")
  ]]

  local function old_records()
    local records, big = {}, {}
    for i = 1, N do
      records["k" .. i] = { i = i, gen = "old", pad = pad }
      big["f" .. i] = "old"
    end
    return records, big
  end

  -- Waits (at most 10 s) until process pid has exited (or is a zombie).
  local function wait_exit(pid)
    for _ = 1, 500 do
      local state = read_file("/proc/" .. pid .. "/status"):match("State:%s*(%a)")
      if state == nil or state == "Z" then return end
      os.execute("sleep 0.02")
    end
    error("process " .. pid .. " did not exit")
  end

  it("each record is entirely old or entirely new (all " .. N .. " of them one or the other), and new "
    .. "if the writer got an acknowledgement; SIGKILL (restart from the AOF) or CLIENT KILL at random moments", function()
    local server = Server.new { "appendonly yes", "appendfsync always", "aof-load-truncated yes" }
    finally(function() server:destroy() end)
    local ns = H.namespace("cut")
    local script = server.dir .. "/child.lua"
    local f = assert(io.open(script, "w"))
    f:write(CHILD)
    f:close()
    local old, big_old = old_records()
    local delays = { 0, 0.004, 0.008, 0.012, 0.016, 0.022, 0.03, 0.04 }
    local seen = {}
    local t_start = now()
    for round, delay in ipairs(delays) do
      local mode = round % 2 == 1 and "SIGKILL" or "CLIENT KILL"
      -- all old, acknowledged (so on disk)
      local writer = rcache.new { socket = server.socket, namespace = ns }
      writer:add(old)
      writer:set_record("big", big_old)
      writer:close()

      local out, pidfile = server.dir .. "/child.out", server.dir .. "/child.pid"
      os.remove(out)
      os.execute(("LUA_PATH=%s LUA_CPATH=%s %s %s %s %s %d %s > %s 2>&1 & echo $! > %s"):format(
        H.shell_quote(package.path), H.shell_quote(package.cpath), H.lua, H.shell_quote(script),
        H.shell_quote(server.socket), H.shell_quote(ns), N, pad, H.shell_quote(out), H.shell_quote(pidfile)))
      local pid = assert(tonumber(read_file(pidfile):match("%d+")))
      for _ = 1, 500 do
        if read_file(out):find("ready") then break end
        os.execute("sleep 0.005")
      end
      assert.matches("ready", read_file(out))
      local t0 = now()
      local wait = delay + math.random() * 0.004
      while now() - t0 < wait do end -- a few ms at most: a busy wait is finer than sleep(1)
      if mode == "SIGKILL" then
        server:kill()
      else
        server:cli("CLIENT", "KILL", "TYPE", "normal")
      end
      wait_exit(pid)
      if mode == "SIGKILL" then server:start() end

      local said = read_file(out)
      local context = ("round %d (%s after %.3f s), the writer said: %s"):format(round, mode, wait, said)
      assert.matches("\ndone\n$", said, context) -- it did not crash
      for _, line in ipairs { "add", "update" } do
        assert.is_truthy(said:find("\nacked " .. line .. "\n")
          or said:find("\nfailed " .. line .. ": rcache_live: " .. line .. ": [%a ]+ %(unix:"), context)
      end

      local reader = rcache.new { socket = server.socket, namespace = ns }
      local all = reader:get_all_records()
      reader:close()
      local count = { old = 0, new = 0 }
      for i = 1, N do
        local r = all["k" .. i]
        assert.is_table(r, context)
        assert.same({ i = i, gen = r.gen, pad = pad }, r, context)
        count[r.gen] = count[r.gen] + 1
      end
      assert.is_true(count.old == N or count.new == N,
        ("%s: a mix of %d old and %d new records"):format(context, count.old, count.new))
      local big = { old = 0, new = 0 }
      local fields = 0
      for _, v in pairs(all.big) do
        big[v] = big[v] + 1
        fields = fields + 1
      end
      assert.equal(N, fields, context)
      assert.is_true(big.old == N or big.new == N,
        ("%s: the big record mixes %d old and %d new fields"):format(context, big.old, big.new))
      if said:find("acked add") then assert.equal(N, count.new, context) end
      if said:find("acked update") then assert.equal(N, big.new, context) end
      seen[#seen + 1] = ("%s %.3f: add %s, update %s"):format(mode, wait, count.new == N and "new" or "old",
        big.new == N and "new" or "old")
    end
    within(20, now() - t_start, "the rounds (" .. table.concat(seen, "; ") .. ")")
  end)
end)

describe("requirepass and ACL users", function()
  local PASS, USER, USER_PASS = "s3cret-pw", "app", "app-pw"
  local CONFIG = { "requirepass " .. PASS, "user " .. USER .. " on >" .. USER_PASS .. " ~* +@all",
    "user nopw on nopass ~* +@all" }
  local server
  setup(function() server = Server.new(CONFIG) end)
  teardown(function() server:destroy() end)

  -- No secret of these tests in text.
  local function assert_no_secret(text)
    for _, secret in ipairs { PASS, USER_PASS, "wrong-pw", "n3w-pw" } do
      assert.is_nil(text:find(secret, 1, true), "a password shows in: " .. text)
    end
  end

  -- (the server is made in setup: each case builds its options in the test)
  for _, case in ipairs {
    { "password only", function() return { socket = server.socket, password = PASS } end },
    { "username and password", function() return { socket = server.socket, username = USER, password = USER_PASS } end },
    { "redis:// url with user and password", function()
      return { url = ("redis://%s:%s@127.0.0.1:%d"):format(USER, USER_PASS, server.port) } end },
    { "redis:// url with password only", function()
      return { url = ("redis://:%s@127.0.0.1:%d/2"):format(PASS, server.port) } end },
    { "unix:// url with user and password", function()
      return { url = ("unix://%s:%s@%s"):format(USER, USER_PASS, server.socket) } end },
    { "a username alone (an ACL user with nopass)", function() return { socket = server.socket, username = "nopw" } end },
    { "redis:// url with a username alone", function()
      return { url = ("redis://nopw@127.0.0.1:%d"):format(server.port) } end },
  } do
    it("right credentials work: " .. case[1], function()
      local opts = case[2]()
      opts.namespace = H.namespace("auth")
      local cache = rcache.new(opts)
      cache:set_record("k", { v = case[1] })
      assert.same({ v = case[1] }, cache:get_record("k"))
      assert.same({ k = { v = case[1] } }, cache:get_all_records())
      assert_no_secret(tostring(cache))
      cache:close()
    end)
  end

  local WRONGPASS = "authentication failed: WRONGPASS invalid username%-password pair or user is disabled%."
  for _, case in ipairs {
    { "a wrong password", function() return { socket = server.socket, password = "wrong-pw" } end, WRONGPASS, "unix" },
    { "an unknown user", function() return { socket = server.socket, username = "nobody", password = USER_PASS } end,
      WRONGPASS, "unix" },
    { "a user with another user's password", function()
      return { socket = server.socket, username = USER, password = PASS } end, WRONGPASS, "unix" },
    { "a wrong password in a url", function()
      return { url = ("redis://%s:wrong-pw@127.0.0.1:%d"):format(USER, server.port) } end, WRONGPASS, "tcp" },
    -- no AUTH sent: the server answers the first command with NOAUTH
    { "no password", function() return { socket = server.socket } end,
      "authentication [%a ]+: NOAUTH Authentication required%.", "unix" },
    { "no password, db 2 (SELECT comes first)", function() return { socket = server.socket, db = 2 } end,
      "authentication [%a ]+: NOAUTH Authentication required%.", "unix" },
  } do
    it(case[1] .. " raises a clear authentication error without the password, every time", function()
      local opts = case[2]()
      opts.namespace = H.namespace("auth")
      local cache = rcache.new(opts)
      local where = lit(where_of(server, case[4]))
      for _, op in ipairs(OPS) do
        local err = H.error_of(op[2], cache)
        assert.matches("^rcache_live: " .. op[1] .. ": " .. case[3] .. " %(" .. where .. "%)$", err)
        assert_no_secret(err)
      end
      assert_no_secret(tostring(cache))
      cache:close()
    end)
  end

  it("a server restarted with another password: a clean authentication error on reconnect, and the same "
    .. "cache works again once the password is back", function()
    local cache = rcache.new { socket = server.socket, password = PASS, namespace = H.namespace("auth"), timeout = 1 }
    cache:set_record("k", 1)
    server:kill()
    finally(function()
      if server.extra ~= CONFIG or not server:alive() then
        server:kill()
        server:start(CONFIG)
      end
    end)
    assert.matches("^rcache_live: get_record: ", H.error_of(cache.get_record, cache, "k"))
    server:start { "requirepass n3w-pw" }
    for _ = 1, 2 do
      local err = H.error_of(cache.get_record, cache, "k")
      assert.matches("^rcache_live: get_record: " .. WRONGPASS .. " %(unix:", err)
      assert_no_secret(err)
    end
    server:kill()
    server:start(CONFIG)
    assert.is_nil(cache:get_record("k")) -- reconnected and authenticated; the new server is empty
    cache:set_record("k", 2)
    assert.equal(2, cache:get_record("k"))
    cache:close()
  end)

  it("rcache_live.config and caches made from REDIS_PASSWORD / REDIS_URL never show the password", function()
    local script = [[
      local config = require "rcache_live.config"
      local names = {}
      for k in pairs(config) do if type(config[k]) ~= "function" and type(config[k]) ~= "table" then names[#names + 1] = k end end
      table.sort(names)
      for _, k in ipairs(names) do print("config", k, tostring(config[k])) end
      local rcache = require "rcache_live"
      local cache = rcache.new { namespace = os.getenv("NS") }
      cache.k = "v"
      print("read", cache.k)
      print("cache", tostring(cache))
      local bad = rcache.new { namespace = "x", password = "wrong-pw" }
      print("wrong", select(2, pcall(bad.get_record, bad, "k")))
      print("bad url", select(2, pcall(rcache.new, { url = "redis://app:wrong-pw@127.0.0.1:notaport" })))
      print("bad scheme", select(2, pcall(rcache.new, { url = "rediss://app:wrong-pw@127.0.0.1:1" })))
    ]]
    for _, env in ipairs {
      { REDIS_SOCKET = server.socket, REDIS_PASSWORD = PASS, NS = H.namespace("env") },
      { REDIS_SOCKET = server.socket, REDIS_USERNAME = USER, REDIS_PASSWORD = USER_PASS, NS = H.namespace("env") },
      { REDIS_URL = ("redis://%s:%s@127.0.0.1:%d/3"):format(USER, USER_PASS, server.port), NS = H.namespace("env") },
    } do
      local out = run_lua(script, env)
      assert.matches("\nexit=0\n$", out)
      assert.matches("config\tpassword\t%*%*%*%*%*%*%*%*\n", out)
      assert.matches("\nread\tv\n", out)
      assert.matches("\nwrong\trcache_live: get_record: " .. WRONGPASS .. " %(", out)
      assert.matches("\nbad url\trcache_live: new: ", out)
      assert.matches("\nbad scheme\trcache_live: new: ", out)
      assert_no_secret(out)
    end
  end)
end)

describe("which calls may be retried", function()
  -- Each case: the records before, the call, what it returns on its first
  -- success and when an earlier attempt already ran, and the records after.
  local CASES = {
    { "get_record", { k = "v" }, function(c) return c:get_record("k") end, "v", "v", { k = "v" } },
    { "exists", { k = "v" }, function(c) return c:exists("k") end, true, true, { k = "v" } },
    { "get_all_records", { a = 1, b = { 2 } }, function(c) return c:get_all_records() end,
      { a = 1, b = { 2 } }, { a = 1, b = { 2 } }, { a = 1, b = { 2 } } },
    { "set_record", { k = "old" }, function(c) return c:set_record("k", { v = "new" }) end, nil, nil,
      { k = { v = "new" } } },
    { "cache[k] = v", { k = "old" }, function(c) c.k = "new" end, nil, nil, { k = "new" } },
    { "update", { k = { a = 1, b = 1 } }, function(c) return c:update("k", { b = 2, c = 3 }) end,
      { a = 1, b = 2, c = 3 }, { a = 1, b = 2, c = 3 }, { k = { a = 1, b = 2, c = 3 } } },
    { "add", { x = "o" }, function(c) return c:add { a = 1, b = { 2 } } end, 2, 2, { x = "o", a = 1, b = { 2 } } },
    { "delete_record", { k = "v", o = "o" }, function(c) return c:delete_record("k") end, true, false, { o = "o" } },
    { "bulk_delete", { a = 1, b = 2, c = 3 }, function(c) return c:bulk_delete { "a", "b" } end, 2, 0, { c = 3 } },
    { "cleanup_inactive_records", { a = 1, b = 2 }, function(c) return c:cleanup_inactive_records(0) end, 2, 0, {} },
  }

  describe("after a call that raised because the server was down", function()
    local server
    setup(function() server = Server.new { "appendonly yes", "appendfsync always" } end)
    teardown(function() server:destroy() end)

    for _, case in ipairs(CASES) do
      local name, before, call, result, _, after = H.unpack(case, 1, 6)
      it(name .. ": nothing was done, and the retry once the server is back gives the intended records", function()
        local cache = rcache.new(options(server, "unix", { timeout = 1 }))
        cache:add(before)
        server:kill()
        finally(function() if not server:alive() then server:start() end end)
        assert.matches("^rcache_live: [%a_]+: [%a ]+ %(unix:", H.error_of(call, cache))
        assert.matches("^rcache_live: [%a_]+: connection refused %(unix:", H.error_of(call, cache))
        server:start()
        assert.same(before, cache:get_all_records()) -- the data survived (AOF); the failed call did nothing
        H.sleep(0.01)
        assert.same({ returned = result }, { returned = call(cache) })
        assert.same(after, cache:get_all_records())
        cache:close()
      end)
    end
  end)

  describe("after a call that timed out (it reached the server and ran once the stall ended)", function()
    local server
    setup(function() server = Server.new() end)
    teardown(function() server:destroy() end)

    for _, case in ipairs(CASES) do
      local name, before, call, _, again, after = H.unpack(case, 1, 6)
      it(name .. ": the retry gives the same records as one successful call", function()
        local cache = rcache.new(options(server, "unix", { timeout = 0.3 }))
        cache:add(before)
        H.sleep(0.01)
        server:pause()
        finally(function() server:resume() end)
        assert.matches("^rcache_live: [%a_]+: timed out %(unix:", H.error_of(call, cache))
        server:resume()
        server:cli("PING") -- the server has read what the timed-out call sent
        local between = cache:get_all_records()
        local ran = deepcompare(between, after, true)
        if name == "cleanup_inactive_records" then
          -- one script per bucket, not one transaction: seen half-way, some
          -- buckets are done and others not yet
          for key, value in pairs(between) do assert.same(before[key], value) end
        else
          assert.is_true(ran or deepcompare(between, before, true),
            "the timed-out call left a state that is neither before nor after")
        end
        local value = call(cache)
        if ran then assert.same({ returned = again }, { returned = value }) end
        assert.same(after, cache:get_all_records())
        cache:close()
      end)
    end
  end)
end)
