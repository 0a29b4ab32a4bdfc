#!/usr/bin/env bash
# Sets everything up, runs the guide's example and `oxicache bench` on the embedded defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. .venv/bin/activate
python examples/fibonacci.py
python examples/persistent.py
oxicache bench
