/*
 * json.c - exact JSON <-> Lua codec; yajl 2.1 parses (see json.h).
 *
 * Encoding walks the value with raw access only (lua_next, lua_rawgeti) and
 * writes the text straight into one growing buffer (the walk already knows
 * where every comma and bracket goes, so a generator's state machine would
 * only cost time); decoding lets yajl_parse call back into code that builds
 * the Lua value directly on the stack. Numbers never go through yajl's own
 * conversions: they are formatted and parsed here, in the "C" locale.
 *
 * Memory: the output buffer and the yajl parser live in a "box" userdata
 * whose __gc frees them, so a Lua error (memory error inside a callback,
 * say) leaks nothing. One box per Lua state is reused from call to call (see
 * box_acquire): its buffer is kept, and the parser allocates from the box's
 * own arena, so a call on a record makes no malloc.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* newlocale, strtod_l */
#endif

#include <float.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_parse.h>

#include "compat.h"
#include "json.h"

#define JSON_ARRAY_MT "rcache_live.array"   /* registry key, public */
#define JSON_BOX_MT "rcache_live.json.box"  /* registry key, private */
#define JSON_NUMBUF 64                      /* text of one number */
#define JSON_CAUSEBUF 160                   /* cause of an encode error */
#define JSON_PATHBUF 200                    /* path where it happened */
#define JSON_MSGBUF (JSON_CAUSEBUF + JSON_PATHBUF + 8) /* "cause (at path)" */
#define JSON_KEYSHOW 32                     /* key bytes shown in a path */

#if defined(__GNUC__) || defined(__clang__)
#define JSON_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define JSON_PRINTF(f, a)
#endif

/*
** {======================================================================
** Shared helpers: locale, boxes, array metatable
** =======================================================================
*/

/* The "C" LC_NUMERIC locale, created on first use and never freed, or
 * (locale_t)0 if it cannot be created. Thread safe. Never raises. */
