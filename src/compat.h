/*
 * compat.h - the differences between Lua 5.1 (and LuaJIT), 5.2, 5.3 and 5.4
 * that the module relies on, in one place. Everything else is written
 * against the 5.4 API and these names.
 */
#ifndef RCACHE_COMPAT_H
#define RCACHE_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

#if LUA_VERSION_NUM < 502
/* 5.1 / LuaJIT */
#define lua_rawlen(L, i) lua_objlen((L), (i))
#ifndef luaL_newlibtable /* LuaJIT 2.1 has these two */
#define luaL_newlibtable(L, l) lua_createtable((L), 0, sizeof(l) / sizeof((l)[0]) - 1)
#define luaL_newlib(L, l) (luaL_newlibtable((L), (l)), luaL_setfuncs((L), (l), 0))
#endif
#define lua_absindex(L, i) ((i) > 0 || (i) <= LUA_REGISTRYINDEX ? (i) : lua_gettop(L) + (i) + 1)
const char *compat_tolstring(lua_State *L, int idx, size_t *len);
#define luaL_tolstring compat_tolstring
void compat_setfuncs(lua_State *L, const luaL_Reg *l, int nup);
void *compat_testudata(lua_State *L, int idx, const char *tname);
#define luaL_setfuncs compat_setfuncs
#define luaL_testudata compat_testudata
#endif

#if LUA_VERSION_NUM >= 503
#define RCACHE_HAVE_INTEGERS 1
#else
#define RCACHE_HAVE_INTEGERS 0
#endif

/* If the value at idx is an integer, stores it in *out and returns 1, else
 * returns 0. 5.3+: a number of the integer subtype. 5.1, 5.2, LuaJIT (no
 * subtype): a number with an integral value of at most 2^53 in magnitude,
 * where every integer is exact (-0.0 is 0). Never converts. [-0, +0, -] */
int compat_tointeger(lua_State *L, int idx, long long *out);

/* Pushes v as an integer: of the integer subtype on 5.3+, else a number
 * (exact up to 2^53 in magnitude). [-0, +1, -] */
void compat_pushint64(lua_State *L, long long v);

/* Pushes the integer -mag (neg) or mag if this Lua holds it exactly and
 * returns 1; else pushes nothing and returns 0. 5.3+: the lua_Integer
 * range; 5.1, 5.2, LuaJIT: up to 2^53 in magnitude ("-0" is 0).
 * [-0, +(0|1), -] */
int compat_pushexact(lua_State *L, int neg, unsigned long long mag);

#if LUA_VERSION_NUM >= 504
#define compat_newuserdata(L, size) lua_newuserdatauv((L), (size), 0)
#else
#define compat_newuserdata(L, size) lua_newuserdata((L), (size))
#endif

/* luaL_error without the position prefix: the module's messages all read
 * "rcache_live: <op>: <cause>". Does not return. */
int compat_error(lua_State *L, const char *fmt, ...);

#endif
