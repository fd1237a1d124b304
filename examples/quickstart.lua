-- examples/quickstart.lua: a tour of rcache_live, printing what it does.
--
-- The connection comes from the environment (REDIS_URL, REDIS_SOCKET,
-- REDIS_HOST, REDIS_PORT, REDIS_DB, ...; see README.md, "Options"). The tour
-- writes to the namespace "rcache" and runs a cleanup there: point it at a
-- throwaway server (`make demo` starts one and sets REDIS_SOCKET).
local rcache = require "rcache_live"

local function sleep(seconds) os.execute("sleep " .. seconds) end

-- A value as JSON with object keys sorted, so the output reads the same on
-- every run.
local function show(v)
  if type(v) ~= "table" then return rcache.json.encode(v) end
  if getmetatable(v) == rcache.array_mt or v[1] ~= nil then
    local parts = {}
    for i = 1, #v do parts[i] = show(v[i]) end
    return "[" .. table.concat(parts, ",") .. "]"
  end
  local keys, parts = {}, {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys)
  for i, k in ipairs(keys) do parts[i] = rcache.json.encode(k) .. ":" .. show(v[k]) end
  return "{" .. table.concat(parts, ",") .. "}"
end

print("rcache_live " .. rcache._VERSION)

-- init: settings from the environment, else defaults
local cache = rcache.new()
print("init    rcache.new() -> " .. tostring(cache):gsub(": 0x%x+$", ""))

-- set / get, dictionary-style (default TTL: 3600 s)
cache["user:1"] = { name = "Alice", age = 25 }
print('set     cache["user:1"] = ' .. show { name = "Alice", age = 25 })
print('get     cache["user:1"] -> ' .. show(cache["user:1"]))
print('get     cache["nobody"] -> ' .. tostring(cache["nobody"]))

-- update: merges top-level fields, returns the merged record
local merged = cache:update("user:1", { age = 26 })
print('update  cache:update("user:1", { age = 26 }) -> ' .. show(merged))

-- add: several records at once, all or none, one round trip
local n = cache:add{ ["user:2"] = { name = "Bob" }, ["user:3"] = { name = "Carol" } }
print('add     cache:add{ ["user:2"] = ..., ["user:3"] = ... } -> ' .. n)

-- delete
print('delete  cache:delete_record("user:3") -> ' .. tostring(cache:delete_record("user:3")))
cache["user:2"] = nil
print('delete  cache["user:2"] = nil -> exists: ' .. tostring(cache:exists("user:2")))

-- get_all_records: every record of the namespace (a glob narrows it)
cache:add{ ["user:4"] = { name = "Dan" }, ["order:1"] = { total = 10 } }
local users = cache:get_all_records("user:*")
local keys = {}
for k in pairs(users) do keys[#keys + 1] = k end
table.sort(keys)
print('list    cache:get_all_records("user:*") -> ' .. table.concat(keys, ", "))

-- cleanup: delete records nobody read or wrote lately
cache["temp:1"] = { scratch = true }
sleep(1.1)
local _ = cache["user:1"] -- reads are accesses
cache["user:4"] = { name = "Dan", seen = true } -- and so are writes
cache:update("order:1", { paid = true })
local deleted = cache:cleanup_inactive_records(1 / 60) -- idle for 1 s
print("cleanup cache:cleanup_inactive_records(1 / 60) -> " .. deleted .. " deleted; temp:1 exists: "
  .. tostring(cache:exists("temp:1")) .. ", user:1 exists: " .. tostring(cache:exists("user:1")))

-- Active TTL: a read resets the TTL to the one the record was stored with
local sessions = rcache.new{ active_ttl = true }
sessions:set_record("session:1", { user = "Alice" }, 2)
sleep(0.5)
print(("active  ttl after 0.5 s: %.1f s"):format(sessions:ttl("session:1")))
local session = sessions["session:1"]
print(("active  read %s -> ttl back to %.1f s"):format(show(session), sessions:ttl("session:1")))

-- ttl / exists: seconds left, nil when there is no such record
cache:set_record("otp:1", { code = 913204 }, 30)
print(("ttl     cache:ttl(\"otp:1\") -> %.0f s, cache:ttl(\"nobody\") -> %s"):format(
  cache:ttl("otp:1"), tostring(cache:ttl("nobody"))))

-- tidy up what the tour wrote
print("tidy    bulk_delete -> " .. cache:bulk_delete{ "user:1", "user:4", "order:1", "otp:1", "session:1" })
sessions:close()
cache:close()
print("done")
