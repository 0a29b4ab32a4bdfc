"""``DatabaseCache`` on a SQLite file without SQLAlchemy: its default table's statements and schema,
precompiled, and connections opened straight through ``sqlite3``.

Importing SQLAlchemy takes longer than everything else a short script or the CLI does with the cache
(about 180 ms of a 450 ms start here). For the common case (``provider="sqlite"``, a file, the default
table, no ``url=`` or ``engine_options=``) the cache runs on what is here, and SQLAlchemy is imported only
when something needs it: ``cache.engine``, ``cache.table``, ``verify()``. The statements and the schema
are exactly what SQLAlchemy compiles for that table (tests/test_sqlite_file.py compiles them again and
compares them, text and bind order); ``Connections`` opens connections the way the engine does (the same
connect arguments and ``sqlite_pragmas``), so that ``Pool`` and ``Checkout`` (``_sql.py``) use them
unchanged.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Callable

from oxicache._core import KEY_SCHEME_VERSION

TABLE = "oxicache_entries"  # the only table served here; any other goes through SQLAlchemy

_T, _S = TABLE, int(KEY_SCHEME_VERSION)
_LIVE = f"{_T}.scheme = {_S} AND ({_T}.expires_at IS NULL OR {_T}.expires_at > ?)"
_DATA = f"{_T}.func, {_T}.inputs, {_T}.output, {_T}.expected, {_T}.metadata"
_COLUMNS = ("key", "func", "inputs", "output", "expected", "metadata", "scheme", "created_at", "expires_at")

#: name -> (SQL, bind order, values compiled in): DatabaseCache's ``_q_<name>`` statements.
STATEMENTS: dict[str, tuple[str, tuple[str, ...], dict[str, Any]]] = {
    "get": (f'SELECT {_DATA}, {_T}.expires_at \nFROM {_T} \nWHERE {_T}."key" = ? AND {_T}.scheme = {_S}',
            ("key",), {}),
    "exists": (f'SELECT {_T}.expires_at \nFROM {_T} \nWHERE {_T}."key" = ? AND {_T}.scheme = {_S}', ("key",), {}),
    "upsert": (f'INSERT INTO {_T} ("key", func, inputs, output, expected, metadata, scheme, created_at, expires_at) '
               f'VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT ("key") DO UPDATE SET '
               + ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS[1:]), _COLUMNS, {}),
    "delete_live": (f'DELETE FROM {_T} WHERE {_T}."key" = ? AND {_LIVE}', ("key", "now"), {}),
    "delete": (f'DELETE FROM {_T} WHERE {_T}."key" = ?', ("key",), {}),
    "delete_expired": (f'DELETE FROM {_T} WHERE {_T}."key" = ? AND {_T}.expires_at <= ?', ("key", "now"), {}),
    "expire": (f"DELETE FROM {_T} WHERE {_T}.expires_at <= ?", ("now",), {}),
    "clear": (f"DELETE FROM {_T}", (), {}),
    "count": (f"SELECT count(*) AS count_1 \nFROM {_T} \nWHERE {_LIVE}", ("now",), {}),
    "count_func": (f"SELECT count(*) AS count_1 \nFROM {_T} \nWHERE {_T}.func = ? AND {_LIVE}", ("func", "now"), {}),
    "clear_func": (f"DELETE FROM {_T} WHERE {_T}.func = ?", ("func",), {}),
    "tag": (f'INSERT INTO {_T}_tags (tag, "key") VALUES (?, ?) ON CONFLICT DO NOTHING', ("tag", "key"), {}),
    "untag_all": (f"DELETE FROM {_T}_tags", (), {}),
    "any_tag": (f"SELECT 1 \nFROM {_T}_tags\n LIMIT ? OFFSET ?", ("param_1", "param_2"), {"param_1": 1, "param_2": 0}),
    "page": (f'SELECT {_T}."key", {_DATA} \nFROM {_T} \nWHERE {_T}."key" > ? AND {_LIVE} ORDER BY {_T}."key"\n'
             " LIMIT ? OFFSET ?", ("after", "now", "param_1", "param_2"), {"param_1": 1000, "param_2": 0}),
}

Statement = tuple[str, tuple[str, ...], dict[str, Any]]


def get_many(n: int) -> Statement:
    """``_get_many``'s statement for ``n`` keys."""
    names = tuple(f"k{i}" for i in range(n))
    return (f'SELECT {_T}."key", {_DATA}, {_T}.expires_at \nFROM {_T} \nWHERE {_T}."key" IN '
            f'({", ".join("?" * n)}) AND {_T}.scheme = {_S}', names, {})


