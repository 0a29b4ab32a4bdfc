"""The SQL pools' drain at interpreter exit.

A daemon thread may be inside a driver's C code, with the GIL released, when the main thread finishes
and the process exits: PyMySQL sets up an OpenSSL context on every connect (TLS is preferred by
default), libpq does its TLS set-up and reads there, and the process's exit handlers tear OpenSSL down
under them. That crashed the interpreter (SIGSEGV in ``CRYPTO_THREAD_write_lock``, a daemon thread
connecting to MySQL as the process exited: about one exit in 200 in test_shutdown_runs.py).

So at exit (``atexit``, which runs while daemon threads still run normally) every pool stops opening
connections and handing out idle ones, and the exit waits, at most ``DRAIN_SECONDS``, until no connect
or statement is in flight; a daemon thread's next statement raises ``DatabaseConnectionError`` (a backend
error, handled as ``on_backend_error`` says). Then the interpreter finalizes as before: daemon threads
that take the GIL back are stopped by CPython, and none is inside a driver.
"""

from __future__ import annotations

import atexit
import threading
import time
import weakref
from typing import TYPE_CHECKING

from oxicache.backends._fork import in_child
from oxicache.errors import DatabaseConnectionError

if TYPE_CHECKING:
    from oxicache.backends._sql import Pool

#: The longest an exit waits for connects and statements in flight (a statement an interrupt dropped
#: on the floor, never handed back, would otherwise hold it up for good).
DRAIN_SECONDS = 1.0

_lock = threading.Lock()
_pools: weakref.WeakSet[Pool] = weakref.WeakSet()
_connecting = 0  # connects in flight, across pools
exiting = False  # read without the lock on the hot path (a stale read only delays the refusal by a call)


def _forked() -> None:
    """In a forked child: another thread may have held the lock at fork time; the child's exit is its own."""
    global _lock, _connecting, exiting
    _lock, _connecting, exiting = threading.Lock(), 0, False


in_child(_forked)


def register(pool: Pool) -> None:
    with _lock:
        _pools.add(pool)


def refuse() -> None:
    """Raises once the interpreter is exiting: no new connection or statement then."""
    if exiting:
        raise DatabaseConnectionError("the interpreter is exiting: DatabaseCache opens no connection and runs "
                                      "no statement any more (a daemon thread's call during shutdown)")


class Connecting:
    """Counts a connect in flight (``with Connecting():``); refuses one once the interpreter is exiting."""

    def __enter__(self) -> None:
        global _connecting
        with _lock:
            refuse()
            _connecting += 1

    def __exit__(self, *exc: object) -> None:
        global _connecting
        with _lock:
            _connecting -= 1


@atexit.register
def drain() -> None:
    """Stops every pool and waits (bounded) until no connect or statement is in flight."""
    global exiting
    with _lock:
        exiting = True
        pools = list(_pools)
    for pool in pools:
        pool.park_idle()
    deadline = time.monotonic() + DRAIN_SECONDS
    while time.monotonic() < deadline:
        with _lock:
            busy = _connecting > 0
        if not busy and not any(pool.in_use() for pool in pools):
            return
        time.sleep(0.002)  # the GIL goes to the threads finishing their statements
