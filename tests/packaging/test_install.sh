#!/usr/bin/env bash
# test_install.sh -- checks `make install` and `make uninstall` (run by `make test`).
#
# 1. `make install DESTDIR=$tmp/root PREFIX=/usr` installs the expected tree:
#    binaries, libraries (with soname links), headers (streamdb_proto.h with the
#    opcodes.def it includes), pkg-config file, man pages, systemd unit, config;
#    no placeholder and no build-tree path is left in an installed file.
# 2. Programs built only from the installed headers and the installed
#    pkg-config file compile, link (shared and static) and run: the engine
#    (tests/packaging/engine_client.c), the wire codec (proto_ping.c) and, once
#    the client library is installed, the client (client_roundtrip.c).
# 3. The installed streamdbd starts on the installed config, answers a PING
#    (and the installed `streamdb ping`, once the CLI exists), serves a short
#    run of the installed streamdb-bench, and stops with exit status 0 on
#    SIGTERM.
# 4. A modified config survives a reinstall (the new default goes to
#    streamdbd.json.default) and an uninstall; `make uninstall` removes
#    everything else, leaving no file behind.
# 5. `systemd-analyze verify` accepts the installed unit, when the tool is there.
#
# Environment (set by the Makefile): MAKE, BUILD (build directory), CC,
# CLIENT_CFLAGS / CLIENT_LDFLAGS (extra flags for the test programs, e.g. the
# sanitizer flags of `make sanitize`).  Exit status 0 when every check passed.
set -u

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
MAKE=${MAKE:-make}
BUILD=${BUILD:-build}
CC=${CC:-cc}
CLIENT_CFLAGS=${CLIENT_CFLAGS:-}
CLIENT_LDFLAGS=${CLIENT_LDFLAGS:-}
case $BUILD in /*) build=$BUILD ;; *) build=$top/$BUILD ;; esac

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sdb-install.XXXXXX")
root=$tmp/root
daemon_pid=
cleanup() {
    if [ -n "$daemon_pid" ]; then kill -KILL "$daemon_pid" 2>/dev/null; fi
    rm -rf "$tmp"
}
trap cleanup EXIT

checks=0
failures=0
ok() { checks=$((checks + 1)); echo "  ok    $*"; }
fail() { checks=$((checks + 1)); failures=$((failures + 1)); echo "  FAIL  $*"; }
note() { echo "  note  $*"; }
skips=0
skip() {   # skip WHAT: a check that cannot run here; listed by scripts/run-tests.sh
    skips=$((skips + 1))
    echo "  SKIPPED  $*"
    if [ -n "${SDB_SKIP_FILE:-}" ]; then echo "test_install.sh: $*" >>"$SDB_SKIP_FILE"; fi
}
check() {   # check DESCRIPTION COMMAND...: ok when the command succeeds
    local what=$1
    shift
    if "$@"; then ok "$what"; else fail "$what"; fi
}
finish() {
    if [ "$failures" -eq 0 ]; then
        echo "packaging: all $checks checks passed, $skips skipped"
        exit 0
    fi
    echo "packaging: $failures of $checks checks FAILED"
    exit 1
}
run_make() {   # run_make TARGET: make TARGET into the DESTDIR, output to $tmp/make.log
    "$MAKE" -C "$top" --no-print-directory "$1" DESTDIR="$root" PREFIX=/usr BUILD="$BUILD" \
        >"$tmp/make.log" 2>&1
}

echo "==> packaging: make install DESTDIR=... PREFIX=/usr (tests/packaging/test_install.sh)"
version=$(sed -n 's/.*SDB_VERSION_STRING *"\(.*\)".*/\1/p' "$top/include/streamdb.h")
somajor=${version%%.*}

# ---- 1. the installed tree ------------------------------------------------
if ! run_make install; then
    cat "$tmp/make.log"
    fail "make install DESTDIR=$root PREFIX=/usr"
    finish
fi
ok "make install DESTDIR=\$tmp/root PREFIX=/usr"

