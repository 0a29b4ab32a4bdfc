"""Running a test body in several threads at once, with a watchdog and an optional fast GIL switch."""

from __future__ import annotations

import sys
import threading
from typing import Any, Callable, Sequence


def run_in_threads(
    target: Callable[..., Any], args_list: Sequence[tuple[Any, ...]], *, switch_interval: float | None = None, timeout: float = 30
) -> None:
    """Start one thread per args tuple, wait for all; fail if any is still running after `timeout`.

    `switch_interval` (seconds) makes the interpreter switch threads more often while they run, so races
    show up in a short test.
    """
    old = sys.getswitchinterval()
    if switch_interval is not None:
        sys.setswitchinterval(switch_interval)
    try:
        threads = [threading.Thread(target=target, args=args) for args in args_list]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout)
    finally:
        sys.setswitchinterval(old)
    assert not any(t.is_alive() for t in threads), "a thread hung"
