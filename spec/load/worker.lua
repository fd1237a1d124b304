-- spec/load/worker.lua: one load process (see spec/load/run.sh).
--
--   lua5.4 spec/load/worker.lua socket=PATH ns=NS id=P ops=N seed=S out=FILE \
--     [progress=FILE] [go=FILE] [idle=MINUTES] [retry=0|1] [restarted=FILE]
--
-- Runs N mixed operations on one cache (Active TTL on) in namespace NS,
-- keeping a journal of what it believes the server holds, and checks every
-- answer against it as it goes. Writes the journal and its counters to
-- FILE (a Lua chunk, read by spec/load/run.lua for the final check). It
-- writes its count of operations to progress=FILE every 250, and starts
-- when go=FILE exists.
-- With retry=1 (the restart scenario) a transport error is counted and the
-- operation is retried on the same cache after a short pause; after its
-- first recovery the worker reads back all it knows (a sweep). A worker done
-- before the restart waits for the file restarted=FILE, then sweeps.
--
-- loadfile("spec/load/worker.lua")("--model") returns the journal model
-- (equality, candidate states, coverage) that spec/load/run.lua shares.
--
-- Key ranges (P = this process):
--   own      "pP:k<i>" and the integers P*1000000+i: only P touches them
--   hot      "hot:<i>": every process updates them, each its own fields "pPf<j>"
--   cleanup  "cP:<seq>": written once with a long TTL, never read again; the
--            only records cleanup_inactive_records can delete, because every
--            other record has a TTL below the cleanup's idle time and Active
--            TTL on, so a live one was accessed less than its TTL ago.
--
-- The journal keeps, per own key, a list of candidates: false (no record)
-- or { v = value, ttl = ms, lo = ms, hi = ms } (the record written or last
-- read at a server time in [lo, hi], expiring ttl ms after it). Usually one;
-- an operation that raised leaves the old and the new state both possible,
-- and the next answer narrows them again. Times are the wall clock in ms,
-- the clock Redis uses.

local rcache = require "rcache_live"
local system = require "system"

local null, array_mt = rcache.null, rcache.array_mt

-- What differs between runtimes. 5.3+ have 64-bit integers beside floats;
-- 5.1, 5.2 and LuaJIT hold every number as a double, and the codec writes
-- integral values below 2^53 as integers, any other number as a float.
local HAVE_INTEGERS = math.type ~= nil
local mtype = math.type or function(x)
  if type(x) ~= "number" then return nil end
  if x == math.floor(x) and x > -2 ^ 53 and x < 2 ^ 53 and 1 / x ~= -math.huge then return "integer" end
  return "float"
end
-- Bit-for-bit equality of two floats (NaN is never stored, so without
-- string.pack equal values and zeros of the same sign are equal bits).
local function same_bits(a, b)
  if string.pack then return string.pack("<d", a) == string.pack("<d", b) end
  return a == b and 1 / a == 1 / b
end
local tpack = table.pack or function(...) return { n = select("#", ...), ... } end
local tunpack = table.unpack or unpack

---------------------------------------------------------------------------
-- The model
---------------------------------------------------------------------------

local model = {}
local MARGIN = 10 -- ms: rounding between the client's clock and Redis's

local function now() return system.gettime() * 1000 end
model.now = now

--- Exact equality: same types, integers equal, floats bit for bit, arrays
-- (array_mt) and objects kept apart, tables compared deeply.
local function eq(a, b)
  if a == b then
    if mtype(a) == "float" then return mtype(b) == "float" and same_bits(a, b) end
    return mtype(a) == mtype(b)
  end
  if type(a) ~= "table" or type(b) ~= "table" then return false end
  if (getmetatable(a) == array_mt) ~= (getmetatable(b) == array_mt) then return false end
  for k, v in pairs(a) do
    local w = b[k]
    if w == nil or not eq(v, w) then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end
model.eq = eq

--- Readable text of a value, for messages (not a codec).
local function show(v, depth)
  depth = depth or 0
  if v == null then return "null" end
  if v == false then return "false" end
  if type(v) == "string" then return (("%q"):format(v):gsub("\\\n", "\\n")) end
  if mtype(v) == "float" then return ("%.17g"):format(v) end
  if type(v) ~= "table" then return tostring(v) end
  if depth > 3 then return "{...}" end
  local parts = {}
  if getmetatable(v) == array_mt then
    for i = 1, #v do parts[i] = show(v[i], depth + 1) end
    return "[" .. table.concat(parts, ",") .. "]"
  end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys)
  for i, k in ipairs(keys) do parts[i] = ("%q"):format(k) .. ":" .. show(v[k], depth + 1) end
  return "{" .. table.concat(parts, ",") .. "}"
end
model.show = show

local function show_cands(cands)
  local parts = {}
  for i, c in ipairs(cands) do
    parts[i] = c and ("%s ttl=%d at [%.0f,%.0f]"):format(show(c.v), c.ttl, c.lo, c.hi) or "(none)"
  end
  return table.concat(parts, " | ")
end
model.show_cands = show_cands

-- A record candidate is certainly alive at any server time <= t_hi, or
-- certainly expired at any server time >= t_lo.
local function alive_sure(c, t_hi) return c and t_hi < c.lo + c.ttl - MARGIN end
local function dead_sure(c, t_lo) return not c or t_lo > c.hi + c.ttl + MARGIN end
model.alive_sure, model.dead_sure = alive_sure, dead_sure

