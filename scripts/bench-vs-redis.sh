#!/usr/bin/env bash
# bench-vs-redis.sh -- the side-by-side run of `make bench` (docs/BENCHMARKS.md,
# "streamdbd next to Redis"): for each row, streamdb-bench against streamdbd,
# streamdb-bench --redis against redis-server (the same generator speaking
# RESP2: the table's ratio) and redis-benchmark against the same redis-server
# (for reference: it shows whether the two generators agree), same
# parameters, interleaved rounds, one table of rates, ratios and p99 latencies.
#
# Usage: scripts/bench-vs-redis.sh [--short] [BUILD_DIR]
#   BUILD_DIR holds streamdbd and streamdb-bench (default build).
#   --short (or SDB_BENCH_SHORT=1): one round, a tenth of the requests and
#   10,000 keys; a quick check that everything runs, not a measurement.
# Environment: SDB_BENCH_ROUNDS (default 3), SDB_BENCH_DIR (where the
#   temporary directory goes; default BUILD_DIR, so on the disk, not tmpfs),
#   SDB_BENCH_STYLE (streamdb-bench --pipeline-style: batch, the default here,
#   sends P and waits for all P like redis-benchmark; window keeps P in flight).
#
# It starts four servers on temporary directories and free loopback ports:
#   streamdbd with engine.durability "full" and with "none", redis-server with
#   no persistence (--save '' --appendonly no) and with --appendonly yes
#   --appendfsync always.  Every server it started is stopped at the end, on
#   an error and on Ctrl-C (trap).  redis-server and redis-benchmark come from
#   scripts/install-deps.sh redis-server redis-tools when missing.
# Exit status: 0 when every run completed without error (missed goals
#   included: the table is a report), 1 otherwise (a streamdb-bench error
#   means a wrong answer from streamdbd or Redis), 2 for bad usage.
set -euo pipefail

short=${SDB_BENCH_SHORT:-0}
build=build
for a in "$@"; do
    case $a in
    --short) short=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "bench-vs-redis.sh: unknown option $a (see --help)" >&2; exit 2 ;;
    *) build=$a ;;
    esac
done
[[ $short == 0 || $short == "" ]] && short=0 || short=1

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
case $build in /*) ;; *) build=$top/$build ;; esac
sdbd=$build/streamdbd
sdbb=$build/streamdb-bench
for b in "$sdbd" "$sdbb"; do
    [[ -x $b ]] || { echo "bench-vs-redis.sh: $b not found: run make first" >&2; exit 1; }
done

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'bench-vs-redis.sh: %s\n' "$*" >&2; exit 1; }

if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-benchmark >/dev/null 2>&1 ||
    ! command -v redis-cli >/dev/null 2>&1; then
    say "redis-server / redis-benchmark missing: scripts/install-deps.sh redis-server redis-tools"
    bash "$top/scripts/install-deps.sh" redis-server redis-tools >&2 ||
        die "cannot install redis-server and redis-tools"
fi

# ---- Parameters (the same for both sides) ----------------------------------
CONNS=50
SIZE=1024
ROUNDS=${SDB_BENCH_ROUNDS:-3}
STYLE=${SDB_BENCH_STYLE:-batch}
[[ $STYLE == batch || $STYLE == window ]] || die "SDB_BENCH_STYLE: batch or window, not $STYLE"
if ((short)); then
    ROUNDS=1 KEYS=10000 N_GET=20000 N_PING=50000 N_PUT=10000 N_PUT_SYNC=3000
else
    KEYS=100000 N_GET=200000 N_PING=500000 N_PUT=100000 N_PUT_SYNC=30000
fi

# ---- Servers -----------------------------------------------------------------
parent=${SDB_BENCH_DIR:-$build}
mkdir -p "$parent"
tmp=$(mktemp -d "$parent/sdb-vsredis.XXXXXX")
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'echo "bench-vs-redis.sh: interrupted" >&2; exit 130' INT TERM

used_ports=" "
# free_port: a loopback TCP port nobody listens on (nor was handed out here).
free_port() {
    local p
    for _ in $(seq 200); do
        p=$((20000 + RANDOM % 40000))
        [[ $used_ports == *" $p "* ]] && continue
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            used_ports+="$p "
            echo "$p"
            return
        fi
    done
    die "no free loopback port found"
}

# wait_ready NAME PID COMMAND...: until COMMAND succeeds (30 s at most).
wait_ready() {
    local name=$1 pid=$2
    shift 2
    for _ in $(seq 300); do
        "$@" >/dev/null 2>&1 && return 0
        kill -0 "$pid" 2>/dev/null || die "$name exited during startup (log in $tmp/$name)"
        sleep 0.1
    done
    die "$name did not become ready in 30 s"
}

# start_sdb NAME DURABILITY: streamdbd on a free port; sets port_NAME.
start_sdb() {
    local name=$1 dur=$2 dir=$tmp/$1 port
    port=$(free_port)
    mkdir -p "$dir"
    cat >"$dir/conf.json" <<EOF
{ "listen": "127.0.0.1:$port", "unix_socket": "", "data_dir": "$dir/data",
  "log_level": "warn", "engine": { "durability": "$dur" } }
EOF
    "$sdbd" -c "$dir/conf.json" >"$dir/log" 2>&1 &
    pids+=($!)
    wait_ready "$name" $! "$sdbb" -p "$port" -t ping -n 1 -c 1 -q
    printf -v "port_$name" %s "$port"
}

# start_redis NAME ARGS...: redis-server on a free port; sets port_NAME.
start_redis() {
    local name=$1 dir=$tmp/$1 port
    shift
    port=$(free_port)
    mkdir -p "$dir"
    redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --daemonize no \
        --logfile "$dir/log" --protected-mode yes "$@" &
    pids+=($!)
    wait_ready "$name" $! redis-cli -p "$port" ping
    printf -v "port_$name" %s "$port"
}

say "starting streamdbd (durability full, none) and redis-server (no persistence, appendfsync always) in $tmp"
start_sdb sdb_full full
start_sdb sdb_none none
start_redis redis_mem --save '' --appendonly no
start_redis redis_aof --save '' --appendonly yes --appendfsync always
redis_version=$(redis-server --version | sed -n 's/.* v=\([^ ]*\).*/\1/p')