def invalidate(n: int) -> tuple[Statement, Statement]:
    """``invalidate``'s two statements for ``n`` tags: the entries with any of them, then their tag rows."""
    names, marks = tuple(f"t{i}" for i in range(n)), ", ".join("?" * n)
    return ((f'DELETE FROM {_T} WHERE {_T}."key" IN (SELECT {_T}_tags."key" \nFROM {_T}_tags \n'
             f"WHERE {_T}_tags.tag IN ({marks}))", names, {}),
            (f"DELETE FROM {_T}_tags WHERE {_T}_tags.tag IN ({marks})", names, {}))


#: The tables, then the indexes (after checking the table is the cache's: ``COLUMNS``).
TABLES = (
    f'\nCREATE TABLE IF NOT EXISTS {_T} (\n\t"key" VARCHAR(32) NOT NULL, \n\tfunc VARCHAR(255) NOT NULL, '
    "\n\tinputs TEXT NOT NULL, \n\toutput TEXT, \n\texpected TEXT, \n\tmetadata TEXT NOT NULL, "
    '\n\tscheme SMALLINT NOT NULL, \n\tcreated_at DOUBLE NOT NULL, \n\texpires_at DOUBLE, \n\tPRIMARY KEY ("key")\n)\n\n',
    f'\nCREATE TABLE IF NOT EXISTS {_T}_tags (\n\ttag VARCHAR(255) NOT NULL, \n\t"key" VARCHAR(32) NOT NULL, '
    '\n\tPRIMARY KEY (tag, "key")\n)\n\n',
)
INDEXES = (
    f"CREATE INDEX IF NOT EXISTS {_T}_func ON {_T} (func)",
    f"CREATE INDEX IF NOT EXISTS {_T}_expires_at ON {_T} (expires_at)",
)
COLUMNS = frozenset(_COLUMNS)


def column_names(connection: sqlite3.Connection) -> set[str]:
    """The columns the table has now (none when it does not exist)."""
    return {str(row[1]) for row in connection.execute(f"PRAGMA table_info({_T})")}


class URL:
    """The part of SQLAlchemy's URL a SQLite file's cache uses: its path and how it prints."""

    drivername = "sqlite"
    query: dict[str, str] = {}

    def __init__(self, database: str) -> None:
        self.database = database

    def get_backend_name(self) -> str:
        return "sqlite"

    def get_driver_name(self) -> str:
        return "pysqlite"

    def render_as_string(self, hide_password: bool = True) -> str:
        from urllib.parse import quote

        return f"sqlite:///{quote(self.database, safe=' +/')}"  # as SQLAlchemy renders it

    def __str__(self) -> str:
        return self.render_as_string()


class Connections:
    """Stands in for the SQLAlchemy engine where ``Pool`` and ``Checkout`` use one: each connection is
    opened as the engine opens it (``sqlite3.connect`` with the busy timeout, any thread may use it, then
    ``on_connect``: the pragmas), and there is no pool behind it to dispose of."""

    def __init__(self, path: str, timeout: float, on_connect: Callable[[Any, Any], None]) -> None:
        self.path, self.timeout, self.on_connect = path, timeout, on_connect
        self.dialect = _Dialect()

    def raw_connection(self) -> _Connection:
        connection = sqlite3.connect(self.path, timeout=self.timeout, check_same_thread=False)
        try:
            self.on_connect(connection, None)
        except BaseException:
            connection.close()
            raise
        return _Connection(connection)

    def dispose(self, close: bool = True) -> None:
        """Nothing to do: every connection is the cache's own (checked out for good), closed by it."""


class _Connection:
    """What ``Checkout`` uses of SQLAlchemy's pooled connection: the driver's, and closing it."""

    __slots__ = ("dbapi_connection",)

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.dbapi_connection = connection

    def detach(self) -> None:
        """It belongs to no pool."""

    def close(self) -> None:
        self.dbapi_connection.close()

    def invalidate(self, _err: BaseException | None = None) -> None:
        self.dbapi_connection.close()


class _Dialect:
    """What the cache asks SQLAlchemy's pysqlite dialect, answered the same way."""

    loaded_dbapi = sqlite3

    @staticmethod
    def set_isolation_level(connection: sqlite3.Connection, level: str) -> None:
        connection.isolation_level = None if level == "AUTOCOMMIT" else "DEFERRED"  # (what "" means)

    @staticmethod
    def reset_isolation_level(connection: sqlite3.Connection) -> None:
        connection.isolation_level = "DEFERRED"  # the driver's default ("" means the same)

    @staticmethod
    def is_disconnect(err: BaseException, _connection: Any, _cursor: Any) -> bool:
        return isinstance(err, sqlite3.ProgrammingError) and "Cannot operate on a closed database." in str(err)
