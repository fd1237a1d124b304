-- content_by_lua: /records/<key>
--   GET    -> 200 the record as JSON, 404 without one
--   PUT    JSON body [?ttl=seconds] -> 204, the record is written
--   DELETE -> 200 {"deleted": true|false}
local caches = require "caches"
local reply = require "reply"
local request = require "request"

local records = caches.records

local M = {}

function M.handle()
  local key = request.key_after("/records/")
  if not key then return reply(400, { error = "no key" }) end
  local method = ngx.req.get_method()
  if method == "GET" then
    local value = records:get_record(key)
    if value == nil then return reply(404, { error = "no such record" }) end
    return reply(200, value)
  elseif method == "PUT" then
    local value, err = request.json_body()
    if err then return reply(400, { error = err }) end
    records:set_record(key, value, request.ttl_arg())
    return reply(204)
  elseif method == "DELETE" then
    return reply(200, { deleted = records:delete_record(key) })
  end
  reply(405, { error = "GET, PUT or DELETE" })
end

return M
