-- rcache_live.json: the codec records are stored with, usable on its own.
-- Exact: integers stay integers, floats read back bit for bit, empty arrays
-- stay arrays (decoded arrays carry array_mt), null keeps its place.
local core = require "rcache_live.core"

local setmetatable = setmetatable

return {
  encode = core.json_encode,
  decode = core.json_decode,
  null = core.null,
  array_mt = core.array_mt,
  -- Marks t (default: a new table) as a JSON array, so that it encodes as
  -- [] when empty.
  array = function(t) return setmetatable(t or {}, core.array_mt) end,
}
