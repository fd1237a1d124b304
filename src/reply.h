/*
 * reply.h - hiredis replies held by the Lua stack, and turned into Lua values.
 *
 * A reply box is a small userdata that owns one redisReply: reading a new
 * reply into it frees the old one, and its __gc frees the last one, so a
 * Lua error raised while a reply is being converted leaks nothing. Each
 * operation uses a box of its own, so a finalizer that runs another
 * operation in the middle cannot free a reply still in use.
 */
#ifndef RCACHE_REPLY_H
#define RCACHE_REPLY_H

#include <hiredis/hiredis.h>
#include <lua.h>

typedef struct reply_box {
  redisReply *reply;
} reply_box;

/* Registers the box metatable. [-0, +0, m] */
void reply_open(lua_State *L);

/* Pushes a new, empty box. [-0, +1, m] */
reply_box *reply_box_new(lua_State *L);

/* Replaces the box's reply by r (which the box now owns). Never raises. */
void reply_box_set(reply_box *box, redisReply *r);

/* Pushes r as a Lua value: nil -> false, integer -> integer, status and
 * string -> string, array -> sequence, error -> { err = message }.
 * [-0, +1, m] */
void reply_push(lua_State *L, const redisReply *r);

#endif