static locale_t json_c_locale(void) {
  static locale_t c_locale = (locale_t)0;
#if defined(__GNUC__) || defined(__clang__)
  locale_t loc = __atomic_load_n(&c_locale, __ATOMIC_ACQUIRE);
  if (loc == (locale_t)0) {
    locale_t expected = (locale_t)0;
    loc = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    if (loc != (locale_t)0 &&
        !__atomic_compare_exchange_n(&c_locale, &expected, loc, 0,
                                     __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
      freelocale(loc); /* another thread won the race */
      loc = expected;
    }
  }
  return loc;
#else
  if (c_locale == (locale_t)0) c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
  return c_locale;
#endif
}

/* Raises "not enough memory". Does not return. */
static int json_nomem(lua_State *L) {
  lua_pushliteral(L, "not enough memory");
  return lua_error(L);
}

/* Bytes of parser memory a box hands out itself before falling back to
 * malloc: a decode of a record needs about 1 KB (yajl's handle, lexer,
 * buffers and state stack), so most decodes make no malloc at all. */
#define JSON_ARENA 4096
#define JSON_ARENA_ALIGN 16

/* What one encode or decode works with: yajl's handles, and the memory
 * yajl's parser allocates from (lauxlib's newbox idea: the box is a
 * userdata whose __gc frees everything, so an error leaks nothing). One box
 * per Lua state is kept in the registry and reused, call after call, so a
 * call allocates no handles; a call that finds it busy (a finalizer running
 * mid-call that encodes, or a call a memory error cut short) makes a new
 * one and keeps that instead. */
typedef struct {
  int busy;           /* a call is using it */
  char *out;          /* encoder output (malloc), kept between calls */
  size_t cap;         /* its size */
  yajl_handle parser; /* decoder, one call only (yajl cannot reset a parser) */
  size_t used;        /* bytes of arena handed out */
  union {             /* the parser's memory; aligned for any object */
    long double ld;
    long long ll;
    void *p;
    unsigned char bytes[JSON_ARENA];
  } arena;
} json_box;

/* Frees every handle still in b and clears it; safe to call twice.
 * Never raises. */
static void box_release(json_box *b) {
  free(b->out);
  if (b->parser != NULL) yajl_free(b->parser);
  b->out = NULL;
  b->cap = 0;
  b->parser = NULL;
  b->used = 0;
}

/* __gc of a box: box_release. [-0, +0, -] */
static int box_gc(lua_State *L) {
  json_box *b = (json_box *)lua_touserdata(L, 1);
  if (b != NULL) box_release(b);
  return 0;
}

/* Pushes a new, empty box whose __gc frees what it holds. [-0, +1, m] */
static json_box *box_push(lua_State *L) {
  json_box *b = (json_box *)compat_newuserdata(L, sizeof *b);
  b->busy = 0;
  b->out = NULL; /* consistent before __gc can run */
  b->cap = 0;
  b->parser = NULL;
  b->used = 0;
  if (luaL_newmetatable(L, JSON_BOX_MT)) {
    lua_pushcfunction(L, box_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  return b;
}

static const char json_box_key = 'b'; /* registry key (its address): the kept box */

/* Pushes the Lua state's kept box, marked busy; the stack slot keeps it
 * alive for the call even if another call replaces it. [-0, +1, m] */
static json_box *box_acquire(lua_State *L) {
  json_box *b;
  lua_pushlightuserdata(L, (void *)&json_box_key);
  lua_rawget(L, LUA_REGISTRYINDEX);
  b = (json_box *)lua_touserdata(L, -1);
  if (b == NULL || b->busy) {
    lua_pop(L, 1);
    b = box_push(L);
    lua_pushlightuserdata(L, (void *)&json_box_key);
    lua_pushvalue(L, -2);
    lua_rawset(L, LUA_REGISTRYINDEX);
  }
  b->busy = 1;
  return b;
}

/* Ends a call with b: frees its parser, empties its arena; keeps its
 * output buffer unless it grew past JSON_KEEP bytes (a one-off huge
 * document should not stay in memory). Never raises. */
#define JSON_KEEP 65536
static void box_done(json_box *b) {
  if (b->parser != NULL) yajl_free(b->parser);
  b->parser = NULL;
  b->used = 0;
  if (b->cap > JSON_KEEP) {
    free(b->out);
    b->out = NULL;
    b->cap = 0;
  }
  b->busy = 0;
}

/* yajl_alloc_funcs over a box's arena: blocks carry their size in a header
 * (for realloc); free and realloc of the last block give back or grow in
 * place. What does not fit comes from malloc. Never raise (NULL: no memory). */
static int arena_owns(json_box *b, void *p) {
  uintptr_t a = (uintptr_t)b->arena.bytes, x = (uintptr_t)p;
  return x >= a && x < a + JSON_ARENA;
}

static void *arena_malloc(void *ctx, size_t sz) {
  json_box *b = (json_box *)ctx;
  size_t need = (sz + JSON_ARENA_ALIGN - 1) / JSON_ARENA_ALIGN * JSON_ARENA_ALIGN;
  unsigned char *blk;
  if (sz > JSON_ARENA || JSON_ARENA - b->used < need + JSON_ARENA_ALIGN) return malloc(sz);
  blk = b->arena.bytes + b->used;
  memcpy(blk, &need, sizeof need); /* header: the block's size */
  b->used += need + JSON_ARENA_ALIGN;
  return blk + JSON_ARENA_ALIGN;
}

static size_t arena_size(void *p) {
  size_t n;
  memcpy(&n, (unsigned char *)p - JSON_ARENA_ALIGN, sizeof n);
  return n;
}

static int arena_is_last(json_box *b, void *p) {
  return (unsigned char *)p + arena_size(p) == b->arena.bytes + b->used;
}

static void arena_free(void *ctx, void *p) {
  json_box *b = (json_box *)ctx;
  if (p == NULL) return;
  if (!arena_owns(b, p)) {
    free(p);
    return;
  }
  if (arena_is_last(b, p)) b->used -= arena_size(p) + JSON_ARENA_ALIGN;
}

static void *arena_realloc(void *ctx, void *p, size_t sz) {
  json_box *b = (json_box *)ctx;
  size_t old, need;
  void *q;
  if (p == NULL) return arena_malloc(ctx, sz);
  if (!arena_owns(b, p)) return realloc(p, sz);
  old = arena_size(p);
  if (sz <= old) return p;
  need = (sz + JSON_ARENA_ALIGN - 1) / JSON_ARENA_ALIGN * JSON_ARENA_ALIGN;
  if (arena_is_last(b, p) && sz <= JSON_ARENA &&
      (size_t)((unsigned char *)p - b->arena.bytes) + need <= JSON_ARENA) {
    b->used += need - old;
    memcpy((unsigned char *)p - JSON_ARENA_ALIGN, &need, sizeof need);
    return p;
  }
  q = arena_malloc(ctx, sz);
  if (q == NULL) return NULL;
  memcpy(q, p, old);
  arena_free(ctx, p);
  return q;
}

static const char json_array_key = 'a'; /* registry key (its address): the array metatable */

/* Pushes the registry array metatable ({__jsontype = "array"}), creating it
 * on first use. It is registered under its public name and, for a cheaper
 * look-up on every decode, under the address of json_array_key.
 * [-0, +1, m] */
static void push_array_mt(lua_State *L) {
  lua_pushlightuserdata(L, (void *)&json_array_key);
  lua_rawget(L, LUA_REGISTRYINDEX);
  if (lua_istable(L, -1)) return;
  lua_pop(L, 1);
  lua_getfield(L, LUA_REGISTRYINDEX, JSON_ARRAY_MT);
  if (!lua_istable(L, -1)) {
    lua_pop(L, 1);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "array");
    lua_setfield(L, -2, "__jsontype");
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, JSON_ARRAY_MT);
  }
  lua_pushlightuserdata(L, (void *)&json_array_key);
  lua_pushvalue(L, -2);
  lua_rawset(L, LUA_REGISTRYINDEX);
}

/* idx as an index that does not move when the stack grows. [-0, +0, -] */
static int json_absindex(lua_State *L, int idx) {
  return (idx > 0 || idx <= LUA_REGISTRYINDEX) ? idx : lua_gettop(L) + idx + 1;
}

/* }====================================================================== */

/*
** {======================================================================
** Number text (no Lua calls, never raise)
** =======================================================================
*/

/* Writes v in decimal to buf (at least 21 bytes) and NUL-terminates it;
 * returns the length. */
static size_t num_format_int(char *buf, long long v) {
  char tmp[24];
  size_t n = 0, i = 0;
  unsigned long long u = (unsigned long long)v;
  if (v < 0) u = 0ULL - u; /* magnitude, also of LLONG_MIN */
  do {
    tmp[n++] = (char)('0' + (int)(u % 10));
    u /= 10;
  } while (u != 0);
  if (v < 0) buf[i++] = '-';
  while (n > 0) buf[i++] = tmp[--n];
  buf[i] = '\0';
  return i;
}

/* In the %g text buf[0..n) of a finite number, replaces the current locale's
 * decimal point (whatever bytes sit between the integer and the fraction
 * digits) by '.'; returns the new length. */
static size_t num_fix_point(char *buf, size_t n) {
  size_t i = 0, j;
  if (i < n && buf[i] == '-') i++;
  while (i < n && buf[i] >= '0' && buf[i] <= '9') i++;
  if (i == n || buf[i] == '.' || buf[i] == 'e' || buf[i] == 'E') return n;
  j = i;
  while (j < n && !(buf[j] >= '0' && buf[j] <= '9')) j++;
  buf[i] = '.';
  memmove(buf + i + 1, buf + j, n - j + 1); /* with the NUL */
  return n - (j - i - 1);
}

/* Fast path of num_format_float for short decimals (0.1, 19.99, 50.9375):
 * if x is the double nearest to m / 10^k for an integer |m| < 10^15 and
 * 1e-4 <= |x| < 1e15, then "%.15g" prints exactly that decimal in fixed
 * notation, which this writes without snprintf/strtod. m / 10^k, both exact,
 * is rounded correctly by IEEE division, so the check is exact (hence only
 * when FLT_EVAL_METHOD is 0: no double rounding). Returns the length, or 0
 * when x is not such a decimal. */
static size_t num_format_decimal(char *buf, double x) {
#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD == 0
  static const double pow10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7,
                                 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};
  double a = x < 0 ? -x : x;
  int k;
  if (!(a >= 1e-4 && a < 1e15)) return 0;
  for (k = 0; k < 16; k++) {
    double t = a * pow10[k];
    long long m;
    char digits[24];
    size_t nd, n = 0, i;
    if (t >= 1e15) return 0;
    if (t != (double)(long long)t) continue;
    m = (long long)t;
    if ((double)m / pow10[k] != a) return 0;
    while (k > 0 && m % 10 == 0) { /* as %g: no trailing zeros */
      m /= 10;
      k--;
    }
    nd = num_format_int(digits, m); /* m >= 1 here */
    if (x < 0) buf[n++] = '-';
    if (nd <= (size_t)k) { /* 0.000ddd */
      buf[n++] = '0';
      buf[n++] = '.';
      for (i = nd; i < (size_t)k; i++) buf[n++] = '0';
      memcpy(buf + n, digits, nd);
      n += nd;
    } else {
      memcpy(buf + n, digits, nd - (size_t)k);
      n += nd - (size_t)k;
      buf[n++] = '.';
      if (k == 0) {
        buf[n++] = '0';
      } else {
        memcpy(buf + n, digits + nd - (size_t)k, (size_t)k);
        n += (size_t)k;
      }
    }
    buf[n] = '\0';
    return n;
  }
  return 0;
#else
  (void)buf;
  (void)x;
  return 0;
#endif
}

