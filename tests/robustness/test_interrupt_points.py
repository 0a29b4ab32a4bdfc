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
  default, MySQL in the slow run), during a new cache's first statement (the one that opens a connection);
- DiskCache's failed-write clean-up, with a second thread writing (a fixed interleaving).

Each test is ``xfail(strict=True, raises=AssertionError)`` while its defect stands (the reason says what
breaks); a fixed defect makes it XPASS, which fails until the mark is removed. A sweep that crashes or
hangs raises RuntimeError, which the marks do not excuse.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

import backends

LINES_CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "interrupt_lines_child.py")
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGUSR1 for the stacks of a hung sweep")


def run_child(args: list[str], timeout: float) -> tuple[int | None, str, str]:
    """(exit status or None when it overran, stdout, stderr) of the sweep child; an overrunning child gets
    SIGUSR1 (its thread stacks go to stderr), then SIGKILL."""
    proc = subprocess.Popen([sys.executable, LINES_CHILD, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
        return proc.returncode, out, err
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGUSR1)
        time.sleep(2)
        proc.kill()
        out, err = proc.communicate()
        return None, out, err



def sweep(name: str, config: dict | None = None, timeout: float = 600) -> list[str]:
    """The problems ``interrupt_lines_child.py <name>`` found. A child that crashes or hangs raises
    RuntimeError (not an AssertionError: the xfail marks below expect only the defects' assertion)."""
    code, out, err = run_child([name, json.dumps(config or {})], timeout)
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


@pytest.mark.xfail(strict=True, raises=AssertionError, reason=(
    "DatabaseCache's Pool and Watchdog (python/oxicache/backends/_sql.py) keep their state under "
    "`with threading.Condition`, whose __enter__/__exit__ are Python code: a KeyboardInterrupt at the entry "
    "of Condition.__exit__ leaves the lock held (every later statement waits forever: the pool's in _wait "
    "when it opens a connection; the Watchdog's, taken by every PostgreSQL/MySQL statement, for the whole "
    "process), one after the first block of Pool._wait leaves `opening` set (no connection is ever opened "
    "again), and one between taking a connection and its try block, or at the entry of Watchdog.arm/disarm "
    "or Pool.give, leaks the connection"))
@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", ["sqlite", "postgresql", pytest.param("mysql", marks=pytest.mark.slow)])
def test_database_pool_interrupted_at_every_point(name: str) -> None:
    cache = backends.make(name)
    spec = backends.SPECS[id(cache)]
    cache.close()
    problems = sweep("pool", {"spec": spec})
    assert problems == [], (f"{len(problems)} interrupt points leave {name}'s DatabaseCache wedged or leaking a "
                            f"connection:\n" + "\n".join(problems))


@pytest.mark.timeout(120)
def test_diskcache_interrupted_write_leaves_other_writes_alone() -> None:
    problems = sweep("disk_txn", timeout=60)
    assert problems == [], "\n".join(problems)
