-- The module as users get it: its version, its exports, and the rockspec
-- building and installing it with luarocks.
local rcache = require "rcache_live"
local H = require "support.helpers"

local function rockspec_path()
  local p = assert(io.popen("ls rcache-live-*.rockspec"))
  local names = {}
  for line in p:lines() do names[#names + 1] = line end
  p:close()
  assert.equal(1, #names, "exactly one rockspec")
  return names[1]
end

describe("the module", function()
  it("has one version, the rockspec's", function()
    local version = rockspec_path():match("^rcache%-live%-(.-)%-%d+%.rockspec$")
    assert.equal(version, rcache._VERSION)
    assert.equal(version, require("rcache_live.core")._VERSION)
  end)

  it("exports new, RCacheLive, null, array and every public method as a function", function()
    assert.equal(rcache.new, rcache.RCacheLive)
    assert.equal(require("rcache_live.json").null, rcache.null)
    for _, name in ipairs { "get_record", "set_record", "delete_record", "update", "add", "bulk_delete",
      "get_all_records", "records", "cleanup_inactive_records", "ttl", "exists", "close" } do
      assert.is_function(rcache[name], name)
    end
    assert.is_nil(rcache.pipeline)
  end)

  it("shadows no key with anything but the public methods", function()
    local cache = H.cache()
    for _, key in ipairs { "_pipeline", "pipeline", "_key", "key", "_encode", "policy", "internal" } do
      cache[key] = { key = key }
      assert.same({ key = key }, cache[key])
    end
    cache:close()
  end)

  it("keeps its metatable private", function()
    local cache = H.cache()
    assert.is_string(getmetatable(cache))
    cache:close()
  end)
end)

describe("the rockspec", function()
  it("builds and installs with luarocks make, and the installed tree works", function()
    local tree = os.tmpname()
    os.remove(tree)
    local cmd = ("luarocks --lua-version=%s make --deps-mode=none --tree=%s %s 2>&1"):format(
      H.rocks_lua_version, H.shell_quote(tree), rockspec_path())
    local out, code = H.run(cmd)
    assert.equal(0, code, out)
    -- a clean process that only knows the tree's paths
    local script = ([[
      local r = require "rcache_live"
      -- the first file package.cpath finds (package.searchpath is 5.2+)
      local found
      for template in package.cpath:gmatch("[^;]+") do
        local path = template:gsub("%%?", "rcache_live/core")
        local f = io.open(path)
        if f then f:close() found = found or path end
      end
      assert(found:find(%q, 1, true), found)
      local c = r.new{ socket = %q, namespace = "rock-spec" }
      c.k = { ok = true }
      io.write(tostring(c.k.ok), " ", r._VERSION)
      c:bulk_delete{ "k" }
    ]]):format(tree, H.socket)
    cmd = ("cd / && eval \"$(luarocks --lua-version=%s path --tree=%s)\" && %s -e %s 2>&1"):format(
      H.rocks_lua_version, H.shell_quote(tree), H.lua, H.shell_quote(script))
    out = H.run(cmd)
    os.execute("rm -rf " .. H.shell_quote(tree))
    assert.equal("true " .. rcache._VERSION, out)
  end)
end)
