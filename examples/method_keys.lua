-- examples/method_keys.lua: keys named like methods (README.md, "Usage").
local rcache = require "rcache_live"
local cache = rcache.new()

cache["update"] = { note = "a key named like a method" }   -- writing works
print(type(cache["update"]))                    --> function (the method wins)
print(cache:get_record("update").note)          --> a key named like a method
print(rcache.get_record(cache, "update").note)  --> a key named like a method

rcache.delete_record(cache, "update")
cache:close()
