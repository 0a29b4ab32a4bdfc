"""Helpers of the reliability matrix (tests/reliability/): ``watchdog`` and the ``expected_value`` oracle.

Import as ``from reliability_support import watchdog, expected_value`` (pytest puts this folder on
sys.path). The ``seed`` fixture lives in conftest.py.
"""

from __future__ import annotations

import faulthandler
import hashlib
import sys
import threading
from contextlib import contextmanager
from typing import Iterator


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
