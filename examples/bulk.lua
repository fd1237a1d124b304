-- examples/bulk.lua: bulk insert and bulk delete (README.md, "Usage").
local rcache = require "rcache_live"
local cache = rcache.new()

local n = cache:add{ key1 = { data = 1 }, key2 = { data = 2 } }
print(n, cache["key1"].data, cache["key2"].data)   --> 2	1	2

-- one TTL for all of them (seconds); keys that are not names go in brackets
cache:add({ ["user:7"] = { name = "Eve" }, ["user:8"] = { name = "Mallory" } }, 30)

-- all or none: one value that cannot be stored, and nothing is written
local ok, err = pcall(cache.add, cache, { key3 = { data = 3 }, key4 = { callback = print } })
print(ok, err)          --> false	rcache_live: add: record "key4": cannot encode a function (at .callback)
print(cache:exists("key3"))                     --> false

print(cache:bulk_delete{ "key1", "key2", "user:7", "user:8", "key3" })   --> 4
cache:close()
