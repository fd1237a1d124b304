-- rcache_live inside nginx: a real nginx (Debian's, lua module, one worker)
-- runs examples/nginx/nginx.conf with its handlers over cosockets against
-- private redis-servers, driven with real HTTP requests. Tagged #nginx:
-- `make test-nginx` runs it (it needs build/luajit and nginx; `make test`
-- leaves it out, see .busted).
--
-- Redis A holds the examples' data (REDIS_URL, over TCP) and is the slow
-- one of the non-blocking test; Redis B (over its unix socket) serves the
-- fast probe. The spec reads and writes the same data with the plain-Lua
-- API (lua5.4, the hiredis core) to check both sides agree.

describe("under nginx #nginx", function()
  local rcache, json, Server, Nginx, http
  local A, B, nginx
  local ROOT

  local SESSION_TTL = 1.5
  local API_TTL = 1

  local function url(path) return nginx.url .. path end

  local function sleep(s) os.execute("sleep " .. s) end

  -- A plain-Lua cache on Redis A in the namespace a handler uses.
  local plain = {}
  local function on_a(namespace)
    plain[namespace] = plain[namespace] or rcache.new{ socket = A.socket, namespace = namespace }
    return plain[namespace]
  end

  -- A table as JSON: an array if marked as one or a non-empty sequence.
  local function kind(t)
    return (getmetatable(t) == rcache.array_mt or rawget(t, 1) ~= nil) and "array" or "object"
  end

  -- Deep equality that also keeps integers and floats apart and compares
  -- floats bit for bit (what "exact" means for the codec).
  local function same_exactly(x, y, path)
    path = path or "value"
    if type(x) == "number" and type(y) == "number" then
      assert(math.type(x) == math.type(y), ("%s: %s %s vs %s %s"):format(path,
        math.type(x), x, math.type(y), y))
      assert(string.pack("<n", x) == string.pack("<n", y), ("%s: %.17g vs %.17g"):format(path, x, y))
      return
    end
    assert(type(x) == type(y), ("%s: %s vs %s"):format(path, type(x), type(y)))
    if type(x) ~= "table" then
      assert(x == y, ("%s: %s vs %s"):format(path, tostring(x), tostring(y)))
      return
    end
    assert(kind(x) == kind(y), ("%s: %s vs %s"):format(path, kind(x), kind(y)))
    for k, v in pairs(x) do same_exactly(v, y[k], path .. "." .. tostring(k)) end
    for k in pairs(y) do assert(x[k] ~= nil, path .. "." .. tostring(k) .. " only on one side") end
  end

  -- Values of every JSON kind; under LuaJIT a number is a double, so the
  -- integers stay within 2^53 and the floats are not integral (an
  -- integral float comes back as an integer, see README.md, "Lua versions").
  local function sample()
    return {
      name = "Zoë \"quoted\" \\ tab\t✓",
      count = 42,
      big = 9007199254740991, -- 2^53 - 1
      negative = -17,
      ratio = 0.1,
      tiny = 5e-324,
      huge = 1.7976931348623157e308,
      third = 1 / 3,
      yes = true,
      no = false,
      nothing = rcache.null,
      list = { 1, "two", rcache.null, { three = 3.5 } },
      empty_list = rcache.array(),
      empty_object = {},
      nested = { a = { b = { c = { "deep" } } } },
    }
  end

  setup(function()
    rcache = require "rcache_live"
    json = rcache.json
    Server = require "support.server"
    Nginx = require "support.nginx"
    http = require "support.http"
    ROOT = Nginx.ROOT
    local so = ROOT .. "/build/luajit/rcache_live/core.so"
    assert(io.open(so), so .. " is missing: make build LUA_VERSION=luajit (make test-nginx does)"):close()
    A = Server.new()
    B = Server.new()
    nginx = Nginx.new{
      env = {
        REDIS_URL = "redis://127.0.0.1:" .. A.port,
        RCACHE_PROBE_SLOW_URL = "redis://127.0.0.1:" .. A.port,
        RCACHE_PROBE_FAST_URL = "unix://" .. B.socket,
      },
      set = { session_ttl = SESSION_TTL, api_cache_ttl = API_TTL },
      include = ROOT .. "/spec/support/nginx/probe.conf",
      lua_path = ROOT .. "/spec/support/nginx/?.lua",
    }
  end)

  teardown(function()
    if nginx then nginx:stop() end
    if A then A:destroy() end
    if B then B:destroy() end
  end)

  -- Every test leaves the error log free of Lua errors unless it expects
  -- them (then it clears them with this).
  local function lua_errors()
    local errors = {}
    for line in (nginx:error_log() or ""):gmatch("[^\n]+") do
      if line:find("%[error%]") or line:find("%[alert%]") or line:find("%[crit%]") then
        errors[#errors + 1] = line
      end
    end
    return errors
  end
  local seen_errors = 0
  local function new_errors()
    local errors = lua_errors()
    local fresh = { table.unpack(errors, seen_errors + 1) }
    seen_errors = #errors
    return fresh
  end
  after_each(function()
    if nginx then assert.same({}, new_errors()) end
  end)

  describe("the session store (Active TTL)", function()
    local function session(method, id, body)
      return http.request(method, url("/session"), { headers = id and { Cookie = "sid=" .. id }, body = body })
    end

    it("creates a session, reads it, merges fields into it and ends it", function()
      local created = session("POST", nil, '{"user":"alice","roles":["admin"]}')
      assert.equal(201, created.status, created.body)
      local id = json.decode(created.body).id
      assert.matches("^%x+$", id)
      assert.matches("sid=" .. id .. ";", created.headers["set-cookie"])

      local read = session("GET", id)
      assert.equal(200, read.status)
      local data = json.decode(read.body)
      assert.equal("alice", data.user)
      assert.same({ "admin" }, data.roles)
      assert.is_true(math.type(data.created) == "integer")

      local patched = session("PATCH", id, '{"theme":"dark"}')
      assert.equal(200, patched.status, patched.body)
      assert.equal("dark", json.decode(patched.body).theme)
      assert.equal("alice", on_a("session"):get_record(id).user) -- the other fields stay

      assert.equal(204, session("DELETE", id).status)
      assert.equal(404, session("GET", id).status)
      assert.equal(404, session("PATCH", id, '{"theme":"light"}').status)
      assert.is_false(on_a("session"):exists(id)) -- PATCH did not bring it back
      assert.equal(404, session("DELETE", id).status)
    end)

    it("keeps a session that is read alive past its TTL; an idle one expires", function()
      local kept = json.decode(session("POST", nil, '{"user":"kept"}').body).id
      local idle = json.decode(session("POST", nil, '{"user":"idle"}').body).id
      local ttl = on_a("session"):ttl(kept)
      assert.is_true(ttl > SESSION_TTL - 0.3 and ttl <= SESSION_TTL, tostring(ttl))
      for _ = 1, 3 do -- 2.7 s in all, well past the 1.5 s TTL
        sleep(0.9)
        assert.equal(200, session("GET", kept).status)
        -- the read gave it its full TTL again
        assert.is_true(on_a("session"):ttl(kept) > SESSION_TTL - 0.3)
      end
      assert.equal(404, session("GET", idle).status)
      assert.is_false(on_a("session"):exists(idle))
      assert.equal("kept", json.decode(session("GET", kept).body).user)
    end)

    it("answers 401 without a session cookie and 400 for a body that is not a JSON object", function()
      assert.equal(401, session("GET").status)
      assert.equal(401, session("GET", "not-hex!").status)
      assert.equal(400, session("POST", nil, "{broken").status)
      assert.equal(400, session("POST", nil, '"a string"').status)
    end)
  end)

  describe("the API response cache", function()
    it("asks the slow API on a miss, answers from Redis on a hit, per path and arguments, until the TTL ends", function()
      local first = http.get(url("/api/items?page=1"))
      assert.equal(200, first.status)
      assert.equal("MISS", first.headers["x-cache"])
      local answer = json.decode(first.body)
      assert.equal("/slow-api/items", answer.path)
      assert.equal("page=1", answer.args)

      local second = http.get(url("/api/items?page=1"))
      assert.equal("HIT", second.headers["x-cache"])
      assert.equal(first.body, second.body) -- byte for byte: the API was not asked again
      assert.equal("application/json", second.headers["content-type"])

      local other = http.get(url("/api/items?page=2"))
      assert.equal("MISS", other.headers["x-cache"])
      assert.equal(answer.call + 1, json.decode(other.body).call)

      -- the plain-Lua API sees the cached answer, with the TTL it was given
      local record = on_a("api"):get_record("items?page=1")
      assert.equal(first.body, record.body)
      assert.is_true(on_a("api"):ttl("items?page=1") <= API_TTL)

      sleep(API_TTL + 0.2)
      local expired = http.get(url("/api/items?page=1"))
      assert.equal("MISS", expired.headers["x-cache"])
      assert.equal(answer.call + 2, json.decode(expired.body).call)
      assert.equal("HIT", http.get(url("/api/items?page=1")).headers["x-cache"])
    end)
  end)

  describe("content_by_lua (/records/<key>)", function()
    it("writes, reads and deletes a record", function()
      local put = http.request("PUT", url("/records/greeting?ttl=60"), { body = '{"text":"hello"}' })
      assert.equal(204, put.status, put.body)
      local got = http.get(url("/records/greeting"))
      assert.equal(200, got.status)
      assert.same({ text = "hello" }, json.decode(got.body))
      local ttl = on_a("records"):ttl("greeting")
      assert.is_true(ttl > 59 and ttl <= 60, tostring(ttl))
      assert.same({ deleted = true }, json.decode(http.request("DELETE", url("/records/greeting")).body))
      assert.same({ deleted = false }, json.decode(http.request("DELETE", url("/records/greeting")).body))
      assert.equal(404, http.get(url("/records/greeting")).status)
      assert.equal(400, http.request("PUT", url("/records/x"), { body = "[1," }).status)
    end)

    it("reads exactly what the plain-Lua API wrote", function()
      local value = sample()
      on_a("records")["from-lua"] = value
      local got = http.get(url("/records/from-lua"))
      assert.equal(200, got.status)
      same_exactly(value, json.decode(got.body))
    end)

    it("writes what the plain-Lua API reads exactly", function()
      local value = sample()
      local put = http.request("PUT", url("/records/from-nginx"), { body = json.encode(value) })
      assert.equal(204, put.status, put.body)
      same_exactly(value, on_a("records")["from-nginx"])
    end)
  end)

  describe("access_by_lua (/protected)", function()
    it("lets a request through only with a known API key, and hands its record to the content phase", function()
      assert.equal(401, http.get(url("/protected")).status)
      assert.equal(403, http.get(url("/protected"), { headers = { ["X-Api-Key"] = "k-unknown" } }).status)
      on_a("apikeys")["k-123"] = { client = "acme" }
      local ok = http.get(url("/protected"), { headers = { ["X-Api-Key"] = "k-123" } })
      assert.equal(200, ok.status)
      assert.same({ hello = "acme" }, json.decode(ok.body))
      on_a("apikeys")["k-123"] = nil
      assert.equal(403, http.get(url("/protected"), { headers = { ["X-Api-Key"] = "k-123" } }).status)
    end)
  end)

  describe("ngx.timer (/later/<key>)", function()
    it("writes the record from a timer after the request was answered", function()
      local value = sample()
      local res = http.request("POST", url("/later/timed?ttl=30"), { body = json.encode(value) })
      assert.equal(202, res.status, res.body)
      local got
      for _ = 1, 100 do
        got = on_a("records"):get_record("timed")
        if got ~= nil then break end
        sleep(0.02)
      end
      assert.is_not_nil(got, "the timer did not write the record within 2 s")
      same_exactly(value, got)
      assert.is_true(on_a("records"):ttl("timed") <= 30)
    end)
  end)

  describe("rewrite_by_lua and log_by_lua (/probe/phases)", function()
    it("work in the rewrite phase; raise in the log phase, where nginx has no cosockets", function()
      local res = http.get(url("/probe/phases"))
      assert.equal(200, res.status, res.body)
      assert.equal("written and read in the rewrite phase\n", res.body)
      local line
      for _ = 1, 100 do -- the log phase runs after the answer went out
        line = (nginx:error_log() or ""):match("log phase: [^\n]*")
        if line then break end
        sleep(0.01)
      end
      local expected = "log phase: rcache_live: get_record: no network I/O in nginx's log phase "
        .. "(cosockets are not available there) while logging request"
      assert.equal(expected, line and line:sub(1, #expected))
    end)
  end)

  describe("every operation over cosockets (/probe/ops)", function()
    it("gives the answers the plain-Lua API gives", function()
      local res = http.get(url("/probe/ops"))
      assert.equal(200, res.status, res.body)
      local r = json.decode(res.body)
      assert.same({ n = 1, m = 2 }, r.update)
      assert.equal(2, r.add)
      assert.is_true(r.exists)
      assert.is_true(r.ttl > 9 and r.ttl <= 10)
      assert.same({ s = { n = 1, m = 2 }, a1 = 1, a2 = { 2 } }, r.all)
      assert.same({ "a1", "a2", "s" }, r.keys)
      assert.equal(1, r.bulk_delete)
      assert.is_true(r.deleted)
      assert.is_false(r.deleted_again)
      assert.equal(1, r.cleanup)
      assert.same({}, r.after)
      assert.equal(rcache.null, r.missing)
      assert.same({ x = 1 }, r.dict)
      assert.is_true(r.dict_after)
      assert.equal("rcache_live: get_record: the cache is closed", r.closed)
    end)
  end)

  -- One request reads from Redis A while A sleeps for 1 s (DEBUG SLEEP,
  -- sent on another connection just before); 50 requests to the fast probe
  -- go to the same worker meanwhile. Times are nginx's own (ngx.now()
  -- after ngx.update_time()), so a busy test machine cannot blur them.
  describe("a slow Redis call", function()
    local function scenario(transport)
      local slow_url = url("/probe/slow?transport=" .. transport)
      -- connected and warm first: the scripts are loaded, the pool filled
      assert.equal(200, http.get(slow_url).status)
      assert.equal(200, http.get(url("/probe/fast")).status)
      local out = os.tmpname()
      local wait_sleep = A:debug_sleep(1)
      sleep(0.1) -- A is asleep
      os.execute(("(curl -sS --max-time 10 %s > %s; echo done >> %s) &"):format(
        "'" .. slow_url .. "'", out, out))
      sleep(0.1) -- the worker has taken the slow request and waits for A
      local fast = {}
      for i = 1, 50 do fast[i] = url("/probe/fast") end
      local answers = http.parallel(fast)
      wait_sleep()
      local slow_text
      for _ = 1, 300 do
        local f = io.open(out)
        slow_text = f and f:read("a") or ""
        if f then f:close() end
        if slow_text:find("done\n$") then break end
        sleep(0.02)
      end
      os.remove(out)
      local slow = json.decode(assert(slow_text:match("^(%b{})"), "slow probe: " .. slow_text))
      local served, statuses = {}, 0
      for at in answers:gmatch('"at":([%d.e+]+)') do served[#served + 1] = tonumber(at) end
      for _ in answers:gmatch("status 200\n") do statuses = statuses + 1 end
      assert.equal(50, statuses, answers)
      assert.equal(50, #served, answers)
      table.sort(served)
      -- the slow read did wait for A
      assert.is_true(slow.finished - slow.started >= 0.5,
        ("the slow read took %.3f s"):format(slow.finished - slow.started))
      return slow, served
    end

    it("over cosockets leaves the worker free: 50 other requests are served while it waits", function()
      local slow, served = scenario("cosocket")
      assert.is_true(served[50] < slow.finished, ("the last fast request was served %.3f s after the slow one ended")
        :format(served[50] - slow.finished))
      -- and all 50 within well under the second the slow one waited
      assert.is_true(served[50] - served[1] < 0.5, ("the 50 took %.3f s"):format(served[50] - served[1]))
    end)

    it("over the blocking hiredis connection holds them all up (the control: the check above fails)", function()
      local slow, served = scenario("hiredis")
      assert.is_true(served[1] >= slow.finished, ("the first fast request was served %.3f s before the slow one ended")
        :format(slow.finished - served[1]))
    end)
  end)

  describe("with Redis down", function()
    it("rcache.safe answers nil, err; the raising API raises; both work again once Redis is back", function()
      assert.equal(204, http.request("PUT", url("/safe/k"), { body = '{"v":1}' }).status)
      assert.same({ v = 1 }, json.decode(http.get(url("/safe/k")).body))
      local miss = http.get(url("/safe/nope"))
      assert.equal(404, miss.status) -- a miss is nil with no err
      new_errors()

      A:stop()
      local down = http.get(url("/safe/k"))
      assert.equal(503, down.status, down.body)
      local err = json.decode(down.body).error
      assert.matches("^rcache_live: get_record: ", err)
      assert.matches("127%.0%.0%.1:" .. A.port, err)
      local put = http.request("PUT", url("/safe/k"), { body = '{"v":2}' })
      assert.equal(503, put.status)
      assert.matches("^rcache_live: set_record: ", json.decode(put.body).error)
      assert.same({}, new_errors()) -- nothing was raised

      -- the raising API: a 500, the error in the log
      assert.equal(500, http.get(url("/records/k")).status)
      local logged = new_errors()
      assert.equal(1, #logged, table.concat(logged, "\n"))
      assert.matches("rcache_live: get_record: ", logged[1])

      -- the first request after the restart works: nothing stale is reused
      A:start()
      local back = http.get(url("/safe/k"))
      assert.equal(404, back.status, back.body) -- the restarted server is empty
      assert.equal(204, http.request("PUT", url("/safe/k"), { body = '{"v":3}' }).status)
      assert.same({ v = 3 }, json.decode(http.get(url("/safe/k")).body))
      assert.same({ v = 3 }, json.decode(http.get(url("/records/k")).body)) -- /safe/ shares its cache
    end)
  end)
end)
