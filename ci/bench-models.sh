#!/usr/bin/env bash
# Benchmark of the pod's model downloads (release build), against a local HTTP server that
# sends files with sendfile (so the server's own CPU use leaves the machine to the clients):
#   - throughput of a 1 GB model fetched by the supervisor (POST /api/models/fetch until
#     /api/models says present: download, sha256, fsync, rename) against `curl -o` of the same
#     file from the same server onto the same disk, in the same run (target >= 90% of curl),
#     and against curl followed by an fsync of its file (the same durability);
#   - start-up with 20 models already on the volume: the time from /api/health answering until
#     /api/models says every one is present, without verification records (every file is
#     hashed) and with them (target: no file is read again).
# Usage: ci/bench-models.sh [RUNS]   (default 3 runs of the download comparison)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
cargo build --release --locked --quiet

work=$(mktemp -d -p "${TMPDIR:-/tmp}")
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

echo "== making the files (1 GB model, 20 x 50 MB models)"
mkdir -p "$work/served" "$work/present/models/checkpoints"
head -c 1000000000 /dev/urandom >"$work/served/big.safetensors"
big_sha=$(sha256sum "$work/served/big.safetensors" | cut -d' ' -f1)
for i in $(seq -w 1 20); do
    head -c 50000000 /dev/urandom >"$work/present/models/checkpoints/m$i.safetensors"
done

server_port=$(free_port)
python3 - "$work/served" "$server_port" <<'PY' &
import http.server, os, sys
class Handler(http.server.SimpleHTTPRequestHandler):
    def copyfile(self, source, outputfile):
        self.connection.sendfile(source)
    def log_message(self, *args):
        pass
os.chdir(sys.argv[1])
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2])), Handler).serve_forever()
PY
pids+=($!)
for _ in $(seq 50); do curl -fsS -o /dev/null "http://127.0.0.1:$server_port/" 2>/dev/null && break; sleep 0.1; done
url="http://127.0.0.1:$server_port/big.safetensors"

# stack.json: the smoke stack with the given models (JSON list) and fetch_at_start.
stack_with() { # file models-json fetch-at-start
    python3 - "$@" <<'PY'
import json, sys
path, models, at_start = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3] == "true"
stack = json.load(open("generated/smoke/stack.json"))
stack["models"] = models
stack["runtime"]["models"] = {"fetch_at_start": at_start, "parallel": 2}
json.dump(stack, open(path, "w"))
PY
}

launch() { # config volume log -> sets $panel, appends the pid; does not wait
    panel=$(free_port)
    PODSTACK_NVIDIA_SMI="$work/no-nvidia-smi" target/release/podstack supervise --config "$1" \
        --volume "$2" --comfyui-dir tests/fixtures/comfyui --python python3 \
        --listen 127.0.0.1 --panel-listen 127.0.0.1 --panel-port "$panel" \
        --comfyui-port "$(free_port)" --pod-id bench >"$3" 2>&1 &
    pids+=($!)
}

supervise() { # config volume log -> sets $panel, appends the pid; waits for /api/health
    launch "$@"
    for _ in $(seq 200); do curl -fsS -o /dev/null "http://127.0.0.1:$panel/api/health" 2>/dev/null && return 0; sleep 0.01; done
    echo "the supervisor did not start:" >&2
    cat "$3" >&2
    exit 1
}

stop_last() {
    local pid=${pids[-1]}
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null || true
    unset 'pids[-1]'
}

# Seconds (with ms) since start_ns until every model is present, polling /api/models every 20 ms.
wait_present() { # panel start_ns
    python3 - "$1" "$2" <<'PY'
import json, sys, time, urllib.request
panel, start = int(sys.argv[1]), int(sys.argv[2])
while True:
    models = json.load(urllib.request.urlopen(f"http://127.0.0.1:{panel}/api/models"))["models"]
    states = {m["state"] for m in models}
    if states == {"present"}:
        print(f"{(time.time_ns() - start) / 1e9:.3f}")
        break
    if "failed" in states:
        sys.exit(f"failed: {models}")
    time.sleep(0.02)
PY
}

echo "== 1 GB download: podstack (download + sha256 + fsync + rename) vs curl -o, same server, same disk"
model="[{\"url\": \"$url\", \"sha256\": \"$big_sha\", \"size\": 1000000000, \"dest\": \"checkpoints/big.safetensors\", \"auth_env\": null}]"
stack_with "$work/download.json" "$model" false
for run in $(seq "$runs"); do
    sync
    start=$(date +%s%N)
    curl -fsS -o "$work/curl.bin" "$url"
    curl_done=$(date +%s%N)
    sync "$work/curl.bin"
    synced=$(date +%s%N)
    rm -f "$work/curl.bin"
    rm -rf "$work/volume"
    sync
    supervise "$work/download.json" "$work/volume" "$work/download.log"
    start_podstack=$(date +%s%N)
    curl -fsS -o /dev/null -X POST "http://127.0.0.1:$panel/api/models/fetch"
    podstack_s=$(wait_present "$panel" "$start_podstack")
    stop_last
    python3 - "$run" "$start" "$curl_done" "$synced" "$podstack_s" <<'PY'
import sys
run, start, done, synced, podstack = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
curl, curl_sync, mb = (done - start) / 1e9, (synced - start) / 1e9, 1000.0
print(f"run {run}: curl {mb / curl:6.1f} MB/s ({curl:.2f} s), curl+fsync {mb / curl_sync:6.1f} MB/s ({curl_sync:.2f} s), "
      f"podstack {mb / podstack:6.1f} MB/s ({podstack:.2f} s): {curl / podstack:6.1%} of curl, {curl_sync / podstack:6.1%} of curl+fsync")
PY
done

echo "== start-up with 20 models (1 GB) already on the volume"
models=$(python3 - "$work/present/models/checkpoints" <<'PY'
import hashlib, json, os, sys
folder = sys.argv[1]
models = []
for name in sorted(os.listdir(folder)):
    digest = hashlib.sha256(open(os.path.join(folder, name), "rb").read()).hexdigest()
    models.append({"url": f"http://127.0.0.1:9/{name}", "sha256": digest, "size": 50000000,
                   "dest": f"checkpoints/{name}", "auth_env": None})
print(json.dumps(models))
PY
)
stack_with "$work/present.json" "$models" true
for label in "first start (no records: every file hashed)" "second start (records: nothing read)" "third start (records: nothing read)"; do
    start=$(date +%s%N)
    launch "$work/present.json" "$work/present" "$work/present.log"
    python3 - "$panel" "$start" "$label" <<'PY'
import json, sys, time, urllib.request
panel, start, label = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
base = f"http://127.0.0.1:{panel}"
def ms():
    return (time.time_ns() - start) / 1e6
while True:
    try:
        urllib.request.urlopen(f"{base}/api/health")
        break
    except OSError:
        time.sleep(0.002)
health = ms()
while {m["state"] for m in json.load(urllib.request.urlopen(f"{base}/api/models"))["models"]} != {"present"}:
    time.sleep(0.002)
present = ms()
print(f"{label}: /api/health at {health:.0f} ms, all 20 present at {present:.0f} ms after exec "
      f"({present - health:.0f} ms for the models)", end="")
PY
    echo "; files hashed: $(grep -c 'hashing it' "$work/present.log" || true)"
    stop_last
done