/* Writes to buf (JSON_NUMBUF bytes) the first of %.15g, %.16g, %.17g of x
 * that reads back as x, with '.' as decimal point, plus ".0" when the text
 * would otherwise read back as an integer. Non-finite x gives "inf", "-inf"
 * or "nan" (for messages only). Returns the length. */
static size_t num_format_float(char *buf, double x, locale_t loc) {
  size_t n = num_format_decimal(buf, x);
  int prec;
  if (n > 0) return n;
  if (!isfinite(x)) {
    strcpy(buf, isnan(x) ? "nan" : x > 0 ? "inf" : "-inf");
    return strlen(buf);
  }
  for (prec = 15; prec <= 17; prec++) {
    n = num_fix_point(buf, (size_t)snprintf(buf, JSON_NUMBUF, "%.*g", prec, x));
    if (prec == 17 || strtod_l(buf, NULL, loc) == x) break;
  }
  if (strpbrk(buf, ".e") == NULL) { /* "2" or "-0" */
    buf[n++] = '.';
    buf[n++] = '0';
    buf[n] = '\0';
  }
  return n;
}

/* Clinger's fast path: the value of the JSON number token s[0..len) ('-'?
 * int ('.' frac)? ([eE] [+-]? exp)?, as yajl checked) when all its digits
 * form an integer m <= 2^53 and its decimal exponent e is within +-22; then
 * m and 10^|e| are exact and one correctly rounded multiplication or division
 * gives what strtod gives (only when FLT_EVAL_METHOD is 0: no double
 * rounding). Stores it in *x and returns 1, else returns 0. */
static int num_parse_decimal(const char *s, size_t len, double *x) {
#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD == 0
  static const double pow10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7,
                                 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
  const unsigned long long max = 1ULL << 53;
  unsigned long long m = 0;
  int e = 0, exp = 0, exp_neg = 0, in_frac = 0;
  size_t i = 0;
  int neg = (len > 0 && s[0] == '-');
  for (i = (size_t)neg; i < len; i++) {
    unsigned d;
    if (s[i] == '.') {
      in_frac = 1;
      continue;
    }
    if (s[i] == 'e' || s[i] == 'E') break;
    d = (unsigned)(s[i] - '0');
    if (m > (max - d) / 10) return 0;
    m = m * 10 + d;
    e -= in_frac;
  }
  if (i < len) { /* exponent */
    i++;
    if (i < len && (s[i] == '+' || s[i] == '-')) exp_neg = (s[i++] == '-');
    for (; i < len; i++) {
      if (exp > 1000) return 0;
      exp = exp * 10 + (s[i] - '0');
    }
    e += exp_neg ? -exp : exp;
  }
  if (e < -22 || e > 22) return 0;
  *x = e >= 0 ? (double)m * pow10[e] : (double)m / pow10[-e];
  if (neg) *x = -*x;
  return 1;
#else
  (void)s;
  (void)len;
  (void)x;
  return 0;
#endif
}

/* Parses the magnitude of the JSON integer token s[0..len) ('-'? digits, as
 * yajl checked) into *mag and its sign into *neg. Returns 0 if the magnitude
 * overflows unsigned long long. */
static int num_parse_int(const char *s, size_t len, int *neg, unsigned long long *mag) {
  unsigned long long m = 0;
  size_t i = 0;
  *neg = (len > 0 && s[0] == '-');
  for (i = (size_t)*neg; i < len; i++) {
    unsigned d = (unsigned)(s[i] - '0');
    if (m > (~0ULL - d) / 10) return 0;
    m = m * 10 + d;
  }
  *mag = m;
  return 1;
}

