#!/usr/bin/env bash
# Sets everything up and runs every test: Rust unit tests, then the Python suite (which includes the
# golden key vectors, property tests and cross-process checks). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. .venv/bin/activate

cargo fmt --check
# Rust unit tests embed libpython; point the loader at this interpreter's shared library.
LIBDIR=$(python -c "import sysconfig; print(sysconfig.get_config_var('LIBDIR') or '')")
LD_LIBRARY_PATH="${LIBDIR}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" PYO3_PYTHON="$(command -v python)" cargo test --lib --quiet

python -m pytest "$@"
