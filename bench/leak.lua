-- bench/leak.lua SOCKET N1 N2: this process's resident size after N1 and
-- after N2 mixed operations (set, get, update, Active-TTL get, add, delete,
-- a miss) over 1,000 keys, so Redis holds the same data throughout and any
-- growth is the Lua process's. Prints "rss_kb <after N1> <after N2>".
-- bench/bench.lua runs it in a process of its own.
package.path = arg[0]:gsub("[^/]*$", "") .. "?.lua;" .. package.path
local L = require "lib"
local rcache = require "rcache_live"

local socket, n1, n2 = arg[1], tonumber(arg[2]), tonumber(arg[3])
local cache = rcache.new { socket = socket, namespace = "leak" }
local active = rcache.new { socket = socket, namespace = "leak", active_ttl = true }
local record = { name = "Alice", age = 25, tags = { "admin", "beta" }, score = 97.5 }

local ops = {
  function(k) cache[k] = record end,
  function(k) return cache[k] end,
  function(k, i) return cache:update(k, { score = i }) end,
  function(k) return active[k] end,
  function(k, i) return cache:add { [k] = record, [k .. ":b"] = { i } } end,
  function(k) cache[k .. ":b"] = nil end,
  function(k) return cache[k .. ":missing"] end,
}

local function run(from, to)
  for i = from, to do ops[i % #ops + 1]("k" .. i % 1000, i) end
end

local function rss()
  collectgarbage()
  collectgarbage()
  return L.rss_kb()
end

run(1, n1)
local a = rss()
run(n1 + 1, n2)
local b = rss()
cache:bulk_delete((function()
  local keys = {}
  for i = 0, 999 do keys[#keys + 1] = "k" .. i; keys[#keys + 1] = "k" .. i .. ":b" end
  return keys
end)())
print(("rss_kb %d %d"):format(a, b))
