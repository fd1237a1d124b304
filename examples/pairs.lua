-- examples/pairs.lua: pairs(cache), Lua 5.2 and later (README.md, "Usage",
-- "Get all records"). Lua 5.1, and LuaJIT unless built with its 5.2
-- compatibility, ignore __pairs: use cache:records() there.
local rcache = require "rcache_live"
local cache = rcache.new()
cache:add{ ["user:1"] = { name = "Alice" }, ["user:2"] = { name = "Bob" } }

for key, record in pairs(cache) do              -- Lua 5.2+: the same walk as cache:records()
  print(key, record.name)                       --> user:1	Alice (and user:2	Bob)
end

cache:bulk_delete{ "user:1", "user:2" }
cache:close()
