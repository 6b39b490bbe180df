#!/usr/bin/env bash
# Benchmark of POST /api/start on a busy pod of four slots (issue 15), release build:
#   - the fake nvidia-smi's four RTX 4090s, so the supervisor runs four slots, each a stand-in
#     ComfyUI on its own port; alice, bob, carol and dave each start in one, and each slot runs
#     a prompt that lasts an hour, with a second one waiting (so each slot's queue is 1 + 1);
#   - 200 concurrent clients on GET /api/status (wrk, 2 threads) for the whole measurement;
#   - meanwhile, one after the other, START_CALLS times each: alice's start (answered 202
#     with her own slot back, no process started) and erin's start in carol's slot 2
#     (answered 409 naming carol and her queue, which the supervisor asks of carol's ComfyUI);
#   - p50/p99/max of each kind, per run (RUNS runs against the same pod), with the load
#     average, printed and written to target/bench/slots.json (one object a run).
# Usage: ci/bench-slots.sh [RUNS] [START_CALLS]   (defaults 3 and 200; installs wrk when missing)
set -euo pipefail
runs=${1:-3}
calls=${2:-200}
# shellcheck source=ci/bench-lib.sh
source "$(dirname "$0")/bench-lib.sh"
bench_need_wrk
bench_setup
bench_stack alice bob carol dave erin

# Slot N listens on slot 0's port + N: find four free ports in a row.
while ! python3 - "$comfy" <<'PY'
import socket, sys
base = int(sys.argv[1])
held = []
try:
    for port in range(base, base + 4):
        s = socket.socket()
        s.bind(("127.0.0.1", port))
        held.append(s)
except OSError:
    sys.exit(1)
PY
do
    comfy=$(free_port)
done

FAKE_NVIDIA_SMI=four STANDIN_GPU="NVIDIA GeForce RTX 4090" STANDIN_STARTUP_SECONDS=0 \
    STANDIN_PROMPT_SECONDS=3600 PODSTACK_NVIDIA_SMI="$PWD/tests/fixtures/nvidia-smi/nvidia-smi" \
    bench_supervise python3

mkdir -p target/bench
python3 - "$port" "$comfy" "$runs" "$calls" "$pid" <<'PY'
import http.client, json, os, signal, statistics, subprocess, sys, time
port, comfy, runs, calls, pid = (int(a) for a in sys.argv[1:6])
PROMPT = json.dumps({"prompt": {
    "1": {"class_type": "EmptyLatentImage", "inputs": {"width": 8, "height": 8, "batch_size": 1}},
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "bench"}}}})

def call(port_, method, path, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", port_, timeout=30)
    conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, data

def status():
    return json.loads(call(port, "GET", "/api/status")[1])

deadline = time.monotonic() + 120
def wait(what, done):
    while not done():
        if time.monotonic() > deadline:
            sys.exit(f"gave up waiting for {what}")
        time.sleep(0.1)

def health():
    try:
        return call(port, "GET", "/api/health")[0] == 200
    except OSError:
        return False
wait("the panel", health)
slots = status()["slots"]
assert len(slots) == 4, f"{len(slots)} slots: is the fake nvidia-smi's 'four' in use?"
for user in ("alice", "bob", "carol", "dave"):
    code, body = call(port, "POST", "/api/start", json.dumps({"user": user}))
    assert code == 202, (code, body)
def everyone_ready():
    return all(s["user"] and s["comfyui"]["state"] == "ready" for s in status()["slots"])
wait("four ComfyUIs ready", everyone_ready)
holders = {s["user"]: s for s in status()["slots"]}
for slot in holders.values():
    for _ in range(2):
        code, body = call(slot["port"], "POST", "/prompt", PROMPT)
        assert code == 200, (code, body)
carol = holders["carol"]["slot"]

def pct(values, q):
    values = sorted(values)
    return values[max(0, min(len(values) - 1, round(q * len(values)) - 1))]

results = []
for run in range(1, runs + 1):
    load = open("/proc/loadavg").read().split()[:3]
    wrk = subprocess.Popen(["wrk", "-t2", "-c200", "-d600s", "--latency",
                            f"http://127.0.0.1:{port}/api/status"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(2)  # wrk's 200 connections open and busy
    own, refused = [], []
    for _ in range(calls):
        t = time.perf_counter()
        code, body = call(port, "POST", "/api/start", json.dumps({"user": "alice"}))
        own.append((time.perf_counter() - t) * 1000)
        assert code == 202, (code, body)
        t = time.perf_counter()
        code, body = call(port, "POST", "/api/start", json.dumps({"user": "erin", "slot": carol}))
        refused.append((time.perf_counter() - t) * 1000)
        answer = json.loads(body)
        assert code == 409 and answer["user"] == "carol", (code, body)
        assert answer["queue"] == {"queue_running": 1, "queue_pending": 1}, answer
    wrk.send_signal(signal.SIGINT)
    out = wrk.communicate(timeout=60)[0]
    rps = next((line.split()[1] for line in out.splitlines() if line.startswith("Requests/sec")), None)
    row = {"run": run, "slots_busy": 4, "status_clients": 200, "calls": calls,
           "load_average": [float(x) for x in load],
           "start_own_slot_ms": {"p50": round(statistics.median(own), 2),
                                 "p99": round(pct(own, 0.99), 2), "max": round(max(own), 2)},
           "start_busy_slot_409_ms": {"p50": round(statistics.median(refused), 2),
                                      "p99": round(pct(refused, 0.99), 2),
                                      "max": round(max(refused), 2)},
           "status_requests_per_s": float(rps) if rps else None}
    results.append(row)
    print(f"run {run} (load average {' '.join(load)}), 4 slots busy, 200 status clients "
          f"({rps or '?'} status req/s):")
    print(f"  POST /api/start, own slot back (202), {calls} calls: p50 "
          f"{row['start_own_slot_ms']['p50']:.2f} ms, p99 {row['start_own_slot_ms']['p99']:.2f} ms, "
          f"max {row['start_own_slot_ms']['max']:.2f} ms")
    print(f"  POST /api/start, busy slot (409 with the holder's queue), {calls} calls: p50 "
          f"{row['start_busy_slot_409_ms']['p50']:.2f} ms, p99 "
          f"{row['start_busy_slot_409_ms']['p99']:.2f} ms, max {row['start_busy_slot_409_ms']['max']:.2f} ms")
    time.sleep(3)
record = {"bench": "slots", "command": "ci/bench-slots.sh", "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
          "runs": results}
with open("target/bench/slots.json", "w") as f:
    json.dump(record, f, indent=1)
print("BENCH " + json.dumps(record, separators=(",", ":")))
PY
echo "written: target/bench/slots.json"
