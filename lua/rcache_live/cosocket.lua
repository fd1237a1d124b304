-- rcache_live.cosocket: the transport of a cache inside nginx (OpenResty,
-- lua-nginx-module). Its network I/O goes over ngx.socket.tcp cosockets
-- taken from the worker's connection pool and put back after each
-- operation, so a handler waiting on Redis yields to nginx's event loop
-- instead of blocking the worker. The C core still builds every command
-- (internal.request, internal.format) and parses every reply (core.reader):
-- the bytes are the ones the blocking connection sends and reads.

local core = require "rcache_live.core"

local ngx = rawget(_G, "ngx")
local error, type, ipairs, setmetatable = error, type, ipairs, setmetatable
local remove = table.remove

local internal = core.internal
local RECEIVE_MAX = 65536

-- the phases where cosockets work
local COSOCKET_PHASES = {
  rewrite = true, access = true, content = true, timer = true, ssl_cert = true,
  ssl_session_fetch = true, ssl_client_hello = true, preread = true,
}
local SCRIPT_NAMES = { "read", "write", "delete", "cleanup", "update" }

local T = {}
T.__index = T

local function fail(op, fmt, ...)
  error(("rcache_live: %s: " .. fmt):format(op, ...), 0)
end

-- A cosocket error in the words the blocking connection uses.
local function cause_of(err)
  if err == "timeout" then return "timed out" end
  if err == "closed" then return "connection closed by the server" end
  return err
end

