"""The SQL layer of ``DatabaseCache``: its pooled DBAPI connections, precompiled statements and table."""

from __future__ import annotations

import contextlib
import errno
import faulthandler
import math
import operator
import os
import random
import tempfile
import threading
import time
import weakref
from collections import deque
from typing import TYPE_CHECKING, Any, Callable

from oxicache._core import Monitor  # a lock and condition no interrupt can leave held
from oxicache.backends import _exit_drain
from oxicache.backends._fork import in_child

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.sql.compiler import SQLCompiler
    from sqlalchemy.sql.schema import Table

    from oxicache.backends._sqlitefile import Connections

MAX_FUNC = 255  # the size of the func column
BUSY_TIMEOUT_MS = 30_000
INHERITED: list[Any] = []  # connections a forked child must neither use nor close

# Errors a server raises when concurrent statements collide: it rolled the statement back, and since each
# statement here is its own transaction (autocommit) and safe to repeat, running it again is correct.
# InnoDB picks a victim among concurrent upserts, deletes and clears (found by the R3 hammer on MariaDB).
_MYSQL_CONFLICTS = frozenset({1205, 1213})  # lock wait timeout, deadlock found
_PG_CONFLICTS = frozenset({"40001", "40P01"})  # serialization_failure, deadlock_detected
CONFLICT_RETRIES = 8


def is_conflict(err: BaseException) -> bool:
    """True for a DBAPI error saying the statement lost a lock conflict (deadlock, lock wait timeout,
    serialization failure): PyMySQL/mysqlclient put the server's code first in ``args``, psycopg has
    ``sqlstate``."""
    args = getattr(err, "args", ())
    if args and type(args[0]) is int and args[0] in _MYSQL_CONFLICTS:
        return True
    return getattr(err, "sqlstate", None) in _PG_CONFLICTS


def conflict_backoff(attempt: int) -> None:
    """Sleeps before rerunning a statement that lost a conflict: a random pause that doubles with each
    attempt (up to ~0.3 s), so the colliding writers do not collide again in step."""
    time.sleep(random.uniform(0.0005, 0.0025) * 2**attempt)


def timed_out(err: BaseException) -> bool:
    """True for a driver error saying the server did not answer in time (a socket timeout, which PyMySQL
    wraps as "Lost connection ... (timed out)"; ETIMEDOUT; libpq's "connection timeout expired"), as
    opposed to an error the server sent (a statement timeout the server enforced is one of those)."""
    seen: BaseException | None = err
    for _ in range(8):  # the chain: SQLAlchemy's wrapper, the driver's error, the socket's
        if seen is None:
            return False
        if isinstance(seen, TimeoutError) or getattr(seen, "errno", None) == errno.ETIMEDOUT:
            return True
        if any(c.__name__ == "OperationalError" for c in type(seen).__mro__):  # the drivers' connection errors
            text = str(seen).lower()
            if "timed out" in text or "timeout expired" in text:
                return True
        seen = seen.__cause__ or seen.__context__
    return False


class Watch:
    """One statement under the ``WATCHDOG``: its connection's socket and when it must have answered."""

    __slots__ = ("deadline", "fd", "fired")

    def __init__(self, fd: int, deadline: float) -> None:
        self.fd, self.deadline, self.fired = fd, deadline, False


def _shut(fd: int) -> None:
    """``shutdown(2)`` the socket behind ``fd`` (left open: its owner closes it): a driver waiting on it
    wakes up at once and sees the connection closed."""
    import socket  # only for a server's statement that overran: a SQLite cache never loads it

    try:
        sock = socket.socket(fileno=fd)
    except OSError:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        sock.detach()


