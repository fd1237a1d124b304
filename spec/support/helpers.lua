-- Shared by the specs: the throwaway Redis that spec/support/with-redis
-- started, fresh caches in namespaces of their own, a raw redis-cli, and a
-- MONITOR recorder that shows what went over the wire.
local rcache = require "rcache_live"
local internal = require("rcache_live.core").internal

local H = {}

H.socket = assert(os.getenv("RCACHE_TEST_SOCKET"), "run the specs through spec/support/with-redis (make test)")
H.port = assert(tonumber(os.getenv("RCACHE_TEST_PORT")))
H.dead_port = assert(tonumber(os.getenv("RCACHE_TEST_DEAD_PORT")))
H.dir = assert(os.getenv("RCACHE_TEST_DIR"))

local counter = 0
--- A namespace no other test uses.
function H.namespace(tag)
  counter = counter + 1
  return ("t%d-%s-%d"):format(os.time() % 100000, tag or "ns", counter)
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

--- Runs redis-cli on the test server with the given arguments; returns its
-- output without the trailing newline.
function H.cli(...)
  local args = {}
  for i = 1, select("#", ...) do args[i] = shell_quote((select(i, ...))) end
  local p = assert(io.popen("redis-cli -s " .. shell_quote(H.socket) .. " " .. table.concat(args, " ")))
  local out = p:read("a")
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
    local text = f and f:read("a") or ""
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
  local results = table.pack(fn())
  H.raw("PING", "monitor-end-marker")
  wait_for(file, "monitor%-end%-marker") -- everything before it is recorded
  local pf = io.open(pidfile)
  local pid = pf:read("l")
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
  return lines, table.unpack(results, 1, results.n)
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

--- Bit-for-bit equality of two floats (keeps -0.0 apart from 0.0).
function H.same_float(x, y)
  return math.type(x) == "float" and math.type(y) == "float"
    and string.pack("<d", x) == string.pack("<d", y)
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
