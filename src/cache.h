/*
 * cache.h - the cache object: a userdata holding one connection, the
 * namespace and the TTL policy. Methods are C functions in a methods table;
 * __index looks a key up there first and otherwise reads the record.
 */
#ifndef RCACHE_CACHE_H
#define RCACHE_CACHE_H

#include <lua.h>

#include "conn.h"

#define CACHE_MT "rcache_live.cache"
#define CACHE_NS_MAX 128   /* bytes in a namespace */
#define CACHE_BUCKETS 256  /* bookkeeping buckets; part of the data layout */

typedef struct cache {
  conn conn;
  char ns[CACHE_NS_MAX + 1];
  long long default_ttl_ms;
  int active_ttl;  /* reads and updates reset the TTL to the stored one */
  int track;       /* bookkeeping on: access index, expiry index, TTLs */
  int closed;
  int codec_ref;   /* registry ref to a { encode, decode } codec, or LUA_NOREF */
} cache;

/* Adds new() and the methods table (field "methods") to the module table
 * on top of the stack, and registers the metatable (field "metatable").
 * [-0, +0, m] */
void cache_open(lua_State *L);

#endif