class Watchdog:
    """A deadline for statements whose driver has no read timeout: libpq (psycopg) waits forever for a
    server that stopped answering. The kernel of a stopped server (SIGSTOP, a frozen VM) still
    acknowledges every byte, so TCP keepalives and ``tcp_user_timeout`` see nothing wrong; a partition
    that drops packets is only caught by them while a statement waits to be acknowledged. One daemon
    thread per process shuts down the socket of a statement that runs past its deadline; the driver's
    wait returns at once with "server closed the connection", and the statement fails. Arming and
    disarming a statement cost a lock round trip and a set update; the thread wakes at deadlines, or once
    per shortest timeout while statements run, never once per statement."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """A fresh state (in a forked child: the parent's thread and statements are not the child's)."""
        self.cond = Monitor()
        self.active: set[Watch] = set()
        self.wake_at = math.inf  # when the thread looks next; inf: asleep until arm() notifies it
        self.used = False  # a statement was armed since the thread last looked
        self.shortest = math.inf  # the shortest timeout armed so far
        self.pid = 0  # the process whose thread runs

    def arm(self, fd: int, seconds: float) -> Watch:
        watch = Watch(fd, time.monotonic() + seconds)
        with self.cond:
            if self.pid != os.getpid():
                self.pid = os.getpid()
                threading.Thread(target=self._run, name="oxicache-watchdog", daemon=True).start()
            self.active.add(watch)
            self.used = True
            self.shortest = min(self.shortest, seconds)
            if watch.deadline < self.wake_at:
                self.wake_at = watch.deadline
                self.cond.notify()
        return watch

    def forget(self, fd: int) -> None:
        """Drops every watch of ``fd`` (its descriptor is about to be closed)."""
        with self.cond:
            for watch in [w for w in self.active if w.fd == fd]:
                self.active.discard(watch)

    def disarm(self, watch: Watch) -> bool:
        """The statement is over; True when its deadline passed first and its socket was shut down (the
        connection is unusable, whatever the statement returned)."""
        with self.cond:
            self.active.discard(watch)
        return watch.fired

    def _run(self) -> None:
        cond = self.cond
        with cond:
            while True:
                now = time.monotonic()
                for watch in [w for w in self.active if w.deadline <= now]:
                    self.active.discard(watch)
                    watch.fired = True
                    _shut(watch.fd)
                if self.active:
                    self.wake_at = min(w.deadline for w in self.active)
                elif self.used:  # statements still come: none armed from now on has an earlier deadline
                    self.wake_at = now + self.shortest
                else:
                    self.wake_at = math.inf
                self.used = False
                cond.wait(None if self.wake_at == math.inf else self.wake_at - now)


WATCHDOG = Watchdog()
in_child(WATCHDOG.reset)


class Checkout:
    """One connection checked out of the engine's pool for good, in autocommit mode: each statement is
    its own transaction, so a read never leaves one open, and a write is committed when it returns.

    ``detached``: the connection leaves SQLAlchemy's pool for good, and is closed, never pooled again,
    when the cache is done with it. An interrupt can land anywhere in the driver (PyMySQL stopped between
    sending a query and reading its reply is out of step: its next statement reads the previous one's
    rows); a connection in that state whose checkout is dropped on the floor must never serve another
    statement. SQLAlchemy's pool would take a dropped connection back after a rollback that can succeed
    on such a connection, and hand it out again (CI's interrupt storm on MariaDB read another key's
    record through one). Only the single connection of a ``:memory:`` database stays pooled: it is the
    database."""

    __slots__ = ("__weakref__", "closer", "cursor", "dbapi", "dialect", "fairy", "fd", "generation", "pid")

    def __init__(self, engine: Engine | Connections, generation: int, watched: bool = False,
                 detached: bool = True) -> None:
        self.pid, self.generation = os.getpid(), generation
        self.closer: weakref.finalize[Any, Any] | None = None
        fairy: Any = engine.raw_connection()
        dbapi: Any = fairy.dbapi_connection
        if detached:
            fairy.detach()  # first: nothing has used it yet, so an interrupt before this line is harmless
            # Dropped unreleased: closed (quietly, and not from a forked child: it is the parent's session).
            self.closer = weakref.finalize(self, _close_dropped, dbapi, self.pid)
            # Not at exit: daemon threads may still run statements on it (closing a sqlite3 connection in
            # use crashes the interpreter), and the process's end closes it anyway.
            self.closer.atexit = False
        engine.dialect.set_isolation_level(dbapi, "AUTOCOMMIT")
        self.fairy, self.dbapi, self.dialect = fairy, dbapi, engine.dialect
        self.cursor: Any = dbapi.cursor()
        # A duplicate of the socket's descriptor, for the WATCHDOG to shut down when a statement overruns
        # (-1: not watched). Our own copy: the driver may close its descriptor, and the number be reused,
        # while a statement still runs.
        fileno = getattr(dbapi, "fileno", None) if watched else None
        self.fd: int = os.dup(fileno()) if fileno is not None else -1

    def release(self, invalidate: BaseException | None = None) -> None:
        """Closes the connection (a detached one), or hands it back to the engine's pool (the
        ``:memory:`` one), unless ``invalidate`` says it is broken."""
        fairy, self.fairy = self.fairy, None
        if fairy is None:
            return
        if self.closer is not None:
            self.closer.detach()
        if self.pid != os.getpid():
            # Inherited through fork: the socket or file is the parent's. Closing it, or letting
            # SQLAlchemy finalize it (a rollback), could disturb the parent's session: never touch it.
            INHERITED.append((fairy, self.dbapi, self.cursor))
            return
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            WATCHDOG.forget(fd)  # a watch left behind (an interrupted statement) must never shut a reused number
            os.close(fd)
        try:
            if invalidate is not None:
                try:
                    fairy.invalidate(invalidate)
                finally:
                    # A detached connection has no pool record for invalidate() to close (and a RecursionError
                    # with the stack nearly used up may stop SQLAlchemy first): close the driver's connection
                    # itself (a few frames), so it never goes back half-read.
                    with contextlib.suppress(Exception):
                        self.dbapi.close()
                return
            self.cursor.close()
            self.dialect.reset_isolation_level(self.dbapi)
            fairy.close()
        except Exception:  # noqa: BLE001 - the connection may be gone already
            with contextlib.suppress(Exception):
                fairy.invalidate()
            with contextlib.suppress(Exception):
                self.dbapi.close()


def _close_dropped(dbapi: Any, pid: int) -> None:
    """Closes the connection of a checkout collected without being released (see ``Checkout``)."""
    if os.getpid() == pid:
        with contextlib.suppress(Exception):
            dbapi.close()


class Pool:
    """The cache's connections, shared by its threads. An operation takes an idle connection (a lock-free
    deque pop), runs one statement, and puts it back. When none is idle it waits for one, while one new
    connection at a time is opened: a burst of threads or ``asyncio.to_thread`` workers reuses a few
    connections instead of paying a connect (milliseconds) per thread or holding one per thread.
    ``limit=1`` serializes a ``:memory:`` database's single connection."""

    def __init__(self, engine: Engine | Connections, limit: int | None, watched: bool = False,
                 detached: bool = True) -> None:
        self.engine, self.limit, self.watched, self.detached = engine, limit, watched, detached
        self.idle: deque[Checkout] = deque()
        # Every open one, idle or in use (for fork and close), held weakly: a connection an interrupted
        # call dropped on the floor leaves the set (and the count) when it is collected.
        self.members: weakref.WeakSet[Checkout] = weakref.WeakSet()
        self.cond = Monitor()
        self.waiters = self.generation = 0
        # The ticket of the call opening a connection, held weakly: if that call is interrupted before it
        # clears it, the ticket dies with its frame (or, when a kept traceback keeps the frame, is seen to
        # be no longer running) and the next waiter opens instead.
        self.opening: weakref.ref[_Ticket] | None = None
        self.parked: list[Checkout] = []  # handed back after the interpreter began exiting: never used again
        _exit_drain.register(self)

    def _opener(self) -> _Ticket | None:
        ticket = None if self.opening is None else self.opening()
        return ticket if ticket is not None and ticket.running() else None

    def _open_count(self) -> int:
        """Open connections of this generation (against ``limit``; asked only when no call is opening one,
        so none is being opened)."""
        return sum(1 for h in list(self.members) if h.generation == self.generation)

    def take(self) -> Checkout:
        try:
            return self.idle.pop()
        except IndexError:
            return self._wait()

    def _wait(self) -> Checkout:
        # One try around everything after `opening` is set, and state changes made in one line each, so
        # that an interrupt anywhere (a KeyboardInterrupt lands between lines) never leaves `opening` set
        # (no connection would ever be opened again) or the count off.
        ticket = None  # this call's, while it opens a connection
        try:
            _exit_drain.refuse()
            with self.cond:
                idle, ticket = self._turn()
            if idle is not None:
                return idle
            with _exit_drain.Connecting():  # a member before the count drops: the exit's drain waits for it
                holder = Checkout(self.engine, self.generation, self.watched, self.detached)
                with self.cond:
                    self.members.add(holder)
            return holder
        finally:
            if ticket is not None:
                with self.cond:
                    if self.opening is not None and self.opening() is ticket:
                        self.opening = None
                    self.cond.notify()  # a waiter may open the next one if the demand lasts

    def _turn(self) -> tuple[Checkout | None, _Ticket | None]:
        """(an idle connection, None), or (None, a ticket to open one): waits, holding ``cond``, until
        one or the other is free."""
        self.waiters += 1  # before looking at idle: give() then knows to notify
        try:
            while not self.idle:
                if self._opener() is None and (self.limit is None or self._open_count() < self.limit):
                    ticket = _Ticket()  # for the _wait call that opens
                    self.opening = weakref.ref(ticket)
                    return None, ticket
                self.cond.wait(0.05)
                _exit_drain.refuse()
            return self.idle.pop(), None
        finally:
            self.waiters -= 1

    def give(self, holder: Checkout) -> None:
        if _exit_drain.exiting:  # no statement starts on it again (_exit_drain.py)
            self.parked.append(holder)
            return
        if holder.generation != self.generation:  # from before close() or fork
            self.members.discard(holder)
            holder.release()
            return
        self.idle.append(holder)
        if self.waiters:
            with self.cond:
                self.cond.notify()

    def park_idle(self) -> None:
        """At interpreter exit: the idle connections are handed out no more (_exit_drain.py)."""
        with self.cond:
            self.parked.extend(self.idle)
            self.idle.clear()
            self.cond.notify_all()

    def in_use(self) -> bool:
        """Whether a connection is out running a statement (or held by a call that has not handed it back)."""
        resting = {id(h) for h in [*self.parked, *self.idle]}
        return any(id(h) not in resting for h in list(self.members))

    def discard(self, holder: Checkout, err: BaseException, lost: bool) -> None:
        """Close a connection that failed mid-statement; when the server dropped it, the idle ones are
        presumably gone too (a restart): close those as well."""
        with self.cond:
            dropped = [holder]
            if lost:
                dropped += self.idle
                self.idle.clear()
            for h in dropped:
                self.members.discard(h)
            self.cond.notify_all()
        for h in dropped:
            h.release(invalidate=err)

    def close(self, dispose: bool = True) -> None:
        """Release every idle connection now and busy ones when they come back; later use reconnects."""
        with self.cond:
            self.generation += 1
            held = list(self.idle)
            self.idle.clear()
            self.cond.notify_all()
        for holder in held:
            self.members.discard(holder)
            holder.release()
        if dispose:
            self.engine.dispose()

    def forget(self, dispose: bool) -> None:
        """In a forked child: the parent's connections are neither used nor closed; new ones are opened."""
        self.cond = Monitor()  # another thread may have held it at fork time
        self.generation += 1
        INHERITED.extend((h.fairy, h.dbapi, h.cursor) for h in list(self.members))
        self.idle.clear()
        self.members = weakref.WeakSet()
        self.waiters = 0
        self.opening = None
        if dispose:
            self.engine.dispose(close=False)


