"""``InMemCache``: entries in process memory, in the native store (LRU bound, TTL, exact stats)."""

from __future__ import annotations

import sys

from oxicache._core import CacheEntry, MemoryStore, after_fork_in_child
from oxicache.backends._fork import in_child
from oxicache.base import BaseCache, Capabilities, Ref

TYPE_CHECKING = False  # not typing's: `import oxicache` does not load typing (oxicache/_light.py)
if TYPE_CHECKING:
    from typing import Any, Iterable, Iterator

    from oxicache.durations import TTL

__all__ = ["InMemCache"]

# A forked child must not wait for computations that were in flight in its parent's other threads.
in_child(after_fork_in_child)


# The stats the native store keeps itself, exactly, across threads.
_STORE_COUNTED = frozenset(("hits", "misses", "sets", "errors"))


class InMemCache(BaseCache):
    """The fastest cache: Python objects kept in a Rust map, looked up by canonical argument bytes.

    Args:
        exclude: parameter names left out of every key.
        max_size: keep at most this many entries, evicting the least recently used (default: unbounded).
        ttl: default time to live of entries (seconds, timedelta or ``"1h"``; default: no expiry).

    A hit returns the stored object itself, as ``functools.lru_cache`` does: mutating a returned list
    mutates the cached one. Memoized plain functions run through a native wrapper; see docs/backends/memory.md.
    """

    # Private to the process: keys may use process-local identities (local classes, closures' objects).
    capabilities = Capabilities(shared=False, bounded=True)  # max_size
    _native_store: MemoryStore

    def __init__(self, exclude: Iterable[str] | None = None, *args: Any, max_size: int | None = None, ttl: TTL = None, on_backend_error: str = "warn", **kwargs: Any) -> None:
        if args or kwargs:
            msg = f"InMemCache takes exclude, max_size, ttl and on_backend_error; got unexpected arguments {args or ''}{sorted(kwargs) or ''}"
            raise TypeError(msg)
        if isinstance(exclude, int) and not isinstance(exclude, bool):  # InMemCache(10), as lru_cache(10)
            msg = (f"InMemCache's first argument is exclude (parameter names left out of keys), got {exclude!r}; "
                   f"for a bound on the number of entries write InMemCache(max_size={exclude!r})")
            raise TypeError(msg)
        super().__init__(exclude, ttl=ttl, on_backend_error=on_backend_error)
        if max_size is not None and (isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 0):
            msg = f"max_size must be None or a non-negative int, got {max_size!r}"
            raise ValueError(msg)
        self._native_store = MemoryStore(max_size=max_size, ttl=self._ttl)
        if "logging" in sys.modules:  # else at the first memoize: logging is not loaded for nothing
            from oxicache._logswitch import follow_level

            follow_level()  # native debug events follow the "oxicache.memo" logger (_logswitch.py)

    @property
    def max_size(self) -> int | None:
        """The bound on the number of entries (the least recently used are evicted), or None."""
        return self._native_store.max_size

    def _get(self, ref: Ref) -> CacheEntry | None:
        if isinstance(ref, CacheEntry):
            return self._native_store.get(ref.func, ref.inputs)
        return self._native_store.get_by_key(ref)

    def _lookup(self, ref: Ref) -> CacheEntry | None:
        return self._get(ref)  # the store counts hits and misses itself

    def _count(self, name: str, n: int = 1) -> None:
        if name not in _STORE_COUNTED:  # backend_errors: counted here
            super()._count(name, n)

    def _has(self, ref: Ref) -> bool:
        if isinstance(ref, CacheEntry):
            return self._native_store.contains(ref.func, ref.inputs)
        return self._native_store.get_by_key(ref) is not None

    def _set(self, entry: CacheEntry, ttl: float | None) -> None:
        self._native_store.set(entry, ttl)

    def _remove(self, ref: Ref) -> bool:
        if isinstance(ref, CacheEntry):
            return self._native_store.remove(ref.func, ref.inputs)
        return self._native_store.remove_by_key(ref)

    def _iter(self) -> Iterator[CacheEntry]:
        return iter(self._native_store.entries())

    def _clear(self) -> None:
        self._native_store.clear()

    def _len(self) -> int:
        return len(self._native_store)

    def _count_func(self, func: str) -> int:
        return self._native_store.count(func)

    def _clear_func(self, func: str) -> int:
        return self._native_store.clear_func(func)

    def expire(self) -> int:
        """Remove expired entries now (they are also dropped lazily); returns how many."""
        return self._native_store.expire()

    def stats(self) -> dict[str, Any]:
        """hits, misses, sets, evictions, expirations, size, max_size: exact, across threads."""
        with self._counts_lock:
            backend_errors = self._counts["backend_errors"]
        return {**self._native_store.stats(), "backend_errors": backend_errors}

    def close(self) -> None:
        """Drop every entry. The cache stays usable."""
        self._native_store.clear()

    def __repr__(self) -> str:
        return f"InMemCache(max_size={self.max_size}, ttl={self._ttl}, size={len(self)})"
