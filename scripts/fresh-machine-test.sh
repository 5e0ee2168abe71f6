#!/usr/bin/env bash
# fresh-machine-test.sh -- proves README.md's quick start on a machine that has
# nothing installed: a minimal Debian bookworm root made with debootstrap.
#
# Usage (as root, on Debian or Ubuntu; takes a few minutes; not part of `make test`):
#   scripts/fresh-machine-test.sh [--work DIR] [--mirror URL] [--head] [--no-docker] [--keep]
#
#   --work DIR    scratch directory (default: a new /var/tmp/streamdb-fresh.XXXXXX);
#                 removed at the end unless --keep
#   --mirror URL  Debian mirror (default: the first Debian URI of the host's apt sources)
#   --head        test the committed tree (git archive HEAD) instead of the working
#                 tree (tracked and untracked files that .gitignore does not exclude)
#   --no-docker   skip the container part
#   --keep        keep the work directory (root file system, logs, podman store)
#
# Steps, each reported PASS, FAIL or SKIP (every command's output is in
# WORK/logs/; the tail of a failing step's log is printed):
#   1. debootstrap --variant=minbase bookworm, with the host's apt sources and
#      apt.conf.d settings so that apt-get inside reaches the same mirror;
#   2. copy the repository in, then inside the chroot, as root:
#      scripts/install-deps.sh (the README's advice when `make` is missing);
#      `make test`; `make run` in the background (in a private network
#      namespace when unshare and ip are available, so port 7878 is free);
#      `build/streamdb ping`, a put/get round trip with the CLI, and a clean stop
#      (SIGTERM to streamdbd: it must exit 0, and so must `make run`);
#   3. the Dockerfile, built and run with podman as in the README: the pristine
#      debootstrap root is imported as debian:bookworm-slim (no registry
#      needed), `podman build`, then a container started with a token and a
#      volume must become healthy (HEALTHCHECK = streamdb ping), answer a CLI
#      put/get, refuse a wrong token, and stop with exit status 0.
# podman, runc and debootstrap are installed with apt-get when missing.
# Exit status: 0 when no step failed.
set -uo pipefail

WORK='' MIRROR='' HEAD=no DOCKER=yes KEEP=no
while [ $# -gt 0 ]; do
    case $1 in
    --work) WORK=$2; shift ;;
    --mirror) MIRROR=$2; shift ;;
    --head) HEAD=yes ;;
    --no-docker) DOCKER=no ;;
    --keep) KEEP=yes ;;
    -h | --help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "fresh-machine-test: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

top=$(cd "$(dirname "$0")/.." && pwd)
[ "$(id -u)" -eq 0 ] || { echo "fresh-machine-test: run as root (debootstrap, chroot, podman)" >&2; exit 2; }
if [ -z "$WORK" ]; then
    WORK=$(mktemp -d /var/tmp/streamdb-fresh.XXXXXX)
else
    mkdir -p "$WORK"
