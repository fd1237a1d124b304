-- examples/exact_data.lua: what a record can hold, exactly (README.md, "Data").
local rcache = require "rcache_live"
local cache = rcache.new()

cache["exact"] = {
  id = math.maxinteger,                 -- integers stay integers, all 64 bits
  at_ns = 1700000000123456789,          -- 19-digit nanosecond timestamps too
  ratio = 0.1 + 0.2,                    -- floats come back bit for bit
  count = 2.0,                          -- a float stays a float
  tags = rcache.array(),                -- an empty array stays an array
  meta = {},                            -- an empty table is an object
  parent = rcache.null,                 -- JSON null keeps its place
  list = { 1, rcache.null, 3 },
}
local v = cache["exact"]
print(math.type(v.id), v.id == math.maxinteger)            --> integer	true
print(v.at_ns)                                             --> 1700000000123456789
print(v.ratio == 0.1 + 0.2, ("%.17g"):format(v.ratio))     --> true	0.30000000000000004
print(math.type(v.count))                                  --> float
print(rcache.json.encode(v.tags), rcache.json.encode(v.meta))   --> []	{}
print(v.parent == rcache.null, #v.list, v.list[2] == rcache.null)   --> true	3	true

-- what cannot be stored is refused, and nothing is written
local cyclic = {}
cyclic.self = cyclic
for _, bad in ipairs{ { f = print }, { 1, nil, 3 }, { 1, x = 2 }, { n = 0 / 0 }, cyclic } do
  local ok, err = pcall(cache.set_record, cache, "bad", bad)
  print(err)
end
--> rcache_live: set_record: cannot encode a function (at .f)
--> rcache_live: set_record: sparse array: key 3 but only 2 elements
--> rcache_live: set_record: table mixes array and object keys
--> rcache_live: set_record: cannot encode NaN or infinity (at .n)
--> rcache_live: set_record: cyclic table (at .self)
print(cache:exists("bad"))                                 --> false

-- the codec on its own
local json = rcache.json
print(json.encode{ 1, 2.5, json.null, json.array() })      --> [1,2.5,null,[]]
print(math.type(json.decode("9007199254740993")))          --> integer

cache:delete_record("exact")
cache:close()
