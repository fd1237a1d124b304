/*
 * json.h - exact JSON <-> Lua codec (parsing with yajl 2.1).
 *
 * Exact means: whatever json_encode accepts, json_decode gives back
 * unchanged - integers stay integers (all 64 bits), floats come back bit for
 * bit (2.0 stays a float), strings are passed through byte for byte (NUL,
 * invalid UTF-8), null (light userdata NULL, the same value as cjson.null)
 * keeps its place, and an empty array stays [] thanks to the array metatable.
 * Values that JSON cannot hold exactly are refused, never approximated.
 */
#ifndef RCACHE_JSON_H
#define RCACHE_JSON_H

#include <stddef.h>
#include <lua.h>

/* Deepest nesting of arrays/objects accepted, on encode and on decode: 128
 * nested containers are fine, 129 are refused (yajl's YAJL_MAX_DEPTH). */
#define JSON_MAX_DEPTH 128

/* Registers, once per Lua state, the array metatable in the registry (key
 * "rcache_live.array") if it is not there yet. [-0, +0, m] */
void json_open(lua_State *L);

/* Encodes the Lua value at stack index idx. On success pushes the JSON text
 * (a Lua string) and returns 1. On bad input pushes an error message string
 * (the cause only, no prefix, e.g. "cannot encode a function (at
 * .user.tags[3])") and returns 0. Raises only on memory errors, and even then
 * leaks nothing. Runs no user code (raw access only; the only metatable field
 * read is __jsontype, with rawget). [-0, +1, m] */
int json_encode(lua_State *L, int idx);

/* Decodes len bytes at s. On success pushes the Lua value and returns 1. On
 * invalid JSON pushes a message (e.g. "invalid JSON at byte 17: ...") and
 * returns 0. Raises only on memory errors, and leaks nothing even then.
 * [-0, +1, m] */
int json_decode(lua_State *L, const char *s, size_t len);

/* Adds to the table on top of the stack: json_encode(v) and json_decode(s)
 * Lua functions that raise "rcache_live.json: encode: <cause>" /
 * "rcache_live.json: decode: <cause>" on failure, plus the fields null (light
 * userdata NULL) and array_mt (the registry array metatable). [-0, +0, m] */
void json_register(lua_State *L);

#endif
