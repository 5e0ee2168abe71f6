#!/usr/bin/env bash
# test_exports.sh -- checks that libstreamdb.so exports exactly the public API
# (run by `make test`).
#
# The library is built with -fvisibility=hidden; the public headers
# (include/streamdb.h, streamdb_client.h, streamdb_proto.h) mark what they
# declare as exported (SDB_VISIBILITY_PUSH/POP in streamdb.h).  This script
# lists the functions those headers declare (from the preprocessed headers, so
# comments and macros do not fool it) and the symbols the .so defines
# (nm -D --defined-only), and fails on any difference: an exported internal
# (an application with a function of the same name would break) or a public
# function that is not exported (an application could not link).
#
# Usage: tests/packaging/test_exports.sh [path/to/libstreamdb.so]
# Environment: CC (default cc), BUILD (default build).  Exit status 0 when the
# two lists are equal, 1 otherwise.
set -u

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
CC=${CC:-cc}
BUILD=${BUILD:-build}
case $BUILD in /*) build=$BUILD ;; *) build=$top/$BUILD ;; esac
so=${1:-$build/libstreamdb.so}

echo "==> exports: $so against include/*.h (tests/packaging/test_exports.sh)"
if [ ! -f "$so" ]; then
    echo "  FAIL  no $so (build it first: make lib)"
    exit 1
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/sdb-exports.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# Declared: every declaration (text between semicolons at any level, after
# preprocessing) that is not a typedef and has a parameter list; its name is
# the identifier before the first "(" that is not "(*".  The system headers
# the public ones include (stddef.h, stdint.h) declare no function; the
# pragma lines and compiler-reserved names (__attribute__) are left out.
for h in "$top"/include/*.h; do printf '#include "%s"\n' "$h"; done >"$tmp/all.c"
if ! "$CC" -E -P -I"$top/include" -I"$top/proto" "$tmp/all.c" >"$tmp/all.i" 2>"$tmp/cc.log"; then
    cat "$tmp/cc.log"
    echo "  FAIL  $CC -E on the public headers"
    exit 1
fi
grep -v '^[[:space:]]*#' "$tmp/all.i" | tr '\n' ' ' | tr ';{}' '\n\n\n' |
    grep -v '^[[:space:]]*typedef\b' |
    sed -n 's/^[^(]*[^A-Za-z0-9_(]\([A-Za-z_][A-Za-z0-9_]*\)[[:space:]]*(\([^*].*\|\)$/\1/p' |
    grep -v '^__' | sort -u >"$tmp/declared"
nm -D --defined-only "$so" | awk '{ print $NF }' | sed 's/@.*//' | sort -u >"$tmp/exported"

ndecl=$(wc -l <"$tmp/declared")
nexp=$(wc -l <"$tmp/exported")
failures=0
if [ "$ndecl" -lt 50 ]; then
    echo "  FAIL  found only $ndecl functions in include/*.h: the parser is broken"
    failures=1
fi
extra=$(comm -13 "$tmp/declared" "$tmp/exported")
missing=$(comm -23 "$tmp/declared" "$tmp/exported")
if [ -n "$extra" ]; then
    echo "  FAIL  exported but not declared in include/*.h (make them static, or internal):"
    printf '          %s\n' $extra
    failures=1
fi
if [ -n "$missing" ]; then
    echo "  FAIL  declared in include/*.h but not exported by the .so:"
    printf '          %s\n' $missing
    failures=1
fi
if [ "$failures" -ne 0 ]; then
    echo "exports: FAILED ($nexp exported, $ndecl declared)"
    exit 1
fi
echo "  ok    the .so exports exactly the $ndecl functions the public headers declare"
echo "exports: passed"
