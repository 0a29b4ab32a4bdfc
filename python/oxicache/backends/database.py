"""``DatabaseCache``: entries as rows of one SQL table (SQLite, PostgreSQL, MySQL/MariaDB) via SQLAlchemy Core."""

from __future__ import annotations

import contextlib
import os
import re
import time
import weakref
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping

from oxicache._core import KEY_SCHEME_VERSION, CacheEntry
from oxicache._fs import check_sqlite_header, check_writable_file, prepare_folder, warn_if_risky_filesystem
from oxicache.backends._sql import (
    BUSY_TIMEOUT_MS,
    CONFLICT_RETRIES,
    MAX_FUNC,
    Checkout,
    Pool,
    Stmt,
    build_table,
    conflict_backoff,
    is_conflict,
    sqlite_pragmas,
    upsert,
)
from oxicache.backends._records import from_columns, key_hex, ref_key, to_columns, verify
from oxicache.base import BaseCache, Ref
from oxicache._forkgate import SQLITE_GATE
from oxicache.durations import TTL
from oxicache.errors import DatabaseConnectionError, ValueDecodingError, ValueEncodingError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Engine
    from sqlalchemy.sql.schema import Table

__all__ = ["DEFAULT_SQLITE_PATH", "DatabaseCache", "DatabaseConnectionError"]

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
_CONNECT_TIMEOUT = 10  # seconds, for servers; a connect_timeout in the URL or engine_options wins


def _sqlalchemy(extra: str) -> Any:
    try:
        import sqlalchemy
    except ImportError as err:
        msg = f"DatabaseCache needs SQLAlchemy 2: pip install 'oxicache[{extra}]'"
        raise ImportError(msg, name="sqlalchemy") from err
    return sqlalchemy


_LIVE: weakref.WeakSet[DatabaseCache] = weakref.WeakSet()
_UNGATED = contextlib.nullcontext()


