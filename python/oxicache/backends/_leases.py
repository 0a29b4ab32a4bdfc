"""Leases on keys held as locks, for ``memoize(shared_flight=True)`` on the backends without a lease
server: file locks (DiskCache, JsonCache, DatabaseCache on a SQLite file) and, for a store private to one
cache (DatabaseCache on ``:memory:``), a table in the process. PostgreSQL and MySQL locks are in
``_sqlleases``; RedisCache's leases expire on the server (``rediscache``).

A lock is not a lease with an expiry: it is held while its holder lives, and the operating system (or the
server) lets go of it the moment the holder dies. So a leader killed mid-call is taken over at once, not
after ``lease`` seconds; ``lease`` only sets how often the leader checks that it still holds its key.

File locks (``FileLeases``): the lease on a key is an exclusive ``flock`` on ``<folder>/<prefix><key
hex>.lock``, taken without blocking by the leader on a descriptor of its own.

- ``flock``, never ``fcntl``/``lockf`` record locks: those belong to the process, so two caches on one
  folder in one process would not exclude each other, and closing *any* descriptor of a file drops all of
  the process's record locks on it. A ``flock`` belongs to the open file description: separate ``open()``
  calls exclude each other, in one process or many, and only closing the last descriptor of it (or the
  process's death) lets go. No lock is ever taken on a store's own database file.
- Lock files do not pile up: the holder removes its file *before* letting go of its lock, and a caller
  that locks a file checks that the name still leads to it (same inode), else it opens the name again.
  So a file is removed only by a process holding its lock, nobody ever holds the lock of a file that is
  no longer the one under its name, and a file exists only while its key is leased, or after its leader
  died (the next leader of that key, a waiter, or the next cache opened on the folder removes it).
- Waiting blocks on the lock itself: a helper thread per waited key blocks in ``flock`` and wakes the
  waiters when it gets the lock (and lets go of it at once); the waiters wait on a ``Monitor`` with a
  timeout, so a wait is bounded and Ctrl-C interrupts it. A helper still blocked when its waiters gave up
  stays until the leader lets go (one thread and one descriptor per such key).
- Local file systems only: ``flock`` on NFS is emulated with record locks (per process) or not shared
  between hosts at all, so file-lock leases coordinate the processes of one host.
- A forked child closes its copies of the descriptors (without unlocking: the parent keeps its locks).
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from typing import Callable, Protocol

from oxicache._core import Monitor
from oxicache.backends._fork import in_child_of
from oxicache.base import BaseCache
from oxicache.durations import TTL, parse_ttl

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["FILE_LOCKS", "FileLeases", "LockLeasedCache", "Locks", "LocalLeases", "lease_options"]

#: Whether this platform has ``flock`` (POSIX): the file backends grant leases only then.
FILE_LOCKS = fcntl is not None

_OPEN = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
_ATTEMPTS = 8  # a name whose file keeps being replaced under us: give up (a miss computed without a lease)


def new_token() -> str:
    """A new lease's token (``secrets`` is imported here, on the first lease: a cache that never leases
    never loads it, nor the hmac and OpenSSL modules it brings)."""
    import secrets

    return secrets.token_hex(8)


class Locks(Protocol):
    """What ``LockLeasedCache`` needs of its locks (``FileLeases``, ``LocalLeases``, ``_sqlleases.ServerLeases``)."""

    def acquire(self, key: int, seconds: float) -> str | None: ...
    def renew(self, key: int, token: str, seconds: float) -> bool: ...
    def release(self, key: int, token: str) -> None: ...
    def wait(self, key: int, seconds: float) -> None: ...


class LockLeasedCache(BaseCache):
    """A backend whose leases are locks held by the leader (``self._leases``): the lease primitives but
    ``_set_leased``, which each backend writes with its own way of storing."""

    _leases: Locks

    def _lease_acquire(self, key: int, seconds: float) -> str | None:
        return self._leases.acquire(key, seconds)

    def _lease_renew(self, key: int, token: str, seconds: float) -> bool:
        return self._leases.renew(key, token, seconds)

    def _lease_release(self, key: int, token: str) -> None:
        self._leases.release(key, token)

    def _lease_wait(self, key: int, seconds: float) -> None:
        self._leases.wait(key, seconds)


def lease_options(owner: str, shared_flight: object, lease: TTL) -> tuple[bool, float]:
    """``shared_flight=`` and ``lease=`` of a backend's constructor, checked as RedisCache checks them."""
    if not isinstance(shared_flight, bool):
        msg = f"{owner} shared_flight must be True or False, got {shared_flight!r}"
        raise TypeError(msg)
    try:
        seconds = parse_ttl(lease, what="lease")
    except ValueError:
        seconds = None
    if seconds is None:
        msg = f"{owner} lease={lease!r} is not a positive, finite duration; give seconds, a timedelta or a string like '30s'"
        raise ValueError(msg)
    return shared_flight, seconds


