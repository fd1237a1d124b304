-- examples/active_ttl.lua: Active TTL (README.md, "Active TTL").
-- Sleeps 1.2 s in all.
local rcache = require "rcache_live"

-- Enable Active TTL when creating the cache
local sessions = rcache.new{ active_ttl = true }

-- Store a session for 2 seconds (without a TTL: default_ttl)
sessions:set_record("session:456", { user = "Alice", status = "active" }, 2)
os.execute("sleep 0.5")
print(sessions:ttl("session:456"))              --> 1.5 (about)

-- A read within the TTL resets it to the 2 seconds it was stored with
local session = sessions["session:456"]
print(session.user, sessions:ttl("session:456"))   --> Alice	2.0 (about)

-- So does an update; listings, exists and ttl are not accesses
os.execute("sleep 0.5")
sessions:update("session:456", { status = "idle" })
print(sessions:ttl("session:456"))              --> 2.0 (about)
local all = sessions:get_all_records("session:*")
print(all["session:456"].status, sessions:exists("session:456"))   --> idle	true

-- Without Active TTL a read leaves the TTL alone
local plain = rcache.new()
os.execute("sleep 0.2")
local _ = plain["session:456"]
print(plain:ttl("session:456") < 1.9)           --> true

sessions:delete_record("session:456")
sessions:close()
plain:close()
