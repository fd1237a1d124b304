/* reply.c - reply boxes and redisReply -> Lua conversion. */
#include "reply.h"

#include <lauxlib.h>

#include "compat.h"

#define REPLY_BOX_MT "rcache_live.reply"

/* __gc: frees the held reply, if any. */
static int reply_box_gc(lua_State *L) {
  reply_box *box = lua_touserdata(L, 1);
  reply_box_set(box, NULL);
  return 0;
}

void reply_open(lua_State *L) {
  if (luaL_newmetatable(L, REPLY_BOX_MT)) {
    lua_pushcfunction(L, reply_box_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
}

reply_box *reply_box_new(lua_State *L) {
  reply_box *box = compat_newuserdata(L, sizeof *box);
  box->reply = NULL;
  luaL_getmetatable(L, REPLY_BOX_MT);
  lua_setmetatable(L, -2);
  return box;
}

void reply_box_set(reply_box *box, redisReply *r) {
  if (box->reply) freeReplyObject(box->reply);
  box->reply = r;
}

void reply_push(lua_State *L, const redisReply *r) {
  size_t i;
  luaL_checkstack(L, 3, "rcache_live: reply nested too deeply");
  switch (r->type) {
    case REDIS_REPLY_INTEGER:
      compat_pushint64(L, r->integer);
      break;
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
      lua_pushlstring(L, r->str, r->len);
      break;
    case REDIS_REPLY_ARRAY:
      lua_createtable(L, (int)r->elements, 0);
      for (i = 0; i < r->elements; i++) {
        reply_push(L, r->element[i]);
        lua_rawseti(L, -2, (int)i + 1);
      }
      break;
    case REDIS_REPLY_ERROR:
      lua_createtable(L, 0, 1);
      lua_pushlstring(L, r->str, r->len);
      lua_setfield(L, -2, "err");
      break;
    default: /* REDIS_REPLY_NIL */
      lua_pushboolean(L, 0);
      break;
  }
}
