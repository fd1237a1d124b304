-- Shared by the specs: the throwaway Redis that spec/support/with-redis
-- started, fresh caches in namespaces of their own, a raw redis-cli, and a
-- MONITOR recorder that shows what went over the wire.
local rcache = require "rcache_live"
local internal = require("rcache_live.core").internal

local H = {}

--- The runtime running the specs, as the Makefile's LUA_VERSION names it
-- (5.1, 5.2, 5.3, 5.4 or luajit), and the interpreter that starts more
-- processes of the same kind (lua5.1 ... lua5.4, luajit).
H.lua_version = jit and "luajit" or _VERSION:match("%d+%.%d+")
H.lua = jit and "luajit" or "lua" .. H.lua_version
--- luarocks' name for it: LuaJIT counts as 5.1.
H.rocks_lua_version = jit and "5.1" or H.lua_version
--- Lua 5.3+ numbers have an integer subtype (64 bits); 5.1, 5.2 and LuaJIT
-- hold every number as a double.
H.has_integers = math.type ~= nil
--- The largest and smallest integers: the 64-bit limits with an integer
-- subtype; without one, +-(2^53 - 1), the largest the codec writes as
-- integer text (2^53 itself also stands for 2^53 + 1, so it is a float).
H.maxinteger = math.maxinteger or 2 ^ 53 - 1
H.mininteger = math.mininteger or -(2 ^ 53 - 1)

