#!/usr/bin/env bash
# What `podstack plan` predicts against what Docker actually rebuilds, and how much of the image
# a small change rebuilds (the layer-efficiency benchmark: a control-panel-only or
# runtime-setting-only change should rebuild only the final podstack layers, under 1% of the
# image). In a git repository made from the project, builds the smoke image, then for each
# change: runs `podstack plan smoke --json` against the last commit, rebuilds the image, and
# compares the plan's verdict per layer and its predicted pull bytes with the layers whose
# content changed (RootFS diff ids) and their sizes as `docker history` shows them, against the
# whole image. Changes: (a) one control panel file, (b) one runtime setting, (c) a file of the
# ComfyUI folder, (d) a Python package dropped from the stack (six).
# Sets up what ci/image-e2e.sh does (a Docker engine and podstack-base:bookworm) when it is
# missing. The wheelhouse comes from PyPI (or podstack's cache); the builds reach nothing.
# The comparison is also written to docs/src/images/charts/data/plan-vs-docker.json
# (ci/charts.sh draws it as plan-bytes.svg).
# Usage: ci/plan-vs-docker.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=ci/bench-results.sh
source ci/bench-results.sh
run=$(bench_run_json "ci/plan-vs-docker.sh")
# shellcheck source=ci/e2e-lib.sh
source ci/e2e-lib.sh
ensure_docker
ensure_base

# shellcheck source=ci/e2e-smoke.sh
source ci/e2e-smoke.sh

work=$(mktemp -d)
images=()
cleanup() {
    for image in "${images[@]}"; do "$docker" rmi -f "$image" >/dev/null 2>&1 || true; done
    rm -rf "$work"
}
trap cleanup EXIT

prepare_smoke "$work"
git_() { git -C "$project" -c user.name=plan -c user.email=plan@example.com "$@"; }
(cd "$project" && "$podstack" build >/dev/null 2>&1)
git_ init -q && git_ add -A && git_ commit -qm "as shipped"

declare -A tag
build() { # name: builds the project as it is now; its tag is ${tag[name]}
    tag[$1]=$(build_image "$work" "$1")
    images+=("${tag[$1]}")
}

compare() { # label plan.json before after; appends the change's figures to $work/changes.jsonl
    python3 - "$1" "$2" <(layers_of "${tag[$3]}") <(layers_of "${tag[$4]}") \
        "$work/changes.jsonl" <<'PY'
import json, sys
label, plan_file, before, after, changes = sys.argv[1:]
plan = json.load(open(plan_file))
old = {line.split()[0] for line in open(before)}
rows = [line.split() for line in open(after)]
actual = [diff_id not in old for diff_id, _ in rows]
actual_bytes = sum(int(size) for (diff_id, size), rebuilt in zip(rows, actual) if rebuilt)
image_bytes = sum(int(size) for _, size in rows)
predicted = [layer["verdict"] == "rebuilt" for layer in plan["layers"]]
pull = plan["pull"]
unknown = f" + {pull['unknown_layers']} unknown" if pull["unknown_layers"] else ""
differ = [plan["layers"][i]["layer"] for i in range(min(len(actual), len(predicted)))
          if actual[i] != predicted[i]]
if len(actual) != len(predicted):
    differ.append(f"{len(predicted)} layers planned, {len(actual)} built")
with open(changes, "a") as out:
    out.write(json.dumps({
        "change": label, "planned_layers": sum(predicted), "planned_bytes": pull["bytes"],
        "planned_unknown_layers": pull["unknown_layers"], "docker_layers": sum(actual),
        "docker_bytes": actual_bytes, "layers": len(actual), "image_bytes": image_bytes,
        "verdicts_that_differ": differ,
    }) + "\n")
print(f"{label}: planned {sum(predicted)} of {len(predicted)} layers, {pull['bytes']} bytes{unknown}; "
      f"docker rebuilt {sum(actual)} of {len(actual)}, {actual_bytes} bytes "
      f"({100 * actual_bytes / image_bytes:.3f}% of the image); "
      f"verdicts that differ: {', '.join(differ) or 'none'}")
image = plan["image"]
unknown_image = f" + {image['unknown_layers']} unknown" if image["unknown_layers"] else ""
print(f"    whole image: planned {image['bytes']} bytes{unknown_image}, "
      f"docker history {image_bytes} bytes")
for layer, (diff_id, size), rebuilt in zip(plan["layers"], rows, actual):
    if rebuilt or layer["verdict"] == "rebuilt":
        size_known = layer["size"].get("bytes", "unknown")
        print(f"    {layer['layer']:<22} planned {layer['verdict']:<7} {size_known!s:>10}  "
              f"docker {'rebuilt' if rebuilt else 'kept':<7} {size:>10}  {layer['why'] or ''}")
PY
}

step() { # name label: plan against HEAD, build, compare with the previous image, commit
    (cd "$project" && "$podstack" plan smoke --json --wheelhouse "$work/wheelhouse" \
        2>/dev/null > "$work/plan-$1.json")
    build "$1"
    compare "$2" "$work/plan-$1.json" "$previous" "$1"
    (cd "$project" && "$podstack" build >/dev/null 2>&1)
    git_ add -A && git_ commit -qm "$2"
    previous=$1
}

build base
previous=base
printf '<!-- a control panel fix -->\n' >> "$project/templates/ui/index.html"
step ui "(a) control panel file"
sed -i 's/^stop_grace = "3s"/stop_grace = "5s"/' "$project/stacks/smoke.toml"
step runtime "(b) runtime setting"
printf '# a fix in the ComfyUI folder\n' >> "$project/tests/fixtures/comfyui/main.py"
step comfyui "(c) ComfyUI folder file"
sed -i 's/"six==1.17.0", //' "$project/stacks/smoke.toml"
step package "(d) Python package dropped"

result=$(python3 - "$run" "$work/changes.jsonl" <<'PY'
import json, sys
changes = [json.loads(line) for line in open(sys.argv[2])]
print(json.dumps({"run": json.loads(sys.argv[1]), "stack": "smoke", "changes": changes}))
PY
)
bench_write plan-vs-docker "$result"
