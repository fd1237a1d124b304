-- A session store with Active TTL on /session:
--   POST   JSON body -> 201 {"id": ...} and a sid cookie; the session lives
--          for $session_ttl seconds from its last use
--   GET    -> 200 the session (and its TTL starts over), 404 if it is gone
--   PATCH  JSON object -> 200 the session with those fields merged in (the
--          TTL starts over too)
--   DELETE -> 204, the session ends
local caches = require "caches"
local reply = require "reply"
local request = require "request"

local sessions = caches.sessions

local M = {}

-- 128 random bits as hex.
local function new_id()
  local f = assert(io.open("/dev/urandom", "rb"))
  local bytes = f:read(16)
  f:close()
  return (bytes:gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end

local function create()
  local data, err = request.json_body()
  if type(data) ~= "table" then return reply(400, { error = err or "a JSON object is expected" }) end
  local id = new_id()
  data.created = ngx.time()
  sessions:set_record(id, data, tonumber(ngx.var.session_ttl))
  reply(201, { id = id }, { ["Set-Cookie"] = "sid=" .. id .. "; Path=/; HttpOnly; SameSite=Strict" })
end

local function read(id)
  local session = sessions:get_record(id) -- with Active TTL: a use
  if session == nil then return reply(404, { error = "no such session" }) end
  reply(200, session)
end

local function patch(id)
  local fields, err = request.json_body()
  if type(fields) ~= "table" then return reply(400, { error = err or "a JSON object is expected" }) end
  -- update would create a missing record: a session that ended stays ended
  if not sessions:exists(id) then return reply(404, { error = "no such session" }) end
  reply(200, sessions:update(id, fields))
end

local function delete(id)
  if not sessions:delete_record(id) then return reply(404, { error = "no such session" }) end
  reply(204, nil, { ["Set-Cookie"] = "sid=; Path=/; Max-Age=0" })
end

function M.handle()
  local method = ngx.req.get_method()
  if method == "POST" then return create() end
  local id = ngx.var.cookie_sid
  if not id or not id:match("^%x+$") then return reply(401, { error = "no session cookie" }) end
  if method == "GET" then return read(id) end
  if method == "PATCH" then return patch(id) end
  if method == "DELETE" then return delete(id) end
  reply(405, { error = "POST, GET, PATCH or DELETE" })
end

return M
