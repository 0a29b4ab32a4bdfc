#!/usr/bin/env bash
# Builds a release wheel of this checkout (reusing the release build of scripts/setup.sh), installs it
# into a fresh virtualenv outside the source tree, and runs scripts/wheel_smoke.py there: import, memoize
# on every embedded backend, the `oxicache` command (ls, bench). Needs .venv from scripts/setup.sh.
#
# OXICACHE_WHEEL_PYTHONS="python3.10 python3.12 /path/to/python3.13" builds and smoke-tests a wheel for
# each interpreter listed (each is a full release build); "all": every CPython 3.10 to 3.14 found on
# PATH or installed by pyenv; by default, the venv's interpreter only.
set -euo pipefail
cd "$(dirname "$0")/.."
here=$PWD
# shellcheck disable=SC1091
. .venv/bin/activate
work=$(mktemp -d -t oxicache-wheel-XXXXXX)
trap 'rm -rf "$work"' EXIT
found_pythons() {  # one interpreter per minor version that runs
    for minor in 10 11 12 13 14; do
        for py in "$(command -v "python3.$minor" || true)" \
                  $(ls -d "$(pyenv root 2>/dev/null || echo /nonexistent)"/versions/3."$minor".*/bin/python3."$minor" 2>/dev/null | sort -V | tail -1); do
            if [ -n "$py" ] && "$py" -c "import venv" 2>/dev/null; then echo "$py"; break; fi
        done
    done
}
wanted=${OXICACHE_WHEEL_PYTHONS:-$(command -v python)}
[ "$wanted" = all ] && wanted=$(found_pythons | tr '\n' ' ')
read -r -a pythons <<< "$wanted"
for py in "${pythons[@]}"; do
    tag=$("$py" -c "import sys; print(f'cp{sys.version_info[0]}{sys.version_info[1]}')")
    maturin build --release --quiet --interpreter "$py" --out "$work/dist-$tag" 2>&1 | { grep -v '^Ignoring .*: markers ' || true; }
    wheel=$(ls "$work/dist-$tag"/oxicache-*-"$tag"-*.whl)
    "$py" -m venv "$work/venv-$tag"
    (
        cd "$work"  # nothing of the source tree is importable from here
        "$work/venv-$tag/bin/python" -m pip install --quiet --disable-pip-version-check "${wheel}[disk,sqlite]"
        "$work/venv-$tag/bin/python" "$here/scripts/wheel_smoke.py"
        # The core install, no extras: a SQLite file's DatabaseCache runs without SQLAlchemy.
        "$py" -m venv "$work/core-$tag"
        "$work/core-$tag/bin/python" -m pip install --quiet --disable-pip-version-check "$wheel"
        "$work/core-$tag/bin/python" -c "
import importlib.util, os, tempfile, oxicache
assert importlib.util.find_spec('sqlalchemy') is None, 'the core install must not bring SQLAlchemy'
cache = oxicache.DatabaseCache(database=os.path.join(tempfile.mkdtemp(), 'c.db'))
f = cache.memoize(name='f')(lambda x: x * 2)
assert [f(2), f(2)] == [4, 4] and f.cache_info().hits == 1
cache.close()"
    )
    echo "wheel smoke test passed on $("$py" -c 'import platform; print(platform.python_version())') ($tag)"
done
