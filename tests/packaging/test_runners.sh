#!/usr/bin/env bash
# test_runners.sh -- the test runners are honest (run by `make test`):
#   1. each Check runner exits 3 (CK_RUN_NOTHING) for a suite it does not have;
#   2. `make test SUITE=nosuch`, `SUITE=pathidx TEST=nosuch` and `TEST=nosuch`
#      (scripts/run-tests.sh) fail: no runner ran a check;
#   3. a test that cannot run is SKIPPED, not passed: test_valgrind with no
#      valgrind on PATH passes as "1 skipped", which the runner lists, and
#      fails under SDB_NO_SKIP=1.
# Usage: tests/packaging/test_runners.sh BUILD_DIR.  Exit status 0 when every
# check passed.
set -u

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=${1:-build}
case $build in /*) ;; *) build=$top/$build ;; esac
tmp=$(mktemp -d "${TMPDIR:-/tmp}/sdb-runners.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
unset SDB_SKIP_FILE SDB_NO_SKIP

checks=0 failures=0
ok() { checks=$((checks + 1)); echo "  ok    $*"; }
fail() { checks=$((checks + 1)); failures=$((failures + 1)); echo "  FAIL  $*"; }

echo "==> runners: a selection that matches nothing fails, a skip is counted (tests/packaging/test_runners.sh)"
export SDB_STREAMDBD=$build/streamdbd
for r in check_all check_integration check_cli; do
    rc=0
    "$build/$r" nosuch >"$tmp/out" 2>&1 || rc=$?
    if [ $rc -eq 3 ] && grep -q "nothing to run for suite 'nosuch'" "$tmp/out"; then
        ok "$r nosuch: exit 3, says it has no such suite"
    else
        fail "$r nosuch: exit $rc: $(head -c 300 "$tmp/out")"
    fi
done
for sel in "nosuch|" "pathidx|nosuch" "|nosuch"; do
    s=${sel%|*} t=${sel#*|} rc=0
    (cd "$top" && bash scripts/run-tests.sh "$build" "$s" "$t") >"$tmp/out" 2>&1 || rc=$?
    if [ $rc -ne 0 ] && grep -q "nothing ran" "$tmp/out"; then
        ok "make test SUITE='$s' TEST='$t' fails: nothing ran"
    else
        fail "make test SUITE='$s' TEST='$t': exit $rc: $(tail -c 300 "$tmp/out")"
    fi
done

# test_valgrind finds valgrind on PATH; with none it must skip, visibly.
: >"$tmp/skips"
rc=0
env PATH=/nonexistent SDB_SKIP_FILE="$tmp/skips" "$build/check_integration" process valgrind \
    >"$tmp/out" 2>&1 || rc=$?
if [ $rc -eq 0 ] && grep -q "1 skipped" "$tmp/out" && grep -q "^test_valgrind: " "$tmp/skips"; then
    ok "test_valgrind without valgrind: SKIPPED, counted and recorded"
else
    fail "test_valgrind without valgrind: exit $rc, skips '$(cat "$tmp/skips")': $(tail -c 400 "$tmp/out")"
fi
rc=0
env PATH=/nonexistent SDB_NO_SKIP=1 "$build/check_integration" process valgrind >"$tmp/out" 2>&1 || rc=$?
if [ $rc -eq 1 ] && grep -q "SKIPPED test_valgrind" "$tmp/out"; then
    ok "the same under SDB_NO_SKIP=1: fails"
else
    fail "test_valgrind without valgrind, SDB_NO_SKIP=1: exit $rc: $(tail -c 400 "$tmp/out")"
fi

if [ "$failures" -eq 0 ]; then
    echo "runners: all $checks checks passed"
    exit 0
fi
echo "runners: $failures of $checks checks FAILED"
exit 1
