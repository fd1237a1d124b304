-- What the handlers read from a request.
local json = require("rcache_live").json

local M = {}

--- The request body decoded from JSON -> value, or nil and why not.
function M.json_body()
  ngx.req.read_body()
  local text = ngx.req.get_body_data()
  if not text then
    local file = ngx.req.get_body_file()
    if file then return nil, "body too large" end
    return nil, "no body"
  end
  local ok, value = pcall(json.decode, text)
  if not ok then return nil, value end
  return value
end

--- The part of the URI after prefix (the record key of /records/<key>).
function M.key_after(prefix)
  local uri = ngx.var.uri
  if uri:sub(1, #prefix) ~= prefix or #uri == #prefix then return nil end
  return uri:sub(#prefix + 1)
end

--- ?ttl=seconds -> number, or nil when absent.
function M.ttl_arg()
  return tonumber(ngx.var.arg_ttl)
end

return M
