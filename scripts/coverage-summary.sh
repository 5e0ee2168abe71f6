#!/usr/bin/env bash
# coverage-summary.sh -- prints line coverage of src/ after `make coverage` has
# run the suite in a --coverage build.  With lcov installed it also writes
# BUILD/coverage.info (and BUILD/html with genhtml); without it, plain gcov
# (part of gcc) gives the per-file figures and nothing is written.
#
# Usage: scripts/coverage-summary.sh [BUILD_DIR]   (default build-cov)
# Run from the repository root.  Exit status 1 when BUILD_DIR has no coverage
# notes (.gcno files), i.e. `make coverage` did not build anything.
set -euo pipefail

dir=${1:-build-cov}
dir=${dir%/}
mapfile -t notes < <(find "$dir/src" -name '*.gcno' 2>/dev/null | sort)
if ((${#notes[@]} == 0)); then
    echo "coverage-summary: no .gcno files under $dir/src; run make coverage" >&2
    exit 1
fi

if command -v lcov >/dev/null 2>&1; then
    # Debian's lcov 1.16 prints harmless Perl warnings: keep them in a log
    # that is shown only when lcov fails.
    if ! { lcov --quiet --capture --directory "$dir/src" --base-directory . \
               --output-file "$dir/coverage-all.info" &&
           lcov --quiet --extract "$dir/coverage-all.info" "$PWD/src/*" \
               --output-file "$dir/coverage.info"; } 2>"$dir/lcov.log"; then
        cat "$dir/lcov.log" >&2
        exit 1
    fi
    lcov --list "$dir/coverage.info"
    if command -v genhtml >/dev/null 2>&1; then
        genhtml --quiet --output-directory "$dir/html" "$dir/coverage.info"
        echo "HTML report: $dir/html/index.html"
    fi
    exit 0
fi

# Plain gcov: -n prints "File '...'" / "Lines executed:P% of N" pairs and
# writes no .gcov files.  A source whose tests never ran counts as 0%.
printf '%-40s %8s %8s\n' "file" "lines" "covered"
for note in "${notes[@]}"; do
    rel=${note#"$dir"/}
    src=${rel%.gcno}.c
    [[ -f $src ]] || continue
    gcov -n -o "$(dirname "$note")" "$src" 2>/dev/null |
        awk -v src="$src" '
            /^File / { f = $2; gsub(/\047/, "", f); next }
            /^Lines executed:/ && f == src {
                split($0, a, /[:% ]+/)     # Lines executed:P% of N
                n = a[5]; p = a[3]
                printf "%-40s %8d %7.1f%%\n", src, n, p
                exit
            }'
done | tee "$dir/coverage.txt"
awk 'NR > 0 { n += $2; c += $2 * $3 / 100 }
     END { if (n) printf "%-40s %8d %7.1f%%\n", "TOTAL", n, 100 * c / n }' "$dir/coverage.txt"
