"""Leases on keys for ``DatabaseCache`` on PostgreSQL and MySQL/MariaDB: a lock on the server, held by a
connection of the leader's own (``memoize(shared_flight=True)``; the protocol is in
``oxicache.memo.shared_flight``).

- PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``) on a 64-bit digest of the table name
  and the key (advisory locks belong to a database: other databases on the server never collide).
  MySQL/MariaDB: ``GET_LOCK`` on ``oxicache:<digest of the database and table>:<key hex>`` (58 characters;
  the server allows 64, names are server-wide). A digest collision only makes two keys share a lock.
- The leader's lock lives on a connection taken for the lease alone (from a pool of lease connections,
  never the cache's statement pool): the server lets go of it when that connection ends, so a leader
  killed mid-call is taken over at once, and a leader whose connection was cut (a restart,
  ``pg_terminate_backend``, ``KILL``) has lost its lease.
- A leader that stops talking (stopped, frozen, cut off by a partition) loses the lock after ``lease``
  seconds: its connection's idle timeout is set to the lease (PostgreSQL 14+ ``idle_session_timeout``,
  MySQL's ``wait_timeout``), and a live leader's renewal, every third of that, keeps it busy. Before
  PostgreSQL 14 only the connection's end lets go.
- Renewal asks the server whether this connection still holds the lock. Storing under the lease runs the
  upsert *on the lock's connection*, then unlocks: a connection that runs a statement is alive and so still
  holds its lock, and one that lost it cannot run anything, so a leader that lost its lease never
  overwrites what the next one stored.
- Waiters block on the lock itself, in slices of at most ``WAIT_SLICE`` (and half the statement timeout):
  PostgreSQL ``pg_advisory_lock`` under ``lock_timeout``, in a ``DO`` block that catches the timeout (the
  server logs no error for it); MySQL ``GET_LOCK(name, slice)``. When the lock comes free the waiter takes
  it and lets go at once. psycopg cancels a statement on Ctrl-C; the slices bound the wait for drivers that
  cannot be interrupted mid-statement.
- Transaction-level locks were not used: they would hold a transaction open while the function runs
  (minutes, for an LLM call), which servers' ``idle_in_transaction_session_timeout`` kill and which holds
  back vacuum; and the store could not be checked against a lock lost on another connection.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from typing import TYPE_CHECKING, Any

from oxicache._core import Monitor
from oxicache.backends._fork import in_child_of
from oxicache.backends._leases import new_token
from oxicache.backends._sql import CONFLICT_RETRIES, WATCHDOG, Checkout, Pool, Stmt, conflict_backoff, is_conflict

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

__all__ = ["WAIT_SLICE", "ServerLeases"]

#: The longest single blocking wait on a lock, in seconds (a waiter then looks at the store again).
WAIT_SLICE = 1.0


class _Unanswered(ConnectionError):
    """The server did not answer a lease statement within the cache's deadline (the watchdog shut the
    connection)."""


class _Lease:
    """A lease held by this process: its connection, used by one thread at a time (the leader's store,
    the renewal thread)."""

    __slots__ = ("holder", "key", "monitor", "over")

    def __init__(self, key: int, holder: Checkout) -> None:
        self.key, self.holder = key, holder
        self.monitor = Monitor()
        self.over = False  # released, stored, or lost: the connection is no longer this lease's


class ServerLeases:
    """The lease primitives of a ``DatabaseCache`` on a server (see the module's docstring)."""

    def __init__(self, sa: Any, engine: Engine, dialect_name: str, database: str, table: str,
                 statement_seconds: float, deadline: float) -> None:
        self.pool = Pool(engine, None, watched=True, detached=True)
        self._dialect = engine.dialect
        self._error: type[BaseException] = engine.dialect.loaded_dbapi.Error
        self._deadline = deadline
        self._slice = max(0.01, min(WAIT_SLICE, statement_seconds / 2))
        self._pg = dialect_name == "postgresql"
        self._monitor = Monitor()
        self._held: dict[str, _Lease] = {}  # token -> lease
        scope = table.lower()  # SQLite and MySQL (on some systems) fold table names: never less exclusion
        from hashlib import blake2b  # here: a SQLite cache imports this module but never makes one

        self._blake2b = blake2b
        if self._pg:
            self._scope = scope
            version = engine.dialect.server_version_info or (0,)
            self._idle = version >= (14,)  # idle_session_timeout
        else:
            self._scope = blake2b(f"{database}/{scope}".lower().encode(), digest_size=8).hexdigest()
            self._idle = True  # wait_timeout

        def comp(text: str) -> Stmt:
            return Stmt.compiled(sa.text(text).compile(dialect=engine.dialect))

        if self._pg:
            k = "CAST(:k AS BIGINT)"
            if self._idle:
                self._q_acquire = comp(f"SELECT CASE WHEN pg_try_advisory_lock({k}) "
                                       "THEN set_config('idle_session_timeout', :ms, false) END")
                self._q_release = comp(f"SELECT pg_advisory_unlock({k}), set_config('idle_session_timeout', '0', false)")
            else:
                self._q_acquire = comp(f"SELECT CASE WHEN pg_try_advisory_lock({k}) THEN :ms END")
                self._q_release = comp(f"SELECT pg_advisory_unlock({k})")
            self._q_renew = comp("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND "
                                 "pid = pg_backend_pid() AND classid = CAST(:hi AS oid) AND "
                                 "objid = CAST(:lo AS oid) AND objsubid = 1")
        else:
            self._q_acquire = comp("SELECT GET_LOCK(:k, 0)")
            self._q_idle = comp("SET SESSION wait_timeout = :s")
            self._q_release = comp("SELECT RELEASE_LOCK(:k)")
            self._q_unidle = comp("SET SESSION wait_timeout = @@GLOBAL.wait_timeout")
            self._q_renew = comp("SELECT IS_USED_LOCK(:k) = CONNECTION_ID()")
            self._q_wait = comp("SELECT IF(GET_LOCK(:k, :t) = 1, RELEASE_LOCK(:k), 0)")
        in_child_of(self, ServerLeases._forked)

    # ---- names ----------------------------------------------------------------------------------
    def lock_id(self, key: int) -> int | str:
        """The server's name for the key's lock: a signed 64-bit advisory lock key (PostgreSQL) or a
        ``GET_LOCK`` name (MySQL)."""
        if self._pg:
            digest = self._blake2b(f"{self._scope}:{key:032x}".encode(), digest_size=8).digest()
            return int.from_bytes(digest, "big", signed=True)
        return f"oxicache:{self._scope}:{key:032x}"

    # ---- statements -------------------------------------------------------------------------------
    def _run(self, holder: Checkout, sql: str, args: Any, fetch: bool) -> Any:
        """One statement on ``holder``, under the cache's deadline (the watchdog)."""
        watch = WATCHDOG.arm(holder.fd, self._deadline) if holder.fd >= 0 else None
        try:
            if args is None:
                holder.cursor.execute(sql)
            else:
                holder.cursor.execute(sql, args)
            row = holder.cursor.fetchone() if fetch else None
        except BaseException:
            if watch is not None:
                WATCHDOG.disarm(watch)
            raise
        if watch is not None and WATCHDOG.disarm(watch):
            msg = f"the server did not answer a lease statement within {self._deadline:g} s"
            raise _Unanswered(msg)
        return row

    def _lost(self, holder: Checkout, err: BaseException) -> bool:
        """Whether ``err`` says the connection is gone (and its locks with it)."""
        if isinstance(err, _Unanswered):
            return True
        if not isinstance(err, self._error):
            return False
        try:
            return bool(self._dialect.is_disconnect(err, holder.dbapi, holder.cursor))  # type: ignore[arg-type]
        except Exception:  # noqa: BLE001
            return False

    def _drop(self, holder: Checkout, err: BaseException) -> bool:
        """Closes a connection whose statement failed (its session, and any lock it held, end with it);
        True when the server had dropped it already."""
        lost = self._lost(holder, err)
        self.pool.discard(holder, err, lost=lost)
        return lost

    def _once(self, sql: str, args: Any, fetch: bool) -> tuple[Checkout, Any]:
        """A statement on a lease connection, rerun once on a new one when the idle connection it took
        had been dropped by the server (a restart, an idle timeout). Returns the connection with the row."""
        for attempt in (0, 1):
            holder = self.pool.take()
            try:
                return holder, self._run(holder, sql, args, fetch)
            except BaseException as err:
                if not self._drop(holder, err) or attempt or not isinstance(err, Exception):
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    # ---- the lease primitives ---------------------------------------------------------------------
    def acquire(self, key: int, seconds: float) -> str | None:
        lock = self.lock_id(key)
        holder, row = self._once(self._q_acquire.sql, self._q_acquire.args(
            {"k": lock, "ms": str(math.ceil(seconds * 1000))}), True)
        if row is None or not row[0]:  # PostgreSQL: NULL; MySQL: 0, or NULL on an error
            self.pool.give(holder)
            return None
        lease = _Lease(key, holder)  # dropped on the floor by an interrupt: its connection is closed
        try:
            if not self._pg:
                self._run(holder, self._q_idle.sql, self._q_idle.args({"s": max(1, math.ceil(seconds))}), False)
        except BaseException as err:
            self._drop(holder, err)  # the server lets go of the lock with the connection
            raise
        token = new_token()
        with self._monitor:
            self._held[token] = lease
        return token

    def _take(self, token: str) -> _Lease | None:
        with self._monitor:
            return self._held.pop(token, None)

    def renew(self, key: int, token: str, seconds: float) -> bool:
        """True while the lease's connection holds the lock (the statement also keeps it from idling
        out); a connection that fails is closed and the lease counts as lost."""
        lease = self._held.get(token)
        if lease is None:
            return False
        with lease.monitor:
            if lease.over:
                return False
            if self._pg:
                unsigned = int(self.lock_id(key)) & 0xFFFF_FFFF_FFFF_FFFF
                args = self._q_renew.args({"hi": unsigned >> 32, "lo": unsigned & 0xFFFF_FFFF})
            else:
                args = self._q_renew.args({"k": self.lock_id(key)})
            try:
                row = self._run(lease.holder, self._q_renew.sql, args, True)
            except BaseException as err:
                lease.over = True
                self._take(token)
                self._drop(lease.holder, err)
                if not isinstance(err, Exception):
                    raise
                return False
            return bool(row and row[0])

    def release(self, key: int, token: str) -> None:
        lease = self._take(token)
        if lease is not None:
            with lease.monitor:
                if not lease.over:
                    lease.over = True
                    self._unlock(lease)

    def _unlock(self, lease: _Lease) -> None:
        """Lets go of the lock and puts the connection back; a failure closes it (letting go as well)."""
        holder = lease.holder
        try:
            self._run(holder, self._q_release.sql, self._q_release.args({"k": self.lock_id(lease.key)}), True)
            if not self._pg:
                self._run(holder, self._q_unidle.sql, None, False)
        except BaseException as err:
            self._drop(holder, err)
            if not isinstance(err, Exception):
                raise
            return
        self.pool.give(holder)

    def store_then_release(self, key: int, token: str, sql: str, args: Any) -> bool:
        """Runs the store statement on the lease's connection, then lets go of the lock: False, nothing
        stored, when the lease was lost (its connection is gone, so is the lock). A store the server
        refuses raises, and the lock goes with its closed connection."""
        lease = self._take(token)
        if lease is None:
            return False
        with lease.monitor:
            if lease.over:
                return False
            lease.over = True
            conflicts = 0
            while True:
                try:
                    self._run(lease.holder, sql, args, False)
                    break
                except BaseException as err:
                    if isinstance(err, self._error) and is_conflict(err) and conflicts < CONFLICT_RETRIES:
                        conflicts += 1  # rolled back by the server; the session and its lock are intact
                        conflict_backoff(conflicts)
                        continue
                    if self._drop(lease.holder, err) and isinstance(err, Exception):
                        return False
                    raise
            self._unlock(lease)
            return True

    def wait(self, key: int, seconds: float) -> None:
        """Blocks on the key's lock for at most one slice (``seconds`` at most); taken, it is let go at
        once. Returns early when the lock came free, or after the slice (the caller looks again)."""
        seconds = min(seconds, self._slice)
        lock = self.lock_id(key)
        start = time.monotonic()
        if self._pg:
            # Literals, not parameters (a DO block takes none): two integers.
            sql = (f"DO $oxicache$BEGIN PERFORM set_config('lock_timeout', '{max(1, math.ceil(seconds * 1000))}', "
                   f"true); PERFORM pg_advisory_lock({int(lock)}); PERFORM pg_advisory_unlock({int(lock)}); "
                   "EXCEPTION WHEN lock_not_available THEN NULL; END$oxicache$")
            holder, _ = self._once(sql, None, False)
            self.pool.give(holder)
            return
        holder, row = self._once(self._q_wait.sql, self._q_wait.args({"k": lock, "t": round(seconds, 3)}), True)
        self.pool.give(holder)
        if not (row and row[0]):
            # Timed out. A server that takes whole seconds only (GET_LOCK(name, 0.3) as 0) returns at once:
            # wait the slice out here, so the caller does not poll the server in a loop.
            left = seconds - (time.monotonic() - start)
            if left > 0.05:
                time.sleep(left)

    # ---- upkeep ----------------------------------------------------------------------------------
    def close(self) -> None:
        """Closes the idle lease connections (a held lease keeps its own until it ends)."""
        self.pool.close(dispose=False)

    def _forked(self) -> None:
        """In a forked child: the parent's leases and connections are the parent's. The child's copies of
        a held lease's socket are pointed at ``/dev/null``: the server then lets go of the lock when the
        parent's connection ends (the parent killed), not when the last child that copied it exits too;
        the driver's objects stay valid, and whatever the child might send on them goes nowhere."""
        self._monitor = Monitor()
        held, self._held = list(self._held.values()), {}
        for lease in held:
            _let_go_in_child(lease.holder)
        self.pool.forget(dispose=False)


def _let_go_in_child(holder: Checkout) -> None:
    fds = {holder.fd}
    try:
        fileno = getattr(holder.dbapi, "fileno", None)  # psycopg's connection
        sock = getattr(holder.dbapi, "_sock", None)  # PyMySQL's socket (it has no public accessor)
        for source in (fileno, getattr(sock, "fileno", None)):
            if callable(source):
                fds.add(int(source()))
    except Exception:  # noqa: BLE001, S110 - a closed connection has no descriptor left to copy
        pass
    null = os.open(os.devnull, os.O_RDWR)
    try:
        for fd in fds:
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.dup2(null, fd, inheritable=False)
    finally:
        os.close(null)
