#!/usr/bin/env bash
# Benchmark: `podstack verify` on a venv with 500 installed distributions, all 500 pinned
# (release build, files sealed, no expected digest so nothing waits on the network).
# Target: under 200 ms. Usage: ci/bench-verify.sh [RUNS]  (default 30; hyperfine when present)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-30}
cargo build --release --locked --quiet
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python3 - "$work" <<'PY'
import json, os, sys
work = sys.argv[1]
site = os.path.join(work, "venv/lib/python3.11/site-packages")
pins = []
for i in range(500):
    name, version = f"package-{i:03d}", f"1.{i}.0"
    info = os.path.join(site, f"package_{i:03d}-{version}.dist-info")
    os.makedirs(info)
    with open(os.path.join(info, "METADATA"), "w") as f:
        f.write(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: a benchmark package\n"
                f"Requires-Dist: something\n\n" + "A long description.\n" * 200)
    pins.append({"name": name, "version": version})
stack = json.load(open("generated/smoke/stack.json"))
stack["packages"] = pins
stack["comfyui"]["python"] = os.path.join(work, "venv/bin/python")
runtime = os.path.join(work, "podstack")
os.makedirs(os.path.join(runtime, "ui"))
json.dump(stack, open(os.path.join(runtime, "stack.json"), "w"))
open(os.path.join(runtime, "DIGEST"), "w").write("sha256:" + "0" * 64 + "\n")
PY
cp templates/ui/* "$work/podstack/ui/"
bin=target/release/podstack
"$bin" seal --runtime-dir "$work/podstack" --binary "$bin" >/dev/null
report=$("$bin" verify --config "$work/podstack/stack.json") \
    || { echo "$report" >&2; echo "the benchmark venv does not verify" >&2; exit 1; }
if command -v hyperfine >/dev/null 2>&1; then
    hyperfine -N --warmup 3 --runs "$runs" --style basic "$bin verify --config $work/podstack/stack.json"
else
    start=$(date +%s%N)
    for _ in $(seq "$runs"); do "$bin" verify --config "$work/podstack/stack.json" >/dev/null; done
    echo "podstack verify, 500 packages: mean $(( ($(date +%s%N) - start) / runs / 1000000 )) ms over $runs runs"
fi
