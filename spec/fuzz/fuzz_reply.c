/*
 * fuzz_reply.c - libFuzzer target for what the library does with the bytes
 * a Redis server sends back: hiredis's redisReader parses them (as
 * redisGetReply does inside conn_read), each reply goes into a reply box
 * (reply_box_new/reply_box_set, src/reply.h) and is turned into a Lua value
 * by reply_push, as internal.pipeline does; a bulk string reply is also
 * decoded as a record (json_decode, as get_record does).
 *
 * Each input is read twice: all bytes in one redisReaderFeed, then in small
 * chunks (1 to 7 bytes, fed one after another, replies drained after each,
 * as replies trickle in from a socket). Checked, in protected mode:
 *   - reply_push gives exactly the documented shape (reply.h): nil -> false,
 *     integer -> integer, status and string -> the same bytes, array -> a
 *     sequence of the same length, error -> { err = message };
 *   - both readings give the same replies and the same error (if any);
 *   - no Lua error (reply_push raises only on memory or stack exhaustion);
 *   - one box per reading, whose reply is replaced by each new one; the
 *     first reading clears the box itself, the second leaves its last reply
 *     to the box's __gc (the two ways the library lets go of a reply).
 *     LeakSanitizer then sees any reply or reader left behind.
 *
 * hiredis 0.14 takes an array's length from the server and callocs that many
 * pointers at once ("*2147483647\r\n" asks for 16 GiB). Whether the OS grants
 * that or not is the machine's business, not a memory-safety question, so
 * allocations above 1 GiB fail here (the failure path: hiredis reports "Out
 * of memory" as a reader error) instead of tripping libFuzzer's malloc limit.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <lauxlib.h>
#include <lua.h>

#include "json.h"
#include "reply.h"

#define MAX_CHUNK 7 /* the chunked reading feeds 1..MAX_CHUNK bytes at a time */

const char *__asan_default_options(void);
const char *__asan_default_options(void) {
  return "allocator_may_return_null=1:max_allocation_size_mb=1024";
}

static lua_State *L;

#define FUZZ_NAME "fuzz_reply"
#include "fuzz_common.h"

/* The Lua value at absolute index idx is what reply_push must make of r. */
static void check_pushed(lua_State *S, int idx, const redisReply *r) {
  size_t len, i;
  const char *s;
  luaL_checkstack(S, 3, "fuzz_reply: check_pushed");
  switch (r->type) {
    case REDIS_REPLY_INTEGER:
      CHECK(lua_isinteger(S, idx) && lua_tointeger(S, idx) == r->integer,
            "integer reply %lld pushed as %s", r->integer, luaL_typename(S, idx));
      break;
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
      CHECK(lua_type(S, idx) == LUA_TSTRING, "string reply pushed as %s", luaL_typename(S, idx));
      s = lua_tolstring(S, idx, &len);
      CHECK(len == r->len && memcmp(s, r->str, len) == 0, "string reply bytes differ");
      break;
    case REDIS_REPLY_ARRAY:
      CHECK(lua_type(S, idx) == LUA_TTABLE && lua_getmetatable(S, idx) == 0,
            "array reply pushed as %s", luaL_typename(S, idx));
      CHECK(lua_rawlen(S, idx) == r->elements, "array of %zu pushed with length %zu",
            r->elements, (size_t)lua_rawlen(S, idx));
      for (i = 0; i < r->elements; i++) {
        lua_rawgeti(S, idx, (lua_Integer)i + 1);
        check_pushed(S, lua_gettop(S), r->element[i]);
        lua_pop(S, 1);
      }
      break;
    case REDIS_REPLY_ERROR:
      CHECK(lua_type(S, idx) == LUA_TTABLE, "error reply pushed as %s", luaL_typename(S, idx));
      lua_getfield(S, idx, "err");
      s = lua_tolstring(S, -1, &len);
      CHECK(s != NULL && len == r->len && memcmp(s, r->str, len) == 0,
            "error reply message differs");
      lua_pop(S, 1);
      break;
    case REDIS_REPLY_NIL:
      CHECK(lua_type(S, idx) == LUA_TBOOLEAN && !lua_toboolean(S, idx), "nil reply pushed as %s",
            luaL_typename(S, idx));
      break;
    default:
      fail("hiredis made a reply of unknown type %d", r->type);
  }
}

