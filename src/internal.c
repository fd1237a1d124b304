/*
 * internal.c - core.internal: the primitives lua/rcache_live.lua builds the
 * batch operations and the nginx cosocket transport on. Not methods, so
 * that they shadow no record key: internal.pipeline(cache, ...).
 */
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>

#include "cache.h"
#include "compat.h"
#include "reader.h"
#include "record.h"
#include "reply.h"

/* key(cache, key, op) -> record key, bucket prefix "<ns>:{<bucket>}:", key text */
static int internal_key(lua_State *L) {
  const char *op = luaL_optstring(L, 3, "key");
  cache *c = cache_check(L, 1, op);
  keyref k;
  record_key(L, c, 2, op, &k);
  record_push_key(L, &k);
  lua_pushlstring(L, k.prefix, k.plen);
  lua_pushlstring(L, k.text, k.len);
  return 3;
}

/* encode(cache, value, op [, label, name]) -> JSON text; a refusal reads
 * "rcache_live: <op>: <label> <quoted name>: <cause>" (the message is made
 * only then). */
static int internal_encode(lua_State *L) {
  const char *op = luaL_checkstring(L, 3);
  const char *label = luaL_optstring(L, 4, NULL);
  cache *c = cache_check(L, 1, op);
  keyref name;
  name.text = NULL;
  name.len = 0;
  if (label != NULL) name.text = luaL_checklstring(L, 5, &name.len);
  lua_settop(L, 5);
  record_push_encoded(L, c, 2, op, label, &name, NULL);
  return 1;
}

/* decode(cache, json, op, key) -> value */
static int internal_decode(lua_State *L) {
  const char *op = luaL_checkstring(L, 3);
  cache *c = cache_check(L, 1, op);
  keyref k;
  size_t len;
  const char *json;
  luaL_checktype(L, 2, LUA_TSTRING);
  json = lua_tolstring(L, 2, &len);
  record_key(L, c, 4, op, &k);
  record_decode(L, c, op, &k, json, len);
  return 1;
}

/* decode_page(cache, op, record_keys, values, skip) -> keys, decoded, missing
 * A listing's page: values[i] is MGET's reply for record_keys[i] (false
 * where there was no string). keys and decoded are the user keys (the
 * record keys past their first skip bytes) and values of the records found,
 * in order; missing lists the record keys MGET found nothing under. One C
 * call per page instead of several Lua steps per record. */
static int internal_decode_page(lua_State *L) {
  const char *op = luaL_checkstring(L, 2);
  cache *c = cache_check(L, 1, op);
  size_t skip = (size_t)luaL_checkinteger(L, 5);
  int i, n, found = 0, missing = 0;
  luaL_checktype(L, 3, LUA_TTABLE);
  luaL_checktype(L, 4, LUA_TTABLE);
  lua_settop(L, 5);
  n = (int)lua_rawlen(L, 3);
  lua_createtable(L, n, 0); /* 6: keys */
  lua_createtable(L, n, 0); /* 7: decoded */
  lua_newtable(L);          /* 8: missing */
  for (i = 1; i <= n; i++) {
    size_t rklen, len;
    const char *rk, *json;
    keyref k;
    lua_rawgeti(L, 3, i);
    lua_rawgeti(L, 4, i);
    rk = lua_tolstring(L, -2, &rklen);
    json = lua_tolstring(L, -1, &len);
    if (rk == NULL || rklen < skip) luaL_argerror(L, 3, "record keys must be strings");
    if (lua_type(L, -1) != LUA_TSTRING) {
      lua_pop(L, 1);
      lua_rawseti(L, 8, ++missing);
      continue;
    }
    k.text = rk + skip;
    k.len = rklen - skip;
    lua_pushlstring(L, k.text, k.len);
    lua_rawseti(L, 6, ++found);
    record_decode(L, c, op, &k, json, len);
    lua_rawseti(L, 7, found);
    lua_pop(L, 2);
  }
  return 3;
}

