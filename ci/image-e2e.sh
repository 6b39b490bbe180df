#!/usr/bin/env bash
# End to end with real images: builds stacks/smoke.toml with Docker (BuildKit, the generated
# Dockerfile unchanged, the prebuilt-binary stage, the Python packages from a wheelhouse that
# `podstack wheelhouse` filled, with no network at all during the build), runs it with a volume
# and no GPU, and checks through the API and `podstack verify` that the pod is current, has the
# wheelhouse's package installed as pinned, serves one user's outputs into that user's folder
# only, sees itself as stale against a newer build (and refuses to start under the refuse
# policy), and names drifted files and packages; and that every layer size `podstack plan`
# gives as exact is the size of the layer Docker built.
#
# `podstack wheelhouse` downloads the locked wheels (stacks/smoke.lock) from PyPI on this
# machine; the image build itself reaches nothing.
#
# Installs the Docker engine (Debian docker.io) and debootstrap when missing, starts dockerd
# when none answers, and makes the base image from Debian packages: nothing is pulled from a
# registry. Removes its containers, images and files at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=ci/e2e-lib.sh
. ci/e2e-lib.sh

# shellcheck source=ci/e2e-smoke.sh
. ci/e2e-smoke.sh

check_base_packages
ensure_docker
ensure_base

work=$(mktemp -d)
images=()
cleanup() {
    "$docker" ps -aq --filter label=podstack-e2e | xargs -r "$docker" rm -f >/dev/null 2>&1 || true
    for image in "${images[@]}"; do "$docker" rmi -f "$image" >/dev/null 2>&1 || true; done
    rm -rf "$work"
}
trap cleanup EXIT

prepare_smoke "$work"

say "building v1"
tag1=$(build_image "$work" v1)
images+=("$tag1")
digest1=$(cd "$project" && "$podstack" digest smoke 2>/dev/null)

say "every layer size podstack plan gives as exact is the size of the layer Docker built"
(cd "$project" && "$podstack" plan smoke --json --against "$work/ctx-v1" 2>/dev/null) > "$work/plan.json" \
    || fail "podstack plan smoke"
python3 - "$work/plan.json" <(layers_of "$tag1") <<'PY' || fail "the plan's exact sizes"
import json, sys
plan = json.load(open(sys.argv[1]))["layers"]
built = [int(line.split()[1]) for line in open(sys.argv[2])]
if len(plan) != len(built):
    sys.exit(f"{len(plan)} layers planned, {len(built)} built")
exact = [(layer["layer"], layer["size"]["bytes"], size)
         for layer, size in zip(plan, built) if layer["size"]["known"] == "exact"]
wrong = [f"{name}: planned {planned}, built {size}" for name, planned, size in exact if planned != size]
if wrong or len(exact) < 7:
    sys.exit("; ".join(wrong) or f"only {len(exact)} exact sizes")
print(f"{len(exact)} of {len(plan)} layers sized exactly: " + ", ".join(name for name, _, _ in exact))
PY

say "building v2: one control panel change, version 0.2.0"
printf '<!-- v2 -->\n' >> "$project/templates/ui/index.html"
sed -i 's/^version = "0.1.0"/version = "0.2.0"/' "$project/stacks/smoke.toml"
tag2=$(build_image "$work" v2)
images+=("$tag2")
digest2=$(cd "$project" && "$podstack" digest smoke 2>/dev/null)
[ "$digest1" != "$digest2" ] || fail "v1 and v2 have the same digest"
echo "v1 $tag1 $digest1"
echo "v2 $tag2 $digest2"

run_pod() { # name image volume [docker run args...]
    local name=$1 image=$2 volume=$3
    shift 3
    "$docker" run -d --label podstack-e2e --name "$name" -v "$volume:/workspace" \
        -p 127.0.0.1::7777 -p 127.0.0.1::8188 "$@" "$image" >/dev/null
}

say "v1 with the digest it was built for: current, one user's output in that user's folder"
vol1="$work/volume1"
mkdir -p "$vol1"
run_pod pod1 "$tag1" "$vol1" -e PODSTACK_EXPECTED_DIGEST="$digest1"
wait_for 30 "pod1 answers /api/health" curl -fsS "http://127.0.0.1:$(port_of pod1 7777)/api/health"
status=$(status_of pod1)
[ "$(echo "$status" | json 'd["stack"]["digest"]')" = "$digest1" ] || fail "status digest: $status"
[ "$(echo "$status" | json 'd["verification"]["freshness"]["state"]')" = "current" ] || fail "not current: $status"
[ "$(echo "$status" | json 'd["cpu_mode"]')" = "True" ] || fail "no GPU should mean CPU mode: $status"