/* }====================================================================== */

/*
** {======================================================================
** Encoder
** =======================================================================
*/

/* How the encoder got from the table at one level to the value below it. */
typedef struct {
  int tbl;         /* stack index of the table at this level */
  int key;         /* stack index of the current object key, 0 in an array */
  long long index; /* current array index when key == 0 */
} json_step;

typedef struct {
  lua_State *L;
  json_box *box;   /* owns the output buffer */
  char *out;       /* box->out, cached */
  size_t len, cap; /* bytes written, box->cap */
  locale_t loc;
  /* path[d] (1 <= d <= depth): table at level d and its current child;
   * a value at depth d is a child of path[d].tbl. */
  json_step path[JSON_MAX_DEPTH + 1];
  char msg[JSON_MSGBUF]; /* cause of failure */
} json_encoder;

static int enc_value(json_encoder *e, int idx, int depth);

/* Makes room for n more output bytes. Raises a memory error (the box owns
 * the buffer). */
static void out_grow(json_encoder *e, size_t n) {
  size_t cap = e->cap < 256 ? 256 : e->cap;
  char *p;
  if (n > ((size_t)-1) / 2 - e->len) json_nomem(e->L);
  while (cap - e->len < n) cap *= 2;
  p = (char *)realloc(e->box->out, cap);
  if (p == NULL) json_nomem(e->L);
  e->box->out = e->out = p;
  e->box->cap = e->cap = cap;
}

#define OUT_ROOM(e, n) \
  do { if ((e)->cap - (e)->len < (size_t)(n)) out_grow((e), (n)); } while (0)

/* Appends n bytes. [-0, +0, m] */
static void out_put(json_encoder *e, const char *s, size_t n) {
  OUT_ROOM(e, n);
  memcpy(e->out + e->len, s, n);
  e->len += n;
}

/* Appends one byte. [-0, +0, m] */
static void out_char(json_encoder *e, char c) {
  OUT_ROOM(e, 1);
  e->out[e->len++] = c;
}

/* How each byte is written inside a JSON string: 0 as it is, else the
 * letter of its two-character escape, or 'u' for \u00XX (the escapes
 * yajl's generator writes, so the text is the same). */
static const char out_escape[256] = {
    'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'b', 't', 'n', 'u', 'f', 'r', 'u', 'u',
    'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u',
    0, 0, '"', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, '\\', 0, 0, 0};

/* Appends s[0..len) as a JSON string: quoted, control characters, quote
 * and backslash escaped, every other byte as it is. [-0, +0, m] */
static void out_string(json_encoder *e, const char *s, size_t len) {
  static const char hex[] = "0123456789abcdef";
  size_t i = 0, run;
  if (len > ((size_t)-1) / 2) json_nomem(e->L);
  OUT_ROOM(e, len + 2);
  e->out[e->len++] = '"';
  while (i < len) {
    unsigned char c;
    for (run = i; run < len && out_escape[(unsigned char)s[run]] == 0; run++) {
    }
    if (run > i) {
      OUT_ROOM(e, run - i + 1);
      memcpy(e->out + e->len, s + i, run - i);
      e->len += run - i;
      i = run;
      if (i == len) break;
    }
    c = (unsigned char)s[i++];
    OUT_ROOM(e, 7 + (len - i));
    e->out[e->len++] = '\\';
    if (out_escape[c] == 'u') {
      memcpy(e->out + e->len, "u00", 3);
      e->out[e->len + 3] = hex[c >> 4];
      e->out[e->len + 4] = hex[c & 15];
      e->len += 5;
    } else {
      e->out[e->len++] = out_escape[c];
    }
  }
  out_char(e, '"');
}

/* Appends n bytes of s to the path text buf at *pos, truncating it with "..."
 * once JSON_PATHBUF is full. Never raises. */
static void path_append(char *buf, size_t *pos, const char *s, size_t n) {
  size_t room;
  if (*pos >= JSON_PATHBUF - 4) return; /* already truncated */
  room = JSON_PATHBUF - 4 - *pos;       /* keep space for "...\0" */
  if (n > room) {
    memcpy(buf + *pos, s, room);
    memcpy(buf + *pos + room, "...", 4);
    *pos = JSON_PATHBUF - 1;
    return;
  }
  memcpy(buf + *pos, s, n);
  *pos += n;
  buf[*pos] = '\0';
}

/* Appends the object key at stack index key (a string) to a path: ".name"
 * for identifiers, else ["bytes"] with odd bytes shown as '?', at most
 * JSON_KEYSHOW of them. Never raises (the key is already a string). */
static void path_append_key(lua_State *L, int key, char *buf, size_t *pos) {
  char tmp[JSON_KEYSHOW + 8];
  size_t len, i, n = 0;
  const char *k = lua_tolstring(L, key, &len);
  int ident = len > 0 && !(k[0] >= '0' && k[0] <= '9');
  for (i = 0; i < len && ident; i++)
    ident = (k[i] == '_' || (k[i] >= 'a' && k[i] <= 'z') || (k[i] >= 'A' && k[i] <= 'Z') ||
             (k[i] >= '0' && k[i] <= '9'));
  if (ident) {
    tmp[n++] = '.';
  } else {
    tmp[n++] = '[';
    tmp[n++] = '"';
  }
  for (i = 0; i < len && i < JSON_KEYSHOW; i++) {
    unsigned char c = (unsigned char)k[i];
    tmp[n++] = (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') ? '?' : (char)c;
  }
  path_append(buf, pos, tmp, n);
  if (len > JSON_KEYSHOW) path_append(buf, pos, "...", 3);
  if (!ident) path_append(buf, pos, "\"]", 2);
}

/* Records in e->msg the cause (printf-style) followed by " (at <path>)" for
 * the value at depth (no suffix at depth 0). Returns 0. Never raises. */
static int enc_fail(json_encoder *e, int depth, const char *fmt, ...) JSON_PRINTF(3, 4);
static int enc_fail(json_encoder *e, int depth, const char *fmt, ...) {
  char cause[JSON_CAUSEBUF], path[JSON_PATHBUF], step[32];
  size_t pos = 0;
  int d;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cause, sizeof cause, fmt, ap);
  va_end(ap);
  if (depth == 0) {
    snprintf(e->msg, JSON_MSGBUF, "%s", cause);
    return 0;
  }
  path[0] = '\0';
  for (d = 1; d <= depth; d++) {
    if (e->path[d].key != 0) {
      path_append_key(e->L, e->path[d].key, path, &pos);
    } else {
      int n = snprintf(step, sizeof step, "[%lld]", e->path[d].index);
      path_append(path, &pos, step, (size_t)n);
    }
  }
  snprintf(e->msg, JSON_MSGBUF, "%s (at %s)", cause, path);
  return 0;
}

