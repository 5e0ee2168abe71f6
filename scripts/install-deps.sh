#!/usr/bin/env bash
# install-deps.sh -- installs the Debian packages that StreamDb's build and test
# suite need.  The Makefile runs it when `pkg-config --exists libuv libcjson
# zlib check` fails; .ci/run runs it on a bare CI machine.
#
# Usage: scripts/install-deps.sh [--ci] [--bench] [EXTRA_PACKAGE...]
#   Installs the base packages below plus any extra Debian packages named
#   (`make valgrind` asks for valgrind this way, and `make bench`'s
#   scripts/bench-vs-redis.sh for redis-server redis-tools; make test skips
#   the streamdb-bench --redis checks without redis-server).  --ci adds CI_PACKAGES: every
#   tool a test needs (so that CI skips no test) and the compilers of the clang,
#   TSan and fuzz builds.  --bench adds BENCH_PACKAGES, the peers that
#   tests/bench/bench_peers.c measures StreamDb against (`make bench` asks for
#   them; nothing else needs them).  Packages already installed are skipped;
#   when nothing is missing, apt is not touched at all.
#   Runs apt-get directly as root, through sudo otherwise.
# Exit status: 0 when every package is installed afterwards, 1 otherwise.
set -euo pipefail

BASE_PACKAGES=(
    build-essential   # gcc, make, libc headers
    pkg-config        # the Makefile finds every library through it
    zlib1g-dev        # crc32() for page and document checksums (engine)
    libuv1-dev        # event loop of the daemon streamdbd
    libcjson-dev      # JSON config and STATS (pkg-config name: libcjson)
    check             # unit test framework (pulls in libsubunit-dev)
)
CI_PACKAGES=(
    valgrind          # make valgrind; integration test_valgrind
    systemd           # systemd-analyze verify of the unit (tests/packaging/test_install.sh)
    clang             # make CC=clang; make fuzz (libFuzzer); TSan build
    llvm              # llvm-symbolizer for sanitizer reports
    libclang-rt-dev   # the libFuzzer and sanitizer runtimes of clang
    redis-server      # tests/cli/check_bench.c: streamdb-bench --redis against a real Redis
)
BENCH_PACKAGES=(
    libsqlite3-dev    # SQLite 3 (pkg-config name: sqlite3), a peer in bench_peers
    liblmdb-dev       # LMDB (pkg-config name: lmdb), a peer in bench_peers
)
PACKAGES=("${BASE_PACKAGES[@]}")
while (($# > 0)); do
    case $1 in
        --ci) PACKAGES+=("${CI_PACKAGES[@]}") ;;
        --bench) PACKAGES+=("${BENCH_PACKAGES[@]}") ;;
        *) break ;;
    esac
    shift
done
PACKAGES+=("$@")

say() { printf '==> %s\n' "$*"; }
die() { printf 'install-deps: %s\n' "$*" >&2; exit 1; }

if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-query >/dev/null 2>&1; then
    die "apt-get/dpkg not found: this script supports Debian and Ubuntu only.
Install these (or your distribution's equivalents) by hand, then run make again:
  ${PACKAGES[*]}
(the Makefile looks for: pkg-config --exists libuv libcjson zlib check)"
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [[ $status == "install ok installed" ]] || missing+=("$pkg")
done
if ((${#missing[@]} == 0)); then
    say "build dependencies already installed"
    exit 0
fi

SUDO=()
if ((EUID != 0)); then
    command -v sudo >/dev/null 2>&1 ||
        die "not root and sudo is not available; as root run: apt-get install ${missing[*]}"
    # sudo drops the environment, so DEBIAN_FRONTEND is passed through env(1).
    # Without a terminal, never wait for a password prompt (-n).
    if [[ -t 0 ]]; then SUDO=(sudo); else SUDO=(sudo -n); fi
fi
APT=("${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=300)

log=$(mktemp "${TMPDIR:-/tmp}/streamdb-deps.XXXXXX")
trap 'rm -f "$log"' EXIT

# Runs "$@" with its output in $log; shows the log only when the command fails.
quiet() {
    if ! "$@" >"$log" 2>&1; then
        cat "$log" >&2
        return 1
    fi
}

say "installing: ${missing[*]}"
# One retry: a mirror may be briefly unreachable or syncing.
quiet "${APT[@]}" update || { sleep 5; quiet "${APT[@]}" update; } ||
    die "apt-get update failed (output above)"
quiet "${APT[@]}" install -y --no-install-recommends "${missing[@]}" ||
    die "apt-get install failed (output above)"
say "installed: ${missing[*]}"
