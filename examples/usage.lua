-- examples/usage.lua: the basic operations of README.md, "Usage".
-- The connection comes from the environment (see README.md, "Options").

-- Initialize the cache
local rcache = require "rcache_live"

-- connection settings from the environment (REDIS_URL, REDIS_SOCKET,
-- REDIS_HOST, ...), else 127.0.0.1:6379; Active TTL is off by default
local cache = rcache.new()

-- with Active TTL on (rcache.RCacheLive is another name for rcache.new)
local sessions = rcache.RCacheLive{ active_ttl = true }

-- Set and get a record
cache["test_key"] = { name = "Alice" }          -- set, with the default TTL
print(cache["test_key"].name)                   --> Alice
print(cache["missing"])                         --> nil

cache:set_record("test_key", { name = "Bob" }, 90)   -- a TTL of its own, in seconds
print(cache:get_record("test_key").name)        --> Bob

cache[42] = "integer keys are stored as text"
print(cache["42"])                              --> integer keys are stored as text

-- Delete a record
cache["test_key"] = { name = "Alice" }
print(cache:delete_record("test_key"))          --> true
print(cache:delete_record("test_key"))          --> false
print(cache:get_record("test_key"))             --> nil

cache:add{ key1 = { data = 1 }, key2 = { data = 2 } }
cache["key1"] = nil                             -- delete, dictionary-style
print(cache:bulk_delete{ "key1", "key2", "nope" })   --> 1

-- Get all records
cache:add{ ["user:1"] = { name = "Alice" }, ["user:2"] = { name = "Bob" }, ["order:1"] = { total = 10 } }

local all = cache:get_all_records()             -- { key = value } of the whole namespace
print(all["order:1"].total)                     --> 10

local users = cache:get_all_records("user:*")   -- a Redis glob over the keys
print(users["user:1"].name, users["order:1"])   --> Alice	nil

for key, record in cache:records("user:*") do   -- page by page: any size
  print(key, record.name)                       --> user:1	Alice (and user:2	Bob)
end

-- TTL
cache:set_record("otp:alice", { code = 913204 }, 30)   -- 30 seconds
print(cache:ttl("otp:alice"))         --> 30.0 (seconds left, ms precision; or a little less)
print(cache:exists("otp:alice"))      --> true
print(cache:ttl("nobody"))            --> nil

cache:set_record("flash", "gone in a quarter of a second", 0.25)

-- tidy up
cache:bulk_delete{ 42, "user:1", "user:2", "order:1", "otp:alice", "flash" }
sessions:close()
cache:close()
