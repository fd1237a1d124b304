/*
 * cache.c - the cache userdata and its single-record operations, each one
 * network round trip: get_record, set_record, delete_record, exists, ttl,
 * plus the primitives the Lua layer builds batch operations on.
 */
#include "cache.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "compat.h"
#include "json.h"
#include "reply.h"

/* ------------------------------------------------------------------------
 * Keys
 * ------------------------------------------------------------------------ */

/* A user key, as text, with the bucket it belongs to. */
typedef struct keyref {
  const char *text;
  size_t len;
  char num[32];                      /* the text of an integer key */
  char prefix[CACHE_NS_MAX + 8];     /* "<ns>:{<bucket>}:" */
  size_t plen;
} keyref;

/* Fails for a key that is neither a string nor an integer. */
static int bad_key(lua_State *L, int idx, const char *op) {
  if (lua_type(L, idx) == LUA_TNUMBER)
    return compat_error(L, "rcache_live: %s: key must be a string or an integer, got a float (%s)",
                      op, lua_tostring(L, idx));
  return compat_error(L, "rcache_live: %s: key must be a string or an integer, got %s", op,
                    luaL_typename(L, idx));
}

/* Reads the key at idx into k: strings as they are, integers as decimal
 * text. [-0, +0, v] raises on any other type. */
static void key_check(lua_State *L, int idx, const char *op, keyref *k) {
  if (lua_type(L, idx) == LUA_TSTRING) {
    k->text = lua_tolstring(L, idx, &k->len);
    return;
  }
  long long n;
  if (compat_tointeger(L, idx, &n)) {
    k->len = (size_t)snprintf(k->num, sizeof k->num, "%lld", n);
    k->text = k->num;
    return;
  }
  bad_key(L, idx, op);
}

/* FNV-1a: spreads keys over the buckets. Part of the data layout: changing
 * it moves every record's bookkeeping. */
static unsigned bucket_of(const char *s, size_t len) {
  unsigned h = 2166136261u;
  size_t i;
  for (i = 0; i < len; i++) {
    h ^= (unsigned char)s[i];
    h *= 16777619u;
  }
  return h % CACHE_BUCKETS;
}

/* Fills k->prefix with "<ns>:{<bucket>}:" for the key already in k. */
static void key_bucket(const cache *c, keyref *k) {
  k->plen = (size_t)snprintf(k->prefix, sizeof k->prefix, "%s:{%02x}:", c->ns,
                             bucket_of(k->text, k->len));
}

/* Pushes the record key "<prefix>r:<key>". [-0, +1, m] */
static void push_record_key(lua_State *L, const keyref *k) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addlstring(&b, k->prefix, k->plen);
  luaL_addlstring(&b, "r:", 2);
  luaL_addlstring(&b, k->text, k->len);
  luaL_pushresult(&b);
}

/* The three bookkeeping keys of a bucket: access, expiry and TTL. */
typedef struct bucket_keys {
  char a[CACHE_NS_MAX + 9], e[CACHE_NS_MAX + 9], t[CACHE_NS_MAX + 9];
  size_t len;
} bucket_keys;

static void bucket_keys_of(const keyref *k, bucket_keys *bk) {
  memcpy(bk->a, k->prefix, k->plen);
  memcpy(bk->e, k->prefix, k->plen);
  memcpy(bk->t, k->prefix, k->plen);
  bk->a[k->plen] = 'a';
  bk->e[k->plen] = 'e';
  bk->t[k->plen] = 't';
  bk->a[k->plen + 1] = bk->e[k->plen + 1] = bk->t[k->plen + 1] = '\0';
  bk->len = k->plen + 1;
}

/* Pushes the key quoted for an error message: printable, at most 64 bytes.
 * [-0, +1, m] */
