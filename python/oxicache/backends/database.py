"""``DatabaseCache``: entries as rows of one SQL table (SQLite, PostgreSQL, MySQL/MariaDB) via SQLAlchemy Core."""

from __future__ import annotations

import contextlib
import datetime
import math
import os
import re
import sqlite3
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, TypeVar

from oxicache._core import KEY_SCHEME_VERSION, CacheEntry, entry_of_columns
from oxicache.backends import _exit_drain
from oxicache.backends._fork import in_child_of
from oxicache.backends._forkgate import SQLITE_GATE
from oxicache.backends._fs import check_writable_file, hold_sqlite_file, prepare_folder, warn_if_risky_filesystem
from oxicache.backends._leases import FILE_LOCKS, FileLeases, LocalLeases, LockLeasedCache, lease_options
from oxicache.backends._records import key_hex, ref_key, to_columns
from oxicache.backends._reserve import Reserve, is_full, reserve_path
from oxicache.backends._sqltags import build_tags_table, delete_tagged, delete_tags, insert_tag
from oxicache.backends._sql import (
    BUSY_TIMEOUT_MS,
    CONFLICT_RETRIES,
    MAX_FUNC,
    WATCHDOG,
    Checkout,
    Pool,
    Stmt,
    build_table,
    conflict_backoff,
    is_conflict,
    mysql_statement_timeout,
    sqlite_pragmas,
    timed_out,
    upsert,
)
from oxicache.backends import _sqlitefile as sqlitefile
from oxicache.backends._sqlleases import ServerLeases
from oxicache.base import Capabilities, Ref
from oxicache.durations import TTL, parse_ttl
from oxicache.errors import DatabaseConnectionError, ValueDecodingError, ValueEncodingError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Engine
    from sqlalchemy.sql.schema import Table

__all__ = ["DEFAULT_SQLITE_PATH", "DEFAULT_TIMEOUT", "DatabaseCache", "DatabaseConnectionError"]

#: Where ``DatabaseCache()`` keeps its SQLite file, relative to the working directory at construction.
DEFAULT_SQLITE_PATH = os.path.join(".oxicache", "cache.db")

_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
# provider -> (SQLAlchemy driver name, pip extra)
_PROVIDERS = {
    "sqlite": ("sqlite", "sqlite"),
    "postgresql": ("postgresql+psycopg", "postgresql"),
    "pg": ("postgresql+psycopg", "postgresql"),
    "mysql": ("mysql+pymysql", "mysql"),
    "mariadb": ("mysql+pymysql", "mysql"),
}
# A URL naming a backend without a driver gets the one oxicache's extras install.
_DEFAULT_DRIVERS = {"postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg",
                    "mysql": "mysql+pymysql", "mariadb": "mariadb+pymysql"}
_EXTRAS = {"sqlite": "sqlite", "postgresql": "postgresql", "mysql": "mysql", "mariadb": "mysql"}
_DATA_COLUMNS = ("func", "inputs", "output", "expected", "metadata")
_PAGE = 1000  # rows per query when iterating
_MANY = 512  # keys per SELECT ... IN of _get_many (within every driver's and SQLite's parameter limit)
_CONNECT_TIMEOUT = 10  # seconds, for servers, at most; a connect_timeout in the URL or engine_options wins
#: Seconds a server may take over one statement before it is cancelled, and (plus a grace of at most 1 s)
#: before the cache gives up on a server that says nothing: ``DatabaseCache(timeout=)``. Every statement of
#: the cache is a read or write of one row by its key (milliseconds), so a frozen server is the only thing
#: that reaches it. See docs/backends/database.md ("Timeouts").
DEFAULT_TIMEOUT = 15.0


def _check_timeout(timeout: object) -> float | None:
    if timeout is None:
        return None
    try:
        seconds = parse_ttl(timeout, what="timeout")  # type: ignore[arg-type]
    except ValueError:
        seconds = None
    if seconds is None:
        msg = (f"DatabaseCache timeout={timeout!r} is not a positive, finite duration; give seconds "
               f"(timeout={DEFAULT_TIMEOUT:g}, the default for servers), a timedelta or a string like '15s'")
        raise ValueError(msg)
    return seconds


def _sqlalchemy(extra: str) -> Any:
    try:
        import sqlalchemy
    except ImportError as err:
        msg = f"DatabaseCache needs SQLAlchemy 2: pip install 'oxicache[{extra}]'"
        raise ImportError(msg, name="sqlalchemy") from err
    return sqlalchemy


def _libpq_version(driver: str) -> int:
    """The libpq under psycopg or psycopg2 (``tcp_user_timeout`` needs 12 or later), 0 if unknown."""
    try:
        if driver == "psycopg":
            import psycopg

            return int(psycopg.pq.version())
        import psycopg2.extensions  # type: ignore[import-untyped]

        return int(psycopg2.extensions.libpq_version())
    except Exception:  # noqa: BLE001 - an unknown libpq: leave its TCP settings alone
        return 0


_UNGATED = contextlib.nullcontext()
_T = TypeVar("_T")


def _sqlite_path(database: str | None) -> str | None:
    """The file of a SQLite database (a path, or a ``file:`` URI's), or None for an in-memory one."""
    if database in (None, "", ":memory:"):
        return None
    assert database is not None
    if not database.startswith("file:"):
        return database  # made absolute when the URL was resolved
    from urllib.parse import parse_qs, unquote, urlsplit

    parts = urlsplit(database)
    path = unquote(parts.path)
    if path in ("", ":memory:") or "memory" in parse_qs(parts.query).get("mode", []):
        return None
    return os.path.abspath(path)


