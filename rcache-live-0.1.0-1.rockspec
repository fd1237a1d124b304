rockspec_format = "3.0"
package = "rcache-live"
version = "0.1.0-1"
source = {
  url = "git+file:///dev/null", -- built from a checkout with `luarocks make`
}
description = {
  summary = "A Redis cache for Lua: dictionary-style access, exact JSON records, Active TTL",
  detailed = [[
    rcache_live stores Lua values as JSON in Redis with a TTL per record,
    optional Active TTL (reads and updates reset the TTL to the one the
    record was stored with) and cleanup of records idle for N minutes.
    A C module over hiredis; one round trip per single-record operation.
  ]],
  license = "MIT",
}
dependencies = {
  "lua >= 5.1, < 5.5",
}
external_dependencies = {
  HIREDIS = { header = "hiredis/hiredis.h", library = "hiredis" },
  YAJL = { header = "yajl/yajl_parse.h", library = "yajl" },
}
build = {
  type = "builtin",
  modules = {
    ["rcache_live.core"] = {
      sources = {
        "src/core.c", "src/cache.c", "src/record.c", "src/internal.c", "src/reader.c",
        "src/conn.c", "src/reply.c", "src/json.c", "src/compat.c",
      },
      defines = { "_GNU_SOURCE" },
      libraries = { "hiredis", "yajl" },
      incdirs = { "$(HIREDIS_INCDIR)", "$(YAJL_INCDIR)" },
      libdirs = { "$(HIREDIS_LIBDIR)", "$(YAJL_LIBDIR)" },
    },
    ["rcache_live"] = "lua/rcache_live.lua",
    ["rcache_live.config"] = "lua/rcache_live/config.lua",
    ["rcache_live.cosocket"] = "lua/rcache_live/cosocket.lua",
    ["rcache_live.json"] = "lua/rcache_live/json.lua",
    ["rcache_live.scripts"] = "lua/rcache_live/scripts.lua",
  },
}
