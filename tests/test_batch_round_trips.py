"""batch_memoize reads a batch in one round trip where the store can (``_get_many``: one SELECT ... IN on
DatabaseCache, one MGET on RedisCache), counted on the real drivers: SQLite's statement trace, the
statements psycopg and PyMySQL cursors execute, the commands redis-py sends."""

from __future__ import annotations

import os
import time
import uuid

import pytest

import oxicache
from oxicache.backends import _sqlitefile

N = 300


def _batch(cache, name="f"):
    runs = []

    @cache.batch_memoize(name=name)
    def f(xs):
        runs.append(len(xs))
        return [x * 2 for x in xs]

    return f, runs


def _check(f, runs, sent):
    f(list(range(N)))  # all misses: one lookup read, one run, one store per item
    assert runs == [N]
    sent.clear()
    assert f(list(range(N))) == [x * 2 for x in range(N)]
    n = len(sent)
    assert runs == [N] and f.cache_info().hits == N
    return n


@pytest.fixture
def counted_statements(monkeypatch):
    """Every statement the DB-API connections opened from now on execute."""
    sa = pytest.importorskip("sqlalchemy")
    sent: list[str] = []

    def on_connect(dbapi_connection, _record):
        module = type(dbapi_connection).__module__
        if module.startswith("sqlite3"):
            dbapi_connection.set_trace_callback(sent.append)
        elif module.startswith("psycopg"):
            import psycopg

            class Counting(psycopg.Cursor):
                def execute(self, query, *args, **kwargs):
                    sent.append(str(query))
                    return super().execute(query, *args, **kwargs)

            dbapi_connection.cursor_factory = Counting
        elif module.startswith("pymysql"):
            import pymysql.cursors

            class CountingMy(pymysql.cursors.Cursor):
                def execute(self, query, args=None):
                    sent.append(str(query))
                    return super().execute(query, args)

            dbapi_connection.cursorclass = CountingMy

    sa.event.listen(sa.pool.Pool, "connect", on_connect)
    # ... and those of a SQLite file's cache, which opens them without SQLAlchemy (backends/_sqlitefile.py)
    opened = _sqlitefile.Connections.raw_connection

    def raw_connection(self):
        connection = opened(self)
        on_connect(connection.dbapi_connection, None)
        return connection

    monkeypatch.setattr(_sqlitefile.Connections, "raw_connection", raw_connection)
    yield sent
    sa.event.remove(sa.pool.Pool, "connect", on_connect)


def test_sqlite_batch_of_hits_is_one_statement(tmp_path, counted_statements):
    cache = oxicache.DatabaseCache(provider="sqlite", database=str(tmp_path / "c.db"))
    f, runs = _batch(cache)
    n = _check(f, runs, counted_statements)
    assert n == 1, counted_statements
    assert " IN (" in counted_statements[0].upper()


@pytest.mark.parametrize("env", ["OXICACHE_PG_URL", "OXICACHE_MYSQL_URL"])
def test_server_batch_of_hits_is_one_statement(env, counted_statements):
    url = os.environ.get(env)
    if not url:
        pytest.skip(f"{env} is not set; start the servers with: eval \"$(bash scripts/db-servers.sh)\"")
    table = "rt_" + uuid.uuid4().hex[:10]
    cache = oxicache.DatabaseCache(url=url, table=table)
    try:
        f, runs = _batch(cache)
        n = _check(f, runs, counted_statements)
        assert n == 1, counted_statements[:5]
    finally:
        cache.clear()


def test_a_batch_larger_than_one_statement_takes_a_few(tmp_path, counted_statements):
    cache = oxicache.DatabaseCache(provider="sqlite", database=str(tmp_path / "c.db"))
    f, _ = _batch(cache)
    f(list(range(1300)))
    counted_statements.clear()
    assert f(list(range(1300))) == [x * 2 for x in range(1300)]
    assert len(counted_statements) == 3  # 512 + 512 + 276 keys
    # duplicates and expired entries are answered as _get answers them
    cache.set(f.cache_name, {"xs": [7]}, output="expired", ttl=0.000001)
    time.sleep(0.01)
    assert f([7, 7, 8, 8]) == [14, 14, 16, 16]


def test_redis_batch_of_hits_is_one_round_trip(monkeypatch):
    redis = pytest.importorskip("redis")
    url = os.environ.get("OXICACHE_REDIS_URL")
    if not url:
        pytest.skip("OXICACHE_REDIS_URL is not set; start the servers with: eval \"$(bash scripts/db-servers.sh)\"")
    sent: list[bytes] = []
    original = redis.connection.AbstractConnection.send_packed_command

    def counting(self, command, check_health=True):
        sent.append(b"")
        original(self, command, check_health)

    cache = oxicache.RedisCache(url, prefix="rt" + uuid.uuid4().hex[:8])
    try:
        f, runs = _batch(cache)
        cache.get("warm", x=0)  # the connection made: not what is counted
        monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)
        assert _check(f, runs, sent) == 1
    finally:
        monkeypatch.undo()
        cache.clear()


def test_a_backend_without_get_many_still_answers_batches(tmp_path):
    """The contract's default: one _get per item (DiskCache, JsonCache)."""
    for cache in (oxicache.DiskCache(tmp_path / "d"), oxicache.JsonCache(tmp_path / "j")):
        f, runs = _batch(cache)
        assert f([1, 2, 2]) == [2, 4, 4] and f([2, 3]) == [4, 6] and runs == [2, 1]
        assert f.cache_info().hits == 1 and cache.stats()["hits"] == 1