/* The table at idx would be container number JSON_MAX_DEPTH + 1 (its depth
 * is JSON_MAX_DEPTH): reports "cyclic table" at the path of the first table
 * on the way that repeats an ancestor, else "nesting deeper than N levels".
 * Returns 0. Never raises. */
static int enc_too_deep(json_encoder *e, int idx, int depth) {
  int i, j;
  for (j = 2; j <= depth + 1; j++) {
    int tj = j <= depth ? e->path[j].tbl : idx;
    for (i = 1; i < j; i++)
      if (lua_rawequal(e->L, e->path[i].tbl, tj)) return enc_fail(e, j - 1, "cyclic table");
  }
  return enc_fail(e, depth, "nesting deeper than %d levels", JSON_MAX_DEPTH);
}

/* 1 if the table at idx has a metatable with rawget(mt, "__jsontype") ==
 * "array". [-0, +0, m] */
static int enc_is_marked_array(lua_State *L, int idx) {
  size_t len;
  const char *s;
  int marked;
  if (!lua_getmetatable(L, idx)) return 0;
  lua_pushliteral(L, "__jsontype");
  lua_rawget(L, -2);
  s = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
  marked = s != NULL && len == 5 && memcmp(s, "array", 5) == 0;
  lua_pop(L, 2);
  return marked;
}

/* Reports a key at stack index key that cannot appear in the table at depth:
 * a non-integer number, or a value of a type no JSON key has. Returns 0.
 * Never raises. */
static int enc_bad_key(json_encoder *e, int key, int depth) {
  char num[JSON_NUMBUF];
  int t = lua_type(e->L, key);
  if (t == LUA_TNUMBER) {
    num_format_float(num, (double)lua_tonumber(e->L, key), e->loc);
    return enc_fail(e, depth, "cannot use the number %s as a key (only integers 1..n or strings)", num);
  }
  return enc_fail(e, depth, "cannot use a %s as an object key", lua_typename(e->L, t));
}

/* Checks that the keys of the table at idx are exactly the integers 1..n and
 * stores n in *n; marked tells whether it carries the array marker. Returns 0
 * with the cause recorded otherwise. [-0, +0, -] (uses 2 slots) */
static int enc_array_length(json_encoder *e, int idx, int depth, int marked, long long *n) {
  lua_State *L = e->L;
  long long count = 0, max = 0, k;
  lua_pushnil(L);
  while (lua_next(L, idx)) { /* stack: key, value */
    int t = lua_type(L, -2);
    if (t == LUA_TSTRING)
      return enc_fail(e, depth, marked ? "table marked as array has a string key"
                                       : "table mixes array and object keys");
    if (t != LUA_TNUMBER || !compat_tointeger(L, -2, &k)) return enc_bad_key(e, lua_gettop(L) - 1, depth);
    if (k < 1) return enc_fail(e, depth, "array key %lld out of range (keys must be 1..n)", k);
    count++;
    if (k > max) max = k;
    lua_pop(L, 1);
  }
  if (max != count) return enc_fail(e, depth, "sparse array: key %lld but only %lld elements", max, count);
  *n = count;
  return 1;
}

/* Writes the elements 1..n of the table at idx (level depth + 1) as a JSON
 * array. [-0, +0, m] on success; leaves values on the stack on failure. */
static int enc_array(json_encoder *e, int idx, int depth, long long n) {
  lua_State *L = e->L;
  json_step *step = &e->path[depth + 1];
  long long i;
  out_char(e, '[');
  step->key = 0;
  for (i = 1; i <= n; i++) {
    if (i > 1) out_char(e, ',');
    lua_rawgeti(L, idx, i);
    step->index = i;
    if (!enc_value(e, lua_gettop(L), depth + 1)) return 0;
    lua_pop(L, 1);
  }
  out_char(e, ']');
  return 1;
}

/* Writes the table at idx (level depth + 1) as a JSON object; its first key
 * and value, from lua_next, are on top of the stack. [-2, +0, m] on success;
 * leaves values on the stack on failure. */
static int enc_object(json_encoder *e, int idx, int depth) {
  lua_State *L = e->L;
  json_step *step = &e->path[depth + 1];
  char sep = '{';
  do { /* stack: key, value */
    const char *k;
    size_t klen;
    long long ik;
    int t = lua_type(L, -2);
    if (t != LUA_TSTRING) {
      if (t == LUA_TNUMBER && compat_tointeger(L, -2, &ik))
        return enc_fail(e, depth, "table mixes array and object keys");
      return enc_bad_key(e, lua_gettop(L) - 1, depth);
    }
    k = lua_tolstring(L, -2, &klen); /* a string already: no conversion */
    out_char(e, sep);
    sep = ',';
    out_string(e, k, klen);
    out_char(e, ':');
    step->key = lua_gettop(L) - 1;
    if (!enc_value(e, lua_gettop(L), depth + 1)) return 0;
    lua_pop(L, 1);
  } while (lua_next(L, idx));
  out_char(e, '}');
  return 1;
}

