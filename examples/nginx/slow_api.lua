-- The slow upstream of the API cache: answers after 0.3 s with JSON naming
-- the path, the arguments and how many times this worker was asked.
local reply = require "reply"

local M = {}
local calls = 0

function M.handle()
  ngx.sleep(0.3)
  calls = calls + 1
  reply(200, { path = ngx.var.uri, args = ngx.var.args or "", call = calls, at = ngx.now() })
end

return M
