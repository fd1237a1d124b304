#!/usr/bin/env bash
# spec/support/valgrind.sh [BUSTED ARGS...]: the specs with the busted process
# (lua5.4, the C module loaded into it) under valgrind memcheck. `make
# test-valgrind` runs it. Exits non-zero on a failed spec, on any memcheck
# error and on any "definitely lost" block; with none, the last line printed
# is busted's summary again, tagged: "valgrind: N passed, N failed, N skipped".
# Arguments replace the default set of specs (see "Which specs" below).
#
# Switches (environment): BUILD_DIR=build/valgrind-5.4, VALGRIND_KEEP_LOGS=1
# keeps valgrind's log, VALGRIND_EXTRA='...' adds memcheck options.
#
# The module is built without sanitizers (-O1 -g) into build/valgrind-5.4.
# Only the busted process runs under valgrind (--trace-children=no): the
# children the specs start (lua5.4 examples, the two-process update test,
# redis-cli, luarocks...) run natively with the same build of the module;
# asan.sh covers them. lua-preload.so (built here) is preloaded into the
# busted process only to open core.so with RTLD_NODELETE, so that the dlclose
# of lua_close at exit leaves it mapped and a leak's stack names our
# functions and lines (else "???").
#
# Which specs: all of them minus 9 tests, left out by name (busted
# --filter-out patterns, VALGRIND_FILTER_OUT below) because memcheck slows
# the busted process down 20-50 times and these measure time or sheer size
# on code paths the rest of the suite covers:
#   "^load " (load_spec, 2 tests): load tests; their work is in the 4 worker
#      processes they start (not traced), their verdicts are timing-based.
#   "big values 1,000,000 " and "big values a 64 MB " (hostile_spec, 4
#      tests): the same encoder/decoder/reply paths as the 1 MB and smaller
#      cases that stay in, at 145 s of memcheck time, and they assert a time
#      limit.
#   "cut by a fault" (faults_spec): 2000-record rounds with a 20 s limit (45 s
#      under memcheck); the shorter fault tests (SIGKILL, CLIENT KILL,
#      SIGSTOP, restarts, auth) stay in.
#   "an add of megabytes gives up in a bounded time" (faults_spec) and
#   "a bucket's keys expire with its last record" (bookkeeping_spec): a
#      1.4 s deadline; a 0.3 s TTL that runs out before the check.
# A renamed test simply comes back in (and fails on its clock, visibly).
# The rest takes 2-3 minutes on 2 cores; every test still runs under asan.sh.
# Arguments replace the set and drop the filters:
#   spec/support/valgrind.sh spec              # everything, for the patient
# spec/support/valgrind.supp holds the suppressions; none may name
# rcache_live or core.so.
set -euo pipefail
cd "$(dirname "$0")/../.."

LUA_VERSION=${LUA_VERSION:-5.4}
BUILD_DIR=${BUILD_DIR:-build/valgrind-$LUA_VERSION}
REAL_LUA=$(command -v "lua$LUA_VERSION") || { echo "valgrind.sh: lua$LUA_VERSION not found" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "valgrind.sh: valgrind not found (apt-get install valgrind)" >&2; exit 2; }
BUSTED_SCRIPT=$(command -v busted) || { echo "valgrind.sh: busted not found" >&2; exit 2; }

# Build (from scratch when the flags changed: the Makefile does not track them).
VG_CFLAGS='-O1 -g'
stamp="${CC:-cc} $VG_CFLAGS"
if [ "$(cat "$BUILD_DIR/.flags" 2>/dev/null)" != "$stamp" ]; then rm -rf "$BUILD_DIR"; fi
make --no-print-directory build BUILD="$BUILD_DIR" LUA_VERSION="$LUA_VERSION" CFLAGS="$VG_CFLAGS"
echo "$stamp" > "$BUILD_DIR/.flags"

