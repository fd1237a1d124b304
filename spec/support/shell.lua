-- Shell helpers shared by the spec harnesses (private redis-servers, nginx,
-- HTTP over curl) and the nginx bench: quoting, running a command, reading
-- a file, loopback ports. Portable to every Lua the specs run on.
local M = {}

--- s quoted for sh.
function M.quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

--- The whole content of the file at path, or nil if it cannot be read.
function M.read_file(path)
  local f = io.open(path)
  if not f then return nil end
  local text = f:read("*a")
  f:close()
  return text
end

--- What cmd (run by sh) printed on stdout.
function M.run(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("*a")
  p:close()
  return out
end

--- The same without its last newline: a command's answer as a value.
function M.capture(cmd)
  return (M.run(cmd):gsub("\n$", ""))
end

function M.sleep(s)
  os.execute("sleep " .. s)
end

--- Whether something accepts connections on 127.0.0.1:port.
function M.port_in_use(port)
  local r = os.execute(("bash -c 'exec 3<>/dev/tcp/127.0.0.1/%d' 2>/dev/null"):format(port))
  return r == true or r == 0 -- 5.2+ say true, 5.1 and LuaJIT give the status
end

--- A loopback port nothing listens on (for "connection refused" tests too).
function M.free_port()
  for _ = 1, 100 do
    local port = math.random(20000, 60000)
    if not M.port_in_use(port) then return port end
  end
  error("no free port found")
end

--- Makes a private directory for a harness and starts its watchdog: a
-- shell in a session of its own (so that killing the test's process group
-- leaves it to clean up) that waits while the directory exists and this Lua
-- process lives, then, if the directory is still there, runs cleanup (sh,
-- with $dir set) and removes it. It ends by itself once the harness has
-- removed the directory. prefix names the directory. Returns its path.
function M.private_dir(prefix, cleanup)
  local dir = M.capture(("mktemp -d \"${TMPDIR:-/tmp}/%s.XXXXXX\""):format(prefix))
  assert(dir:match("^/"), "mktemp failed: " .. dir)
  -- $2 and $3 are the pid and start time of this process (the parent of
  -- os.execute's shell): a zombie or a reused pid does not count as alive
  local watchdog = [=[
dir=$1 lua_pid=$2 lua_start=$3
lua_alive() {
  stat=$(cat /proc/$lua_pid/stat 2>/dev/null) || return 1
  set -- $stat
  [ "$3" != Z ] && [ "${22}" = "$lua_start" ]
}
while [ -d "$dir" ] && lua_alive; do sleep 0.5; done
if [ -d "$dir" ]; then
]=] .. cleanup .. [=[

  rm -rf "$dir"
fi
]=]
  local started = os.execute(([[
    lua_start=$(cut -d' ' -f22 /proc/$PPID/stat)
    [ -n "$lua_start" ] || exit 1
    setsid sh -c %s watchdog %s "$PPID" "$lua_start" </dev/null >/dev/null 2>&1 &
  ]]):format(M.quote(watchdog), M.quote(dir)))
  if not (started == true or started == 0) then
    os.execute("rm -rf " .. M.quote(dir))
    error("could not start the watchdog")
  end
  return dir
end

return M
