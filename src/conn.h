/*
 * conn.h - one blocking hiredis connection with the settings to (re)open it.
 *
 * A connection is opened on first use and again after any transport
 * failure: a context that saw an I/O error, a timeout or a protocol error
 * is freed at once (a late reply must never be read as the answer to the
 * next command), and the next command reconnects.
 *
 * Functions marked "raises" report failures as
 *   "rcache_live: <op>: <cause> (<where>)"
 * after the connection has been released, so nothing is left half-read.
 */
#ifndef RCACHE_CONN_H
#define RCACHE_CONN_H

#include <stddef.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>
#include <lua.h>

#include "reply.h"

/* The server-side scripts the cache uses; each is loaded on connect. */
enum conn_script { SCRIPT_READ, SCRIPT_WRITE, SCRIPT_DELETE, SCRIPT_CLEANUP, SCRIPT_UPDATE, SCRIPT_COUNT };

typedef struct conn {
  redisContext *ctx;      /* NULL until connected, and after close or a failure */
  int pending;            /* commands queued or sent whose replies are not read yet */
  double last_reply_ms;   /* when the last reply arrived (CLOCK_MONOTONIC) */
  char *host;             /* TCP host, or NULL when socket_path is set */
  int port;
  char *socket_path;      /* unix socket path, or NULL */
  char *username;         /* NULL: AUTH with the password alone */
  char *password;         /* NULL: no AUTH */
  long db;
  struct timeval connect_timeout, timeout;
  char *scripts[SCRIPT_COUNT];     /* script bodies */
  char shas[SCRIPT_COUNT][41];     /* their SHA1s as SCRIPT LOAD returned them */
  char where[96];                  /* "host:port" or "unix:path", for messages */
} conn;

/* Reads the connection settings from the table at index idx (fields host,
 * port, socket, username, password, db, connect_timeout, timeout and the
 * table scripts) into c, copying every string. Does not connect.
 * [-0, +0, m] raises only on memory errors (after which conn_free is safe). */
void conn_init(lua_State *L, conn *c, int idx);

/* Closes the connection and frees everything conn_init copied. Safe to call
 * twice and on a zeroed struct. Never raises. */
void conn_free(conn *c);

/* Closes the connection, dropping unread replies; the settings stay, so
 * the next command reconnects. Never raises. */
void conn_close(conn *c);

/* Connects if not connected: AUTH, SELECT and SCRIPT LOAD in one round
 * trip. A connection left with unread replies (an operation that raised
 * half-way, or one interrupted by a finalizer that used the same cache), or
 * one the server closed while it was idle, is opened again.
 * [-0, +0, e] raises on failure. */
void conn_ensure(lua_State *L, conn *c, const char *op);

/* Queues one command (argv/lens, argc items) in the output buffer; nothing is
 * sent until conn_read. [-0, +0, e] raises on failure. */
void conn_append(lua_State *L, conn *c, const char *op, int argc, const char **argv,
                 const size_t *lens);

/* Sends what is queued and reads the next reply into box (which owns it
 * from then on). An error reply from Redis is returned, not raised.
 * [-0, +0, e] raises on transport failure, or if the connection was reset
 * since the command was queued. */
redisReply *conn_read(lua_State *L, conn *c, const char *op, reply_box *box);

/* Loads the scripts again (after a NOSCRIPT reply). [-0, +0, e] */
void conn_load_scripts(lua_State *L, conn *c, const char *op);

/* True if reply is the error Redis gives for an unknown script SHA. */
int conn_is_noscript(const redisReply *reply);

/* Raises "rcache_live: <op>: <cause> (<where>)" after closing the
 * connection. Does not return. */
int conn_fail(lua_State *L, conn *c, const char *op, const char *cause);

#endif
