#!/usr/bin/env bash
# Makes podstack-base:bookworm, the local base image of the smoke stack, the way the image tests
# do (ci/e2e-lib.sh): Debian bookworm from debootstrap + `docker import`, nothing pulled from a
# registry. Installs docker.io and debootstrap and starts dockerd when missing; keeps a base
# that is already there. The book's Getting started runs it.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=ci/e2e-lib.sh
. ci/e2e-lib.sh

ensure_docker
ensure_base
"$docker" image inspect -f '{{ index .RepoTags 0 }} {{ .Size }} bytes' "$base_image"