/* Reads every complete reply from the reader into the box, pushes it and
 * appends it to the table at results (count in *n). Returns 0 once the reader
 * has failed (its errstr tells why). */
static int drain(lua_State *S, redisReader *rd, reply_box *box, int results, int *n) {
  for (;;) {
    void *r = NULL;
    int top = lua_gettop(S);
    if (redisReaderGetReply(rd, &r) != REDIS_OK) {
      CHECK(r == NULL, "a failed read returned a reply");
      CHECK(rd->err != 0 && rd->errstr[0] != '\0', "a failed read has no error");
      return 0;
    }
    if (r == NULL) return 1; /* needs more bytes */
    reply_box_set(box, (redisReply *)r);
    reply_push(S, (const redisReply *)r);
    CHECK(lua_gettop(S) == top + 1, "reply_push pushed %d values", lua_gettop(S) - top);
    check_pushed(S, top + 1, (const redisReply *)r);
    if (((redisReply *)r)->type == REDIS_REPLY_STRING) { /* get_record's decode */
      (void)json_decode(S, ((redisReply *)r)->str, ((redisReply *)r)->len);
      CHECK(lua_gettop(S) == top + 2, "json_decode pushed %d values", lua_gettop(S) - top - 1);
      lua_pop(S, 1);
    }
    lua_rawseti(S, results, ++*n);
  }
}

/* run(data, size, chunked) -> replies, count, errstr or nil */
static int run(lua_State *S) {
  const char *s = (const char *)lua_touserdata(S, 1);
  size_t size = (size_t)lua_tointeger(S, 2), pos = 0;
  int chunked = lua_toboolean(S, 3), n = 0, ok = 1;
  redisReader *rd = redisReaderCreate();
  reply_box *box;
  CHECK(rd != NULL, "redisReaderCreate failed");
  lua_settop(S, 0);
  box = reply_box_new(S); /* 1 */
  lua_newtable(S);        /* 2: results */
  if (!chunked) {
    ok = redisReaderFeed(rd, s, size) == REDIS_OK && drain(S, rd, box, 2, &n);
  } else {
    unsigned step = 0;
    while (ok && pos < size) {
      size_t k = 1 + (step++ * 5 + size) % MAX_CHUNK;
      if (k > size - pos) k = size - pos;
      ok = redisReaderFeed(rd, s + pos, k) == REDIS_OK && drain(S, rd, box, 2, &n);
      pos += k;
    }
  }
  if (!chunked) reply_box_set(box, NULL); /* else the box's __gc frees it */
  lua_pushinteger(S, n);
  if (ok)
    lua_pushnil(S);
  else
    lua_pushstring(S, rd->errstr);
  redisReaderFree(rd);
  lua_remove(S, 1); /* the box: garbage from now on */
  return 3;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  int pass;
  if (L == NULL) {
    L = luaL_newstate();
    if (L == NULL) abort();
    json_open(L);
    reply_open(L);
  }
  cur_data = data;
  cur_size = size;
  lua_settop(L, 0);
  for (pass = 0; pass < 2; pass++) {
    lua_pushcfunction(L, run);
    lua_pushlightuserdata(L, (void *)data);
    lua_pushinteger(L, (lua_Integer)size);
    lua_pushboolean(L, pass);
    if (lua_pcall(L, 3, 3, 0) != LUA_OK) fail("a Lua error was raised: %s", lua_tostring(L, -1));
  }
  /* stack: replies1, n1, err1, replies2, n2, err2 */
  CHECK(lua_tointeger(L, 2) == lua_tointeger(L, 5),
        "%lld replies in one feed, %lld in chunks", (long long)lua_tointeger(L, 2),
        (long long)lua_tointeger(L, 5));
  CHECK(same_value(L, 1, 4), "the replies differ between one feed and chunks");
  CHECK(lua_type(L, 3) == lua_type(L, 6), "one feed: %s; chunks: %s",
        lua_isnil(L, 3) ? "no error" : lua_tostring(L, 3),
        lua_isnil(L, 6) ? "no error" : lua_tostring(L, 6));
  CHECK(lua_isnil(L, 3) || strcmp(lua_tostring(L, 3), lua_tostring(L, 6)) == 0,
        "errors differ: \"%s\" in one feed, \"%s\" in chunks", lua_tostring(L, 3),
        lua_tostring(L, 6));
  lua_settop(L, 0);
  lua_gc(L, LUA_GCCOLLECT, 0);
  return 0;
}