/* Writes the table at idx (level depth + 1) as an array or object, chosen
 * by its marker and keys. [-0, +0, m] on success. */
static int enc_container(json_encoder *e, int idx, int depth) {
  lua_State *L = e->L;
  long long n = 0;
  int marked = enc_is_marked_array(L, idx);
  lua_pushnil(L);
  if (!lua_next(L, idx)) { /* empty */
    out_put(e, marked ? "[]" : "{}", 2);
    return 1;
  }
  if (!marked && lua_type(L, -2) == LUA_TSTRING) return enc_object(e, idx, depth);
  lua_pop(L, 2);
  if (!enc_array_length(e, idx, depth, marked, &n)) return 0;
  return enc_array(e, idx, depth, n);
}

/* Writes the table at idx, whose depth (enclosing tables) is depth.
 * [-0, +0, m] on success. */
static int enc_table(json_encoder *e, int idx, int depth) {
  if (depth >= JSON_MAX_DEPTH) return enc_too_deep(e, idx, depth);
  luaL_checkstack(e->L, 4, "JSON nesting");
  e->path[depth + 1].tbl = idx;
  return enc_container(e, idx, depth);
}

/* Writes the number at idx (at depth): integers as integer text, floats so
 * that they read back bit for bit (always with '.' or 'e'); refuses NaN and
 * infinities. [-0, +0, -] */
static int enc_number(json_encoder *e, int idx, int depth) {
  char *buf;
  long long i;
  double x;
  OUT_ROOM(e, JSON_NUMBUF);
  buf = e->out + e->len;
  x = (double)lua_tonumber(e->L, idx);
  /* integers as integer text (without an integer subtype: integral values
   * up to 2^53, what dec_push_integer reads back), but -0.0 stays a float */
  if (compat_tointeger(e->L, idx, &i) && !(x == 0 && signbit(x))) {
    e->len += num_format_int(buf, i);
    return 1;
  }
  if (!isfinite(x)) return enc_fail(e, depth, "cannot encode NaN or infinity");
  e->len += num_format_float(buf, x, e->loc);
  return 1;
}

/* Writes the value at idx, which sits at depth (number of enclosing tables).
 * Returns 1, or 0 with e->msg set; on failure the stack is left dirty for
 * json_encode to reset. Raises only memory errors. */
static int enc_value(json_encoder *e, int idx, int depth) {
  lua_State *L = e->L;
  switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
      size_t len;
      const char *s = lua_tolstring(L, idx, &len);
      out_string(e, s, len);
      return 1;
    }
    case LUA_TNUMBER:
      return enc_number(e, idx, depth);
    case LUA_TBOOLEAN:
      if (lua_toboolean(L, idx))
        out_put(e, "true", 4);
      else
        out_put(e, "false", 5);
      return 1;
    case LUA_TTABLE:
      return enc_table(e, idx, depth);
    case LUA_TLIGHTUSERDATA:
      if (lua_touserdata(L, idx) == NULL) {
        out_put(e, "null", 4);
        return 1;
      }
      return enc_fail(e, depth, "cannot encode a userdata (only the null sentinel)");
    case LUA_TNIL:
      return enc_fail(e, depth, "cannot encode nil");
    default:
      return enc_fail(e, depth, "cannot encode a %s", lua_typename(L, lua_type(L, idx)));
  }
}

int json_encode(lua_State *L, int idx) {
  json_encoder e;
  int base, ok;
  idx = json_absindex(L, idx);
  base = lua_gettop(L);
  e.L = L;
  e.loc = json_c_locale();
  if (e.loc == (locale_t)0) return json_nomem(L);
  e.msg[0] = '\0';
  luaL_checkstack(L, 4, "JSON encode");
  e.box = box_acquire(L); /* base + 1 */
  e.out = e.box->out;
  e.cap = e.box->cap;
  e.len = 0;
  ok = enc_value(&e, idx, 0);
  if (ok) {
    lua_pushlstring(L, e.out, e.len); /* may raise: the box owns the buffer */
  } else {
    lua_settop(L, base + 1);
    lua_pushstring(L, e.msg);
  }
  box_done(e.box);
  lua_replace(L, base + 1);
  lua_settop(L, base + 1);
  return ok;
}

/* }====================================================================== */

/*
** {======================================================================
** Decoder: yajl callbacks building the value on the Lua stack
** =======================================================================
*/

enum { DEC_OK, DEC_TOO_DEEP, DEC_PUSHED };

/* Elements (array) or members (object) an open container holds on the
 * stack before they go into its table: a table made at the end with its
 * exact size is never resized while it fills. */
#define DEC_PENDING 64

/* One open container. Its stack slot holds nil until its table is made;
 * above it sit its pending elements, or key, value pairs. */
typedef struct {
  int slot;          /* stack index of the table (or nil) */
  int pending;       /* elements or members above slot */
  lua_Integer count; /* array elements already in the table; -1: object */
} json_open_container;

typedef struct {
  lua_State *L;
  locale_t loc;
  int array_mt; /* stack index of the array metatable */
  int depth;    /* open containers */
  int failed;   /* DEC_TOO_DEEP, or DEC_PUSHED: message on top of the stack */
  json_open_container open[JSON_MAX_DEPTH + 1]; /* 1..depth */
} json_decoder;

/* Moves the pending elements of container c into its table, making the
 * table first (sized for them, or for more when more may come).
 * [-(pending or 2*pending), +0, m] */
