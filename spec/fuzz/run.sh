#!/usr/bin/env bash
# spec/fuzz/run.sh [seconds-per-target] [extra libFuzzer args...]
#
# Builds the libFuzzer targets (clang, ASan + UBSan) into build/fuzz/ and
# runs each one for seconds-per-target (default 30: the CI smoke run, 60 s for
# both) on a temporary copy of its corpus: spec/fuzz/seeds/<target>/ (written
# by hand) plus spec/fuzz/corpus/<target>/ (what earlier long runs found,
# minimized). The checkout is never written to, except build/fuzz/ and, with
# FUZZ_MINIMIZE=1, spec/fuzz/corpus/. Crash, leak, timeout and OOM inputs go to
# build/fuzz/artifacts/<target>-*; the full logs to build/fuzz/<target>.log.
# Exits non-zero if any target failed. Prints one summary line per target.
#
# Environment:
#   FUZZ_TARGETS="json reply"  which targets (spec/fuzz/fuzz_<target>.c)
#   FUZZ_PARALLEL=1            run the targets at the same time (one core each)
#   FUZZ_WORK=dir              keep the working corpora in dir/<target>/
#                              (default: a temporary directory, removed)
#   FUZZ_MINIMIZE=1            after a clean run, minimize seeds + corpus + what
#                              was found (libFuzzer -merge=1 into a fresh
#                              directory) and replace spec/fuzz/corpus/<target>/
#                              with the result, less what the seeds already
#                              cover. Refused under CI.
#   FUZZ_OUT=build/fuzz        where the binaries, logs and artifacts go
#   FUZZ_CC=clang              the compiler (one with libFuzzer: clang)
#
# Reproduce a crash:  build/fuzz/fuzz_json build/fuzz/artifacts/json-crash-<sha1>
set -euo pipefail
cd "$(dirname "$0")/../.."

secs=${1:-30}
[ $# -gt 0 ] && shift
case $secs in '' | *[!0-9]*) echo "run.sh: seconds-per-target must be a whole number, got '$secs'" >&2; exit 2 ;; esac

targets=${FUZZ_TARGETS:-json reply}
cc=${FUZZ_CC:-clang} # not $CC: make passes CC=gcc on, which builds no fuzzer
out=${FUZZ_OUT:-build/fuzz}
art=$out/artifacts
max_len=65536

if [ "${FUZZ_MINIMIZE:-0}" = 1 ] && [ -n "${CI:-}" ]; then
  echo "run.sh: FUZZ_MINIMIZE rewrites spec/fuzz/corpus/: not under CI" >&2
  exit 2
fi

