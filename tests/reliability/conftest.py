"""Shared pieces of the reliability matrix (tests/reliability/, rows R1-R25 of the matrix).

- ``seed``: a per-test random seed, printed (``-s`` or the failure report shows it) and overridable with
  OXICACHE_SEED=<n> to replay a failure.
- ``watchdog(seconds)``: every concurrent test bounds its own run; a hang fails with the seed instead of
  waiting for pytest-timeout.
- ``expected_value(key, size)``: the independent oracle f(key) (sha256 of the key plus a deterministic
  payload), so an assertion catches another key's value, not only a wrong one.
"""

from __future__ import annotations

import faulthandler
import hashlib
import os
import random
import sys
import threading
from contextlib import contextmanager
from typing import Iterator

import pytest


@pytest.fixture
def seed(request: pytest.FixtureRequest) -> int:
    value = int(os.environ.get("OXICACHE_SEED") or random.SystemRandom().randrange(2**32))
    print(f"\n[{request.node.nodeid}] seed={value} (replay with OXICACHE_SEED={value})", file=sys.stderr)
    request.node.user_properties.append(("seed", value))
    return value


@contextmanager
def watchdog(seconds: float, what: str = "test") -> Iterator[threading.Event]:
    """Dumps every thread's stack and fails the test if the body is still running after ``seconds``.

    The body gets an Event it may poll to stop early; on timeout the event is set, the stacks go to stderr
    and the test fails when the body returns (a truly stuck body is then ended by pytest-timeout)."""
    expired = threading.Event()

    def fire() -> None:
        expired.set()
        print(f"\nwatchdog: {what} still running after {seconds}s; thread stacks:", file=sys.stderr)
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    try:
        yield expired
    finally:
        timer.cancel()
    assert not expired.is_set(), f"watchdog: {what} ran past {seconds}s"


def expected_value(key: object, size: int = 0) -> bytes:
    """f(key): the sha256 of the key's repr followed by ``size`` deterministic payload bytes."""
    digest = hashlib.sha256(repr(key).encode()).digest()
    if size <= 0:
        return digest
    payload = (digest * (size // len(digest) + 1))[:size]
    return digest + payload