/* policy(cache, op) -> track, active_ttl, default TTL in ms, namespace */
static int internal_policy(lua_State *L) {
  cache *c = cache_check(L, 1, luaL_optstring(L, 2, "policy"));
  lua_pushboolean(L, c->track);
  lua_pushboolean(L, c->active_ttl);
  lua_pushinteger(L, (lua_Integer)c->default_ttl_ms); /* ms go to Redis as integer text */
  lua_pushstring(L, c->ns);
  return 4;
}

/* sha(cache, name, op) -> SHA1 of a script (a blocking cache connects, to
 * learn it from SCRIPT LOAD; a cosocket cache was given them) */
static int internal_sha(lua_State *L) {
  static const char *const names[] = {"read", "write", "delete", "cleanup", "update", NULL};
  const char *op = luaL_checkstring(L, 3);
  cache *c = cache_check(L, 1, op);
  int which = luaL_checkoption(L, 2, NULL, names);
  if (!c->cosocket) conn_ensure(L, &c->conn, op);
  lua_pushstring(L, c->conn.shas[which]);
  return 1;
}

/* load_scripts(cache, op): after a NOSCRIPT reply */
static int internal_load_scripts(lua_State *L) {
  const char *op = luaL_checkstring(L, 2);
  conn_load_scripts(L, &cache_check_blocking(L, 1, op)->conn, op);
  return 0;
}

/* The text of argument i (1-based) of the command table at cmd. It goes
 * back into the table as text (a number becomes its string), so the table
 * keeps alive the string the result points into: the stack could not hold
 * every argument of a big command (Lua 5.1 and LuaJIT give a C function
 * about 8,000 slots). [-0, +0, v] raises for anything but a string or a
 * number. */
static const char *command_arg(lua_State *L, int cmd, int i, const char *op, size_t *len) {
  const char *s;
  lua_rawgeti(L, cmd, i);
  s = lua_tolstring(L, -1, len);
  if (s == NULL)
    compat_error(L, "rcache_live: %s: command argument %d is a %s", op, i, luaL_typename(L, -1));
  lua_rawseti(L, cmd, i);
  return s;
}

/* Queues command cmd (a sequence of strings and numbers). Needs argv/lens
 * with room for its length. */
static void append_command(lua_State *L, cache *c, const char *op, int cmd, const char **argv,
                           size_t *lens) {
  int i, n = (int)lua_rawlen(L, cmd);
  for (i = 0; i < n; i++) argv[i] = command_arg(L, cmd, i + 1, op, &lens[i]);
  conn_append(L, &c->conn, op, n, argv, lens);
}

/* pipeline(cache, op, commands) -> replies
 * Sends every command in one write and reads all the replies (see
 * reply_push for their shape). */
static int internal_pipeline(lua_State *L) {
  const char *op = luaL_checkstring(L, 2);
  cache *c = cache_check_blocking(L, 1, op);
  int i, n, longest = 0;
  const char **argv;
  size_t *lens;
  reply_box *box;
  luaL_checktype(L, 3, LUA_TTABLE);
  n = (int)lua_rawlen(L, 3);
  conn_ensure(L, &c->conn, op);
  lua_settop(L, 3);
  for (i = 1; i <= n; i++) {
    int len;
    lua_rawgeti(L, 3, i);
    luaL_argcheck(L, lua_istable(L, -1), 3, "commands must be tables");
    len = (int)lua_rawlen(L, -1);
    if (len > longest) longest = len;
    lua_pop(L, 1);
  }
  argv = compat_newuserdata(L, (size_t)(longest + 1) * sizeof *argv); /* 4 */
  lens = compat_newuserdata(L, (size_t)(longest + 1) * sizeof *lens); /* 5 */
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, 3, i);
    append_command(L, c, op, lua_gettop(L), argv, lens);
    lua_pop(L, 1);
  }
  box = reply_box_new(L);
  lua_createtable(L, n, 0);
  for (i = 1; i <= n; i++) {
    reply_push(L, conn_read(L, &c->conn, op, box));
    lua_rawseti(L, -2, i);
  }
  reply_box_set(box, NULL);
  return 1;
}

