/* compat.c - lauxlib functions that Lua 5.1 and LuaJIT lack (see compat.h). */
#include "compat.h"

#include <stdarg.h>

int compat_error(lua_State *L, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  return lua_error(L);
}

int compat_tointeger(lua_State *L, int idx, long long *out) {
#if RCACHE_HAVE_INTEGERS
  if (!lua_isinteger(L, idx)) return 0;
  *out = (long long)lua_tointeger(L, idx);
  return 1;
#else
  lua_Number n;
  if (lua_type(L, idx) != LUA_TNUMBER) return 0;
  n = lua_tonumber(L, idx);
  if (!(n >= -9007199254740992.0 && n <= 9007199254740992.0)) return 0; /* NaN too */
  if ((lua_Number)(long long)n != n) return 0;
  *out = (long long)n;
  return 1;
#endif
}

void compat_pushint64(lua_State *L, long long v) {
#if RCACHE_HAVE_INTEGERS
  lua_pushinteger(L, (lua_Integer)v);
#else
  lua_pushnumber(L, (lua_Number)v);
#endif
}

int compat_pushexact(lua_State *L, int neg, unsigned long long mag) {
#if RCACHE_HAVE_INTEGERS
  if (mag > (unsigned long long)LUA_MAXINTEGER + (unsigned)neg) return 0;
  if (!neg)
    lua_pushinteger(L, (lua_Integer)mag);
  else
    lua_pushinteger(L, mag == 0 ? 0 : -(lua_Integer)(mag - 1) - 1);
#else
  if (mag > (1ULL << 53)) return 0;
  lua_pushnumber(L, neg && mag ? -(lua_Number)mag : (lua_Number)mag); /* "-0" is 0 */
#endif
  return 1;
}

#if LUA_VERSION_NUM < 502

/* Registers the functions of l into the table on top of the stack below
 * nup upvalues, each function getting a copy of them. [-nup, +0, m] */
void compat_setfuncs(lua_State *L, const luaL_Reg *l, int nup) {
  int i;
  luaL_checkstack(L, nup + 1, "too many upvalues");
  for (; l->name != NULL; l++) {
    for (i = 0; i < nup; i++) lua_pushvalue(L, -nup);
    lua_pushcclosure(L, l->func, nup);
    lua_setfield(L, -(nup + 2), l->name);
  }
  lua_pop(L, nup);
}

/* The userdata at idx if its metatable is the one registered as tname,
 * else NULL. Never raises. [-0, +0, -] */
void *compat_testudata(lua_State *L, int idx, const char *tname) {
  void *p = lua_touserdata(L, idx);
  int same;
  if (p == NULL || !lua_getmetatable(L, idx)) return NULL;
  luaL_getmetatable(L, tname);
  same = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  return same ? p : NULL;
}

/* Pushes a printable form of the value at idx (tostring without
 * __tostring/__name). [-0, +1, m] */
const char *compat_tolstring(lua_State *L, int idx, size_t *len) {
  switch (lua_type(L, idx)) {
    case LUA_TSTRING:
    case LUA_TNUMBER:
      lua_pushvalue(L, idx);
      break;
    case LUA_TBOOLEAN:
      lua_pushstring(L, lua_toboolean(L, idx) ? "true" : "false");
      break;
    case LUA_TNIL:
      lua_pushliteral(L, "nil");
      break;
    default:
      lua_pushfstring(L, "%s: %p", luaL_typename(L, idx), lua_topointer(L, idx));
      break;
  }
  return lua_tolstring(L, -1, len);
}

#endif