static void dec_flush(json_decoder *d, json_open_container *c, int last) {
  lua_State *L = d->L;
  int i, n = c->pending;
  if (lua_isnil(L, c->slot)) {
    int size = last ? n : 2 * n;
    if (c->count < 0)
      lua_createtable(L, 0, size);
    else
      lua_createtable(L, size, 0);
    lua_replace(L, c->slot);
  }
  if (c->count >= 0) { /* elements: top is the last one */
    for (i = n; i >= 1; i--) lua_rawseti(L, c->slot, c->count + i);
    c->count += n;
  } else { /* in order, so that of duplicate keys the last one wins */
    for (i = 0; i < n; i++) {
      lua_pushvalue(L, c->slot + 1 + 2 * i);
      lua_pushvalue(L, c->slot + 2 + 2 * i);
      lua_rawset(L, c->slot);
    }
    lua_settop(L, c->slot);
  }
  c->pending = 0;
}

/* Counts the value on top of the stack (after its key, in an object) as
 * pending in the innermost open container; at depth 0 leaves it as the
 * result. Returns 1. [-0, +0, m] */
static int dec_add(json_decoder *d) {
  json_open_container *c;
  if (d->depth == 0) return 1;
  c = &d->open[d->depth];
  if (++c->pending == DEC_PENDING) dec_flush(d, c, 0);
  return 1;
}

/* null -> light userdata NULL. [-0, +0, m] */
static int dec_null(void *ud) {
  json_decoder *d = (json_decoder *)ud;
  lua_pushlightuserdata(d->L, NULL);
  return dec_add(d);
}

/* true/false. [-0, +0, m] */
static int dec_boolean(void *ud, int b) {
  json_decoder *d = (json_decoder *)ud;
  lua_pushboolean(d->L, b);
  return dec_add(d);
}

/* Pushes the float value of the number token s[0..len), read in the "C"
 * locale, and returns 1; a value beyond the double range (1e999) is
 * refused: pushes the message and returns 0. [-0, +1, m] */
static int dec_push_float(json_decoder *d, const char *s, size_t len) {
  char buf[JSON_NUMBUF];
  double x;
  if (num_parse_decimal(s, len, &x)) {
    /* done: exact fast path */
  } else if (len < sizeof buf) {
    memcpy(buf, s, len);
    buf[len] = '\0';
    x = strtod_l(buf, NULL, d->loc);
  } else { /* a very long token: let Lua hold the NUL-terminated copy */
    lua_pushlstring(d->L, s, len);
    x = strtod_l(lua_tostring(d->L, -1), NULL, d->loc);
    lua_pop(d->L, 1);
  }
  if (!isfinite(x)) {
    lua_pushlstring(d->L, s, len > 40 ? 40 : len);
    lua_pushfstring(d->L, "number %s%s is out of range", lua_tostring(d->L, -1),
                    len > 40 ? "..." : "");
    lua_remove(d->L, -2);
    d->failed = DEC_PUSHED;
    return 0;
  }
  lua_pushnumber(d->L, (lua_Number)x);
  return 1;
}

/* Pushes the integer token s[0..len): an integer if it fits lua_Integer, else
 * a float (5.3+); a number if |value| <= 2^53, else refuses (5.1/5.2).
 * Returns 0 with the message pushed when refused. [-0, +1, m] */
static int dec_push_integer(json_decoder *d, const char *s, size_t len) {
  unsigned long long mag = 0;
  int neg;
  if (num_parse_int(s, len, &neg, &mag) && compat_pushexact(d->L, neg, mag)) return 1;
  /* beyond what this Lua holds exactly: with integers (5.3+) a float, like
   * Lua's own lexer; without, refused (a double would silently change it) */
  if (RCACHE_HAVE_INTEGERS) return dec_push_float(d, s, len);
  lua_pushlstring(d->L, s, len);
  lua_pushfstring(d->L, "integer %s cannot be represented exactly by this Lua (beyond 2^53)",
                  lua_tostring(d->L, -1));
  d->failed = DEC_PUSHED;
  return 0;
}

/* A number token, raw text: '.', 'e' or 'E' make it a float, else it is an
 * integer token. [-0, +0, m] */
static int dec_number(void *ud, const char *s, size_t len) {
  json_decoder *d = (json_decoder *)ud;
  size_t i;
  for (i = 0; i < len; i++)
    if (s[i] == '.' || s[i] == 'e' || s[i] == 'E') break;
  if (!(i < len ? dec_push_float(d, s, len) : dec_push_integer(d, s, len))) return 0;
  return dec_add(d);
}

/* A string value, already unescaped by yajl. [-0, +0, m] */
static int dec_string(void *ud, const unsigned char *s, size_t len) {
  json_decoder *d = (json_decoder *)ud;
  lua_pushlstring(d->L, (const char *)s, len);
  return dec_add(d);
}

/* An object key: stays on the stack until its value arrives. [-0, +1, m] */
static int dec_map_key(void *ud, const unsigned char *s, size_t len) {
  json_decoder *d = (json_decoder *)ud;
  lua_pushlstring(d->L, (const char *)s, len);
  return 1;
}

/* Opens a container: pushes the slot of its table and records its kind
 * (0: array, -1: object). Refuses nesting deeper than JSON_MAX_DEPTH.
 * [-0, +1, m] */
static int dec_open(json_decoder *d, lua_Integer kind) {
  json_open_container *c;
  if (d->depth >= JSON_MAX_DEPTH) {
    d->failed = DEC_TOO_DEEP;
    return 0;
  }
  luaL_checkstack(d->L, 2 * DEC_PENDING + 4, "JSON nesting");
  lua_pushnil(d->L); /* the table's slot */
  c = &d->open[++d->depth];
  c->slot = lua_gettop(d->L);
  c->pending = 0;
  c->count = kind;
  return 1;
}

/* '{'. [-0, +1, m] */
static int dec_start_map(void *ud) {
  return dec_open((json_decoder *)ud, -1);
}

