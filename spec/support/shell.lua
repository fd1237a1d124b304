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

return M
