"""Single-flight across processes and hosts: a miss computed once while its leader lives.

``memoize(shared_flight=True)`` on a backend that grants leases (``Capabilities.leases``: RedisCache).
Within a process, the threads missing one key already run the function once (``SingleFlight``); the one
that runs it calls ``lead`` here, which extends that to every process sharing the store:

1. Take the key's lease (``_lease_acquire``: one round trip). Granted: look the key up again (one more
   round trip: the previous leader may have stored the value and released its lease between this call's
   lookup and the grant; then the value is taken and the lease released). Still missing: run the
   function, renewing the lease every third of its length from a helper thread, then store the value
   and release the lease in one step (``_set_leased``), which does nothing if the lease was lost
   meanwhile (a leader taken for dead never overwrites what the next leader stored). A function that
   raises releases the lease, so the waiters do not wait for it to expire.
2. Not granted: another process leads. Look the key up again (it may just have been stored), then wait
   for the lease to be released (``_lease_wait``: a notification where the store can send one, checked at
   least twice a second, so a leader that died is noticed when its lease expires), look again, and try
   to take the lease again: a waiter that outlives a dead leader's lease computes.
3. Waits are bounded by the function's ``wait_timeout`` (after it, the call computes without a lease)
   and are made of short blocking calls, so Ctrl-C interrupts them.

A backend that fails (a lost connection) is handled by the cache's ``on_backend_error`` as on any
lookup: under "warn" the call computes at once, without a lease, and warns once (a lookup that failed
already skips the lease; a failed lease step makes the failing store quiet).
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from oxicache.base import EngineView
    from oxicache.memo.engine import PythonPending

__all__ = ["lead"]


def lead(view: EngineView, pending: PythonPending, compute: Callable[[], Any], wait: float, lease: float) -> Any:
    """The value of the call ``pending`` stands for: computed here under the key's lease, or read from the
    store once the process holding the lease has stored it."""
    if pending.warned:  # the lookup failed and its policy was applied: compute at once, without a lease
        return compute()
    key = pending.probe.key
    memo = pending.memo
    what = f"{memo.cache_name} ran without a shared-flight lease"
    deadline = time.monotonic() + wait
    while True:
        taken = memo.read(lambda: [view.lease_acquire(key, lease)], what)
        if taken is None:  # the backend failed: its policy was applied, so compute without a lease
            return _without_lease(pending, compute)
        token = taken[0]
        if token is not None:
            # A free lease may mean the last leader has just stored the value and released it, after this
            # call's lookup missed: look again before computing it a second time.
            found, value = pending.recheck()
            if found:
                _release(view, key, token)
                return value
            return _compute_leased(view, pending, compute, key, token, lease)
        found, value = pending.recheck()
        if found:
            return value
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return compute()  # waited wait_timeout for another process: compute here
        if memo.read(lambda: [view.lease_wait(key, min(remaining, lease))], what) is None:
            return _without_lease(pending, compute)
        found, value = pending.recheck()
        if found:
            return value


def _without_lease(pending: PythonPending, compute: Callable[[], Any]) -> Any:
    """The backend failed and its policy was applied (one warning under "warn"): compute now, without a
    lease. The call's store, failing for the same reason, is then counted without a second warning, as
    when the lookup fails (one warning per call), and no further round trip waits out the failure again."""
    pending.warned = True
    return compute()


def _compute_leased(view: EngineView, pending: PythonPending, compute: Callable[[], Any], key: int, token: str,
                    lease: float) -> Any:
    pending.token = token  # the store releases it along with storing (``PythonPending.store``)
    renewal = _Renewal(view, key, token, lease)
    try:
        return compute()
    finally:
        renewal.stop()
        if pending.token is not None:  # not released by a store: the function raised, or nothing was stored
            pending.token = None
            _release(view, key, token)


def _release(view: EngineView, key: int, token: str) -> None:
    try:
        view.lease_release(key, token)
    except Exception:  # noqa: BLE001 - the lease then expires on its own
        pass


class _Renewal:
    """Renews a lease every third of its length until stopped (a daemon thread: a process that exits
    or dies stops renewing, and its lease expires)."""

    def __init__(self, view: EngineView, key: int, token: str, seconds: float) -> None:
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(view, key, token, seconds),
                                        name="oxicache-lease-renewal", daemon=True)
        self._thread.start()

    def _run(self, view: EngineView, key: int, token: str, seconds: float) -> None:
        while not self._stopped.wait(seconds / 3):
            try:
                if not view.lease_renew(key, token, seconds):
                    return  # lost: the store will see it and store nothing
            except Exception:  # noqa: BLE001 - a failing server: try again; the lease may expire meanwhile
                continue

    def stop(self) -> None:
        self._stopped.set()
