"""Single-flight across processes and hosts: a miss computed once while its leader lives.

``memoize(shared_flight=True)`` on a backend that grants leases (``Capabilities.leases``: RedisCache).
Within a process, the threads missing one key already run the function once (``SingleFlight``); the one
that runs it calls ``lead`` here, which extends that to every process sharing the store:

1. Take the key's lease and read the key in the same step (``_lease_take``: one round trip on Redis; the
   previous leader may have stored the value and released its lease between this call's lookup and the
   grant: then the value is taken and the lease released). Still missing and granted: run the
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

The protocol is written once, as a generator of steps (``_protocol``); ``lead`` runs its steps for a plain
function, ``alead`` for a coroutine function (the store's calls in a worker thread, the function awaited
on the loop).

A backend that fails (a lost connection) is handled by the cache's ``on_backend_error`` as on any
lookup: under "warn" the call computes at once, without a lease, and warns once (a lookup that failed
already skips the lease; a failed lease step makes the failing store quiet).
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Generator, Optional

from oxicache.callsite import to_thread

if TYPE_CHECKING:
    from oxicache.base import EngineView
    from oxicache.memo.engine import PythonPending

__all__ = ["alead", "lead"]

#: A step of the protocol: a blocking call to the store to make (its result is sent back), or None: run
#: the function (its value is sent back, its exception thrown in).
Step = Optional[Callable[[], Any]]


def lead(view: EngineView, pending: PythonPending, compute: Callable[[], Any], wait: float, lease: float) -> Any:
    """The value of the call ``pending`` stands for: computed here under the key's lease, or read from the
    store once the process holding the lease has stored it."""
    steps = _protocol(view, pending, wait, lease)
    step = next(steps)
    while True:
        try:
            result = compute() if step is None else step()
        except BaseException as err:  # into the protocol, which releases the lease and re-raises
            try:
                step = steps.throw(err)
            except StopIteration as done:
                return done.value
            continue
        try:
            step = steps.send(result)
        except StopIteration as done:
            return done.value


async def alead(view: EngineView, pending: PythonPending, compute: Callable[[], Awaitable[Any]], wait: float,
                lease: float) -> Any:
    """``lead`` for a coroutine function: the store's blocking calls run in a worker thread, each wait on a
    lease at most one second long, so a cancelled call leaves no thread waiting for long."""
    steps = _protocol(view, pending, wait, lease, slice_seconds=1.0)
    step = next(steps)
    while True:
        try:
            result = await (compute() if step is None else to_thread(step))
        except BaseException as err:
            try:
                step = steps.throw(err)
            except StopIteration as done:
                return done.value
            continue
        try:
            step = steps.send(result)
        except StopIteration as done:
            return done.value


def _protocol(view: EngineView, pending: PythonPending, wait: float, lease: float,
              slice_seconds: float = float("inf")) -> Generator[Step, Any, Any]:
    """The protocol (see the module's docstring), written once as steps for both drivers."""
    if pending.warned:  # the lookup failed and its policy was applied: compute at once, without a lease
        return (yield None)
    key = pending.probe.key
    memo = pending.memo
    what = f"{memo.cache_name} ran without a shared-flight lease"
    deadline = time.monotonic() + wait
    while True:
        # The lease, and the entry as it is now in the same step: a free lease may mean the last leader
        # has just stored the value and released it, after this call's lookup missed.
        taken = yield lambda: memo.read(lambda: [view.lease_take(key, lease)], what)
        if taken is None:  # the backend failed: its policy was applied, so compute without a lease
            pending.warned = True  # and the store, failing for the same reason, is counted, not warned
            return (yield None)
        token, entry = taken[0]
        # (under refresh() the stored value is being replaced; one past its freshness is no answer)
        if entry is not None and not pending.refresh and pending.acceptable(entry):
            if token is not None:
                yield lambda: _release(view, key, token)
            return entry.value
        if token is not None:
            return (yield from _compute_leased(view, pending, key, token, lease))
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return (yield None)  # waited wait_timeout for another process: compute here
        seconds = min(remaining, lease, slice_seconds)
        if (yield lambda: memo.read(lambda: [view.lease_wait(key, seconds)], what)) is None:
            pending.warned = True
            return (yield None)
        found, value = yield pending.recheck
        if found:
            return value


def _compute_leased(view: EngineView, pending: PythonPending, key: int, token: str,
                    lease: float) -> Generator[Step, Any, Any]:
    pending.token = token  # the store releases it along with storing (``PythonPending.store``)
    renewal = _Renewal(view, key, token, lease)
    try:
        return (yield None)
    finally:
        renewal.stop()
        if pending.token is not None:  # not released by a store: the function raised, or nothing was stored
            pending.token = None
            yield lambda: _release(view, key, token)


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
