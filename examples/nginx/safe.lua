-- rcache.safe: the same methods, but a failure comes back as nil, err (the
-- OpenResty way) instead of being raised; a missing record is nil alone.
--   GET /safe/<key>            -> 200 the record, 404 none, 503 {"error": ...}
--   PUT /safe/<key> JSON body  -> 204, 503 {"error": ...}
local rcache = require "rcache_live"
local caches = require "caches"
local reply = require "reply"
local request = require "request"

local records = rcache.safe(caches.records)

local M = {}

function M.handle()
  local key = request.key_after("/safe/")
  if not key then return reply(400, { error = "no key" }) end
  local method = ngx.req.get_method()
  if method == "GET" then
    local value, err = records:get_record(key)
    if err then return reply(503, { error = err }) end
    if value == nil then return reply(404, { error = "no such record" }) end
    return reply(200, value)
  elseif method == "PUT" then
    local value, berr = request.json_body()
    if berr then return reply(400, { error = berr }) end
    local ok, err = records:set_record(key, value)
    if not ok then return reply(503, { error = err }) end
    return reply(204)
  end
  reply(405, { error = "GET or PUT" })
end

return M