class _Ticket:
    """The turn of the one call opening a connection (``Pool.opening`` refers to it weakly).

    An interrupt can land in ``Pool._wait`` before it clears ``opening`` (no Python line is safe from
    one). The ticket then normally dies with that call's frame; but a kept exception (the REPL's
    ``sys.last_traceback``, a logger, a future, a chained exception) keeps the frame and its locals alive.
    So a ticket also counts only while its thread is still in ``Pool._wait``: never when the asking thread
    is its own (a thread is in one ``_wait`` at a time), and for another thread, while that thread's stack
    holds a ``_wait`` frame of this module."""

    __slots__ = ("__weakref__", "thread")

    def __init__(self) -> None:
        self.thread = threading.get_ident()

    def running(self) -> bool:
        if self.thread == threading.get_ident():
            return False  # this thread asks again: its earlier call is over
        return _in_pool_wait(self.thread)


def _in_pool_wait(thread: int) -> bool:
    """Whether ``thread``'s Python stack holds a ``Pool._wait`` frame, read by faulthandler in one C call.
    (Not by walking ``sys._current_frames()`` with ``f_back``: CPython 3.11 can switch threads between two
    ``f_back`` steps and then follow a popped frame's pointer: CI crashed there, SIGSEGV.)"""
    with tempfile.TemporaryFile() as out:
        faulthandler.dump_traceback(out, all_threads=True)
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    wait_frame = f'File "{Pool._wait.__code__.co_filename}", line '  # as faulthandler prints it
    in_thread = False
    for line in text.splitlines():
        if line.startswith(("Thread 0x", "Current thread 0x")):
            in_thread = int(line.split("0x", 1)[1].split(" ", 1)[0], 16) == thread
        elif in_thread and wait_frame in line and line.endswith(" in _wait"):
            return True
    return False


