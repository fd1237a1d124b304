-- The nginx bench's endpoints. Same work on both sides: one GET of the
-- record (RCACHE_BENCH_KEY in Redis at RCACHE_BENCH_PORT), decode the
-- JSON, encode it again, send it; connections come from a keepalive pool
-- of the same size.
--   rcache: rcache_live, track = false (no bookkeeping, a plain GET)
--   resty:  lua-resty-redis + lua-cjson (Debian's lua-nginx-redis installs
--           lua-resty-redis 0.27 as "nginx.redis")
local rcache = require "rcache_live"
local redis = require "nginx.redis"
local cjson = require "cjson"

local json = rcache.json
local PORT = tonumber(os.getenv("RCACHE_BENCH_PORT"))
local KEY = os.getenv("RCACHE_BENCH_KEY")
local POOL = 64
local KEEPALIVE = 60

local M = {}

local cache = rcache.new{ host = "127.0.0.1", port = PORT, namespace = "bench", track = false,
  pool_size = POOL, keepalive_timeout = KEEPALIVE }

function M.rcache()
  local record = cache:get_record("user:1")
  ngx.print(json.encode(record))
end

function M.resty()
  local red = redis:new()
  red:set_timeout(5000)
  local ok, err = red:connect("127.0.0.1", PORT, { pool_size = POOL })
  if not ok then error("connect: " .. err) end
  local text, gerr = red:get(KEY)
  if not text then error("get: " .. gerr) end
  local record = cjson.decode(text)
  red:set_keepalive(KEEPALIVE * 1000, POOL)
  ngx.print(cjson.encode(record))
end

return M
