-- reply(status, value[, headers]): answers with the value as JSON (the
-- exact codec records are stored with), or with no body when value is nil.
local json = require("rcache_live").json

return function(status, value, headers)
  ngx.status = status
  for name, v in pairs(headers or {}) do ngx.header[name] = v end
  if value ~= nil then ngx.print(json.encode(value), "\n") end
end
