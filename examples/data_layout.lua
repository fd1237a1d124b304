-- examples/data_layout.lua: where a record lives in Redis (README.md,
-- "Data layout in Redis").
local rcache = require "rcache_live"

-- the bucket of a key: FNV-1a (32 bits) of its bytes, mod 256, as two hex digits
local function bucket(key)
  local h = 2166136261
  for i = 1, #key do
    h = ((h ~ key:byte(i)) * 16777619) & 0xffffffff
  end
  return ("%02x"):format(h % 256)
end

print(bucket("user:1"))                                        --> cb
print(("rcache:{%s}:r:%s"):format(bucket("user:1"), "user:1"))  --> rcache:{cb}:r:user:1
print(("rcache:{%s}:a"):format(bucket("user:1")))              --> rcache:{cb}:a

-- leaves one record, so that its keys can be looked at, e.g. with
--   redis-cli --scan --pattern 'rcache:{cb}:*'
local cache = rcache.new()
cache["user:1"] = { name = "Alice" }
cache:close()
