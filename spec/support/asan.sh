#!/usr/bin/env bash
# spec/support/asan.sh [BUSTED ARGS...]: every spec against the C module built
# with AddressSanitizer + UndefinedBehaviorSanitizer (LeakSanitizer included).
# `make test-asan` runs it. Exits non-zero on a failed spec or on any
# sanitizer report from any Lua process of the run. With no report, the last
# line printed is busted's summary again, tagged: "asan: N passed, N failed,
# N skipped". Arguments replace the default "spec" (e.g. spec/json_spec.lua).
#
# Switches (environment): SAN_CC=clang (or gcc), BUILD_DIR=build/asan-5.4,
# SAN_KEEP_LOGS=1 keeps the report directory.
#
# Recipe: loading an ASan-built module into the stock lua5.4
# -----------------------------------------------------------
# lua5.4 is not instrumented, so the sanitizer runtime must be the first
# library of the process: preload it, then require the module as usual.
#   make build CC=clang BUILD=build/asan-5.4 \
#     CFLAGS='-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined' \
#     LDFLAGS='-fsanitize=address,undefined -shared-libsan'
#   export LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' LUA_CPATH='./build/asan-5.4/?.so;;'
#   LD_PRELOAD=$(clang -print-file-name=libclang_rt.asan-x86_64.so) \
#   ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
#   UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
#     lua5.4 -e 'print(require("rcache_live")._VERSION)'
# With gcc: CC=gcc, LDFLAGS='-fsanitize=address,undefined' and
# LD_PRELOAD=$(readlink -f "$(gcc -print-file-name=libasan.so)").
# Without the preload, require fails: "libclang_rt.asan-x86_64.so: cannot
# open shared object file" (clang) or "ASan runtime does not come first in
# initial library list" (gcc).
#
# How this script applies it to a whole run
# -----------------------------------------
# An LD_PRELOAD exported to the whole run would put ASan into every program
# the specs spawn (sh, sed, mktemp, redis-cli, luarocks' gcc/cc1/as/ld):
# those leak by design and LSan fails them, and the llvm-symbolizer they
# start inherits their stderr and keeps io.popen pipes open (a hang). So only
# Lua processes get the runtime: build/asan-5.4/bin/lua5.4 is a shim, first on
# PATH, that execs the real lua5.4 with LD_PRELOAD="<asan runtime>
# lua-preload.so"; lua-preload.so's constructor drops LD_PRELOAD from the
# environment again, so the children of a Lua process start clean, except a
# lua5.4 child, which comes back through the shim. It also opens core.so with
# RTLD_NODELETE, so that lua_close's dlclose at exit does not unmap it and a
# leak report names our functions and lines. That covers busted itself
# (run as "lua5.4 busted", what busted --lua=lua5.4 does), every
# examples/*.lua run by examples_spec, the two-process update test and the
# other "lua5.4 -e" children. Not covered: luarocks (runs /usr/bin/lua5.x by
# absolute path through lua-any; it only builds, it loads no module) and the
# installed-tree check in module_spec, which runs the luarocks-built,
# uninstrumented core.so (under the same preloaded runtime, so it is still
# checked for leaks and bad frees of the interpreter process).
#
# Every sanitizer report goes to a file (log_path) whatever process wrote
# it, so a report is never lost in an output a spec throws away; the script
# prints them all after the run and fails if there is any (it also fails on
# a report line in the output: gcc's libubsan ignores log_path). LSan
# suppressions: spec/support/lsan.supp (only what is not ours; none may name
# rcache_live or core.so).
set -euo pipefail
cd "$(dirname "$0")/../.."

LUA_VERSION=${LUA_VERSION:-5.4}
SAN_CC=${SAN_CC:-clang}
BUILD_DIR=${BUILD_DIR:-build/asan-$LUA_VERSION}
REAL_LUA=$(command -v "lua$LUA_VERSION") || { echo "asan.sh: lua$LUA_VERSION not found" >&2; exit 2; }
command -v "$SAN_CC" >/dev/null || { echo "asan.sh: $SAN_CC not found (SAN_CC=gcc uses gcc's libasan)" >&2; exit 2; }

SAN_CFLAGS='-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined'
case "$("$SAN_CC" --version 2>/dev/null | head -n 1)" in
  *clang*)
    RUNTIME=$("$SAN_CC" -print-file-name=libclang_rt.asan-x86_64.so)
    SAN_LDFLAGS='-fsanitize=address,undefined -shared-libsan' ;;
  *)
    RUNTIME=$(readlink -f "$("$SAN_CC" -print-file-name=libasan.so)")
    SAN_LDFLAGS='-fsanitize=address,undefined' ;;
esac
[ -f "$RUNTIME" ] || { echo "asan.sh: no ASan runtime for $SAN_CC (looked for $RUNTIME)" >&2; exit 2; }

# Build (from scratch when the flags changed: the Makefile does not track them).
stamp="$SAN_CC $SAN_CFLAGS $SAN_LDFLAGS"
if [ "$(cat "$BUILD_DIR/.flags" 2>/dev/null)" != "$stamp" ]; then rm -rf "$BUILD_DIR"; fi
make --no-print-directory build CC="$SAN_CC" BUILD="$BUILD_DIR" LUA_VERSION="$LUA_VERSION" \
  CFLAGS="$SAN_CFLAGS" LDFLAGS="$SAN_LDFLAGS"
echo "$stamp" > "$BUILD_DIR/.flags"
[ "$(nm -D "$BUILD_DIR/rcache_live/core.so" | grep -c __asan_report)" -gt 0 ] \
  || { echo "asan.sh: $BUILD_DIR/rcache_live/core.so is not instrumented" >&2; exit 2; }

