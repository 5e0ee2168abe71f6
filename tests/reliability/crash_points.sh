#!/usr/bin/env bash
# crash_points.sh -- counts the crash points swept by the unit suites
# (docs/RELIABILITY.md, "Crash points swept").
#
# Usage: tests/reliability/crash_points.sh BUILD/reliability/check_crashcount
#
# The runner is check_all linked with tests/reliability/crashcount.c, which
# logs every test process it forks ("test"), every fault backend created
# with a crash point ("planned") and every crash that really happened
# ("fired").  Each suite that uses the fault backend runs once with a Check
# log (CK_LOG_FILE_NAME); its result lines are matched in order with the test
# processes to name each count.  A row is printed per test that planned a
# crash (loop iterations summed), then the totals.  Exit 1 if a test failed
# (its count would not be one the suite stands behind).
set -u
bin=${1:?usage: crash_points.sh CHECK_CRASHCOUNT_BINARY}
log=$(mktemp /tmp/sdb-crashcount.XXXXXX)
trap 'rm -f "$log" "$log.out" "$log.ck" "$log.names" "$log.all"' EXIT
failed=0
: > "$log.all"
for suite in $(grep -l 'backend_fault_new' tests/unit/check_*.c | sed 's|.*/check_||; s|\.c$||'); do
    : > "$log"
    rm -f "$log.ck"
    if ! SDB_CRASHCOUNT_FILE="$log" CK_LOG_FILE_NAME="$log.ck" CK_FORK=yes "$bin" "$suite" \
            > "$log.out" 2>&1; then
        grep -E ':[FE]:' "$log.out" | sed 's/^/FAILED: /'
        failed=1
    fi
    # result lines, in order: file:line:P:tcase:test:iteration: ...
    grep -E '^[^:]+:[0-9]+:[PFE]:' "$log.ck" | awk -F: -v s="$suite" '{print s, $5}' > "$log.names"
    awk '
        FNR == NR { name[++n] = $0; next }            # the result lines
        $1 == "test"    { t++; pid2t[$2] = t; next }
        $1 == "planned" { p[pid2t[$2]]++ }
        $1 == "fired"   { f[pid2t[$2]]++ }
        END { for (i = 1; i <= t; i++) if (p[i]) print name[i], p[i] + 0, f[i] + 0 }
    ' "$log.names" "$log" >> "$log.all"
    rm -f "$log.names"
done
printf '%-12s %-40s %9s %7s\n' suite test planned fired
awk '{ k = $1 " " $2; if (!(k in p)) order[++n] = k; p[k] += $3; f[k] += $4 }
     END { for (i = 1; i <= n; i++) { split(order[i], a, " ");
               printf "%-12s %-40s %9d %7d\n", a[1], a[2], p[order[i]], f[order[i]];
               tp += p[order[i]]; tf += f[order[i]] }
           printf "%-12s %-40s %9d %7d\n", "total", "", tp, tf
           printf "crash points: %d crashes fired (of %d planned), each followed by the test'"'"'s recovery check\n", tf, tp }' "$log.all"
rm -f "$log.all"
exit $failed
