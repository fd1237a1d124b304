-- A cache in front of a slow API: /api/<path>?<args> answers with what
-- /slow-api/<path>?<args> answered, kept for $api_cache_ttl seconds.
-- X-Cache: HIT when it came from the cache, MISS when the API was asked.
-- Only 200 answers are kept.
local caches = require "caches"

local api = caches.api

local M = {}

function M.handle(upstream)
  local path = ngx.var.uri:sub(#"/api/" + 1)
  local args = ngx.var.args
  local key = path .. "?" .. (args or "")
  local cached = api:get_record(key)
  if cached then
    ngx.header["X-Cache"] = "HIT"
    ngx.header["Content-Type"] = cached.type
    return ngx.print(cached.body)
  end
  local res = ngx.location.capture(upstream .. path, { args = args })
  if res.status == ngx.HTTP_OK then
    api:set_record(key, { type = res.header["Content-Type"], body = res.body },
      tonumber(ngx.var.api_cache_ttl))
  end
  ngx.status = res.status
  ngx.header["X-Cache"] = "MISS"
  ngx.header["Content-Type"] = res.header["Content-Type"]
  ngx.print(res.body)
end

return M
