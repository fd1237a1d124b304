/*
 * core.c - luaopen_rcache_live_core, the module's only exported symbol.
 * The public module is lua/rcache_live.lua, which requires this one.
 */
#include <lua.h>
#include <lauxlib.h>

#include "cache.h"
#include "json.h"
#include "reply.h"
#include "version.h"

#if defined(__GNUC__)
#define RCACHE_EXPORT __attribute__((visibility("default")))
#else
#define RCACHE_EXPORT
#endif

RCACHE_EXPORT int luaopen_rcache_live_core(lua_State *L);

int luaopen_rcache_live_core(lua_State *L) {
  reply_open(L);
  json_open(L);
  lua_newtable(L);
  cache_open(L);
  json_register(L);
  lua_pushliteral(L, RCACHE_VERSION);
  lua_setfield(L, -2, "_VERSION");
  return 1;
}
