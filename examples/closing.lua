-- examples/closing.lua: closing a cache (README.md, "Usage", "Closing").
local rcache = require "rcache_live"
local cache = rcache.new()

cache:close()
cache:close()                                   -- harmless twice
print(pcall(cache.get_record, cache, "key1"))   --> false	rcache_live: get_record: the cache is closed

do
  local scoped <close> = rcache.new()           -- Lua 5.4: closed when the block ends
  scoped["greeting"] = "hello"
  print(scoped["greeting"])                     --> hello
  scoped:delete_record("greeting")
end