static const char *push_quoted_key(lua_State *L, const keyref *k) {
  luaL_Buffer b;
  size_t i, shown = k->len > 64 ? 64 : k->len;
  luaL_buffinit(L, &b);
  luaL_addchar(&b, '"');
  for (i = 0; i < shown; i++) {
    unsigned char ch = (unsigned char)k->text[i];
    if (ch == '"' || ch == '\\') {
      luaL_addchar(&b, '\\');
      luaL_addchar(&b, (char)ch);
    } else if (ch < 0x20 || ch == 0x7f) {
      char esc[8];
      snprintf(esc, sizeof esc, "\\x%02x", ch);
      luaL_addstring(&b, esc);
    } else {
      luaL_addchar(&b, (char)ch);
    }
  }
  luaL_addchar(&b, '"');
  if (shown < k->len) luaL_addstring(&b, "...");
  luaL_pushresult(&b);
  return lua_tostring(L, -1);
}

/* ------------------------------------------------------------------------
 * Commands
 * ------------------------------------------------------------------------ */

#define ARGS_MAX 12

/* The arguments of one command, pointing into strings that outlive it. */
typedef struct args {
  int n;
  const char *v[ARGS_MAX];
  size_t len[ARGS_MAX];
} args;

static void arg(args *a, const char *s, size_t len) {
  a->v[a->n] = s;
  a->len[a->n] = len;
  a->n++;
}

#define ARG_LIT(a, s) arg((a), (s), sizeof(s) - 1)
#define ARG_STR(a, s) arg((a), (s), strlen(s))

/* Fails with the error reply r of the operation on key k. */
static int fail_reply(lua_State *L, const char *op, const keyref *k, const redisReply *r) {
  const char *quoted = push_quoted_key(L, k);
  return compat_error(L, "rcache_live: %s: record %s: %s", op, quoted, r->str);
}

/* Queues the command and reads its reply into box; a NOSCRIPT reply (the
 * server lost its scripts: restart, SCRIPT FLUSH) reloads them and tries
 * once more. Error replies are returned. [-0, +0, e] */
static redisReply *run(lua_State *L, cache *c, const char *op, args *a, reply_box *box) {
  redisReply *r;
  conn_append(L, &c->conn, op, a->n, a->v, a->len);
  r = conn_read(L, &c->conn, op, box);
  if (conn_is_noscript(r)) {
    conn_load_scripts(L, &c->conn, op);
    conn_append(L, &c->conn, op, a->n, a->v, a->len);
    r = conn_read(L, &c->conn, op, box);
  }
  return r;
}

/* ------------------------------------------------------------------------
 * Values
 * ------------------------------------------------------------------------ */

/* Pushes the codec's field name (a function). [-0, +1, e] */
static void push_codec_fn(lua_State *L, const cache *c, const char *name) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, c->codec_ref);
  lua_getfield(L, -1, name);
  lua_remove(L, -2);
}

/* Pushes the JSON text of the value at idx. [-0, +1, e] raises
 * "rcache_live: <op>: <cause>" for a value the codec refuses. */
static const char *push_encoded(lua_State *L, const cache *c, int idx, const char *op,
                                size_t *len) {
  idx = lua_absindex(L, idx);
  if (lua_isnoneornil(L, idx))
    compat_error(L, "rcache_live: %s: value is nil (delete_record deletes)", op);
  if (c->codec_ref == LUA_NOREF) {
    if (!json_encode(L, idx)) compat_error(L, "rcache_live: %s: %s", op, lua_tostring(L, -1));
  } else {
    push_codec_fn(L, c, "encode");
    lua_pushvalue(L, idx);
    if (lua_pcall(L, 1, 1, 0) != 0)
      compat_error(L, "rcache_live: %s: %s", op, luaL_tolstring(L, -1, NULL));
    if (lua_type(L, -1) != LUA_TSTRING)
      compat_error(L, "rcache_live: %s: codec's encode returned %s, not a string", op,
                 luaL_typename(L, -1));
  }
  return lua_tolstring(L, -1, len);
}

/* Replaces the JSON string on top of the stack by the value it holds.
 * [-1, +1, e] raises naming the key when the record is not valid JSON. */
