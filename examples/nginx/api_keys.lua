-- access_by_lua: a request needs an X-Api-Key header naming a record of the
-- "apikeys" namespace, e.g. apikeys["k-123"] = { client = "acme" }. No
-- header: 401; an unknown key: 403. The content phase greets the client.
local caches = require "caches"
local reply = require "reply"

local apikeys = caches.apikeys

local M = {}

function M.check()
  local key = ngx.var.http_x_api_key
  if not key or key == "" then return ngx.exit(ngx.HTTP_UNAUTHORIZED) end
  local entry = apikeys:get_record(key)
  if type(entry) ~= "table" then return ngx.exit(ngx.HTTP_FORBIDDEN) end
  ngx.ctx.client = entry.client
end

function M.hello()
  reply(200, { hello = ngx.ctx.client })
end

return M
