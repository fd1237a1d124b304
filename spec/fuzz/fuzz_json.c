/*
 * fuzz_json.c - libFuzzer target for the JSON decoder (src/json.c), which
 * reads records that any Redis client may have written.
 *
 * For each input, inside lua_pcall (json_decode/json_encode raise only on
 * memory errors, so any raise is a finding):
 *   1. json_decode(input). Failure must leave exactly one string of a
 *      documented shape: "invalid JSON at byte N: ...", "nesting deeper than
 *      128 levels (at byte N)" with N within the input, or "number T is out
 *      of range" where T is a number token of the input beyond the double
 *      range.
 *   2. On success, the round trip: t1 = json_encode(v), v2 = json_decode(t1),
 *      t2 = json_encode(v2); v2 must equal v exactly (types, integer or
 *      float, float bits, string bytes, array marker, keys), and t2 must be
 *      t1 - up to the order of object members (see same_text below); and
 *      the encoding has no more arrays, nor objects, than the input.
 *      No exception is allowed: encode must accept every decoded value. The
 *      one inexact case JSON text can express, a number beyond the double
 *      range ("1e999", an integer of 310+ digits), is refused by the decoder
 *      ("number 1e999 is out of range") rather than read as an infinity that
 *      json_encode would then refuse ("cannot encode NaN or infinity", README
 *      "What is refused"); a decoded infinity, or an encode refusal, aborts.
 *      NaN cannot come out of strtod for a JSON number token.
 *   3. Every number token of the (valid) input, decoded on its own, must be
 *      what libc gives: strtoll for integer tokens that fit 64 bits, strtod
 *      ("C" locale) for the others - an oracle for json.c's own fast paths.
 *   4. Every float in v, and the first/last 8 input bytes taken as a double
 *      and as an int64, must encode to text that strtod/strtoll read back
 *      exactly and that json_decode reads back to the same bits.
 * The Lua stack is reset after each input and a full GC run, so every yajl
 * handle box is collected within the input that made it.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "json.h"

#define MAX_TOKENS 256 /* number tokens checked per input (oracle 3) */
#define MAX_FLOATS 256 /* floats checked per input (oracle 4) */

static lua_State *L;
static locale_t c_locale;

#define FUZZ_NAME "fuzz_json"
#include "fuzz_common.h"

/* 1 if the value at absolute index idx holds an infinity somewhere. */
static int holds_inf(lua_State *S, int idx) {
  int found = 0;
  if (lua_type(S, idx) == LUA_TNUMBER)
    return !lua_isinteger(S, idx) && isinf((double)lua_tonumber(S, idx));
  if (lua_type(S, idx) != LUA_TTABLE) return 0;
  luaL_checkstack(S, 3, "fuzz_json: holds_inf");
  lua_pushnil(S);
  while (!found && lua_next(S, idx)) {
    found = holds_inf(S, lua_gettop(S));
    lua_pop(S, 1);
  }
  if (found) lua_pop(S, 1);
  return found;
}

/* "a" and "b" (JSON texts of equal values) must be the same bytes, except
 * that object members may come out in another order: json_encode walks
 * tables with lua_next, and two tables with the same keys iterate in
 * different orders when their insertion histories differ (common: a table
 * decoded from text is built in the order of that text). A reordering keeps
 * the length and every byte count, so those must match; the caller has
 * already checked that the two values are equal. */
static void same_text(const char *a, size_t la, const char *b, size_t lb) {
  size_t count[256], i;
  CHECK(la == lb, "re-encoding changed the length: %zu -> %zu bytes:\n  %.*s\n  %.*s", la, lb,
        (int)(la > 300 ? 300 : la), a, (int)(lb > 300 ? 300 : lb), b);
  if (memcmp(a, b, la) == 0) return;
  memset(count, 0, sizeof count);
  for (i = 0; i < la; i++) {
    count[(unsigned char)a[i]]++;
    count[(unsigned char)b[i]]--;
  }
  for (i = 0; i < 256; i++)
    CHECK(count[i] == 0, "re-encoding changed more than the order of members:\n  %.*s\n  %.*s",
          (int)(la > 300 ? 300 : la), a, (int)(lb > 300 ? 300 : lb), b);
}

/* strtod/strtoll of n bytes at s, in the "C" locale. */
static double c_strtod(const char *s, size_t n) {
  char buf[64], *p = n < sizeof buf ? buf : malloc(n + 1);
  double x;
  if (p == NULL) abort();
  memcpy(p, s, n);
  p[n] = '\0';
  x = strtod_l(p, NULL, c_locale);
  if (p != buf) free(p);
  return x;
}

/* Counts the '[' and '{' of the valid JSON text s[0..n) outside strings. */
static void count_containers(const char *s, size_t n, size_t *arrays, size_t *objects) {
  size_t i;
  *arrays = *objects = 0;
  for (i = 0; i < n; i++) {
    if (s[i] == '"') {
      for (i++; i < n && s[i] != '"'; i++)
        if (s[i] == '\\') i++;
    } else if (s[i] == '[') {
      (*arrays)++;
    } else if (s[i] == '{') {
      (*objects)++;
    }
  }
}

