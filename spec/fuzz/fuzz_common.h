/*
 * fuzz_common.h - what the fuzz targets share: the input being run, and how
 * a violated property is reported (the input, escaped, then abort() so
 * libFuzzer keeps it as a crash), and the exact comparison of two Lua
 * values. A target defines FUZZ_NAME, then includes this once.
 */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

static const uint8_t *cur_data; /* the input, for failure reports */
static size_t cur_size;

static void fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void fail(const char *fmt, ...) {
  va_list ap;
  size_t i;
  fprintf(stderr, "\n" FUZZ_NAME ": property violated: ");
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\ninput (%zu bytes, first 200 escaped): \"", cur_size);
  for (i = 0; i < cur_size && i < 200; i++) {
    unsigned char c = cur_data[i];
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
      fputc(c, stderr);
    else
      fprintf(stderr, "\\x%02x", c);
  }
  fprintf(stderr, "\"\n");
  abort();
}

#define CHECK(cond, ...)            \
  do {                              \
    if (!(cond)) fail(__VA_ARGS__); \
  } while (0)

/* 1 if the table at idx carries the codec's array marker; any other
 * metatable is a violation. */
static int is_array_marked(lua_State *S, int idx) {
  int marked = 0;
  if (lua_getmetatable(S, idx)) {
    lua_getfield(S, LUA_REGISTRYINDEX, "rcache_live.array");
    marked = lua_rawequal(S, -1, -2);
    CHECK(marked, "a decoded table has a metatable that is not the array metatable");
    lua_pop(S, 2);
  }
  return marked;
}

/* 1 if the values at absolute indices a and b are the same JSON value:
 * same type, integers equal, floats bit for bit, strings byte for byte,
 * tables with the same array marker and the same keys holding same values. */
static int same_value(lua_State *S, int a, int b) {
  int t = lua_type(S, a);
  if (t != lua_type(S, b)) return 0;
  switch (t) {
    case LUA_TNUMBER:
      if (lua_isinteger(S, a) != lua_isinteger(S, b)) return 0;
      if (lua_isinteger(S, a)) return lua_tointeger(S, a) == lua_tointeger(S, b);
      {
        double x = lua_tonumber(S, a), y = lua_tonumber(S, b);
        return memcmp(&x, &y, sizeof x) == 0;
      }
    case LUA_TSTRING: {
      size_t la, lb;
      const char *sa = lua_tolstring(S, a, &la), *sb = lua_tolstring(S, b, &lb);
      return la == lb && memcmp(sa, sb, la) == 0;
    }
    case LUA_TBOOLEAN:
      return lua_toboolean(S, a) == lua_toboolean(S, b);
    case LUA_TLIGHTUSERDATA:
      return lua_touserdata(S, a) == NULL && lua_touserdata(S, b) == NULL;
    case LUA_TTABLE: {
      long long na = 0, nb = 0;
      int ok = 1;
      if (is_array_marked(S, a) != is_array_marked(S, b)) return 0;
      luaL_checkstack(S, 6, FUZZ_NAME ": same_value");
      lua_pushnil(S);
      while (ok && lua_next(S, a)) { /* key, value */
        int top = lua_gettop(S);
        na++;
        lua_pushvalue(S, top - 1);
        lua_rawget(S, b); /* key, value, b[key] */
        ok = !lua_isnil(S, -1) && same_value(S, top, top + 1);
        lua_settop(S, top - 1); /* key */
      }
      if (!ok) {
        lua_pop(S, 1); /* lua_next stopped early: drop the key */
        return 0;
      }
      lua_pushnil(S);
      while (lua_next(S, b)) {
        nb++;
        lua_pop(S, 1);
      }
      return na == nb;
    }
    default:
      return 0; /* nothing else comes out of the decoder or reply_push */
  }
}

#endif
