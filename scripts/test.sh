#!/usr/bin/env bash
# Sets everything up and runs every test: Rust unit tests, then the Python suite (which includes the
# golden key vectors, property tests, cross-process checks and the database tests). Extra arguments go
# to pytest.
#
# The database tests need PostgreSQL and MariaDB: unless OXICACHE_PG_URL / OXICACHE_MYSQL_URL are
# already set, scripts/db-servers.sh installs and starts both (root or passwordless sudo), and the tests
# then must reach them (OXICACHE_REQUIRE_SERVERS=1). OXICACHE_SKIP_SERVERS=1 skips that step; the
# database tests then skip too.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -z "${OXICACHE_PG_URL:-}${OXICACHE_MYSQL_URL:-}" ] && [ "${OXICACHE_SKIP_SERVERS:-0}" != 1 ]; then
    db_env=$(bash scripts/db-servers.sh)  # an assignment, so that set -e sees a failure
    eval "$db_env"
    export OXICACHE_REQUIRE_SERVERS=1
fi
# shellcheck disable=SC1091
. .venv/bin/activate

# The format check and the Rust unit tests, unless they passed on exactly this Rust code already.
# shellcheck source=scripts/stamps.sh
. scripts/stamps.sh
rust=$(fingerprint rust Cargo.toml Cargo.lock rustfmt.toml)
if unchanged .venv/.oxicache-rust-tested "$rust"; then
    echo "oxicache: Rust unit tests passed on this code already (rust/, Cargo.* unchanged): skipped"
else
    cargo fmt --check
    # Rust unit tests embed libpython; point the loader at this interpreter's shared library.
    LIBDIR=$(python -c "import sysconfig; print(sysconfig.get_config_var('LIBDIR') or '')")
    LD_LIBRARY_PATH="${LIBDIR}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" PYO3_PYTHON="$(command -v python)" cargo test --lib --quiet
    echo "$rust" > .venv/.oxicache-rust-tested
fi

python -m pytest "$@"
