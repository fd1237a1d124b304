#!/usr/bin/env bash
# spec/load/run.sh [ops-per-process]: the load test (default 50000 operations
# per process).
#
# Starts a private redis-server on a unix socket (no TCP port) and runs two
# scenarios, each on a fresh server and a fresh namespace:
#   normal   LOAD_PROCS (4) worker processes, spec/load/worker.lua, each doing
#            the mixed operations on one cache in the same namespace;
#   restart  the same, with appendonly yes / appendfsync always, and the
#            server stopped with SIGTERM once every worker is half-way, then
#            started again on the same socket; the workers retry what failed.
# Then spec/load/run.lua checks what the server holds against the workers'
# journals and prints the figures. Exits non-zero on any failure.
#
# Environment: LOAD_PROCS (4), LOAD_IDLE_MINUTES (0.1: cleanup's idle time;
# every other record lives less than that), LOAD_SEED (random), LUA (lua5.4),
# LOAD_SCENARIOS ("normal restart"), LOAD_TMPDIR (where the servers keep
# their files; default /dev/shm if writable, else $TMPDIR or /tmp),
# LOAD_AOF (yes; "no" restarts a server without persistence: the restart
# scenario must then fail, which shows that its check can),
# LUA_PATH / LUA_CPATH (default: this checkout, built with `make build`).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1

OPS=${1:-50000}
PROCS=${LOAD_PROCS:-4}
IDLE=${LOAD_IDLE_MINUTES:-0.1}
SEED=${LOAD_SEED:-$((RANDOM * 32768 + RANDOM))}
LUA=${LUA:-lua5.4}
export LUA_PATH="${LUA_PATH:-./lua/?.lua;./lua/?/init.lua;./spec/?.lua;;}"
export LUA_CPATH="${LUA_CPATH:-./build/5.4/?.so;;}"

case $OPS in ''|*[!0-9]*) echo "usage: $0 [ops-per-process]" >&2; exit 2 ;; esac
$LUA -e 'require "rcache_live"' || { echo "run.sh: cannot load rcache_live (make build?)" >&2; exit 1; }

# The servers' files (socket, AOF) on tmpfs when there is one: appendfsync
# always then costs a write, not a disk flush, and the restart is the same.
if [ -z "${LOAD_TMPDIR:-}" ]; then
  LOAD_TMPDIR=${TMPDIR:-/tmp}
  [ -d /dev/shm ] && [ -w /dev/shm ] && LOAD_TMPDIR=/dev/shm
fi
base=$(mktemp -d "$LOAD_TMPDIR/rcache-load.XXXXXX") || exit 1
pid=""
workers=()

# Whether process $1 is running (a zombie child is not).
alive() {
  local state
  state=$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

now_ms() { date +%s%3N; }

start_server() { # dir
  redis-server "$1/redis.conf" &
  pid=$!
  for _ in $(seq 500); do
    [ "$(redis-cli -s "$1/redis.sock" ping 2>/dev/null)" = PONG ] && return 0
    alive "$pid" || break
    sleep 0.01
  done
  echo "run.sh: redis-server did not start" >&2
  cat "$1/redis.log" >&2
  return 1
}

# SIGTERM (a clean shutdown: the AOF is flushed), up to 15 s, then SIGKILL.
stop_server() {
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 1500); do alive "$pid" || break; sleep 0.01; done
  if alive "$pid"; then
    echo "run.sh: redis-server ignored SIGTERM for 15 s, killing it" >&2
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    pid=""
    return 1
  fi
  wait "$pid" 2>/dev/null
  pid=""
}

cleanup() {
  local w
  for w in "${workers[@]}"; do alive "$w" && kill "$w" 2>/dev/null; done
  stop_server
  rm -rf "$base"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# run_scenario NAME RESTART(0|1)
run_scenario() {
  local name=$1 restart=$2 dir="$base/$1" ns="load-$1-$$" p w rc exits=() seed
  mkdir -p "$dir"
  {
    echo "port 0"
    echo "unixsocket $dir/redis.sock"
    echo "unixsocketperm 700"
    echo "dir $dir"
    echo "logfile $dir/redis.log"
    echo "daemonize no"
    echo 'save ""'
    if [ "$restart" = 1 ] && [ "${LOAD_AOF:-yes}" = yes ]; then
      echo "appendonly yes"
      echo "appendfsync always"
    else
      echo "appendonly no"
    fi
  } > "$dir/redis.conf"
  start_server "$dir" || return 1

  workers=()
  for p in $(seq "$PROCS"); do
    seed=$((SEED + p + (restart * 1000)))
    $LUA spec/load/worker.lua "socket=$dir/redis.sock" "ns=$ns" "id=$p" "ops=$OPS" "seed=$seed" \
      "out=$dir/journal.$p" "progress=$dir/progress.$p" "go=$dir/go" "idle=$IDLE" "retry=$restart" \
      "restarted=$dir/restarted" \
      > "$dir/worker.$p.log" 2>&1 &
    workers+=($!)
  done
  touch "$dir/go"

  if [ "$restart" = 1 ]; then
    # every worker half-way (or gone), then SIGTERM and start again
    local half=$((OPS / 2)) ready n deadline=$(( $(date +%s) + 900 ))
    while [ "$(date +%s)" -lt "$deadline" ]; do
      ready=1
      for p in $(seq "$PROCS"); do
        n=0
        [ -f "$dir/progress.$p" ] && read -r n < "$dir/progress.$p"
        if [ "${n:-0}" -lt "$half" ] && alive "${workers[$((p - 1))]}"; then ready=0; break; fi
      done
      [ "$ready" = 1 ] && break
      sleep 0.01
    done
    echo "kill $(now_ms)" > "$dir/restart"
    stop_server || return 1
    start_server "$dir" || return 1
    echo "up $(now_ms)" >> "$dir/restart"
    touch "$dir/restarted"
  fi

  for w in "${workers[@]}"; do
    wait "$w"
    exits+=($?)
  done
  workers=()
  for p in $(seq "$PROCS"); do
    if [ -s "$dir/worker.$p.log" ]; then sed "s/^/[$name] worker $p: /" "$dir/worker.$p.log"; fi
  done

  echo "[$name] seed: $SEED (LOAD_SEED=$SEED replays the same random choices)"
  local extra=()
  [ "$restart" = 1 ] && extra=("restart=$dir/restart")
  $LUA spec/load/run.lua "scenario=$name" "dir=$dir" "socket=$dir/redis.sock" "ns=$ns" "procs=$PROCS" \
    "ops=$OPS" "exits=$(IFS=,; echo "${exits[*]}")" "${extra[@]}"
  rc=$?
  stop_server || rc=1
  return $rc
}

started=$(date +%s)
status=0
ran=0
for scenario in ${LOAD_SCENARIOS:-normal restart}; do
  case $scenario in
    normal) run_scenario normal 0 || status=1 ;;
    restart) run_scenario restart 1 || status=1 ;;
    *) echo "run.sh: no scenario $scenario (normal, restart)" >&2; exit 2 ;;
  esac
  ran=$((ran + 1))
done
if [ "$status" = 0 ]; then
  echo "load: OK ($PROCS processes x $OPS operations, $ran scenarios, $(( $(date +%s) - started )) s)"
else
  echo "load: FAILED ($(( $(date +%s) - started )) s)"
fi
exit $status