def _same(fd: int, path: str) -> bool:
    """Whether ``path`` still names the file open as ``fd``."""
    try:
        held, named = os.fstat(fd), os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    return (held.st_ino, held.st_dev) == (named.st_ino, named.st_dev)


class _Held:
    """A lock file open (and locked) by this process: its descriptor, closed once (-1 afterwards)."""

    __slots__ = ("fd", "path")

    def __init__(self, fd: int, path: str) -> None:
        self.fd, self.path = fd, path

    def close(self) -> None:
        """Closes the descriptor: the lock goes with it (unless a forked child still has a copy)."""
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)

    def release(self) -> None:
        """Removes the file if it is still the one under its name, then lets go of the lock: whoever was
        blocked on it finds the name gone and opens it again."""
        try:
            if self.fd >= 0 and _same(self.fd, self.path):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path)
        finally:
            self.close()


class _Watch:
    """A helper thread blocked on a key's lock for the callers waiting on it."""

    __slots__ = ("done", "held", "thread")

    def __init__(self) -> None:
        self.done = False
        self.held: _Held | None = None  # the helper's descriptor while it has one (closed in a forked child)
        self.thread: threading.Thread | None = None


class FileLeases:
    """Leases on keys as ``flock`` locks on files in ``folder`` (created when first needed), named
    ``<prefix><key hex>.lock``. The lease primitives of a backend call these; see the module's docstring."""

    def __init__(self, folder: str, prefix: str = "") -> None:
        self.folder, self.prefix = folder, prefix
        self._names = re.compile(re.escape(prefix) + r"[0-9a-f]{32}\.lock")
        self._monitor = Monitor()
        self._held: dict[str, _Held] = {}  # token -> the lock it stands for
        self._watches: dict[int, _Watch] = {}  # key -> its helper
        self.sweep()
        in_child_of(self, FileLeases._forked)

    def path(self, key: int) -> str:
        return os.path.join(self.folder, f"{self.prefix}{key:032x}.lock")

    def _open(self, path: str) -> int:
        try:
            return os.open(path, _OPEN, 0o666)
        except FileNotFoundError:
            os.makedirs(self.folder, exist_ok=True)
            return os.open(path, _OPEN, 0o666)

    # ---- the lease primitives ---------------------------------------------------------------------
    def acquire(self, key: int, seconds: float) -> str | None:
        """A token for the key's lock when nobody holds it (never blocks), else None."""
        path = self.path(key)
        for _ in range(_ATTEMPTS):
            held = _Held(self._open(path), path)
            kept = False
            try:
                try:
                    fcntl.flock(held.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return None  # another leader holds it
                if not _same(held.fd, path):
                    continue  # its holder removed it as it let go: lock the file under the name now
                token = new_token()
                with self._monitor:
                    self._held[token] = held
                kept = True
                return token
            finally:
                if not kept:
                    held.close()
        return None

    def renew(self, key: int, token: str, seconds: float) -> bool:
        """True while the token's lock is held on the file under the key's name (a lock lasts as long
        as its holder: only a lock file removed or replaced from outside loses it)."""
        held = self._held.get(token)
        return held is not None and held.fd >= 0 and _same(held.fd, held.path)

    def release(self, key: int, token: str) -> None:
        with self._monitor:
            held = self._held.pop(token, None)
        if held is not None:
            held.release()

    def store_then_release(self, key: int, token: str, store: Callable[[], None]) -> bool:
        """``store()`` if the token still holds the key's lock, then lets go of it; False, nothing
        stored, when it does not. A store that raises lets go of the lock too."""
        with self._monitor:
            held = self._held.pop(token, None)
        if held is None:
            return False
        try:
            if held.fd < 0 or not _same(held.fd, held.path):
                return False
            store()
            return True
        finally:
            held.release()

    def wait(self, key: int, seconds: float) -> None:
        """Returns when the key's lock was free at some point since the call (or was never held), or
        after ``seconds``."""
        deadline = time.monotonic() + seconds
        start = None
        with self._monitor:
            watch = self._watches.get(key)
            if watch is None or watch.done or watch.thread is None or not watch.thread.is_alive():
                watch = self._watches[key] = _Watch()
                start = watch.thread = threading.Thread(target=self._watch, args=(key, watch),
                                                        name="oxicache-lease-watch", daemon=True)
        if start is not None:
            start.start()  # (a helper that never started is replaced by the next wait)
        with self._monitor:
            while not watch.done:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._monitor.wait(remaining)

    def _watch(self, key: int, watch: _Watch) -> None:
        """The helper: blocks on the key's lock until whoever holds it lets go, then lets go at once (a
        file still under its name, left by a dead leader or just created here, is removed first)."""
        path = self.path(key)
        try:
            held = watch.held = _Held(self._open(path), path)
            try:
                fcntl.flock(held.fd, fcntl.LOCK_EX)
            except BaseException:
                held.close()  # not locked: never remove a file someone else may hold
                raise
            held.release()
        except OSError:
            pass  # a folder that cannot be written: the waiters time out and compute without a lease
        finally:
            with self._monitor:
                watch.done = True
                if self._watches.get(key) is watch:
                    del self._watches[key]
                self._monitor.notify_all()

    # ---- upkeep ----------------------------------------------------------------------------------
    def sweep(self) -> int:
        """Removes the lock files nobody holds (left by leaders that died); returns how many."""
        if not FILE_LOCKS:
            return 0
        try:
            names = [n for n in os.listdir(self.folder) if self._names.fullmatch(n)]
        except OSError:
            return 0  # no folder yet
        removed = 0
        for name in names:
            path = os.path.join(self.folder, name)
            try:
                held = _Held(os.open(path, _OPEN & ~os.O_CREAT), path)
            except OSError:
                continue
            try:
                fcntl.flock(held.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                removed += _same(held.fd, path)
                held.release()
            except OSError:
                continue  # held: a live leader's
            finally:
                held.close()
        return removed

    def _forked(self) -> None:
        """In a forked child: the parent's locks stay the parent's. The child closes its copies of their
        descriptors (closing a copy lets go of nothing) and forgets them; the helpers did not follow."""
        self._monitor = Monitor()
        for held in [*self._held.values(), *(w.held for w in self._watches.values() if w.held is not None)]:
            with contextlib.suppress(OSError):
                held.close()
        self._held = {}
        self._watches = {}


class LocalLeases:
    """Leases within this process, for a store no other process can open (a ``:memory:`` SQLite
    database): a table of held keys under a ``Monitor``."""

    def __init__(self) -> None:
        self._monitor = Monitor()
        self._held: dict[int, str] = {}  # key -> token
        in_child_of(self, LocalLeases._forked)

    def acquire(self, key: int, seconds: float) -> str | None:
        token = new_token()
        with self._monitor:
            if key in self._held:
                return None
            self._held[key] = token
        return token

    def renew(self, key: int, token: str, seconds: float) -> bool:
        return self._held.get(key) == token

    def release(self, key: int, token: str) -> None:
        with self._monitor:
            if self._held.get(key) == token:
                del self._held[key]
                self._monitor.notify_all()

    def store_then_release(self, key: int, token: str, store: Callable[[], None]) -> bool:
        if self._held.get(key) != token:
            return False
        try:
            store()  # only this token's holder removes it from the table: it is still held here
            return True
        finally:
            self.release(key, token)

    def wait(self, key: int, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        with self._monitor:
            while key in self._held:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._monitor.wait(remaining)

    def _forked(self) -> None:
        self._monitor = Monitor()
        self._held = {}  # the parent's leaders are not the child's threads
