-- The probes of the non-blocking test, each with a cache of its own:
--   /probe/slow?transport=cosocket|hiredis  reads a record from Redis A
--     (RCACHE_PROBE_SLOW_URL) with that transport; answers when the read
--     started and finished, on nginx's clock
--   /probe/fast  reads a record from Redis B (RCACHE_PROBE_FAST_URL) over
--     cosockets; answers when it was served
--   /probe/ops  runs every operation once on Redis A, in a fresh namespace,
--     and answers with the results
--   /probe/phases  writes and reads a record in the rewrite phase (the
--     content phase answers it), then tries a read in the log phase, where
--     cosockets are unavailable, and logs the error at warn level
local rcache = require "rcache_live"
local json = rcache.json

local M = {}

local slow = {}
local fast

local function now()
  ngx.update_time() -- ngx.now() is the time the event loop last woke up
  return ngx.now()
end

function M.slow()
  local transport = ngx.var.arg_transport
  slow[transport] = slow[transport]
    or rcache.new{ url = os.getenv("RCACHE_PROBE_SLOW_URL"), namespace = "probe", transport = transport }
  local started = now()
  local value = slow[transport]:get_record("slow")
  ngx.say(json.encode{ started = started, finished = now(), value = value or json.null })
end

function M.fast()
  fast = fast or rcache.new{ url = os.getenv("RCACHE_PROBE_FAST_URL"), namespace = "probe" }
  local value = fast:get_record("fast")
  ngx.say(json.encode{ at = now(), value = value or json.null })
end

local phases
local function phases_cache()
  phases = phases or rcache.new{ url = os.getenv("RCACHE_PROBE_SLOW_URL"), namespace = "phases" }
  return phases
end

function M.rewrite()
  phases_cache():set_record("rw", "written and read in the rewrite phase")
  ngx.ctx.rewrite = phases_cache():get_record("rw")
end

function M.log()
  local ok, err = pcall(phases_cache().get_record, phases_cache(), "rw")
  ngx.log(ngx.WARN, "log phase: ", ok and "no error" or err)
end

local runs = 0
function M.ops()
  runs = runs + 1
  local cache = rcache.new{ url = os.getenv("RCACHE_PROBE_SLOW_URL"), namespace = "ops" .. runs }
  local r = {}
  cache:set_record("s", { n = 1 }, 10)
  r.update = cache:update("s", { m = 2 })
  r.add = cache:add{ a1 = 1, a2 = { 2 } }
  r.exists = cache:exists("a1")
  r.ttl = cache:ttl("s")
  r.all = cache:get_all_records()
  r.keys = {}
  for key in cache:records() do r.keys[#r.keys + 1] = key end
  table.sort(r.keys)
  r.bulk_delete = cache:bulk_delete{ "a2", "nope" }
  r.deleted = cache:delete_record("a1")
  r.deleted_again = cache:delete_record("a1")
  ngx.sleep(0.01) -- cleanup(0) takes records accessed before this millisecond
  r.cleanup = cache:cleanup_inactive_records(0)
  r.after = cache:get_all_records()
  r.missing = cache:get_record("missing")
  if r.missing == nil then r.missing = json.null end
  -- dictionary-style: __index and __newindex yield like any method
  cache["d"] = { x = 1 }
  r.dict = cache["d"]
  cache["d"] = nil
  r.dict_after = cache["d"] == nil
  cache:close()
  r.closed = select(2, pcall(cache.get_record, cache, "s"))
  ngx.say(json.encode(r))
end

return M