static void decode_top(lua_State *L, const cache *c, const char *op, const keyref *k) {
  size_t len;
  const char *s = lua_tolstring(L, -1, &len);
  int ok;
  if (c->codec_ref == LUA_NOREF) {
    ok = json_decode(L, s, len);
  } else {
    push_codec_fn(L, c, "decode");
    lua_pushvalue(L, -2);
    ok = lua_pcall(L, 1, 1, 0) == 0;
    if (!ok) luaL_tolstring(L, -1, NULL);
  }
  if (!ok) {
    const char *cause = lua_tostring(L, -1);
    compat_error(L, "rcache_live: %s: record %s is not valid JSON: %s", op, push_quoted_key(L, k),
               cause);
  }
  lua_remove(L, -2);
}

/* The TTL argument at idx in milliseconds; none or nil means the default.
 * [-0, +0, v] raises for anything but a positive number of seconds. */
static long long ttl_arg(lua_State *L, int idx, const cache *c, const char *op) {
  double s, ms;
  if (lua_isnoneornil(L, idx)) return c->default_ttl_ms;
  if (lua_type(L, idx) != LUA_TNUMBER)
    compat_error(L, "rcache_live: %s: ttl must be a number of seconds, got %s", op,
               luaL_typename(L, idx));
  s = (double)lua_tonumber(L, idx);
  ms = floor(s * 1000.0 + 0.5);
  if (!(s > 0) || !(ms >= 1) || ms > 9.0e15)
    compat_error(L, "rcache_live: %s: ttl must be a positive number of seconds (at least 0.001), got %s",
               op, lua_tostring(L, idx));
  return (long long)ms;
}

/* ------------------------------------------------------------------------
 * The object
 * ------------------------------------------------------------------------ */

/* The cache at index 1, open. [-0, +0, v] */
static cache *check_open(lua_State *L, const char *op) {
  cache *c = luaL_checkudata(L, 1, CACHE_MT);
  if (c->closed) compat_error(L, "rcache_live: %s: the cache is closed", op);
  return c;
}

/* new(settings): settings were validated by the Lua layer. */
static int cache_new(lua_State *L) {
  cache *c;
  size_t nslen;
  const char *ns;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_getfield(L, 1, "namespace");
  ns = luaL_checklstring(L, -1, &nslen);
  if (nslen == 0 || nslen > CACHE_NS_MAX || strlen(ns) != nslen)
    luaL_argerror(L, 1, "bad namespace");
  c = compat_newuserdata(L, sizeof *c);
  memset(c, 0, sizeof *c);
  c->closed = 1;
  c->codec_ref = LUA_NOREF;
  luaL_getmetatable(L, CACHE_MT);
  lua_setmetatable(L, -2);
  memcpy(c->ns, ns, nslen + 1);
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
  cache *c = luaL_checkudata(L, 1, CACHE_MT);
  conn_free(&c->conn);
  if (c->codec_ref != LUA_NOREF) {
    luaL_unref(L, LUA_REGISTRYINDEX, c->codec_ref);
    c->codec_ref = LUA_NOREF;
  }
  c->closed = 1;
  return 0;
}

static int cache_tostring(lua_State *L) {
  cache *c = luaL_checkudata(L, 1, CACHE_MT);
  if (c->closed)
    lua_pushfstring(L, "rcache_live cache (closed): %p", (void *)c);
  else
    lua_pushfstring(L, "rcache_live cache (namespace \"%s\", %s): %p", c->ns, c->conn.where,
                    (void *)c);
  return 1;
}

/* ------------------------------------------------------------------------
 * Single-record operations
 * ------------------------------------------------------------------------ */

/* One single-record command: its key, the reply box and the record key
 * (both on the stack), and the arguments being built. */
typedef struct record_op {
  keyref k;
  args a;
  reply_box *box;
  const char *rk;
  size_t rklen;
} record_op;

/* Checks the key at kidx, connects, pushes a reply box and the record key,
 * and starts the arguments: "<plain> <record key>" without bookkeeping or
 * when script is -1, else "EVALSHA <script> 4 <a> <e> <t> <record key>"
 * (bk keeps the bucket key names alive). [-0, +2, e] */
