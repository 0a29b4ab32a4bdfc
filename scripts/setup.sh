#!/usr/bin/env bash
# Sets up a development environment from a fresh clone: a virtualenv in .venv with the test and
# benchmark dependencies, and the native module built once in release mode (maturin develop).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
python -m pip install --quiet "maturin>=1.9.4,<2" \
    "pytest>=8" pytest-timeout "hypothesis>=6" numpy "pydantic>=2" blake3 \
    "sqlalchemy>=2" "psycopg[binary]>=3" pymysql diskcache "redis>=5" \
    "pytest-benchmark>=4" cachetools cachebox async-lru aiocache cashews orjson mypy openai matplotlib \
    "pyright[nodejs]"
# One release build; `maturin develop` installs it into .venv in editable form (python/ stays live).
maturin develop --release --quiet
python -c "import oxicache, sys; print('oxicache', oxicache.__version__, 'ready in', sys.prefix)"
