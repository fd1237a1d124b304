-- A private redis-server for the fault specs, which kill, pause and restart
-- it (the shared server of spec/support/with-redis is never touched).
--
--   local Server = require "support.server"
--   local s = Server.new { "requirepass s3cret-pw" }  -- extra redis.conf lines
--   s.socket, s.port, s.dir, s.pid
--   s:kill()      SIGKILL, returns once the process is gone
--   s:pause()     SIGSTOP           s:resume()   SIGCONT
--   s:stop()      SIGTERM (a clean shutdown), waits for the exit
--   s:start([lines])   starts again on the same socket and port; lines, when
--                      given, replace the extra config lines
--   s:cli(...)    redis-cli on its socket -> output without the last newline
--   s:debug_sleep(seconds)  DEBUG SLEEP from another connection, in the
--                 background; returns a function that waits for its end
--   s:destroy()   kills it and removes its directory
--   s:alive()     true while it runs (stopped by SIGSTOP counts)
--   s.auth = { user or nil, password }   credentials s:cli uses
--   Server.free_port()   a loopback port nothing listens on
--
-- Each server lives in a mktemp -d directory with a unix socket and a free
-- 127.0.0.1 port. A watchdog shell kills the server and removes the
-- directory if the Lua process that made it dies first (a crashing test
-- must not leave servers behind). Processes are only ever signalled by the
-- pid this helper started, after checking it is still that redis-server.

local Server = {}
Server.__index = Server

local shell = require "support.shell"
local quote, read_file, run, sleep = shell.quote, shell.read_file, shell.capture, shell.sleep
local port_in_use = shell.port_in_use
Server.free_port = shell.free_port

-- The state letter of a process (R, S, T, Z, ...), nil if there is none.
local function state_of(pid)
  local status = read_file("/proc/" .. pid .. "/status")
  return status and status:match("\nState:%s*(%a)")
end

-- True while pid is the redis-server this helper started in dir (not a
-- zombie, not a process that reused the pid).
local function is_ours(pid, dir)
  local st = state_of(pid)
  if st == nil or st == "Z" then return false end
  local comm = read_file("/proc/" .. pid .. "/comm") or ""
  local cwd = run("readlink /proc/" .. pid .. "/cwd 2>/dev/null")
  return comm:match("^redis%-server") ~= nil and cwd == dir
end

function Server:alive()
  return self.pid ~= nil and is_ours(self.pid, self.dir)
end

-- True once the process has exited entirely. Its main thread turns zombie
-- before the other threads are done, and the last one to exit closes the
-- listening sockets: until then a connect still lands in the dead
-- listener's queue, so wait for the zombie to be the only thread left.
local function gone(pid, dir)
  local status = read_file("/proc/" .. pid .. "/status")
  if status == nil then return true end
  if status:match("\nState:%s*(%a)") == "Z" then
    return tonumber(status:match("\nThreads:%s*(%d+)")) == 1
  end
  -- still running or exiting (its cwd unreadable already), unless the pid
  -- was reaped and reused by another program
  if not status:match("^Name:%s*redis%-server") then return true end
  local cwd = run("readlink /proc/" .. pid .. "/cwd 2>/dev/null")
  return cwd ~= dir and cwd ~= ""
end

