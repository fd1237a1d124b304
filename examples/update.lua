-- examples/update.lua: field updates (README.md, "Usage", "Field updates").
local rcache = require "rcache_live"
local cache = rcache.new()

cache["test_key"] = { name = "Alice", age = 25 }
local merged = cache:update("test_key", { age = 26 })
print(merged.name, merged.age)                  --> Alice	26
print(cache["test_key"].age)                    --> 26

-- a missing record is created, with the default TTL
cache:update("new_key", { visits = 1 })
print(cache["new_key"].visits)                  --> 1

-- top-level fields only: a nested table replaces the field as a whole;
-- rcache.null stores a JSON null (a nil field cannot be expressed)
cache["profile"] = { name = "Alice", address = { city = "Oslo", zip = "0150" } }
local p = cache:update("profile", { address = { city = "Bergen" }, nickname = rcache.null })
print(p.address.city, p.address.zip, p.nickname == rcache.null)   --> Bergen	nil	true

cache:bulk_delete{ "test_key", "new_key", "profile" }
cache:close()
