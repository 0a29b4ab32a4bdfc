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

__all__ = ["AsyncStreamFlights", "Piece", "StreamFlights", "ashared", "shared"]

#: One chunk of a stream: its JSON data, whether this member was served without sending the request, and
#: the SDK's own chunk object for the member that sent it (None for the others and for replays).
Piece = tuple[dict[str, Any], bool, Any]


def solo(chunks: Iterator[dict[str, Any]], call: Any) -> Iterator[Piece]:
    """The pieces of a stream that is not shared (no cache: every call sends its request)."""
    try:
        for chunk in chunks:
            yield chunk, not call.sent, call.response if call.sent else None
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()  # stopped early: the recording stops too, and stores nothing


async def asolo(chunks: AsyncIterator[dict[str, Any]], call: Any) -> AsyncIterator[Piece]:
    """``solo`` for async streams."""
    try:
        async for chunk in chunks:
            yield chunk, not call.sent, call.response if call.sent else None
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()


def _shared(error: BaseException) -> BaseException:
    # an Exception is every member's, as with memoize's waiters; an interrupt (Ctrl-C, a cancelled task)
    # belongs to the thread or task it hit, so the others get an error that says what happened
    if isinstance(error, Exception):
        return error
    return RuntimeError(f"the shared stream was interrupted in another caller ({type(error).__name__}); call again")


class _Flight:
    __slots__ = ("call", "done", "error", "items", "members", "objects", "open", "upstream")

    def __init__(self, open_: Callable[[], tuple[Any, Any]]) -> None:
        self.open = open_  # opens the memoized stream: (iterator of chunk dicts, its Call)
        self.upstream: Any = None
        self.call: Any = None
        self.items: list[dict[str, Any]] = []
        self.objects: list[Any] = []  # the SDK's chunk objects of a live stream, beside `items`
        self.done = False
        self.error: BaseException | None = None
        self.members = 0

    def piece(self, pos: int, leader: bool) -> Piece:
        sent = leader and self.call is not None and self.call.sent
        return self.items[pos], not sent, self.objects[pos] if sent else None

    def add(self, item: dict[str, Any]) -> None:
        self.items.append(item)
        self.objects.append(self.call.response if self.call.sent else None)


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
                        piece = flight.piece(pos, leader)
                    elif flight.error is not None:
                        raise flight.error
                    else:
                        return
                pos += 1
                yield piece
        finally:
            with self._lock:  # leaving and forgetting at once: nobody joins a flight about to be closed
                flight.members -= 1
                last = flight.members == 0
                if last and key in self._flights and self._flights[key][0] is flight:
                    del self._flights[key]
            if last and not flight.done:
                with lock:
                    flight.done = True
                    close = getattr(flight.upstream, "close", None)
                    if close is not None:
                        close()  # everyone left early: the recording stops and stores nothing

    def _pull(self, key: Any, flight: _Flight) -> None:
        try:
            if flight.upstream is None:
                flight.upstream, flight.call = flight.open()
            flight.add(next(flight.upstream))
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
                        piece = flight.piece(pos, leader)
                    elif flight.error is not None:
                        raise flight.error
                    else:
                        return
                pos += 1
                yield piece
        finally:
            with self._lock:
                flight.members -= 1
                last = flight.members == 0
                if last and where in self._flights and self._flights[where][0] is flight:
                    del self._flights[where]
            if last and not flight.done:
                flight.done = True
                aclose = getattr(flight.upstream, "aclose", None)
                if aclose is not None:
                    await aclose()

    async def _pull(self, where: tuple[Any, Any], flight: _Flight) -> None:
        try:
            if flight.upstream is None:
                flight.upstream, flight.call = flight.open()
            flight.add(await flight.upstream.__anext__())
        except StopAsyncIteration:
            flight.done = True
            self._forget(where, flight)
        except BaseException as err:
            flight.done, flight.error = True, _shared(err)
            self._forget(where, flight)
            if flight.error is not err:
                raise


def shared(flights: StreamFlights | None, key: Callable[[], Any],
           open_: Callable[[], tuple[Iterator[dict[str, Any]], Any]]) -> Iterator[Piece]:
    """The pieces of a stream: joined to an identical one in progress, or alone when ``flights`` is None."""
    return solo(*open_()) if flights is None else flights.join(key(), open_)


async def ashared(flights: AsyncStreamFlights | None, key: Callable[[], Any],
                  open_: Callable[[], tuple[AsyncIterator[dict[str, Any]], Any]]) -> AsyncIterator[Piece]:
    """``shared`` for async streams; it joins at its first step, in the loop that iterates it."""
    pieces = asolo(*open_()) if flights is None else flights.join(key(), open_)
    try:
        async for piece in pieces:
            yield piece
    finally:
        await pieces.aclose()  # type: ignore[attr-defined]
