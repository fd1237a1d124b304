/* record.c - single-record commands: build them, and read their replies. */
#include "record.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "compat.h"
#include "json.h"

const char *const record_op_names[] = {"get_record", "set_record", "delete_record", "exists",
                                       "ttl", NULL};

/* ------------------------------------------------------------------------
 * Keys
 * ------------------------------------------------------------------------ */

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
  long long n;
  if (lua_type(L, idx) == LUA_TSTRING) {
    k->text = lua_tolstring(L, idx, &k->len);
    return;
  }
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

void record_key(lua_State *L, const cache *c, int idx, const char *op, keyref *k) {
  key_check(L, idx, op, k);
  k->plen = (size_t)snprintf(k->prefix, sizeof k->prefix, "%s:{%02x}:", c->ns,
                             bucket_of(k->text, k->len));
}

void record_push_key(lua_State *L, const keyref *k) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addlstring(&b, k->prefix, k->plen);
  luaL_addlstring(&b, "r:", 2);
  luaL_addlstring(&b, k->text, k->len);
  luaL_pushresult(&b);
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

/* Fails with the reply r (an error, or one the operation cannot mean) of
 * the operation on key k. */
static int fail_reply(lua_State *L, const char *op, const keyref *k, const redisReply *r) {
  const char *quoted = push_quoted_key(L, k);
  return compat_error(L, "rcache_live: %s: record %s: %s", op, quoted,
                      r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
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

/* Fails for a value the codec refused (cause), naming the operation and,
 * given a label, what was being encoded: "record \"k\"", "field \"f\"". */
static int fail_encode(lua_State *L, const char *op, const char *label, const keyref *name,
                       const char *cause) {
  if (label == NULL) return compat_error(L, "rcache_live: %s: %s", op, cause);
  return compat_error(L, "rcache_live: %s: %s %s: %s", op, label, push_quoted_key(L, name), cause);
}

const char *record_push_encoded(lua_State *L, const cache *c, int idx, const char *op,
                                const char *label, const keyref *name, size_t *len) {
  idx = lua_absindex(L, idx);
  if (lua_isnoneornil(L, idx)) fail_encode(L, op, label, name, "value is nil (delete_record deletes)");
  if (c->codec_ref == LUA_NOREF) {
    if (!json_encode(L, idx)) fail_encode(L, op, label, name, lua_tostring(L, -1));
  } else {
    push_codec_fn(L, c, "encode");
    lua_pushvalue(L, idx);
    if (lua_pcall(L, 1, 1, 0) != 0) fail_encode(L, op, label, name, luaL_tolstring(L, -1, NULL));
    if (lua_type(L, -1) != LUA_TSTRING) {
      lua_pushfstring(L, "codec's encode returned %s, not a string", luaL_typename(L, -1));
      fail_encode(L, op, label, name, lua_tostring(L, -1));
    }
  }
  return lua_tolstring(L, -1, len);
}

void record_decode(lua_State *L, const cache *c, const char *op, const keyref *k, const char *s,
                   size_t len) {
  int ok;
  if (c->codec_ref == LUA_NOREF) {
    ok = json_decode(L, s, len);
  } else {
    push_codec_fn(L, c, "decode");
    lua_pushlstring(L, s, len);
    ok = lua_pcall(L, 1, 1, 0) == 0;
    if (!ok) luaL_tolstring(L, -1, NULL);
  }
  if (!ok) {
    const char *cause = lua_tostring(L, -1);
    compat_error(L, "rcache_live: %s: record %s is not valid JSON: %s", op, push_quoted_key(L, k),
                 cause);
  }
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
 * Commands
 * ------------------------------------------------------------------------ */

static void arg(args *a, const char *s, size_t len) {
  a->v[a->n] = s;
  a->len[a->n] = len;
  a->n++;
}

#define ARG_LIT(a, s) arg((a), (s), sizeof(s) - 1)
#define ARG_STR(a, s) arg((a), (s), strlen(s))

/* Each operation's command without bookkeeping, and its script with it
 * (-1: the plain command either way). */
static const char *const plain_commands[] = {"GET", "SET", "DEL", "EXISTS", "PTTL"};
static const int scripts[] = {SCRIPT_READ, SCRIPT_WRITE, SCRIPT_DELETE, -1, -1};

/* Starts "EVALSHA <script> 4 <a> <e> <t> <record key>". */
static void begin_script(cache *c, record_op *o, const char *rk, size_t rklen) {
  static const char names[3] = {'a', 'e', 't'};
  int i;
  ARG_LIT(&o->a, "EVALSHA");
  ARG_STR(&o->a, c->conn.shas[scripts[o->kind]]);
  ARG_LIT(&o->a, "4");
  for (i = 0; i < 3; i++) {
    memcpy(o->bucket_keys[i], o->k.prefix, o->k.plen);
    o->bucket_keys[i][o->k.plen] = names[i];
    arg(&o->a, o->bucket_keys[i], o->k.plen + 1);
  }
  arg(&o->a, rk, rklen);
}

void record_build(lua_State *L, cache *c, record_op *o, int kidx, int vidx, int tidx) {
  const char *json = NULL, *rk;
  size_t jsonlen = 0, rklen;
  o->a.n = 0;
  if (o->kind == REC_SET) {
    long long ms = ttl_arg(L, tidx, c, o->op);
    json = record_push_encoded(L, c, vidx, o->op, NULL, NULL, &jsonlen);
    snprintf(o->ms, sizeof o->ms, "%lld", ms);
  } else {
    lua_pushnil(L); /* keeps the stack effect the same */
    snprintf(o->ms, sizeof o->ms, "%lld", c->default_ttl_ms);
  }
  record_key(L, c, kidx, o->op, &o->k);
  /* a blocking cache learns the script SHAs from its SCRIPT LOAD on connect */
  if (!c->cosocket) conn_ensure(L, &c->conn, o->op);
  record_push_key(L, &o->k);
  rk = lua_tolstring(L, -1, &rklen);
  if (!c->track || scripts[o->kind] < 0) {
    ARG_STR(&o->a, plain_commands[o->kind]);
    arg(&o->a, rk, rklen);
    if (o->kind == REC_SET) {
      arg(&o->a, json, jsonlen);
      ARG_LIT(&o->a, "PX");
      ARG_STR(&o->a, o->ms);
    }
    return;
  }
  begin_script(c, o, rk, rklen);
  switch (o->kind) {
    case REC_GET: /* key, active, default TTL */
      arg(&o->a, o->k.text, o->k.len);
      arg(&o->a, c->active_ttl ? "1" : "0", 1);
      ARG_STR(&o->a, o->ms);
      break;
    case REC_SET: /* expire-in and stored TTL, then one record: count, key, json */
      ARG_STR(&o->a, o->ms);
      ARG_STR(&o->a, o->ms);
      ARG_LIT(&o->a, "1");
      arg(&o->a, o->k.text, o->k.len);
      arg(&o->a, json, jsonlen);
      break;
    default: /* REC_DELETE: key */
      arg(&o->a, o->k.text, o->k.len);
      break;
  }
}

/* The integer reply of EXISTS or PTTL. */
static long long integer_reply(lua_State *L, record_op *o, const redisReply *r) {
  if (r->type != REDIS_REPLY_INTEGER) fail_reply(L, o->op, &o->k, r);
  return r->integer;
}

int record_finish(lua_State *L, cache *c, record_op *o, reply_box *box) {
  const redisReply *r = box->reply;
  int n = 1;
  long long ms;
  if (r->type == REDIS_REPLY_ERROR) fail_reply(L, o->op, &o->k, r);
  switch (o->kind) {
    case REC_GET:
      if (r->type != REDIS_REPLY_STRING) {
        lua_pushnil(L);
        break;
      }
      /* straight from the reply: no Lua string of the JSON is made */
      record_decode(L, c, o->op, &o->k, r->str, r->len);
      break;
    case REC_SET:
      n = 0;
      break;
    case REC_DELETE:
      lua_pushboolean(L, r->type == REDIS_REPLY_INTEGER && r->integer > 0);
      break;
    case REC_EXISTS:
      lua_pushboolean(L, integer_reply(L, o, r) > 0);
      break;
    case REC_TTL: /* seconds left; nil without such a record; math.huge when persistent */
      ms = integer_reply(L, o, r);
      if (ms == -2)
        lua_pushnil(L);
      else if (ms == -1)
        lua_pushnumber(L, (lua_Number)HUGE_VAL);
      else
        lua_pushnumber(L, (lua_Number)ms / 1000.0);
      break;
  }
  reply_box_set(box, NULL);
  return n;
}
