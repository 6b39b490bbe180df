#!/usr/bin/env bash
# Benchmark of the supervisor (release build) against the stand-in ComfyUI:
#   - time from `podstack supervise` exec to the ComfyUI process starting (target <= 100 ms),
#     for a boot-time user (PODSTACK_START_USER), with the GPU probe left out (no nvidia-smi,
#     so the probe returns at once);
#   - POST /api/start latency p50/p99 over 200 starts (users alternate, so each start also
#     stops the previous ComfyUI: a forced start, as the one-slot pod needs since issue 15);
#   - GET /api/status p99 under 200 concurrent clients (wrk, 10 s; target <= 5 ms), and the
#     supervisor's peak RSS meanwhile (VmHWM, reset through /proc/<pid>/clear_refs; target
#     <= 20 MB);
#   - two bursts of 1,000 connections on GET /api/status (wrk, 10 s each; the panel keeps 512
#     open): peak RSS, and RSS 5 s after each and 15 s after the second (idle connections
#     close after 10 s);
#   - the supervisor's RSS when idle (target <= 20 MB).
# The figures are also written to docs/src/images/charts/data/bench-supervisor.json
# (ci/charts.sh draws the status latency as status-latency.svg).
# Usage: ci/bench-supervisor.sh   (installs wrk from Debian when missing)
set -euo pipefail
# shellcheck source=ci/bench-lib.sh
source "$(dirname "$0")/bench-lib.sh"
bench_need_wrk
bench_setup
bench_stack alice bob
# shellcheck source=ci/bench-results.sh
source ci/bench-results.sh
run=$(bench_run_json "ci/bench-supervisor.sh")

# ComfyUI's "python" notes the moment it is executed, before Python's own start-up.
printf '#!/bin/sh\ndate +%%s%%N >"%s/spawned"\nexec python3 "$@"\n' "$work" >"$work/python"
chmod +x "$work/python"

start_ns=$(date +%s%N)
STANDIN_STARTUP_SECONDS=0 PODSTACK_NVIDIA_SMI="$work/no-nvidia-smi" PODSTACK_START_USER=alice \
    bench_supervise "$work/python"

python3 - "$port" "$work" "$start_ns" "$pid" <<'PY'
import http.client, json, os, statistics, sys, time
port, work, start_ns, pid = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]

def call(method, path, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, path, body=json.dumps(body) if body else None,
                 headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, data

while True:
    try:
        call("GET", "/api/health")
        break
    except OSError:
        time.sleep(0.001)
spawned = os.path.join(work, "spawned")
while not os.path.exists(spawned) or not open(spawned).read().strip():
    time.sleep(0.0005)
spawned_ns = int(open(spawned).read())
figures = {"spawn_ms": round((spawned_ns - start_ns) / 1e6, 1)}
print(f"exec to ComfyUI spawn (PODSTACK_START_USER, no GPU probe): {figures['spawn_ms']} ms")

def ready():
    status = json.loads(call("GET", "/api/status")[1])
    return status["services"]["comfyui"]["state"] == "ready"
while not ready():
    time.sleep(0.05)
time.sleep(2)
rss = [line for line in open(f"/proc/{pid}/status") if line.startswith("VmRSS")][0].split()[1]
figures["idle_rss_mb"] = round(int(rss) / 1024, 1)
print(f"supervisor RSS, idle with ComfyUI ready: {figures['idle_rss_mb']} MB")

latencies = []
for i in range(200):
    user = "bob" if i % 2 == 0 else "alice"
    t = time.perf_counter()
    # A one-slot pod: taking it from the other user is a forced start (a 409 without force).
    status, _ = call("POST", "/api/start", {"user": user, "force": True})
    latencies.append((time.perf_counter() - t) * 1000)
    assert status == 202, status
latencies.sort()
figures["start_p50_ms"] = round(statistics.median(latencies), 2)
figures["start_p99_ms"] = round(latencies[int(len(latencies) * 0.99) - 1], 2)
json.dump(figures, open(os.path.join(work, "figures.json"), "w"))
print(f"POST /api/start, 200 starts: p50 {statistics.median(latencies):.2f} ms, "
      f"p99 {latencies[int(len(latencies) * 0.99) - 1]:.2f} ms, max {latencies[-1]:.2f} ms")
PY

mb() { awk -v field="$1:" '$1 == field { printf "%.1f MB", $2 / 1024 }' "/proc/$pid/status"; }
reset_peak() { echo 5 >"/proc/$pid/clear_refs"; }

sleep 2
echo "supervisor RSS before the status load: $(mb VmRSS)"
round=0
for clients in 200 1000 1000; do
    round=$((round + 1))
    echo "GET /api/status under $clients concurrent connections (wrk, 2 threads, 10 s):"
    reset_peak
    wrk -t2 -c"$clients" -d10s --latency "http://127.0.0.1:$port/api/status" >"$work/wrk-$round.txt"
    grep -E "Latency|50%|99%|requests in|Requests/sec|Non-2xx|Socket errors" "$work/wrk-$round.txt"
    echo "  supervisor RSS: peak during the run $(mb VmHWM), at its end $(mb VmRSS)"
    mb VmHWM >"$work/peak-$round.txt"
    sleep 5
    echo "  5 s after: $(mb VmRSS)"
done
sleep 10
echo "  15 s after the second 1,000-connection burst: $(mb VmRSS)"

result=$(python3 - "$work" "$run" <<'PY'
import json, os, re, sys
work, run = sys.argv[1], json.loads(sys.argv[2])
figures = json.load(open(os.path.join(work, "figures.json")))
unit = {"us": 0.001, "ms": 1.0, "s": 1000.0}
def ms(text, label):
    value, suffix = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", text, re.M).groups()
    return round(float(value) * unit[suffix], 2)
rounds = []
for n, clients in enumerate([200, 1000, 1000], start=1):
    text = open(os.path.join(work, f"wrk-{n}.txt")).read()
    rounds.append({
        "connections": clients,
        "p50_ms": ms(text, "50%"), "p99_ms": ms(text, "99%"),
        "requests_per_s": round(float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))),
        "peak_rss_mb": float(open(os.path.join(work, f"peak-{n}.txt")).read().split()[0]),
    })
print(json.dumps({"run": run, "supervisor": figures, "status_under_load": rounds}))
PY
)
bench_write bench-supervisor "$result"
