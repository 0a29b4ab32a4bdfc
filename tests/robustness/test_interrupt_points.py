"""Deterministic reproductions of the interrupt-safety defects: a KeyboardInterrupt raised at every point
of the Python code that keeps shared state, then checks that nothing is left wedged, leaked or stale.

The random storm of test_interrupt_injection.py lands interrupts wherever threads happen to be; it hits
the DiskCache defect below in most runs, but the others' windows (a few bytecodes each, on paths taken
once per connection or per flight) are too narrow for a storm of seconds. interrupt_lines_child.py
raises one KeyboardInterrupt at each line, and at the entry of each Python function called (where the
eval loop checks for Ctrl-C and asynchronous exceptions on every call, e.g. inside
``threading.Condition.__exit__`` before it releases its lock), of:

- ``AsyncFlights.run``, the coroutines' single-flight (a leader that returns, raises, or has a waiter);
- DatabaseCache's ``_statement``/``_take`` and its ``Pool`` and ``Watchdog`` (SQLite and PostgreSQL by
  default, MySQL in the slow run), during a new cache's first statement (the one that opens a connection).
  On the servers, where each point costs a connection, CI walks every other point, the odd or even ones
  by the day of the year, so two days cover them all; OXICACHE_POOL_WALK_STRIDE=1 walks every point;
- the same pool points with the interrupt's exception kept while the next calls run (as the interactive
  interpreter keeps the last uncaught one), SQLite;
- DiskCache's failed-write clean-up, with a second thread writing (a fixed interleaving).

Each test was ``xfail(strict=True, raises=AssertionError)`` while its defect stood; all are fixed: the
async flights watch their leader's task, the pool and watchdog lock is a native ``Monitor``, the pool's
opening turn is a ticket held weakly that also counts only while its thread is in ``Pool._wait`` (a kept
traceback keeps the ticket alive; the thread's stack is read by faulthandler), and DiskCache clears diskcache's transaction marker before its
ROLLBACK. A sweep that crashes or hangs raises RuntimeError.
"""

from __future__ import annotations

import json
import os
import sys
import time

import pytest

import backends
from child_process import run_child

LINES_CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "interrupt_lines_child.py")
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGUSR1 for the stacks of a hung sweep")


def sweep(name: str, config: dict | None = None, timeout: float = 600) -> list[str]:
    """The problems ``interrupt_lines_child.py <name>`` found. A child that crashes or hangs raises
    RuntimeError (not an AssertionError: the xfail marks below expect only the defects' assertion)."""
    code, out, err = run_child(LINES_CHILD, [name, json.dumps(config or {})], timeout)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if code != 0 or not lines:
        status = "did not finish" if code is None else f"exited {code}"
        raise RuntimeError(f"the {name} sweep {status}\n--- stdout ---\n{out}\n--- stderr ---\n{err[-8000:]}")
    report = json.loads(lines[-1])
    print(f"{name}: {len(report['problems'])} problems in {report['seconds']} s")
    return list(report["problems"])


@pytest.mark.timeout(300)
def test_async_single_flight_interrupted_at_every_point() -> None:
    problems = sweep("async_flight")
    assert problems == [], f"{len(problems)} interrupt points leave the async single-flight wedged or stale:\n" + \
        "\n".join(problems)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", ["sqlite", "postgresql", pytest.param("mysql", marks=pytest.mark.slow)])
def test_database_pool_interrupted_at_every_point(name: str) -> None:
    cache = backends.make(name)
    spec = backends.SPECS[id(cache)]
    cache.close()
    stride = 1 if name == "sqlite" else int(os.environ.get("OXICACHE_POOL_WALK_STRIDE", "2"))
    offset = time.gmtime().tm_yday % stride
    print(f"walking every {stride} point(s) from offset {offset}")
    problems = sweep("pool", {"spec": spec, "stride": stride, "offset": offset})
    assert problems == [], (f"{len(problems)} interrupt points leave {name}'s DatabaseCache wedged or leaking a "
                            f"connection:\n" + "\n".join(problems))


@pytest.mark.timeout(300)
def test_database_pool_interrupted_with_the_exception_kept() -> None:
    cache = backends.make("sqlite")
    spec = backends.SPECS[id(cache)]
    cache.close()
    problems = sweep("pool_kept", {"spec": spec})
    assert problems == [], (f"{len(problems)} interrupt points wedge the DatabaseCache while the interrupt's "
                            f"exception is kept:\n" + "\n".join(problems))


@pytest.mark.timeout(120)
def test_diskcache_interrupted_write_leaves_other_writes_alone() -> None:
    problems = sweep("disk_txn", timeout=60)
    assert problems == [], "\n".join(problems)