class Stmt:
    """A statement compiled once for the engine's dialect: its SQL and a function from a dict of
    values to the driver's parameters (a tuple in the bind order, or the dict itself). ``names``: the
    bind order (None: the driver takes the dict); ``defaults``: values compiled in (e.g. the LIMIT)."""

    __slots__ = ("args", "defaults", "names", "sql")

    def __init__(self, sql: str, names: tuple[str, ...] | None, defaults: dict[str, Any]) -> None:
        self.sql, self.names, self.defaults = sql, names, defaults
        self.args: Callable[[dict[str, Any]], Any]
        if names is None:
            self.args = (lambda v: {**defaults, **v}) if defaults else (lambda v: v)
        elif defaults:
            self.args = lambda v: tuple({**defaults, **v}[n] for n in names)
        elif len(names) == 1:
            name = names[0]
            self.args = lambda v: (v[name],)
        elif not names:
            self.args = lambda v: ()
        else:
            self.args = operator.itemgetter(*names)

    @classmethod
    def compiled(cls, compiled: SQLCompiler) -> Stmt:
        """The statement SQLAlchemy compiled."""
        defaults = {k: v for k, v in compiled.params.items() if v is not None}
        names = tuple(compiled.positiontup or ()) if compiled.positional else None
        return cls(str(compiled), names, defaults)