--- Candidates without duplicates; equal records with the same TTL become
-- one spanning both windows.
local function merged(cands)
  local out, absent = {}, false
  for _, c in ipairs(cands) do
    if not c then
      absent = true
    else
      local same
      for _, o in ipairs(out) do
        if o.ttl == c.ttl and eq(o.v, c.v) then same = o break end
      end
      if same then
        same.lo, same.hi = math.min(same.lo, c.lo), math.max(same.hi, c.hi)
      else
        out[#out + 1] = { v = c.v, ttl = c.ttl, lo = c.lo, hi = c.hi }
      end
    end
  end
  if absent then out[#out + 1] = false end
  return out
end
model.merged = merged

--- The candidates left after observing obs (nil: no record) at a server
-- time in [t_lo, t_hi]; refresh: the observation was an Active TTL read.
-- nil when no candidate explains it.
local function observe(cands, obs, t_lo, t_hi, refresh)
  if obs == nil then
    for _, c in ipairs(cands) do
      if not alive_sure(c, t_hi) then return { false } end
    end
    return nil
  end
  local out = {}
  for _, c in ipairs(cands) do
    if c and not dead_sure(c, t_lo) and eq(c.v, obs) then
      out[#out + 1] = refresh and { v = c.v, ttl = c.ttl, lo = t_lo, hi = t_hi } or c
    end
  end
  if #out == 0 then return nil end
  return merged(out)
end
model.observe = observe

--- Whether the record may be present / may be absent at a time in [t_lo, t_hi].
local function may_present(cands, t_lo)
  for _, c in ipairs(cands) do
    if c and not dead_sure(c, t_lo) then return true end
  end
  return false
end
local function may_absent(cands, t_hi)
  for _, c in ipairs(cands) do
    if not alive_sure(c, t_hi) then return true end
  end
  return false
end
model.may_present, model.may_absent = may_present, may_absent

--- Whether the union of intervals segs (lists of {a, b}) covers [from, to].
local function covered(segs, from, to)
  local list = {}
  for _, s in ipairs(segs) do list[#list + 1] = s end
  table.sort(list, function(x, y) return x[1] < y[1] end)
  local cur = from
  for _, s in ipairs(list) do
    if s[1] > cur then break end
    if s[2] > cur then cur = s[2] end
    if cur >= to then return true end
  end
  return cur >= to
end
model.covered = covered

--- Adds the interval an access in [t_lo, t_hi] keeps a record alive for.
local function add_segment(segs, t_lo, t_hi, ttl)
  local a, b = t_hi, t_lo + ttl - MARGIN
  if b <= a then return end
  local last = segs[#segs]
  if last and a <= last[2] then
    if b > last[2] then last[2] = b end
  else
    segs[#segs + 1] = { a, b }
  end
end
model.add_segment = add_segment

--- A field candidate: false for "missing", else { value } (values may be
-- false themselves).
local function field_cand(v)
  if v == nil then return false end
  return { v }
end
model.field_cand = field_cand

--- Whether value v (nil: missing) is among the field candidates.
local function among(cands, v)
  for _, c in ipairs(cands) do
    if v == nil then
      if c == false then return true end
    elseif c ~= false and eq(c[1], v) then
      return true
    end
  end
  return false
end
model.among = among

--- Checks a process's field (state { cands, since }) against the record
-- seen at a time <= t_hi (rec nil: no record). The field must be there,
-- with one of its candidate values, when the record certainly lived all
-- the time since the field was written (segs covers [since, t_hi]).
-- Returns nil or the reason it is wrong.
local function rec_cands_text(cands)
  local parts = rcache.array()
  for i, c in ipairs(cands) do
    if c == false then parts[i] = "(missing)" else parts[i] = c[1] end
  end
  return parts
end

local function check_field(st, name, rec, segs, t_hi)
  local v = rec and rec[name]
  if v ~= nil then
    if among(st.cands, v) then return nil end
    return ("field %q is %s, expected one of %s"):format(name, show(v), show(rec_cands_text(st.cands)))
  end
  if among(st.cands, nil) or not covered(segs, st.since, t_hi) then return nil end
  return ("field %q is missing (record %s), expected %s; the record lived all along since %.0f"):format(
    name, rec and "present" or "absent", show(rec_cands_text(st.cands)), st.since)
end
model.check_field = check_field

--- Whether a cleanup record written in [lo, hi] may have been deleted by
-- one of the cleanups (lists of { lo, hi, n }) of idle_ms, before t_hi.
local function maybe_cleaned(w_lo, cleanups, idle_ms, t_hi)
  for _, cl in ipairs(cleanups) do
    local upto = math.min(cl.hi, t_hi)
    if cl.lo <= t_hi and w_lo < upto - idle_ms + MARGIN then return true end
  end
  return false
end
--- Whether an acknowledged cleanup certainly deleted it.
local function surely_cleaned(w_hi, cleanups, idle_ms)
  for _, cl in ipairs(cleanups) do
    if cl.n and w_hi + MARGIN < cl.lo - idle_ms then return true end
  end
  return false
end
model.maybe_cleaned, model.surely_cleaned = maybe_cleaned, surely_cleaned

-- Floats as hex literals where the runtime reads them back (5.2+, LuaJIT),
-- else as F"<17 digits>" (F = tonumber at load time: exact, -0.0 too).
local HEX_FLOATS = pcall(string.format, "%a", 1.5) and (loadstring or load)("return 0x1.8p1") ~= nil

--- Writes v as a Lua expression (exact: floats in hex, null as N, arrays
-- as A{...}) into the list out.
local function serialize(v, out)
  local t = type(v)
  if t == "number" then
    if mtype(v) == "integer" then
      out[#out + 1] = v == math.mininteger and "math.mininteger" or ("%d"):format(v)
    elseif HEX_FLOATS then
      out[#out + 1] = ("%a"):format(v)
    else
      out[#out + 1] = ("F%q"):format(("%.17g"):format(v))
    end
  elseif t == "string" then
    out[#out + 1] = ("%q"):format(v)
  elseif t == "boolean" then
    out[#out + 1] = tostring(v)
  elseif v == null then
    out[#out + 1] = "N"
  elseif t == "table" then
    out[#out + 1] = getmetatable(v) == array_mt and "A{" or "{"
    if getmetatable(v) == array_mt then
      for i = 1, #v do serialize(v[i], out) out[#out + 1] = "," end
    else
      for k, x in pairs(v) do
        out[#out + 1] = "["
        serialize(k, out)
        out[#out + 1] = "]="
        serialize(x, out)
        out[#out + 1] = ","
      end
    end
    out[#out + 1] = "}"
  else
    error("cannot serialize a " .. t)
  end
end
model.serialize = serialize

--- Reads a journal written by serialize.
function model.load(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("*a")
  f:close()
  local env = { N = null, A = rcache.array, math = math, F = tonumber }
  if setfenv then -- 5.1 and LuaJIT: a string chunk and its environment
    local chunk = assert(loadstring(text, "=" .. path))
    return setfenv(chunk, env)()
  end
  return assert(load(text, "=" .. path, "t", env))()
end

if ... == "--model" then return model end

---------------------------------------------------------------------------
-- Settings
---------------------------------------------------------------------------

local opt = {}
for i = 1, select("#", ...) do
  local k, v = (select(i, ...)):match("^([%w_]+)=(.*)$")
  assert(k, "worker.lua: arguments are key=value, got " .. tostring((select(i, ...))))
  opt[k] = v
end
local SOCKET = assert(opt.socket, "socket=")
local NS = assert(opt.ns, "ns=")
-- The integer a decimal text stands for, else nil.
local function to_integer(text)
  local n = tonumber(text)
  if n and n == math.floor(n) then return math.tointeger and math.tointeger(n) or n end
end
local P = assert(to_integer(opt.id), "id=")
local OPS = assert(to_integer(opt.ops), "ops=")
local SEED = to_integer(opt.seed or "1") or 1
local OUT = assert(opt.out, "out=")
local PROGRESS, GO, RESTARTED = opt.progress, opt.go, opt.restarted
local IDLE_MIN = tonumber(opt.idle or "0.1")
local RETRY = opt.retry == "1"

local IDLE_MS = math.floor(IDLE_MIN * 60000 + 0.5)
-- Every record but the cleanup range lives less than the cleanup's idle time.
local DEFAULT_TTL_MS = math.floor(IDLE_MS * 0.75)
local TTLS_MS = { math.floor(IDLE_MS * 0.05), math.floor(IDLE_MS * 0.15), math.floor(IDLE_MS * 0.4),
  DEFAULT_TTL_MS }
local CLEANUP_TTL_S = 3600
local OWN_STRING_KEYS, OWN_INT_KEYS, HOT_KEYS, HOT_FIELDS = 360, 40, 32, 6
local MAX_ATTEMPTS, MAX_RETRY_MS = 400, 30000

math.randomseed(SEED)
local random = math.random

---------------------------------------------------------------------------
-- Random values
---------------------------------------------------------------------------

local STRINGS = { "", "a", "Alice", "é漢字🙂", "q\"uote", "back\\slash", "line\nbreak\ttab", "nul\0byte",
  "{\"x\":[1,2]}", "a}b]c", "\"", "\\\"", "[", "}", ",", ":", "\\u0041", "/", "\127\1" }
local NAMES = { "a", "b", "c", "name", "age", "n", "x", "list", "obj", "é", "q\"uote", "back\\slash", "",
  "sp ace", "{}", "1", "\\u00e9" }
local PRINTABLE = " !\"#$%&'()*+,-./0123456789:;<=>?@AZ[\\]^_`az{|}~"

local function random_string()
  if random(3) > 1 then return STRINGS[random(#STRINGS)] end
  local n, parts = random(0, 12), {}
  for i = 1, n do
    local j = random(#PRINTABLE)
    parts[i] = PRINTABLE:sub(j, j)
  end
  return table.concat(parts)
end

local INTEGERS = { 0, 1, -1, 4294967296 }
if HAVE_INTEGERS then -- the 64-bit extremes; 2^53 + 1, which no double holds
  for _, i in ipairs { math.maxinteger, math.mininteger, math.tointeger(2 ^ 53) + 1, -math.tointeger(2 ^ 53) - 1 } do
    INTEGERS[#INTEGERS + 1] = i
  end
else -- the largest integers the codec writes as integer text
  INTEGERS[#INTEGERS + 1], INTEGERS[#INTEGERS + 2] = 2 ^ 53 - 1, -(2 ^ 53 - 1)
end
local FLOATS = { 0.0, -0.0, 0.1, 1.0, -1.5, 1e300, -1e-300, 5e-324, 2.0 ^ 53, 2.0 ^ 63, 123456.789, 1 / 3 }

-- A random number of n bits (at most 53), 16 at a time: 5.1's random
-- takes C ints.
local function random_bits(n)
  local x = 0
  while n > 0 do
    local b = math.min(n, 16)
    x = x * 2 ^ b + random(0, 2 ^ b - 1)
    n = n - b
  end
  return x
end

-- Any integer the runtime has: 64 bits (5.4: random(0); 5.3: two 32-bit
-- halves, the product wrapping around), or below 2^53 in magnitude.
local function random_wide_integer()
  if _VERSION == "Lua 5.4" then return random(0) end
  if HAVE_INTEGERS then return random(0, 4294967295) * 4294967296 + random(0, 4294967295) end
  return random_bits(53) * (random(2) == 1 and 1 or -1)
end

local function random_integer()
  local r = random(4)
  if r == 1 then return INTEGERS[random(#INTEGERS)] end
  if r == 2 then return random_wide_integer() end
  return random(-100000, 100000)
end

local function random_float()
  local r = random(4)
  if r == 1 then return FLOATS[random(#FLOATS)] end
  if r == 2 and string.pack then -- any finite double, bit pattern at random
    for _ = 1, 10 do
      local d = string.unpack("<d", string.pack("<i8", random_wide_integer()))
      if d == d and d ~= math.huge and d ~= -math.huge then return d end
    end
    return 0.5
  elseif r == 2 then -- 53 random bits at a random binary exponent, subnormals included
    local m = random_bits(53)
    return (random(2) == 1 and 1 or -1) * m * 2 ^ random(-1074, 970)
  end
  return (random() - 0.5) * 10.0 ^ random(-20, 20)
end

local random_value
local function random_object(depth, min, max)
  local t = {}
  for _ = 1, random(min or 0, max or 4) do t[NAMES[random(#NAMES)]] = random_value(depth + 1) end
  return t
end
function random_value(depth)
  local r = random(depth < 2 and 10 or 8)
  if r <= 2 then return random_integer() end
  if r <= 4 then return random_float() end
  if r <= 6 then return random_string() end
  if r == 7 then return random(2) == 1 end
  if r == 8 then return null end
  if r == 9 then
    local a = rcache.array()
    for i = 1, random(0, 4) do a[i] = random_value(depth + 1) end
    return a
  end
  return random_object(depth)
end

---------------------------------------------------------------------------
-- Journal
---------------------------------------------------------------------------

local own = {}         -- key text -> candidates
local own_keys = {}    -- list of { key = what we pass, text = key text }
for i = 1, OWN_STRING_KEYS do
  local k = ("p%d:k%d"):format(P, i)
  own_keys[#own_keys + 1] = { key = k, text = k, string = true, i = i }
  own[k] = { false }
end
for i = 1, OWN_INT_KEYS do
  local k = P * 1000000 + i
  own_keys[#own_keys + 1] = { key = k, text = tostring(k), string = false, i = i }
  own[tostring(k)] = { false }
end

local hot = {}         -- hot key -> { fields = { name -> { cands, since } }, segs = { {a, b} ... } }
local hot_keys = {}
for i = 1, HOT_KEYS do
  hot_keys[i] = "hot:" .. i
  hot[hot_keys[i]] = { fields = {}, segs = {} }
end
local hot_fields = {}
for j = 1, HOT_FIELDS do hot_fields[j] = ("p%df%d"):format(P, j) end

local ck = {}          -- cleanup record key -> { v, lo, hi, sure }
local ck_seq = 0
local cleanups = {}    -- { lo, hi, n (false: it raised) }

local stats = {
  ops = 0, by_op = {}, unexpected = 0, transport = 0, errors = {}, error_times = {},
  inconsistencies = 0, messages = {}, attempts_max = 1, sweeps = {}, recovered_at = false,
  raised_ops = 0, extra_ops = 0,
}

local function inconsistent(fmt, ...)
  stats.inconsistencies = stats.inconsistencies + 1
  if #stats.messages < 30 then stats.messages[#stats.messages + 1] = fmt:format(...) end
end

---------------------------------------------------------------------------
-- Running an operation
---------------------------------------------------------------------------

local SOCKET_SUFFIX = " (unix:" .. SOCKET .. ")"
-- What a transport failure says (rcache_live: <op>: <cause> (<where>)).
local TRANSPORT_CAUSES = {
  "^connection refused$", "^no such file or directory$", "^connection closed by the server$",
  "^connection was reset during the operation$", "^the server is not ready: LOADING ",
}

local function classify(msg)
  msg = tostring(msg)
  if msg:sub(-#SOCKET_SUFFIX) ~= SOCKET_SUFFIX then return "other", msg end
  local op, cause = msg:sub(1, -#SOCKET_SUFFIX - 1):match("^rcache_live: ([%w_]+): (.*)$")
  local text = msg:sub(1, -#SOCKET_SUFFIX - 1) .. " (unix:<socket>)"
  if not op then return "other", text end
  for _, pattern in ipairs(TRANSPORT_CAUSES) do
    if cause:find(pattern) then return "transport", text end
  end
  return "other", text
end

local function record_error(kind, text, t)
  stats.errors[text] = (stats.errors[text] or 0) + 1
  if kind == "transport" and RETRY then
    stats.transport = stats.transport + 1
  else
    stats.unexpected = stats.unexpected + 1
  end
  if #stats.error_times < 2000 then stats.error_times[#stats.error_times + 1] = { t, kind } end
end

local pending_sweep = false

--- Runs call() until it succeeds (transport errors retried with retry=1,
-- after a growing pause, bounded); on_ok(results..., t_lo, t_hi) after
-- success, on_raise(t_lo, t_hi) after each failed attempt.
local function run(name, call, on_ok, on_raise, extra)
  if extra then
    stats.extra_ops = stats.extra_ops + 1
  else
    stats.ops = stats.ops + 1
    stats.by_op[name] = (stats.by_op[name] or 0) + 1
  end
  local started = now()
  for attempt = 1, MAX_ATTEMPTS do
    local t_lo = now()
    local res = tpack(pcall(call))
    local t_hi = now()
    if res[1] then
      if attempt > 1 then
        if attempt > stats.attempts_max then stats.attempts_max = attempt end
        if not stats.recovered_at then stats.recovered_at = t_hi end
        pending_sweep = true
      end
      on_ok(t_lo, t_hi, tunpack(res, 2, res.n))
      return true
    end
    stats.raised_ops = stats.raised_ops + (attempt == 1 and 1 or 0)
    if on_raise then on_raise(t_lo, t_hi) end
    local kind, text = classify(res[2])
    record_error(kind, text, t_hi)
    if kind ~= "transport" or not RETRY then return false end
    if t_hi - started > MAX_RETRY_MS then break end
    system.sleep(math.min(0.005 * attempt, 0.1))
  end
  error(("worker %d: %s still failing after %d ms of retries"):format(P, name, MAX_RETRY_MS), 0)
end

local cache = rcache.new { socket = SOCKET, namespace = NS, active_ttl = true,
  default_ttl = DEFAULT_TTL_MS / 1000, timeout = 5, connect_timeout = 2 }

---------------------------------------------------------------------------
-- Own keys
---------------------------------------------------------------------------

local function pick_own() return own_keys[random(#own_keys)] end

-- The last operations on each own key, and what the server says about a
-- key, for the message of an answer the journal cannot explain.
local history = {}
local function trace(text, fmt, ...)
  local h = history[text]
  if not h then h = {} history[text] = h end
  h[#h + 1] = fmt:format(...)
  if #h > 6 then table.remove(h, 1) end
end
local internal = require("rcache_live.core").internal
local function evidence(key, text)
  local ok, r = pcall(function()
    local rk, prefix = internal.key(cache, key, "probe")
    local replies = internal.pipeline(cache, "probe", { { "TIME" }, { "PTTL", rk }, { "HGET", prefix .. "t", text },
      { "ZSCORE", prefix .. "a", text }, { "ZSCORE", prefix .. "e", text }, { "PTTL", prefix .. "t" } })
    local t = replies[1]
    return ("server now %d%03d: PTTL %s, t=%s, a=%s, e=%s, PTTL(t)=%s"):format(t[1], math.floor(tonumber(t[2]) / 1000),
      tostring(replies[2]), tostring(replies[3]), tostring(replies[4]), tostring(replies[5]), tostring(replies[6]))
  end)
  return ("; history: %s; %s"):format(table.concat(history[text] or {}, " / "), ok and r or ("probe failed: " .. tostring(r)))
end

local function own_get()
  local k = pick_own()
  run("get", function() return cache:get_record(k.key) end, function(t_lo, t_hi, v)
    local next_cands = observe(own[k.text], v, t_lo, t_hi, true)
    if not next_cands then
      inconsistent("get %s -> %s at [%.0f,%.0f]; journal: %s%s", k.text, show(v), t_lo, t_hi,
        show_cands(own[k.text]), evidence(k.key, k.text))
      own[k.text] = v == nil and { false } or { { v = v, ttl = DEFAULT_TTL_MS, lo = t_lo, hi = t_hi } }
    else
      own[k.text] = next_cands
    end
    trace(k.text, "get [%.0f,%.0f] %s", t_lo, t_hi, v == nil and "nil" or "found")
  end, function(_, t_hi)
    trace(k.text, "get raised at %.0f", t_hi)
    -- a read that raised may still have run, giving the record its TTL again
    for _, c in ipairs(own[k.text]) do
      if c and c.hi < t_hi then c.hi = t_hi end
    end
  end)
end

local function written(v, ttl, t_lo, t_hi) return { v = v, ttl = ttl, lo = t_lo, hi = t_hi } end

local function own_set()
  local k = pick_own()
  local v = random_object(0, 1, 5)
  local ttl_ms = random(5) == 1 and nil or TTLS_MS[random(#TTLS_MS)]
  local stored = ttl_ms or DEFAULT_TTL_MS
  local how = random(3)
  run("set", function()
    if how == 1 and not ttl_ms then
      cache[k.key] = v
    else
      cache:set_record(k.key, v, ttl_ms and ttl_ms / 1000)
    end
  end, function(t_lo, t_hi)
    own[k.text] = { written(v, stored, t_lo, t_hi) }
    trace(k.text, "set%s ttl %d [%.0f,%.0f]", how == 1 and not ttl_ms and "[]" or "", stored, t_lo, t_hi)
  end, function(t_lo, t_hi)
    trace(k.text, "set raised at %.0f", t_hi)
    local c = own[k.text]
    c[#c + 1] = written(v, stored, t_lo, t_hi)
    own[k.text] = merged(c)
  end)
end

local function merge_fields(old, fields)
  local t = {}
  if old then for n, x in pairs(old) do t[n] = x end end
  for n, x in pairs(fields) do t[n] = x end
  return t
end

-- What an update may leave, from each candidate (at a time in [t_lo, t_hi]).
local function update_outcomes(cands, fields, t_lo, t_hi)
  local out = {}
  for _, c in ipairs(cands) do
    if c and not dead_sure(c, t_lo) then out[#out + 1] = written(merge_fields(c.v, fields), c.ttl, t_lo, t_hi) end
    if not alive_sure(c, t_hi) then out[#out + 1] = written(merge_fields(nil, fields), DEFAULT_TTL_MS, t_lo, t_hi) end
  end
  return out
end

local function own_update()
  local k = pick_own()
  local fields = random_object(1, 1, 3)
  run("update", function() return cache:update(k.key, fields) end, function(t_lo, t_hi, r)
    local keep = {}
    for _, o in ipairs(update_outcomes(own[k.text], fields, t_lo, t_hi)) do
      if eq(o.v, r) then keep[#keep + 1] = o end
    end
    if #keep == 0 then
      inconsistent("update %s with %s -> %s at [%.0f,%.0f]; journal: %s%s", k.text, show(fields), show(r), t_lo, t_hi,
        show_cands(own[k.text]), evidence(k.key, k.text))
      keep = { written(r, DEFAULT_TTL_MS, t_lo, t_hi) }
    end
    own[k.text] = merged(keep)
    trace(k.text, "update [%.0f,%.0f] -> ttl %s", t_lo, t_hi, tostring(own[k.text][1] and own[k.text][1].ttl))
  end, function(t_lo, t_hi)
    trace(k.text, "update raised at %.0f", t_hi)
    local c = own[k.text]
    for _, o in ipairs(update_outcomes(c, fields, t_lo, t_hi)) do c[#c + 1] = o end
    own[k.text] = merged(c)
  end)
end

local function distinct_own(n)
  local picked, seen = {}, {}
  for _ = 1, n * 3 do
    local k = pick_own()
    if not seen[k.text] then
      seen[k.text] = true
      picked[#picked + 1] = k
      if #picked == n then break end
    end
  end
  return picked
end

local function own_add()
  local keys = distinct_own(random(1, 6))
  local records, values = {}, {}
  for _, k in ipairs(keys) do
    values[k.text] = random_object(0, 1, 4)
    records[k.key] = values[k.text]
  end
  local ttl_ms = random(3) == 1 and nil or TTLS_MS[random(#TTLS_MS)]
  local stored = ttl_ms or DEFAULT_TTL_MS
  run("add", function() return cache:add(records, ttl_ms and ttl_ms / 1000) end, function(t_lo, t_hi, n)
    if n ~= #keys then inconsistent("add of %d records returned %s", #keys, tostring(n)) end
    for _, k in ipairs(keys) do
      own[k.text] = { written(values[k.text], stored, t_lo, t_hi) }
      trace(k.text, "add ttl %d [%.0f,%.0f]", stored, t_lo, t_hi)
    end
  end, function(t_lo, t_hi)
    for _, k in ipairs(keys) do
      local c = own[k.text]
      c[#c + 1] = written(values[k.text], stored, t_lo, t_hi)
      own[k.text] = merged(c)
    end
  end)
end

local function own_delete()
  local k = pick_own()
  local how = random(4)
  run("delete", function()
    if how == 1 then
      cache[k.key] = nil
      return nil
    end
    return cache:delete_record(k.key)
  end, function(t_lo, t_hi, existed)
    local c = own[k.text]
    if existed == true and not may_present(c, t_lo) or existed == false and not may_absent(c, t_hi) then
      inconsistent("delete %s -> %s at [%.0f,%.0f]; journal: %s%s", k.text, tostring(existed), t_lo, t_hi,
        show_cands(c), evidence(k.key, k.text))
    end
    own[k.text] = { false }
    trace(k.text, "delete [%.0f,%.0f] %s", t_lo, t_hi, tostring(existed))
  end, function()
    local c = own[k.text]
    c[#c + 1] = false
    own[k.text] = merged(c)
  end)
end

local function own_bulk_delete()
  local keys = distinct_own(random(1, 6))
  local list = {}
  for i, k in ipairs(keys) do list[i] = k.key end
  run("bulk_delete", function() return cache:bulk_delete(list) end, function(t_lo, t_hi, n)
    local lo, hi = 0, 0
    for _, k in ipairs(keys) do
      local c = own[k.text]
      if may_present(c, t_lo) then hi = hi + 1 end
      if not may_absent(c, t_hi) then lo = lo + 1 end
    end
    if mtype(n) ~= "integer" or n < lo or n > hi then
      local detail = {}
      for _, k in ipairs(keys) do
        detail[#detail + 1] = ("%s: %s; history: %s"):format(k.text, show_cands(own[k.text]),
          table.concat(history[k.text] or {}, " / "))
      end
      inconsistent("bulk_delete of %d keys returned %s at [%.0f,%.0f], expected %d..%d; %s", #keys, tostring(n), t_lo,
        t_hi, lo, hi, table.concat(detail, " | "))
    end
    for _, k in ipairs(keys) do
      own[k.text] = { false }
      trace(k.text, "bulk_delete [%.0f,%.0f]", t_lo, t_hi)
    end
  end, function()
    for _, k in ipairs(keys) do
      local c = own[k.text]
      c[#c + 1] = false
      own[k.text] = merged(c)
    end
  end)
end

local function own_ttl()
  local k = pick_own()
  run("ttl", function() return cache:ttl(k.key) end, function(t_lo, t_hi, s)
    local c = own[k.text]
    local ok, keep = false, {}
    if s == nil then
      ok = may_absent(c, t_hi)
      keep = { false }
    elseif type(s) == "number" and (mtype(s) == "float" or not HAVE_INTEGERS) and s >= 0 and s ~= math.huge then
      -- seconds left, a float (0.0: under 1 ms); any number where there is no integer subtype
      local ms = s * 1000
      for _, x in ipairs(c) do
        -- seconds left: at most the record's TTL, at least what its last access leaves
        if x and not dead_sure(x, t_lo) and ms <= x.ttl + 1 and ms >= x.lo + x.ttl - t_hi - MARGIN then
          ok = true
          keep[#keep + 1] = x
        end
      end
    end
    if not ok then
      inconsistent("ttl %s -> %s at [%.0f,%.0f]; journal: %s%s", k.text, tostring(s), t_lo, t_hi, show_cands(c),
        evidence(k.key, k.text))
      keep = c
    end
    own[k.text] = merged(keep)
  end)
end

local function own_exists()
  local k = pick_own()
  run("exists", function() return cache:exists(k.key) end, function(t_lo, t_hi, e)
    local c = own[k.text]
    if e == true and not may_present(c, t_lo) or e == false and not may_absent(c, t_hi) or type(e) ~= "boolean" then
      inconsistent("exists %s -> %s at [%.0f,%.0f]; journal: %s%s", k.text, tostring(e), t_lo, t_hi, show_cands(c),
        evidence(k.key, k.text))
    elseif e == false then
      own[k.text] = { false }
    else
      local keep = {}
      for _, x in ipairs(c) do if x and not dead_sure(x, t_lo) then keep[#keep + 1] = x end end
      own[k.text] = keep
    end
  end)
end

---------------------------------------------------------------------------
-- Hot keys: every process merges its own fields into them
---------------------------------------------------------------------------

-- Checks this process's fields in rec (seen at a time in [t_lo, t_hi]);
-- access: the observation was a read or write (it keeps the record alive).
local function observe_hot(key, rec, t_lo, t_hi, access, what)
  local h = hot[key]
  for name, st in pairs(h.fields) do
    local why = check_field(st, name, rec, h.segs, t_hi)
    if why then inconsistent("%s %s at [%.0f,%.0f]: %s", what, key, t_lo, t_hi, why) end
    local v = rec and rec[name]
    st.cands = { field_cand(v) }
    if access then st.since = t_hi end
  end
  if rec and access then add_segment(h.segs, t_lo, t_hi, DEFAULT_TTL_MS) end
end

local function hot_update()
  local key = hot_keys[random(#hot_keys)]
  local fields = {}
  for _ = 1, random(1, 3) do fields[hot_fields[random(HOT_FIELDS)]] = random_value(1) end
  run("hot_update", function() return cache:update(key, fields) end, function(t_lo, t_hi, r)
    for name, v in pairs(fields) do
      if not eq(r[name], v) then inconsistent("update %s: field %q came back %s, wrote %s", key, name, show(r[name]), show(v)) end
    end
    local h = hot[key]
    -- the fields not written now must still be there
    for name, st in pairs(h.fields) do
      if fields[name] == nil then
        local why = check_field(st, name, r, h.segs, t_hi)
        if why then inconsistent("update %s at [%.0f,%.0f]: %s", key, t_lo, t_hi, why) end
        st.cands = { field_cand(r[name]) }
        st.since = t_hi
      end
    end
    for name, v in pairs(fields) do h.fields[name] = { cands = { { v } }, since = t_hi } end
    add_segment(h.segs, t_lo, t_hi, DEFAULT_TTL_MS)
  end, function(t_lo, t_hi)
    local h = hot[key]
    for name, v in pairs(fields) do
      local st = h.fields[name]
      if st then
        if not among(st.cands, v) then st.cands[#st.cands + 1] = { v } end
      else
        h.fields[name] = { cands = { false, { v } }, since = t_hi }
      end
    end
  end)
end

local function hot_get()
  local key = hot_keys[random(#hot_keys)]
  run("hot_get", function() return cache[key] end, function(t_lo, t_hi, r)
    observe_hot(key, r, t_lo, t_hi, true, "get")
  end)
end

---------------------------------------------------------------------------
-- The cleanup range and cleanup
---------------------------------------------------------------------------

local function cleanup_set()
  ck_seq = ck_seq + 1
  local key = ("c%d:%d"):format(P, ck_seq)
  local v = random_object(0, 1, 3)
  run("cleanup_set", function() cache:set_record(key, v, CLEANUP_TTL_S) end, function(t_lo, t_hi)
    ck[key] = { v = v, lo = t_lo, hi = t_hi, sure = true }
  end, function(t_lo, t_hi)
    local e = ck[key]
    ck[key] = { v = v, lo = e and e.lo or t_lo, hi = t_hi, sure = false }
  end)
end

local function cleanup()
  run("cleanup", function() return cache:cleanup_inactive_records(IDLE_MIN) end, function(t_lo, t_hi, n)
    if mtype(n) ~= "integer" or n < 0 then inconsistent("cleanup returned %s", tostring(n)) end
    cleanups[#cleanups + 1] = { lo = t_lo, hi = t_hi, n = n }
  end, function(t_lo, t_hi)
    cleanups[#cleanups + 1] = { lo = t_lo, hi = t_hi, n = false }
  end)
end

---------------------------------------------------------------------------
-- Listings (not an access: nothing refreshed)
---------------------------------------------------------------------------

local LISTINGS = {
  { ("p%d:*"):format(P), function(k) return k.string end },
  { ("p%d:k1*"):format(P), function(k) return k.string and tostring(k.i):sub(1, 1) == "1" end },
  { ("%d??????"):format(P), function(k) return not k.string end },
  { "hot:*" },
  { ("c%d:*"):format(P) },
}

local function check_listing(which, all, t_lo, t_hi)
  local pattern, member = which[1], which[2]
  local checked = 0
  if member then
    local mine = {}
    for _, k in ipairs(own_keys) do
      if member(k) then
        mine[k.text] = true
        checked = checked + 1
        local c = own[k.text]
        local next_cands = observe(c, all[k.text], t_lo, t_hi, false)
        if not next_cands then
          inconsistent("get_all_records(%q)[%s] -> %s at [%.0f,%.0f]; journal: %s%s", pattern, k.text,
            show(all[k.text]), t_lo, t_hi, show_cands(c), evidence(k.key, k.text))
        else
          own[k.text] = next_cands
        end
      end
    end
    for key in pairs(all) do
      if not mine[key] then inconsistent("get_all_records(%q) returned a stranger: %q", pattern, key) end
    end
  elseif pattern == "hot:*" then
    for key in pairs(all) do
      if not hot[key] then inconsistent("get_all_records(\"hot:*\") returned a stranger: %q", key) end
    end
    for _, key in ipairs(hot_keys) do
      checked = checked + 1
      observe_hot(key, all[key], t_lo, t_hi, false, "get_all_records(\"hot:*\")")
    end
  else
    for key, v in pairs(all) do
      local e = ck[key]
      if not e then
        inconsistent("get_all_records(%q) returned a stranger: %q", pattern, key)
      elseif not eq(e.v, v) then
        inconsistent("get_all_records(%q)[%s] -> %s, wrote %s", pattern, key, show(v), show(e.v))
      end
    end
    for key, e in pairs(ck) do
      checked = checked + 1
      -- only a cleanup (of anybody) may have removed it, once idle long enough
      if all[key] == nil and e.sure and not (e.lo < t_hi - IDLE_MS + MARGIN) then
        inconsistent("get_all_records(%q): %s is missing, written at [%.0f,%.0f], listed at [%.0f,%.0f]",
          pattern, key, e.lo, e.hi, t_lo, t_hi)
      end
    end
  end
  return checked
end

local function listing(which)
  run("get_all_records", function() return cache:get_all_records(which[1]) end, function(t_lo, t_hi, all)
    check_listing(which, all, t_lo, t_hi)
  end)
end

-- After a restart: everything this process knows, read back at once.
local function sweep()
  local checked, before = 0, stats.inconsistencies
  for _, which in ipairs(LISTINGS) do
    if which[1] ~= LISTINGS[2][1] then
      run("get_all_records", function() return cache:get_all_records(which[1]) end, function(t_lo, t_hi, all)
        checked = checked + check_listing(which, all, t_lo, t_hi)
      end, nil, true)
    end
  end
  stats.sweeps[#stats.sweeps + 1] = { at = now(), checked = checked, inconsistencies = stats.inconsistencies - before }
end

---------------------------------------------------------------------------
-- Main loop
---------------------------------------------------------------------------

local MIX = {
  { 250, own_get }, { 130, own_set }, { 110, own_update }, { 40, own_add }, { 50, own_delete },
  { 25, own_bulk_delete }, { 20, own_ttl }, { 15, own_exists }, { 234, hot_update }, { 80, hot_get },
  { 40, cleanup_set }, { 3, cleanup }, { 3, function() listing(LISTINGS[random(#LISTINGS)]) end },
}
local TOTAL = 0
for _, m in ipairs(MIX) do TOTAL = TOTAL + m[1] end

local function write_progress(n)
  if not PROGRESS then return end
  local f = io.open(PROGRESS .. ".tmp", "w")
  if f then
    f:write(n, "\n")
    f:close()
    os.rename(PROGRESS .. ".tmp", PROGRESS)
  end
end

local function wait_for(path, seconds)
  local waited = 0
  while waited < seconds do
    local f = io.open(path)
    if f then f:close() return true end
    system.sleep(0.005)
    waited = waited + 0.005
  end
  return false
end

if GO then wait_for(GO, 60) end -- start together

stats.t_start = now()
for i = 1, OPS do
  local r, acc = random(TOTAL), 0
  for _, m in ipairs(MIX) do
    acc = acc + m[1]
    if r <= acc then m[2]() break end
  end
  if pending_sweep then
    pending_sweep = false
    sweep()
  end
  if i % 250 == 0 then write_progress(i) end
end
stats.t_end = now()
write_progress(OPS)
if RETRY and RESTARTED and stats.transport == 0 then
  -- done before the restart: check, after it, that nothing was lost
  stats.waited_for_restart = wait_for(RESTARTED, 600)
  sweep()
end
cache:close()

---------------------------------------------------------------------------
-- The journal
---------------------------------------------------------------------------

local out = { "return " }
serialize({
  id = P, ops = OPS, idle_ms = IDLE_MS, default_ttl_ms = DEFAULT_TTL_MS, stats = stats,
  own = own, hot = hot, ck = ck, cleanups = cleanups, history = history,
}, out)
local f = assert(io.open(OUT .. ".tmp", "wb"))
f:write(table.concat(out))
f:close()
assert(os.rename(OUT .. ".tmp", OUT))