fi
WORK=$(cd "$WORK" && pwd)
case $WORK/ in "$top"/*) echo "fresh-machine-test: --work must be outside the repository" >&2; exit 2 ;; esac
ROOT=$WORK/rootfs
LOGS=$WORK/logs
SRC=/root/streamdb                 # the repository inside the chroot
mkdir -p "$LOGS"

results=()
failed=0
t0=$(date +%s)
say() { printf '[fresh] %s\n' "$*"; }
# step NAME LOG COMMAND...: runs COMMAND with its output in LOG, reports it
step() {
    local name=$1 log=$2 start rc
    shift 2
    start=$(date +%s)
    say "$name ..."
    "$@" >"$log" 2>&1
    rc=$?
    if [ $rc -eq 0 ]; then
        results+=("PASS  $name ($(($(date +%s) - start)) s)")
        say "PASS  $name"
    else
        results+=("FAIL  $name (exit $rc; log: $log)")
        failed=$((failed + 1))
        say "FAIL  $name (exit $rc), last lines of $log:"
        tail -n 25 "$log" | sed 's/^/        /'
    fi
    return $rc
}
skip() { results+=("SKIP  $1: $2"); say "SKIP  $1: $2"; }
summary() {
    echo
    say "summary ($(($(date +%s) - t0)) s, work directory $WORK$([ "$KEEP" = yes ] || echo ', removed'))"
    for r in "${results[@]}"; do printf '  %s\n' "$r"; done
    if [ $failed -eq 0 ]; then say "fresh machine test PASSED"; else say "fresh machine test FAILED ($failed step(s))"; fi
}

# ---- cleanup: stop what we started, unmount, then (only then) delete ---------
make_pid='' daemon_pid=''
podman_ok=no
export CONTAINERS_CONF=$WORK/podman/containers.conf
export CONTAINERS_STORAGE_CONF=$WORK/podman/storage.conf
unmount_all() {
    local m
    for m in "$ROOT/dev/ptmx" "$ROOT/dev/pts" "$ROOT/dev/shm" "$ROOT/proc"; do
        if mountpoint -q "$m" 2>/dev/null; then umount "$m" 2>/dev/null || umount -l "$m"; fi
    done
}
cleanup() {
    [ -z "$daemon_pid" ] || kill -KILL "$daemon_pid" 2>/dev/null
    [ -z "$make_pid" ] || kill -KILL "$make_pid" 2>/dev/null
    if [ "$podman_ok" = yes ]; then
        podman rm -f sdb-fresh >/dev/null 2>&1
        [ "$KEEP" = yes ] || podman system reset -f >/dev/null 2>&1
    fi
    unmount_all
    if [ "$KEEP" = no ]; then
        if grep -qF " $WORK/" /proc/mounts; then
            say "not removing $WORK: something is still mounted under it"
        else
            rm -rf "$WORK"
        fi
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

need_pkgs() {   # need_pkgs CMD=PACKAGE...: apt-get install the packages of missing commands
    local want=() p
    for p in "$@"; do command -v "${p%%=*}" >/dev/null 2>&1 || want+=("${p#*=}"); done
    [ ${#want[@]} -eq 0 ] && return 0
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${want[@]}"
}

# ---- 1. the minimal Debian root ------------------------------------------------
host_mirror() {   # the first Debian archive URI of the host's apt sources
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] && awk 'tolower($1)=="uris:" { for (i = 2; i <= NF; i++) print $i }' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] && awk '$1=="deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z+]+:\/\//) { print $i; break } }' "$f"
    done
}
if [ -z "$MIRROR" ]; then
    MIRROR=$(host_mirror | grep -v -- '-security' | grep -m1 -i 'debian') ||
        MIRROR=http://deb.debian.org/debian
fi
say "work directory $WORK, mirror $MIRROR, testing the $([ "$HEAD" = yes ] && echo 'committed tree (HEAD)' || echo 'working tree') of $top"

make_root() {
    need_pkgs debootstrap=debootstrap || return 1
    debootstrap --variant=minbase bookworm "$ROOT" "$MIRROR" || return 1
    # The host's apt sources (those whose keyrings exist in the new root) and
    # apt.conf.d settings, so apt-get inside uses the same mirror and options.
    local f copied=no k ok
    for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list /etc/apt/sources.list; do
        [ -f "$f" ] || continue
        ok=yes
        for k in $(grep -oE '(signed-by|Signed-By:)[= ]*[^] ]+' "$f" | sed 's/.*[= ]//'); do
            [ -e "$ROOT$k" ] || ok=no
        done
        grep -qiE 'debian' "$f" || ok=no
        [ $ok = yes ] || { echo "not copying $f (not a Debian source, or its keyring is missing)"; continue; }
        mkdir -p "$ROOT$(dirname "$f")" && cp "$f" "$ROOT$f" && copied=yes && echo "copied $f"
    done
    [ $copied = no ] || [ -f /etc/apt/sources.list ] || rm -f "$ROOT/etc/apt/sources.list"
    for f in /etc/apt/apt.conf.d/*; do
        [ -e "$ROOT$f" ] || cp "$f" "$ROOT$f"
    done
    cp /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true
    chroot "$ROOT" apt-get clean
    # The pristine root is also the container base image (step 3).
    tar --numeric-owner -C "$ROOT" -cf "$WORK/base.tar" .
}
if ! step "debootstrap a minimal Debian bookworm root" "$LOGS/debootstrap.log" make_root; then
    summary
    exit 1
fi

# ---- 2. the README's commands in the chroot --------------------------------------
export_tree() {   # the repository's files as a tar stream
    if [ "$HEAD" = yes ]; then
        git -C "$top" archive --format=tar HEAD
    elif git -C "$top" rev-parse --git-dir >/dev/null 2>&1; then
        (cd "$top" && git ls-files -z --cached --others --exclude-standard |
            xargs -0 -r sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh |
            tar --null -T - -cf -)
    else
        tar -C "$top" --exclude=./build --exclude='./build-*' --exclude=./data --exclude=./.git -cf - .
    fi
}
copy_repo() {
    mkdir -p "$ROOT$SRC" "$WORK/src" && export_tree | tar -C "$ROOT$SRC" -xf - &&
        tar -C "$ROOT$SRC" -cf - . | tar -C "$WORK/src" -xf - &&
        echo "$(find "$ROOT$SRC" -type f | wc -l) files copied to $SRC"
}
step "copy the repository into the root ($SRC)" "$LOGS/copy.log" copy_repo || { summary; exit 1; }

mount -t proc proc "$ROOT/proc"
mount -t tmpfs -o mode=1777 tmpfs "$ROOT/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts "$ROOT/dev/pts" &&
    mount --bind "$ROOT/dev/pts/ptmx" "$ROOT/dev/ptmx"

# in_root COMMAND: runs a shell command in the repository inside the chroot,
# with a clean environment.  netns=yes: in a private network namespace with
# only loopback (when unshare and ip exist), so that the daemon's port 7878
# and the tests' ports cannot clash with the host's.
netns=no
if command -v unshare >/dev/null 2>&1 && command -v ip >/dev/null 2>&1 &&
    unshare --net sh -c 'ip link set lo up' 2>/dev/null; then netns=yes; fi
in_root() {
    local cmd="cd $SRC && $1"
    local envs=(env -i HOME=/root TERM=dumb LANG=C.UTF-8
                PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin)
    if [ "${2:-}" = net ] || [ $netns = no ]; then
        chroot "$ROOT" "${envs[@]}" bash -c "$cmd"
    else
        unshare --net sh -c 'ip link set lo up && exec "$@"' sh \
            chroot "$ROOT" "${envs[@]}" bash -c "$cmd"
    fi
}

step "README: scripts/install-deps.sh (make is missing on a fresh machine)" "$LOGS/install-deps.log" \
    in_root 'command -v make || bash scripts/install-deps.sh; command -v make' net
step "README: make test" "$LOGS/make-test.log" in_root 'make test'

readme_run() {
    # `make run` in the background; streamdbd is its child.  Ready when the
    # daemon logs "ready" (make run may build first: up to 5 minutes).
    if [ $netns = no ] && (exec 3<>/dev/tcp/127.0.0.1/7878) 2>/dev/null; then
        echo "port 127.0.0.1:7878 is in use on this host, and no private network namespace is available"
        return 1
    fi
    in_root 'make run' >"$LOGS/make-run.log" 2>&1 &
    make_pid=$!
    local p
    for _ in $(seq 600); do
        grep -q ' ready' "$LOGS/make-run.log" && break
        kill -0 "$make_pid" 2>/dev/null || break
        sleep 0.5
    done
    for p in $(pgrep -x streamdbd); do
        [ "$(readlink "/proc/$p/root")" = "$ROOT" ] && daemon_pid=$p
    done
    cat "$LOGS/make-run.log"
    [ -n "$daemon_pid" ] && grep -q ' ready' "$LOGS/make-run.log" && echo "streamdbd (pid $daemon_pid) is ready"
}
# in_daemon_ns COMMAND: runs a command in the chroot, in the daemon's network namespace.
in_daemon_ns() {
    local envs=(env -i HOME=/root TERM=dumb LANG=C.UTF-8
                PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin)
    if [ $netns = yes ]; then
        nsenter --net="/proc/$daemon_pid/ns/net" chroot "$ROOT" "${envs[@]}" bash -c "cd $SRC && $1"
    else
        chroot "$ROOT" "${envs[@]}" bash -c "cd $SRC && $1"
    fi
}
readme_stop() {
    kill -TERM "$daemon_pid" || return 1
    local rc
    wait "$make_pid"
    rc=$?
    make_pid='' daemon_pid=''
    cat "$LOGS/make-run.log"
    echo "make run exited with status $rc"
    [ $rc -eq 0 ] && grep -q 'stopped cleanly' "$LOGS/make-run.log"
}
if step "README: make run (in the background), streamdbd ready" "$LOGS/run-start.log" readme_run; then
    step "README: build/streamdb ping" "$LOGS/cli-ping.log" in_daemon_ns 'build/streamdb ping'
    step "README: put/get round trip with the CLI" "$LOGS/cli-putget.log" in_daemon_ns '
        set -e
        head -c 300000 /dev/urandom > /tmp/fresh.bin
        build/streamdb put /fresh/doc.bin /tmp/fresh.bin
        build/streamdb get /fresh/doc.bin -o /tmp/fresh.out
        cmp /tmp/fresh.bin /tmp/fresh.out
        printf "hello from a fresh machine\n" | build/streamdb put /fresh/hello.txt -
        test "$(build/streamdb get /fresh/hello.txt)" = "hello from a fresh machine"
        build/streamdb ls /fresh/
        echo "round trip ok"'
    step "README: clean stop (SIGTERM: streamdbd and make run exit 0)" "$LOGS/run-stop.log" readme_stop
else
    skip "README: build/streamdb ping, put/get, clean stop" "make run did not become ready"
fi
unmount_all

# ---- 3. the Dockerfile ------------------------------------------------------------
podman_setup() {
    need_pkgs podman=podman runc=runc || return 1
    mkdir -p "$WORK/podman/store" "$WORK/podman/run"
    cat >"$CONTAINERS_STORAGE_CONF" <<EOF
[storage]
driver = "overlay"
graphroot = "$WORK/podman/store"
runroot = "$WORK/podman/run"
EOF
    # Host network, limits no higher than the host's, runc and cgroupfs:
    # see the notes in README.md "Running in Docker".
    cat >"$CONTAINERS_CONF" <<EOF
[containers]
netns = "host"
default_ulimits = ["nofile=$(ulimit -Hn):$(ulimit -Hn)", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
    podman_ok=yes
    podman import --change 'CMD ["bash"]' "$WORK/base.tar" docker.io/library/debian:bookworm-slim
}
docker_run_checks() {
    local port token health
    for port in $(seq 17878 17978); do
        (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null || break
    done
    token=$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')
    echo "starting the container on 0.0.0.0:$port (host network) with a token and a volume"
    podman rm -f sdb-fresh >/dev/null 2>&1
    podman run -d --name sdb-fresh -e STREAMDB_TOKEN="$token" -e STREAMDB_LISTEN="0.0.0.0:$port" \
        -v sdb-fresh-data:/var/lib/streamdb localhost/streamdb:fresh || return 1
    health=
    for _ in $(seq 30); do
        if podman healthcheck run sdb-fresh 2>/dev/null; then health=healthy; break; fi
        sleep 1
    done
    podman logs sdb-fresh
    echo "healthcheck: ${health:-unhealthy after 30 s}"
    [ -n "$health" ] || return 1
    podman exec sdb-fresh bash -c "
        set -e
        head -c 100000 /dev/urandom > /tmp/x
        streamdb -H 127.0.0.1:$port put /docker/x /tmp/x
        streamdb -H 127.0.0.1:$port get /docker/x -o /tmp/y
        cmp /tmp/x /tmp/y
        echo 'CLI put/get over TCP with the token: ok'
        if STREAMDB_TOKEN=wrong streamdb -H 127.0.0.1:$port ping; then exit 1; fi
        echo 'a wrong token is refused: ok'" || return 1
    podman stop -t 30 sdb-fresh >/dev/null || return 1
    local code
    code=$(podman inspect --format '{{.State.ExitCode}}' sdb-fresh)
    podman logs sdb-fresh 2>&1 | tail -n 3
    echo "container exit status after podman stop: $code"
    podman rm sdb-fresh >/dev/null
    podman volume rm sdb-fresh-data >/dev/null
    [ "$code" = 0 ]
}
if [ "$DOCKER" = yes ]; then
    if step "podman: import the debootstrap root as debian:bookworm-slim" "$LOGS/podman-setup.log" podman_setup; then
        if step "Dockerfile: podman build" "$LOGS/docker-build.log" \
            podman build --pull=never --isolation chroot --format docker -t localhost/streamdb:fresh "$WORK/src"; then
            step "Dockerfile: run with a token and a volume, healthy, CLI put/get, clean stop" \
                "$LOGS/docker-run.log" docker_run_checks
        fi
    fi
else
    skip "Dockerfile" "--no-docker"
fi

summary
[ $failed -eq 0 ]