static void op_begin(lua_State *L, cache *c, int kidx, const char *op, record_op *o,
                     const char *plain, int script, bucket_keys *bk) {
  memset(&o->a, 0, sizeof o->a);
  key_check(L, kidx, op, &o->k);
  key_bucket(c, &o->k);
  conn_ensure(L, &c->conn, op);
  o->box = reply_box_new(L);
  push_record_key(L, &o->k);
  o->rk = lua_tolstring(L, -1, &o->rklen);
  if (!c->track || script < 0) {
    ARG_STR(&o->a, plain);
    arg(&o->a, o->rk, o->rklen);
    return;
  }
  bucket_keys_of(&o->k, bk);
  ARG_LIT(&o->a, "EVALSHA");
  ARG_STR(&o->a, c->conn.shas[script]);
  ARG_LIT(&o->a, "4");
  arg(&o->a, bk->a, bk->len);
  arg(&o->a, bk->e, bk->len);
  arg(&o->a, bk->t, bk->len);
  arg(&o->a, o->rk, o->rklen);
}

/* Sends the command, raises on an error reply, returns the reply. */
static redisReply *op_run(lua_State *L, cache *c, const char *op, record_op *o) {
  redisReply *r = run(L, c, op, &o->a, o->box);
  if (r->type == REDIS_REPLY_ERROR) fail_reply(L, op, &o->k, r);
  return r;
}

/* Reads the record of the key at kidx and pushes its value or nil. */
static int get_record(lua_State *L, cache *c, int kidx, const char *op) {
  record_op o;
  bucket_keys bk;
  redisReply *r;
  char active[2] = {c->active_ttl ? '1' : '0', '\0'};
  char ttl[32];
  op_begin(L, c, kidx, op, &o, "GET", SCRIPT_READ, &bk);
  if (c->track) {
    snprintf(ttl, sizeof ttl, "%lld", c->default_ttl_ms);
    arg(&o.a, o.k.text, o.k.len);
    arg(&o.a, active, 1);
    ARG_STR(&o.a, ttl);
  }
  r = op_run(L, c, op, &o);
  if (r->type != REDIS_REPLY_STRING) {
    lua_pushnil(L);
    return 1;
  }
  lua_pushlstring(L, r->str, r->len);
  reply_box_set(o.box, NULL);
  decode_top(L, c, op, &o.k);
  return 1;
}

/* Writes the value at vidx under the key at kidx for ttl_ms. */
static void set_record(lua_State *L, cache *c, int kidx, int vidx, long long ttl_ms,
                       const char *op) {
  record_op o;
  bucket_keys bk;
  const char *json;
  size_t jsonlen;
  char ms[32];
  json = push_encoded(L, c, vidx, op, &jsonlen);
  snprintf(ms, sizeof ms, "%lld", ttl_ms);
  op_begin(L, c, kidx, op, &o, "SET", SCRIPT_WRITE, &bk);
  if (!c->track) {
    arg(&o.a, json, jsonlen);
    ARG_LIT(&o.a, "PX");
    ARG_STR(&o.a, ms);
  } else {
    ARG_LIT(&o.a, "1");
    arg(&o.a, o.k.text, o.k.len);
    arg(&o.a, json, jsonlen);
    ARG_STR(&o.a, ms);
    ARG_STR(&o.a, ms);
  }
  op_run(L, c, op, &o);
  reply_box_set(o.box, NULL);
  lua_pop(L, 3);
}

/* Deletes the record of the key at kidx; returns whether it existed. */
static int delete_record(lua_State *L, cache *c, int kidx, const char *op) {
  record_op o;
  bucket_keys bk;
  redisReply *r;
  int existed;
  op_begin(L, c, kidx, op, &o, "DEL", SCRIPT_DELETE, &bk);
  if (c->track) arg(&o.a, o.k.text, o.k.len);
  r = op_run(L, c, op, &o);
  existed = r->type == REDIS_REPLY_INTEGER && r->integer > 0;
  reply_box_set(o.box, NULL);
  lua_pop(L, 2);
  return existed;
}

