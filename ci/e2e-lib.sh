# shellcheck shell=bash
# Shared by the image end-to-end scripts (ci/image-e2e.sh, ci/image-e2e-real.sh), sourced from
# the project root: the Docker engine and debootstrap, the Debian base made without a registry,
# and the small helpers that poll a pod.

say() { printf '\n== e2e: %s\n' "$*"; }
fail() { printf 'e2e FAILED: %s\n' "$*" >&2; exit 1; }

# Debian's client has BuildKit built in; a newer client may need the buildx plugin.
docker=/usr/bin/docker

ensure_docker() {
    if [ ! -x "$docker" ] || ! command -v debootstrap >/dev/null 2>&1; then
        say "installing docker.io and debootstrap"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io debootstrap >/dev/null
    fi
    if ! "$docker" info >/dev/null 2>&1; then
        say "starting dockerd"
        (dockerd >/tmp/podstack-e2e-dockerd.log 2>&1 &)
        for _ in $(seq 60); do
            "$docker" info >/dev/null 2>&1 && return 0
            sleep 1
        done
        cat /tmp/podstack-e2e-dockerd.log >&2
        fail "dockerd did not start"
    fi
}

# The base of the image tests: Debian bookworm (the release of the shipped stacks) from
# debootstrap + docker import, nothing pulled from a registry. It holds what the smoke image's
# apt layer installs, so that image builds with no network at all; python3-distutils provides
# the virtual python3.11-distutils that python3.11-venv needs, which debootstrap does not
# resolve. The label tells an older base apart.
base_image=podstack-base:bookworm
base_packages=ca-certificates,python3.11,python3.11-venv,python3-distutils

ensure_base() {
    local label
    label=$("$docker" image inspect -f '{{ index .Config.Labels "io.podstack.base-packages" }}' \
        "$base_image" 2>/dev/null || true)
    if [ "$label" = "$base_packages" ]; then
        return 0
    fi
    say "making $base_image with debootstrap (+ $base_packages)"
    local rootfs
    rootfs=$(mktemp -d)
    debootstrap --variant=minbase --include="$base_packages" bookworm "$rootfs" \
        http://deb.debian.org/debian >/tmp/podstack-e2e-debootstrap.log 2>&1 \
        || { tail -20 /tmp/podstack-e2e-debootstrap.log >&2; fail "debootstrap"; }
    tar -C "$rootfs" -c . | "$docker" import \
        --change "LABEL io.podstack.base-packages=$base_packages" - "$base_image" >/dev/null
    rm -rf "$rootfs"
}

# layers_of IMAGE: "diff_id size" per layer of the image, oldest first: the content ids of
# `docker save`, the sizes `docker history` shows.
layers_of() {
    local dir
    dir=$(mktemp -d)
    "$docker" save "$1" | tar -x -C "$dir"
    "$docker" history --human=false --no-trunc --format '{{.Size}}' "$1" > "$dir/history"
    python3 - "$dir" <<'PY'
import json, os, sys
root = sys.argv[1]
manifest = json.load(open(os.path.join(root, "manifest.json")))[0]
config = json.load(open(os.path.join(root, manifest["Config"])))
sizes = [int(line) for line in open(os.path.join(root, "history"))][::-1]
made = [size for entry, size in zip(config["history"], sizes) if not entry.get("empty_layer")]
for diff_id, size in zip(config["rootfs"]["diff_ids"], made):
    print(diff_id, size)
PY
    rm -rf "$dir"
}

json() { # json EXPRESSION < document: a value by a python expression over `d`
    python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"
}

port_of() { "$docker" port "$1" "$2" | sed -n '1s/.*://p'; }

wait_for() { # seconds description command...
    local seconds=$1 what=$2
    shift 2
    for _ in $(seq $((seconds * 4))); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.25
    done
    fail "$what (waited ${seconds}s)"
}

status_of() { curl -fsS "http://127.0.0.1:$(port_of "$1" 7777)/api/status"; }

comfyui_state() { status_of "$1" | json 'd["services"]["comfyui"]["state"]'; }
