#!/usr/bin/env bash
# Builds a release wheel of this checkout (reusing the release build of scripts/setup.sh), installs it
# into a fresh virtualenv outside the source tree, and runs scripts/wheel_smoke.py there: import, memoize
# on every embedded backend, the `oxicache` command (ls, bench). Needs .venv from scripts/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
here=$PWD
# shellcheck disable=SC1091
. .venv/bin/activate
work=$(mktemp -d -t oxicache-wheel-XXXXXX)
trap 'rm -rf "$work"' EXIT
maturin build --release --quiet --out "$work/dist"
wheel=$(ls "$work"/dist/oxicache-*.whl)
python -m venv "$work/venv"
deactivate
cd "$work"  # nothing of the source tree is importable from here
"$work/venv/bin/python" -m pip install --quiet --disable-pip-version-check "${wheel}[disk,sqlite]"
"$work/venv/bin/python" "$here/scripts/wheel_smoke.py"
