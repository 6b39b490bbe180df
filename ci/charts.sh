#!/usr/bin/env bash
# Re-draws the book's benchmark charts (docs/src/images/charts/*.svg) from the benchmark
# scripts' last results (docs/src/images/charts/data/*.json: ci/bench-sync.sh,
# ci/bench-supervisor.sh, ci/plan-vs-docker.sh write them). The drawing tool is the workspace
# member tools/charts (plotters, SVG only).
# With --check nothing is written, and it fails when a committed chart is not what the
# committed results draw (ci/test.sh runs that).
# Usage: ci/charts.sh [--check]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --quiet --locked -p podstack-charts -- \
    --data docs/src/images/charts/data --out docs/src/images/charts "$@"
