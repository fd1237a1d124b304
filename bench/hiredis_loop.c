/* hiredis_loop: the floor for a hiredis-based client. A blocking hiredis
 * context runs one command N times, P at a time (append P, then read P
 * replies), and prints the throughput. No Lua, no JSON.
 *
 *   hiredis_loop TARGET N P COMMAND [ARG...]
 *
 * TARGET is a unix socket path (it contains a '/') or HOST:PORT. Any
 * argument containing __rand_int__ gets it replaced by a key number
 * (0..99999, in turn), as in redis-benchmark -r 100000. The payload is passed
 * as an argument, byte for byte. Prints "<ops/s> ops/s".
 *
 * cc -O2 -o build/bench/hiredis_loop bench/hiredis_loop.c -lhiredis
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KEYSPACE 100000
#define MARK "__rand_int__"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static redisContext *connect_to(const char *target) {
  if (strchr(target, '/')) return redisConnectUnix(target);
  const char *colon = strrchr(target, ':');
  if (!colon) return NULL;
  char host[256];
  snprintf(host, sizeof host, "%.*s", (int)(colon - target), target);
  return redisConnect(host, atoi(colon + 1));
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: %s TARGET N P COMMAND [ARG...]\n", argv[0]);
    return 2;
  }
  long n = atol(argv[2]), p = atol(argv[3]);
  int nargs = argc - 4;
  char **templ = argv + 4;
  if (n < 1 || p < 1) {
    fprintf(stderr, "hiredis_loop: N and P must be >= 1\n");
    return 2;
  }
  redisContext *c = connect_to(argv[1]);
  if (!c || c->err) {
    fprintf(stderr, "hiredis_loop: cannot connect to %s: %s\n", argv[1], c ? c->errstr : "bad target");
    return 1;
  }

  /* The command's arguments; the ones with the mark are rewritten per call. */
  const char **args = malloc(nargs * sizeof *args);
  size_t *lens = malloc(nargs * sizeof *lens);
  char (*keys)[256] = calloc(nargs, sizeof *keys);
  for (int i = 0; i < nargs; i++) {
    args[i] = templ[i];
    lens[i] = strlen(templ[i]);
  }

  double start = now();
  long done = 0, key = 0;
  while (done < n) {
    long batch = n - done < p ? n - done : p;
    for (long i = 0; i < batch; i++, key = (key + 1) % KEYSPACE) {
      for (int a = 0; a < nargs; a++) {
        char *at = strstr(templ[a], MARK);
        if (!at) continue;
        int len = snprintf(keys[a], sizeof keys[a], "%.*s%ld%s", (int)(at - templ[a]), templ[a], key,
                           at + strlen(MARK));
        args[a] = keys[a];
        lens[a] = (size_t)len;
      }
      redisAppendCommandArgv(c, nargs, args, lens);
    }
    for (long i = 0; i < batch; i++) {
      redisReply *r;
      if (redisGetReply(c, (void **)&r) != REDIS_OK) {
        fprintf(stderr, "hiredis_loop: %s\n", c->errstr);
        return 1;
      }
      if (r->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "hiredis_loop: %s\n", r->str);
        return 1;
      }
      freeReplyObject(r);
    }
    done += batch;
  }
  double elapsed = now() - start;
  printf("%.2f ops/s\n", n / elapsed);
  redisFree(c);
  free(args);
  free(lens);
  free(keys);
  return 0;
}