class DatabaseCache(LockLeasedCache):  # leases: server locks, or file locks for SQLite
    """Entries as rows of one SQL table: SQLite (embedded, the default), PostgreSQL or MySQL/MariaDB.

    Args:
        provider: ``"sqlite"`` (default), ``"postgresql"`` (or ``"pg"``), ``"mysql"`` (or ``"mariadb"``).
        database: the SQLite file (default ``.oxicache/cache.db`` under the working directory; its folder
            is created; ``":memory:"`` gives this instance its own in-memory database), or the server's
            database name.
        host, port, user, password: server connection settings (drivers' defaults when omitted);
            ``username=`` (ahvn's spelling) is the same as ``user=``.
        url: any SQLAlchemy URL instead of the settings above (``postgresql://`` uses psycopg 3,
            ``mysql://`` PyMySQL).
        table: the table name, a plain identifier; two caches on one table share their entries.
        exclude: parameter names left out of every key.
        ttl: default time to live of entries (seconds, timedelta or ``"1h"``; default: no expiry).
        on_backend_error: "warn" (default), "raise" or "ignore": what a memoized call does when storage
            fails or a record is damaged (see docs/guarantees.md).
        engine_options: extra ``sqlalchemy.create_engine`` arguments (``connect_args`` are merged).
        timeout: seconds (or a timedelta, or ``"15s"``) one statement may take. Servers (default 15 s):
            the server cancels a statement that runs longer, and a server that sends nothing for
            ``timeout`` plus a grace of up to 1 s (stopped, frozen, cut off) fails the statement with
            ``DatabaseConnectionError``, a backend error under ``on_backend_error``; the cache then
            does not try that server again for ``timeout`` seconds (its statements fail at once), and
            connecting gives up after ``min(10 s, timeout)``. SQLite (default 30 s): how long a
            statement waits for another connection's lock. A timeout given in the URL or
            ``engine_options["connect_args"]`` wins over the one derived from this.
        shared_flight: memoized plain and coroutine functions compute a miss once across every process using this
            table (and host, on a server), rather than once per process (``memoize(shared_flight=...)``
            overrides it per function). Off by default. A lease is a lock: a PostgreSQL advisory lock or
            a MySQL ``GET_LOCK`` held by a connection of the leader's, or a file lock beside a SQLite file
            (one host). A leader that dies lets go of it at once. See docs/scale-out.md.
        lease: on a server, how long a leader that stopped answering (stopped, cut off) keeps its lock
            (the idle timeout of its lock connection; default 30 s); for SQLite only how often the leader
            checks its lock. Seconds, a timedelta or ``"30s"``.

    Raises:
        ValueError: an unknown provider, a table name that is not a plain identifier, or a timeout that is
            not a positive duration.
        TypeError: ``url`` together with provider settings.
        ImportError: SQLAlchemy or the driver is missing (the message names the pip extra).
        OSError: the SQLite folder cannot be created or written.
        DatabaseConnectionError: the database cannot be reached or opened (checked here, not on first use).

    There is no size bound: rows stay until they expire (``ttl``, ``expire()``) or are removed.
    See docs/backends/database.md for the table layout, guarantees and queries.
    """

    capabilities = Capabilities(blocking_io=True, leases=True)

    def __init__(
        self,
        provider: str = "sqlite",
        database: str | os.PathLike[str] | None = None,
        *,
        host: str | None = None,
        port: int | None = None,
        user: str | None = None,
        password: str | None = None,
        url: str | URL | None = None,
        username: str | None = None,
        table: str = "oxicache_entries",
        exclude: Iterable[str] | None = None,
        ttl: TTL = None,
        engine_options: Mapping[str, Any] | None = None,
        on_backend_error: str = "warn",
        types: Iterable[type] | None = None,
        timeout: float | str | datetime.timedelta | None = None,
        shared_flight: bool = False,
        lease: TTL = 30.0,
    ) -> None:
        super().__init__(exclude, ttl=ttl, on_backend_error=on_backend_error, types=types)
        self.shared_flight, self.lease_seconds = lease_options("DatabaseCache", shared_flight, lease)
        if username is not None:  # ahvn's spelling
            if user is not None:
                msg = "pass user= or username= (the same setting), not both"
                raise TypeError(msg)
            user = username
        if not isinstance(table, str) or not _TABLE_NAME.fullmatch(table):
            msg = (f"table must be a plain SQL identifier (a letter or _, then up to 62 letters, digits or _), "
                   f"got {table!r}")
            raise ValueError(msg)
        self._table_name = table
        self._timeout = _check_timeout(timeout)
        if not isinstance(provider, str) or provider.lower() not in _PROVIDERS:
            msg = f"unknown DatabaseCache provider {provider!r}; use one of {', '.join(map(repr, _PROVIDERS))} or url="
            raise ValueError(msg)
        provider = provider.lower()
        if url is not None:
            given = {"database": database, "host": host, "port": port, "user": user, "password": password}
            clash = sorted(k for k, v in given.items() if v is not None)
            if clash:
                msg = f"pass either url= or the connection settings, not both (got url and {', '.join(clash)})"
                raise TypeError(msg)
            scheme = str(url).split(":", 1)[0].split("+", 1)[0].lower()
            extra = _EXTRAS.get(scheme, "sqlite")
        else:
            extra = _PROVIDERS[provider][1]
        self._extra = extra
        # A SQLite file with the default table and engine: no SQLAlchemy unless asked for (_sqlitefile.py)
        direct = provider == "sqlite" and url is None and not engine_options and table == sqlitefile.TABLE \
            and (database is None or os.fspath(database) != ":memory:")
        sa = None if direct else _sqlalchemy(extra)
        self._direct = direct
        self._url = self._resolve_url(sa, provider, database, host, port, user, password, url)
        backend = self._url.get_backend_name()
        self._dialect_name = "mysql" if backend == "mariadb" else backend
        if self._dialect_name not in ("sqlite", "postgresql", "mysql"):
            shown = self._url.render_as_string(hide_password=True)
            msg = f"DatabaseCache supports SQLite, PostgreSQL and MySQL/MariaDB URLs, got {shown!r}"
            raise ValueError(msg)
        self._memory = self._dialect_name == "sqlite" and self._url.database in (None, "", ":memory:")
        server = self._dialect_name != "sqlite"
        # Servers: how long the server lets a statement run, and (a grace later, for its answer to arrive)
        # how long the client waits for a server that says nothing. SQLite: the busy timeout.
        self._seconds = self._timeout if self._timeout is not None else \
            DEFAULT_TIMEOUT if server else BUSY_TIMEOUT_MS / 1000
        self._deadline = self._seconds + min(1.0, self._seconds) if server else 0.0
        self._down_until = 0.0  # a server that timed out is not tried again before this (time.monotonic())
        self._down_why = ""
        if self._dialect_name == "sqlite" and not self._memory:
            self._prepare_folder(str(self._url.database))
        # What the pool opens connections from: SQLAlchemy's engine, or, on the direct path, its stand-in
        self._sa_engine: Engine | None = None  # made on first use on the direct path (`engine`)
        self._engine: Engine | sqlitefile.Connections
        if sa is None:
            self._engine = self._direct_connections()
        else:
            self._engine = self._sa_engine = self._create_engine(sa, engine_options or {})
        self._table: Table | None = None
        self._tags_table: Table | None = None
        self._lazy_lock = threading.RLock()  # the three above, made on first use
        # A :memory: database lives in its one connection, which the threads take in turn. A server's
        # connections are watched (WATCHDOG) when the driver has no read timeout of its own.
        self._pool = Pool(self._engine, 1 if self._memory else None, watched=server, detached=not self._memory)
        weakref.finalize(self, self._pool.close)  # a cache dropped without close() closes its connections
        # A SQLite file: every statement runs inside the fork gate (oxicache.backends._forkgate), so os.fork()
        # waits for it and a child never inherits a lock taken mid-statement.
        self._gated = self._dialect_name == "sqlite" and not self._memory
        with SQLITE_GATE if self._gated else _UNGATED:
            if sa is None:
                self._create_table_directly()
            else:
                self._connect_once(sa)
                self._create_table(sa)
        # A SQLite file: disk space held beside it that clear() frees on a full disk (_delete_all)
        file = self._gated and not str(self._url.database).startswith("file:")
        self._reserve = Reserve(reserve_path(str(self._url.database))) if file else None
        if sa is None:
            for name, (sql, names, defaults) in sqlitefile.STATEMENTS.items():
                setattr(self, f"_q_{name}", Stmt(sql, names, defaults))
        else:
            self._compile(sa)
        # _get_many's statements, one per padded size (1, 2, 4 ... _MANY keys), and invalidate's two per
        # padded number of tags: compiled when first used
        self._q_get_many: dict[int, Stmt] = {}
        self._q_invalidate: dict[int, tuple[Stmt, Stmt]] = {}
        self._dbapi_error: type[BaseException] = self._engine.dialect.loaded_dbapi.Error
        self._leases: FileLeases | LocalLeases | ServerLeases = self._make_leases(sa)
        if isinstance(self._leases, ServerLeases):
            weakref.finalize(self, self._leases.close)
        in_child_of(self, DatabaseCache._forked)

    # ---- construction ---------------------------------------------------------------------------
    @staticmethod
    def _resolve_url(sa: Any, provider: str, database: Any, host: str | None, port: int | None,
                     user: str | None, password: str | None, url: Any) -> URL:
        if url is not None:
            parsed: URL = sa.engine.make_url(url)
            driver = _DEFAULT_DRIVERS.get(parsed.drivername)
            if driver:
                parsed = parsed.set(drivername=driver)
            backend = parsed.get_backend_name()
            if provider != "sqlite" and _PROVIDERS[provider][1] != _EXTRAS.get(backend):
                msg = f"provider {provider!r} does not match the url's database {backend!r}; pass only url="
                raise ValueError(msg)
            if backend == "sqlite" and parsed.database not in (None, "", ":memory:") and \
                    not parsed.database.startswith("file:"):
                parsed = parsed.set(database=os.path.abspath(parsed.database))
            return parsed
        drivername = _PROVIDERS[provider][0]
        if drivername == "sqlite":
            if host is not None or port is not None or user is not None or password is not None:
                msg = "host, port, user and password do not apply to provider='sqlite'"
                raise TypeError(msg)
            path = os.fspath(database) if database is not None else DEFAULT_SQLITE_PATH
            if path != ":memory:":
                path = os.path.abspath(path)  # fixed now: a later chdir must not move the cache
            if sa is None:
                return sqlitefile.URL(path)  # type: ignore[return-value]  # the same attributes, no SQLAlchemy
            return sa.engine.URL.create("sqlite", database=path)  # type: ignore[no-any-return]
        db = None if database is None else os.fspath(database)
        return sa.engine.URL.create(drivername, username=user, password=password, host=host,  # type: ignore[no-any-return]
                                    port=port, database=db)

    def _prepare_folder(self, path: str) -> None:
        """Checks, before SQLite opens ``path``: its folder can be created and written (SQLite also writes
        -wal and -shm files there), the file is writable, its header is sound (``CorruptStoreError``), and
        a warning when it is on a network or FUSE file system."""
        if path.startswith("file:"):
            return  # a SQLite URI: SQLite resolves it
        folder = os.path.dirname(os.path.abspath(path)) or "."
        where = f"DatabaseCache cannot use the SQLite cache {path!r}"
        prepare_folder(folder, where)
        check_writable_file(path, where)
        hold_sqlite_file(self, path, "DatabaseCache")  # the header check, unless a cache of ours has it open
        warn_if_risky_filesystem(path, "DatabaseCache")

    def _create_engine(self, sa: Any, options: Mapping[str, Any]) -> Engine:
        opts = dict(options)
        connect_args = dict(opts.pop("connect_args", None) or {})
        listeners: list[Any] = []
        if self._dialect_name == "sqlite":
            connect_args.setdefault("check_same_thread", False)  # connections move between threads via the pool
            connect_args.setdefault("timeout", self._seconds)
            listeners.append(sqlite_pragmas(self._memory, math.ceil(float(connect_args["timeout"]) * 1000)))
            if self._memory:
                opts.setdefault("poolclass", sa.pool.StaticPool)  # one connection = one private database
        else:
            listeners += self._server_timeouts(connect_args)
        if not self._memory and "poolclass" not in opts and "pool" not in opts:
            # The cache detaches the connections it checks out (see Checkout); these serve the schema set-up.
            opts.setdefault("pool_size", 5)
            opts.setdefault("max_overflow", -1)
        extra = _EXTRAS.get(self._url.get_backend_name(), "sqlite")
        try:
            url = self._url if not isinstance(self._url, sqlitefile.URL) else \
                sa.engine.URL.create("sqlite", database=self._url.database)  # `engine` on the direct path
            engine: Engine = sa.create_engine(url, connect_args=connect_args, **opts)
        except ImportError as err:
            msg = (f"DatabaseCache cannot load the driver for {self._url.drivername!r} ({err}); "
                   f"pip install 'oxicache[{extra}]'")
            raise ImportError(msg, name=getattr(err, "name", None)) from err
        for listener in listeners:
            sa.event.listen(engine, "connect", listener)
        return engine

    def _server_timeouts(self, connect_args: dict[str, Any]) -> list[Any]:
        """The drivers' timeouts, in ``connect_args`` unless the URL or ``connect_args`` set them: connect
        (at most 10 s), a read and write timeout (PyMySQL, mysqlclient) or TCP settings (libpq; its reads
        have no timeout, the WATCHDOG gives them one), and a statement timeout the server enforces.
        Returns the ``connect`` listeners to add (MySQL's statement timeout, set after connecting)."""
        query = self._url.query

        def unset(name: str) -> bool:
            return name not in connect_args and name not in query

        seconds, client = self._seconds, self._deadline
        if unset("connect_timeout"):
            connect_args["connect_timeout"] = math.ceil(min(_CONNECT_TIMEOUT, seconds))
        driver = self._url.get_driver_name()
        if driver in ("pymysql", "mysqldb"):
            # Both equal: PyMySQL then never resets the socket's timeout between a write and a read.
            for name in ("read_timeout", "write_timeout"):
                if unset(name):
                    connect_args[name] = client if driver == "pymysql" else math.ceil(client)
            init = f"{connect_args.get('init_command', '')} {query.get('init_command', '')}"
            if "max_statement_time" not in init and "max_execution_time" not in init:
                return [mysql_statement_timeout(seconds)]
        elif driver in ("psycopg", "psycopg2"):
            # The server cancels a longer statement (options= replaces PGOPTIONS: keep what it said).
            options = connect_args.get("options", query.get("options", os.environ.get("PGOPTIONS", "")))
            if isinstance(options, str) and "statement_timeout" not in options:
                connect_args["options"] = f"{options} -c statement_timeout={math.ceil(seconds * 1000)}".strip()
            # A peer that stops acknowledging (a partition): the kernel drops the connection. Useless
            # against a stopped server (its kernel still acknowledges); the WATCHDOG covers that.
            tcp = {"keepalives": 1, "keepalives_idle": math.ceil(seconds),
                   "keepalives_interval": max(1, math.ceil(seconds / 3)), "keepalives_count": 3}
            if _libpq_version(driver) >= 120000:
                tcp["tcp_user_timeout"] = math.ceil(client * 1000)
            for name, value in tcp.items():
                if unset(name):
                    connect_args[name] = value
        return []

    @contextlib.contextmanager
    def _watching(self, conn: Any) -> Iterator[None]:
        """Statements on ``conn``, a SQLAlchemy connection outside the cache's pool (at construction),
        under the deadline of the cache's own statements."""
        fileno = getattr(conn.connection.dbapi_connection, "fileno", None) if self._deadline else None
        if fileno is None:
            yield
            return
        fd = os.dup(fileno())
        watch = WATCHDOG.arm(fd, self._deadline)
        try:
            yield
        except Exception as err:
            if WATCHDOG.disarm(watch):
                conn.invalidate()
                raise self._gave_up(None, err, shut=True) from err
            raise
        finally:
            WATCHDOG.disarm(watch)
            os.close(fd)

    def _direct_connections(self) -> sqlitefile.Connections:
        """The engine's stand-in on the direct path: connections opened as ``_create_engine`` has
        SQLAlchemy open them (the same timeout, the same pragmas)."""
        return sqlitefile.Connections(str(self._url.database), self._seconds,
                                      sqlite_pragmas(False, math.ceil(self._seconds * 1000)))

    def _create_table_directly(self) -> None:
        """``_connect_once`` and ``_create_table`` on the direct path: the same schema (what SQLAlchemy
        compiles, with IF NOT EXISTS), the same check that an existing table is the cache's, the same
        retries, the same errors."""
        _exit_drain.refuse()
        connections = self._engine
        assert isinstance(connections, sqlitefile.Connections)
        where = f"SQLite file {self._url.database!r}"
        last: BaseException | None = None
        for attempt in range(8):
            try:
                holder = connections.raw_connection()
            except sqlite3.Error as err:
                first = (str(err).strip().splitlines() or [""])[0]
                raise DatabaseConnectionError(f"DatabaseCache cannot open {where}: {first}") from err
            con = holder.dbapi_connection
            try:
                con.isolation_level = None  # each statement its own transaction, as on the engine's path
                for ddl in sqlitefile.TABLES:
                    con.execute(ddl)
                missing = sorted(sqlitefile.COLUMNS - sqlitefile.column_names(con))
                if missing:
                    msg = (f"the table {self._table_name!r} in {self.url} exists but is not an oxicache table "
                           f"(no column {', '.join(missing)}); choose another table=")
                    raise ValueError(msg)
                for ddl in sqlitefile.INDEXES:
                    con.execute(ddl)
                return
            except sqlite3.Error as err:
                last = err
            finally:
                holder.close()
            time.sleep(0.02 * (attempt + 1))
        msg = f"DatabaseCache cannot create the table {self._table_name!r} in {self.url}: {last}"
        raise DatabaseConnectionError(msg) from last

    def _connect_once(self, sa: Any) -> None:
        _exit_drain.refuse()  # a daemon thread opening a cache as the interpreter exits (_exit_drain.py)
        try:
            with self.engine.connect() as conn, self._watching(conn):
                conn.execute(sa.text("SELECT 1"))
        except sa.exc.DBAPIError as err:
            first = (str(err.orig or err).strip().splitlines() or [""])[0]
            where = f"SQLite file {self._url.database!r}" if self._dialect_name == "sqlite" else self.url
            msg = f"DatabaseCache cannot open {where}: {first}"
            self.engine.dispose()
            raise DatabaseConnectionError(msg) from err

    def _create_table(self, sa: Any) -> None:
        """``CREATE TABLE`` and its indexes unless they exist; safe when many threads or processes race
        to create them (the loser of a race sees "already exists" and checks again)."""
        last: BaseException | None = None
        for attempt in range(8):
            try:
                with self.engine.begin() as conn, self._watching(conn):
                    self.table.create(conn, checkfirst=True)
                    self.tags_table.create(conn, checkfirst=True)  # also for a store made before tags
                with self.engine.connect() as conn, self._watching(conn):
                    columns = {c["name"] for c in sa.inspect(conn).get_columns(self._table_name)}
                missing = sorted(set(self.table.c.keys()) - columns)
                if missing:
                    msg = (f"the table {self._table_name!r} in {self.url} exists but is not an oxicache table "
                           f"(no column {', '.join(missing)}); choose another table=")
                    raise ValueError(msg)
                with self.engine.begin() as conn, self._watching(conn):
                    for index in self.table.indexes:
                        index.create(conn, checkfirst=True)
                return
            except sa.exc.DBAPIError as err:
                if self._deadline and timed_out(err):
                    raise self._gave_up(None, err) from err
                last = err
                time.sleep(0.02 * (attempt + 1))
        msg = f"DatabaseCache cannot create the table {self._table_name!r} in {self.url}: {last}"
        raise DatabaseConnectionError(msg) from last

    def _selected(self, sa: Any) -> tuple[list[Any], Any]:
        """The data columns a read selects, and the condition "a row of this key scheme"."""
        c = self.table.c
        if self._dialect_name == "postgresql":  # read the json columns as their exact text
            data = [sa.cast(c[n], sa.Text).label(n) if n != "func" else c[n] for n in _DATA_COLUMNS]
        else:
            data = [c[n] for n in _DATA_COLUMNS]
        # A row written under another key scheme is no entry of this version: a miss (no warning), not
        # listed or counted, overwritten by the next store of its key.
        return data, c.scheme == sa.literal_column(str(int(KEY_SCHEME_VERSION)))

    def _comp(self, stmt: Any) -> Stmt:
        return Stmt.compiled(stmt.compile(dialect=self.engine.dialect))

    def _compile_get_many(self, n: int) -> Stmt:
        """``_get_many``'s statement for ``n`` keys."""
        if self._direct:
            return Stmt(*sqlitefile.get_many(n))
        sa = _sqlalchemy(self._extra)
        data, this_scheme = self._selected(sa)
        c = self.table.c
        return self._comp(sa.select(c.key, *data, c.expires_at).where(
            c.key.in_([sa.bindparam(f"k{i}") for i in range(n)]), this_scheme))

    def _compile_invalidate(self, n: int) -> tuple[Stmt, Stmt]:
        """``invalidate``'s two statements for ``n`` tags."""
        if self._direct:
            entries, tags = sqlitefile.invalidate(n)
            return Stmt(*entries), Stmt(*tags)
        sa = _sqlalchemy(self._extra)
        return (self._comp(delete_tagged(sa, self.table, self.tags_table, n)),
                self._comp(delete_tags(sa, self.tags_table, n)))

    def _compile(self, sa: Any) -> None:
        t = self.table
        c = t.c
        key, now = sa.bindparam("key"), sa.bindparam("now")
        data, this_scheme = self._selected(sa)
        live = sa.and_(this_scheme, sa.or_(c.expires_at.is_(None), c.expires_at > now))
        comp = self._comp

        self._q_get = comp(sa.select(*data, c.expires_at).where(c.key == key, this_scheme))
        self._q_exists = comp(sa.select(c.expires_at).where(c.key == key, this_scheme))
        self._q_upsert = comp(upsert(sa, t, self._dialect_name))
        self._q_delete_live = comp(sa.delete(t).where(c.key == key, live))
        self._q_delete = comp(sa.delete(t).where(c.key == key))
        self._q_delete_expired = comp(sa.delete(t).where(c.key == key, c.expires_at <= now))
        self._q_expire = comp(sa.delete(t).where(c.expires_at <= now))
        self._q_clear = comp(sa.delete(t))
        self._q_count = comp(sa.select(sa.func.count()).select_from(t).where(live))
        func = sa.bindparam("func")
        same_func = c.func == func
        if self._dialect_name == "mysql":
            # MySQL/MariaDB compare strings PAD SPACE, even under utf8mb4_bin: "f" = "f " is true, so
            # cache_clear() of f also cleared "f ". Equal lengths make it exact; the index still finds the rows.
            same_func = sa.and_(same_func, sa.func.char_length(c.func) == sa.func.char_length(func))
        self._q_count_func = comp(sa.select(sa.func.count()).select_from(t).where(same_func, live))
        self._q_clear_func = comp(sa.delete(t).where(same_func))
        self._q_tag = comp(insert_tag(sa, self.tags_table, self._dialect_name))
        self._q_untag_all = comp(sa.delete(self.tags_table))
        self._q_any_tag = comp(sa.select(sa.literal_column("1")).select_from(self.tags_table).limit(1))
        after = sa.bindparam("after")
        self._q_page = comp(sa.select(c.key, *data).where(c.key > after, live).order_by(c.key).limit(_PAGE))

    # ---- connections ----------------------------------------------------------------------------
    def _run(self, stmt: Stmt, args: Any, fetch: int, retry: bool = True) -> Any:
        """One statement on a pooled connection: fetch 0 = rowcount, 1 = one row, 2 = all rows. A
        connection the server dropped (a restart, an idle timeout) is replaced and the statement rerun
        once, and a statement that lost a lock conflict (a deadlock) is rerun after a pause, up to
        ``CONFLICT_RETRIES`` times: every statement here is a single read, or a write that is safe to
        repeat."""
        if self._gated:
            with SQLITE_GATE:
                return self._statement(stmt, args, fetch, retry)
        return self._statement(stmt, args, fetch, retry)

    def _statement(self, stmt: Stmt, args: Any, fetch: int, retry: bool, conflicts: int = 0) -> Any:
        if self._down_until:
            self._refuse_while_down()
        pool = self._pool
        holder: Checkout | None = None
        watch = None
        try:
            # Inside the try: an interrupt right after the connection is taken still hands it back.
            holder = self._take()
            if holder.fd >= 0:
                watch = WATCHDOG.arm(holder.fd, self._deadline)
            cur = holder.cursor
            cur.execute(stmt.sql, args)
            result = cur.fetchone() if fetch == 1 else cur.fetchall() if fetch else cur.rowcount
        except BaseException as err:
            if holder is None:
                raise  # no connection taken: nothing to hand back
            shut = watch is not None and WATCHDOG.disarm(watch)
            if shut or (self._deadline and timed_out(err)):
                raise self._gave_up(holder, err, shut) from err  # never rerun: the server did not answer
            if conflicts < CONFLICT_RETRIES and isinstance(err, self._dbapi_error) and is_conflict(err):
                pool.give(holder)  # the server rolled the statement back; the connection is fine
                conflict_backoff(conflicts)
                return self._statement(stmt, args, fetch, retry, conflicts + 1)
            if not (self._failed(holder, err) and retry):
                raise
            return self._statement(stmt, args, fetch, False)
        if watch is not None and WATCHDOG.disarm(watch):  # it answered as its socket was shut down
            pool.discard(holder, TimeoutError("the watchdog shut the connection down"), lost=False)
            return result
        pool.give(holder)
        return result

    def _take(self) -> Checkout:
        """A pooled connection; a server that cannot be reached raises ``DatabaseConnectionError``."""
        try:
            return self._pool.take()
        except Exception as err:
            # (SQLAlchemy wraps the driver's error, as .orig)
            if not self._deadline or not isinstance(getattr(err, "orig", err), self._dbapi_error):
                raise
            if timed_out(err):
                raise self._gave_up(None, err, connecting=True) from err
            first = (str(getattr(err, "orig", None) or err).strip().splitlines() or [""])[0]
            raise DatabaseConnectionError(f"DatabaseCache cannot connect to {self.url}: {first}") from err

    def _gave_up(self, holder: Checkout | None, err: BaseException, shut: bool = False,
                 connecting: bool = False) -> DatabaseConnectionError:
        """A server that did not answer in time. Its connection and the idle ones are closed (they lead
        to the same server: a statement on one would wait as long), so are those SQLAlchemy's pool
        keeps, and for ``timeout`` seconds the cache's statements fail at once instead of each waiting
        for it again; the statement after that tries the server anew."""
        if holder is not None:
            self._pool.discard(holder, err, lost=True)
        with contextlib.suppress(Exception):
            self._engine.dispose()
        if shut:  # the driver's error only says the connection closed: the WATCHDOG closed it
            first = "no answer: the connection was closed"
        else:
            first = (str(getattr(err, "orig", None) or err).strip().splitlines() or [""])[0]
        if connecting:
            self._down_why = f"cannot be connected to in time ({first})"
        else:
            self._down_why = f"did not answer within {self._deadline:g} s ({first})"
        self._down_until = time.monotonic() + self._seconds
        return DatabaseConnectionError(f"DatabaseCache: {self.url} {self._down_why}; it is not tried again "
                                       f"for {self._seconds:g} s (timeout={self._seconds:g})")

    def _refuse_while_down(self) -> None:
        left = self._down_until - time.monotonic()
        if left <= 0:
            self._down_until = 0.0  # try the server again
            return
        msg = f"DatabaseCache: {self.url} {self._down_why}; it is not tried again for another {left:.1f} s"
        raise DatabaseConnectionError(msg)

    def _failed(self, holder: Checkout, err: BaseException) -> bool:
        """True when the connection was lost (discarded; rerun the statement)."""
        if isinstance(err, self._dbapi_error):
            try:
                lost = bool(self._engine.dialect.is_disconnect(err, holder.dbapi, holder.cursor))  # type: ignore[arg-type]
            except Exception:  # noqa: BLE001
                lost = False
            if not lost:
                self._pool.give(holder)  # an ordinary SQL error: the connection is fine
                return False
            self._pool.discard(holder, err, lost=True)
            return True
        # Not the driver's own error: a KeyboardInterrupt, or a RecursionError or MemoryError raised deep in
        # the driver's code, may have stopped it mid-packet. The connection's state is unknown (PyMySQL then
        # reads "Packet sequence number wrong" on its next statement): never reuse it.
        self._pool.discard(holder, err, lost=False)
        return False

    def _forked(self) -> None:
        """In a forked child: never touch the parent's connections; open new ones on demand. A
        ``:memory:`` database is the child's own copy, reached through the same connection object."""
        self._pool.forget(dispose=not self._memory)
        self._lazy_lock = threading.RLock()  # another thread may have held it at fork time
        if self._sa_engine is not None and self._sa_engine is not self._engine:
            self._sa_engine.dispose(close=False)  # the parent's connections: neither used nor closed

    # ---- primitives -----------------------------------------------------------------------------
    def _get(self, ref: Ref) -> CacheEntry | None:
        number = ref_key(ref)
        key = key_hex(number)
        return self._entry_of_row(number, key, self._run(self._q_get, self._q_get.args({"key": key}), 1))

    def _get_many(self, refs: list[Ref]) -> list[CacheEntry | None]:
        """One ``SELECT ... WHERE key IN (...)`` per ``_MANY`` distinct keys (a batch's hits: one
        statement, not one per item). The key list is padded to a power of two by repeating its last key,
        so a handful of statements serve every size."""
        numbers = [ref_key(ref) for ref in refs]
        keys = [key_hex(number) for number in numbers]
        distinct = list(dict.fromkeys(keys))
        rows: dict[str, Any] = {}
        for start in range(0, len(distinct), _MANY):
            chunk = distinct[start:start + _MANY]
            size = 1 << (len(chunk) - 1).bit_length()
            stmt = self._q_get_many.get(size)
            if stmt is None:
                stmt = self._q_get_many[size] = self._compile_get_many(size)
            padded = chunk + chunk[-1:] * (size - len(chunk))
            for row in self._run(stmt, stmt.args({f"k{i}": k for i, k in enumerate(padded)}), 2):
                rows[row[0]] = row[1:]
        return [self._entry_of_row(number, key, rows.get(key)) for number, key in zip(numbers, keys)]

    def _entry_of_row(self, number: int, key: str, row: Any) -> CacheEntry | None:
        """The entry a ``_q_get`` row holds: None when there is no row, it has expired (it is deleted) or
        it is damaged (reported)."""
        if row is None:
            return None
        if row[5] is not None and row[5] <= time.time():
            self._run(self._q_delete_expired, self._q_delete_expired.args({"key": key, "now": row[5]}), 0)
            return None
        try:
            return entry_of_columns(row, number, lambda: self._where(key))
        except ValueDecodingError as err:
            self._damaged(self._where(key), err)
            return None

    def _has(self, ref: Ref) -> bool:
        """A live row exists (not decoded: a damaged row counts until it is overwritten)."""
        row = self._run(self._q_exists, self._q_exists.args({"key": key_hex(ref_key(ref))}), 1)
        return row is not None and (row[0] is None or row[0] > time.time())

    def _set(self, entry: CacheEntry, ttl: float | None) -> None:
        self._run(self._q_upsert, self._upsert_args(entry, ttl), 0)
        self._index_tags(entry)
        if self._reserve is not None:
            self._reserve.after_store()  # remakes a reserve that clear() used, once stores fit again

    def _upsert_args(self, entry: CacheEntry, ttl: float | None) -> Any:
        """The upsert's parameters for ``entry``; ``ValueEncodingError`` before anything is written."""
        columns = to_columns(entry, ttl)
        if len(columns["func"]) > MAX_FUNC:
            msg = (f"the function name {columns['func'][:60]!r}... is longer than {MAX_FUNC} characters, the "
                   "size of DatabaseCache's func column; give it a shorter name= in memoize")
            raise ValueEncodingError(msg)
        return self._q_upsert.args(columns)

    def _remove(self, ref: Ref) -> bool:
        args = {"key": key_hex(ref_key(ref)), "now": time.time()}
        if self._run(self._q_delete_live, self._q_delete_live.args(args), 0) > 0:
            return True
        self._run(self._q_delete, self._q_delete.args(args), 0)  # an expired row, if any
        return False

    def _iter(self) -> Iterator[CacheEntry]:
        now, after = time.time(), ""
        while True:
            rows = self._run(self._q_page, self._q_page.args({"after": after, "now": now}), 2)
            for row in rows:
                key = row[0]
                try:
                    entry = entry_of_columns(row[1:], int(key, 16), lambda: self._where(key))
                except (ValueError, OverflowError) as err:  # ValueDecodingError, or a key that is not 128-bit hex
                    self._damaged(self._where(key), err)
                    continue
                yield entry
            if len(rows) < _PAGE:
                return
            after = rows[-1][0]

    def _len(self) -> int:
        row = self._run(self._q_count, self._q_count.args({"now": time.time()}), 1)
        return int(row[0])

    def _clear(self) -> None:
        self._delete_all(self._q_clear, {})
        # Only when there are tag rows: even an empty table's DELETE writes a page, and on a full disk the
        # entries' DELETE may just have used the reserve that makes room for one.
        if self._run(self._q_any_tag, self._q_any_tag.args({}), 1) is not None:
            self._delete_all(self._q_untag_all, {})

    def _count_func(self, func: str) -> int:
        row = self._run(self._q_count_func, self._q_count_func.args({"func": func, "now": time.time()}), 1)
        return int(row[0])

    def _clear_func(self, func: str) -> int:
        return self._delete_all(self._q_clear_func, {"func": func})

    def _delete_all(self, stmt: Stmt, values: dict[str, Any]) -> int:
        """``clear()`` and ``cache_clear()``: a DELETE, which on a SQLite file still works when the disk is
        full (_delete_on_full_disk)."""
        args = stmt.args(values)
        try:
            return int(self._run(stmt, args, 0))
        except sqlite3.Error as err:
            if self._reserve is None or not is_full(err):
                raise
        with SQLITE_GATE:
            return self._delete_on_full_disk(stmt, args)

    def _delete_on_full_disk(self, stmt: Stmt, args: Any) -> int:
        """A DELETE on a full disk. In WAL mode every page it changes is appended to the -wal file first,
        which needs free space. SQLite built with secure_delete on (Debian's and others' default) also
        writes every freed page, zeroed, so clearing needs as much free space as the rows take:
        ``secure_delete=FAST`` writes only the pages the DELETE changes anyway (the roots of the table and
        its indexes, the free-list trunks: a few pages per thousand freed). When even those do not fit,
        the reserve beside the file (RESERVE_BYTES) gives its blocks back and the DELETE runs again.
        Then a checkpoint copies the WAL into the database file and truncates it, which gives its space
        back when that fits, and the reserve is remade if there is room. The statement is atomic
        throughout: a failure leaves the table as it was."""
        holder = self._pool.take()
        try:
            cur = holder.cursor
            before = {0: "OFF", 1: "ON", 2: "FAST"}.get(cur.execute("PRAGMA secure_delete").fetchone()[0], "ON")
            cur.execute("PRAGMA secure_delete = FAST")
            try:
                try:
                    cur.execute(stmt.sql, args)
                except sqlite3.Error as err:
                    if not is_full(err) or self._reserve is None or not self._reserve.drop():
                        raise
                    cur.execute(stmt.sql, args)
                count = int(cur.rowcount)
            finally:
                cur.execute(f"PRAGMA secure_delete = {before}")
            with contextlib.suppress(sqlite3.Error):  # no room to grow the database file yet: a later checkpoint
                cur.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except BaseException as err:
            self._failed(holder, err)
            raise
        self._pool.give(holder)
        if self._reserve is not None:
            self._reserve.restore()  # remade if there is room, else by the next store that fits
        return count

    # ---- leases (shared flight) ----------------------------------------------------------------
    def _make_leases(self, sa: Any) -> FileLeases | LocalLeases | ServerLeases:
        """A server's locks (``_sqlleases``), file locks beside a SQLite file (``_leases``), or, for a
        database no other process opens (``:memory:``), a table in this process."""
        if self._dialect_name != "sqlite":
            return ServerLeases(sa, self.engine, self._dialect_name, str(self._url.database or ""),
                                self._table_name, self._seconds, self._deadline)
        path = _sqlite_path(self._url.database)
        if path is None or not FILE_LOCKS:
            return LocalLeases()
        # SQLite folds table names: one lock per key of the table however its name is spelled.
        return FileLeases(f"{path}-leases", prefix=f"{self._table_name.lower()}.")

    def _lease_acquire(self, key: int, seconds: float) -> str | None:
        if self._down_until:
            self._refuse_while_down()
        return super()._lease_acquire(key, seconds)

    def _lease_wait(self, key: int, seconds: float) -> None:
        if self._down_until:
            self._refuse_while_down()
        super()._lease_wait(key, seconds)

    def _set_leased(self, entry: CacheEntry, ttl: float | None, token: str) -> bool:
        key, args = entry.shared_key, self._upsert_args(entry, ttl)
        leases = self._leases
        if isinstance(leases, ServerLeases):
            stored = leases.store_then_release(key, token, self._q_upsert.sql, args)
        else:
            stored = leases.store_then_release(key, token, lambda: self._run(self._q_upsert, args, 0))
        if stored:
            self._index_tags(entry)
        if stored and self._reserve is not None:
            self._reserve.after_store()
        return stored

    def _index_tags(self, entry: CacheEntry) -> None:
        """The tag index rows of a stored entry (``memoize(tags=...)``; _sqltags.py)."""
        tags = entry.metadata.get("tags")
        if not tags:
            return
        key = key_hex(entry.shared_key)
        for tag in tags:
            self._run(self._q_tag, self._q_tag.args({"tag": tag, "key": key}), 0)

    def _invalidate_tags(self, tags: frozenset[str]) -> int:
        """One indexed DELETE of the entries with any of ``tags``, then their index rows."""
        removed = 0
        names = sorted(tags)
        for start in range(0, len(names), _MANY):
            chunk = names[start:start + _MANY]
            size = 1 << (len(chunk) - 1).bit_length()
            stmts = self._q_invalidate.get(size)
            if stmts is None:
                stmts = self._q_invalidate[size] = self._compile_invalidate(size)
            values = {f"t{i}": tag for i, tag in enumerate(chunk + chunk[-1:] * (size - len(chunk)))}
            removed += int(self._run(stmts[0], stmts[0].args(values), 0))
            self._run(stmts[1], stmts[1].args(values), 0)
        return removed

    # ---- public extras --------------------------------------------------------------------------
    def expire(self) -> int:
        """Delete every expired row now (reads also skip and delete them lazily); returns how many."""
        return int(self._run(self._q_expire, self._q_expire.args({"now": time.time()}), 0))

    def verify(self) -> list[str]:
        """The table's problems, read-only (the contract is ``BaseCache.verify``): on SQLite, ``PRAGMA
        integrity_check``; on every dialect, every row, expired ones included: its key column is 32
        lowercase hex digits, its columns decode, and its func and inputs recompute to that key. Rows
        written under another key scheme are skipped (no entries of this version, not damage)."""
        sa = _sqlalchemy(_EXTRAS.get(self._url.get_backend_name(), "sqlite"))
        problems: list[str] = []
        if self._dialect_name == "sqlite":
            import sqlite3

            check = self._comp(sa.text("PRAGMA integrity_check"))
            try:
                found = [str(row[0]) for row in self._run(check, check.args({}), 2)]
            except sqlite3.DatabaseError as err:
                if isinstance(err, sqlite3.OperationalError):  # locked, I/O error: not a verdict on the file
                    raise
                # "database disk image is malformed": its rows may not read back at all
                return [f"SQLite file {self._url.database!r}: integrity_check cannot complete ({err})"]
            if found != ["ok"]:
                problems += [f"SQLite file {self._url.database!r}: integrity_check: {line}" for line in found]
        c = self.table.c
        data, _ = self._selected(sa)  # the json columns as _get reads them
        page = self._comp(sa.select(c.key, c.scheme, *data).where(c.key > sa.bindparam("after"))
                          .order_by(c.key).limit(_PAGE))
        after = ""
        while rows := self._run(page, page.args({"after": after}), 2):
            for row in rows:
                key, scheme, after = row[0], row[1], row[0]
                where = self._where(key if isinstance(key, str) else repr(key))
                if not isinstance(key, str) or not re.fullmatch(r"[0-9a-f]{32}", key):
                    problems.append(f"{where}: the key column is not 32 lowercase hex digits")
                    continue
                if scheme != KEY_SCHEME_VERSION:
                    continue  # another key scheme's row: no entry of this version (reads skip it), not damage
                try:
                    entry_of_columns(row[2:], int(key, 16), lambda: where)
                except Exception as err:  # noqa: BLE001 - ValueDecodingError, or whatever bad data raises
                    problems.append(str(err) if str(err).startswith(where) else f"{where}: {err}")
            if len(rows) < _PAGE:
                break
        return problems

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (for your own queries on ``cache.table``). A cache on a SQLite file runs
        without SQLAlchemy; this makes an engine on that file, with the same settings, when first asked."""
        return self._made_once("_sa_engine", lambda: self._create_engine(_sqlalchemy(self._extra), {}))

    @property
    def table(self) -> Table:
        """The entries' table (SQLAlchemy Core), for your own queries."""
        return self._made_once("_table", lambda: build_table(_sqlalchemy(self._extra), self._table_name,
                                                              self._dialect_name))

    @property
    def tags_table(self) -> Table:
        """The tag index's table (``memoize(tags=...)``; _sqltags.py)."""
        return self._made_once("_tags_table", lambda: build_tags_table(_sqlalchemy(self._extra), self._table_name,
                                                                        self._dialect_name))

    def _made_once(self, name: str, make: Callable[[], _T]) -> _T:
        """The attribute ``name``, made by ``make()`` when it is None: once, however many threads ask."""
        value: _T | None = getattr(self, name)
        if value is None:
            with self._lazy_lock:
                value = getattr(self, name)
                if value is None:
                    value = make()
                    setattr(self, name, value)
        return value

    @property
    def url(self) -> str:
        """The database URL with the password hidden."""
        if self._memory:
            return "sqlite:///:memory:"
        return str(self._url.render_as_string(hide_password=True))

    def close(self) -> None:
        """Return every connection and dispose of the engine. Using the cache afterwards reconnects."""
        with SQLITE_GATE if self._gated else _UNGATED:  # closing the last connection may checkpoint
            self._pool.close(dispose=not self._memory)  # a :memory: database lives in its connection
            if self._sa_engine is not None and self._sa_engine is not self._engine:
                self._sa_engine.dispose()  # the one `engine` made for a cache on the direct path
        if isinstance(self._leases, ServerLeases):
            self._leases.close()

    def _where(self, key: str) -> str:
        return f"table {self._table_name!r} key {key}"

    def __repr__(self) -> str:
        return f"DatabaseCache(url={self.url!r}, table={self._table_name!r})"