/* Runs a one-key read-only command (EXISTS, PTTL) on the record's key and
 * returns its integer reply. */
static long long record_query(lua_State *L, cache *c, const char *cmd, const char *op) {
  record_op o;
  redisReply *r;
  long long result;
  op_begin(L, c, 2, op, &o, cmd, -1, NULL);
  r = op_run(L, c, op, &o);
  if (r->type != REDIS_REPLY_INTEGER) fail_reply(L, op, &o.k, r);
  result = r->integer;
  reply_box_set(o.box, NULL);
  lua_pop(L, 2);
  return result;
}

static int cache_get_record(lua_State *L) {
  cache *c = check_open(L, "get_record");
  return get_record(L, c, 2, "get_record");
}

static int cache_set_record(lua_State *L) {
  cache *c = check_open(L, "set_record");
  set_record(L, c, 2, 3, ttl_arg(L, 4, c, "set_record"), "set_record");
  return 0;
}

static int cache_delete_record(lua_State *L) {
  cache *c = check_open(L, "delete_record");
  lua_pushboolean(L, delete_record(L, c, 2, "delete_record"));
  return 1;
}

static int cache_exists(lua_State *L) {
  cache *c = check_open(L, "exists");
  lua_pushboolean(L, record_query(L, c, "EXISTS", "exists") > 0);
  return 1;
}

/* ttl(key): seconds left (ms precision), nil without such a record,
 * math.huge for a record another client made persistent. */
static int cache_ttl(lua_State *L) {
  cache *c = check_open(L, "ttl");
  long long ms = record_query(L, c, "PTTL", "ttl");
  if (ms == -2)
    lua_pushnil(L);
  else if (ms == -1)
    lua_pushnumber(L, (lua_Number)HUGE_VAL);
  else
    lua_pushnumber(L, (lua_Number)ms / 1000.0);
  return 1;
}

/* __index: a method by that name, else the record. */
static int cache_index(lua_State *L) {
  if (lua_type(L, 2) == LUA_TSTRING) {
    lua_pushvalue(L, 2);
    lua_rawget(L, lua_upvalueindex(1));
    if (!lua_isnil(L, -1)) return 1;
    lua_pop(L, 1);
  }
  return get_record(L, check_open(L, "get_record"), 2, "get_record");
}

/* __newindex: cache[key] = value sets with the default TTL; nil deletes. */
static int cache_newindex(lua_State *L) {
  if (lua_isnil(L, 3)) {
    delete_record(L, check_open(L, "delete_record"), 2, "delete_record");
  } else {
    cache *c = check_open(L, "set_record");
    set_record(L, c, 2, 3, c->default_ttl_ms, "set_record");
  }
  return 0;
}

/* ------------------------------------------------------------------------
 * Primitives for the Lua layer (lua/rcache_live.lua)
 * ------------------------------------------------------------------------ */

/* internal.key(cache, key, op) -> record key, bucket prefix "<ns>:{<bucket>}:", key text */
static int cache_key(lua_State *L) {
  const char *op = luaL_optstring(L, 3, "key");
  cache *c = check_open(L, op);
  keyref k;
  key_check(L, 2, op, &k);
  key_bucket(c, &k);
  push_record_key(L, &k);
  lua_pushlstring(L, k.prefix, k.plen);
  lua_pushlstring(L, k.text, k.len);
  return 3;
}

/* internal.encode(cache, value, op) -> JSON text */
static int cache_encode(lua_State *L) {
  const char *op = luaL_checkstring(L, 3);
  cache *c = check_open(L, op);
  lua_settop(L, 3);
  push_encoded(L, c, 2, op, NULL);
  return 1;
}

/* internal.decode(cache, json, op, key) -> value */
static int cache_decode(lua_State *L) {
  const char *op = luaL_checkstring(L, 3);
  cache *c = check_open(L, op);
  keyref k;
  luaL_checktype(L, 2, LUA_TSTRING);
  key_check(L, 4, op, &k);
  lua_pushvalue(L, 2);
  decode_top(L, c, op, &k);
  return 1;
}