/* '}': the object is complete; its table, on top, goes to its parent.
 * [-(pending), +0, m] */
static int dec_end_map(void *ud) {
  json_decoder *d = (json_decoder *)ud;
  dec_flush(d, &d->open[d->depth], 1);
  d->depth--;
  return dec_add(d);
}

/* '['. [-0, +1, m] */
static int dec_start_array(void *ud) {
  return dec_open((json_decoder *)ud, 0);
}

/* ']': the array is complete; its table, marked as an array, goes to its
 * parent. [-(pending), +0, m] */
static int dec_end_array(void *ud) {
  json_decoder *d = (json_decoder *)ud;
  dec_flush(d, &d->open[d->depth], 1);
  lua_pushvalue(d->L, d->array_mt);
  lua_setmetatable(d->L, -2);
  d->depth--;
  return dec_add(d);
}

/* Writes to buf the message of a yajl parse error found after offset bytes:
 * "invalid JSON at byte <offset>: <yajl's reason>". Frees yajl's string
 * before returning. Never raises. */
static void dec_yajl_message(yajl_handle h, size_t offset, char *buf, size_t size) {
  unsigned char *err = yajl_get_error(h, 0, NULL, 0);
  const char *why = err != NULL ? (const char *)err : "unknown error";
  size_t n;
  if (strncmp(why, "parse error: ", 13) == 0) why += 13;
  else if (strncmp(why, "lexical error: ", 15) == 0) why += 15;
  n = strlen(why);
  while (n > 0 && (why[n - 1] == '\n' || why[n - 1] == '.')) n--;
  snprintf(buf, size, "invalid JSON at byte %lu: %.*s", (unsigned long)offset, (int)n, why);
  if (err != NULL) yajl_free_error(h, err);
}

int json_decode(lua_State *L, const char *s, size_t len) {
  static const yajl_callbacks callbacks = {
      dec_null, dec_boolean, NULL, NULL, dec_number, dec_string,
      dec_start_map, dec_map_key, dec_end_map, dec_start_array, dec_end_array};
  json_decoder d;
  json_box *box;
  yajl_alloc_funcs afs;
  char msg[JSON_MSGBUF];
  yajl_status st;
  size_t offset;
  int base = lua_gettop(L);
  d.L = L;
  d.loc = json_c_locale();
  if (d.loc == (locale_t)0) return json_nomem(L);
  d.depth = 0;
  d.failed = DEC_OK;
  d.array_mt = base + 2;
  luaL_checkstack(L, 6, "JSON decode");
  box = box_acquire(L); /* base + 1 */
  push_array_mt(L);      /* base + 2 */
  afs.malloc = arena_malloc;
  afs.realloc = arena_realloc;
  afs.free = arena_free;
  afs.ctx = box;
  box->parser = yajl_alloc(&callbacks, &afs, &d);
  if (box->parser == NULL) return json_nomem(L);
  yajl_config(box->parser, yajl_dont_validate_strings, 1);
  /* callbacks may raise (memory): the box frees the parser then */
  st = yajl_parse(box->parser, (const unsigned char *)(s != NULL ? s : ""), len);
  offset = yajl_get_bytes_consumed(box->parser);
  if (st == yajl_status_ok) {
    st = yajl_complete_parse(box->parser);
    offset = len; /* yajl counts from its own end marker here */
  }
  if (st == yajl_status_ok) { /* stack: box, mt, value */
    box_done(box);
    lua_replace(L, base + 1);
    lua_settop(L, base + 1);
    return 1;
  }
  if (st == yajl_status_client_canceled && d.failed == DEC_PUSHED) {
    box_done(box);
    lua_replace(L, base + 1); /* the message */
    lua_settop(L, base + 1);
    return 0;
  }
  if (st == yajl_status_client_canceled)
    snprintf(msg, sizeof msg, "nesting deeper than %d levels (at byte %lu)", JSON_MAX_DEPTH,
             (unsigned long)offset);
  else
    dec_yajl_message(box->parser, offset, msg, sizeof msg);
  box_done(box);
  lua_settop(L, base + 1);
  lua_pushstring(L, msg);
  lua_replace(L, base + 1);
  return 0;
}

/* }====================================================================== */

/*
** {======================================================================
** Lua functions
** =======================================================================
*/

/* json_encode(v) -> text; raises "rcache_live.json: encode: <cause>". */
static int json_lua_encode(lua_State *L) {
  luaL_checkany(L, 1);
  lua_settop(L, 1);
  if (json_encode(L, 1)) return 1;
  lua_pushfstring(L, "rcache_live.json: encode: %s", lua_tostring(L, -1));
  return lua_error(L);
}

/* json_decode(text) -> value; raises "rcache_live.json: decode: <cause>". */
static int json_lua_decode(lua_State *L) {
  size_t len;
  const char *s;
  luaL_checktype(L, 1, LUA_TSTRING);
  s = lua_tolstring(L, 1, &len);
  if (json_decode(L, s, len)) return 1;
  lua_pushfstring(L, "rcache_live.json: decode: %s", lua_tostring(L, -1));
  return lua_error(L);
}

void json_open(lua_State *L) {
  push_array_mt(L);
  lua_pop(L, 1);
  (void)json_c_locale(); /* create it early, outside any hot path */
}

void json_register(lua_State *L) {
  static const luaL_Reg funcs[] = {
      {"json_encode", json_lua_encode}, {"json_decode", json_lua_decode}, {NULL, NULL}};
  luaL_checkstack(L, 2, "JSON register");
  luaL_setfuncs(L, funcs, 0);
  lua_pushlightuserdata(L, NULL);
  lua_setfield(L, -2, "null");
  push_array_mt(L);
  lua_setfield(L, -2, "array_mt");
}

/* }====================================================================== */
