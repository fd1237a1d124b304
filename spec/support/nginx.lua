-- A private nginx (Debian's, with the lua module) for the nginx spec and
-- bench, run from a copy of examples/nginx/nginx.conf.
--
--   local Nginx = require "support.nginx"
--   local n = Nginx.new {
--     env = { REDIS_URL = "redis://127.0.0.1:1234" },  -- passed to the workers
--     set = { session_ttl = 2 },       -- "set $session_ttl ...;" lines changed
--     include = "/abs/extra.conf",     -- more locations, inside the server block
--     lua_path = "/abs/dir/?.lua",     -- searched before the example's paths
--   }
--   n.port, n.url, n.dir, n.pid
--   n:error_log()      the error log's text
--   n:stop()           SIGQUIT, waits until master and workers are gone
--
-- The copy differs from the example only where it must: its port (a free
-- loopback one), its pid, log and temp paths (in a mktemp -d directory),
-- the Lua paths (the checkout's lua/, examples/nginx/ and build/luajit/),
-- "user root;" when run as root (the unix sockets of the test servers are
-- the owner's only), and the lines the options above ask for. nginx runs
-- in the foreground of a background shell, with one worker. A watchdog
-- stops it and removes the directory if the Lua process that started it
-- dies first. Processes are signalled by the pids this helper started
-- only, after checking they are still that nginx.

local Nginx = {}
Nginx.__index = Nginx

local shell = require "support.shell"
local quote, read_file, run = shell.quote, shell.read_file, shell.capture
local port_in_use, free_port = shell.port_in_use, shell.free_port

--- The checkout's directory (absolute): the specs run from it.
local ROOT = run("pwd")
Nginx.ROOT = ROOT

local EXAMPLE_CONF = ROOT .. "/examples/nginx/nginx.conf"

local function lit(s) return (s:gsub("%p", "%%%0")) end

Nginx.free_port = free_port

-- Replaces every plain occurrence of from in text; fails if there is none
-- (the example changed and the harness would silently test something else).
local function replace(text, from, to)
  local out, n = text:gsub(lit(from), (to:gsub("%%", "%%%%")))
  assert(n > 0, "nginx.conf has no " .. from)
  return out
end

--- The configuration text the harness runs: the example's, adapted.
function Nginx.config(options, dir, port)
  local text = assert(read_file(options.conf or EXAMPLE_CONF))
  text = replace(text, "127.0.0.1:8080", "127.0.0.1:" .. port)
  text = replace(text, "$prefix/", ROOT .. "/")
  text = replace(text, "build/nginx/", dir .. "/")
  if options.lua_path then
    text = replace(text, 'lua_package_path "', 'lua_package_path "' .. options.lua_path .. ";")
  end
  for name, value in pairs(options.set or {}) do
    text = text:gsub("(set %$" .. lit(name) .. " )[^;]*;", "%1" .. tostring(value) .. ";")
  end
  if options.include then
    text = replace(text, "listen 127.0.0.1:" .. port .. ";",
      "listen 127.0.0.1:" .. port .. ";\n    include " .. options.include .. ";")
  end
  local head = {}
  if run("id -u") == "0" then head[#head + 1] = "user root;" end
  for name in pairs(options.env or {}) do head[#head + 1] = "env " .. name .. ";" end
  return table.concat(head, "\n") .. "\n" .. text
end

-- What the watchdog does once the Lua process is gone: send the master
-- QUIT, then KILL to it and its workers (if its command line still names
-- the directory).
local CLEANUP = [=[
  ours() { tr '\0' ' ' < /proc/$1/cmdline 2>/dev/null | grep -qF "$dir/nginx.conf"; }
  pid=$(cat "$dir/master.pid" 2>/dev/null)
  if [ -n "$pid" ] && ours "$pid"; then
    workers=$(cat /proc/$pid/task/$pid/children 2>/dev/null)
    kill -QUIT "$pid"; sleep 2
    if ours "$pid"; then kill -KILL "$pid" $workers 2>/dev/null; fi
  fi]=]

--- Starts nginx; see the top of this file for the options.
function Nginx.new(options)
  options = options or {}
  local dir = shell.private_dir("rcache-nginx", CLEANUP)
  local self = setmetatable({ dir = dir }, Nginx)
  local ok, err = pcall(function()
    for _ = 1, 5 do
      self.port = free_port()
      if self:_launch(options) then return end
      if not (self:error_log() or ""):find("Address already in use") then
        error("nginx did not start:\n" .. (self:error_log() or ""))
      end
    end
    error("could not start nginx on a free port")
  end)
  if not ok then
    self:stop()
    error(err, 0)
  end
  self.url = "http://127.0.0.1:" .. self.port
  return self
end

function Nginx:error_log()
  return read_file(self.dir .. "/error.log")
end

-- True while pid is the nginx master this helper started: running, not a
-- zombie, and named nginx with our configuration (its command line reads
-- empty for a moment while nginx rewrites it into "nginx: master process").
function Nginx:_ours(pid)
  local status = read_file("/proc/" .. pid .. "/status") or ""
  local state = status:match("\nState:%s*(%a)")
  if state == nil or state == "Z" or not status:match("^Name:%s*nginx") then return false end
  local cmdline = read_file("/proc/" .. pid .. "/cmdline") or ""
  return cmdline == "" or cmdline:find(self.dir .. "/nginx.conf", 1, true) ~= nil
end

-- Writes the configuration, checks it (nginx -t) and starts nginx; true
-- once it answers on its port, false if it exited.
function Nginx:_launch(options)
  local dir = self.dir
  local f = assert(io.open(dir .. "/nginx.conf", "w"))
  f:write(Nginx.config(options, dir, self.port))
  f:close()
  local env = {}
  for name, value in pairs(options.env or {}) do env[#env + 1] = name .. "=" .. quote(value) end
  local nginx = ("env %s nginx -p %s -c %s -e %s"):format(table.concat(env, " "),
    quote(dir .. "/"), quote(dir .. "/nginx.conf"), quote(dir .. "/error.log"))
  local test = run(nginx .. " -t 2>&1")
  if not test:find("test is successful") then error("nginx -t failed:\n" .. test) end
  os.execute(("%s -g 'daemon off;' >>%s 2>&1 </dev/null & echo $! > %s"):format(
    nginx, quote(dir .. "/error.log"), quote(dir .. "/master.pid")))
  self.pid = assert(tonumber(read_file(dir .. "/master.pid")), "no pid")
  for _ = 1, 250 do
    -- (until it has exec'd nginx, the pid is the shell's or env's)
    local status = read_file("/proc/" .. self.pid .. "/status") or ""
    local state = status:match("\nState:%s*(%a)")
    if state == nil or state == "Z" then return false end
    if port_in_use(self.port) then return true end
    os.execute("sleep 0.02")
  end
  error("nginx did not listen within 5 s:\n" .. (self:error_log() or ""))
end

--- Stops nginx (graceful QUIT, KILL after 5 s) and removes its directory.
function Nginx:stop()
  if self.pid and self:_ours(self.pid) then
    local workers = read_file(("/proc/%d/task/%d/children"):format(self.pid, self.pid)) or ""
    os.execute("kill -QUIT " .. self.pid)
    for _ = 1, 250 do
      if not self:_ours(self.pid) then break end
      os.execute("sleep 0.02")
    end
    if self:_ours(self.pid) then
      os.execute(("kill -KILL %d %s 2>/dev/null"):format(self.pid, workers))
    end
  end
  self.pid = nil
  os.execute("rm -rf " .. quote(self.dir))
end

return Nginx
