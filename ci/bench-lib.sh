# shellcheck shell=bash
# What the supervisor benchmarks share (sourced by ci/bench-supervisor.sh, bench-memory.sh and
# bench-slots.sh): the release build, a work folder that is removed on exit with the
# supervisor stopped, free ports, the smoke stack with the benchmark's users, and the
# supervisor started against the stand-in ComfyUI on loopback.
#   bench_need_wrk             installs wrk from Debian when missing
#   bench_setup                cd to the repository, build, make $work, pick $port (the panel's)
#                              and $comfy (slot 0's ComfyUI)
#   free_port                  prints a free TCP port on 127.0.0.1
#   bench_stack USER...        writes $work/stack.json: the smoke stack with these users
#   bench_supervise PYTHON     starts the supervisor (its pid in $pid, its output in
#                              $work/supervisor.log) on $port and $comfy, with PYTHON as
#                              ComfyUI's interpreter; the caller's environment (STANDIN_*,
#                              PODSTACK_*, FAKE_NVIDIA_SMI) reaches it and the stand-in

bench_need_wrk() {
    command -v wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
}

bench_setup() {
    cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
    cargo build --release --locked --quiet
    work=$(mktemp -d -p "${TMPDIR:-/tmp}")
    pid=""
    trap bench_cleanup EXIT
    port=$(free_port)
    comfy=$(free_port)
}

bench_cleanup() {
    if [ -n "$pid" ]; then
        kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    fi
    rm -rf "$work"
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

bench_stack() {
    python3 - "$work" "$@" <<'PY'
import json, sys
stack = json.load(open("generated/smoke/stack.json"))
stack["runtime"]["users"] = sys.argv[2:]
json.dump(stack, open(f"{sys.argv[1]}/stack.json", "w"))
PY
}

bench_supervise() {
    target/release/podstack supervise --config "$work/stack.json" --volume "$work/volume" \
        --comfyui-dir tests/fixtures/comfyui --python "$1" --listen 127.0.0.1 --panel-listen 127.0.0.1 \
        --panel-port "$port" --comfyui-port "$comfy" --pod-id bench >"$work/supervisor.log" 2>&1 &
    pid=$!
}