def sqlite_pragmas(memory: bool, busy_ms: int = BUSY_TIMEOUT_MS) -> Callable[[Any, Any], None]:
    """The ``connect`` listener that sets up every new SQLite connection: a busy timeout (30 s unless
    ``DatabaseCache(timeout=)`` says otherwise), and for a file WAL mode (readers never block the writer)
    with ``synchronous=NORMAL``."""
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cur = dbapi_connection.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout = {int(busy_ms)}")
            if not memory:
                _wal(cur, busy_ms)
                cur.execute("PRAGMA synchronous = NORMAL")
        finally:
            cur.close()

    return on_connect


def _wal(cur: Any, busy_ms: int) -> None:
    """Switch a new database file to WAL. Switching takes an exclusive lock and SQLite does not wait
    on the busy timeout for it: processes opening a new file at once can see "database is locked",
    so retry until the busy timeout (once one of them switched the file, the others find it in WAL)."""
    deadline = time.monotonic() + busy_ms / 1000
    while True:
        try:
            if cur.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                cur.execute("PRAGMA journal_mode = WAL")
            return
        except Exception as err:
            if "locked" not in str(err) and "busy" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(0.005)


def mysql_statement_timeout(seconds: float) -> Callable[[Any, Any], None]:
    """The ``connect`` listener that has a MySQL/MariaDB server cancel a statement running longer than
    ``seconds``: MariaDB's ``max_statement_time`` (every statement), MySQL's ``max_execution_time``
    (its only one: SELECTs). A server without either keeps running such statements (the client's read
    timeout still bounds the wait)."""
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        if "mariadb" in str(dbapi_connection.get_server_info()).lower():
            sql = f"SET SESSION max_statement_time = {seconds:.3f}"
        else:
            sql = f"SET SESSION max_execution_time = {math.ceil(seconds * 1000)}"
        cur = dbapi_connection.cursor()
        try:
            cur.execute(sql)
        except Exception as err:
            if (getattr(err, "args", None) or (None,))[0] != 1193:  # 1193: unknown system variable
                raise
        finally:
            cur.close()

    return on_connect


