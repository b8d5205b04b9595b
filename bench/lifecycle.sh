#!/bin/sh
# Issue 13, part 7: scoring with the live version alone, with a candidate in
# shadow and with a canary at 5 %, alternated so that the machine's slow
# phases fall on every variant alike. Usage: bench/lifecycle.sh [ROUNDS] [extra bench options]
set -e
ROUNDS=${1:-3}
[ $# -gt 0 ] && shift
VERDICT=${VERDICT:-./target/release/verdict}
for round in $(seq 1 "$ROUNDS"); do
    for candidate in none shadow canary:5; do
        echo "== round $round, candidate $candidate"
        if [ "$candidate" = none ]; then
            "$VERDICT" bench --seconds 8 --concurrency 32 --rate 5000 "$@" 2>&1 | grep -v 'WARN\|INFO'
        else
            "$VERDICT" bench --seconds 8 --concurrency 32 --rate 5000 --candidate "$candidate" "$@" 2>&1 | grep -v 'WARN\|INFO'
        fi
    done
done
