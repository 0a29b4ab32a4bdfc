"""A small dict-backed custom backend: the five ``BaseCache`` primitives and nothing else.

It exercises the Python engine (``PythonMemo``) that persistent backends will use, as opposed to
``InMemCache``'s native memoizer. TTLs are honoured with an expiry time per entry; expired entries are
treated as absent (and dropped when seen). ``set_calls`` records every ``_set`` as ``(key, ttl)`` so
tests can check the TTL a backend is handed (the key, not the entry: a removed value is not kept alive).
It is the one dict-backed test backend.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Iterator

from oxicache import BaseCache, CacheEntry


class DictBackend(BaseCache):
    """Entries in a dict keyed by ``CacheEntry.key``, with optional per-entry expiry."""

    def __init__(self, exclude: Any = None, *, ttl: Any = None, clock: Callable[[], float] = time.monotonic,
                 on_backend_error: str = "warn") -> None:
        super().__init__(exclude, ttl=ttl, on_backend_error=on_backend_error)
        self.clock = clock
        self.data: dict[int, tuple[CacheEntry, float | None]] = {}
        self.set_calls: list[tuple[int, float | None]] = []
        self.lock = threading.Lock()

    @staticmethod
    def _key(ref: Any) -> int:
        return ref.key if isinstance(ref, CacheEntry) else ref

    def _live(self, key: int) -> CacheEntry | None:
        item = self.data.get(key)
        if item is None:
            return None
        entry, expires = item
        if expires is not None and self.clock() >= expires:
            self.data.pop(key, None)
            return None
        return entry

    def _get(self, ref: Any) -> CacheEntry | None:
        with self.lock:
            return self._live(self._key(ref))

    def _set(self, entry: CacheEntry, ttl: float | None) -> None:
        with self.lock:
            self.set_calls.append((entry.key, ttl))
            self.data[entry.key] = (entry, None if ttl is None else self.clock() + ttl)

    def _remove(self, ref: Any) -> bool:
        with self.lock:
            key = self._key(ref)
            alive = self._live(key) is not None
            self.data.pop(key, None)
            return alive

    def _iter(self) -> Iterator[CacheEntry]:
        with self.lock:
            keys = list(self.data)
            live = [self._live(k) for k in keys]
        return iter([e for e in live if e is not None])

    def _clear(self) -> None:
        with self.lock:
            self.data.clear()


class FakeClock:
    """A manual clock for ``DictBackend(clock=...)``: ``advance(seconds)`` moves time forward."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
