#!/usr/bin/env bash
# run-tests.sh -- what `make test` runs once everything is built: the three
# Check runners (unit, integration, cli), then, for a full run, the packaging
# checks (the runners themselves, exported symbols, install/uninstall).
#
# Usage: scripts/run-tests.sh BUILD_DIR [SUITE [TCASE]]
#   SUITE / TCASE select one suite / test case (a tcase_create() name); every
#   runner is given them and says when it has nothing that matches (exit 3,
#   tests/check_run.h).  The run fails when no runner ran a check, so that a
#   misspelt SUITE or TEST never passes as "0 checks, 0 failures".
# Environment: SDB_NO_SKIP=1 (make test NO_SKIP=1; CI) turns every skipped
#   check into a failure; CC, MAKE, OPT, CFLAGS, LDFLAGS, LDLIBS are passed on
#   to the packaging checks.
# Prints every skipped check with its reason and the count at the end.
# Exit status: 0 when at least one check ran and nothing failed.
set -u

build=${1:?usage: run-tests.sh BUILD_DIR [SUITE [TCASE]]}
suite=${2:-}
tcase=${3:-}

skips=$(mktemp "${TMPDIR:-/tmp}/sdb-skips.XXXXXX")
trap 'rm -f "$skips"' EXIT
export SDB_SKIP_FILE=$skips

ran=0 failed=()
# runner NAME COMMAND...: runs one runner and files its outcome.
runner() {
    local name=$1 rc=0
    shift
    echo "==> $name: $*"
    "$@" || rc=$?
    case $rc in
    0) ran=$((ran + 1)) ;;
    3) ;;   # nothing matched in this runner: it said so
    *) ran=$((ran + 1)); failed+=("$name (exit $rc)") ;;
    esac
}

runner unit "$build/check_all" "$suite" "$tcase"
runner integration env SDB_STREAMDBD="$build/streamdbd" "$build/check_integration" "$suite" "$tcase"
runner cli "$build/check_cli" "$suite" "$tcase"
if [ -z "$suite$tcase" ]; then
    runner runners bash tests/packaging/test_runners.sh "$build"
    runner exports env CC="${CC:-cc}" BUILD="$build" bash tests/packaging/test_exports.sh
    runner packaging env MAKE="${MAKE:-make}" BUILD="$build" CC="${CC:-cc}" \
        CLIENT_CFLAGS="${OPT:-} ${CFLAGS:-}" CLIENT_LDFLAGS="${LDFLAGS:-} ${LDLIBS:-}" \
        bash tests/packaging/test_install.sh
fi

nskip=$(wc -l <"$skips")
echo
if [ "$nskip" -gt 0 ]; then
    echo "==> $nskip check(s) SKIPPED (they did not run; install what they need):"
    sed 's/^/      /' "$skips"
fi
if [ "$ran" -eq 0 ]; then
    echo "==> FAILED: no runner has suite '${suite:-(any)}' test case '${tcase:-(any)}'; nothing ran"
    exit 1
fi
if [ ${#failed[@]} -gt 0 ]; then
    echo "==> FAILED: ${failed[*]}; $nskip skipped"
    exit 1
fi
if [ "$nskip" -gt 0 ] && [ "${SDB_NO_SKIP:-}" = 1 ]; then
    echo "==> FAILED: $nskip check(s) skipped and SDB_NO_SKIP=1"
    exit 1
fi
echo "==> all tests passed ($ran runners, $nskip skipped)"
