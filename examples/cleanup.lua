-- examples/cleanup.lua: cleanup of idle records (README.md, "Cleanup of idle
-- records" and "Usage"). Sleeps 1.2 s in all.
--
-- cleanup_inactive_records works on the whole namespace ("rcache" here):
-- run this against a throwaway server.
local rcache = require "rcache_live"
local cache = rcache.new()

cache["report:old"] = { rows = 1 }
cache["report:hot"] = { rows = 2 }
os.execute("sleep 1.2")
local _ = cache["report:hot"]                   -- a read is an access

-- delete what nobody touched for 1 second (1/60 of a minute)
print(cache:cleanup_inactive_records(1 / 60))   --> 1
print(cache:exists("report:old"), cache:exists("report:hot"))   --> false	true

-- delete the records nobody read or wrote in the last 6 seconds (0.1 minutes)
local deleted = cache:cleanup_inactive_records(0.1)
print(deleted)                                  --> 0 (on a fresh server)

cache:delete_record("report:hot")
cache:close()
