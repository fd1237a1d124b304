-- examples/codec_cjson.lua: lua-cjson as the codec (README.md, "Data").
-- Needs lua-cjson (Debian: apt-get install lua-cjson).
local rcache = require "rcache_live"

local exact = rcache.new()                        -- the built-in, exact codec
local loose = rcache.new{ codec = require "cjson" }   -- any { encode =, decode = } table

-- records are JSON either way: each cache reads what the other wrote
exact["n"] = { id = 9007199254740993, third = 1 / 3 }
local a, b = exact["n"], loose["n"]
print(math.type(a.id), a.id)            --> integer	9007199254740993
print(math.type(b.id), b.id)            --> float	9.007199254741e+15

loose["m"] = { third = 1 / 3, big = math.maxinteger }
local m = exact["m"]                    -- what cjson wrote, read exactly
print(m.third == 1 / 3, m.third)        --> false	0.33333333333333
print(math.type(m.big), m.big)          --> float	9.2233720368548e+18

print(rcache.null == require("cjson").null)   --> true

exact:bulk_delete{ "n", "m" }
