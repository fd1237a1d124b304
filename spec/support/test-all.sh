#!/usr/bin/env bash
# spec/support/test-all.sh VERSION...: `make test LUA_VERSION=<v>` for each
# runtime given (5.1 5.2 5.3 5.4 luajit), one after the other: each installs
# what it misses, builds into build/<v>/ and runs every spec. `make test-all`
# runs it. Prints each runtime's summary line, then one line adding them up,
# "N passed, N failed, N skipped". Exits non-zero if any runtime failed,
# including a build that broke before the specs ran.
set -uo pipefail

make=${MAKE:-make}
logs=$(mktemp -d "${TMPDIR:-/tmp}/rcache-test-all.XXXXXX")
trap 'rm -rf "$logs"' EXIT

summary_re='^([0-9]+) passed, ([0-9]+) failed, ([0-9]+) skipped$'
status=0 passed=0 failed=0 skipped=0 lines=()
for v in "$@"; do
  echo "=== LUA_VERSION=$v"
  "$make" --no-print-directory test LUA_VERSION="$v" 2>&1 | tee "$logs/$v.log"
  rc=${PIPESTATUS[0]}
  last=$(grep -E "$summary_re" "$logs/$v.log" | tail -n 1)
  if [[ $last =~ $summary_re ]]; then
    passed=$((passed + BASH_REMATCH[1]))
    failed=$((failed + BASH_REMATCH[2]))
    skipped=$((skipped + BASH_REMATCH[3]))
  else
    last="no summary: make test exited with $rc before the specs finished"
    failed=$((failed + 1))
  fi
  [ "$rc" = 0 ] || status=1
  lines+=("$(printf '%-7s %s' "$v:" "$last")")
done

echo "=== all runtimes"
printf '%s\n' "${lines[@]}"
echo "$passed passed, $failed failed, $skipped skipped"
exit "$status"
