/*
 * record.h - single-record commands, independent of how their bytes travel:
 * the key and its bucket, the command's arguments, the value's encoding and
 * what the reply means. The blocking connection (cache.c) and the nginx
 * cosocket transport (lua/rcache_live/cosocket.lua, through core.internal)
 * both run them, so a record reads and fails the same way over either.
 */
#ifndef RCACHE_RECORD_H
#define RCACHE_RECORD_H

#include <stddef.h>

#include <lua.h>
#include <lauxlib.h>

#include "cache.h"
#include "reply.h"

/* The single-record operations; record_op_names gives the name each one
 * reports in messages ("get_record", ..., then NULL). */
enum record_kind { REC_GET, REC_SET, REC_DELETE, REC_EXISTS, REC_TTL };
extern const char *const record_op_names[];

/* A user key, as text, with the bucket it belongs to. */
typedef struct keyref {
  const char *text;
  size_t len;
  char num[32];                      /* the text of an integer key */
  char prefix[CACHE_NS_MAX + 8];     /* "<ns>:{<bucket>}:" */
  size_t plen;
} keyref;

/* The arguments of one command, pointing into strings that outlive it. */
#define ARGS_MAX 12
typedef struct args {
  int n;
  const char *v[ARGS_MAX];
  size_t len[ARGS_MAX];
} args;

/* One single-record operation being built and run. */
typedef struct record_op {
  enum record_kind kind;
  const char *op;                    /* its name, for messages */
  keyref k;
  args a;
  char bucket_keys[3][CACHE_NS_MAX + 9]; /* the bucket's a, e and t keys */
  char ms[32];                       /* a TTL argument, as text */
} record_op;

/* Reads the key at idx into k (strings as they are, integers as decimal
 * text) and finds its bucket. [-0, +0, v] raises for any other key. */
void record_key(lua_State *L, const cache *c, int idx, const char *op, keyref *k);

/* Pushes the record key "<ns>:{<bucket>}:r:<key>". [-0, +1, m] */
void record_push_key(lua_State *L, const keyref *k);

/* Checks the arguments (key at kidx; for REC_SET the value at vidx and the
 * TTL at tidx) and builds the command in o->a, refusing bad input before
 * anything is sent. Uses c->conn.shas: a blocking cache connects first.
 * [-0, +2, e] pushes the strings the arguments point into. */
void record_build(lua_State *L, cache *c, record_op *o, int kidx, int vidx, int tidx);

/* Turns the reply in box into the operation's results (raising for an
 * error reply, naming the key) and frees it. Returns how many it pushed. */
int record_finish(lua_State *L, cache *c, record_op *o, reply_box *box);

/* Pushes the JSON text of the value at idx. [-0, +1, e] A refusal names
 * the operation and, given a label ("record", "field"), the one named. */
const char *record_push_encoded(lua_State *L, const cache *c, int idx, const char *op,
                                const char *label, const keyref *name, size_t *len);

/* Pushes the value of the JSON text s[0..len). [-0, +1, e] raises naming
 * the key when the record is not valid JSON. */
void record_decode(lua_State *L, const cache *c, const char *op, const keyref *k, const char *s,
                   size_t len);

#endif
