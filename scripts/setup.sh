#!/usr/bin/env bash
# Sets up a development environment from a fresh clone: a virtualenv in .venv with the test and
# benchmark dependencies (pyproject.toml's dependency group "tools"), and the native module built in
# release mode (maturin develop). A rerun skips what has not changed since the last one: the install
# when pyproject.toml and this script are as they were, the build when rust/, Cargo.* and pyproject.toml
# are (stamps in .venv/; delete them, or set OXICACHE_REBUILD=1, to force both).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate

# shellcheck source=scripts/stamps.sh
. scripts/stamps.sh

deps=$(fingerprint pyproject.toml scripts/setup.sh)
if ! unchanged .venv/.oxicache-deps "$deps"; then
    python -m pip install --quiet --upgrade pip
    if python -m pip install --help | grep -q -- '--group'; then
        python -m pip install --quiet --group tools  # pip >= 25.1
    else
        # An older pip (no upgrade reachable): the same group, read from pyproject.toml here.
        python - <<'EOF' > .venv/.oxicache-dev-requirements.txt
try:
    import tomllib
except ImportError:  # Python 3.10: the TOML reader pip itself carries
    from pip._vendor import tomli as tomllib
with open("pyproject.toml", "rb") as fh:
    groups = tomllib.load(fh)["dependency-groups"]
def expand(name):
    for item in groups[name]:
        yield from expand(item["include-group"]) if isinstance(item, dict) else [item]
print("\n".join(expand("tools")))
EOF
        python -m pip install --quiet -r .venv/.oxicache-dev-requirements.txt
    fi
    echo "$deps" > .venv/.oxicache-deps
fi

# One release build; `maturin develop` installs it into .venv in editable form (python/ stays live).
build=$(fingerprint rust Cargo.toml Cargo.lock pyproject.toml)
if unchanged .venv/.oxicache-build "$build" && compgen -G "python/oxicache/_core*.so" > /dev/null; then
    echo "oxicache: native module up to date (rust/, Cargo.*, pyproject.toml unchanged): build skipped"
else
    # maturin lists every dependency whose environment markers do not apply ("Ignoring ...: markers ..."):
    # noise, not news. Its own status still decides (pipefail).
    maturin develop --release --quiet 2>&1 | { grep -v '^Ignoring .*: markers ' || true; }
    echo "$build" > .venv/.oxicache-build
fi
python -c "import oxicache, sys; print('oxicache', oxicache.__version__, 'ready in', sys.prefix)"
