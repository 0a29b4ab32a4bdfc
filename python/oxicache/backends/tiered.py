"""``TieredCache``: a memory tier (an ``InMemCache``) in front of a shared store.

Reads go to the front first, then to the back, and a value found in the back is kept in the front; writes
go to both. A memoized plain function's wrapper is the native ``Memoizer`` on the front's store, so a
front hit costs what an ``InMemCache`` hit costs; its misses run the back's Python engine (lookup,
single-flight, shared flight, store), whose value the Memoizer then keeps in the front.

Other processes' changes reach this process's front in bounded time: a front entry lives at most the
front's ``ttl`` (required), and when the back sends messages (``Capabilities.notifies``: RedisCache) every
``remove``, ``cache_clear``, ``clear`` and overwrite is announced, and each process's listener drops the
entries at once. See docs/backends/tiered.md.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import weakref
from dataclasses import replace
from typing import Any, Callable, Iterable, Iterator

from oxicache._core import CacheEntry
from oxicache.backends._fork import in_child_of
from oxicache.backends.memory import InMemCache
from oxicache.base import BaseCache, EngineView, Ref
from oxicache.controls import REFRESH, current_mode
from oxicache.durations import TTL

__all__ = ["FrontTier", "TieredCache"]

#: Seconds a new TieredCache waits for its listener to subscribe (a round trip, unless the server is away).
_FIRST_SUBSCRIPTION = 2.0

# Messages on the back's channel: "<origin> k <key hex>", "<origin> f <function identity>", "<origin> *".
_KEY, _FUNC, _TAGS, _ALL = "k", "f", "t", "*"  # an older listener clears its whole front on "t"


class FrontTier:
    """What the memoize layer needs to put a native memory tier in front of a cache's engine: the front's
    store and its time to live, and the engine view of the tiers behind it."""

    __slots__ = ("back_view", "store", "ttl")

    def __init__(self, front: InMemCache, back_view: EngineView) -> None:
        assert front.ttl is not None  # TieredCache checks it when constructed
        store = front.engine_view().native_store
        assert store is not None  # an InMemCache's
        self.store = store
        self.ttl: float = front.ttl
        self.back_view = back_view


class TieredCache(BaseCache):
    """A memory tier in front of a shared store: front hits at ``InMemCache`` speed, everything else from
    the back.

    Args:
        front: an ``InMemCache`` with a ``ttl`` (how long this process may keep serving an entry that
            another process changed, when no message tells it sooner) and usually a ``max_size``.
        back: the shared store (RedisCache, DatabaseCache, DiskCache, ...).
        exclude, ttl, on_backend_error: as for every cache; ``ttl`` defaults to the back's. The front and
            back's own ``exclude`` are not used: keys are this cache's.

    ``close()`` closes both tiers. Statistics: ``stats()`` counts a hit in either tier as a hit, and
    reports each tier's own under ``"front"`` and ``"back"``.
    """

    def __init__(self, front: InMemCache, back: BaseCache, *, exclude: Any = None, ttl: TTL = None,
                 on_backend_error: str | None = None, types: Iterable[type] | None = None) -> None:
        if not isinstance(front, InMemCache):
            msg = f"TieredCache's front must be an InMemCache (e.g. InMemCache(max_size=10_000, ttl='30s')), got {front!r}"
            raise TypeError(msg)
        if not isinstance(back, BaseCache) or isinstance(back, (InMemCache, TieredCache)):
            msg = f"TieredCache's back must be a shared store (RedisCache, DatabaseCache, DiskCache, ...), got {back!r}"
            raise TypeError(msg)
        if front.ttl is None:
            msg = ("TieredCache's front needs a ttl: it bounds how long this process serves an entry another "
                   "process changed (e.g. InMemCache(max_size=10_000, ttl='30s'))")
            raise ValueError(msg)
        super().__init__(exclude, ttl=back.ttl if ttl is None else ttl,
                         on_backend_error=back.on_backend_error if on_backend_error is None else on_backend_error,
                         types=types)
        self.front, self.back = front, back
        # What the back can do is what this cache can do; the front adds nothing another process sees.
        self.capabilities = replace(back.capabilities, bounded=False)  # type: ignore[misc]
        self.shared_flight, self.lease_seconds = back.shared_flight, back.lease_seconds
        self.wait_timeout = back.wait_timeout
        self._counts["native_back_hits"] = 0
        self._origin = secrets.token_hex(8)  # this cache's own messages are not for its front
        self._listener: _Listener | None = None
        if back.capabilities.notifies:
            self._start_listener()
            in_child_of(self, TieredCache._listen_in_child)

    # ---- the front ------------------------------------------------------------------------------------
    @property
    def evicts(self) -> bool:
        """The back's: an entry the front evicts is still in the back."""
        return self.back.evicts

    def _front_ttl(self, ttl: float | None) -> float:
        front = self.front.ttl
        assert front is not None  # checked at construction
        return front if ttl is None else min(front, ttl)

    def _announce(self, kind: str, what: str = "") -> None:
        """Tells other processes' fronts to drop a key, a function's entries, or everything."""
        if self._listener is not None:
            self.back._notify(f"{self._origin} {kind} {what}".rstrip())

    # ---- primitives: the front first, the back behind it ----------------------------------------------
    # Counting: the front's store counts the calls of plain functions' native wrappers (hits, and misses
    # which the back may still answer: ``native_back_hits``); this cache counts every other lookup.
    def _front_get(self, ref: Ref) -> CacheEntry | None:
        """The front's entry, not counted in the front's statistics (a lookup by key is not counted)."""
        return self.front._get(ref.key if isinstance(ref, CacheEntry) else ref)

    def _get(self, ref: Ref) -> CacheEntry | None:
        entry = self._front_get(ref)
        if entry is not None:
            return entry
        entry = self.back._get(ref)
        if entry is not None:
            self.front._set(entry, self._front_ttl(None))
        return entry

    def _lookup(self, ref: Ref) -> CacheEntry | None:
        entry = self._get(ref)
        self._count("misses" if entry is None else "hits")
        return entry

    def _behind_front_lookup(self, ref: Ref) -> CacheEntry | None:
        """A native front's miss looked up in the back: a hit there turns the front's miss into a hit."""
        entry = self.back._get(ref)
        if entry is not None:
            self._count("native_back_hits")
        return entry

    def _behind_front_tally(self, name: str) -> None:
        if name not in ("misses", "errors"):  # the native front counted the call already
            self._count(name)

    def _back_peek(self, ref: Ref) -> CacheEntry | None:
        return self.back._get(ref)

    async def _aget(self, ref: Ref) -> CacheEntry | None:
        entry = self._front_get(ref)
        if entry is not None:
            return entry
        entry = await self.back._aget(ref)
        if entry is not None:
            self.front._set(entry, self._front_ttl(None))
        return entry

    async def _aset(self, entry: CacheEntry, ttl: float | None) -> None:
        """A memoized coroutine function's store (the only caller): announced under ``refresh()`` only, as
        ``_memo_store``."""
        await self.back._aset(entry, ttl)
        self.front._set(entry, self._front_ttl(ttl))
        if current_mode() == REFRESH and self._listener is not None:
            await asyncio.to_thread(self._announce, _KEY, f"{entry.key:032x}")

    def _has(self, ref: Ref) -> bool:
        return self.front._has(ref) or self.back._has(ref)

    def _set(self, entry: CacheEntry, ttl: float | None) -> None:
        self.back._set(entry, ttl)
        self.front._set(entry, self._front_ttl(ttl))
        self._announce(_KEY, f"{entry.key:032x}")

    def _memo_store(self, entry: CacheEntry, ttl: TTL, front: bool = True) -> None:
        """A memoized call's store (in the front too unless ``front`` is False: the native front keeps it
        itself). Announced only under ``refresh()``, which replaces a value other fronts may hold; a plain
        miss stores a key that no front holds another value for."""
        seconds = self._entry_ttl(entry, ttl)
        self.back._set(entry, seconds)
        if front:
            self.front._set(entry, self._front_ttl(seconds))
        self._count("sets")
        if current_mode() == REFRESH:
            self._announce(_KEY, f"{entry.key:032x}")

    def _remove(self, ref: Ref) -> bool:
        removed = self.back._remove(ref)
        removed = self.front._remove(ref) or removed
        self._announce(_KEY, f"{ref.key if isinstance(ref, CacheEntry) else ref:032x}")
        return removed

    def _iter(self) -> Iterator[CacheEntry]:
        return self.back._iter()

    def _clear(self) -> None:
        self.back._clear()
        self.front._clear()
        self._announce(_ALL)

    def _len(self) -> int:
        return self.back._len()

    def _count_func(self, func: str) -> int:
        return self.back._count_func(func)

    def _clear_func(self, func: str) -> int:
        removed = self.back._clear_func(func)
        self.front._clear_func(func)
        self._announce(_FUNC, func)
        return removed

    def _invalidate_tags(self, tags: frozenset[str]) -> int:
        """The back's tag index (RedisCache: a set per tag, no scan); each front (this one, and every other
        process's through the announcement) drops its entries carrying the tags, reading only itself."""
        removed = self.back._invalidate_tags(tags)
        self.front._invalidate_tags(tags)
        self._announce(_TAGS, json.dumps(sorted(tags)))
        return removed

    # ---- leases: the back's ---------------------------------------------------------------------------
    def _lease_acquire(self, key: int, seconds: float) -> str | None:
        return self.back._lease_acquire(key, seconds)

    def _lease_take(self, key: int, seconds: float) -> tuple[str | None, CacheEntry | None]:
        return self.back._lease_take(key, seconds)

    def _lease_renew(self, key: int, token: str, seconds: float) -> bool:
        return self.back._lease_renew(key, token, seconds)

    def _lease_release(self, key: int, token: str) -> None:
        self.back._lease_release(key, token)

    def _lease_wait(self, key: int, seconds: float) -> None:
        self.back._lease_wait(key, seconds)

    def _set_leased(self, entry: CacheEntry, ttl: float | None, token: str) -> bool:
        # Only plain functions lead, and their native front keeps the value itself.
        if not self.back._set_leased(entry, ttl, token):
            return False
        if current_mode() == REFRESH:
            self._announce(_KEY, f"{entry.key:032x}")
        return True

    # ---- messages: the back's --------------------------------------------------------------------------
    def _notify(self, message: str) -> None:
        self.back._notify(message)

    def _listen(self, deliver: Callable[[str | None], None], stop: threading.Event) -> None:
        self.back._listen(deliver, stop)

    # ---- the memoize layer ----------------------------------------------------------------------------
    def engine_view(self) -> EngineView:
        view = EngineView(self)
        view.store = self._memo_store
        view.front = FrontTier(self.front, self._back_view())
        return view

    def _back_view(self) -> EngineView:
        """The view a memoized plain function's misses use, behind its native front: lookups and stores
        skip the front (the Memoizer on it just missed, and keeps the value itself)."""
        view = EngineView(self)
        view.lookup = lambda probe, func: self._behind_front_lookup(probe)
        view.peek = self._back_peek
        view.tally = self._behind_front_tally
        view.store = lambda entry, ttl: self._memo_store(entry, ttl, front=False)
        return view

    # ---- the rest of the surface ----------------------------------------------------------------------
    def expire(self) -> int:
        """Remove expired entries from both tiers now; returns how many the back removed."""
        self.front.expire()
        expire = getattr(self.back, "expire", None)
        return int(expire()) if callable(expire) else 0

    def verify(self) -> list[str]:
        """The back's ``verify()`` (the front holds copies of what was read or written)."""
        return self.back.verify()

    def flush(self) -> None:
        self.back.flush()

    def stats(self) -> dict[str, Any]:
        """hits (in either tier), misses (in both), sets, errors, backend_errors, size (the back's), and
        each tier's own statistics under "front" and "back"."""
        front = self.front.stats()
        counted = super().stats()
        native_back_hits = counted.pop("native_back_hits")
        counted["hits"] += front["hits"] + native_back_hits
        counted["misses"] += front["misses"] - native_back_hits
        counted["errors"] += front["errors"]
        return {**counted, "front": front, "back": self.back.stats()}

    def close(self) -> None:
        """Stops listening for other processes' changes and closes both tiers."""
        if self._listener is not None:
            self._listener.stop(wait=True)  # before its connection is closed under it
        self.front.close()
        self.back.close()

    def _start_listener(self, wait: bool = True) -> None:
        """Starts the listener; it stops when this cache is closed or collected."""
        if self._listener is not None:
            self._listener.stop()
        self._listener = _Listener(self.front, self.back, self._origin)
        weakref.finalize(self, self._listener.stop)
        if wait:
            # Changes announced once this returns reach the front (unless the server is away: then the
            # listener keeps trying, and empties the front when it is back).
            self._listener.listening.wait(_FIRST_SUBSCRIPTION)

    def _listen_in_child(self) -> None:
        """A forked child has none of its parent's threads: a listener of its own, started without waiting
        inside fork() (the front may hold what the parent read; the first subscription empties it)."""
        self._start_listener(wait=False)

    def __repr__(self) -> str:
        return f"TieredCache({self.front!r}, {self.back!r})"


