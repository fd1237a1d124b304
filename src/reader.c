/* reader.c - the RESP reader userdata (see reader.h). */
#include "reader.h"

#include <lauxlib.h>

#include "compat.h"
#include "conn.h"
#include "reply.h"

#define READER_MT "rcache_live.reader"

typedef struct reader {
  redisReader *r;  /* NULL once collected */
  redisReply *held; /* a whole reply not taken yet, or NULL */
} reader;

static reader *check_reader(lua_State *L, int idx) {
  reader *rd = luaL_checkudata(L, idx, READER_MT);
  if (rd->r == NULL) compat_error(L, "rcache_live: the reader was freed");
  return rd;
}

static int reader_new(lua_State *L) {
  reader *rd = compat_newuserdata(L, sizeof *rd);
  rd->r = NULL;
  rd->held = NULL;
  luaL_getmetatable(L, READER_MT);
  lua_setmetatable(L, -2);
  rd->r = redisReaderCreate();
  if (rd->r == NULL) compat_error(L, "rcache_live: out of memory");
  return 1;
}

static int reader_gc(lua_State *L) {
  reader *rd = luaL_checkudata(L, 1, READER_MT);
  if (rd->held) freeReplyObject(rd->held);
  if (rd->r) redisReaderFree(rd->r);
  rd->held = NULL;
  rd->r = NULL;
  return 0;
}

static int reader_feed(lua_State *L) {
  reader *rd = check_reader(L, 1);
  size_t len;
  const char *s = luaL_checklstring(L, 2, &len);
  if (redisReaderFeed(rd->r, s, len) != REDIS_OK) compat_error(L, "rcache_live: out of memory");
  return 0;
}

static int reader_ready(lua_State *L) {
  reader *rd = check_reader(L, 1);
  void *reply = NULL;
  if (rd->held == NULL) {
    if (redisReaderGetReply(rd->r, &reply) != REDIS_OK) {
      lua_pushnil(L);
      lua_pushfstring(L, "protocol error: %s", rd->r->errstr);
      return 2;
    }
    rd->held = reply;
  }
  lua_pushboolean(L, rd->held != NULL);
  return 1;
}

redisReply *reader_take(lua_State *L, int idx) {
  reader *rd = check_reader(L, idx);
  redisReply *r = rd->held;
  if (r == NULL) compat_error(L, "rcache_live: the reader holds no reply");
  rd->held = NULL;
  return r;
}

static int reader_take_value(lua_State *L) {
  reply_box *box;
  check_reader(L, 1);
  box = reply_box_new(L); /* owns the reply while it is converted */
  reply_box_set(box, reader_take(L, 1));
  reply_push(L, box->reply);
  reply_box_set(box, NULL);
  return 1;
}

static int reader_noscript(lua_State *L) {
  reader *rd = check_reader(L, 1);
  const redisReply *r = rd->held;
  lua_pushboolean(L, r != NULL && conn_is_noscript(r));
  return 1;
}

void reader_open(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"feed", reader_feed},
      {"ready", reader_ready},
      {"take", reader_take_value},
      {"noscript", reader_noscript},
      {NULL, NULL},
  };
  if (luaL_newmetatable(L, READER_MT)) {
    lua_pushcfunction(L, reader_gc);
    lua_setfield(L, -2, "__gc");
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, reader_new);
  lua_setfield(L, -2, "reader");
}