/* ------------------------------------------------------------------------
 * Request bytes and replies, for the cosocket transport
 * ------------------------------------------------------------------------ */

/* Adds "<mark><n>\r\n" to b: the header of a RESP array ('*') or bulk
 * string ('$'). */
static void add_header(luaL_Buffer *b, char mark, size_t n) {
  char head[32];
  luaL_addlstring(b, head, (size_t)snprintf(head, sizeof head, "%c%zu\r\n", mark, n));
}

/* Adds s[0..len) to b as a RESP bulk string. */
static void add_bulk(luaL_Buffer *b, const char *s, size_t len) {
  add_header(b, '$', len);
  luaL_addlstring(b, s, len);
  luaL_addlstring(b, "\r\n", 2);
}

/* format(op, commands) -> the RESP bytes of every command, in order */
static int internal_format(lua_State *L) {
  const char *op = luaL_checkstring(L, 1);
  int i, j, n, argc;
  luaL_Buffer b;
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 3); /* 3: the command whose bytes are being added */
  n = (int)lua_rawlen(L, 2);
  luaL_buffinit(L, &b);
  /* (the stack is used only in balanced steps while b is open) */
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, 2, i);
    luaL_argcheck(L, lua_istable(L, -1), 2, "commands must be tables");
    lua_replace(L, 3);
    argc = (int)lua_rawlen(L, 3);
    add_header(&b, '*', (size_t)argc);
    for (j = 1; j <= argc; j++) {
      size_t len;
      const char *arg = command_arg(L, 3, j, op, &len);
      add_bulk(&b, arg, len);
    }
  }
  luaL_pushresult(&b);
  return 1;
}

/* request(cache, op, key [, value [, ttl]]) -> the RESP bytes of the
 * single-record operation op ("get_record", ...); bad input raises here,
 * before anything is sent. */
static int internal_request(lua_State *L) {
  record_op o;
  cache *c;
  int i;
  luaL_Buffer b;
  o.kind = (enum record_kind)luaL_checkoption(L, 2, NULL, record_op_names);
  o.op = record_op_names[o.kind];
  c = cache_check(L, 1, o.op);
  record_build(L, c, &o, 3, 4, 5);
  luaL_buffinit(L, &b);
  add_header(&b, '*', (size_t)o.a.n);
  for (i = 0; i < o.a.n; i++) add_bulk(&b, o.a.v[i], o.a.len[i]);
  luaL_pushresult(&b);
  return 1;
}

/* result(cache, op, key, reader) -> the results of op, from the reply the
 * reader holds (raising for an error reply, as over the blocking
 * connection) */
static int internal_result(lua_State *L) {
  record_op o;
  cache *c;
  reply_box *box;
  o.kind = (enum record_kind)luaL_checkoption(L, 2, NULL, record_op_names);
  o.op = record_op_names[o.kind];
  c = cache_check(L, 1, o.op);
  record_key(L, c, 3, o.op, &o.k);
  box = reply_box_new(L);
  reply_box_set(box, reader_take(L, 4));
  return record_finish(L, c, &o, box);
}

void internal_open(lua_State *L) {
  static const luaL_Reg internal[] = {
      {"key", internal_key},
      {"encode", internal_encode},
      {"decode", internal_decode},
      {"decode_page", internal_decode_page},
      {"policy", internal_policy},
      {"sha", internal_sha},
      {"load_scripts", internal_load_scripts},
      {"pipeline", internal_pipeline},
      {"format", internal_format},
      {"request", internal_request},
      {"result", internal_result},
      {NULL, NULL},
  };
  luaL_newlib(L, internal);
  lua_setfield(L, -2, "internal");
}
