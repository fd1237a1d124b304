-- The nginx side of spec/cosocket_spec.lua. POST /eval?url=...&ns=... runs
-- the request body, a Lua chunk, as a function of (rcache, url, ns) in the
-- content phase, and answers with what it returned or raised, as exact
-- JSON: { ok = true|false, values = { ... } } (nil as null). The spec runs
-- the same chunk in its own process over the blocking connection and
-- compares the two answers.
--
-- With ?header_filter=1 the header filter phase also tries an operation
-- (cosockets are unavailable there) and puts the error in X-Filter-Error.

local rcache = require "rcache_live"
local json = rcache.json

local M = {}

local function answer(ok, ...)
  local values = {}
  for i = 1, select("#", ...) do
    local v = select(i, ...)
    values[i] = v == nil and json.null or v
  end
  return json.encode({ ok = ok, values = values })
end

function M.run()
  ngx.req.read_body()
  local chunk = assert(loadstring(ngx.req.get_body_data(), "=eval"))
  local args = ngx.req.get_uri_args()
  ngx.say(answer(pcall(chunk, rcache, args.url, args.ns)))
end

function M.header_filter()
  local args = ngx.req.get_uri_args()
  if args.header_filter then
    local cache = rcache.new { url = args.url, namespace = args.ns }
    local ok, err = pcall(cache.get_record, cache, "k")
    ngx.header["X-Filter-Error"] = ok and "none" or err
  end
end

return M
