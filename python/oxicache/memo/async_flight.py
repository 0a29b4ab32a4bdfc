"""Single-flight for coroutine functions: concurrent misses of one key in one event loop await the
first caller's result instead of running the coroutine again (aiocache #471, cachetools #294).

The rules are those of the threads' single-flight (``rust/store/flight.rs``): an exception the leader
raises is every waiter's; a leader that is cancelled or interrupted hands the key over to a waiter; a wait
is bounded (``wait``), after which the waiter takes the key over; and a call made while computing its own
key (the same task recursing, or a task it started) computes instead of waiting on itself.

State is kept per running loop (weakly), so a decorated function works across successive
``asyncio.run()`` calls; nothing is ever bound to a loop that has closed.
"""

from __future__ import annotations

import contextvars
import functools
import weakref
from oxicache._core import DEFAULT_WAIT_TIMEOUT

TYPE_CHECKING = False  # not typing's: `import oxicache` does not load typing (oxicache/_light.py)
if TYPE_CHECKING:
    import asyncio
    from typing import Any, Awaitable, Callable, Hashable

__all__ = ["AsyncFlights"]

# Set as a cancelled or interrupted leader's outcome: its waiters go round again, and one takes over.
_RETRY: Any = object()

# The (flights, key) pairs whose computation the current task is inside. Tasks started by the computation
# inherit it, so they too compute the key instead of waiting for the computation that awaits them.
_computing: contextvars.ContextVar[frozenset[tuple[AsyncFlights, Hashable]]] = contextvars.ContextVar(
    "oxicache_computing", default=frozenset()
)


class AsyncFlights:
    def __init__(self) -> None:
        # Per loop: key -> (the flight's future, the leader's task).
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Hashable, tuple[asyncio.Future[Any], Any]]] = (
            weakref.WeakKeyDictionary()
        )
        # Finished flights, all loops. A caller that read it before a lookup it had to await, and finds it
        # changed when it takes the lead, rechecks the cache: another task may have stored the value.
        self.finished = 0

    async def run(
        self,
        key: Hashable,
        compute: Callable[[], Awaitable[Any]],
        before: int | None = None,
        recheck: Callable[[], Awaitable[tuple[bool, Any]]] | None = None,
        wait: float = DEFAULT_WAIT_TIMEOUT,
    ) -> Any:
        """``await compute()`` unless a call with the same key is already running in this loop; then wait
        for it (at most ``wait`` seconds) and return its value (or raise its exception).

        An interrupt can land between any two bytecodes, leaving a flight that nobody resolves (its
        leader's task died first) or one resolved but not retired: a waiter also watches the leader's task,
        and a flight found resolved (finished flights are retired before any other task runs) or whose
        task is gone is taken for stale and replaced, never waited on or answered from."""
        if (self, key) in _computing.get():
            return await compute()  # recursion within the key's own computation
        import asyncio  # here, not at the top: `import oxicache` does not load asyncio (and ssl)

        loop = asyncio.get_running_loop()
        running = self._by_loop.setdefault(loop, {})
        stale = None  # a flight waited on past the bound: if it still holds the key, this call takes it over
        while (current := running.get(key)) is not None and current is not stale:
            flight, owner = current
            if flight.done() or owner.done():
                if running.get(key) is current:
                    del running[key]  # left behind by an interrupted leader
                continue
            # asyncio.wait neither cancels what it waits on when this waiter is cancelled nor raises on
            # timeout.
            await asyncio.wait((flight, owner), timeout=wait, return_when=asyncio.FIRST_COMPLETED)
            if flight.done():
                outcome = flight.result()  # the leader's exception is raised here
                if outcome is not _RETRY:
                    return outcome
            elif not owner.done():
                stale = current  # unless another waiter took over first: then this one follows it
        flight = loop.create_future()
        entry = (flight, asyncio.current_task())
        # Retired when resolved, also by the loop: the finally below does it at once, and this callback
        # still does if an interrupt cuts that finally short.
        flight.add_done_callback(functools.partial(_retire, running, key, entry))
        token = None
        try:
            running[key] = entry
            token = _computing.set(_computing.get() | {(self, key)})
            found, value = (False, None)
            if recheck is not None and before != self.finished:
                found, value = await recheck()
            if not found:
                value = await compute()
        except Exception as err:
            flight.set_exception(err)
            flight.exception()  # retrieved here: waiters re-raise it, and asyncio logs no "never retrieved"
            raise
        except BaseException:
            flight.set_result(_RETRY)  # cancelled or interrupted: not the waiters' error, one of them takes over
            raise
        else:
            flight.set_result(value)
            return value
        finally:
            if not flight.done():
                flight.set_result(_RETRY)  # interrupted before its outcome was published: hand over
            if token is not None:
                _computing.reset(token)
            self.finished += 1
            _retire(running, key, entry)


def _retire(running: dict[Hashable, Any], key: Hashable, entry: Any, _future: Any = None) -> None:
    """Removes a flight from its loop's table, unless another flight replaced it already."""
    if running.get(key) is entry:
        del running[key]
