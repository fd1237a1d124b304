-- examples/errors.lua: how rcache_live fails (README.md, "Errors").
local rcache = require "rcache_live"
local cache = rcache.new()

-- bad input: raised before anything is sent
local ok, err = pcall(function() cache["k"] = { callback = print } end)
print(err)   --> rcache_live: set_record: cannot encode a function (at .callback)

ok, err = pcall(cache.set_record, cache, "k", { n = 1 }, -5)
print(err)   --> rcache_live: set_record: ttl must be a positive number of seconds (at least 0.001), got -5

ok, err = pcall(function() return cache[{}] end)
print(err)   --> rcache_live: get_record: key must be a string or an integer, got table
print(cache:exists("k"))                        --> false

-- Redis unreachable: raised too, never taken for a miss
local down = rcache.new{ host = "127.0.0.1", port = 1 }
ok, err = pcall(function() return down["k"] end)
print(err)   --> rcache_live: get_record: connection refused (127.0.0.1:1)

-- a record that is not JSON (another client wrote it): reading it raises
local raw = rcache.new{ codec = { encode = tostring, decode = tostring } }
raw["legacy"] = "{not json"
ok, err = pcall(function() return cache["legacy"] end)
print(err)   --> rcache_live: get_record: record "legacy" is not valid JSON: invalid JSON at byte 2: invalid string in json text

-- when a failure should count as a miss, say so where it is meant
local function get_or_nil(c, key)
  local found, value = pcall(c.get_record, c, key)
  if found then return value end
  io.stderr:write("cache unavailable: ", value, "\n")
  return nil
end
print(get_or_nil(down, "k"))                    --> nil

-- the nil, err form of every method, for handlers written that way
local safe = rcache.safe(cache)
print(safe:set_record("k", { n = 1 }))          --> true
print(safe:get_record("k").n)                   --> 1
print(safe:get_record("missing"))               --> nil
print(safe:set_record(1.5, "x"))                --> nil	rcache_live: set_record: key must be a string or an integer, got a float (1.5)
print(rcache.safe(down):get_record("k"))        --> nil	rcache_live: get_record: connection refused (127.0.0.1:1)
cache:delete_record("k")

-- After a failure the cache connects again on its next call. Shown here
-- with a socket path that appears only after the first call failed.
local socket = os.getenv("REDIS_SOCKET")
if socket then
  local link = os.tmpname()
  os.remove(link)
  local later = rcache.new{ socket = link }
  ok, err = pcall(later.exists, later, "k")
  print((err:gsub("%(unix:.*%)$", "(unix:<path>)")))   --> rcache_live: exists: no such file or directory (unix:<path>)
  assert(os.execute(("ln -s '%s' '%s'"):format(socket, link)))
  print("next call:", later:exists("k"))        --> next call:	false
  later:close()
  os.remove(link)
end

raw:delete_record("legacy")
raw:close()
cache:close()