# ---- Key spaces: every key written once, for the GETs ----------------------
say "loading $KEYS keys of $SIZE bytes into each server"
for s in sdb_full sdb_none; do
    p=port_$s
    "$sdbb" -p "${!p}" -c "$CONNS" -P 16 -r "$KEYS" --size "$SIZE" -t ping -n 1 --populate -q \
        >/dev/null || die "populating $s failed"
done
# redis-benchmark -r N names its keys key:000000000000 .. (12 digits);
# streamdb-bench --redis writes its own (/bench/N/...), self-describing values.
for s in redis_mem redis_aof; do
    p=port_$s
    "$sdbb" --redis -p "${!p}" -c "$CONNS" -P 16 -r "$KEYS" --size "$SIZE" -t ping -n 1 \
        --populate -q >/dev/null || die "populating $s (streamdb-bench --redis) failed"
    awk -v n="$KEYS" -v size="$SIZE" 'BEGIN {
        v = sprintf("%*s", size, ""); gsub(/ /, "x", v)
        for (i = 0; i < n; i++) {
            k = sprintf("key:%012d", i)
            printf "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", length(k), k, length(v), v
        }
    }' | redis-cli -p "${!p}" --pipe >/dev/null || die "populating $s failed"
done

# ---- Runs --------------------------------------------------------------------
res=$tmp/results
mkdir -p "$res"

# run_sdb ROW SERVER OP N PIPELINE [--redis]: one streamdb-bench run against
# streamdbd (appends "rate p99" to ROW.sdb) or, with --redis, against
# redis-server (ROW.resp).
run_sdb() {
    local row=$1 p=port_$2 op=$3 n=$4 pl=$5 proto=${6:-} out file
    file=$res/$row.sdb
    [[ -z $proto ]] || file=$res/$row.resp
    if ! out=$("$sdbb" $proto -p "${!p}" -c "$CONNS" -P "$pl" --pipeline-style "$STYLE" \
        -r "$KEYS" --size "$SIZE" -t "$op" -n "$n" --no-populate --json 2>"$tmp/sdb.err"); then
        cat "$tmp/sdb.err" >&2
        die "streamdb-bench $proto -t $op -P $pl against $2 failed (above)"
    fi
    echo "$out" | sed -n 's/.*"rate":\([0-9.]*\).*"p99_ms":\([0-9.]*\).*/\1 \2/p' >>"$file"
    printf '    streamdb-bench %-8s %-9s %s P%s: %s\n' "${proto:-}" "$2" "$op" "$pl" \
        "$(tail -n 1 "$file")" >&2
}

