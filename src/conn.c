/* conn.c - the hiredis connection: open, authenticate, pipeline, fail cleanly. */
#include "conn.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>

#include "compat.h"

static const char *const script_names[SCRIPT_COUNT] = {"read", "write", "delete", "cleanup",
                                                         "update"};

/* A malloc'd copy of field name of the table at idx when it is a string,
 * else NULL. [-0, +0, m] */
static char *copy_field(lua_State *L, int idx, const char *name) {
  size_t len;
  const char *s;
  char *copy = NULL;
  lua_getfield(L, idx, name);
  s = lua_tolstring(L, -1, &len);
  if (s != NULL) {
    copy = malloc(len + 1);
    if (copy == NULL) compat_error(L, "rcache_live: out of memory");
    memcpy(copy, s, len + 1);
  }
  lua_pop(L, 1);
  return copy;
}

/* Field name of the table at idx as a number, or dflt. [-0, +0, -] */
static double number_field(lua_State *L, int idx, const char *name, double dflt) {
  double v;
  lua_getfield(L, idx, name);
  v = lua_isnumber(L, -1) ? (double)lua_tonumber(L, -1) : dflt;
  lua_pop(L, 1);
  return v;
}

static struct timeval seconds_to_timeval(double s) {
  struct timeval tv;
  tv.tv_sec = (time_t)floor(s);
  tv.tv_usec = (suseconds_t)((s - floor(s)) * 1e6);
  return tv;
}

