/*
 * core.c - luaopen_rcache_live_core, the module's only exported symbol.
 * The public module is lua/rcache_live.lua, which requires this one.
 */
#include <signal.h>

#include <lua.h>
#include <lauxlib.h>

#include "cache.h"
#include "json.h"
#include "reader.h"
#include "reply.h"
#include "version.h"

#if defined(__GNUC__)
#define RCACHE_EXPORT __attribute__((visibility("default")))
#else
#define RCACHE_EXPORT
#endif

RCACHE_EXPORT int luaopen_rcache_live_core(lua_State *L);

/* A write to a connection the server closed raises SIGPIPE, whose default
 * action kills the process; hiredis writes with plain write(2). Like
 * LuaSocket, ignore it unless the host installed a handler of its own:
 * the write then fails with EPIPE and becomes a clean error. */
static void ignore_sigpipe(void) {
  struct sigaction current;
  if (sigaction(SIGPIPE, NULL, &current) == 0 && current.sa_handler == SIG_DFL &&
      !(current.sa_flags & SA_SIGINFO))
    signal(SIGPIPE, SIG_IGN);
}

int luaopen_rcache_live_core(lua_State *L) {
  ignore_sigpipe();
  reply_open(L);
  json_open(L);
  lua_newtable(L);
  cache_open(L);
  reader_open(L);
  json_register(L);
  lua_pushliteral(L, RCACHE_VERSION);
  lua_setfield(L, -2, "_VERSION");
  return 1;
}
