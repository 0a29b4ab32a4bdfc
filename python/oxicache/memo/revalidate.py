"""Stale-while-revalidate, ``memoize(ttl=..., stale=...)``: after the TTL and within the stale window a
call returns the stored value at once, and one refresh of that key runs in the background.

The refresh is a thread for plain and generator functions, and a task on the caller's event loop for
coroutine and async generator functions (the loop is remembered in a context variable by
``loop_bound``, since a blocking backend looks the key up in a worker thread). One refresh per key at
a time in a process: calls that find the key stale while it runs return the stale value and start
nothing. Under ``shared_flight=True`` the refresh also takes the key's lease, so one process refreshes
while the others keep serving the stale value (``shared_flight.py``). A refresh that raises is counted as
an error and stores nothing, so the old value stays until its window ends. Past the window the entry is
a plain miss.
"""

from __future__ import annotations

import contextvars
import functools
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from oxicache.controls import NORMAL
from oxicache.memo import freshness, shared_flight

if TYPE_CHECKING:
    import asyncio

    from oxicache._core import CacheEntry
    from oxicache.memo.engine import PythonMemo

__all__ = ["Revalidator", "loop_bound"]

#: The event loop of the coroutine call being looked up (set by ``loop_bound``).
_LOOP: contextvars.ContextVar[asyncio.AbstractEventLoop | None] = contextvars.ContextVar("oxicache_loop", default=None)


class Revalidator:
    """One function's stale window and its refreshes in flight."""

    def __init__(self, memo: PythonMemo, window: float, kind: str) -> None:
        self.memo, self.window, self.kind = memo, window, kind
        self.lock = threading.Lock()
        self.running: set[int] = set()  # keys being refreshed
        self.tasks: set[asyncio.Task[None]] = set()  # strong references until they end

    def serve(self, found: CacheEntry, probe: CacheEntry, snapshot: Callable[[], CacheEntry], args: tuple[Any, ...],
              kwargs: dict[str, Any]) -> bool:
        """True when ``found`` (past its freshness) is within the stale window: a refresh of its key is
        started unless one runs, and the caller returns the stored value. ``snapshot()``: the entry to
        store, the call as it is now."""
        until = found.metadata.get("fresh_until")
        if until is None or freshness.clock() >= until + self.window:
            return False
        key = probe.key
        with self.lock:
            if key in self.running:
                return True
            self.running.add(key)
        if self.refreshed_since(found, probe):
            self.done(key)
            return True  # a refresh stored a newer value after this call read the stale one: none again
        entry = snapshot()
        try:
            if self.kind in ("async", "asyncgen"):
                self.start_task(key, entry, args, kwargs)
            else:
                threading.Thread(target=self.refresh, args=(key, entry, args, kwargs), daemon=True,
                                 name="oxicache-revalidate").start()
        except BaseException:
            self.done(key)
            raise
        return True

    def refreshed_since(self, found: CacheEntry, probe: CacheEntry) -> bool:
        """Whether the key holds a newer value than ``found`` now: a refresh that ended between this call's
        lookup and its claim stored it (its store lands before its claim ends). Read uncounted, on the stale
        path only (once per key per stale period)."""
        try:
            current = self.memo.view.peek(probe)
        except Exception:  # noqa: BLE001 - unreadable now: refresh as if nothing newer were there
            return False
        stored = found.metadata.get("stored_at")
        newer = None if current is None else current.metadata.get("stored_at")
        return stored is not None and newer is not None and newer > stored

    def done(self, key: int) -> None:
        with self.lock:
            self.running.discard(key)

    def refresh(self, key: int, snapshot: CacheEntry, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """A plain or generator function's refresh, in its own thread."""
        memo = self.memo

        def compute() -> Any:
            output = memo.func(*args, **kwargs)
            return list(output) if self.kind == "gen" else output

        try:
            try:
                if memo.lease is not None:  # one process refreshes: under the key's lease
                    pending = memo.pending_type(memo, snapshot, 0, NORMAL)
                    shared_flight.lead(memo.view, pending, lambda: _stored(pending, compute()), memo.wait, memo.lease)
                    return
                output = compute()
            except Exception:
                memo.failed()  # the old value stays
                return
            memo.store(snapshot, output, warned=False)
        finally:
            self.done(key)

    def start_task(self, key: int, snapshot: CacheEntry, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        import asyncio  # here, not at the top: `import oxicache` does not load asyncio (and ssl)

        loop: asyncio.AbstractEventLoop | None
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = _LOOP.get()
        if loop is None or loop.is_closed():
            msg = "a coroutine function's stale-while-revalidate refresh needs the caller's event loop"
            raise RuntimeError(msg)
        loop.call_soon_threadsafe(self.spawn, loop, key, snapshot, args, kwargs)

    def spawn(self, loop: asyncio.AbstractEventLoop, key: int, snapshot: CacheEntry, args: tuple[Any, ...],
              kwargs: dict[str, Any]) -> None:
        task = loop.create_task(self.arefresh(key, snapshot, args, kwargs), name="oxicache-revalidate")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def arefresh(self, key: int, snapshot: CacheEntry, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """A coroutine or async generator function's refresh, as a task on the caller's loop."""
        import asyncio

        memo = self.memo

        async def compute() -> Any:
            if self.kind == "asyncgen":
                return [item async for item in memo.func(*args, **kwargs)]
            return await memo.func(*args, **kwargs)

        try:
            try:
                if memo.lease is not None:  # one process refreshes: under the key's lease
                    pending = memo.pending_type(memo, snapshot, 0, NORMAL)

                    async def leading() -> Any:
                        output = await compute()
                        await asyncio.to_thread(pending.store, output)  # also releases the lease
                        return output

                    await shared_flight.alead(memo.view, pending, leading, memo.wait, memo.lease)
                    return
                output = await compute()
            except Exception:
                memo.failed()
                return
            if self.memo.view.capabilities.blocking_io:
                await asyncio.to_thread(self.memo.store, snapshot, output)
            else:
                self.memo.store(snapshot, output)
        finally:
            self.done(key)


def loop_bound(wrapper: Callable[..., Any], kind: str) -> Callable[..., Any]:
    """A coroutine (or async generator) wrapper that first notes its event loop, so a lookup run in a
    worker thread can start the refresh task on it."""
    from asyncio import get_running_loop  # at decoration of a coroutine function, not at `import oxicache`

    if kind == "asyncgen":

        @functools.wraps(wrapper)
        async def bound_gen(*args: Any, **kwargs: Any) -> Any:
            _LOOP.set(get_running_loop())
            async for item in wrapper(*args, **kwargs):
                yield item

        return bound_gen

    @functools.wraps(wrapper)
    async def bound(*args: Any, **kwargs: Any) -> Any:
        _LOOP.set(get_running_loop())  # the call's own task context: nothing else sees it
        return await wrapper(*args, **kwargs)

    return bound


def _stored(pending: Any, output: Any) -> Any:
    """Stores a leased refresh's value (releasing the lease with it) and returns it."""
    pending.store(output)
    return output