curl -fsS -X POST -H 'Content-Type: application/json' -d '{"user":"alice"}' \
    "http://127.0.0.1:$(port_of pod1 7777)/api/start" >/dev/null
ready() { [ "$(comfyui_state pod1)" = "ready" ]; }
wait_for 60 "ComfyUI ready for alice" ready
prompt='{"prompt":{"1":{"class_type":"SaveImage","inputs":{"filename_prefix":"e2e"}}}}'
curl -fsS -X POST -H 'Content-Type: application/json' -d "$prompt" \
    "http://127.0.0.1:$(port_of pod1 8188)/prompt" >/dev/null
output_landed() { compgen -G "$vol1/output/alice/e2e_*.png" >/dev/null; }
wait_for 30 "the prompt's image in output/alice" output_landed
others=$(find "$vol1" -name '*.png' ! -path "$vol1/output/alice/*")
[ -z "$others" ] || fail "images outside output/alice: $others"
curl -fsS -X POST "http://127.0.0.1:$(port_of pod1 7777)/api/stop" >/dev/null
stopped() { [ "$(comfyui_state pod1)" = "stopped" ]; }
wait_for 30 "ComfyUI stopped" stopped

say "the wheelhouse's packages are installed and verified as pinned, rclone the tests' own"
[ "$("$docker" exec pod1 /opt/venv/bin/python -c 'import six; print(six.__version__)')" = "1.17.0" ] \
    || fail "six 1.17.0 is not importable in the image"
verified=$("$docker" exec pod1 podstack verify)
echo "$verified"
grep -q '  packages: as pinned' <<<"$verified" || fail "packages not as pinned"
pinned=$(json 'd["rclone"]' < generated/smoke/stack.json)
grep -q "  rclone: $pinned as pinned (rclone)" <<<"$verified" || fail "rclone is not the pinned $pinned"
in_image=$("$docker" exec pod1 rclone version | sed -n 1p)
on_host=$("$(bash ci/rclone.sh)/rclone" version | sed -n 1p)
[ "$in_image" = "$on_host" ] || fail "the image runs $in_image, the tests $on_host"

say "drift: a control panel file and pinned packages changed inside the running pod"
"$docker" exec pod1 podstack verify >/dev/null || fail "verify before any change"
"$docker" exec pod1 sh -c 'echo patched > /opt/podstack/ui/index.html'
site=/opt/venv/lib/python3.11/site-packages
"$docker" exec pod1 sh -c "sed -i 's/^Version: 23.0.1$/Version: 23.0.2/' $site/pip-23.0.1.dist-info/METADATA"
"$docker" exec pod1 sh -c "rm -r $site/six-1.17.0.dist-info"
set +e
report=$("$docker" exec pod1 podstack verify)
code=$?
set -e
echo "$report"
[ "$code" = 1 ] || fail "verify exit code $code on a drifted pod"
grep -q 'changed  /opt/podstack/ui/index.html' <<<"$report" || fail "the changed UI file is not named"
grep -q 'version  pip: expected 23.0.1, found 23.0.2' <<<"$report" || fail "the changed package is not named"
grep -q 'missing  six (expected 1.17.0)' <<<"$report" || fail "the removed package is not named"
"$docker" rm -f pod1 >/dev/null

say "stale: v1 where the template expects v2 (warn)"
vol2="$work/volume2"
mkdir -p "$vol2"
run_pod pod2 "$tag1" "$vol2" -e PODSTACK_EXPECTED_DIGEST="$digest2"
wait_for 30 "pod2 answers /api/health" curl -fsS "http://127.0.0.1:$(port_of pod2 7777)/api/health"
freshness=$(status_of pod2 | json 'd["verification"]["freshness"]')
echo "$freshness"
grep -q "'state': 'stale'" <<<"$freshness" || fail "not stale: $freshness"
for digest in "$digest1" "$digest2"; do
    grep -q "$digest" <<<"$freshness" || fail "$digest missing from: $freshness"
done
"$docker" rm -f pod2 >/dev/null

say "stale: v1 where the template expects v2 (refuse)"
vol3="$work/volume3"
mkdir -p "$vol3"
set +e
refused=$("$docker" run --rm --label podstack-e2e -v "$vol3:/workspace" \
    -e PODSTACK_EXPECTED_DIGEST="$digest2" -e PODSTACK_VERIFY_POLICY=refuse "$tag1" 2>&1)
code=$?
set -e
echo "$refused"
[ "$code" != 0 ] || fail "a stale pod under the refuse policy started"
for digest in "$digest1" "$digest2"; do
    grep -q "$digest" <<<"$refused" || fail "the refusal does not name $digest"
done
[ -z "$(find "$vol3" -name 'comfyui*.log' -size +0)" ] || fail "ComfyUI started on a refused pod"

say "all image checks passed"
