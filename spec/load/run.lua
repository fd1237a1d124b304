-- spec/load/run.lua: the final check of one load scenario (see run.sh).
--
--   lua5.4 spec/load/run.lua scenario=NAME dir=DIR socket=PATH ns=NS procs=N \
--     ops=N exits=0,0,... [restart=FILE]
--
-- Reads the journals DIR/journal.<P> the workers wrote, reads the whole
-- namespace back once, and checks every record against the journals:
--   own keys     present with the exact value unless they may have expired
--                or been deleted; absent when they certainly expired;
--   hot keys     every field a process wrote last is there with its value
--                whenever the record certainly lived since (all processes'
--                accesses together cover the time);
--   cleanup keys present with their value unless an acknowledged cleanup
--                may have deleted them, absent when one certainly did, and
--                the cleanups' counts add up to the records gone (so cleanup
--                deleted nothing else);
--   no record in the namespace that no journal knows.
-- Prints the scenario's figures, one "[NAME] what: ..." line each, and
-- exits 1 on any failure.

local rcache = require "rcache_live"
local model = loadfile("spec/load/worker.lua")("--model")
local eq, show, observe, covered = model.eq, model.show, model.observe, model.covered

local opt = {}
for i = 1, select("#", ...) do
  local k, v = (select(i, ...)):match("^([%w_]+)=(.*)$")
  assert(k, "run.lua: arguments are key=value")
  opt[k] = v
