"""A statement that loses a lock conflict on a server (InnoDB's "Deadlock found" 1213, "Lock wait timeout"
1205; PostgreSQL's deadlock_detected / serialization_failure) is rerun after a pause, since every
statement of DatabaseCache is its own transaction and safe to repeat. Found by the R3 hammer on MariaDB:
under 4 processes x 4 threads of upserts, deletes and clears, InnoDB picked an upsert as a deadlock
victim and the memoized call warned "not cached".

The conflicts are the drivers' real exception classes, raised by the driver's cursor (the cursor class
given through connect_args) for the first INSERTs, on the real servers.
"""

from __future__ import annotations

import uuid
import warnings
from typing import Any

import pytest

from oxicache import CacheWarning, DatabaseCache
from oxicache.backends._sql import CONFLICT_RETRIES, is_conflict
from servers import MYSQL_URL_ENV, PG_URL_ENV, require_server


def conflicting_cursor(kind: str) -> type:
    """A cursor class of the driver whose INSERTs fail with a lock conflict while ``fail`` > 0."""
    if kind == "postgresql":
        import psycopg

        class PgCursor(psycopg.Cursor):  # type: ignore[type-arg]
            fail = 0
            inserts = 0

            def execute(self, query: Any, *args: Any, **kwargs: Any) -> Any:
                if str(query).lstrip().upper().startswith("INSERT"):
                    type(self).inserts += 1
                    if type(self).fail > 0:
                        type(self).fail -= 1
                        raise psycopg.errors.DeadlockDetected("deadlock detected")
                return super().execute(query, *args, **kwargs)

        return PgCursor
    import pymysql

    class MyCursor(pymysql.cursors.Cursor):
        fail = 0
        inserts = 0

        def execute(self, query: Any, args: Any = None) -> Any:
            if str(query).lstrip().upper().startswith("INSERT"):
                type(self).inserts += 1
                if type(self).fail > 0:
                    type(self).fail -= 1
                    raise pymysql.err.OperationalError(1213, "Deadlock found when trying to get lock; try restarting transaction")
            return super().execute(query, args)

    return MyCursor


@pytest.fixture(params=["postgresql", "mysql"])
def server_cache(request: pytest.FixtureRequest) -> Any:
    kind = request.param
    url = require_server(PG_URL_ENV if kind == "postgresql" else MYSQL_URL_ENV)
    cursor = conflicting_cursor(kind)
    option = "cursor_factory" if kind == "postgresql" else "cursorclass"
    table = f"t_conflict_{uuid.uuid4().hex[:10]}"
    cache = DatabaseCache(url=url, table=table, engine_options={"connect_args": {option: cursor}})
    yield cache, cursor
    cache.close()
    import sqlalchemy

    engine = sqlalchemy.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text(f"DROP TABLE IF EXISTS {table}"))
    engine.dispose()


def test_the_drivers_conflict_errors_are_recognised() -> None:
    import psycopg
    import pymysql

    assert is_conflict(pymysql.err.OperationalError(1213, "Deadlock found"))
    assert is_conflict(pymysql.err.OperationalError(1205, "Lock wait timeout exceeded"))
    assert is_conflict(psycopg.errors.DeadlockDetected("deadlock detected"))
    assert is_conflict(psycopg.errors.SerializationFailure("could not serialize access"))
    assert not is_conflict(pymysql.err.OperationalError(1114, "The table is full"))
    assert not is_conflict(psycopg.errors.DiskFull("no space"))
    assert not is_conflict(psycopg.errors.UniqueViolation("duplicate key"))


def test_a_store_that_loses_a_conflict_is_rerun_and_lands(server_cache: Any) -> None:
    cache, cursor = server_cache

    @cache.memoize
    def f(x: int) -> int:
        return x * 2

    cursor.fail, cursor.inserts = 3, 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "not cached" warning
        assert f(21) == 42
    assert cursor.inserts == 4  # three conflicts, then the statement that landed
    assert cache.get(f, x=21) == 42
    assert cache.stats()["backend_errors"] == 0


def test_a_conflict_that_never_clears_follows_the_failure_policy(server_cache: Any) -> None:
    cache, cursor = server_cache

    @cache.memoize
    def f(x: int) -> int:
        return x * 2

    cursor.fail, cursor.inserts = 10**6, 0
    with pytest.warns(CacheWarning, match="was not cached: the backend failed .*[Dd]eadlock"):
        assert f(1) == 2
    assert cursor.inserts == CONFLICT_RETRIES + 1
    cursor.fail = 0
    assert cache.get(f, x=1) is ...
