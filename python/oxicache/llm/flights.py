"""Identical concurrent streams share one upstream stream (memoize's single-flight covers plain calls only).

The first ``stream`` call of a key opens the memoized stream (a live request on a miss, a replay on a
hit); calls of the same key made while it is still going join it. Each member reads the shared list
of chunks at its own pace, and whichever member needs a chunk nobody has read yet pulls it from the
upstream, so the stream goes on as long as one member reads it. The members that joined sent nothing:
their pieces are flagged cached. When the upstream fails, every member still reading gets the same
exception; when all members leave early, the upstream is closed (and, as for one stream, nothing is
stored). Async flights are per event loop, since an async stream belongs to the loop that opened it.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, AsyncIterator, Callable, Iterator

__all__ = ["AsyncStreamFlights", "StreamFlights"]

#: One chunk of a shared stream and whether this member was served without sending the request.
Piece = tuple[dict[str, Any], bool]


def _shared(error: BaseException) -> BaseException:
    # an Exception is every member's, as with memoize's waiters; an interrupt (Ctrl-C, a cancelled task)
    # belongs to the thread or task it hit, so the others get an error that says what happened
    if isinstance(error, Exception):
        return error
    return RuntimeError(f"the shared stream was interrupted in another caller ({type(error).__name__}); call again")


class _Flight:
    __slots__ = ("call", "done", "error", "items", "members", "open", "upstream")

    def __init__(self, open_: Callable[[], tuple[Any, Any]]) -> None:
        self.open = open_  # opens the memoized stream: (iterator of chunk dicts, its Call)
        self.upstream: Any = None
        self.call: Any = None
        self.items: list[dict[str, Any]] = []
        self.done = False
        self.error: BaseException | None = None
        self.members = 0

    def cached(self, leader: bool) -> bool:
        return not (leader and self.call is not None and self.call.sent)


class StreamFlights:
    """The streams in progress of one ``LLM``, by key, shared between threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[Any, tuple[_Flight, threading.Lock]] = {}

    def join(self, key: Any, open_: Callable[[], tuple[Iterator[dict[str, Any]], Any]]) -> Iterator[Piece]:
        """The pieces of the stream of ``key``, opening it with ``open_`` unless one is in progress."""
        with self._lock:
            found = self._flights.get(key)
            leader = found is None
            if found is None:
                found = self._flights[key] = (_Flight(open_), threading.Lock())
            found[0].members += 1
        return self._follow(key, found[0], found[1], leader)

    def _forget(self, key: Any, flight: _Flight) -> None:
        with self._lock:
            if key in self._flights and self._flights[key][0] is flight:
                del self._flights[key]

    def _follow(self, key: Any, flight: _Flight, lock: threading.Lock, leader: bool) -> Iterator[Piece]:
        pos = 0
        try:
            while True:
                with lock:
                    if pos == len(flight.items) and not flight.done:
                        self._pull(key, flight)
                    if pos < len(flight.items):
                        item = flight.items[pos]
                    elif flight.error is not None:
                        raise flight.error
                    else:
                        return
                pos += 1
                yield item, flight.cached(leader)
        finally:
            with self._lock:
                flight.members -= 1
                last = flight.members == 0
            if last and not flight.done:
                self._forget(key, flight)
                with lock:
                    flight.done = True
                    close = getattr(flight.upstream, "close", None)
                    if close is not None:
                        close()  # everyone left early: the recording stops and stores nothing

    def _pull(self, key: Any, flight: _Flight) -> None:
        try:
            if flight.upstream is None:
                flight.upstream, flight.call = flight.open()
            flight.items.append(next(flight.upstream))
        except StopIteration:
            flight.done = True
            self._forget(key, flight)
        except BaseException as err:
            flight.done, flight.error = True, _shared(err)
            self._forget(key, flight)
            if flight.error is not err:
                raise


class AsyncStreamFlights:
    """``StreamFlights`` for ``astream``: flights by event loop and key."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[tuple[Any, Any], tuple[_Flight, asyncio.Lock]] = {}

    def join(self, key: Any, open_: Callable[[], tuple[AsyncIterator[dict[str, Any]], Any]]) -> AsyncIterator[Piece]:
        """The pieces of the stream of ``key`` in the running loop, opening it unless one is in progress."""
        where = (asyncio.get_running_loop(), key)
        with self._lock:
            found = self._flights.get(where)
            leader = found is None
            if found is None:
                found = self._flights[where] = (_Flight(open_), asyncio.Lock())
            found[0].members += 1
        return self._follow(where, found[0], found[1], leader)

    def _forget(self, where: tuple[Any, Any], flight: _Flight) -> None:
        with self._lock:
            if where in self._flights and self._flights[where][0] is flight:
                del self._flights[where]

    async def _follow(self, where: tuple[Any, Any], flight: _Flight, lock: asyncio.Lock, leader: bool) -> AsyncIterator[Piece]:
        pos = 0
        try:
            while True:
                async with lock:
                    if pos == len(flight.items) and not flight.done:
                        await self._pull(where, flight)
                    if pos < len(flight.items):
                        item = flight.items[pos]
                    elif flight.error is not None:
                        raise flight.error
                    else:
                        return
                pos += 1
                yield item, flight.cached(leader)
        finally:
            with self._lock:
                flight.members -= 1
                last = flight.members == 0
            if last and not flight.done:
                self._forget(where, flight)
                flight.done = True
                aclose = getattr(flight.upstream, "aclose", None)
                if aclose is not None:
                    await aclose()

    async def _pull(self, where: tuple[Any, Any], flight: _Flight) -> None:
        try:
            if flight.upstream is None:
                flight.upstream, flight.call = flight.open()
            flight.items.append(await flight.upstream.__anext__())
        except StopAsyncIteration:
            flight.done = True
            self._forget(where, flight)
        except BaseException as err:
            flight.done, flight.error = True, _shared(err)
            self._forget(where, flight)
            if flight.error is not err:
                raise
