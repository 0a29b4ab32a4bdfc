#!/usr/bin/env bash
# Prints each performance goal of issue 15 beside its baseline, measured in one run, with met / NOT MET.
# Timings are not tests: this is not part of the test command. Extra arguments go to benches/goals.py
# (--rounds N). Run it on a quiet machine; docs/benchmarks.md quotes its output with the date.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    bash scripts/setup.sh
fi
# shellcheck disable=SC1091
. .venv/bin/activate
python benches/goals.py "$@"
