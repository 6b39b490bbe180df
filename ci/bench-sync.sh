#!/usr/bin/env bash
# Benchmark of the output sync against a WebDAV remote (`rclone serve webdav` on loopback),
# side by side in one run with the field approach it replaces (L25):
#   - podstack: the supervisor (release build) serving 4 users in 4 slots, its sync service
#     with the manifest's defaults except min_age = 2s (the bench writes each file in one go);
#   - field: a bash loop over the user folders, `rclone sync --transfers 2 --checkers 2`
#     for each, then `sleep 60`, started when the users start generating.
# The workload is the same for both: 4 users generating at once, each writing one file every
# second, 50 files per user of 2-20 MB (sizes from a fixed seed, about 2.2 GB in all). It
# reports the time from the first file written until all are on the remote, the upload
# latency (file written -> complete on the remote) p50/p95, the ratios, and the uploads per
# file (PUT requests the WebDAV server answered, from its log, over the files written: 1.00
# when nothing is uploaded twice).
# The result is also written to docs/src/images/charts/data/bench-sync.json (ci/charts.sh draws
# it as sync-latency.svg).
# Usage: ci/bench-sync.sh [FILES_PER_USER]   (rclone is the tests', from ci/rclone.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=ci/bench-results.sh
source ci/bench-results.sh
PATH="$(bash ci/rclone.sh):$PATH"
cargo build --release --locked --quiet

files=${1:-50}
run=$(bench_run_json "ci/bench-sync.sh $files")
users=(alice bob carol dave)
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        pkill -TERM -P "$pid" 2>/dev/null || true
        kill -TERM "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

dav_port=$(free_port)
mkdir -p "$work/served"
rclone serve webdav "$work/served" --addr "127.0.0.1:$dav_port" --user bench --pass bench-password \
    --config "" -v --log-file "$work/webdav.log" &
pids+=("$!")
obscured=$(rclone obscure bench-password)
until python3 -c "import socket; socket.create_connection(('127.0.0.1', $dav_port))" 2>/dev/null; do
    sleep 0.1
done

# How many PUTs under <served>/<root>/ the WebDAV server answered so far.
uploads() {
    grep -c "INFO  : //$1/.*: PUT from" "$work/webdav.log" || true
}

# Writes the workload into <volume>/output/<user>/ and measures when each file is complete
# under <served>/<root>/output/<user>/. Prints one JSON line.
measure() {
    python3 - "$1" "$2" "$files" "${users[@]}" <<'PY'
import json, os, random, statistics, sys, threading, time
volume, remote, files, users = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
rng = random.Random(25)
sizes = {(u, i): rng.randint(2_000_000, 20_000_000) for u in users for i in range(files)}
written, arrived = {}, {}

def generate(user):
    folder = os.path.join(volume, "output", user)
    os.makedirs(folder, exist_ok=True)
    start = time.monotonic()
    for i in range(files):
        time.sleep(max(0.0, start + i - time.monotonic()))
        path = os.path.join(folder, f"ComfyUI_{i:05}_.png")
        with open(path, "wb") as out:
            out.write(random.Random(i).randbytes(sizes[(user, i)]))
        written[(user, i)] = time.monotonic()

first = time.monotonic()
threads = [threading.Thread(target=generate, args=(u,)) for u in users]
for thread in threads:
    thread.start()
deadline = first + 900
while len(arrived) < len(sizes) and time.monotonic() < deadline:
    for user in users:
        folder = os.path.join(remote, "output", user)
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            continue
        for entry in entries:
            try:
                i = int(entry.name.split("_")[1])
                size = entry.stat().st_size
            except (ValueError, IndexError, FileNotFoundError):
                continue
            key = (user, i)
            if key in written and key not in arrived and size == sizes[key]:
                arrived[key] = time.monotonic()
    time.sleep(0.05)
for thread in threads:
    thread.join()
latencies = sorted(arrived[k] - written[k] for k in arrived)
quantile = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]
print(json.dumps({
    "files": len(sizes), "arrived": len(arrived),
    "gigabytes": round(sum(sizes.values()) / 1e9, 2),
    "all_remote_s": round(max(arrived.values()) - first, 1) if arrived else None,
    "p50_s": round(quantile(0.5), 1), "p95_s": round(quantile(0.95), 1),
}))
PY
}

