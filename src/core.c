/*
 * core.c - luaopen_rcache_live_core, the module's only exported symbol.
 * The public module is lua/rcache_live.lua, which requires this one.
 */
#include <signal.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

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

/* _backoff(attempt): sleeps a random time between half and all of
 * min(0.1 ms * 2^attempt, 10 ms), so that writers retrying an optimistic
 * transaction drift apart instead of colliding in step. The randomness
 * only needs to differ between processes and calls: it mixes the clock's
 * nanoseconds with the pid (no state kept, so safe in threaded hosts). */
static int core_backoff(lua_State *L) {
  lua_Number attempt = luaL_checknumber(L, 1);
  double cap = 1e-4, seconds;
  struct timespec now, pause;
  uint32_t r;
  clock_gettime(CLOCK_MONOTONIC, &now);
  r = (uint32_t)now.tv_nsec * 2654435761u ^ (uint32_t)getpid() * 40503u;
  r ^= r >> 15;
  while (attempt-- > 0 && cap < 1e-2) cap *= 2;
  if (cap > 1e-2) cap = 1e-2;
  seconds = cap * (0.5 + 0.5 * (double)(r % 1000) / 1000.0);
  pause.tv_sec = 0;
  pause.tv_nsec = (long)(seconds * 1e9);
  nanosleep(&pause, NULL);
  return 0;
}

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
  json_register(L);
  lua_pushcfunction(L, core_backoff);
  lua_setfield(L, -2, "_backoff");
  lua_pushliteral(L, RCACHE_VERSION);
  lua_setfield(L, -2, "_VERSION");
  return 1;
}