void conn_init(lua_State *L, conn *c, int idx) {
  int i;
  idx = lua_absindex(L, idx);
  c->socket_path = copy_field(L, idx, "socket");
  c->host = c->socket_path ? NULL : copy_field(L, idx, "host");
  c->port = (int)number_field(L, idx, "port", 6379);
  c->username = copy_field(L, idx, "username");
  c->password = copy_field(L, idx, "password");
  c->db = (long)number_field(L, idx, "db", 0);
  c->connect_timeout = seconds_to_timeval(number_field(L, idx, "connect_timeout", 5));
  c->timeout = seconds_to_timeval(number_field(L, idx, "timeout", 5));
  if (c->socket_path)
    snprintf(c->where, sizeof c->where, "unix:%s", c->socket_path);
  else
    snprintf(c->where, sizeof c->where, "%s:%d", c->host ? c->host : "127.0.0.1", c->port);
  lua_getfield(L, idx, "scripts");
  if (lua_istable(L, -1)) {
    for (i = 0; i < SCRIPT_COUNT; i++) c->scripts[i] = copy_field(L, -1, script_names[i]);
  }
  lua_pop(L, 1);
  /* known SHAs (a cosocket cache's: it never connects here) */
  lua_getfield(L, idx, "shas");
  if (lua_istable(L, -1)) {
    for (i = 0; i < SCRIPT_COUNT; i++) {
      size_t len;
      const char *sha;
      lua_getfield(L, -1, script_names[i]);
      sha = lua_tolstring(L, -1, &len);
      if (sha != NULL && len == 40) memcpy(c->shas[i], sha, 41);
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
}

void conn_close(conn *c) {
  c->pending = 0;
  if (c->ctx) {
    redisFree(c->ctx);
    c->ctx = NULL;
  }
}

void conn_free(conn *c) {
  int i;
  conn_close(c);
  free(c->host);
  free(c->socket_path);
  free(c->username);
  if (c->password) memset(c->password, 0, strlen(c->password));
  free(c->password);
  for (i = 0; i < SCRIPT_COUNT; i++) free(c->scripts[i]);
  memset(c, 0, sizeof *c);
}

int conn_fail(lua_State *L, conn *c, const char *op, const char *cause) {
  char msg[256];
  /* cause may point into the context that conn_close frees: copy it first */
  snprintf(msg, sizeof msg, "%s", cause);
  conn_close(c);
  return compat_error(L, "rcache_live: %s: %s (%s)", op, msg, c->where);
}

/* Turns a failed context's error into a message cause: hiredis's words,
 * lower-cased, with a timeout called a timeout. */
static const char *transport_cause(const redisContext *ctx, char *buf, size_t size) {
  size_t i;
  if (ctx == NULL) return "out of memory";
  if (ctx->err == REDIS_ERR_IO &&
      (errno == EAGAIN || errno == EWOULDBLOCK || errno == ETIMEDOUT ||
       strstr(ctx->errstr, "temporarily unavailable") != NULL))
    return "timed out";
  if (ctx->err == REDIS_ERR_EOF ||
      (ctx->err == REDIS_ERR_IO &&
       (errno == EPIPE || errno == ECONNRESET || strstr(ctx->errstr, "Broken pipe") != NULL ||
        strstr(ctx->errstr, "reset by peer") != NULL)))
    return "connection closed by the server";
  snprintf(buf, size, "%s", ctx->errstr[0] ? ctx->errstr : "connection failed");
  for (i = 0; buf[i]; i++) buf[i] = (char)tolower((unsigned char)buf[i]);
  return buf;
}

/* Fails with the context's transport error. Does not return. */
static int fail_transport(lua_State *L, conn *c, const char *op) {
  char buf[160];
  return conn_fail(L, c, op, transport_cause(c->ctx, buf, sizeof buf));
}

static double monotonic_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

redisReply *conn_read(lua_State *L, conn *c, const char *op, reply_box *box) {
  void *r = NULL;
  if (c->ctx == NULL || c->pending <= 0)
    conn_fail(L, c, op, "connection was reset during the operation");
  if (redisGetReply(c->ctx, &r) != REDIS_OK || r == NULL) fail_transport(L, c, op);
  c->pending--;
  c->last_reply_ms = monotonic_ms();
  reply_box_set(box, r);
  return r;
}

void conn_append(lua_State *L, conn *c, const char *op, int argc, const char **argv,
                 const size_t *lens) {
  if (redisAppendCommandArgv(c->ctx, argc, argv, lens) != REDIS_OK) fail_transport(L, c, op);
  c->pending++;
}

int conn_is_noscript(const redisReply *reply) {
  return reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "NOSCRIPT", 8) == 0;
}

/* Queues SCRIPT LOAD for every script; returns how many were queued. */
static int append_script_loads(lua_State *L, conn *c, const char *op) {
  int i, n = 0;
  for (i = 0; i < SCRIPT_COUNT; i++) {
    const char *argv[3] = {"SCRIPT", "LOAD", c->scripts[i]};
    size_t lens[3] = {6, 4, 0};
    if (c->scripts[i] == NULL) continue;
    lens[2] = strlen(c->scripts[i]);
    conn_append(L, c, op, 3, argv, lens);
    n++;
  }
  return n;
}

/* Fails the connection for an error reply r to one of its set-up commands,
 * named by what; a server that wants a password we did not send says
 * NOAUTH, and one still reading its data says LOADING, whatever the
 * command was. Does not return. */
static int fail_setup(lua_State *L, conn *c, const char *op, const char *what,
                      const redisReply *r) {
  char cause[200];
  const char *text = r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply";
  if (strncmp(text, "NOAUTH", 6) == 0) what = "authentication required";
  if (strncmp(text, "LOADING", 7) == 0) what = "the server is not ready";
  snprintf(cause, sizeof cause, "%s: %s", what, text);
  return conn_fail(L, c, op, cause);
}

/* Reads the replies to append_script_loads, in order, and keeps the SHAs. */
static void read_script_loads(lua_State *L, conn *c, const char *op, reply_box *box) {
  int i;
  for (i = 0; i < SCRIPT_COUNT; i++) {
    redisReply *r;
    if (c->scripts[i] == NULL) continue;
    r = conn_read(L, c, op, box);
    if (r->type != REDIS_REPLY_STRING || r->len != 40) {
      char what[64];
      snprintf(what, sizeof what, "cannot load the %s script", script_names[i]);
      fail_setup(L, c, op, what, r);
    }
    memcpy(c->shas[i], r->str, 40);
    c->shas[i][40] = '\0';
  }
}

void conn_load_scripts(lua_State *L, conn *c, const char *op) {
  reply_box *box;
  conn_ensure(L, c, op);
  box = reply_box_new(L);
  append_script_loads(L, c, op);
  read_script_loads(L, c, op, box);
  reply_box_set(box, NULL);
  lua_pop(L, 1);
}

/* Opens the socket itself, with connect_timeout. */
static void open_socket(lua_State *L, conn *c, const char *op) {
  if (c->socket_path)
    c->ctx = redisConnectUnixWithTimeout(c->socket_path, c->connect_timeout);
  else
    c->ctx = redisConnectWithTimeout(c->host ? c->host : "127.0.0.1", c->port, c->connect_timeout);
  if (c->ctx == NULL || c->ctx->err) fail_transport(L, c, op);
  if (redisSetTimeout(c->ctx, c->timeout) != REDIS_OK) fail_transport(L, c, op);
}

/* Queues AUTH and SELECT as the settings ask; returns how many. */
static int append_handshake(lua_State *L, conn *c, const char *op) {
  int n = 0;
  if (c->password || c->username) {
    /* a username alone is an ACL user with nopass: any password will do */
    const char *password = c->password ? c->password : "";
    const char *argv[3] = {"AUTH", c->username, password};
    size_t lens[3] = {4, 0, 0};
    int argc = 2;
    if (c->username) {
      lens[1] = strlen(c->username);
      lens[2] = strlen(password);
      argc = 3;
    } else {
      argv[1] = password;
      lens[1] = strlen(password);
    }
    conn_append(L, c, op, argc, argv, lens);
    n++;
  }
  if (c->db != 0) {
    char db[24];
    const char *argv[2] = {"SELECT", db};
    size_t lens[2] = {6, 0};
    lens[1] = (size_t)snprintf(db, sizeof db, "%ld", c->db);
    conn_append(L, c, op, 2, argv, lens);
    n++;
  }
  return n;
}

/* Reads the handshake replies; any error reply fails the connection. */
static void read_handshake(lua_State *L, conn *c, const char *op, int n, reply_box *box) {
  int i;
  for (i = 0; i < n; i++) {
    redisReply *r = conn_read(L, c, op, box);
    if (r->type == REDIS_REPLY_ERROR)
      fail_setup(L, c, op, (c->password || c->username) && i == 0 ? "authentication failed" : "SELECT failed", r);
  }
}

/* A connection that answered less than this long ago is taken to be open
 * without asking the kernel: back-to-back operations save a poll() each
 * (a third of their system calls). A server closing it within that window
 * is the same race as one closing it between the poll and the write: the
 * operation fails cleanly, as "connection closed by the server". */
#define CONN_FRESH_MS 1.0

/* True if the idle connection has something to read: with no reply
 * pending, that can only be the server closing it (restart, CLIENT KILL,
 * its idle timeout). Never raises. */
static int idle_conn_closed(const conn *c) {
  struct pollfd p;
  p.fd = c->ctx->fd;
  p.events = POLLIN;
  p.revents = 0;
  return poll(&p, 1, 0) != 0;
}

void conn_ensure(lua_State *L, conn *c, const char *op) {
  int handshake;
  reply_box *box;
  /* a connection the server closed while idle is replaced before anything
   * is sent on it, so the first call after a restart succeeds */
  if (c->ctx && c->pending == 0 &&
      (monotonic_ms() - c->last_reply_ms < CONN_FRESH_MS || !idle_conn_closed(c)))
    return;
  conn_close(c);
  box = reply_box_new(L);
  open_socket(L, c, op);
  handshake = append_handshake(L, c, op);
  append_script_loads(L, c, op);
  read_handshake(L, c, op, handshake, box);
  read_script_loads(L, c, op, box);
  reply_box_set(box, NULL);
  lua_pop(L, 1);
}
