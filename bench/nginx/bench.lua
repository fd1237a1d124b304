-- bench/nginx/bench.lua: requests/s of an nginx endpoint reading a record
-- with rcache_live (cosockets) against the same endpoint written with
-- lua-resty-redis + lua-cjson, in the same nginx, on the same Redis.
--
--   make bench-nginx                 (lua5.4 bench/nginx/bench.lua)
--   make bench-nginx BENCH=--quick   3 s per run instead of 10
--
-- It starts a private redis-server and nginx (one worker, the example
-- configuration plus bench/nginx/locations.conf), writes one ~60-byte
-- record with the plain-Lua API, checks both endpoints answer the same
-- value, then runs wrk against each, with 1 and with 10 connections,
-- alternating, ROUNDS times; figures are the medians (requests/s with the
-- range of the rounds). Target: ours at least 0.9x theirs.
package.path = "./spec/?.lua;" .. package.path
local rcache = require "rcache_live"
local internal = require("rcache_live.core").internal
local Server = require "support.server"
local Nginx = require "support.nginx"
local http = require "support.http"

local QUICK = arg[1] == "--quick"
-- short runs, many rounds: the machine is shared, and alternating often
-- spreads the drift of its load over both sides
local DURATION = QUICK and 3 or 6
local ROUNDS = QUICK and 1 or 5
local TARGET = 0.9

local run = require("support.shell").run

local function median(list)
  table.sort(list)
  local n = #list
  if n % 2 == 1 then return list[(n + 1) / 2] end
  return (list[n / 2] + list[n / 2 + 1]) / 2
end

-- wrk's "1.23ms" / "456.00us" / "1.01s" -> microseconds
local function micros(text)
  local n, unit = text:match("^([%d.]+)(%a+)$")
  local scale = { us = 1, ms = 1e3, s = 1e6, m = 6e7 }
  return tonumber(n) * assert(scale[unit], "unit " .. tostring(unit))
end

-- One wrk run -> requests/s, mean, p50 and p99 latency (µs), errors.
local function wrk(url, connections)
  local out = run(("wrk -t1 -c%d -d%ds --latency %s 2>&1"):format(connections, DURATION, url))
  local rps = tonumber(out:match("Requests/sec:%s*([%d.]+)"))
  if not rps then error("wrk: " .. out) end
  local errors = out:match("Non%-2xx or 3xx responses: (%d+)") or out:match("Socket errors: ([^\n]+)")
  return {
    rps = rps,
    mean = micros(out:match("Latency%s+(%S+)")),
    p50 = micros(out:match("\n%s+50%%%s+(%S+)")),
    p99 = micros(out:match("\n%s+99%%%s+(%S+)")),
    errors = errors,
  }
end

local function info(cmd) return (run(cmd .. " 2>/dev/null"):gsub("%s+$", "")) end

local function version(pkg)
  return info("dpkg-query -W -f='${Version}' " .. pkg)
end

