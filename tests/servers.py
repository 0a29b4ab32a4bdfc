"""The real servers the DatabaseCache and RedisCache tests run against.

`eval "$(bash scripts/db-servers.sh)"` starts PostgreSQL, MariaDB and Redis on loopback and exports
OXICACHE_PG_URL and OXICACHE_MYSQL_URL (SQLAlchemy URLs: postgresql+psycopg://..., mysql+pymysql://...)
and OXICACHE_REDIS_URL (redis://127.0.0.1:PORT/0).
A test that needs a server calls `require_server("OXICACHE_PG_URL")`, which returns the URL, or skips
the test when the variable is unset or the server unreachable. With OXICACHE_REQUIRE_SERVERS=1 (as in
.ci/run) it fails the test instead, so CI can never pass by skipping them.

Import as top-level `servers` (tests/ is on sys.path).
"""

from __future__ import annotations

import os

import pytest

PG_URL_ENV = "OXICACHE_PG_URL"
MYSQL_URL_ENV = "OXICACHE_MYSQL_URL"
REDIS_URL_ENV = "OXICACHE_REDIS_URL"
REQUIRE_ENV = "OXICACHE_REQUIRE_SERVERS"
CONNECT_TIMEOUT = 3  # seconds; both psycopg and PyMySQL take `connect_timeout`

# URL -> None when a connection worked, else why it did not. One probe per URL per test session.
_probed: dict[str, str | None] = {}


def pg_url() -> str | None:
    return os.environ.get(PG_URL_ENV) or None


def mysql_url() -> str | None:
    return os.environ.get(MYSQL_URL_ENV) or None


def make_engine(url: str):
    """A SQLAlchemy engine for `url` that gives up connecting after CONNECT_TIMEOUT seconds.

    No pool: each connect is a new connection, and nothing stays open after the test."""
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    return sqlalchemy.create_engine(
        url, poolclass=NullPool, connect_args={"connect_timeout": CONNECT_TIMEOUT}
    )


def _safe(url: str) -> str:
    """`url` with its password hidden, for messages."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparsable URL>"


def _probe(url: str) -> str | None:
    if url.startswith(("redis://", "rediss://", "unix://")):
        return _probe_redis(url)
    try:
        import sqlalchemy
    except ImportError as exc:
        return f"SQLAlchemy is not installed ({exc}); install the `test` extra"
    try:
        engine = make_engine(url)
        try:
            with engine.connect() as conn:
                conn.execute(sqlalchemy.text("SELECT 1")).scalar_one()
        finally:
            engine.dispose()
    except Exception as exc:
        lines = str(exc).strip().splitlines()
        return f"{type(exc).__name__}: {lines[0] if lines else ''}"
    return None


def _probe_redis(url: str) -> str | None:
    try:
        import redis
    except ImportError as exc:
        return f"redis-py is not installed ({exc}); install the `test` extra"
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=CONNECT_TIMEOUT)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def require_server(url_env_name: str) -> str:
    """The URL in environment variable `url_env_name`, once a real connection to it has worked.

    Otherwise skips the calling test, or fails it when OXICACHE_REQUIRE_SERVERS=1."""
    url = os.environ.get(url_env_name)
    if not url:
        problem = f"{url_env_name} is not set"
    else:
        if url not in _probed:
            _probed[url] = _probe(url)
        reason = _probed[url]
        problem = None if reason is None else f"cannot connect to {url_env_name}={_safe(url)}: {reason}"
    if problem is None:
        return url  # type: ignore[return-value]
    message = f'{problem}; start the servers with: eval "$(bash scripts/db-servers.sh)"'
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{message} ({REQUIRE_ENV}=1)", pytrace=False)
    pytest.skip(message)
