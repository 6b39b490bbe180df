#!/usr/bin/env bash
# End to end with the real parts: builds comfyui-cu128 (torch 2.8.0 from PyPI and every package
# of its lock, the real ComfyUI 0.3.64, the image's own rclone) from the generated Dockerfile,
# on a Debian bookworm base made with debootstrap, runs it without a GPU and with a volume, and
# checks what a user would notice:
#   - the supervisor starts ComfyUI (CPU mode) for alice; a workflow EmptyImage -> SaveImage
#     posted to ComfyUI's own /prompt writes a PNG into output/alice and nowhere else;
#   - the sync uploads it to a WebDAV remote (rclone serve webdav on the host), same sha256;
#   - `podstack verify` says current; /api/status has ComfyUI's confirmed attention;
#   - docker stop: exit code 0, and an image written just before is on the remote (final sync).
# It prints the figures the book reports (docs/src/reference/images.md): cold and warm build, image size, ComfyUI ready.
#
# The test manifest is stacks/comfyui-cu128.toml with three changes: the local base
# (podstack-base:bookworm, the image tests' debootstrap base), ComfyUI from a git repository
# made from ../shared/vendor/comfyui-0.3.64-a125cd84.tar.gz and served on 127.0.0.1 (git smart
# HTTP), referenced by its commit, and a [sync] section for the WebDAV remote. Its Python
# packages are the stack's lock, unchanged: the wheels come from a wheelhouse that
# `podstack wheelhouse comfyui-cu128` fills (about 4.3 GB, kept in target/e2e-real/wheelhouse
# between runs, hard-linked into the build context). The build runs with --network host (the
# git server is on 127.0.0.1; apt installs ffmpeg and git from deb.debian.org); pip reaches no
# index.
#
# Not part of ci/test.sh (it downloads gigabytes). Run it as root on a machine with Docker:
#   ci/image-e2e-real.sh
# PODSTACK_E2E_KEEP=1 keeps the image (and prints its tag). Everything else it made is removed.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=ci/e2e-lib.sh
. ci/e2e-lib.sh

stack="comfyui-cu128"
tarball=../shared/vendor/comfyui-0.3.64-a125cd84.tar.gz
tarball_sha256=241ee719dd6165b73e6439f9f4220e381a40504d6e095ff5956c1c0318382912
wheelhouse=$PWD/target/e2e-real/wheelhouse
label="podstack-e2e-real"
pod="podstack-e2e-real-pod"

[ "$(sha256sum "$tarball" | cut -d' ' -f1)" = "$tarball_sha256" ] \
    || fail "$tarball is missing or not the vendored ComfyUI 0.3.64"

ensure_docker
ensure_base

