-- ngx.timer: POST /later/<key>[?ttl=seconds] with a JSON body answers 202
-- at once; a timer writes the record afterwards, outside the request.
local caches = require "caches"
local reply = require "reply"
local request = require "request"

local records = caches.records

local M = {}

local function write(premature, key, value, ttl)
  if premature then return end -- the worker is shutting down
  local ok, err = pcall(records.set_record, records, key, value, ttl)
  if not ok then ngx.log(ngx.ERR, "later: ", err) end
end

function M.handle()
  local key = request.key_after("/later/")
  if not key then return reply(400, { error = "no key" }) end
  local value, err = request.json_body()
  if err then return reply(400, { error = err }) end
  local ok, terr = ngx.timer.at(0, write, key, value, request.ttl_arg())
  if not ok then return reply(503, { error = terr }) end
  reply(202, { scheduled = key })
end

return M
