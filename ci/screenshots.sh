#!/usr/bin/env bash
# Re-takes the book's pictures of the control panel (docs/src/images/panel-desktop.png at
# 1440 px, panel-phone.png at 390 px, panel-login.png) from the browser test that reaches a busy pod's state
# (tests/it/panel/book.rs): headless Chromium over chromedriver against the real supervisor,
# the stand-in ComfyUI and the fake nvidia-smi. Needs chromium and chromium-driver (ci/test.sh
# installs them) and the rclone the tests run (ci/rclone.sh).
# Usage: ci/screenshots.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v chromedriver >/dev/null 2>&1 || {
    echo "chromedriver is missing: apt-get install chromium chromium-driver (ci/test.sh does)" >&2
    exit 1
}
PATH="$(bash ci/rclone.sh):$PATH"
images="$PWD/docs/src/images"
mkdir -p "$images"
PODSTACK_SCREENSHOTS="$images" cargo nextest run --locked --no-capture \
    -E 'binary(it) & test(panel::book::)'
for picture in panel-desktop panel-phone panel-login; do
    [ -s "$images/$picture.png" ] || { echo "no $images/$picture.png was written" >&2; exit 1; }
    echo "$images/$picture.png: $(stat -c %s "$images/$picture.png") bytes"
done
