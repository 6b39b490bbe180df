# shellcheck shell=bash
# Shared by the benchmark scripts whose results the book draws as charts (ci/charts.sh): where
# each writes its machine-readable result, and what it records about the run besides its
# figures (the command, when, the commit, the machine and how loaded it was).

# The results the book shows: the last measured run of each benchmark, committed.
bench_results=docs/src/images/charts/data

# bench_run_json COMMAND...: the run's context as a JSON object; call it when the run starts,
# so the load average is the one the run met (the other engineers' builds share these cores).
bench_run_json() {
    python3 - "$*" "$(git describe --always --dirty 2>/dev/null || echo unknown)" <<'PY'
import datetime, json, os, sys
print(json.dumps({
    "command": sys.argv[1],
    "measured_at": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "commit": sys.argv[2],
    "cores": os.cpu_count(),
    "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
}))
PY
}

# bench_write NAME JSON: pretty-prints the result into $bench_results/NAME.json, adding the
# load average at the end of the run.
bench_write() {
    mkdir -p "$bench_results"
    python3 - "$bench_results/$1.json" "$2" <<'PY'
import json, os, sys
result = json.loads(sys.argv[2])
result["run"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
with open(sys.argv[1], "w") as out:
    json.dump(result, out, indent=2)
    out.write("\n")
print(f"wrote {sys.argv[1]}")
PY
}