cat > "$BUILD_DIR/lua-preload.c" <<'C'
/* spec/support/valgrind.sh: in a Lua interpreter (one that exports the Lua
   API), RCACHE_KEEP_LOADED=<core.so> opens the module with RTLD_NODELETE at
   start-up, so lua_close's dlclose leaves it mapped and valgrind can name its
   functions in leak stacks at exit. Anywhere else (valgrind's launcher, sh,
   redis-cli...) it does nothing. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
__attribute__((constructor)) static void rcache_lua_preload(void) {
  const char *keep = getenv("RCACHE_KEEP_LOADED");
  if (keep && *keep && dlsym(RTLD_DEFAULT, "lua_newstate")) dlopen(keep, RTLD_LAZY | RTLD_NODELETE);
}
C
cc -O1 -shared -fPIC -o "$BUILD_DIR/lua-preload.so" "$BUILD_DIR/lua-preload.c" -ldl

VALGRIND_FILTER_OUT=(
  "^load "
  "big values 1,000,000 "
  "big values a 64 MB "
  "cut by a fault"
  "an add of megabytes gives up in a bounded time"
  "a bucket's keys expire with its last record"
)
if [ $# -eq 0 ]; then
  for f in "${VALGRIND_FILTER_OUT[@]}"; do set -- "$@" "--filter-out=$f"; done
  set -- "$@" spec
  echo "valgrind.sh: every spec but the tests named like:"
  printf '  %s\n' "${VALGRIND_FILTER_OUT[@]}"
fi

logdir=$(mktemp -d "${TMPDIR:-/tmp}/rcache-valgrind.XXXXXX")
# shellcheck disable=SC2317 # called by the trap
cleanup() { if [ "${VALGRIND_KEEP_LOGS:-0}" = 1 ]; then echo "valgrind.sh: log kept in $logdir" >&2; else rm -rf "$logdir"; fi; }
trap cleanup EXIT

export LUA_PATH='./lua/?.lua;./lua/?/init.lua;./spec/?.lua;;'
export LUA_CPATH="./$BUILD_DIR/?.so;;"

# shellcheck disable=SC2054,SC2206 # a comma inside an option; VALGRIND_EXTRA splits on purpose
vg=(valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite,indirect,possible
    --errors-for-leak-kinds=definite --error-exitcode=1 --trace-children=no --child-silent-after-fork=yes
    --track-origins=yes --num-callers=40 --suppressions="$PWD/spec/support/valgrind.supp"
    --log-file="$logdir/valgrind.%p.log" ${VALGRIND_EXTRA:-})

started=$(date +%s)
set +e
spec/support/with-redis env LD_PRELOAD="$PWD/$BUILD_DIR/lua-preload.so" \
  RCACHE_KEEP_LOADED="$PWD/$BUILD_DIR/rcache_live/core.so" \
  "${vg[@]}" "$REAL_LUA" "$BUSTED_SCRIPT" -o spec/support/summary.lua "$@" 2>&1 | tee "$logdir/busted.out"
status=${PIPESTATUS[0]}
set -e
seconds=$(( $(date +%s) - started ))
summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' "$logdir/busted.out" | tail -n 1 || true)

# One log: the busted process (valgrind logs nothing for untraced children).
shopt -s nullglob
logs=("$logdir"/valgrind.*.log)
[ ${#logs[@]} -gt 0 ] || { echo "valgrind.sh: valgrind wrote no log (exit $status)"; exit 1; }
# (--child-silent-after-fork: a popen's child between fork and exec writes
# nothing; should one still write, the process that summed up is the one.)
log=$(grep -l "ERROR SUMMARY" "${logs[@]}" | head -n 1 || true)
[ -n "$log" ] || { echo "valgrind.sh: valgrind's log has no ERROR SUMMARY (busted exit $status)"; cat "${logs[@]}"; exit 1; }
errors=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' "$log" | tail -n 1)
definite=$(sed -n 's/.*definitely lost: \([0-9,]*\) bytes.*/\1/p' "$log" | tail -n 1 | tr -d ,)
echo "---- valgrind ($seconds s, ${#logs[@]} log):"
sed -n '/HEAP SUMMARY/,$p' "$log" | sed 's/^==[0-9]*== //'

if [ "${errors:-x}" != 0 ] || [ "${definite:-0}" != 0 ]; then
  echo "---- valgrind's full log:"
  sed 's/^==[0-9]*== //' "$log"
  echo "valgrind.sh: FAILED: ${errors:-?} memcheck error(s), ${definite:-0} bytes definitely lost; busted: ${summary:-no summary}, exit $status"
  exit 1
fi
[ -n "$summary" ] || { echo "valgrind.sh: busted printed no summary (exit $status)"; exit 1; }
echo "valgrind.sh: 0 memcheck errors, 0 bytes definitely lost (busted process, $BUILD_DIR, $seconds s)"
echo "valgrind: $summary"
exit "$status"