/* Oracle 3: the number token s[0..n), decoded alone, is what libc gives. */
static void check_token(lua_State *S, const char *s, size_t n) {
  int top = lua_gettop(S), is_float = 0;
  size_t i;
  for (i = 0; i < n; i++)
    if (s[i] == '.' || s[i] == 'e' || s[i] == 'E') is_float = 1;
  CHECK(json_decode(S, s, n) == 1, "number token \"%.*s\" does not decode alone: %s", (int)n, s,
        lua_tostring(S, -1));
  CHECK(lua_type(S, -1) == LUA_TNUMBER, "number token decodes to a %s", luaL_typename(S, -1));
  if (!is_float && n < 64) {
    char buf[64];
    long long v;
    memcpy(buf, s, n);
    buf[n] = '\0';
    errno = 0;
    v = strtoll(buf, NULL, 10);
    if (errno == 0) {
      CHECK(lua_isinteger(S, -1) && lua_tointeger(S, -1) == v,
            "integer token \"%s\" decodes to %s, strtoll says %lld", buf, lua_tostring(S, -1), v);
      lua_settop(S, top);
      return;
    }
  }
  {
    double want = c_strtod(s, n), got = lua_tonumber(S, -1);
    CHECK(!lua_isinteger(S, -1) && memcmp(&want, &got, sizeof want) == 0,
          "token \"%.*s\" decodes to %.17g (%s), strtod says %.17g", (int)(n > 80 ? 80 : n), s, got,
          lua_isinteger(S, -1) ? "integer" : "float", want);
  }
  lua_settop(S, top);
}

/* Oracle 3 driver: every number token of the valid JSON text s[0..n). */
static void check_tokens(lua_State *S, const char *s, size_t n) {
  size_t i = 0, count = 0;
  while (i < n && count < MAX_TOKENS) {
    char c = s[i];
    if (c == '"') { /* skip the string */
      for (i++; i < n && s[i] != '"'; i++)
        if (s[i] == '\\') i++;
      i++;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      size_t j = i;
      while (j < n && (strchr("0123456789+-.eE", s[j]) != NULL) && s[j] != '\0') j++;
      check_token(S, s + i, j - i);
      count++;
      i = j;
    } else {
      i++;
    }
  }
}

/* Oracle 4: the number on top of the stack encodes to text that libc and
 * json_decode both read back exactly. Pops it. */
static void check_number_encoding(lua_State *S) {
  int top = lua_gettop(S), isint = lua_isinteger(S, top);
  size_t n;
  const char *text;
  if (!isint && !isfinite((double)lua_tonumber(S, top))) {
    CHECK(json_encode(S, top) == 0, "an infinity/NaN encoded");
    lua_settop(S, top - 1);
    return;
  }
  CHECK(json_encode(S, top) == 1, "number %s refused: %s", lua_tostring(S, top),
        lua_tostring(S, -1));
  text = lua_tolstring(S, -1, &n);
  if (isint) {
    long long v;
    errno = 0;
    v = strtoll(text, NULL, 10);
    CHECK(errno == 0 && v == lua_tointeger(S, top), "integer %lld encoded as %s",
          (long long)lua_tointeger(S, top), text);
  } else {
    double x = lua_tonumber(S, top), y = c_strtod(text, n);
    CHECK(memcmp(&x, &y, sizeof x) == 0, "float %.17g encoded as %s, which reads %.17g", x, text, y);
    CHECK(strpbrk(text, ".e") != NULL, "float %.17g encoded as %s, which reads as an integer", x, text);
  }
  CHECK(json_decode(S, text, n) == 1, "encoded number %s does not decode", text);
  CHECK(same_value(S, top, top + 2), "encoded number %s decodes to %s", text,
        lua_tostring(S, top + 2));
  lua_settop(S, top - 1);
}

/* Oracle 4 driver over a value: every float in it (at most *budget). */
static void check_floats(lua_State *S, int idx, int *budget) {
  if (*budget <= 0) return;
  if (lua_type(S, idx) == LUA_TNUMBER) {
    (*budget)--;
    lua_pushvalue(S, idx);
    check_number_encoding(S);
  } else if (lua_type(S, idx) == LUA_TTABLE) {
    luaL_checkstack(S, 4, "fuzz_json: check_floats");
    lua_pushnil(S);
    while (lua_next(S, idx)) {
      check_floats(S, lua_gettop(S), budget);
      lua_pop(S, 1);
    }
  }
}

/* Oracle 4 on raw bits: 8 bytes as a double and as an int64. */
static void check_bits(lua_State *S, const uint8_t *p) {
  double x;
  int64_t i;
  memcpy(&x, p, sizeof x);
  memcpy(&i, p, sizeof i);
  if (!isnan(x)) {
    lua_pushnumber(S, x);
    check_number_encoding(S);
  }
  lua_pushinteger(S, (lua_Integer)i);
  check_number_encoding(S);
}

