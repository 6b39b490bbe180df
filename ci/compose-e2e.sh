#!/usr/bin/env bash
# Compose end to end: Debian's docker-compose runs the compose.yaml that `podstack build`
# renders for the smoke stack (3 pods, one shared volume), built as in ci/image-e2e.sh, with a
# [sync] section added to a copy of the stack and an rclone WebDAV remote as another service
# (ci/compose-e2e.yaml). Three users start on three pods at once, each writes outputs through
# ComfyUI and beside it, and the test checks by sha256 that every file reached the remote once,
# under its own user and nowhere else, that each user's lease is held by the pod named by
# PODSTACK_POD_ID, that Docker sees every pod healthy through `podstack health`, and that
# files written just before `docker-compose down` are on the remote once it returns.
#
# Installs docker-compose (Debian's 1.29.2) when missing; removes its containers, volume,
# image and files at the end. Publishes the pods' ports 7777-7779 and 8188-8190 on the host.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=ci/e2e-lib.sh
. ci/e2e-lib.sh
# shellcheck source=ci/e2e-smoke.sh
. ci/e2e-smoke.sh

check_base_packages
ensure_docker
ensure_base
if ! command -v docker-compose >/dev/null 2>&1; then
    say "installing docker-compose"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null
fi

users=(alice bob carol)
work=$(mktemp -d)
image=""
compose() {
    docker-compose -p podstack-compose-e2e -f "$work/ctx-sync/generated/smoke/compose.yaml" \
        -f ci/compose-e2e.yaml "$@"
}
cleanup() {
    if [ -f "$work/ctx-sync/generated/smoke/compose.yaml" ]; then
        compose down -v --remove-orphans >/dev/null 2>&1 || true
    fi
    [ -z "$image" ] || "$docker" rmi -f "$image" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

prepare_smoke "$work"

say "the smoke stack with a WebDAV sync, its image and its compose.yaml"
cat >> "$project/stacks/smoke.toml" <<'TOML'

[sync]
remote = "studio"
backend = "webdav"
root = "outputs"
options = { url = "http://remote:8080", vendor = "other", user = "studio" }
folders = [{ path = "output", mode = "mirror" }]
min_age = "1s"
TOML
image=$(build_image "$work" sync)
pods=$(grep -c '^  smoke-[0-9]*:$' "$work/ctx-sync/generated/smoke/compose.yaml")
[ "$pods" = 3 ] || fail "compose.yaml has $pods pods, not 3"

token=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
webdav_pass=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
obscured=$("$docker" run --rm --entrypoint rclone "$image" obscure "$webdav_pass")
printf 'PODSTACK_PANEL_TOKEN=%s\nPODSTACK_SYNC_PASS=%s\n' "$token" "$obscured" > "$work/pods.env"
grep -q "$token" "$work/ctx-sync/generated/smoke/compose.yaml" && fail "the token is in compose.yaml"
mkdir -p "$work/volume" "$work/remote"
export PODSTACK_ENV_FILE="$work/pods.env" E2E_IMAGE="$image" E2E_WEBDAV_PASS="$webdav_pass" \
    E2E_REMOTE_DIR="$work/remote" E2E_VOLUME_DIR="$work/volume"

say "docker-compose up: 3 pods and the remote"
compose up -d >/dev/null 2>&1 || { compose up -d; fail "docker-compose up"; }

panel() { echo "http://127.0.0.1:$((7777 + $1))"; }
pod_api() { # pod_api INDEX ROUTE [curl args...]
    local index=$1 route=$2
    shift 2
    curl -fsS -H "Authorization: Bearer $token" "$@" "$(panel "$index")$route"
}
healthy() { [ "$("$docker" inspect -f '{{.State.Health.Status}}' "$(compose ps -q "smoke-$1")")" = healthy ]; }
for i in 0 1 2; do
    wait_for 120 "smoke-$i healthy (docker's health check: podstack health)" healthy "$i"
done
# The fleet view (every pod's heartbeat on the shared volume): 3 live pods, none stale.
fleet_current() { [ "$(pod_api 0 /api/fleet | json 'sum(1 for p in d["pods"] if p["state"] == "live" and not p["stale"])')" = 3 ]; }
wait_for 30 "the fleet view lists 3 current pods" fleet_current

say "3 users start on 3 pods at once"
pod_api 2 /api/users -X POST -H 'Content-Type: application/json' -d '{"name":"carol"}' >/dev/null
starts=()
for i in 0 1 2; do
    pod_api "$i" /api/start -X POST -H 'Content-Type: application/json' \
        -d "{\"user\":\"${users[$i]}\"}" >/dev/null &
    starts+=($!)
done
for pid in "${starts[@]}"; do wait "$pid" || fail "a start was refused"; done
comfyui_ready() { [ "$(pod_api "$1" /api/status | json 'd["services"]["comfyui"]["state"]')" = ready ]; }
for i in 0 1 2; do wait_for 60 "${users[$i]}'s ComfyUI on smoke-$i" comfyui_ready "$i"; done

say "each user writes outputs: images through ComfyUI, files beside them"
for i in 0 1 2; do
    user=${users[$i]}
    for n in 1 2; do
        prompt="{\"prompt\":{\"1\":{\"class_type\":\"SaveImage\",\"inputs\":{\"filename_prefix\":\"$user-$n\"}}}}"
        curl -fsS -X POST -H 'Content-Type: application/json' -d "$prompt" \
            "http://127.0.0.1:$((8188 + i))/prompt" >/dev/null
    done
    compose exec -T "smoke-$i" sh -c "mkdir -p /workspace/output/$user/notes && for n in 1 2 3; do head -c 200000 /dev/urandom > /workspace/output/$user/notes/\$n.bin; done"
done

# Every file under output/<user> on the volume, as "sha256  <user>/<path>", and the same for
# the remote's <root>/output: equal means each file arrived once, under its own user.
listing() { (cd "$1" && find . -type f ! -name '*.partial' -printf '%P\0' | sort -z | xargs -0r sha256sum); }
synced() { [ -n "$(listing "$work/volume/output")" ] && diff <(listing "$work/volume/output") <(listing "$work/remote/outputs/output") >/dev/null; }
wait_for 90 "every output on the remote" synced
for user in "${users[@]}"; do
    count=$(listing "$work/remote/outputs/output" | grep -c "  $user/") || true
    [ "$count" = 5 ] || fail "$user has $count files on the remote, not 5: $(listing "$work/remote/outputs/output")"
done
dupes=$(listing "$work/remote/outputs" | awk '{print $1}' | sort | uniq -d)
for hash in $dupes; do
    listing "$work/remote/outputs" | grep "^$hash" | grep -q '\.bin$' && fail "a file is on the remote twice: $(listing "$work/remote/outputs" | grep "^$hash")"
done
for i in 0 1 2; do
    holder=$(json 'd["pod"]' < "$work/volume/.podstack/leases/output/${users[$i]}.json")
    [ "$holder" = "smoke-$i" ] || fail "${users[$i]}'s lease is held by $holder, not smoke-$i (PODSTACK_POD_ID)"
done

say "files written just before docker-compose down reach the remote"
for i in 0 1 2; do
    compose exec -T "smoke-$i" sh -c "head -c 300000 /dev/urandom > /workspace/output/${users[$i]}/last.bin"
done
compose down >/dev/null 2>&1 || fail "docker-compose down"
diff <(listing "$work/volume/output") <(listing "$work/remote/outputs/output") \
    || fail "docker-compose down left files unsynced (volume < >remote)"
[ "$(listing "$work/remote/outputs/output" | wc -l)" = 18 ] || fail "not 18 files on the remote"

say "all compose checks passed"
