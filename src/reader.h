/*
 * reader.h - a RESP reader for transports that do their own socket I/O
 * (nginx cosockets): the bytes read go in, whole replies come out, parsed
 * by hiredis's reader exactly as the blocking connection parses them.
 *
 * From Lua (core.reader() makes one):
 *   reader:feed(bytes)      buffers bytes read from the socket
 *   reader:ready()          true once a whole reply is held; false if more
 *                           bytes are needed; nil, cause on a protocol error
 *   reader:take()           the held reply as a Lua value (see reply_push)
 *   reader:noscript()       whether the held reply is a NOSCRIPT error
 */
#ifndef RCACHE_READER_H
#define RCACHE_READER_H

#include <hiredis/hiredis.h>
#include <lua.h>

/* Registers the reader metatable and sets core.reader on the module table
 * on top of the stack. [-0, +0, m] */
void reader_open(lua_State *L);

/* The reply held by the reader at idx, which no longer holds it: the caller
 * owns it. [-0, +0, v] raises if idx is no reader or it holds no reply. */
redisReply *reader_take(lua_State *L, int idx);

#endif