/* internal.policy(cache, op) -> track, active_ttl, default TTL in ms, namespace */
static int cache_policy(lua_State *L) {
  cache *c = check_open(L, luaL_optstring(L, 2, "policy"));
  lua_pushboolean(L, c->track);
  lua_pushboolean(L, c->active_ttl);
  lua_pushinteger(L, (lua_Integer)c->default_ttl_ms); /* ms go to Redis as integer text */
  lua_pushstring(L, c->ns);
  return 4;
}

/* internal.sha(cache, name, op) -> SHA1 of a loaded script (connects if needed) */
static int cache_sha(lua_State *L) {
  static const char *const names[] = {"read", "write", "delete", "cleanup", "update", NULL};
  const char *op = luaL_checkstring(L, 3);
  cache *c = check_open(L, op);
  int which = luaL_checkoption(L, 2, NULL, names);
  conn_ensure(L, &c->conn, op);
  lua_pushstring(L, c->conn.shas[which]);
  return 1;
}

/* internal.load_scripts(cache, op): after a NOSCRIPT reply */
static int cache_load_scripts(lua_State *L) {
  const char *op = luaL_checkstring(L, 2);
  conn_load_scripts(L, &check_open(L, op)->conn, op);
  return 0;
}

/* Pushes the arguments of command cmd (a sequence of strings and numbers)
 * and queues it. Needs argv/lens with room for its length. */
static void append_command(lua_State *L, cache *c, const char *op, int cmd, const char **argv,
                           size_t *lens) {
  int i, n = (int)lua_rawlen(L, cmd);
  int base = lua_gettop(L);
  luaL_checkstack(L, n, "rcache_live: command too long");
  for (i = 0; i < n; i++) {
    lua_rawgeti(L, cmd, i + 1);
    argv[i] = lua_tolstring(L, -1, &lens[i]);
    if (argv[i] == NULL)
      compat_error(L, "rcache_live: %s: command argument %d is a %s", op, i + 1,
                 luaL_typename(L, -1));
  }
  conn_append(L, &c->conn, op, n, argv, lens);
  lua_settop(L, base);
}

/* internal.pipeline(cache, op, commands) -> replies
 * Sends every command in one write and reads all the replies (see
 * reply_push for their shape). */
static int cache_pipeline(lua_State *L) {
  const char *op = luaL_checkstring(L, 2);
  cache *c = check_open(L, op);
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
  /* not methods, so that they shadow no key: internal.pipeline(cache, ...) */
  static const luaL_Reg internal[] = {
      {"key", cache_key},
      {"encode", cache_encode},
      {"decode", cache_decode},
      {"policy", cache_policy},
      {"sha", cache_sha},
      {"load_scripts", cache_load_scripts},
      {"pipeline", cache_pipeline},
      {NULL, NULL},
  };
  static const luaL_Reg metamethods[] = {
      {"__newindex", cache_newindex},
      {"__gc", cache_close},
      {"__close", cache_close},
      {"__tostring", cache_tostring},
      {NULL, NULL},
  };
  /* stack: module */
  luaL_newlib(L, methods); /* module, methods */
  luaL_newmetatable(L, CACHE_MT);
  luaL_setfuncs(L, metamethods, 0);
  lua_pushvalue(L, -2);
  lua_pushcclosure(L, cache_index, 1);
  lua_setfield(L, -2, "__index");
  lua_pushliteral(L, CACHE_MT);
  lua_setfield(L, -2, "__name");
  lua_pushliteral(L, "the metatable of rcache_live caches is private");
  lua_setfield(L, -2, "__metatable");
  lua_setfield(L, -3, "metatable"); /* module, methods */
  lua_setfield(L, -2, "methods");
  lua_pushcfunction(L, cache_new);
  lua_setfield(L, -2, "new");
  luaL_newlib(L, internal);
  lua_setfield(L, -2, "internal");
}
