"""One async API client per event loop, closed when its loop ends.

An async client's connections belong to the loop that opened them, so an ``LLM`` used from several
threads' loops (or successive ``asyncio.run`` calls) needs one client per loop, reused for as long as the
loop runs. To close a client on its own loop when that loop ends, a parked async generator is started
for it in the loop: ``asyncio.run`` (and every runner that calls ``loop.shutdown_asyncgens()``) closes it
before closing the loop, and its ``finally`` closes the client. A loop closed without that (a bare
``loop.close()``) drops its client at the next use of another loop; its connections are then left to
the garbage collector.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, AsyncIterator, Callable

__all__ = ["LoopClients"]


class _Slot:
    __slots__ = ("client", "closer", "dropped")

    def __init__(self, client: Any) -> None:
        self.client = client
        self.closer: Any = None
        self.dropped = False  # its loop closed without shutting down async generators: nothing to await on


class LoopClients:
    """The async clients of one ``LLM``, by event loop."""

    def __init__(self, new: Callable[[], Any]) -> None:
        self._new = new
        self._lock = threading.Lock()
        self._slots: dict[Any, _Slot] = {}
        #: Clients created so far (for tests and diagnostics).
        self.created = 0

    def get(self) -> Any:
        """The client of the running loop, created at its first use there."""
        loop = asyncio.get_running_loop()
        with self._lock:
            stale = [(lp, s) for lp, s in self._slots.items() if lp.is_closed()]
            for lp, _ in stale:
                del self._slots[lp]
            slot = self._slots.get(loop)
            if slot is None:
                slot = self._slots[loop] = _Slot(self._new())
                self.created += 1
                fresh = True
            else:
                fresh = False
        for _, old in stale:
            _drop(old)
        if fresh:
            slot.closer = self._closer(loop, slot)
            _start(slot.closer)
        return slot.client

    async def aclose(self) -> None:
        """Close the running loop's client, if it has one."""
        loop = asyncio.get_running_loop()
        with self._lock:
            slot = self._slots.pop(loop, None)
        if slot is not None:
            await slot.client.close()

    async def _closer(self, loop: Any, slot: _Slot) -> AsyncIterator[None]:
        try:
            yield
        finally:
            with self._lock:
                mine = self._slots.get(loop) is slot
                if mine:
                    del self._slots[loop]
            if mine and not slot.dropped:
                await slot.client.close()


def _start(closer: Any) -> None:
    # the first step registers the generator with the running loop (its first-iteration hook) and stops
    # at the `yield` without awaiting anything, so it can be driven here, outside a coroutine
    try:
        closer.__anext__().send(None)
    except StopIteration:
        pass


def _drop(slot: _Slot) -> None:
    # finish the parked generator without awaiting: its loop is closed, and the garbage collector would
    # otherwise ask that loop to close it
    slot.dropped = True
    try:
        slot.closer.aclose().send(None)
    except (StopIteration, RuntimeError):
        pass