class _Listener:
    """A daemon thread applying other processes' announcements to one front. It holds the tiers, not the
    TieredCache, and stops when the cache is closed or collected."""

    def __init__(self, front: InMemCache, back: BaseCache, origin: str) -> None:
        self._stop = threading.Event()
        self.listening = threading.Event()  # set once the first subscription is made
        self.front, self.origin = front, origin
        self._thread = threading.Thread(target=back._listen, args=(self._deliver, self._stop),
                                        name="oxicache-tiered-listener", daemon=True)
        self._thread.start()

    def _deliver(self, message: str | None) -> None:
        if message is None:  # messages may have been missed: what the front holds may be stale
            self.front._clear()
            self.listening.set()
            return
        origin, _, rest = message.partition(" ")
        if origin == self.origin:
            return
        kind, _, what = rest.partition(" ")
        if kind == _KEY:
            try:
                self.front._remove(int(what, 16))
            except ValueError:
                self.front._clear()  # not a key this version writes: drop everything, to be safe
        elif kind == _FUNC:
            self.front._clear_func(what)
        elif kind == _TAGS:
            try:
                tags = json.loads(what)
            except ValueError:
                tags = None
            if isinstance(tags, list) and all(isinstance(t, str) for t in tags):
                self.front._invalidate_tags(frozenset(tags))
            else:
                self.front._clear()  # not a message this version writes: drop everything, to be safe
        else:
            self.front._clear()

    def stop(self, wait: bool = False) -> None:
        self._stop.set()
        if wait and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)  # it looks at the flag at least twice a second