# --- what the build needs, installed only if missing (Debian, as root) ------
install_debs() {
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "run.sh: missing, install them: $*" >&2
    exit 1
  fi
  echo "run.sh: installing $*"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
missing=()
command -v "$cc" >/dev/null || missing+=(clang)
[ -f /usr/include/lua5.4/lua.h ] || missing+=(liblua5.4-dev)
[ -f /usr/include/hiredis/hiredis.h ] || missing+=(libhiredis-dev)
[ -f /usr/include/yajl/yajl_parse.h ] || missing+=(libyajl-dev)
[ ${#missing[@]} -eq 0 ] || install_debs "${missing[@]}"

mkdir -p "$out" "$art"
probe() { # can $cc link a fuzzer with these sanitizers?
  printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; return (int)n * 0; }\n' \
    > "$out/probe.c"
  "$cc" -fsanitize=fuzzer,address,undefined "$out/probe.c" -o "$out/probe" 2>"$out/probe.log"
}
if ! probe; then # Debian ships libFuzzer and the sanitizer runtimes apart
  major=$("$cc" -dumpversion | cut -d. -f1)
  install_debs "libclang-rt-$major-dev"
  probe || { cat "$out/probe.log" >&2; echo "run.sh: $cc cannot build fuzzers" >&2; exit 1; }
fi
rm -f "$out/probe" "$out/probe.c" "$out/probe.log"

# --- build -------------------------------------------------------------------
for t in $targets; do
  "$cc" -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -std=c99 -D_GNU_SOURCE -Wall -Wextra -Isrc -I/usr/include/lua5.4 \
    "spec/fuzz/fuzz_$t.c" src/json.c src/reply.c src/compat.c \
    -o "$out/fuzz_$t" -llua5.4 -lhiredis -lyajl
done

# --- run ---------------------------------------------------------------------
if [ -n "${FUZZ_WORK:-}" ]; then
  work=$FUZZ_WORK
  mkdir -p "$work"
else
  work=$(mktemp -d "${TMPDIR:-/tmp}/rcache-fuzz.XXXXXX")
fi
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "${FUZZ_WORK:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Runs one target; its exit status is libFuzzer's (0: no finding).
fuzz_one() {
  local t=$1
  shift
  local dict=() corpus=$work/$t
  mkdir -p "$corpus"
  rm -f "$art/$t-"* # only this run's findings are listed
  # a copy, so that libFuzzer (which may rewrite the corpus it writes to)
  # never touches the checkout
  for d in "spec/fuzz/seeds/$t" "spec/fuzz/corpus/$t"; do
    [ -d "$d" ] && find "$d" -maxdepth 1 -type f -exec cp -n -t "$corpus" {} +
  done
  [ -f "spec/fuzz/$t.dict" ] && dict=("-dict=spec/fuzz/$t.dict")
  timeout -k 10 $((secs + 300)) "$out/fuzz_$t" \
    -max_total_time="$secs" -max_len=$max_len -timeout=25 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$art/$t-" "${dict[@]}" "$@" \
    "$corpus" >"$out/$t.log" 2>&1
}

# "<files> files / <bytes> bytes" in directory $1 (apparent sizes).
dir_size() {
  find "$1" -maxdepth 1 -type f -printf '%s\n' | awk '{ n++; b += $1 } END { printf "%d files / %d bytes", n, b }'
}

# One line: the run's figures, from libFuzzer's last status line and stats.
summary() {
  local t=$1 rc=$2 log=$out/$1.log last execs rate news
  last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -n 1 || true)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  news=$(sed -n 's/^stat::new_units_added: *//p' "$log" | tail -n 1)
  printf 'fuzz %-5s %s: %s execs in %s s (%s/s), cov %s, ft %s, corpus %s (%s new)\n' \
    "$t" "$([ "$rc" = 0 ] && echo ok || echo "FAILED (exit $rc)")" "${execs:-?}" "$secs" "${rate:-?}" \
    "$(sed -n 's/.*cov: \([0-9]*\).*/\1/p' <<<"$last")" "$(sed -n 's/.*ft: \([0-9]*\).*/\1/p' <<<"$last")" \
    "$(dir_size "$work/$t")" "${news:-?}"
}

declare -A rcs=()
if [ "${FUZZ_PARALLEL:-0}" = 1 ]; then
  declare -A pid_of=()
  for t in $targets; do
    fuzz_one "$t" "$@" &
    pid_of[$t]=$!
    pids+=($!)
  done
  for t in $targets; do
    rc=0
    wait "${pid_of[$t]}" || rc=$?
    rcs[$t]=$rc
  done
  pids=()
else
  for t in $targets; do
    rc=0
    fuzz_one "$t" "$@" || rc=$?
    rcs[$t]=$rc
  done
fi

failed=0
for t in $targets; do
  summary "$t" "${rcs[$t]}"
  if [ "${rcs[$t]}" != 0 ]; then
    failed=1
    echo "---- $out/$t.log (the finding) ----" >&2
    grep -v -E '^#[0-9]+\s+(NEW|REDUCE|pulse|INITED|RELOAD)' "$out/$t.log" | tail -n 60 >&2
    for f in "$art/$t-"*; do [ -e "$f" ] && echo "artifact: $f" >&2; done
  fi
done
[ $failed = 0 ] || exit 1

# --- minimize into spec/fuzz/corpus/ (long runs only) ------------------------
if [ "${FUZZ_MINIMIZE:-0}" = 1 ]; then
  for t in $targets; do
    fresh=$(mktemp -d "${TMPDIR:-/tmp}/rcache-fuzz-merge.XXXXXX")
    # the seeds go in first, so that what they cover is not added again
    [ -d "spec/fuzz/seeds/$t" ] && cp -t "$fresh" "spec/fuzz/seeds/$t"/*
    before=$(dir_size "$work/$t")
    "$out/fuzz_$t" -merge=1 -max_len=$max_len -timeout=25 -rss_limit_mb=2048 \
      "$fresh" "$work/$t" >"$out/$t.merge.log" 2>&1 \
      || { tail -n 20 "$out/$t.merge.log" >&2; rm -rf "$fresh"; exit 1; }
    for s in "spec/fuzz/seeds/$t"/*; do rm -f "$fresh/$(basename "$s")"; done
    rm -rf "spec/fuzz/corpus/$t"
    mkdir -p "spec/fuzz/corpus/$t"
    find "$fresh" -maxdepth 1 -type f -exec cp -t "spec/fuzz/corpus/$t" {} +
    rm -rf "$fresh"
    printf 'fuzz %-5s minimized: %s -> spec/fuzz/corpus/%s: %s (plus seeds: %s)\n' \
      "$t" "$before" "$t" "$(dir_size "spec/fuzz/corpus/$t")" "$(dir_size "spec/fuzz/seeds/$t")"
  done
fi
