#!/usr/bin/env bash
# Benchmark: `podstack build` of every shipped stack with a release binary, wall time per run.
# Target: under 100 ms. Usage: ci/bench-build.sh [RUNS]  (default 50)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-50}
cargo build --release --locked --quiet
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
bin=target/release/podstack
"$bin" build --out "$out" >/dev/null 2>&1   # warm the page cache
if command -v hyperfine >/dev/null 2>&1; then
    hyperfine -N --warmup 3 --runs "$runs" --style basic "$bin build --out $out"
else
    times=()
    for _ in $(seq "$runs"); do
        start=$(date +%s%N)
        "$bin" build --out "$out" >/dev/null 2>&1
        times+=($(( ($(date +%s%N) - start) / 1000 )))
    done
    printf '%s\n' "${times[@]}" | sort -n | awk -v n="$runs" '
        { t[NR] = $1; sum += $1 }
        END { printf "podstack build (all stacks), %d runs: mean %.1f ms, median %.1f ms, max %.1f ms\n",
              n, sum / n / 1000, t[int((n + 1) / 2)] / 1000, t[n] / 1000 }'
fi
