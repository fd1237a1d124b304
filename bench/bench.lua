-- bench/bench.lua: what rcache_live costs, measured against Redis's own
-- floor in the same run, on the same server, with the same payload bytes.
--
--   make bench            (spec/support/with-redis lua5.4 bench/bench.lua)
--   make bench BENCH=--quick    small counts: a smoke test in under a minute
--
-- The server is the throwaway one spec/support/with-redis starts: this
-- script FLUSHALLs it between measurements. Baselines:
--   redis-benchmark -c 1 -P 1     the round-trip limit for one connection
--   redis-benchmark -c 1 -P 1000  the same, pipelined, for bulk rows
--   build/bench/hiredis_loop      a bare blocking hiredis loop (no Lua):
--                                 the floor for a hiredis-based client
-- plus a pure-Lua peer (Debian's lua-redis over luasocket, with lua-cjson).
-- Every figure is the median of several runs; ratios are our throughput
-- divided by the baseline's (higher is better).
package.path = arg[0]:gsub("[^/]*$", "") .. "?.lua;" .. package.path
local L = require "lib"
local rcache = require "rcache_live"
local internal = require("rcache_live.core").internal
local cjson = require "cjson"

local QUICK = arg[1] == "--quick"
local C = QUICK and {
  runs = 3,              -- rounds per figure (median)
  single = 1000,         -- single-record operations per round
  baseline = 3000,       -- requests per redis-benchmark / hiredis loop run (-P 1)
  bulk_baseline = 30000, -- the same with -P 1000
  adds = 2,              -- add{} calls of 1,000 records per round
  sizes = { 1000, 3000, 10000 }, -- get_all_records / cleanup scaling (10 % idle)
  bulk_runs = 2,         -- fills per size (median)
  python = { 2000, 1000 }, -- the original's cleanup case: tracked, idle
  leak = { 10000, 100000 }, -- Lua RSS after this many mixed operations
  per_record = 10000,    -- records for Redis bytes per record
  codec_bytes = 2e6,     -- JSON bytes per codec run
  warm_up = 1000,        -- round trips before each task (see warm_up)
} or {
  runs = 5,
  single = 10000,
  baseline = 30000,
  bulk_baseline = 200000,
  adds = 20,
  sizes = { 10000, 100000, 1000000 },
  bulk_runs = 3,
  python = { 10000, 5000 },
  leak = { 10000, 1000000 },
  per_record = 100000,
  codec_bytes = 2e7,
  warm_up = 5000,
}
local GET_ALL_SIZE, CLEANUP_SIZE = C.sizes[2], C.sizes[3] -- the main table's bulk rows
local TTL_MS = 3600000 -- rcache_live's default TTL: baselines SET with the same PX

local SOCKET = assert(os.getenv("RCACHE_TEST_SOCKET"), "run through spec/support/with-redis (make bench)")
local PORT = assert(tonumber(os.getenv("RCACHE_TEST_PORT")))
local HIREDIS_LOOP = os.getenv("HIREDIS_LOOP") or "build/bench/hiredis_loop"
assert(io.open(HIREDIS_LOOP), HIREDIS_LOOP .. " is missing: make bench builds it")

local transports = {
  { name = "unix socket", options = { socket = SOCKET }, target = SOCKET,
    rb = "-s " .. L.quote(SOCKET), peer = { "unix://" .. SOCKET } },
  { name = "loopback TCP", options = { host = "127.0.0.1", port = PORT }, target = "127.0.0.1:" .. PORT,
    rb = "-h 127.0.0.1 -p " .. PORT, peer = { "127.0.0.1", PORT } },
}

---------------------------------------------------------------------------
-- Payloads: the exact bytes rcache_live stores are also the baselines' value.

local small = { name = "Alice", age = 25, tags = { "admin", "beta" }, score = 97.5 }

local function order(i)
  return { id = 100000 + i, item = ("Widget model %02d, blue"):format(i), price = 19.99 + i,
    qty = i % 4 + 1, shipped = i % 2 == 0 }
end
local kilo = { name = "Alice Smith", age = 25, score = 97.5, email = "alice.smith@example.com",
  tags = { "admin", "beta", "premium", "eu-west" }, active = true,
  address = { street = "12 Rue de la Paix", city = "Paris", zip = "75002", country = "FR" },
  orders = {} }
for i = 1, 9 do kilo.orders[i] = order(i) end

-- ~100 KB: a page of users, each with an address and recent orders.
local nested = { page = 1, per_page = 320, users = {} }
for u = 1, 320 do
  local user = { id = u, name = "user" .. u, score = u / 7, tags = { "t" .. u % 5, "t" .. u % 3 },
    address = { city = "City " .. u % 17, geo = { lat = 48.85 + u / 1000, lon = 2.35 - u / 1000 } },
    orders = {} }
  for i = 1, 2 do user.orders[i] = order(u * 10 + i) end
  nested.users[u] = user
end

local payloads = {
  { value = small },
  { value = kilo },
}
for _, p in ipairs(payloads) do
  p.json = rcache.json.encode(p.value)
  p.name = ("%d B"):format(#p.json)
end

---------------------------------------------------------------------------
-- Redis helpers: raw commands over a plain (track = false) connection.

local function open(t, options)
  local o = { namespace = "bench" }
  for k, v in pairs(t.options) do o[k] = v end
  for k, v in pairs(options or {}) do o[k] = v end
  return rcache.new(o)
end

local raw = {}
local function redis(t, ...)
  raw[t] = raw[t] or open(t, { track = false, namespace = "raw" })
  local reply = internal.pipeline(raw[t], "bench", { { ... } })[1]
  if type(reply) == "table" and reply.err then error(reply.err, 2) end
  return reply
end

local function server_ms(t)
  local time = redis(t, "TIME")
  return tonumber(time[1]) * 1000 + tonumber(time[2]) // 1000
end

local function info_field(t, section, field)
  return tonumber(redis(t, "INFO", section):match(field .. ":([%d%.]+)"))
end

-- Where an operation's time goes: CPU seconds used so far by this process
-- and by the server (INFO cpu: all of redis-server, network I/O included),
-- and this process's write system calls (/proc/self/io: one per round trip).
local function writes()
  for line in io.lines("/proc/self/io") do
    local n = line:match("^syscw: (%d+)")
    if n then return tonumber(n) end
  end
end

local function cpu(t)
  local info = redis(t, "INFO", "cpu")
  local server = tonumber(info:match("used_cpu_sys:([%d%.]+)")) + tonumber(info:match("used_cpu_user:([%d%.]+)"))
  return { client = os.clock(), server = server, writes = writes() }
end

-- From a cpu() reading to now: CPU µs per operation, round trips per call.
local function cpu_per_op(t, before, count, calls)
  local trips = writes() - before.writes
  local now = cpu(t)
  return { client = (now.client - before.client) * 1e6 / count, server = (now.server - before.server) * 1e6 / count,
    trips = trips / (calls or count) }
end

---------------------------------------------------------------------------
-- Baselines

local function redis_benchmark(t, pipeline, n, ...)
  local args = {}
  for i = 1, select("#", ...) do args[i] = L.quote((select(i, ...))) end
  local out = L.shell(("redis-benchmark %s -c 1 -P %d -n %d -r 100000 -q %s"):format(
    t.rb, pipeline, n, table.concat(args, " ")))
  local rps
  for r in out:gmatch("([%d%.]+) requests per second") do rps = tonumber(r) end
  return (assert(rps, "no figure in redis-benchmark's output: " .. out))
end

local function hiredis_loop(t, pipeline, n, ...)
  local args = {}
  for i = 1, select("#", ...) do args[i] = L.quote((select(i, ...))) end
  local out = L.shell(("%s %s %d %d %s"):format(HIREDIS_LOOP, L.quote(t.target), n, pipeline,
    table.concat(args, " ")))
  local rate = out:match("^([%d%.]+) ops/s")
  return tonumber((assert(rate, out)))
end

-- Debian's lua-redis (redis-lua over luasocket) with lua-cjson: the pure-Lua peer.
local peer_redis = (function()
  local ok, mod = pcall(require, "redis")
  if ok then return mod end
  package.path = package.path .. ";/usr/share/lua/5.3/?.lua" -- Debian ships it for 5.1-5.3; it runs on 5.4
  ok, mod = pcall(require, "redis")
  return ok and mod or nil
end)()

---------------------------------------------------------------------------
-- Measurements

local KEYS = {}
for i = 1, 10000 do KEYS[i] = "user:" .. i end

local function hit(x) if x == nil then error("a read missed", 2) end end

-- A task doing fn(key, i) for C.single keys; returns its rate.
local function ops(fn)
  return function()
    local n, t0 = C.single, L.clock()
    for i = 1, n do fn(KEYS[i % #KEYS + 1], i) end
    return n / (L.clock() - t0)
  end
end

-- Runs every task once per round, C.runs rounds, so that a change in the
-- machine's load hits ours and the baselines alike. Returns each task's
-- median rate, and cpu[name] = cpu_per_op in the last round for the tasks
-- that give their count of operations (and of calls).
-- This VM answers the first few thousand round trips after an idle moment
-- up to three times as fast as the ones after them (ping-pong of 2,000 GETs:
-- 75k/s, then 20k/s), so a task's rate would depend on what ran before it.
-- Every task starts after the same busy warm-up instead.
local function warm_up(t)
  for _ = 1, C.warm_up do redis(t, "PING") end
end

local function rounds(t, tasks)
  local rates, res = {}, { cpu = {} }
  for r = 1, C.runs do
    for _, task in ipairs(tasks) do
      local name, run, count, calls = task[1], task[2], task[3], task[4]
      warm_up(t)
      local before = count and r == C.runs and cpu(t)
      rates[name] = rates[name] or {}
      rates[name][r] = run()
      if before then res.cpu[name] = cpu_per_op(t, before, count, calls) end
    end
  end
  for name, list in pairs(rates) do res[name] = L.median(list) end
  return res
end

-- Writes every key in KEYS once, with bookkeeping.
local function fill_keys(cache, value)
  for from = 1, #KEYS, 1000 do
    local batch = {}
    for i = from, math.min(from + 999, #KEYS) do batch[KEYS[i]] = value end
    cache:add(batch)
  end
end

-- Single-record operations, add{}, and their baselines, for one payload.
local function single_ops(t, p)
  local v, json, key = p.value, p.json, "key:__rand_int__"
  local plain = open(t, { track = false })
  local tracked = open(t)
  local active = open(t, { active_ttl = true })
  redis(t, "FLUSHALL")
  fill_keys(tracked, v)

  local peer = peer_redis and peer_redis.connect(table.unpack(t.peer))
  local encode, decode = cjson.encode, cjson.decode

  local batches = {} -- add{} of 1,000 records, C.adds times per run
  for a = 1, C.adds do
    local batch = {}
    for i = 1, 1000 do batch["add:" .. a .. ":" .. i] = v end
    batches[a] = batch
  end

  local function rb(...) local a = { ... } return function() return redis_benchmark(t, table.unpack(a)) end end
  local function hi(...) local a = { ... } return function() return hiredis_loop(t, table.unpack(a)) end end
  local tasks = {
    -- writes first: the baselines' SET runs leave keys 0..99999 for their GETs
    { "set", ops(function(k) plain[k] = v end), C.single },
    { "rb_set", rb(1, C.baseline, "SET", key, json, "PX", TTL_MS) },
    { "hi_set", hi(1, C.baseline, "SET", key, json, "PX", TTL_MS), C.baseline },
    { "rb_bulk_set", rb(1000, C.bulk_baseline, "SET", key, json, "PX", TTL_MS) },
    { "hi_bulk_set", hi(1000, C.bulk_baseline, "SET", key, json, "PX", TTL_MS), C.bulk_baseline },
    { "get", ops(function(k) hit(plain[k]) end), C.single },
    { "rb_get", rb(1, C.baseline, "GET", key) },
    { "hi_get", hi(1, C.baseline, "GET", key), C.baseline },
    { "rb_bulk_get", rb(1000, C.bulk_baseline, "GET", key) },
    { "hi_bulk_get", hi(1000, C.bulk_baseline, "GET", key), C.bulk_baseline },
    { "set_tracked", ops(function(k) tracked[k] = v end), C.single },
    { "get_tracked", ops(function(k) hit(tracked[k]) end), C.single },
    { "get_active", ops(function(k) hit(active[k]) end), C.single },
    { "update", ops(function(k, i) tracked:update(k, { score = i }) end), C.single },
    { "update_active", ops(function(k, i) active:update(k, { score = i }) end), C.single },
    { "add", function()
      local t0 = L.clock()
      for a = 1, C.adds do tracked:add(batches[a]) end
      return C.adds * 1000 / (L.clock() - t0)
    end, C.adds * 1000, C.adds },
    { "add_plain", function()
      local t0 = L.clock()
      for a = 1, C.adds do plain:add(batches[a]) end
      return C.adds * 1000 / (L.clock() - t0)
    end, C.adds * 1000, C.adds },
  }
  if peer then
    table.insert(tasks, { "peer_set", ops(function(k) peer:set(k, encode(v), "PX", TTL_MS) end) })
    table.insert(tasks, { "peer_get", ops(function(k) hit(decode(peer:get(k))) end) })
  end
  local res = rounds(t, tasks)
  if peer then peer:quit() end
  plain:close(); tracked:close(); active:close()
  return res
end

-- Fills the namespace for a cleanup: `idle` records, a pause, then the
-- others, all with bookkeeping. Returns the server time (ms) the idle ones
-- were last written by: cleaning up with a cutoff just after it deletes
-- exactly them, however long the fill took.
local function fill(t, cache, n, idle, value)
  local function add(from, to)
    for i = from, to, 1000 do
      local batch = {}
      for j = i, math.min(i + 999, to) do batch["rec:" .. j] = value end
      cache:add(batch)
    end
  end
  add(1, idle)
  local idle_until = server_ms(t)
  -- the pause must outlast the cleanup, whose cutoff moves on with the clock
  if idle > 0 then L.sleep(0.2 + idle * 3e-5) end
  add(idle + 1, n)
  return idle_until
end

-- get_all_records over n records, then (if idle > 0) cleanup_inactive_records
-- of the idle ones among them: C.bulk_runs runs, a fresh fill for each
-- cleanup. Median records/s, and the server's µs per record in the last run.
-- With del_baseline, each run also times DEL -P 1000 of 100,000 keys.
local function bulk(t, n, idle, value, del_baseline)
  local cache = open(t)
  local get_all, cleanup, ms, rb_del, hi_del = {}, {}, {}, {}, {}
  local res = { cpu = {} }
  local idle_until
  for r = 1, C.bulk_runs do
    local last = r == C.bulk_runs
    if r == 1 or idle > 0 then
      redis(t, "FLUSHALL")
      idle_until = fill(t, cache, n, idle, value)
    end
    collectgarbage()
    local before = last and cpu(t)
    local t0 = L.clock()
    local all = cache:get_all_records()
    get_all[r] = n / (L.clock() - t0)
    if last then res.cpu.get_all = cpu_per_op(t, before, n, 1) end
    local got = 0
    for _ in pairs(all) do got = got + 1 end
    assert(got == n, ("get_all_records returned %d of %d records"):format(got, n))
    all = nil
    collectgarbage()
    if idle > 0 then
      local minutes = (server_ms(t) - idle_until - 1) / 60000
      before = last and cpu(t)
      t0 = L.clock()
      local deleted = cache:cleanup_inactive_records(minutes)
      local dt = L.clock() - t0
      if last then res.cpu.cleanup = cpu_per_op(t, before, idle, 1) end
      assert(deleted == idle, ("cleanup deleted %d records, %d were idle (pause too short?)"):format(deleted, idle))
      cleanup[r], ms[r] = idle / dt, dt * 1000
    end
    if del_baseline then -- DEL of keys that exist: a SET -P 1000 writes them first
      local key = "key:__rand_int__"
      hiredis_loop(t, 1000, 100000, "SET", key, payloads[1].json, "PX", TTL_MS)
      rb_del[r] = redis_benchmark(t, 1000, 100000, "DEL", key)
      hiredis_loop(t, 1000, 100000, "SET", key, payloads[1].json, "PX", TTL_MS)
      hi_del[r] = hiredis_loop(t, 1000, 100000, "DEL", key)
    end
  end
  cache:close()
  res.get_all = L.median(get_all)
  if idle > 0 then res.cleanup, res.cleanup_ms = L.median(cleanup), L.median(ms) end
  if del_baseline then res.rb_del, res.hi_del = L.median(rb_del), L.median(hi_del) end
  return res
end

local function bulk_ops(t)
  local res = { sizes = {} }
  for _, n in ipairs(C.sizes) do res.sizes[n] = bulk(t, n, n // 10, small, n == CLEANUP_SIZE) end
  res.python = bulk(t, C.python[1], C.python[2], small)
  res.kilo = bulk(t, GET_ALL_SIZE, 0, kilo)
  return res
end

---------------------------------------------------------------------------
-- Report

local function ratio(a, b) return (a and b) and a / b or nil end
local function yes(ok) return ok and "yes" or "NO" end

local misses = {}
local function check(what, ok)
  if not ok then misses[#misses + 1] = what end
  return yes(ok)
end

local function transport_table(t, by_payload, b)
  print(("### %s: %s"):format(t.name, t.target))
  print()
  local rows = {}
  -- one row: ours (rate, cpu_per_op) against the two baselines
  local function row(label, p, rate, cpu_us, rb, hi, targets, peer)
    local r_rb, r_hi = ratio(rate, rb), ratio(rate, hi)
    local text, ok = {}, true
    for _, tg in ipairs(targets or {}) do
      local r = tg[1] == "rb" and r_rb or r_hi
      text[#text + 1] = ("≥ %.2f %s"):format(tg[2], tg[1] == "rb" and "r-b" or "hiredis")
      ok = ok and r ~= nil and r >= tg[2]
    end
    rows[#rows + 1] = { label, p.name, L.num(rate), L.num(1e6 / rate), L.num(cpu_us.trips), L.num(cpu_us.client),
      L.num(cpu_us.server), L.num(r_rb), L.num(r_hi),
      table.concat(text, ", "), targets and check(("%s: %s, %s"):format(t.name, label, p.name), ok) or "",
      L.num(peer) }
  end
  local single = { { "rb", 0.85 }, { "hi", 0.90 } }
  for _, p in ipairs(payloads) do
    local m = by_payload[p]
    local us = m.cpu
    row("set  cache[k] = v (track = false)", p, m.set, us.set, m.rb_set, m.hi_set, single, m.peer_set)
    row("get  cache[k] (track = false)", p, m.get, us.get, m.rb_get, m.hi_get, single, m.peer_get)
    row("set  cache[k] = v (default: track)", p, m.set_tracked, us.set_tracked, m.rb_set, m.hi_set)
    row("get  cache[k] (default: track)", p, m.get_tracked, us.get_tracked, m.rb_get, m.hi_get)
    row("get  cache[k] (active_ttl = true)", p, m.get_active, us.get_active, m.rb_get, m.hi_get, { { "rb", 0.80 } })
    -- the issue's update target: 0.45 for two round trips, 0.75 for an exact one-round-trip design
    local function update_target(c) return { { "rb", c.trips <= 1 and 0.75 or 0.45 } } end
    row("update(k, {score = i}) (default)", p, m.update, us.update, m.rb_get, m.hi_get, update_target(us.update))
    row("update(k, {score = i}) (active_ttl)", p, m.update_active, us.update_active, m.rb_get, m.hi_get,
      update_target(us.update_active))
  end
  for _, p in ipairs(payloads) do
    local m = by_payload[p]
    row("add{} of 1,000 records [per record]", p, m.add, m.cpu.add, m.rb_bulk_set, m.hi_bulk_set,
      { { "rb", 0.50 } })
    row("add{} of 1,000 (track = false) [per record]", p, m.add_plain, m.cpu.add_plain, m.rb_bulk_set,
      m.hi_bulk_set)
  end
  local label = ("get_all_records() over %s [per record]"):format(L.num(GET_ALL_SIZE))
  for i, g in ipairs { b.sizes[GET_ALL_SIZE], b.kilo } do
    local m = by_payload[payloads[i]]
    row(label, payloads[i], g.get_all, g.cpu.get_all, m.rb_bulk_get, m.hi_bulk_get, { { "rb", 0.30 } })
  end
  local c = b.sizes[CLEANUP_SIZE]
  row(("cleanup: %s idle of %s [per record]"):format(L.num(CLEANUP_SIZE // 10), L.num(CLEANUP_SIZE)),
    payloads[1], c.cleanup, c.cpu.cleanup, c.rb_del, c.hi_del, { { "rb", 0.30 } })
  L.table({ "<operation", "<payload", "ops/s", "µs/op", "round trips", "Lua CPU µs/op", "server CPU µs/op", "× r-b",
    "× hiredis", "<target", "<met?", "lua-redis ops/s" }, rows)
  print("Bulk rows: records/s, µs per record, round trips per call. Round trips: write system calls of this process")
  print("(/proc/self/io). CPU: this Lua process (os.clock) and redis-server (INFO cpu), in the last round; the rest")
  print("of µs/op is waiting (round trips, scheduling). × r-b, × hiredis: our ops/s over the baseline's.")
  print("update's target is 0.75 when it takes one round trip (the issue's exact one-round-trip design), else 0.45.")
  print()

  rows = {}
  for _, p in ipairs(payloads) do
    local m = by_payload[p]
    for _, cmd in ipairs { "set", "get" } do
      local single, bulk = m["hi_" .. cmd], m["hi_bulk_" .. cmd]
      rows[#rows + 1] = { cmd == "set" and "SET key:N <payload> PX " .. TTL_MS or "GET key:N", p.name,
        L.num(m["rb_" .. cmd]), L.num(single), L.num(m.cpu["hi_" .. cmd].server),
        L.num(m["rb_bulk_" .. cmd]), L.num(bulk), L.num(m.cpu["hi_bulk_" .. cmd].server) }
    end
  end
  rows[#rows + 1] = { "DEL key:N (existing)", "", "", "", "", L.num(c.rb_del), L.num(c.hi_del), "" }
  print("Baselines (ops/s; r-b = redis-benchmark -c 1; server CPU µs/op during the hiredis loop):")
  print()
  L.table({ "<command", "<payload", "r-b -P 1", "hiredis -P 1", "server CPU", "r-b -P 1000", "hiredis -P 1000",
    "server CPU" }, rows)
end

local function scaling_table(results)
  local rows = {}
  for _, t in ipairs(transports) do
    local sizes = results[t].bulk.sizes
    for _, n in ipairs(C.sizes) do
      rows[#rows + 1] = { t.name, L.num(n), L.num(1e6 / sizes[n].get_all), L.num(n // 10),
        L.num(1e6 / sizes[n].cleanup) }
    end
    local first, last = sizes[C.sizes[1]], sizes[C.sizes[#C.sizes]]
    local g = first.get_all / last.get_all
    local c = first.cleanup / last.cleanup
    rows[#rows + 1] = { t.name, ("%s / %s"):format(L.num(C.sizes[#C.sizes]), L.num(C.sizes[1])),
      ("%.2f× (%s)"):format(g, check(t.name .. ": get_all_records scaling", g <= 2)), "",
      ("%.2f× (%s)"):format(c, check(t.name .. ": cleanup scaling", c <= 2)) }
  end
  print("### Scaling: cost per record (60 B records, 10 % of them idle; must stay within 2×)")
  print()
  L.table({ "<transport", "records", "get_all_records µs/record", "idle", "cleanup µs/deleted record" }, rows)
end

local function python_table(t, m, b)
  local rows = {}
  local function row(what, theirs, ours, unit, needed)
    local r = unit == "ms" and theirs / ours or ours / theirs
    rows[#rows + 1] = { what, L.num(theirs) .. " " .. unit, L.num(ours) .. " " .. unit, ("%.1f×"):format(r),
      needed and ("≥ %d×"):format(needed) or "", needed and check("vs Python: " .. what, r >= needed) or "" }
  end
  row("set (default: track)", 14500, m.set_tracked, "/s")
  row("get (default: track)", 16400, m.get_tracked, "/s")
  row("get, Active TTL", 5400, m.get_active, "/s", 3)
  row("update", 8000, m.update, "/s")
  row("update, Active TTL", 3300, m.update_active, "/s", 3)
  row("add of 1,000 records", 15000, m.add, "records/s", 3)
  row(("get_all_records over %s"):format(L.num(C.sizes[1])), 15600, b.sizes[C.sizes[1]].get_all, "records/s", 3)
  row(("cleanup of %s idle among %s"):format(L.num(C.python[2]), L.num(C.python[1])),
    601 * C.python[2] / 5000, b.python.cleanup_ms, "ms", 3)
  print(("### Against the original: Python rcache-live 0.2.5 (redis-py + hiredis, loopback, ~60 B) vs ours on %s")
    :format(t.name))
  print()
  L.table({ "<operation", "Python", "rcache_live", "ratio", "needed", "<met?" }, rows)
  if C.python[1] ~= 10000 then print("(--quick: the cleanup figure is the original's 601 ms scaled to this size)\n") end
end

---------------------------------------------------------------------------
-- Server work: what Redis runs for one operation (INFO commandstats; the
-- commands a script calls are counted too, and inside the script's time).

local function server_work(t)
  local plain, tracked, active = open(t, { track = false }), open(t), open(t, { active_ttl = true })
  redis(t, "FLUSHALL")
  fill_keys(tracked, small)
  local n = C.single
  local batch = {}
  for i = 1, 1000 do batch["add:" .. i] = small end
  local cases = {
    { "set (track = false)", function(k) plain[k] = small end },
    { "get (track = false)", function(k) hit(plain[k]) end },
    { "set (default: track)", function(k) tracked[k] = small end },
    { "get (default: track)", function(k) hit(tracked[k]) end },
    { "get (active_ttl)", function(k) hit(active[k]) end },
    { "update (default)", function(k, i) tracked:update(k, { score = i }) end },
    { "update (active_ttl)", function(k, i) active:update(k, { score = i }) end },
    { "add{} of 1,000: per record", function() tracked:add(batch) end, 1000 },
  }
  local rows = {}
  for _, case in ipairs(cases) do
    local label, fn, per = case[1], case[2], case[3] or 1
    local calls = per > 1 and math.max(1, n // per) or n
    redis(t, "CONFIG", "RESETSTAT")
    for i = 1, calls do fn(KEYS[i % #KEYS + 1], i) end
    local stats = {}
    for name, c, usec in redis(t, "INFO", "commandstats"):gmatch("cmdstat_([%w|]+):calls=(%d+),usec=(%d+)") do
      if not (name:find("^config") or name:find("^script") or name == "info") then
        stats[#stats + 1] = { name = name, calls = c / (calls * per), usec = usec / (calls * per) }
      end
    end
    table.sort(stats, function(a, b) return a.usec > b.usec end)
    local text = {}
    for _, s in ipairs(stats) do
      local calls = s.calls == math.floor(s.calls) and ("%d"):format(s.calls) or ("%.3g"):format(s.calls)
      text[#text + 1] = ("%s %s×%.1f"):format(s.name:upper(), calls, s.usec / s.calls)
    end
    rows[#rows + 1] = { label, table.concat(text, "  ") }
  end
  plain:close(); tracked:close(); active:close()
  redis(t, "FLUSHALL")
  print(("### Server work per operation (%s, %s record)"):format(t.name, payloads[1].name))
  print()
  print("COMMAND calls×µs per call, per operation (INFO commandstats). A script's time includes the commands it calls.")
  print()
  L.table({ "<operation", "<commands" }, rows)
end

---------------------------------------------------------------------------
-- Floors by design: the server time an Active TTL read and a tracked add{}
-- would take if built another way, next to the shipped ones. Server time
-- (INFO commandstats) is the part of an operation no client can hide, and
-- unlike a rate it does not move with this VM's round trip.

-- Server µs per operation of fn() run n times: the script's own time when
-- it ran one (it includes the commands it called), else every command's.
local function server_us(t, n, fn)
  redis(t, "CONFIG", "RESETSTAT")
  for _ = 1, n do fn() end
  local total, script = 0, nil
  for name, usec in redis(t, "INFO", "commandstats"):gmatch("cmdstat_([%w|]+):calls=%d+,usec=(%d+)") do
    if name == "evalsha" then
      script = tonumber(usec)
    elseif not (name:find("^config") or name == "info") then
      total = total + tonumber(usec)
    end
  end
  return (script or total) / n
end

local function floors(t)
  local tracked, active = open(t), open(t, { active_ttl = true })
  redis(t, "FLUSHALL")
  fill_keys(tracked, small)
  local rk, prefix, ktext = internal.key(active, KEYS[1], "bench")
  local get_sha = redis(t, "SCRIPT", "LOAD", "return redis.call('GET', KEYS[1])")
  -- the fewest calls an Active TTL read could make with a script: the TTL and
  -- the bucket's expiry from one hash, GETEX, the clock, the access entry
  local lean_sha = redis(t, "SCRIPT", "LOAD", [[
local h = redis.call('HMGET', KEYS[1], ARGV[1], '')
local v = redis.call('GETEX', KEYS[2], 'PX', tonumber(h[1]) or 3600000)
if not v then return false end
local now = redis.call('TIME')
redis.call('ZADD', KEYS[3], 'XX', now[1] * 1000, ARGV[1])
return v]])
  local n, now_ms = C.single, tostring(server_ms(t))
  local function send(cmds) return function() internal.pipeline(active, "bench", cmds) end end
  local reads = {
    { "GET", send { { "GET", rk } } },
    { "EVALSHA of a script that only GETs", send { { "EVALSHA", get_sha, 1, rk } } },
    { "the Active TTL read, as shipped (EVALSHA, 7 calls)", function() hit(active[KEYS[1]]) end },
    { "EVALSHA of the fewest calls a script could make (4)",
      send { { "EVALSHA", lean_sha, 3, prefix .. "t", rk, prefix .. "a", ktext } } },
    { "GETEX + ZADD XX, no script (TTL and clock known to the client)",
      send { { "GETEX", rk, "PX", TTL_MS }, { "ZADD", prefix .. "a", "XX", now_ms, ktext } } },
  }
  local rows = {}
  for _, r in ipairs(reads) do rows[#rows + 1] = { r[1], L.num(server_us(t, n, r[2])) } end

  local sets, booked, batch = {}, {}, {}
  local accesses, expiries, ttls = { "ZADD", prefix .. "a" }, { "ZADD", prefix .. "e" }, { "HSET", prefix .. "t" }
  for i = 1, 1000 do
    local key = "floor:" .. i
    batch[key] = small
    sets[i] = { "SET", prefix .. "r:" .. key, payloads[1].json, "PX", TTL_MS }
    booked[i] = sets[i]
    for _, entry in ipairs { { accesses, now_ms, key }, { expiries, now_ms, key }, { ttls, key, TTL_MS } } do
      local cmd = entry[1]
      cmd[#cmd + 1], cmd[#cmd + 2] = entry[2], entry[3]
    end
  end
  booked[1001], booked[1002], booked[1003] = accesses, expiries, ttls
  local adds = math.max(1, C.adds)
  local function per_record(fn) return L.num(server_us(t, adds, fn) / 1000) end
  rows[#rows + 1] = { "SET ×1,000 in one round trip [per record]", per_record(send(sets)) }
  rows[#rows + 1] = { "the same + ZADD a, ZADD e, HSET t of 1,000 entries each, no script [per record]",
    per_record(send(booked)) }
  local set_sha = redis(t, "SCRIPT", "LOAD",
    "for i = 1, #KEYS do redis.call('SET', KEYS[i], ARGV[i], 'PX', " .. TTL_MS .. ") end")
  local in_script = { "EVALSHA", set_sha, 1000 }
  for i = 1, 1000 do in_script[3 + i] = sets[i][2] end
  for i = 1, 1000 do in_script[1003 + i] = payloads[1].json end
  rows[#rows + 1] = { "EVALSHA of a script that only SETs the 1,000 records [per record]",
    per_record(send { in_script }) }
  rows[#rows + 1] = { "add{} of 1,000 records, as shipped (one EVALSHA over ~250 buckets) [per record]",
    per_record(function() tracked:add(batch) end) }
  tracked:close(); active:close()
  redis(t, "FLUSHALL")
  print(("### Floors by design (%s, %s record): server time of the shipped design and of others"):format(
    t.name, payloads[1].name))
  print()
  print("Server µs per operation (INFO commandstats; a script's time includes the commands it calls).")
  print()
  L.table({ "<what the server runs", "server µs" }, rows)
end

---------------------------------------------------------------------------
-- Codec: MB/s of the default codec and lua-cjson, same documents, same process.

local function codec_table()
  local docs = { { "small record", small }, { "1 KB record", kilo }, { "nested document", nested } }
  local rows = {}
  local ours, theirs = rcache.json, cjson
  for _, d in ipairs(docs) do
    local text = ours.encode(d[2])
    local n = math.max(1, math.floor(C.codec_bytes / #text))
    local function mbs(fn) return L.rate(C.runs, n * #text, function() for _ = 1, n do fn() end end) / 1e6 end
    local enc, cenc = mbs(function() ours.encode(d[2]) end), mbs(function() theirs.encode(d[2]) end)
    local dec, cdec = mbs(function() ours.decode(text) end), mbs(function() theirs.decode(text) end)
    rows[#rows + 1] = { d[1], L.num(#text), L.num(enc), L.num(cenc), ("%.2f×"):format(enc / cenc),
      check("codec encode, " .. d[1], enc >= cenc), L.num(dec), L.num(cdec), ("%.2f×"):format(dec / cdec),
      check("codec decode, " .. d[1], dec >= cdec) }
  end
  print("### Codec: rcache_live.json vs lua-cjson " .. (cjson._VERSION or "") .. " (MB/s; must be at least as fast)")
  print()
  L.table({ "<document", "bytes", "encode", "cjson encode", "ratio", "<met?", "decode", "cjson decode", "ratio",
    "<met?" }, rows)
  local x = 0.1 + 0.2
  print(("exactness: 0.1 + 0.2 round trip: rcache_live.json %s, cjson %s (cjson encodes 14 significant digits)")
    :format(ours.decode(ours.encode(x)) == x and "exact" or "NOT exact",
      theirs.decode(theirs.encode(x)) == x and "exact" or "NOT exact"))
  print()
end

---------------------------------------------------------------------------
-- Memory

local function memory_table(t)
  -- Lua RSS: a child process, so that nothing this script allocated counts
  local out = L.shell(("%s %s %s %d %d"):format(arg[-1], L.quote(arg[0]:gsub("bench%.lua$", "leak.lua")),
    L.quote(SOCKET), C.leak[1], C.leak[2]))
  local a, b = out:match("rss_kb (%d+) (%d+)")
  a, b = tonumber(a), tonumber(b)
  assert(a, out)
  local rows = {
    { ("Lua RSS after %s mixed operations"):format(L.num(C.leak[1])), L.num(a) .. " kB", "", "" },
    { ("Lua RSS after %s mixed operations"):format(L.num(C.leak[2])), L.num(b) .. " kB", "", "" },
    { "growth", L.num(b - a) .. " kB", "< 1,024 kB", check("Lua RSS growth", b - a < 1024) },
  }
  -- Redis: used_memory per record, with and without bookkeeping
  for _, track in ipairs { true, false } do
    redis(t, "FLUSHALL")
    local cache = open(t, { track = track })
    local before = info_field(t, "memory", "used_memory")
    fill(t, cache, C.per_record, 0, small)
    local after = info_field(t, "memory", "used_memory")
    local usage = redis(t, "MEMORY", "USAGE", (internal.key(cache, "rec:1")))
    rows[#rows + 1] = { ("Redis bytes per record, track = %s (%s)"):format(track, payloads[1].name),
      L.num((after - before) / C.per_record), ("MEMORY USAGE of one record key: %d"):format(usage), "" }
    cache:close()
  end
  redis(t, "FLUSHALL")
  print("### Memory")
  print()
  L.table({ "<measure", "value", "<bound / note", "<met?" }, rows)
end

---------------------------------------------------------------------------
-- Machine and run

local function first_line(cmd) return (L.shell(cmd):match("[^\n]*")) end

local started = L.clock()
print(("# rcache_live benchmark%s"):format(QUICK and " (--quick: small counts, a smoke test)" or ""))
print()
print("date:      " .. os.date("!%Y-%m-%d %H:%M UTC"))
print("command:   " .. table.concat({ arg[-1], arg[0], table.unpack(arg) }, " "))
print(("machine:   %s CPUs, %s, %s"):format(first_line("nproc"),
  (first_line("grep -m1 'model name' /proc/cpuinfo"):gsub("^.-:%s*", "")),
  first_line("free -h | awk '/Mem:/ {print $2}'") .. " RAM"))
print("system:    Debian " .. first_line("cat /etc/debian_version") .. ", " .. first_line("uname -sr"))
print(("software:  Redis %s, %s, rcache_live %s, hiredis %s, lua-cjson %s, lua-redis %s"):format(
  redis(transports[1], "INFO", "server"):match("redis_version:([^\r\n]+)"), _VERSION, rcache._VERSION,
  first_line("dpkg-query -W -f='${Version}' libhiredis-dev"), cjson._VERSION,
  peer_redis and peer_redis._VERSION or "not installed"))
print("load:      " .. first_line("cat /proc/loadavg") .. " (1, 5, 15 min; other jobs make absolute numbers noisy)")
print(("counts:    %d runs per figure (median), %s single operations per run, baselines -n %s / -n %s (-P 1000)")
  :format(C.runs, L.num(C.single), L.num(C.baseline), L.num(C.bulk_baseline)))
print()

local results = {}
for _, t in ipairs(transports) do
  local by_payload = {}
  for _, p in ipairs(payloads) do by_payload[p] = single_ops(t, p) end
  local b = bulk_ops(t)
  transport_table(t, by_payload, b)
  print(("(%.0f s so far)"):format(L.clock() - started))
  print()
  results[t] = { payload = by_payload, bulk = b }
end
redis(transports[1], "FLUSHALL")

scaling_table(results)
python_table(transports[2], results[transports[2]].payload[payloads[1]], results[transports[2]].bulk)
server_work(transports[1])
floors(transports[1])
codec_table()
memory_table(transports[1])

print("### Summary")
print()
if #misses == 0 then
  print("every target met")
else
  print(("%d target(s) missed:"):format(#misses))
  for _, m in ipairs(misses) do print("  - " .. m) end
end
print()
print(("load at the end: %s; took %.0f s"):format(first_line("cat /proc/loadavg"), L.clock() - started))
