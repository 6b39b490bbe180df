#!/usr/bin/env bash
# Memory benchmark of the supervisor's live log streams (release build, stand-in ComfyUI),
# the case of issue 14 point 2 (the field: 100 subscribers of a ring of 1 KB lines took RSS
# from 27.7 MB to 509 MB, and 474 MB stayed after they left):
#   - ComfyUI's log ring is filled first: its "python" prints 5,000 lines of 1 KB before it
#     execs the stand-in, so the ring (5,000 lines) holds about 5 MB of text;
#   - 100 clients open GET /api/logs/stream?service=comfyui at once, from the ring's start
#     (32 stream slots: the rest get a 503); each accepted one reads the whole replay up to
#     ComfyUI's ready line and then stays;
#   - RSS (VmRSS) before, with the subscribers there, the peak while they read (VmHWM, reset
#     through /proc/<pid>/clear_refs), and 5 s after they left;
#   - the same with 100 clients that never read a byte of their stream (a stalled tab).
# Usage: ci/bench-memory.sh
set -euo pipefail
# shellcheck source=ci/bench-lib.sh
source "$(dirname "$0")/bench-lib.sh"
bench_setup
bench_stack alice

# 5,000 lines of 1,024 bytes (with the newline) on stderr, then the stand-in ComfyUI.
cat >"$work/python" <<'SH'
#!/bin/sh
python3 -c 'import sys
for i in range(5000):
    sys.stderr.write(f"filler {i:05d} " + "x" * 1010 + "\n")'
exec python3 "$@"
SH
chmod +x "$work/python"

STANDIN_STARTUP_SECONDS=0 PODSTACK_NVIDIA_SMI="$work/no-nvidia-smi" PODSTACK_START_USER=alice \
    bench_supervise "$work/python"

python3 - "$port" "$pid" <<'PY'
import http.client, json, socket, sys, threading, time
port, pid = int(sys.argv[1]), sys.argv[2]
CLIENTS = 100

def call(path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", path)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, data

def proc(field):
    line = [l for l in open(f"/proc/{pid}/status") if l.startswith(field + ":")][0]
    return int(line.split()[1]) / 1024

def reset_peak():
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")

while True:
    try:
        if json.loads(call("/api/status")[1])["services"]["comfyui"]["state"] == "ready":
            break
    except OSError:
        pass
    time.sleep(0.05)
time.sleep(2)
before = proc("VmRSS")

def subscriber(read, results, done, leave):
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    sock.sendall(f"GET /api/logs/stream?service=comfyui HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
    file = sock.makefile("rb")
    status = int(file.readline().split()[1])
    lines = 0
    if status == 200 and read:
        for raw in file:
            if raw.startswith(b"event: line"):
                lines += 1
            if raw.startswith(b"data: ") and b"To see the GUI" in raw:
                break
    results.append((status, lines))
    done.release()
    leave.wait()
    sock.close()

def round_of(read):
    results, done, leave = [], threading.Semaphore(0), threading.Event()
    reset_peak()
    threads = [threading.Thread(target=subscriber, args=(read, results, done, leave))
               for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for _ in threads:
        done.acquire()
    time.sleep(2)
    held, peak = proc("VmRSS"), proc("VmHWM")
    leave.set()
    for thread in threads:
        thread.join()
    time.sleep(5)
    accepted = [lines for status, lines in results if status == 200]
    refused = sum(1 for status, _ in results if status == 503)
    return accepted, refused, held, peak, proc("VmRSS")

rounds = [(what, round_of(read))
          for read, what in ((True, "reading the whole replay"), (False, "never reading"))]
# Read last: the whole ring as one JSON answer is an allocation of its own.
ring = json.loads(call("/api/logs?service=comfyui")[1])["lines"]
ring_mb = sum(len(line["text"]) for line in ring) / 1e6
print(f"comfyui ring: {len(ring)} lines, {ring_mb:.1f} MB of text")
print(f"RSS before, ring full, ComfyUI ready: {before:.1f} MB")
for what, (accepted, refused, held, peak, after) in rounds:
    read = what.startswith("reading")
    replayed = f", {min(accepted)}-{max(accepted)} lines replayed each" if read else ""
    print(f"{CLIENTS} log-stream clients {what}: {len(accepted)} accepted, {refused} refused "
          f"(503){replayed}; RSS with them {held:.1f} MB (peak {peak:.1f} MB), "
          f"5 s after they left {after:.1f} MB")
PY