function Server:_write_config()
  local lines = {
    "bind 127.0.0.1",
    "port " .. self.port,
    "unixsocket " .. self.socket,
    "unixsocketperm 700",
    "dir " .. self.dir,
    'save ""',
    "appendonly no",
    "daemonize no",
    "logfile " .. self.dir .. "/redis.log",
    "enable-debug-command local",
  }
  for _, line in ipairs(self.extra) do lines[#lines + 1] = line end
  local f = assert(io.open(self.dir .. "/redis.conf", "w"))
  f:write(table.concat(lines, "\n"), "\n")
  f:close()
end

-- The shell command running redis-cli on the server's socket with the
-- arguments; self.auth = { user or nil, password } when the server needs it.
function Server:_cli_command(...)
  local args = {}
  for i = 1, select("#", ...) do args[i] = quote((select(i, ...))) end
  local prefix = ""
  if self.auth then
    prefix = "REDISCLI_AUTH=" .. quote(self.auth[2]) .. " "
    if self.auth[1] then table.insert(args, 1, "--user " .. quote(self.auth[1])) end
  end
  return prefix .. "redis-cli --no-auth-warning -s " .. quote(self.socket) .. " " .. table.concat(args, " ")
end

--- redis-cli on the server's socket -> its output (stdout and stderr)
--- without the last newline.
function Server:cli(...)
  return run(self:_cli_command(...) .. " 2>&1")
end

--- Sends DEBUG SLEEP seconds from another connection (redis-cli in the
--- background) and returns at once; the function it returns waits (at most
--- seconds + 5 s) until the server answered that command.
function Server:debug_sleep(seconds)
  local done = self.dir .. "/debug-sleep.done"
  os.remove(done)
  os.execute(("(%s >/dev/null 2>&1; touch %s) &"):format(
    self:_cli_command("DEBUG", "SLEEP", tostring(seconds)), quote(done)))
  return function()
    for _ = 1, math.ceil((seconds + 5) * 50) do
      if read_file(done) then return end
      sleep(0.02)
    end
    error("DEBUG SLEEP " .. seconds .. " did not return")
  end
end

-- Starts redis-server and waits until it answers (any reply, even NOAUTH,
-- once it has loaded its data). Returns true, or false and the log if it
-- exited (e.g. the port was taken).
function Server:_launch()
  self:_write_config()
  os.execute(("cd %s && redis-server ./redis.conf >/dev/null 2>&1 & echo $! > %s"):format(
    quote(self.dir), quote(self.dir .. "/pid")))
  self.pid = assert(tonumber(read_file(self.dir .. "/pid")), "no pid")
  for _ = 1, 200 do
    local st = state_of(self.pid)
    if st == nil or st == "Z" then
      return false, read_file(self.dir .. "/redis.log") or ""
    end
    local reply = self:cli("PING")
    if reply:find("PONG") or (reply:find("NOAUTH") or reply:find("WRONGPASS")) then return true end
    sleep(0.02)
  end
  error("redis-server did not become ready in 4 s:\n" .. (read_file(self.dir .. "/redis.log") or ""))
end

--- Starts the server (again) on its socket and port; lines, if given,
--- replace the extra config lines.
function Server:start(lines)
  assert(not self:alive(), "the server is already running")
  if lines then self.extra = lines end
  local ok, log = self:_launch()
  if not ok then error("redis-server exited at start:\n" .. log) end
  return self
end

-- What the watchdog does once the Lua process is gone: kill the server
-- left behind (if its cwd is still the directory).
local CLEANUP = [=[
  pid=$(cat "$dir/pid" 2>/dev/null)
  if [ -n "$pid" ] && [ "$(readlink /proc/$pid/cwd 2>/dev/null)" = "$dir" ]; then kill -9 "$pid"; fi]=]

--- A new server with extra config lines (a list of strings).
function Server.new(lines)
  local dir = shell.private_dir("rcache-faults", CLEANUP)
  local self = setmetatable({ dir = dir, socket = dir .. "/redis.sock", extra = lines or {} }, Server)
  local ok, err = pcall(function()
    for _ = 1, 5 do
      self.port = Server.free_port()
      local launched, log = self:_launch()
      if launched then return end
      if not log:find("Address already in use") then error("redis-server exited at start:\n" .. log) end
    end
    error("could not start redis-server on a free port")
  end)
  if not ok then
    self:destroy()
    error(err, 0)
  end
  return self
end

-- Waits (up to 10 s) until the process has exited.
function Server:_wait_gone()
  for _ = 1, 1000 do
    if gone(self.pid, self.dir) then return end
    sleep(0.01)
  end
  error("redis-server " .. self.pid .. " did not exit")
end

local function signal(self, sig)
  if self:alive() then os.execute(("kill -%s %d 2>/dev/null"):format(sig, self.pid)) end
end

function Server:kill()
  signal(self, "KILL")
  self:_wait_gone()
end

function Server:stop()
  signal(self, "CONT")
  signal(self, "TERM")
  for _ = 1, 500 do
    if gone(self.pid, self.dir) then return end
    sleep(0.01)
  end
  self:kill()
end

function Server:pause() signal(self, "STOP") end

function Server:resume() signal(self, "CONT") end

function Server:destroy()
  if self.pid then self:kill() end
  os.execute("rm -rf " .. quote(self.dir))
end

return Server
