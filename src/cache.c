/*
 * cache.c - the cache userdata and its single-record methods over the
 * blocking connection, each one network round trip: get_record,
 * set_record, delete_record, exists, ttl, and dictionary-style access.
 */
#include "cache.h"

#include <math.h>
#include <string.h>

#include <lauxlib.h>

#include "compat.h"
#include "record.h"
#include "reply.h"

/* ------------------------------------------------------------------------
 * The object
 * ------------------------------------------------------------------------ */

/* The cache of either kind at idx, open or closed. [-0, +0, v] */
static cache *any_cache(lua_State *L, int idx) {
  cache *c = luaL_testudata(L, idx, CACHE_MT);
  if (c == NULL) c = luaL_testudata(L, idx, CACHE_COSOCKET_MT);
  if (c == NULL) c = luaL_checkudata(L, idx, CACHE_MT); /* raises the usual message */
  return c;
}

cache *cache_check(lua_State *L, int idx, const char *op) {
  cache *c = any_cache(L, idx);
  if (c->closed) compat_error(L, "rcache_live: %s: the cache is closed", op);
  return c;
}

cache *cache_check_blocking(lua_State *L, int idx, const char *op) {
  cache *c = cache_check(L, idx, op);
  if (c->cosocket)
    compat_error(L, "rcache_live: %s: this cache does its I/O over nginx cosockets; call %s as "
                    "one of its methods", op, op);
  return c;
}

/* new(settings): settings were validated by the Lua layer; settings.transport
 * "cosocket" makes a cache whose I/O the Lua layer does (settings.shas then
 * holds the script SHAs). */