--- Whether pairs() honours __pairs: 5.2+ do; 5.1 and LuaJIT (built without
-- its 5.2 compatibility, as Debian's is) do not.
H.has_pairs_metamethod = false
for _ in pairs(setmetatable({}, { __pairs = function()
  H.has_pairs_metamethod = true
  return next, {}
end })) do end

--- Iterates the records of a cache: pairs(cache) where __pairs works, else
-- cache:records(), which every runtime has.
function H.pairs(cache)
  if H.has_pairs_metamethod then return pairs(cache) end
  return cache:records()
end

--- table.pack and table.unpack where 5.1 and LuaJIT lack them.
H.pack = table.pack or function(...) return { n = select("#", ...), ... } end
H.unpack = table.unpack or unpack

--- math.type on 5.3+. Without an integer subtype, what the codec writes a
-- number as: "integer" for an integral value below 2^53 in magnitude (not
-- -0.0), else "float".
function H.number_type(x)
  if math.type then return math.type(x) end
  if type(x) ~= "number" then return nil end
  if x == math.floor(x) and x > -2 ^ 53 and x < 2 ^ 53 and 1 / x ~= -math.huge then return "integer" end
  return "float"
end

H.socket = assert(os.getenv("RCACHE_TEST_SOCKET"), "run the specs through spec/support/with-redis (make test)")
H.port = assert(tonumber(os.getenv("RCACHE_TEST_PORT")))
H.dead_port = assert(tonumber(os.getenv("RCACHE_TEST_DEAD_PORT")))
H.dir = assert(os.getenv("RCACHE_TEST_DIR"))

-- busted loads this file afresh for each spec file (insulation), so the
-- counter alone would repeat names: a random tag per load tells them apart.
local load_tag = (function()
  local f = assert(io.open("/dev/urandom", "rb"))
  local bytes = f:read(4)
  f:close()
  return ("%02x%02x%02x%02x"):format(bytes:byte(1, 4))
end)()
local counter = 0
--- A namespace no other test uses.
function H.namespace(tag)
  counter = counter + 1
  return ("t%s-%s-%d"):format(load_tag, tag or "ns", counter)
end

--- A cache on the test server's socket in a fresh namespace; options win.
function H.cache(options)
  local o = { socket = H.socket, namespace = H.namespace() }
  for k, v in pairs(options or {}) do o[k] = v end
  return rcache.new(o), o.namespace
end

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
H.shell_quote = shell_quote

--- Whether os.execute ran cmd with exit status 0 (5.2+ say true, 5.1 and
-- LuaJIT give the status number).
function H.execute(cmd)
  local r = os.execute(cmd)
  return r == true or r == 0
end

--- Runs a shell command; returns its standard output and its exit status
-- (a number). The shell reports the status: io.popen's close gives it on
-- 5.2+ only.
function H.run(cmd)
  local p = assert(io.popen(cmd .. "\nprintf '\\nexit=%d' \"$?\""))
  local text = p:read("*a")
  p:close()
  local out, code = text:match("^(.*)\nexit=(%d+)$")
  return out, tonumber(code)
end

--- Runs redis-cli on the test server with the given arguments; returns its
-- output without the trailing newline.
function H.cli(...)
  local args = {}
  for i = 1, select("#", ...) do args[i] = shell_quote((select(i, ...))) end
  local p = assert(io.popen("redis-cli -s " .. shell_quote(H.socket) .. " " .. table.concat(args, " ")))
  local out = p:read("*a")
  p:close()
  return (out:gsub("\n$", ""))
end

--- A raw command through a separate plain cache connection (no bookkeeping),
-- for reading what the library stored. Returns the reply as the core
-- pipeline shapes it.
local raw
function H.raw(...)
  raw = raw or rcache.new { socket = H.socket, track = false, namespace = "raw" }
  return internal.pipeline(raw, "raw", { { ... } })[1]
end

--- The record key of a user key in a namespace, as the data layout defines
-- it (README, "Data layout in Redis").
function H.record_key(cache, key)
  return (internal.key(cache, key))
end

--- Sleeps for s seconds (the specs never sleep more than 3 s at once).
function H.sleep(s)
  assert(s <= 3, "no test sleeps more than 3 s")
  os.execute("sleep " .. s)
end

-- Waits (2 s at most) until the file's text matches pattern.
local function wait_for(file, pattern)
  for _ = 1, 100 do
    local f = io.open(file)
    local text = f and f:read("*a") or ""
    if f then f:close() end
    if text:find(pattern) then return end
    os.execute("sleep 0.02")
  end
end

--- Runs fn while MONITOR records the server; returns fn's results and the
-- list of commands (as text lines) sent by clients other than scripts and
-- the monitor, e.g. '"EVALSHA" "..." "4" ...'.
function H.monitor(fn)
  local file = os.tmpname()
  local pidfile = file .. ".pid"
  os.execute(("(redis-cli -s %s monitor > %s 2>&1 & echo $! > %s)"):format(
    shell_quote(H.socket), shell_quote(file), shell_quote(pidfile)))
  wait_for(file, "OK") -- MONITOR is attached
  local results = H.pack(fn())
  H.raw("PING", "monitor-end-marker")
  wait_for(file, "monitor%-end%-marker") -- everything before it is recorded
  local pf = io.open(pidfile)
  local pid = pf:read("*l")
  pf:close()
  os.execute("kill " .. pid .. " 2>/dev/null")
  local lines = {}
  for line in io.lines(file) do
    -- "<time> [<db> <client>] "CMD" "arg"...; script calls show "[0 lua]"
    local who, cmd = line:match("^%d+%.%d+ %[%d+ ([^%]]+)%] (.*)$")
    if who and who ~= "lua" and not cmd:find("monitor%-end%-marker") then
      lines[#lines + 1] = cmd
    end
  end
  os.remove(file)
  os.remove(pidfile)
  return lines, H.unpack(results, 1, results.n)
end

--- The first word of a MONITOR line: '"GET" "k"' -> "GET".
function H.command_name(line)
  return (line:match('^"([^"]+)"') or ""):upper()
end

--- A literal string as a Lua pattern.
function H.lit(s)
  return (s:gsub("%p", "%%%0"))
end

--- The number of entries of a table.
function H.count(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

--- Bit-for-bit equality of two floats (keeps -0.0 apart from 0.0). Without
-- a float subtype: equal numbers, zeros of the same sign (NaN is never
-- stored, so equal values are equal bits).
function H.same_float(x, y)
  if string.pack then
    return math.type(x) == "float" and math.type(y) == "float"
      and string.pack("<d", x) == string.pack("<d", y)
  end
  return type(x) == "number" and type(y) == "number" and x == y and 1 / x == 1 / y
end

--- Wall clock in seconds (luasystem comes with busted; whole seconds otherwise).
H.clock = os.time
do
  local ok, system = pcall(require, "system")
  if ok and system.gettime then H.clock = system.gettime end
end

--- pcall fn and return the error message (fails the test if fn succeeds).
function H.error_of(fn, ...)
  local ok, err = pcall(fn, ...)
  assert(not ok, "expected an error")
  return tostring(err)
end

--- Every key of the test server under a namespace (via SCAN).
function H.keys_of(namespace)
  local keys, cursor = {}, "0"
  repeat
    local r = H.raw("SCAN", cursor, "MATCH", namespace .. ":*", "COUNT", 1000)
    cursor = r[1]
    for _, k in ipairs(r[2]) do keys[#keys + 1] = k end
  until cursor == "0"
  table.sort(keys)
  return keys
end

return H