# The preload helper and the lua shim.
mkdir -p "$BUILD_DIR/bin"
cat > "$BUILD_DIR/lua-preload.c" <<'C'
/* spec/support/asan.sh: preloaded after the ASan runtime into Lua processes.
   - RCACHE_KEEP_LOADED=<core.so>: open the module now with RTLD_NODELETE, so
     the dlclose of lua_close at exit leaves it mapped and leak reports name
     its functions and lines (else "<unknown module>").
   - The dynamic loader has read LD_PRELOAD by now: drop it for the children
     (sh, sed, gcc...), which must not run under the sanitizer. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
__attribute__((constructor)) static void rcache_lua_preload(void) {
  const char *keep = getenv("RCACHE_KEEP_LOADED");
  if (keep && *keep && dlsym(RTLD_DEFAULT, "lua_newstate")) dlopen(keep, RTLD_LAZY | RTLD_NODELETE);
  unsetenv("LD_PRELOAD");
}
C
cc -O1 -shared -fPIC -o "$BUILD_DIR/lua-preload.so" "$BUILD_DIR/lua-preload.c" -ldl
cat > "$BUILD_DIR/bin/lua$LUA_VERSION" <<SH
#!/bin/sh
# asan.sh's shim: the real lua$LUA_VERSION with the sanitizer runtime preloaded.
LD_PRELOAD="$RUNTIME $PWD/$BUILD_DIR/lua-preload.so" exec "$REAL_LUA" "\$@"
SH
chmod +x "$BUILD_DIR/bin/lua$LUA_VERSION"

logs=$(mktemp -d "${TMPDIR:-/tmp}/rcache-asan.XXXXXX")
out="$logs.out"
# shellcheck disable=SC2317 # called by the trap
cleanup() {
  rm -f "$out"
  if [ "${SAN_KEEP_LOGS:-0}" = 1 ]; then echo "asan.sh: reports kept in $logs" >&2; else rm -rf "$logs"; fi
}
trap cleanup EXIT

# luarocks (module_spec) finds "lua5.4" on PATH and takes its directory for
# Lua's: that would be the shim's, with no headers. Pin the real one, as
# luarocks sees it before the shim goes on PATH (replaces the user config for
# this run only; the system config is still read).
if command -v luarocks >/dev/null && [ -z "${LUAROCKS_CONFIG:-}" ]; then
  lr_var() { luarocks --lua-version="$LUA_VERSION" config "variables.$1" 2>/dev/null || true; }
  cat > "$BUILD_DIR/luarocks-config.lua" <<LR
-- written by spec/support/asan.sh: the real lua$LUA_VERSION, not the shim
variables = {
  LUA_DIR = "$(lr_var LUA_DIR)", LUA_BINDIR = "$(dirname "$REAL_LUA")",
  LUA_INCDIR = "$(lr_var LUA_INCDIR)", LUA_LIBDIR = "$(lr_var LUA_LIBDIR)",
}
LR
  export LUAROCKS_CONFIG="$PWD/$BUILD_DIR/luarocks-config.lua"
fi

export PATH="$PWD/$BUILD_DIR/bin:$PATH"
export LUA_PATH='./lua/?.lua;./lua/?/init.lua;./spec/?.lua;;'
export LUA_CPATH="./$BUILD_DIR/?.so;;"
export RCACHE_KEEP_LOADED="$PWD/$BUILD_DIR/rcache_live/core.so"
# log_path is a common flag: both runtimes write to $logs/san.<pid>.
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:halt_on_error=1:detect_stack_use_after_return=1:log_path=$logs/san"
export LSAN_OPTIONS="suppressions=$PWD/spec/support/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$logs/san"

# The shim works, the module is the instrumented one, the runtime is there.
"lua$LUA_VERSION" -e '
  local so = package.searchpath("rcache_live.core", package.cpath)
  assert(so and so:find("'"$BUILD_DIR"'", 1, true), "not the ASan build: " .. tostring(so))
  require "rcache_live"'

[ $# -gt 0 ] || set -- spec
# = `busted --lua=lua5.4 ...`, which re-runs itself as "lua5.4 busted ..." (the
# shim) through sh -c, but without losing the quoting of the arguments.
set +e
spec/support/with-redis "lua$LUA_VERSION" "$(command -v busted)" -o spec/support/summary.lua "$@" 2>&1 | tee "$out"
status=${PIPESTATUS[0]}
set -e
summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' "$out" | tail -n 1 || true)

# A report that bypassed log_path (gcc's libubsan writes to stderr) shows up
# in the output of busted or of a spec that printed a child's stderr.
stray=$(grep -c -E 'SUMMARY: (Address|Leak|UndefinedBehavior)Sanitizer|^==[0-9]+==ERROR: |: runtime error: ' "$out" || true)
reports=$(find "$logs" -type f | sort)
if [ -n "$reports" ] || [ "$stray" -gt 0 ]; then
  for f in $reports; do echo "==== sanitizer report $(basename "$f")"; cat "$f"; done
  echo "asan.sh: FAILED: $(echo "$reports" | grep -c . || true) sanitizer report file(s) above, $stray report line(s) in the output; busted: ${summary:-no summary}, exit $status"
  exit 1
fi
[ -n "$summary" ] || { echo "asan.sh: busted printed no summary (exit $status)"; exit 1; }
echo "asan.sh: 0 sanitizer reports (ASan+LSan+UBSan, $SAN_CC, $BUILD_DIR)"
echo "asan: $summary"
exit "$status"
