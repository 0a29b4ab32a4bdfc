"""``SQLITE_GATE``: ``os.fork()`` waits until no SQLite statement of this process is running.

SQLite keeps the lock state of every open database file in process-wide tables. A child forked while
one of the parent's threads is inside a statement inherits those tables saying that a connection of
*this* process holds the file's write lock (or a WAL read mark); that connection does not exist in
the child, so it never releases it, and every connection the child opens on the file waits for it
until its busy timeout, forever with diskcache's ``retry=True`` (found by R21,
tests/reliability/test_r21_fork_safety.py). Between statements a connection holds only shared locks,
which a new connection in the child shares without waiting.

So every SQLite operation of DiskCache and of a file-backed DatabaseCache runs inside the gate
(``with SQLITE_GATE:``, many threads at once), and an at-fork hook closes the gate before the fork:
it waits for the operations inside to finish and holds new ones at the door until the fork is done.
The cost is one uncontended lock round trip on entry and one on exit.
"""

from __future__ import annotations

import os
import threading

__all__ = ["SQLITE_GATE", "ForkGate"]


class ForkGate:
    """Any number of threads inside at once; ``os.fork()`` (through the at-fork hooks) waits until
    none is, and keeps new ones out until it returns."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._inside = 0
        self._forking = 0  # the thread ident that is forking, or 0
        self._depth: threading.local = threading.local()

    def __enter__(self) -> None:
        depth = getattr(self._depth, "n", 0)
        if not depth:  # (nested, e.g. a statement inside a gated construction: already counted)
            with self._cond:
                while self._forking:
                    self._cond.wait()
                self._inside += 1
        self._depth.n = depth + 1  # only once in: an interrupted wait leaves nothing to undo

    def __exit__(self, *exc: object) -> None:
        self._depth.n -= 1
        if self._depth.n:
            return
        with self._cond:
            self._inside -= 1
            if not self._inside and self._forking:
                self._cond.notify_all()

    def before_fork(self) -> None:
        self._cond.acquire()  # held through the fork: no thread is half-way through enter/exit then
        if getattr(self._depth, "n", 0):  # os.fork() from inside a gated operation: cannot wait for itself
            return
        self._forking = threading.get_ident()
        while self._inside:
            self._cond.wait()

    def after_fork_in_parent(self) -> None:
        self._forking = 0
        self._cond.notify_all()
        self._cond.release()

    def after_fork_in_child(self) -> None:
        # The only thread left is the one that forked: only it can be inside, and nobody waits.
        self._cond = threading.Condition(threading.Lock())
        self._inside = 1 if getattr(self._depth, "n", 0) else 0
        self._forking = 0


SQLITE_GATE = ForkGate()

if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=SQLITE_GATE.before_fork,
        after_in_parent=SQLITE_GATE.after_fork_in_parent,
        after_in_child=SQLITE_GATE.after_fork_in_child,
    )