static int cache_new(lua_State *L) {
  cache *c;
  size_t nslen;
  const char *ns;
  int cosocket;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_getfield(L, 1, "namespace");
  ns = luaL_checklstring(L, -1, &nslen);
  if (nslen == 0 || nslen > CACHE_NS_MAX || strlen(ns) != nslen)
    luaL_argerror(L, 1, "bad namespace");
  lua_getfield(L, 1, "transport");
  cosocket = lua_isstring(L, -1) && strcmp(lua_tostring(L, -1), "cosocket") == 0;
  lua_pop(L, 1);
  c = compat_newuserdata(L, sizeof *c);
  memset(c, 0, sizeof *c);
  c->closed = 1;
  c->codec_ref = LUA_NOREF;
  luaL_getmetatable(L, cosocket ? CACHE_COSOCKET_MT : CACHE_MT);
  lua_setmetatable(L, -2);
  memcpy(c->ns, ns, nslen + 1);
  c->cosocket = cosocket;
  lua_getfield(L, 1, "default_ttl");
  c->default_ttl_ms = (long long)floor(luaL_checknumber(L, -1) * 1000.0 + 0.5);
  lua_getfield(L, 1, "active_ttl");
  c->active_ttl = lua_toboolean(L, -1);
  lua_getfield(L, 1, "track");
  c->track = lua_toboolean(L, -1);
  lua_getfield(L, 1, "codec");
  if (lua_istable(L, -1)) {
    lua_pushvalue(L, -1);
    c->codec_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  lua_pop(L, 4);
  conn_init(L, &c->conn, 1);
  c->closed = 0;
  return 1;
}

/* close(): closes the connection; using the cache afterwards is an error.
 * Also __gc and __close. Harmless twice. */
static int cache_close(lua_State *L) {
  cache *c = any_cache(L, 1);
  conn_free(&c->conn);
  if (c->codec_ref != LUA_NOREF) {
    luaL_unref(L, LUA_REGISTRYINDEX, c->codec_ref);
    c->codec_ref = LUA_NOREF;
  }
  c->closed = 1;
  return 0;
}

static int cache_tostring(lua_State *L) {
  cache *c = any_cache(L, 1);
  if (c->closed)
    lua_pushfstring(L, "rcache_live cache (closed): %p", (void *)c);
  else
    lua_pushfstring(L, "rcache_live cache (namespace \"%s\", %s%s): %p", c->ns, c->conn.where,
                    c->cosocket ? ", cosocket" : "", (void *)c);
  return 1;
}

/* ------------------------------------------------------------------------
 * Single-record operations over the blocking connection
 * ------------------------------------------------------------------------ */

/* Runs single-record operation kind on the cache at index 1: key at kidx,
 * value at vidx, TTL at tidx (as the operation needs them). A NOSCRIPT
 * reply (the server lost its scripts: restart, SCRIPT FLUSH) reloads them
 * and runs the command once more. */
static int record_run(lua_State *L, enum record_kind kind, int kidx, int vidx, int tidx) {
  record_op o;
  cache *c;
  reply_box *box;
  o.kind = kind;
  o.op = record_op_names[kind];
  c = cache_check_blocking(L, 1, o.op);
  record_build(L, c, &o, kidx, vidx, tidx);
  box = reply_box_new(L);
  conn_append(L, &c->conn, o.op, o.a.n, o.a.v, o.a.len);
  if (conn_is_noscript(conn_read(L, &c->conn, o.op, box))) {
    conn_load_scripts(L, &c->conn, o.op);
    conn_append(L, &c->conn, o.op, o.a.n, o.a.v, o.a.len);
    conn_read(L, &c->conn, o.op, box);
  }
  return record_finish(L, c, &o, box);
}

static int cache_get_record(lua_State *L) { return record_run(L, REC_GET, 2, 0, 0); }

static int cache_set_record(lua_State *L) { return record_run(L, REC_SET, 2, 3, 4); }

static int cache_delete_record(lua_State *L) { return record_run(L, REC_DELETE, 2, 0, 0); }

static int cache_exists(lua_State *L) { return record_run(L, REC_EXISTS, 2, 0, 0); }

/* ttl(key): seconds left (ms precision), nil without such a record,
 * math.huge for a record another client made persistent. */
static int cache_ttl(lua_State *L) { return record_run(L, REC_TTL, 2, 0, 0); }

/* __index: a method by that name, else the record. */
static int cache_index(lua_State *L) {
  if (lua_type(L, 2) == LUA_TSTRING) {
    lua_pushvalue(L, 2);
    lua_rawget(L, lua_upvalueindex(1));
    if (!lua_isnil(L, -1)) return 1;
    lua_pop(L, 1);
  }
  return record_run(L, REC_GET, 2, 0, 0);
}

/* __newindex: cache[key] = value sets with the default TTL; nil deletes. */
static int cache_newindex(lua_State *L) {
  lua_settop(L, 3);
  if (lua_isnil(L, 3))
    record_run(L, REC_DELETE, 2, 0, 0);
  else
    record_run(L, REC_SET, 2, 3, 4);
  return 0;
}

/* Sets the metamethods both kinds of cache share on the table on top. */
static void set_shared_metamethods(lua_State *L, const char *name) {
  static const luaL_Reg shared[] = {
      {"__gc", cache_close},
      {"__close", cache_close},
      {"__tostring", cache_tostring},
      {NULL, NULL},
  };
  luaL_setfuncs(L, shared, 0);
  lua_pushstring(L, name);
  lua_setfield(L, -2, "__name");
  lua_pushliteral(L, "the metatable of rcache_live caches is private");
  lua_setfield(L, -2, "__metatable");
}

void cache_open(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"get_record", cache_get_record},
      {"set_record", cache_set_record},
      {"delete_record", cache_delete_record},
      {"exists", cache_exists},
      {"ttl", cache_ttl},
      {"close", cache_close},
      {NULL, NULL},
  };
  /* stack: module */
  luaL_newlib(L, methods); /* module, methods */
  luaL_newmetatable(L, CACHE_MT);
  set_shared_metamethods(L, CACHE_MT);
  lua_pushcfunction(L, cache_newindex);
  lua_setfield(L, -2, "__newindex");
  lua_pushvalue(L, -2);
  lua_pushcclosure(L, cache_index, 1);
  lua_setfield(L, -2, "__index");
  lua_setfield(L, -3, "metatable"); /* module, methods */
  lua_setfield(L, -2, "methods");
  luaL_newmetatable(L, CACHE_COSOCKET_MT);
  set_shared_metamethods(L, CACHE_COSOCKET_MT);
  lua_setfield(L, -2, "cosocket_metatable");
  lua_pushcfunction(L, cache_new);
  lua_setfield(L, -2, "new");
  internal_open(L);
}