local redis = Server.new()
local nginx
local ok, err = pcall(function()
  -- the record, written as the library writes it; its Redis key for resty
  local cache = rcache.new{ socket = redis.socket, namespace = "bench", track = false }
  local record = { id = 1042, name = "Alice", email = "alice@example.com", active = true }
  cache["user:1"] = record
  local key = internal.key(cache, "user:1")
  local stored = redis:cli("GET", key)

  local root = run("pwd"):gsub("\n$", "")
  nginx = Nginx.new{
    env = { RCACHE_BENCH_PORT = tostring(redis.port), RCACHE_BENCH_KEY = key },
    include = root .. "/bench/nginx/locations.conf",
    lua_path = root .. "/bench/nginx/?.lua",
  }
  local endpoints = {
    { name = "rcache_live", url = nginx.url .. "/bench/rcache" },
    { name = "lua-resty-redis + cjson", url = nginx.url .. "/bench/resty" },
  }
  for _, e in ipairs(endpoints) do
    local res = http.get(e.url)
    assert(res.status == 200, e.name .. ": " .. res.status .. " " .. res.body)
    local got = rcache.json.decode(res.body)
    for k, v in pairs(record) do assert(got[k] == v, e.name .. ": " .. res.body) end
    e.body = res.body
  end

  local loadavg = info("cut -d' ' -f1-3 /proc/loadavg")
  print("# rcache_live in nginx vs lua-resty-redis")
  print()
  print("date:      " .. os.date("!%Y-%m-%d %H:%M UTC"))
  print("command:   lua5.4 bench/nginx/bench.lua" .. (QUICK and " --quick" or ""))
  print("machine:   " .. info("nproc") .. " CPUs, " .. info("sed -n 's/^model name\\s*: //p' /proc/cpuinfo | head -1"))
  print(("software:  nginx %s, libnginx-mod-http-lua %s, luajit2 %s, lua-nginx-redis %s, lua-cjson %s, redis %s, wrk %s")
    :format(version("nginx"), version("libnginx-mod-http-lua"), version("libluajit2-5.1-2"),
      version("lua-nginx-redis"), version("lua-cjson"), version("redis-server"), version("wrk")))
  print("setup:     1 nginx worker; Redis on 127.0.0.1 TCP; keepalive pools of 64 on both sides;")
  print("           wrk -t1 -cN -d" .. DURATION .. "s, " .. ROUNDS .. " round(s) alternating, medians")
  print(("record:    %d bytes in Redis: %s"):format(#stored, stored))
  print(("answers:   ours %s | theirs %s"):format(endpoints[1].body, endpoints[2].body))
  print("load:      " .. loadavg .. " at the start")
  print()

  local results = {}
  for _, c in ipairs { 1, 10 } do
    results[c] = {}
    for _, e in ipairs(endpoints) do results[c][e.name] = { rps = {}, mean = {}, p50 = {}, p99 = {} } end
    for round = 1, ROUNDS do
      -- alternate who goes first, so drift in the machine's load is shared
      local order = round % 2 == 1 and { 1, 2 } or { 2, 1 }
      for _, i in ipairs(order) do
        local e = endpoints[i]
        local r = wrk(e.url, c)
        if r.errors then error(e.name .. ": wrk saw errors: " .. r.errors) end
        for k, list in pairs(results[c][e.name]) do list[#list + 1] = r[k] end
      end
    end
  end

  print("| connections | endpoint | requests/s | (rounds) | mean latency | p50 | p99 |")
  print("|---:|---|---:|---:|---:|---:|---:|")
  local summary = {}
  for _, c in ipairs { 1, 10 } do
    for _, e in ipairs(endpoints) do
      local r = results[c][e.name]
      e.rps = median(r.rps)
      print(("| %d | %s | %.0f | %.0f–%.0f | %.0f µs | %.0f µs | %.0f µs |"):format(c, e.name, e.rps,
        r.rps[1], r.rps[#r.rps], median(r.mean), median(r.p50), median(r.p99)))
    end
    local ratio = endpoints[1].rps / endpoints[2].rps
    summary[#summary + 1] = ("%d connection%s: ours/theirs = %.2f× (target ≥ %.1f×: %s)"):format(
      c, c == 1 and "" or "s", ratio, TARGET, ratio >= TARGET and "met" or "MISSED")
  end
  print()
  for _, line in ipairs(summary) do print(line) end
  print()
  print("load:      " .. info("cut -d' ' -f1-3 /proc/loadavg") .. " at the end")
end)
local log = nginx and nginx:error_log() or ""
if nginx then nginx:stop() end
redis:destroy()
if not ok then
  io.stderr:write("bench-nginx: ", tostring(err), "\n")
  for line in log:gmatch("[^\n]+") do
    if line:find("%[error%]") then io.stderr:write(line, "\n") end
  end
  os.exit(1)
end
