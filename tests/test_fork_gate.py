"""The SQLite fork gate (oxicache.backends._forkgate): os.fork() waits for gated operations in other threads,
holds new ones until it returns, and does not wait for the forking thread's own."""

from __future__ import annotations

import os
import threading
import time

import pytest

from oxicache.backends._forkgate import SQLITE_GATE

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")


def fork_and_wait() -> None:
    pid = os.fork()
    if pid == 0:
        with SQLITE_GATE:  # the child's gate is open (and not waiting for threads it does not have)
            pass
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_fork_waits_for_an_operation_in_another_thread() -> None:
    inside, left = threading.Event(), threading.Event()

    def operation() -> None:
        with SQLITE_GATE:
            inside.set()
            time.sleep(0.3)
            left.set()

    t = threading.Thread(target=operation)
    t.start()
    inside.wait(10)
    fork_and_wait()
    assert left.is_set()  # the fork happened only after the operation left the gate
    t.join(10)


def test_fork_from_inside_the_gate_does_not_wait_for_itself() -> None:
    with SQLITE_GATE:
        with SQLITE_GATE:  # nested
            fork_and_wait()
    with SQLITE_GATE:  # still usable, counted correctly
        pass
    fork_and_wait()