def index_name(table: str, suffix: str) -> str:
    """``<table>_<suffix>``, shortened with a hash of the table name past 63 characters (PostgreSQL's and
    MySQL's identifier limit)."""
    name = f"{table}_{suffix}"
    if len(name) <= 63:
        return name
    import hashlib

    return f"{table[:40]}_{hashlib.sha256(table.encode()).hexdigest()[:8]}_{suffix}"


def build_table(sa: Any, name: str, dialect: str) -> Table:
    """The table: JSON text columns (PostgreSQL ``json``, which keeps the text as written; MySQL
    ``LONGTEXT``, since its JSON type reorders object keys; SQLite ``TEXT``)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        json: Any = postgresql.JSON
        options: dict[str, str] = {}
    elif dialect == "mysql":
        from sqlalchemy.dialects import mysql

        json = mysql.LONGTEXT
        options = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}
    else:
        json = sa.Text
        options = {}
    table: Table = sa.Table(
        name,
        sa.MetaData(),
        sa.Column("key", sa.String(32), primary_key=True),
        sa.Column("func", sa.String(MAX_FUNC), nullable=False),
        sa.Column("inputs", json(), nullable=False),
        sa.Column("output", json(), nullable=True),
        sa.Column("expected", json(), nullable=True),
        sa.Column("metadata", json(), nullable=False),
        sa.Column("scheme", sa.SmallInteger(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),  # DOUBLE: MySQL's FLOAT is 4 bytes
        sa.Column("expires_at", sa.Double(), nullable=True),
        sa.Index(index_name(name, "func"), "func"),
        sa.Index(index_name(name, "expires_at"), "expires_at"),
        **options,
    )
    return table


def upsert(sa: Any, t: Table, dialect: str) -> Any:
    """One atomic statement: insert the row, or replace every column of the row with that key."""
    values: dict[str, Any] = {c.name: sa.bindparam(c.name, type_=c.type) for c in t.c}
    names = [c.name for c in t.c if c.name != "key"]
    if dialect == "mysql":
        from sqlalchemy.dialects.mysql import insert as mysql_insert

        stmt = mysql_insert(t).values(values)
        return stmt.on_duplicate_key_update({n: stmt.inserted[n] for n in names})
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        for n in ("inputs", "output", "expected", "metadata"):  # text in, stored as json
            values[n] = sa.cast(sa.bindparam(n, type_=sa.Text()), t.c[n].type)
        pstmt = pg_insert(t).values(values)
        return pstmt.on_conflict_do_update(index_elements=[t.c.key], set_={n: pstmt.excluded[n] for n in names})
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    sstmt = sqlite_insert(t).values(values)
    return sstmt.on_conflict_do_update(index_elements=[t.c.key], set_={n: sstmt.excluded[n] for n in names})