local function hex(bytes)
  return (bytes:gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end

-- The set-up commands a new connection runs, each with the words its
-- failure is reported in: AUTH and SELECT as the settings ask, else PING,
-- so that a server wanting a password or still loading is named as such
-- (as the blocking connection's SCRIPT LOAD on connect names it).
local function handshake(settings)
  local commands, what = {}, {}
  if settings.password or settings.username then
    -- a username alone is an ACL user with nopass: any password will do
    local auth = { "AUTH", settings.password or "" }
    if settings.username then auth = { "AUTH", settings.username, settings.password or "" } end
    commands[#commands + 1], what[#what + 1] = auth, "authentication failed"
  end
  if settings.db ~= 0 then
    commands[#commands + 1], what[#what + 1] = { "SELECT", settings.db }, "SELECT failed"
  end
  if #commands == 0 then commands[1], what[1] = { "PING" }, "PING failed" end
  return { bytes = internal.format("new", commands), n = #commands, what = what }
end

--- new(settings) -> transport, for the resolved settings of one cache
function T.new(settings)
  if not (ngx and ngx.socket and ngx.socket.tcp) then
    error("rcache_live: new: transport 'cosocket' needs nginx's lua module (ngx.socket.tcp)", 0)
  end
  local self = setmetatable({ readers = {} }, T)
  if settings.socket then
    self.address, self.where = "unix:" .. settings.socket, "unix:" .. settings.socket
  else
    self.address, self.port = settings.host, settings.port
    self.where = ("%s:%d"):format(settings.host, settings.port)
  end
  self.connect_ms = settings.connect_timeout * 1000
  self.timeout_ms = settings.timeout * 1000
  self.keepalive_ms = settings.keepalive_timeout * 1000
  self.pool_size = settings.pool_size
  -- connections made with other credentials or another db never share a pool
  self.connect_options = {
    pool = ("rcache_live:%s:%d:%s:%s"):format(self.where, settings.db, settings.username or "",
      settings.password and ngx.md5(settings.password) or ""),
    pool_size = settings.pool_size,
  }
  self.handshake = handshake(settings)
  self.shas, self.loads = {}, {}
  for i, name in ipairs(SCRIPT_NAMES) do
    self.shas[name] = hex(ngx.sha1_bin(settings.scripts[name]))
    self.loads[i] = { "SCRIPT", "LOAD", settings.scripts[name] }
  end
  self.load_bytes = internal.format("new", self.loads)
  return self
end

local function take_reader(self)
  return remove(self.readers) or core.reader()
end

--- give_back(reader): a reader holding nothing, for the next operation
function T:give_back(reader)
  self.readers[#self.readers + 1] = reader
end

-- Sends bytes on sock and reads n replies into a reader. All but the last
-- are taken as Lua values; the last too unless keep_last, when the reader
-- keeps holding it. Returns reader, values; on an I/O failure closes sock
-- (it may hold half a reply) and returns nil, the error, and whether any
-- reply byte had arrived.
local function exchange(self, sock, bytes, n, keep_last)
  local ok, err = sock:send(bytes)
  if not ok then
    sock:close()
    return nil, err, false
  end
  local reader, values, got = take_reader(self), {}, false
  for i = 1, n do
    while true do
      local ready, perr = reader:ready()
      if ready then break end
      if ready == nil then
        sock:close()
        return nil, perr, true
      end
      local data, rerr = sock:receiveany(RECEIVE_MAX)
      if not data then
        sock:close()
        return nil, rerr, got
      end
      got = true
      reader:feed(data)
    end
    if i < n or not keep_last then values[i] = reader:take() end
  end
  return reader, values
end

-- Runs the handshake on a connection the pool did not have yet.
local function set_up(self, sock, op)
  local reader, replies = exchange(self, sock, self.handshake.bytes, self.handshake.n, false)
  if not reader then fail(op, "%s (%s)", cause_of(replies), self.where) end
  self:give_back(reader)
  for i = 1, #replies do
    local err = type(replies[i]) == "table" and replies[i].err
    if err then
      local what = self.handshake.what[i]
      if err:sub(1, 6) == "NOAUTH" then what = "authentication required" end
      if err:sub(1, 7) == "LOADING" then what = "the server is not ready" end
      sock:close()
      fail(op, "%s: %s (%s)", what, err, self.where)
    end
  end
end

-- A connected cosocket from the pool, set up if it is new, and whether
-- it was in the pool.
local function acquire(self, op)
  local phase = ngx.get_phase()
  if not COSOCKET_PHASES[phase] then
    fail(op, "no network I/O in nginx's %s phase (cosockets are not available there)", phase)
  end
  local sock = ngx.socket.tcp()
  sock:settimeouts(self.connect_ms, self.timeout_ms, self.timeout_ms)
  local ok, err
  if self.port then
    ok, err = sock:connect(self.address, self.port, self.connect_options)
  else
    ok, err = sock:connect(self.address, self.connect_options)
  end
  if not ok then fail(op, "%s (%s)", cause_of(err), self.where) end
  local reused = sock:getreusedtimes() > 0
  if not reused then set_up(self, sock, op) end
  return sock, reused
end

-- How a pooled connection that the server closed while it sat in the pool
-- (a restart, CLIENT KILL, its idle timeout) fails: before any reply byte.
local STALE = { closed = true, ["connection reset by peer"] = true, ["broken pipe"] = true }

--- send(op, bytes, n, keep_last) -> reader, values
-- One round trip on a pooled connection: bytes out, n replies in (see
-- exchange); the connection goes back to the pool. The caller gives the
-- reader back once it holds nothing. A pooled connection found closed is
-- dropped and the bytes go out on the next one, as the blocking connection
-- replaces one found closed before it sends; every operation may be sent
-- again (see "Faults, reconnects and retries" in the README).
function T:send(op, bytes, n, keep_last)
  for _ = 1, self.pool_size + 1 do
    local sock, reused = acquire(self, op)
    local reader, values, got = exchange(self, sock, bytes, n, keep_last)
    if reader then
      if not sock:setkeepalive(self.keepalive_ms, self.pool_size) then sock:close() end
      return reader, values
    end
    if not (reused and not got and STALE[values]) then
      fail(op, "%s (%s)", cause_of(values), self.where)
    end
  end
  fail(op, "connection closed by the server (%s)", self.where)
end

--- pipeline(op, commands) -> replies, as core.internal.pipeline gives them
function T:pipeline(op, commands)
  local reader, values = self:send(op, internal.format(op, commands), #commands, false)
  self:give_back(reader)
  return values
end

--- load_scripts(op): after a NOSCRIPT reply (the server restarted, or
-- SCRIPT FLUSH)
function T:load_scripts(op)
  local reader, replies = self:send(op, self.load_bytes, #self.loads, false)
  self:give_back(reader)
  for i, name in ipairs(SCRIPT_NAMES) do
    local r = replies[i]
    if r ~= self.shas[name] then
      fail(op, "cannot load the %s script: %s (%s)", name,
        type(r) == "table" and r.err or "unexpected reply", self.where)
    end
  end
end

return T
