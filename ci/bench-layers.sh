#!/usr/bin/env bash
# Benchmark: which layers a small change rebuilds. Builds the smoke image, then rebuilds it
# after (a) a control-panel-only change and (b) a runtime-setting-only manifest change, and
# reports the bytes of the layers that changed against the whole image (uncompressed layer
# tars from `docker save`). Target: only the final podstack/UI/runtime layers, under 1%.
# Needs what ci/image-e2e.sh sets up (a Docker engine and podstack-base:bookworm); run that
# once first. Usage: ci/bench-layers.sh
set -euo pipefail
cd "$(dirname "$0")/.."
docker=/usr/bin/docker
"$docker" image inspect podstack-base:bookworm >/dev/null 2>&1 \
    || { echo "run ci/image-e2e.sh once first: it makes podstack-base:bookworm" >&2; exit 1; }

work=$(mktemp -d)
images=()
cleanup() {
    for image in "${images[@]}"; do "$docker" rmi -f "$image" >/dev/null 2>&1 || true; done
    rm -rf "$work"
}
trap cleanup EXIT

cargo build --release --locked --quiet
podstack="$work/podstack"
cp target/release/podstack "$podstack"

project="$work/project"
mkdir -p "$project/templates" "$project/tests/fixtures"
cp -r stacks "$project/"
cp -r templates/ui "$project/templates/"
cp -r tests/fixtures/comfyui "$project/tests/fixtures/"

build() { # name: builds podstack-bench:<name> from the project as it is now
    local ctx="$work/ctx-$1"
    (cd "$project" && "$podstack" context smoke "$ctx" --binary "$podstack" >/dev/null 2>&1)
    DOCKER_BUILDKIT=1 "$docker" build -q -f "$ctx/generated/smoke/Dockerfile" \
        --build-arg PODSTACK_SUPERVISOR=prebuilt -t "podstack-bench:$1" "$ctx" >/dev/null
    images+=("podstack-bench:$1")
}

layers() { # image -> "diff_id size instruction" per layer, from the saved image
    local dir="$work/save-$1"
    mkdir -p "$dir"
    "$docker" save "podstack-bench:$1" | tar -x -C "$dir"
    python3 - "$dir" <<'PY'
import json, os, sys
root = sys.argv[1]
manifest = json.load(open(os.path.join(root, "manifest.json")))[0]
config = json.load(open(os.path.join(root, manifest["Config"])))
made = [h.get("created_by", "") for h in config["history"] if not h.get("empty_layer")]
for diff_id, tar, made_by in zip(config["rootfs"]["diff_ids"], manifest["Layers"], made):
    print(diff_id, os.path.getsize(os.path.join(root, tar)), " ".join(made_by.split())[:90])
PY
}

compare() { # label before after
    python3 - "$1" <(layers "$2") <(layers "$3") <<'PY'
import sys
label, before, after = sys.argv[1], sys.argv[2], sys.argv[3]
old = {line.split(" ", 2)[0] for line in open(before)}
rows = [line.rstrip("\n").split(" ", 2) for line in open(after)]
total = sum(int(size) for _, size, _ in rows)
changed = [(int(size), made) for diff_id, size, made in rows if diff_id not in old]
bytes_changed = sum(size for size, _ in changed)
print(f"{label}: {len(changed)} of {len(rows)} layers changed, "
      f"{bytes_changed} of {total} bytes ({100 * bytes_changed / total:.3f}%)")
for size, made in changed:
    print(f"    {size:>10}  {made}")
PY
}

build base
printf '<!-- a control panel fix -->\n' >> "$project/templates/ui/index.html"
build ui
sed -i 's/^stop_grace = "3s"/stop_grace = "5s"/' "$project/stacks/smoke.toml"
build runtime

compare "(a) control-panel-only change" base ui
compare "(b) runtime-setting-only change" ui runtime