expect=(usr/bin/streamdbd usr/bin/streamdb-bench usr/lib/libstreamdb.a usr/lib/libstreamdb.so
        "usr/lib/libstreamdb.so.$somajor" "usr/lib/libstreamdb.so.$version"
        usr/include/opcodes.def usr/lib/pkgconfig/streamdb.pc
        usr/lib/systemd/system/streamdbd.service etc/streamdb/streamdbd.json)
for h in "$top"/include/*.h; do expect+=("usr/include/${h##*/}"); done
if [ -f "$build/streamdb" ]; then
    expect+=(usr/bin/streamdb)
else
    note "no $BUILD/streamdb yet: the CLI is not checked"
fi
shopt -s nullglob
man_pages=("$top"/docs/man/*.[1-8])
shopt -u nullglob
for m in "${man_pages[@]}"; do expect+=("usr/share/man/man${m##*.}/${m##*/}"); done
[ ${#man_pages[@]} -gt 0 ] || note "no docs/man/*.[1-8] yet: no man page is checked"
missing=
for f in "${expect[@]}"; do [ -e "$root/$f" ] || missing="$missing $f"; done
check "installed tree has ${#expect[@]} expected files${missing:+ (missing:$missing)}" [ -z "$missing" ]
check "binaries are executable" [ -x "$root/usr/bin/streamdbd" -a -x "$root/usr/bin/streamdb-bench" ]
check "libstreamdb.so -> libstreamdb.so.$somajor -> libstreamdb.so.$version" \
    test "$(readlink "$root/usr/lib/libstreamdb.so")" = "libstreamdb.so.$somajor" \
    -a "$(readlink "$root/usr/lib/libstreamdb.so.$somajor")" = "libstreamdb.so.$version"
if command -v readelf >/dev/null 2>&1; then
    check "shared library soname is libstreamdb.so.$somajor" \
        grep -q "(SONAME).*\[libstreamdb.so.$somajor\]" <(readelf -d "$root/usr/lib/libstreamdb.so.$version")
fi
unit=$root/usr/lib/systemd/system/streamdbd.service
check "unit runs /usr/bin/streamdbd -c /etc/streamdb/streamdbd.json" \
    grep -qx 'ExecStart=/usr/bin/streamdbd -c /etc/streamdb/streamdbd.json -d /var/lib/streamdb -u /run/streamdb/streamdbd.sock' "$unit"
conf=$root/etc/streamdb/streamdbd.json
check "config points at /var/lib/streamdb and /run/streamdb" \
    test -n "$(grep '"data_dir": "/var/lib/streamdb"' "$conf")" \
    -a -n "$(grep '"unix_socket": "/run/streamdb/streamdbd.sock"' "$conf")"
check "no @PLACEHOLDER@ left in installed text files" \
    test -z "$(grep -rlI '@[A-Z_]*@' "$root/etc" "$root/usr/lib/pkgconfig" "$root/usr/lib/systemd" 2>/dev/null)"
check "no build-tree path ($top) in installed text files" \
    test -z "$(grep -rlIF "$top" "$root" 2>/dev/null)"

# ---- 2. programs built against the installed headers + pkg-config ----------
export PKG_CONFIG_PATH=$root/usr/lib/pkgconfig
export PKG_CONFIG_SYSROOT_DIR=$root
pcs=$(cd "$root/usr/lib/pkgconfig" && ls *.pc | sed 's/\.pc$//' | tr '\n' ' ')
pcs=${pcs% }
check "pkg-config --modversion streamdb is $version" \
    test "$(pkg-config --modversion streamdb 2>&1)" = "$version"
cflags=$(pkg-config --cflags $pcs)
libs=$(pkg-config --libs $pcs)
check "pkg-config --cflags --libs ($pcs) points into the install: $cflags $libs" \
    test "$(pkg-config --variable=includedir streamdb)" = "$root/usr/include" \
    -a "$(pkg-config --variable=libdir streamdb)" = "$root/usr/lib"
cc_prog() {   # cc_prog OUTPUT SOURCE LIBS...: compile one test program, errors to $tmp/cc.log
    local out=$1 src=$2
    shift 2
    # shellcheck disable=SC2086
    $CC -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror $CLIENT_CFLAGS $cflags \
        -o "$out" "$src" "$@" $CLIENT_LDFLAGS >"$tmp/cc.log" 2>&1 || { cat "$tmp/cc.log"; return 1; }
}
uses_installed_lib() {   # the dynamic loader resolves libstreamdb inside the install
    LD_LIBRARY_PATH=$root/usr/lib LD_TRACE_LOADED_OBJECTS=1 "$1" 2>/dev/null |
        grep -q "libstreamdb.so.$somajor => $root/usr/lib/"
}
# shellcheck disable=SC2086
check "engine_client.c compiles and links (shared) with the installed pkg-config file" \
    cc_prog "$tmp/engine_client" "$here/engine_client.c" $libs
check "engine_client loads the installed libstreamdb.so.$somajor" uses_installed_lib "$tmp/engine_client"
out=$(LD_LIBRARY_PATH=$root/usr/lib "$tmp/engine_client" "$tmp/engine.sdb" 2>&1)
check "engine_client opens a database, puts and gets: $out" test "${out#engine ok}" != "$out"
# shellcheck disable=SC2086
static_libs=$(pkg-config --static --libs $pcs | sed 's/-lstreamdb\b/-l:libstreamdb.a/')
# shellcheck disable=SC2086
check "engine_client links statically with pkg-config --static: $static_libs" \
    cc_prog "$tmp/engine_client_static" "$here/engine_client.c" $static_libs
rm -f "$tmp/engine.sdb"
out=$("$tmp/engine_client_static" "$tmp/engine.sdb" 2>&1)
check "static engine_client runs: $out" test "${out#engine ok}" != "$out"
# shellcheck disable=SC2086
check "proto_ping.c compiles with #include <streamdb_proto.h> (opcodes.def installed beside it)" \
    cc_prog "$tmp/proto_ping" "$here/proto_ping.c" $libs
have_client=
if [ -f "$root/usr/include/streamdb_client.h" ] &&
   nm -g --defined-only "$root/usr/lib/"lib*.a 2>/dev/null | grep -q ' T sdbc_connect$'; then
    have_client=yes
    # shellcheck disable=SC2086
    check "client_roundtrip.c compiles with <streamdb_client.h> and the installed libraries" \
        cc_prog "$tmp/client_roundtrip" "$here/client_roundtrip.c" $libs
else
    fail "the client library (sdbc_connect, <streamdb_client.h>) is not installed"
fi

if [ -x "$root/usr/bin/streamdb" ]; then
    out=$(printf 'local mode\n' | "$root/usr/bin/streamdb" --db "$tmp/cli.sdb" put /pkg/cli.txt - 2>&1 &&
        "$root/usr/bin/streamdb" --db "$tmp/cli.sdb" get /pkg/cli.txt 2>&1)
    check "installed streamdb --db FILE put/get (local mode): $(printf "%s" "$out" | tr "\n" " ")" \
        test "$(printf '%s' "$out" | tail -n 1)" = "local mode"
fi

# ---- 3. the installed daemon on the installed config ----------------------
sock=$tmp/streamdbd.sock
"$root/usr/bin/streamdbd" -c "$conf" -d "$tmp/data" -u "$sock" -l "" >"$tmp/daemon.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 100); do
    [ -S "$sock" ] && break
    kill -0 "$daemon_pid" 2>/dev/null || break
    sleep 0.1
done
if [ -S "$sock" ]; then
    ok "installed streamdbd starts on the installed config (-d/-u as in the unit)"
    out=$(LD_LIBRARY_PATH=$root/usr/lib "$tmp/proto_ping" "$sock" 2>&1)
    check "proto_ping over the Unix socket: $out" test "${out#PONG from streamdbd}" != "$out"
    if [ -n "$have_client" ]; then
        out=$(LD_LIBRARY_PATH=$root/usr/lib "$tmp/client_roundtrip" "unix://$sock" 2>&1)
        check "client_roundtrip against the installed daemon: $out" test "$out" = "client ok"
    fi
    if [ -x "$root/usr/bin/streamdb" ]; then
        out=$("$root/usr/bin/streamdb" -s "$sock" ping 2>&1)
        rc=$?
        check "installed streamdb -s SOCKET ping exits 0 (got $rc): $out" test "$rc" -eq 0
    fi
    out=$("$root/usr/bin/streamdb-bench" -s "$sock" -t ping,put,get -n 50 -r 10 -c 2 -P 2 -q 2>&1)
    rc=$?
    check "installed streamdb-bench -s SOCKET -t ping,put,get exits 0 (got $rc): $out" \
        test "$rc" -eq 0
    kill -TERM "$daemon_pid"
    wait "$daemon_pid"
    rc=$?
    daemon_pid=
    check "streamdbd exits 0 on SIGTERM (got $rc)" test "$rc" -eq 0
else
    fail "installed streamdbd did not create $sock within 10 s:"
    cat "$tmp/daemon.log"
fi
[ "$failures" -eq 0 ] || cat "$tmp/daemon.log"

# ---- 4. config kept across reinstall; uninstall leaves nothing -------------
sed -i 's/"log_level": *"[a-z]*"/"log_level": "debug"/' "$conf"
if run_make install && grep -q '"log_level": "debug"' "$conf" && [ -f "$conf.default" ]; then
    ok "reinstall keeps a modified config and writes streamdbd.json.default"
else
    cat "$tmp/make.log"
    fail "reinstall keeps a modified config and writes streamdbd.json.default"
fi
cp "$conf.default" "$conf"
if run_make uninstall; then ok "make uninstall DESTDIR=\$tmp/root PREFIX=/usr"; else
    cat "$tmp/make.log"; fail "make uninstall"; fi
left=$(cd "$root" && find . ! -type d | sed 's|^\./||' | tr '\n' ' ')
check "uninstall removes every installed file${left:+ (left: $left)}" test -z "$left"
check "uninstall removes the empty etc/streamdb" test ! -e "$root/etc/streamdb"
run_make install && sed -i 's/"log_level": *"[a-z]*"/"log_level": "debug"/' "$conf" &&
    run_make uninstall
left=$(cd "$root" && find . ! -type d | sed 's|^\./||' | tr '\n' ' ')
check "uninstall keeps a modified config (left: $left)" test "$left" = "etc/streamdb/streamdbd.json "

# ---- 5. systemd-analyze verify ----------------------------------------------
if command -v systemd-analyze >/dev/null 2>&1; then
    # verify wants ExecStart's binary to exist: point it into the DESTDIR copy.
    # It reports problems (unknown keys, bad values) as warnings but still
    # exits 0, so any output counts as a failure.  A trivial unit first shows
    # whether the tool works in this environment at all.
    mkdir -p "$tmp/unit"
    printf '[Unit]\nDescription=probe\n[Service]\nExecStart=/bin/true\n' >"$tmp/unit/sdb-probe.service"
    run_make install
    sed "s|^ExecStart=/usr/bin/|ExecStart=$root/usr/bin/|" "$unit" >"$tmp/unit/streamdbd.service"
    if out=$(systemd-analyze verify --man=no "$tmp/unit/sdb-probe.service" 2>&1) && [ -z "$out" ]; then
        out=$(systemd-analyze verify --man=no "$tmp/unit/streamdbd.service" 2>&1)
        rc=$?
        check "systemd-analyze verify streamdbd.service: rc $rc, ${out:-no warnings}" \
            test "$rc" -eq 0 -a -z "$out"
        level=$(systemd-analyze security --offline=yes "$tmp/unit/streamdbd.service" 2>/dev/null |
            sed -n 's/.*Overall exposure level for [^:]*: *\([0-9.]* [A-Z]*\).*/\1/p')
        [ -z "$level" ] || note "systemd-analyze security: exposure level $level"
    else
        skip "systemd-analyze verify: the tool does not work here (${out:-?})"
    fi
    run_make uninstall
else
    skip "systemd-analyze verify: systemd-analyze is not installed (Debian package systemd)"
fi

finish