/* Step 1: the failure message of json_decode on s[0..n) is on top. */
static void check_decode_error(lua_State *S, const char *s, size_t n) {
  const char *msg = lua_tostring(S, -1);
  unsigned long at = 0;
  size_t tlen;
  CHECK(lua_type(S, -1) == LUA_TSTRING, "decode failed without a message");
  if (strncmp(msg, "number ", 7) == 0) { /* "number <token, 40 bytes at most>[...] is out of range" */
    const char *tok = msg + 7, *end = strstr(tok, " is out of range");
    CHECK(end != NULL && end[16] == '\0', "unexpected decode message: %s", msg);
    tlen = (size_t)(end - tok);
    if (tlen > 3 && memcmp(end - 3, "...", 3) == 0) {
      tlen -= 3;
      CHECK(tlen == 40, "out-of-range token cut at %zu bytes, not 40: %s", tlen, msg);
    } else {
      double x = c_strtod(tok, tlen);
      CHECK(isinf(x), "number refused as out of range, but strtod reads it as %.17g: %s", x, msg);
    }
    CHECK(tlen > 0 && memmem(s, n, tok, tlen) != NULL, "out-of-range token not in the input: %s",
          msg);
    return;
  }
  CHECK(sscanf(msg, "invalid JSON at byte %lu: ", &at) == 1 ||
            sscanf(msg, "nesting deeper than 128 levels (at byte %lu)", &at) == 1,
        "unexpected decode message: %s", msg);
  CHECK(at <= n, "error offset %lu beyond the %zu input bytes: %s", at, n, msg);
}

/* The checks, run in protected mode: [data, size] as upvalue-free args. */
static int run(lua_State *S) {
  const char *s = (const char *)lua_touserdata(S, 1);
  size_t n = (size_t)lua_tointeger(S, 2);
  const char *t1, *t2;
  size_t l1, l2;
  int budget = MAX_FLOATS;
  lua_settop(S, 2);

  if (n >= 8) { /* oracle 4 on raw bits */
    check_bits(S, (const uint8_t *)s);
    check_bits(S, (const uint8_t *)s + n - 8);
  }

  if (!json_decode(S, s, n)) { /* 3: message */
    CHECK(lua_gettop(S) == 3, "decode failure left %d values", lua_gettop(S) - 2);
    check_decode_error(S, s, n);
    return 0;
  }
  CHECK(lua_gettop(S) == 3, "decode left %d values", lua_gettop(S) - 2);
  check_tokens(S, s, n);
  check_floats(S, 3, &budget);
  CHECK(lua_gettop(S) == 3, "stack discipline (oracles)");

  CHECK(!holds_inf(S, 3), "the decoder produced an infinity");
  CHECK(json_encode(S, 3) == 1, "encode refused a decoded value: %s", lua_tostring(S, -1));
  CHECK(lua_gettop(S) == 4, "encode left %d values", lua_gettop(S) - 3);
  t1 = lua_tolstring(S, 4, &l1);
  { /* arrays stay arrays, objects objects: the round trip alone cannot see a
     * decoder that turns [] into {} (it would agree with itself). Duplicate
     * keys may drop containers, so the encoding may only have fewer. */
    size_t in_arrays, in_objects, out_arrays, out_objects;
    count_containers(s, n, &in_arrays, &in_objects);
    count_containers(t1, l1, &out_arrays, &out_objects);
    CHECK(out_arrays <= in_arrays && out_objects <= in_objects,
          "containers changed kind: %zu arrays and %zu objects in the input, %zu and %zu in its "
          "encoding: %.*s", in_arrays, in_objects, out_arrays, out_objects,
          (int)(l1 > 300 ? 300 : l1), t1);
  }
  CHECK(json_decode(S, t1, l1) == 1, "own encoding does not decode: %s\n  text: %.*s",
        lua_tostring(S, -1), (int)(l1 > 300 ? 300 : l1), t1);
  CHECK(same_value(S, 3, 5), "round trip changed the value; encoding: %.*s",
        (int)(l1 > 300 ? 300 : l1), t1);
  CHECK(json_encode(S, 5) == 1, "re-encode refused: %s", lua_tostring(S, -1));
  t2 = lua_tolstring(S, 6, &l2);
  same_text(t1, l1, t2, l2);
  CHECK(lua_gettop(S) == 6, "stack discipline (round trip)");
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (L == NULL) {
    L = luaL_newstate();
    c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    if (L == NULL || c_locale == (locale_t)0) abort();
    json_open(L);
  }
  cur_data = data;
  cur_size = size;
  lua_settop(L, 0);
  lua_pushcfunction(L, run);
  lua_pushlightuserdata(L, (void *)data);
  lua_pushinteger(L, (lua_Integer)size);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) /* json_* raise only on memory errors */
    fail("a Lua error was raised: %s", lua_tostring(L, -1));
  lua_settop(L, 0);
  lua_gc(L, LUA_GCCOLLECT, 0);
  return 0;
}