# podstack: the supervisor with the stand-in ComfyUI, serving every user in turn.
python3 - "$work" "$dav_port" "${users[@]}" <<'PY'
import json, sys
work, port, users = sys.argv[1], sys.argv[2], sys.argv[3:]
stack = json.load(open("generated/smoke/stack.json"))
stack["runtime"]["users"] = users
# One ComfyUI per user at once, as four artists on one pod need (a pod without GPUs has one
# slot by default, and a second user's start would ask to take it).
stack["runtime"]["slots"] = len(users)
stack["sync"] = {
    "remote": "dav", "backend": "webdav", "root": "podstack", "team_drive": "",
    "options": {"url": f"http://127.0.0.1:{port}", "vendor": "other", "user": "bench"},
    "folders": [{"path": "output", "mode": "mirror"}],
    "transfers": 8, "checkers": 16, "tpslimit": 0, "bwlimit": "", "min_age": "2s",
    "interval": "5m", "trash": True, "max_delete": 100, "heartbeat": "10s", "final_sync": "30s",
}
json.dump(stack, open(f"{work}/stack.json", "w"))
PY
panel=$(free_port)
RUNPOD_SECRET_RCLONE_PASS=$obscured STANDIN_STARTUP_SECONDS=0 PODSTACK_NVIDIA_SMI="$work/no-nvidia-smi" \
    target/release/podstack supervise --config "$work/stack.json" --volume "$work/podstack" \
    --comfyui-dir tests/fixtures/comfyui --python python3 --listen 127.0.0.1 --panel-listen 127.0.0.1 \
    --panel-port "$panel" --comfyui-port "$(free_port)" --pod-id bench >"$work/supervisor.log" 2>&1 &
supervisor=$!
pids+=("$supervisor")
python3 - "$panel" "${users[@]}" <<'PY'
import http.client, json, sys, time
port, users = int(sys.argv[1]), sys.argv[2:]
def call(method, path, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, path, json.dumps(body) if body else None, {"Content-Type": "application/json"})
    reply = conn.getresponse()
    return reply.status, reply.read()
while True:
    try:
        call("GET", "/api/health")
        break
    except OSError:
        time.sleep(0.05)
for user in users:
    call("POST", "/api/start", {"user": user})
while True:
    report = json.loads(call("GET", "/api/sync")[1])
    held = [f for f in report["folders"] if f["held_by"] is None]
    if report["service"]["state"] == "ready" and len(held) == len(users):
        break
    time.sleep(0.1)
PY
podstack=$(measure "$work/podstack" "$work/served/podstack")
kill -TERM "$supervisor"
wait "$supervisor" || true
podstack_uploads=$(uploads podstack)
rm -rf "$work/podstack" "$work/served/podstack"

# The field approach: a loop over the user folders every 60 s, started with the workload.
export RCLONE_CONFIG_DAV_TYPE=webdav RCLONE_CONFIG_DAV_URL="http://127.0.0.1:$dav_port"
export RCLONE_CONFIG_DAV_VENDOR=other RCLONE_CONFIG_DAV_USER=bench RCLONE_CONFIG_DAV_PASS=$obscured
field_loop() {
    while true; do
        for user in "${users[@]}"; do
            mkdir -p "$work/field/output/$user"
            rclone --config "" sync "$work/field/output/$user" "dav:field/output/$user" \
                --transfers 2 --checkers 2 >>"$work/field.log" 2>&1 || true
        done
        sleep 60
    done
}
field_loop &
loop=$!
pids+=("$loop")
field=$(measure "$work/field" "$work/served/field")
pkill -TERM -P "$loop" 2>/dev/null || true
kill -TERM "$loop" 2>/dev/null || true
field_uploads=$(uploads field)

result=$(python3 - "$podstack" "$field" "$podstack_uploads" "$field_uploads" "$run" "$(rclone version | sed -n 1p)" <<'PY'
import json, sys
podstack, field = json.loads(sys.argv[1]), json.loads(sys.argv[2])
podstack["uploads_per_file"] = round(int(sys.argv[3]) / podstack["files"], 2)
field["uploads_per_file"] = round(int(sys.argv[4]) / field["files"], 2)
run = json.loads(sys.argv[5])
run["rclone"] = sys.argv[6].split()[-1]
print(json.dumps({
    "run": run,
    "workload": {"users": 4, "files_per_user": podstack["files"] // 4, "file_mb": [2, 20],
                 "gigabytes": podstack["gigabytes"], "min_age_s": 2,
                 "remote": "rclone serve webdav on loopback"},
    "podstack": podstack,
    "field_loop": dict(field, how="FIELD-LESSONS L25: for each user folder `rclone sync "
                       "--transfers 2 --checkers 2`, then `sleep 60`; measured in the same run"),
}))
PY
)
python3 - "$result" <<'PY'
import json, sys
result = json.loads(sys.argv[1])
podstack, field = result["podstack"], result["field_loop"]
print(f"workload: 4 users x {podstack['files'] // 4} files of 2-20 MB ({podstack['gigabytes']} GB), one file per user per second")
print(f"{'':34}{'podstack':>10}{'field loop':>12}{'ratio':>8}")
for key, label in [("all_remote_s", "first write -> all remote (s)"),
                   ("p50_s", "upload latency p50 (s)"), ("p95_s", "upload latency p95 (s)")]:
    a, b = podstack[key], field[key]
    ratio = f"{b / a:.1f}x" if a and b else "-"
    print(f"{label:34}{a:>10}{b:>12}{ratio:>8}")
print(f"{'uploads per file':34}{podstack['uploads_per_file']:>10.2f}{field['uploads_per_file']:>12.2f}")
for name, run in [("podstack", podstack), ("field loop", field)]:
    if run["arrived"] < run["files"]:
        print(f"warning: {name}: only {run['arrived']} of {run['files']} files arrived within 900 s")
PY
bench_write bench-sync "$result"