end
local NAME, DIR, SOCKET, NS = opt.scenario, opt.dir, opt.socket, opt.ns
local PROCS, OPS = tonumber(opt.procs), tonumber(opt.ops)
local exits = {}
for e in (opt.exits or ""):gmatch("[^,]+") do exits[#exits + 1] = tonumber(e) end

local failed = false
local function line(what, fmt, ...)
  io.write(("[%s] %s: " .. fmt .. "\n"):format(NAME, what, ...))
end
local problems = {}
local function problem(fmt, ...)
  failed = true
  if #problems < 40 then problems[#problems + 1] = fmt:format(...) end
end

-- Journals
local journals = {}
for p = 1, PROCS do
  if exits[p] ~= 0 then problem("worker %d exited with status %s", p, tostring(exits[p])) end
  local ok, j = pcall(model.load, ("%s/journal.%d"):format(DIR, p))
  if ok then journals[#journals + 1] = j else problem("worker %d left no journal: %s", p, tostring(j)) end
end

-- The figures
local ops, t_start, t_end, unexpected, transport, inline = 0, math.huge, -math.huge, 0, 0, 0
local errors, per_process, saw_restart, sweeps, sweep_checked, sweep_bad = {}, {}, 0, 0, 0, 0
local idle_ms, messages = nil, {}
for _, j in ipairs(journals) do
  local s = j.stats
  idle_ms = j.idle_ms
  ops = ops + s.ops
  per_process[#per_process + 1] = ("%d in %.1f s"):format(s.ops, (s.t_end - s.t_start) / 1000)
  t_start, t_end = math.min(t_start, s.t_start), math.max(t_end, s.t_end)
  unexpected, transport, inline = unexpected + s.unexpected, transport + s.transport, inline + s.inconsistencies
  for msg, n in pairs(s.errors) do errors[msg] = (errors[msg] or 0) + n end
  if s.transport > 0 then saw_restart = saw_restart + 1 end
  for _, sw in ipairs(s.sweeps) do
    sweeps, sweep_checked, sweep_bad = sweeps + 1, sweep_checked + sw.checked, sweep_bad + sw.inconsistencies
  end
  for _, m in ipairs(s.messages) do
    if #messages < 20 then messages[#messages + 1] = ("worker %d: %s"):format(j.id, m) end
  end
end
local seconds = (t_end - t_start) / 1000
if ops ~= PROCS * OPS then problem("%d operations done, %d expected", ops, PROCS * OPS) end
if unexpected > 0 then problem("%d unexpected errors", unexpected) end
if inline > 0 then problem("%d answers contradicted the journal during the run", inline) end

-- The restart: when it happened, and that the errors came then
local restart
if opt.restart then
  restart = {}
  for l in io.lines(opt.restart) do
    local what, ms = l:match("^(%a+) (%d+)$")
    if what then restart[what] = tonumber(ms) end
  end
  if not (restart.kill and restart.up) then
    problem("the server was not restarted")
  else
    for _, j in ipairs(journals) do
      if j.stats.waited_for_restart then
        io.write(("[%s] note: worker %d was done before the restart (it ran %.1f..%.1f s, the server was down"
          .. " %.1f..%.1f s): it swept after it\n"):format(NAME, j.id, 0, (j.stats.t_end - t_start) / 1000,
          (restart.kill - t_start) / 1000, (restart.up - t_start) / 1000))
      end
    end
    if saw_restart == 0 then problem("no process saw the restart (all done before it?)") end
    for _, j in ipairs(journals) do
      for _, e in ipairs(j.stats.error_times) do
        if e[2] == "transport" and (e[1] < restart.kill - 50 or e[1] > restart.up + 10000) then
          problem("worker %d: transport error at %.0f, outside the restart (%d..%d)", j.id, e[1], restart.kill,
            restart.up)
        end
      end
    end
  end
end

-- Read everything back
local all, c_lo, c_hi = {}, 0, 0
local cache
do
  local ok, err = pcall(function()
    cache = rcache.new { socket = SOCKET, namespace = NS }
    c_lo = model.now()
    all = cache:get_all_records()
    c_hi = model.now()
  end)
  if not ok then problem("reading the namespace back failed: %s", tostring(err)) end
end

-- What the server says about a record (for messages), and the last
-- operations its worker did on it.
local internal = require("rcache_live.core").internal
local function evidence(j, key)
  local ok, r = pcall(function()
    local rk, prefix = internal.key(cache, key, "probe")
    local replies = internal.pipeline(cache, "probe", { { "PTTL", rk }, { "HGET", prefix .. "t", key },
      { "ZSCORE", prefix .. "a", key } })
    return ("PTTL %s, t=%s, a=%s"):format(tostring(replies[1]), tostring(replies[2]), tostring(replies[3]))
  end)
  return ("; history: %s; server: %s"):format(table.concat(j.history and j.history[key] or {}, " / "),
    ok and r or tostring(r))
end

local known = {}
local own_checked, own_present = 0, 0
local hot_fields, hot_present = 0, 0
local ck_present, ck_absent, ck_surely_cleaned, cleaned_sum, cleanup_calls, cleanup_raised = 0, 0, 0, 0, 0, 0
local raised_absent = 0

if #journals == PROCS then
  -- own keys
  for _, j in ipairs(journals) do
    for key, cands in pairs(j.own) do
      known[key] = true
      own_checked = own_checked + 1
      local v = all[key]
      if v ~= nil then own_present = own_present + 1 end
      if not observe(cands, v, c_lo, c_hi, false) then
        problem("worker %d key %s: read back %s at [%.0f,%.0f], journal: %s%s", j.id, key, show(v), c_lo, c_hi,
          model.show_cands(cands), evidence(j, key))
      end
    end
  end
  -- hot keys: every process's accesses together tell how long a record lived
  local hot_keys = {}
  for _, j in ipairs(journals) do
    for key in pairs(j.hot) do hot_keys[key] = true end
  end
  for key in pairs(hot_keys) do
    known[key] = true
    local segs = {}
    for _, j in ipairs(journals) do
      for _, s in ipairs(j.hot[key] and j.hot[key].segs or {}) do segs[#segs + 1] = s end
    end
    local rec = all[key]
    for _, j in ipairs(journals) do
      for name, st in pairs(j.hot[key] and j.hot[key].fields or {}) do
        hot_fields = hot_fields + 1
        if rec and rec[name] ~= nil then hot_present = hot_present + 1 end
        local why = model.check_field(st, name, rec, segs, c_hi)
        if why then problem("worker %d, %s: %s", j.id, key, why) end
      end
    end
  end
  -- the cleanup range
  local cleanups = {}
  for _, j in ipairs(journals) do
    for _, cl in ipairs(j.cleanups) do
      cleanups[#cleanups + 1] = cl
      cleanup_calls = cleanup_calls + 1
      if cl.n then cleaned_sum = cleaned_sum + cl.n else cleanup_raised = cleanup_raised + 1 end
    end
  end
  for _, j in ipairs(journals) do
    for key, e in pairs(j.ck) do
      known[key] = true
      local v = all[key]
      local surely = model.surely_cleaned(e.hi, cleanups, idle_ms)
      if surely then ck_surely_cleaned = ck_surely_cleaned + 1 end
      if v ~= nil then
        ck_present = ck_present + 1
        if not eq(v, e.v) then problem("worker %d key %s: read back %s, wrote %s", j.id, key, show(v), show(e.v)) end
        if surely then problem("worker %d key %s: still there, but a cleanup certainly found it idle", j.id, key) end
      else
        ck_absent = ck_absent + 1
        if not e.sure then
          raised_absent = raised_absent + 1
        elseif not model.maybe_cleaned(e.lo, cleanups, idle_ms, c_hi) then
          problem("worker %d key %s: gone, written at [%.0f,%.0f], no cleanup could find it idle", j.id, key, e.lo, e.hi)
        end
      end
    end
  end
  -- cleanup deleted these and nothing else
  if ck_absent < cleaned_sum then
    problem("cleanups reported %d deletions, only %d cleanup records are gone", cleaned_sum, ck_absent)
  end
  if cleanup_raised == 0 and ck_absent - raised_absent > cleaned_sum then
    problem("%d cleanup records are gone, cleanups reported %d deletions", ck_absent - raised_absent, cleaned_sum)
  end
  -- strangers
  for key in pairs(all) do
    if not known[key] then problem("record %q in the namespace, no journal wrote it", key) end
  end
end

if cache then cache:close() end

-- Report
line("processes", "%d", PROCS)
line("operations", "%d in %.2f s, %.0f ops/s (per process: %s)", ops, seconds, seconds > 0 and ops / seconds or 0,
  table.concat(per_process, ", "))
line("unexpected errors", "%d", unexpected)
line("transport errors during the restart", "%d", transport)
local msgs = {}
for msg, n in pairs(errors) do msgs[#msgs + 1] = ("%6d  %s"):format(n, msg) end
table.sort(msgs)
for _, m in ipairs(msgs) do io.write(("[%s]   %s\n"):format(NAME, m)) end
if restart and restart.kill and restart.up then
  line("restart", "server down %.2f s; %d of %d processes saw it; %d post-restart sweeps read %d records, %d wrong",
    (restart.up - restart.kill) / 1000, saw_restart, PROCS, sweeps, sweep_checked, sweep_bad)
  line("restart times", "SIGTERM at %d, up again at %d (ms)", restart.kill, restart.up)
end
line("checked", "own keys %d (%d present), hot fields %d (%d present), cleanup records %d present / %d gone"
  .. " (%d certainly idle), %d cleanups reported %d deletions", own_checked, own_present, hot_fields, hot_present,
  ck_present, ck_absent, ck_surely_cleaned, cleanup_calls, cleaned_sum)
for _, m in ipairs(messages) do io.write(("[%s]   %s\n"):format(NAME, m)) end
for _, m in ipairs(problems) do io.write(("[%s]   %s\n"):format(NAME, m)) end
line("consistency", "%s", failed and "FAILED" or "OK")
io.flush()
os.exit(failed and 1 or 0)
