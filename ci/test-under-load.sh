#!/usr/bin/env bash
# The whole test suite N times in a row (default 3) while `stress-ng --cpu 2` keeps both cores
# of the project's machine busy: a test that depends on how fast a loaded machine is fails
# here first. Prints each run's nextest summary and ends non-zero when any run failed.
#
#   ci/test-under-load.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}

if ! command -v stress-ng >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq stress-ng >/dev/null
fi
PATH="$(bash ci/rclone.sh):$PATH"
export PATH
cargo nextest run --locked --no-run >/dev/null 2>&1

stress-ng --cpu 2 --timeout 0 --quiet &
stress=$!
trap 'kill "$stress" 2>/dev/null || true' EXIT

failed=0
for run in $(seq "$runs"); do
    log="target/test-under-load-$run.log"
    if cargo nextest run --locked --no-fail-fast >"$log" 2>&1; then
        result=passed
    else
        result=FAILED
        failed=1
    fi
    printf 'run %s of %s under stress-ng --cpu 2: %s: %s\n' "$run" "$runs" "$result" \
        "$(grep -E '^ *Summary' "$log" | tail -n 1 | sed 's/^ *//')"
    grep -E '^ *(FAIL|SIGKILL|TIMEOUT) ' "$log" | sort -u || true
done
exit "$failed"
