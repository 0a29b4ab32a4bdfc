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
The cost is two atomic operations on entry and one on exit.
"""

from __future__ import annotations

import os

from oxicache._core import ForkGate

__all__ = ["SQLITE_GATE", "ForkGate"]

# Native (rust/forkgate.rs) so that a KeyboardInterrupt can never land half-way through entering or
# leaving it: every instance is the one process-wide gate.
SQLITE_GATE = ForkGate()

if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=SQLITE_GATE.before_fork,
        after_in_parent=SQLITE_GATE.after_fork_in_parent,
        after_in_child=SQLITE_GATE.after_fork_in_child,
    )
