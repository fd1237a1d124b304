/*
 * cache.h - the cache object: a userdata holding the namespace, the TTL
 * policy and either a blocking connection or, inside nginx, nothing but
 * the settings of the cosocket transport (lua/rcache_live/cosocket.lua).
 *
 * A blocking cache's metatable (CACHE_MT) has C metamethods: __index looks
 * a key up in the methods table first and otherwise reads the record. A
 * cosocket cache's metatable (CACHE_COSOCKET_MT) gets its __index and
 * __newindex from the Lua layer, as Lua functions, because a cosocket
 * yields and a C function cannot be yielded across on LuaJIT.
 */
#ifndef RCACHE_CACHE_H
#define RCACHE_CACHE_H

#include <lua.h>

#include "conn.h"

#define CACHE_MT "rcache_live.cache"
#define CACHE_COSOCKET_MT "rcache_live.cache.cosocket"
#define CACHE_NS_MAX 128   /* bytes in a namespace */
#define CACHE_BUCKETS 256  /* bookkeeping buckets; part of the data layout */

typedef struct cache {
  conn conn;       /* a cosocket cache only keeps its script SHAs here */
  char ns[CACHE_NS_MAX + 1];
  long long default_ttl_ms;
  int active_ttl;  /* reads and updates reset the TTL to the stored one */
  int track;       /* bookkeeping on: access index, expiry index, TTLs */
  int cosocket;    /* its I/O goes over nginx cosockets, done in Lua */
  int closed;
  int codec_ref;   /* registry ref to a { encode, decode } codec, or LUA_NOREF */
} cache;

/* Adds new(), the methods table (field "methods"), both metatables (fields
 * "metatable" and "cosocket_metatable") and the internal table (field
 * "internal", see internal.c) to the module table on top of the stack.
 * [-0, +0, m] */
void cache_open(lua_State *L);

/* The open cache of either kind at idx. [-0, +0, v] */
cache *cache_check(lua_State *L, int idx, const char *op);

/* The open blocking cache at idx; a cosocket cache is refused, since its
 * I/O must not block nginx's worker. [-0, +0, v] */
cache *cache_check_blocking(lua_State *L, int idx, const char *op);

/* Adds the internal table to the module table on top of the stack. */
void internal_open(lua_State *L);

#endif
