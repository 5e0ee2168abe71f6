#!/usr/bin/env bash
# test_parallel_make.sh -- two makes on one tree never leave a broken artefact
# (run by `make test-parallel-make`, which CI runs; about a minute).
#
# `make run` in one terminal and `make test` in another once left a .so linked
# from an object that the other make was rewriting.  The Makefile now writes
# every artefact to a name of its own and renames it into place.  This script
# copies the sources to a scratch tree and, ROUNDS times (default 4): touches
# a few sources (a different set each round), runs two `make -j2 all` at once
# on that tree, and checks what they left:
#   - both makes succeeded;
#   - libstreamdb.so exports exactly the public API (test_exports.sh: every
#     client, codec and engine function, nothing else);
#   - libstreamdb.a holds every object, and a program that calls the client
#     library links against it;
#   - streamdbd, streamdb and streamdb-demo run (--version, a demo database);
#   - no temporary file (*.tmp.*) is left behind;
#   - one more make finds nothing to rebuild that it then builds wrongly (the
#     checks above hold again after it).
# Environment: CC (default cc), MAKE (default make), ROUNDS.
# Exit status 0 when every round passed.
set -u

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
CC=${CC:-cc}
MAKE=${MAKE:-make}
ROUNDS=${ROUNDS:-4}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sdb-pmake.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
tree=$tmp/tree
mkdir -p "$tree"
(cd "$top" && cp -r Makefile include proto src tests scripts conf "$tree"/)
rm -rf "$tree"/build*

checks=0
failures=0
ok() { checks=$((checks + 1)); }
fail() { checks=$((checks + 1)); failures=$((failures + 1)); echo "  FAIL  $*"; }
mk() { "$MAKE" -C "$tree" --no-print-directory CC="$CC" OPT="-O0 -g" "$@"; }

# check_tree ROUND: every artefact in $tree/build is whole.
check_tree() {
    local r=$1 b=$tree/build
    if CC=$CC BUILD=$b bash "$here/test_exports.sh" >"$tmp/exports.log" 2>&1; then ok; else
        cat "$tmp/exports.log"
        fail "round $r: libstreamdb.so does not export the public API"
    fi
    local nobj nar
    nobj=$(find "$tree/src/engine" "$tree/src/common" "$tree/src/client" -name '*.c' | wc -l)
    nar=$(ar t "$b/libstreamdb.a" 2>/dev/null | wc -l)
    if [ "$nar" -eq "$nobj" ]; then ok; else
        fail "round $r: libstreamdb.a holds $nar objects, expected $nobj"
    fi
    if "$CC" -I"$tree/include" -I"$tree/proto" -o "$tmp/rt" "$top/tests/packaging/client_roundtrip.c" \
        "$b/libstreamdb.a" -pthread -lz 2>"$tmp/link.log"; then ok; else
        cat "$tmp/link.log"
        fail "round $r: a client program does not link against libstreamdb.a"
    fi
    for p in streamdbd streamdb; do
        if "$b/$p" --version >/dev/null 2>&1; then ok; else fail "round $r: $p --version fails"; fi
    done
    rm -f "$tmp/demo.sdb"
    if "$b/streamdb-demo" "$tmp/demo.sdb" >/dev/null 2>&1; then ok; else
        fail "round $r: streamdb-demo fails"
    fi
    local left
    left=$(find "$b" -name '*.tmp.*' | head -n 5)
    if [ -z "$left" ]; then ok; else fail "round $r: temporary files left: $left"; fi
}

echo "==> parallel make: $ROUNDS rounds of two \`make -j2 all\` on one tree (tests/packaging/test_parallel_make.sh)"
# Sets of sources to touch, one per round (cycled): a header every engine
# file includes, the client, the codec, single files.
sets=("include/streamdb.h"
      "include/streamdb_client.h src/common/proto.c"
      "src/engine/db_int.h src/client/conn.c"
      "include/streamdb_proto.h src/engine/journal.c")
for ((r = 1; r <= ROUNDS; r++)); do
    if ((r > 1)); then
        for f in ${sets[$(((r - 2) % ${#sets[@]}))]}; do touch "$tree/$f"; done
    fi
    mk -j2 all >"$tmp/a.log" 2>&1 &
    a=$!
    mk -j2 all >"$tmp/b.log" 2>&1 &
    b=$!
    rca=0 rcb=0
    wait $a || rca=$?
    wait $b || rcb=$?
    if [ $rca -eq 0 ] && [ $rcb -eq 0 ]; then ok; else
        tail -n 20 "$tmp/a.log" "$tmp/b.log"
        fail "round $r: make exited $rca and $rcb"
    fi
    check_tree "$r"
    if mk all >"$tmp/c.log" 2>&1; then ok; else
        tail -n 20 "$tmp/c.log"
        fail "round $r: a third make failed"
    fi
    check_tree "$r (after a third make)"
    echo "  round $r: $failures failures so far"
done
if [ "$failures" -eq 0 ]; then
    echo "parallel make: all $checks checks passed"
    exit 0
fi
echo "parallel make: $failures of $checks checks FAILED"
exit 1