mkdir -p target/e2e-real
# wait_for silences what it polls; a poll that fails the run speaks through fd 3.
exec 3>&2
# Beside the wheelhouse, so the build context can hard-link it instead of copying 4 GB.
work=$(mktemp -d "$PWD/target/e2e-real/run.XXXXXX")
images=()
pids=()
cleanup() {
    "$docker" ps -aq --filter "label=$label" | xargs -r "$docker" rm -f >/dev/null 2>&1 || true
    if [ "${PODSTACK_E2E_KEEP:-}" != 1 ]; then
        for image in "${images[@]}"; do "$docker" rmi -f "$image" >/dev/null 2>&1 || true; done
    fi
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

now() { date +%s.%N; }
seconds_since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$(now)"; }

say "podstack binary"
cargo build --locked --quiet
cp target/debug/podstack "$work/podstack"
strip "$work/podstack"
podstack="$work/podstack"

say "wheelhouse: every file of stacks/$stack.lock, checked"
"$podstack" wheelhouse "$stack" "$wheelhouse" 2>&1 | tail -1 || fail "podstack wheelhouse"

say "ComfyUI 0.3.64 as a git repository on 127.0.0.1"
mkdir -p "$work/comfyui" "$work/git/cgi-bin"
tar -xzf "$tarball" -C "$work/comfyui"
[ -f "$work/comfyui/comfyui_version.py" ] || fail "the tarball is not a ComfyUI tree"
(
    cd "$work/comfyui"
    export GIT_AUTHOR_NAME=podstack GIT_AUTHOR_EMAIL=e2e@podstack GIT_AUTHOR_DATE=2025-10-12T00:00:00Z
    export GIT_COMMITTER_NAME=podstack GIT_COMMITTER_EMAIL=e2e@podstack GIT_COMMITTER_DATE=2025-10-12T00:00:00Z
    # -f: the tree is the commit's, files its .gitignore names included (custom_nodes/ is
    # ignored there, yet tracked upstream: without it ComfyUI 0.3.64 dies at start).
    git init -q -b master . && git add -A -f && git commit -q -m "ComfyUI 0.3.64 (a125cd84) from the vendored tarball"
)
commit=$(git -C "$work/comfyui" rev-parse HEAD)
git clone -q --bare "$work/comfyui" "$work/git/comfyui.git"
rm -rf "$work/comfyui"
# git's smart HTTP (what a fetch by commit with --depth 1 needs) through Python's CGI server.
# Run as root, that server runs its scripts as nobody: the folders must be readable by anyone,
# and git must take a repository of another owner.
cat >"$work/git/cgi-bin/git" <<EOF
#!/bin/sh
export GIT_PROJECT_ROOT='$work/git' GIT_HTTP_EXPORT_ALL=1
export GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=safe.directory GIT_CONFIG_VALUE_0='*'
exec git http-backend
EOF
chmod +x "$work/git/cgi-bin/git"
chmod -R a+rX "$work"
git_port=$(free_port)
(cd "$work/git" && exec python3 -m http.server --cgi --bind 127.0.0.1 "$git_port" \
    >"$work/git-server.log" 2>&1) &
pids+=($!)
repo="http://127.0.0.1:$git_port/cgi-bin/git/comfyui.git"
wait_for 10 "the git server answers" git ls-remote "$repo"
echo "$repo at $commit"

say "a WebDAV remote: rclone serve webdav on the Docker bridge"
rclone="$(bash ci/rclone.sh)/rclone"
gateway=$("$docker" network inspect bridge -f '{{ (index .IPAM.Config 0).Gateway }}')
dav_port=$(free_port)
mkdir -p "$work/remote"
"$rclone" serve webdav "$work/remote" --addr "$gateway:$dav_port" >"$work/webdav.log" 2>&1 &
pids+=($!)
wait_for 10 "the WebDAV server answers" curl -fsS -X PROPFIND "http://$gateway:$dav_port/"

say "the test manifest: stacks/$stack.toml with the local base, the local ComfyUI and [sync]"
project="$work/project"
mkdir -p "$project/templates"
cp -r stacks "$project/"
cp -r templates/ui "$project/templates/"
python3 - "$project/stacks/$stack.toml" "$repo" "$commit" "http://$gateway:$dav_port" <<'PY'
import sys, tomllib
path, repo, commit, dav = sys.argv[1:]
text = open(path).read()
def swap(old, new):
    global text
    assert text.count(old) == 1, f"{old!r} is not in the manifest once"
    text = text.replace(old, new)
swap('image = "debian:bookworm-slim"',
     'image = "podstack-base:bookworm"\nlocal = true\nglibc = "2.36"')
swap('repo = "https://github.com/Comfy-Org/ComfyUI"', f'repo = "{repo}"')
swap('commit = "a125cd84b054a57729b5eecab930ca9408719832"', f'commit = "{commit}"')
text += f'''
[sync]
remote = "dav"
backend = "webdav"
root = "ComfyUI"
team_drive = ""
options = {{ url = "{dav}", vendor = "other" }}
folders = [{{ path = "output", mode = "mirror" }}, {{ path = "input", mode = "copy" }}]
transfers = 4
checkers = 8
tpslimit = 0
bwlimit = ""
min_age = "1s"
interval = "1m"
trash = true
max_delete = 100
heartbeat = "2s"
final_sync = "30s"
'''
tomllib.loads(text)
open(path, "w").write(text)
PY
(cd "$project" && "$podstack" check "$stack" >/dev/null) || fail "the test manifest does not pass check"

build_image() { # name [docker build args...] -> prints the tag
    local name=$1 ctx="$work/ctx-$1" tag
    shift
    tag=$(cd "$project" && "$podstack" context "$stack" "$ctx" --binary "$podstack" 2>/dev/null)
    cp -al "$wheelhouse" "$ctx/wheelhouse"
    DOCKER_BUILDKIT=1 "$docker" build -q --network host "$@" -f "$ctx/generated/$stack/Dockerfile" \
        --build-arg PODSTACK_SUPERVISOR=prebuilt --build-arg PODSTACK_PACKAGES=wheelhouse \
        -t "$tag" "$ctx" >"$work/build-$name.log" 2>&1 \
        || { tail -40 "$work/build-$name.log" >&2; fail "docker build of $tag"; }
    rm -rf "$ctx"
    echo "$tag"
}

say "building cold (--no-cache)"
started=$(now)
tag=$(build_image cold --no-cache)
images+=("$tag")
cold=$(seconds_since "$started")
digest=$(cd "$project" && "$podstack" digest "$stack" 2>/dev/null)
size=$("$docker" image inspect -f '{{ .Size }}' "$tag")
echo "$tag: built in ${cold}s, $size bytes"

say "building warm: one control panel change"
printf '<!-- warm -->\n' >>"$project/templates/ui/index.html"
started=$(now)
warm_tag=$(build_image warm)
images+=("$warm_tag")
warm=$(seconds_since "$started")
echo "$warm_tag: built in ${warm}s"
"$docker" rmi "$warm_tag" >/dev/null

say "the pod: no GPU, a volume, the digest it was built for"
volume="$work/volume"
mkdir -p "$volume"
"$docker" run -d --label "$label" --name "$pod" -v "$volume:/workspace" \
    -p 127.0.0.1::7777 -p 127.0.0.1::8188 -e PODSTACK_EXPECTED_DIGEST="$digest" "$tag" >/dev/null
panel="http://127.0.0.1:$(port_of "$pod" 7777)"
wait_for 60 "the pod answers /api/health" curl -fsS "$panel/api/health"
status=$(status_of "$pod")
[ "$(json 'd["verification"]["freshness"]["state"]' <<<"$status")" = current ] || fail "not current: $status"
[ "$(json 'd["cpu_mode"]' <<<"$status")" = True ] || fail "no GPU should mean CPU mode: $status"

say "ComfyUI for alice"
started=$(now)
curl -fsS -X POST -H 'Content-Type: application/json' -d '{"user":"alice"}' "$panel/api/start" >/dev/null
ready() {
    local state
    state=$(comfyui_state "$pod")
    if [ "$state" = failed ]; then
        { status_of "$pod"; "$docker" logs --tail 50 "$pod"; } >&3 2>&1
        fail "ComfyUI failed" 2>&3
    fi
    [ "$state" = ready ]
}
wait_for 300 "ComfyUI ready for alice" ready
ready_after=$(seconds_since "$started")
echo "ready after ${ready_after}s"
status=$(status_of "$pod")
confirmed=$(json 'd["attention"]["confirmed"]' <<<"$status")
echo "attention: requested $(json 'd["attention"]["requested"]["kernel"]' <<<"$status"), confirmed $confirmed"
[ "$confirmed" != None ] || fail "no confirmed attention in /api/status: $status"
[ "$(json 'd["attention"]["mismatch"]' <<<"$status")" = None ] || fail "attention mismatch: $status"

comfyui="http://127.0.0.1:$(port_of "$pod" 8188)"
prompt() { # filename prefix
    local workflow
    workflow=$(printf '{"prompt":{"1":{"class_type":"EmptyImage","inputs":{"width":64,"height":64,"batch_size":1,"color":%s}},"2":{"class_type":"SaveImage","inputs":{"images":["1",0],"filename_prefix":"%s"}}}}' "$RANDOM" "$1")
    curl -fsS -X POST -H 'Content-Type: application/json' -d "$workflow" "$comfyui/prompt" \
        || fail "ComfyUI refused the workflow"
}

say "EmptyImage -> SaveImage through ComfyUI's /prompt"
prompt e2e
landed() { compgen -G "$volume/output/alice/$1_*.png" >/dev/null; }
wait_for 60 "the PNG in output/alice" landed e2e
png=$(compgen -G "$volume/output/alice/e2e_*.png" | head -1)
others=$(find "$volume" -name '*.png' ! -path "$volume/output/alice/*")
[ -z "$others" ] || fail "images outside output/alice: $others"

uploaded() { # local file: on the remote under ComfyUI/output/alice with the same sha256
    local remote_file
    remote_file="$work/remote/ComfyUI/output/alice/$(basename "$1")"
    [ -f "$remote_file" ] && [ "$(sha256sum <"$remote_file")" = "$(sha256sum <"$1")" ]
}
wait_for 60 "$(basename "$png") uploaded, same sha256" uploaded "$png"
echo "$(basename "$png") on the remote, sha256 $(sha256sum <"$png" | cut -c1-16)…"

say "podstack verify"
verified=$("$docker" exec "$pod" podstack verify) || { echo "$verified"; fail "verify"; }
echo "$verified"
grep -q 'build: current' <<<"$verified" || fail "verify does not say current"
grep -q '  packages: as pinned' <<<"$verified" || fail "packages not as pinned"

say "stop: the image written last reaches the remote in the final sync"
prompt last
wait_for 60 "the last PNG in output/alice" landed last
last=$(compgen -G "$volume/output/alice/last_*.png" | head -1)
"$docker" stop -t 60 "$pod" >/dev/null
code=$("$docker" inspect -f '{{ .State.ExitCode }}' "$pod")
"$docker" logs --tail 15 "$pod" 2>&1 | sed 's/^/  pod: /'
[ "$code" = 0 ] || fail "the pod exited with $code"
uploaded "$last" || fail "$(basename "$last") is not on the remote after the stop"
# What the real ComfyUI printed, for the recordings the tests replay (tests/fixtures/README.md).
cp "$volume"/.podstack/logs/*/comfyui.log target/e2e-real/comfyui.log

say "figures"
cat <<EOF | tee target/e2e-real/figures.txt
passed $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores
image $tag
build cold (--no-cache, wheelhouse): ${cold}s
build warm (one control panel change): ${warm}s
image size: $size bytes ($(python3 -c "print(f'{$size/1e9:.2f} GB')"))
ComfyUI ready after POST /api/start: ${ready_after}s
EOF
if [ "${PODSTACK_E2E_KEEP:-}" = 1 ]; then echo "kept $tag"; fi
say "all real-image checks passed"