def _after_fork_in_child() -> None:
    for cache in list(_LIVE):
        cache._forked()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class DatabaseCache(BaseCache):
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

    Raises:
        ValueError: an unknown provider or a table name that is not a plain identifier.
        TypeError: ``url`` together with provider settings.
        ImportError: SQLAlchemy or the driver is missing (the message names the pip extra).
        OSError: the SQLite folder cannot be created or written.
        DatabaseConnectionError: the database cannot be reached or opened (checked here, not on first use).

    There is no size bound: rows stay until they expire (``ttl``, ``expire()``) or are removed.
    See docs/backends/database.md for the table layout, guarantees and queries.
    """

    blocking_io = True

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
    ) -> None:
        super().__init__(exclude, ttl=ttl, on_backend_error=on_backend_error)
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
        sa = _sqlalchemy(extra)
        self._url = self._resolve_url(sa, provider, database, host, port, user, password, url)
        backend = self._url.get_backend_name()
        self._dialect_name = "mysql" if backend == "mariadb" else backend
        if self._dialect_name not in ("sqlite", "postgresql", "mysql"):
            shown = self._url.render_as_string(hide_password=True)
            msg = f"DatabaseCache supports SQLite, PostgreSQL and MySQL/MariaDB URLs, got {shown!r}"
            raise ValueError(msg)
        self._memory = self._dialect_name == "sqlite" and self._url.database in (None, "", ":memory:")
        if self._dialect_name == "sqlite" and not self._memory:
            self._prepare_folder(str(self._url.database))
        self._engine = self._create_engine(sa, engine_options or {})
        # A :memory: database lives in its one connection, which the threads take in turn.
        self._pool = Pool(self._engine, 1 if self._memory else None)
        weakref.finalize(self, self._pool.close)  # a cache dropped without close() closes its connections
        # A SQLite file: every statement runs inside the fork gate (oxicache._forkgate), so os.fork()
        # waits for it and a child never inherits a lock taken mid-statement.
        self._gated = self._dialect_name == "sqlite" and not self._memory
        with SQLITE_GATE if self._gated else _UNGATED:
            self._connect_once(sa)
            self.table: Table = build_table(sa, table, self._dialect_name)
            self._create_table(sa)
        self._compile(sa)
        self._dbapi_error: type[BaseException] = self._engine.dialect.loaded_dbapi.Error
        _LIVE.add(self)

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
            return sa.engine.URL.create("sqlite", database=path)  # type: ignore[no-any-return]
        db = None if database is None else os.fspath(database)
        return sa.engine.URL.create(drivername, username=user, password=password, host=host,  # type: ignore[no-any-return]
                                    port=port, database=db)

    @staticmethod
    def _prepare_folder(path: str) -> None:
        """Checks, before SQLite opens ``path``: its folder can be created and written (SQLite also writes
        -wal and -shm files there), the file is writable, its header is sound (``CorruptStoreError``), and
        a warning when it is on a network or FUSE file system."""
        if path.startswith("file:"):
            return  # a SQLite URI: SQLite resolves it
        folder = os.path.dirname(os.path.abspath(path)) or "."
        where = f"DatabaseCache cannot use the SQLite cache {path!r}"
        prepare_folder(folder, where)
        check_writable_file(path, where)
        check_sqlite_header(path, "DatabaseCache")
        warn_if_risky_filesystem(path, "DatabaseCache")

    def _create_engine(self, sa: Any, options: Mapping[str, Any]) -> Engine:
        opts = dict(options)
        connect_args = dict(opts.pop("connect_args", None) or {})
        if self._dialect_name == "sqlite":
            connect_args.setdefault("check_same_thread", False)  # connections move between threads via the pool
            connect_args.setdefault("timeout", BUSY_TIMEOUT_MS / 1000)
            if self._memory:
                opts.setdefault("poolclass", sa.pool.StaticPool)  # one connection = one private database
        elif "connect_timeout" not in self._url.query:
            connect_args.setdefault("connect_timeout", _CONNECT_TIMEOUT)
        if not self._memory and "poolclass" not in opts and "pool" not in opts:
            # The cache keeps the connections it checks out (see _Pool): SQLAlchemy's pool must not cap them.
            opts.setdefault("pool_size", 5)
            opts.setdefault("max_overflow", -1)
        extra = _EXTRAS.get(self._url.get_backend_name(), "sqlite")
        try:
            engine: Engine = sa.create_engine(self._url, connect_args=connect_args, **opts)
        except ImportError as err:
            msg = (f"DatabaseCache cannot load the driver for {self._url.drivername!r} ({err}); "
                   f"pip install 'oxicache[{extra}]'")
            raise ImportError(msg, name=getattr(err, "name", None)) from err
        if self._dialect_name == "sqlite":
            sa.event.listen(engine, "connect", sqlite_pragmas(self._memory))
        return engine

    def _connect_once(self, sa: Any) -> None:
        try:
            with self._engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except sa.exc.DBAPIError as err:
            first = (str(err.orig or err).strip().splitlines() or [""])[0]
            where = f"SQLite file {self._url.database!r}" if self._dialect_name == "sqlite" else self.url
            msg = f"DatabaseCache cannot open {where}: {first}"
            self._engine.dispose()
            raise DatabaseConnectionError(msg) from err

    def _create_table(self, sa: Any) -> None:
        """``CREATE TABLE`` and its indexes unless they exist; safe when many threads or processes race
        to create them (the loser of a race sees "already exists" and checks again)."""
        last: BaseException | None = None
        for attempt in range(8):
            try:
                with self._engine.begin() as conn:
                    self.table.create(conn, checkfirst=True)
                with self._engine.connect() as conn:
                    columns = {c["name"] for c in sa.inspect(conn).get_columns(self._table_name)}
                missing = sorted(set(self.table.c.keys()) - columns)
                if missing:
                    msg = (f"the table {self._table_name!r} in {self.url} exists but is not an oxicache table "
                           f"(no column {', '.join(missing)}); choose another table=")
                    raise ValueError(msg)
                with self._engine.begin() as conn:
                    for index in self.table.indexes:
                        index.create(conn, checkfirst=True)
                return
            except sa.exc.DBAPIError as err:
                last = err
                time.sleep(0.02 * (attempt + 1))
        msg = f"DatabaseCache cannot create the table {self._table_name!r} in {self.url}: {last}"
        raise DatabaseConnectionError(msg) from last

    def _compile(self, sa: Any) -> None:
        t, dialect = self.table, self._engine.dialect
        c = t.c
        key, now = sa.bindparam("key"), sa.bindparam("now")
        # A row written under another key scheme is no entry of this version: a miss (no warning), not
        # listed or counted, overwritten by the next store of its key.
        this_scheme = c.scheme == sa.literal_column(str(int(KEY_SCHEME_VERSION)))
        live = sa.and_(this_scheme, sa.or_(c.expires_at.is_(None), c.expires_at > now))
        if self._dialect_name == "postgresql":  # read the json columns as their exact text
            data = [sa.cast(c[n], sa.Text).label(n) if n != "func" else c[n] for n in _DATA_COLUMNS]
        else:
            data = [c[n] for n in _DATA_COLUMNS]

        def comp(stmt: Any) -> Stmt:
            return Stmt(stmt.compile(dialect=dialect))

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
        pool = self._pool
        holder = pool.take()
        try:
            cur = holder.cursor
            cur.execute(stmt.sql, args)
            result = cur.fetchone() if fetch == 1 else cur.fetchall() if fetch else cur.rowcount
        except BaseException as err:
            if conflicts < CONFLICT_RETRIES and isinstance(err, self._dbapi_error) and is_conflict(err):
                pool.give(holder)  # the server rolled the statement back; the connection is fine
                conflict_backoff(conflicts)
                return self._statement(stmt, args, fetch, retry, conflicts + 1)
            if not (self._failed(holder, err) and retry):
                raise
            return self._statement(stmt, args, fetch, False)
        pool.give(holder)
        return result

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
        if isinstance(err, Exception):
            self._pool.give(holder)  # e.g. a value the driver cannot send: nothing reached the server
        else:
            self._pool.discard(holder, err, lost=False)  # interrupted mid-statement: state unknown
        return False

    def _forked(self) -> None:
        """In a forked child: never touch the parent's connections; open new ones on demand. A
        ``:memory:`` database is the child's own copy, reached through the same connection object."""
        self._pool.forget(dispose=not self._memory)

    # ---- primitives -----------------------------------------------------------------------------
    def _get(self, ref: Ref) -> CacheEntry | None:
        number = ref_key(ref)
        key = key_hex(number)
        row = self._run(self._q_get, self._q_get.args({"key": key}), 1)
        if row is None:
            return None
        if row[5] is not None and row[5] <= time.time():
            self._run(self._q_delete_expired, self._q_delete_expired.args({"key": key, "now": row[5]}), 0)
            return None
        where = self._where(key)
        try:
            return verify(from_columns(dict(zip(_DATA_COLUMNS, row)), where), number, where)
        except ValueDecodingError as err:
            self._damaged(where, err)
            return None

    def _has(self, ref: Ref) -> bool:
        """A live row exists (not decoded: a damaged row counts until it is overwritten)."""
        row = self._run(self._q_exists, self._q_exists.args({"key": key_hex(ref_key(ref))}), 1)
        return row is not None and (row[0] is None or row[0] > time.time())

    def _set(self, entry: CacheEntry, ttl: float | None) -> None:
        columns = to_columns(entry, ttl)  # ValueEncodingError here: nothing is written
        if len(columns["func"]) > MAX_FUNC:
            msg = (f"the function name {columns['func'][:60]!r}... is longer than {MAX_FUNC} characters, the "
                   "size of DatabaseCache's func column; give it a shorter name= in memoize")
            raise ValueEncodingError(msg)
        self._run(self._q_upsert, self._q_upsert.args(columns), 0)

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
                where = self._where(row[0])
                try:
                    entry = verify(from_columns(dict(zip(_DATA_COLUMNS, row[1:])), where), int(row[0], 16), where)
                except ValueError as err:  # ValueDecodingError, or a key that is not hex
                    self._damaged(where, err)
                    continue
                yield entry
            if len(rows) < _PAGE:
                return
            after = rows[-1][0]

    def _len(self) -> int:
        row = self._run(self._q_count, self._q_count.args({"now": time.time()}), 1)
        return int(row[0])

    def _clear(self) -> None:
        self._run(self._q_clear, self._q_clear.args({}), 0)

    def _count_func(self, func: str) -> int:
        row = self._run(self._q_count_func, self._q_count_func.args({"func": func, "now": time.time()}), 1)
        return int(row[0])

    def _clear_func(self, func: str) -> int:
        return int(self._run(self._q_clear_func, self._q_clear_func.args({"func": func}), 0))

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

            check = Stmt(sa.text("PRAGMA integrity_check").compile(dialect=self._engine.dialect))
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
        if self._dialect_name == "postgresql":  # the json columns as their exact text, as _get reads them
            data = [sa.cast(c[n], sa.Text).label(n) if n != "func" else c[n] for n in _DATA_COLUMNS]
        else:
            data = [c[n] for n in _DATA_COLUMNS]
        page = Stmt(sa.select(c.key, c.scheme, *data).where(c.key > sa.bindparam("after"))
                    .order_by(c.key).limit(_PAGE).compile(dialect=self._engine.dialect))
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
                    verify(from_columns(dict(zip(_DATA_COLUMNS, row[2:])), where), int(key, 16), where)
                except Exception as err:  # noqa: BLE001 - ValueDecodingError, or whatever bad data raises
                    problems.append(str(err) if str(err).startswith(where) else f"{where}: {err}")
            if len(rows) < _PAGE:
                break
        return problems

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (for your own queries on ``cache.table``)."""
        return self._engine

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

    def _where(self, key: str) -> str:
        return f"table {self._table_name!r} key {key}"

    def __repr__(self) -> str:
        return f"DatabaseCache(url={self.url!r}, table={self._table_name!r})"
