"""Single-flight for coroutine functions: concurrent misses of one key in one event loop await the
first caller's result instead of running the coroutine again (aiocache #471, cachetools #294).

State is kept per running loop (weakly), so a decorated function works across successive
``asyncio.run()`` calls; nothing is ever bound to a loop that has closed.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any, Awaitable, Callable, Hashable

__all__ = ["AsyncFlights"]

# Set as a cancelled leader's outcome: its waiters go round again, and one of them takes over.
_RETRY: Any = object()


class AsyncFlights:
    def __init__(self) -> None:
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Hashable, asyncio.Future[Any]]] = (
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
    ) -> Any:
        """``await compute()`` unless a call with the same key is already running in this loop; then wait
        for it and return its value (or raise its exception)."""
        loop = asyncio.get_running_loop()
        running = self._by_loop.setdefault(loop, {})
        while (leader := running.get(key)) is not None:
            outcome = await asyncio.shield(leader)  # a waiter's own cancellation must not cancel the leader
            if outcome is not _RETRY:
                return outcome
        flight: asyncio.Future[Any] = loop.create_future()
        running[key] = flight
        try:
            found, value = (False, None)
            if recheck is not None and before != self.finished:
                found, value = await recheck()
            if not found:
                value = await compute()
        except asyncio.CancelledError:
            flight.set_result(_RETRY)
            raise
        except BaseException as err:
            flight.set_exception(err)
            flight.exception()  # retrieved here: waiters re-raise it, and asyncio logs no "never retrieved"
            raise
        else:
            flight.set_result(value)
            return value
        finally:
            self.finished += 1
            if running.get(key) is flight:
                del running[key]