# run_redis ROW SERVER TEST N PIPELINE: one redis-benchmark run (--csv).
run_redis() {
    local row=$1 p=port_$2 test=$3 n=$4 pl=$5 line
    line=$(redis-benchmark -p "${!p}" -c "$CONNS" -P "$pl" -d "$SIZE" -r "$KEYS" -n "$n" \
        -t "$test" --csv 2>/dev/null | grep -v '^"test"' | tail -n 1) ||
        die "redis-benchmark -t $test -P $pl against $2 failed"
    # "GET","rps","avg","min","p50","p95","p99","max" (Redis >= 7); older: "GET","rps".
    echo "$line" | awk -F'"' '{ print $4, ($14 == "" ? "-" : $14) }' >>"$res/$row.redis"
    printf '    redis-benchmark         %-9s %s P%s: %s\n' "$2" "$test" "$pl" \
        "$(tail -n 1 "$res/$row.redis")" >&2
}

# Rows: name | Redis server + test | streamdbd server + op | requests | pipeline | goal | label
rows=(
    "get1|redis_mem get|sdb_full get|$N_GET|1|1.0|GET"
    "get16|redis_mem get|sdb_full get|$N_GET|16|1.0|GET"
    "putd1|redis_aof set|sdb_full put|$N_PUT_SYNC|1|1.0|PUT durable vs Redis appendfsync always"
    "putd16|redis_aof set|sdb_full put|$N_PUT_SYNC|16|1.0|PUT durable vs Redis appendfsync always"
    "putn1|redis_mem set|sdb_none put|$N_PUT|1|0.7|PUT durability none vs Redis without persistence"
    "putn16|redis_mem set|sdb_none put|$N_PUT|16|0.7|PUT durability none vs Redis without persistence"
    "ping1|redis_mem ping_mbulk|sdb_full ping|$N_PING|1|0.8|PING"
    "ping16|redis_mem ping_mbulk|sdb_full ping|$N_PING|16|0.8|PING"
)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
for ((r = 1; r <= ROUNDS; r++)); do
    say "round $r of $ROUNDS"
    for row in "${rows[@]}"; do
        IFS='|' read -r name rs ss n pl _ _ <<<"$row"
        read -r rserver rtest <<<"$rs"
        read -r sserver sop <<<"$ss"
        runs=("run_sdb $name $rserver $sop $n $pl --redis" "run_sdb $name $sserver $sop $n $pl"
            "run_redis $name $rserver $rtest $n $pl")
        for ((k = 0; k < 3; k++)); do   # rotate who goes first, round by round
            ${runs[(k + r - 1) % 3]}
        done
    done
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- Table -------------------------------------------------------------------
# median FILE COLUMN: the median of a column over the rounds ("-" if none).
median() {
    awk -v c="$2" '$c != "-" { print $c }' "$1" | sort -g |
        awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else print v[int((NR + 1) / 2)] }'
}
rate() {   # 43210.5 -> 43.2k/s
    awk -v x="$1" 'BEGIN { if (x == "-") print "-"; else if (x >= 1e6) printf "%.2fM/s\n", x / 1e6;
        else if (x >= 1e3) printf "%.1fk/s\n", x / 1e3; else printf "%.0f/s\n", x }'
}
echo
echo "streamdbd next to Redis $redis_version: $CONNS connections, $SIZE-byte values, $KEYS keys;"
echo "median of $ROUNDS interleaved round(s)$( ((short)) && echo ", SHORT mode (a check, not a measurement)");"
echo "$(nproc) CPUs, load average $load_start at the start, $load_end at the end."
echo "Redis and streamdbd: both measured by streamdb-bench (--redis for Redis; pipeline style $STYLE);"
echo "ratio = streamdbd / Redis.  redis-benchmark: the same Redis measured by redis-benchmark, for"
echo "reference (gen = streamdb-bench --redis / redis-benchmark: near 1 when the generators agree)."
echo
echo "| request | pipeline | Redis | streamdbd | ratio | goal | p99 Redis | p99 streamdbd | redis-benchmark | p99 redis-benchmark | gen |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
fmt_ms() { [[ $1 == - ]] && echo - || echo "$1 ms"; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "-" && b + 0 > 0) printf "%.2f\n", a / b; else print "-" }'; }
for row in "${rows[@]}"; do
    IFS='|' read -r name _ _ _ pl goal label <<<"$row"
    qr=$(median "$res/$name.resp" 1) sr=$(median "$res/$name.sdb" 1) rr=$(median "$res/$name.redis" 1)
    qp=$(median "$res/$name.resp" 2) sp=$(median "$res/$name.sdb" 2) rp=$(median "$res/$name.redis" 2)
    echo "| $label | $pl | $(rate "$qr") | $(rate "$sr") | $(div "$sr" "$qr") | ≥ $goal |" \
        "$(fmt_ms "$qp") | $(fmt_ms "$sp") | $(rate "$rr") | $(fmt_ms "$rp") | $(div "$qr" "$rr") |"
done
echo
echo "Command: scripts/bench-vs-redis.sh$( ((short)) && echo " --short") (make bench; make bench-redis)"
