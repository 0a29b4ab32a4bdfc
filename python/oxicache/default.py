"""``oxicache.memoize``: memoization on one process-wide ``InMemCache``.

``oxicache.memoize`` is to ``InMemCache().memoize`` what ``functools.cache`` is to ``functools.lru_cache``:
the decorator for the common case, with no cache object to create. Its entries live in this process's
memory, unbounded, without expiry, until ``f.cache_clear()`` (or ``default_cache().clear()``).
"""

from __future__ import annotations

from oxicache.backends.memory import InMemCache

TYPE_CHECKING = False  # not typing's: `import oxicache` does not load typing (oxicache/_light.py)
if TYPE_CHECKING:
    from datetime import timedelta
    from typing import Any, Callable, Iterable, Mapping, ParamSpec, TypeVar

    from oxicache.durations import TTL
    from oxicache.memo.tags import TagsOption
    from oxicache.memo.protocols import Memoized

    P = ParamSpec("P")
    R = TypeVar("R")
if not TYPE_CHECKING:
    from oxicache._light import overload  # the checkers' (and pyflakes') overload is typing's, below
else:
    from typing import overload

__all__ = ["default_cache", "memoize"]

_CACHE = InMemCache()  # cheap: an empty native map


def default_cache() -> InMemCache:
    """The process-wide ``InMemCache`` that ``oxicache.memoize`` stores in."""
    return _CACHE


@overload
def memoize(func: Callable[P, R]) -> Memoized[P, R]: ...
@overload
def memoize(
    func: None = None,
    *,
    name: str | None = None,
    exclude: Iterable[str] | None = None,
    annotation: Mapping[str, Any] | None = None,
    ttl: TTL = None,
    version: str | int | None = None,
    cache_if: Callable[[Any], Any] | None = None,
    wait_timeout: TTL = None,
    key: Callable[..., Any] | None = None,
    jitter: float | str | timedelta | None = None,
    stale_if_error: TTL = None,
    track_age: bool = False,
    stale: TTL = None,
    tags: TagsOption = None,
    types: Iterable[type] | None = None,
) -> Callable[[Callable[P, R]], Memoized[P, R]]: ...
def memoize(
    func: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    exclude: Iterable[str] | None = None,
    annotation: Mapping[str, Any] | None = None,
    ttl: TTL = None,
    version: str | int | None = None,
    cache_if: Callable[[Any], Any] | None = None,
    wait_timeout: TTL = None,
    key: Callable[..., Any] | None = None,
    jitter: float | str | timedelta | None = None,
    stale_if_error: TTL = None,
    track_age: bool = False,
    stale: TTL = None,
    tags: TagsOption = None,
    types: Iterable[type] | None = None,
) -> Any:
    """Cache a function's results in this process's memory: ``@oxicache.memoize`` or ``@oxicache.memoize(ttl="1h")``.

    The store is one unbounded ``InMemCache`` shared by every function memoized this way
    (``default_cache()``); for a bound, a persistent store or a cache of your own, use that cache's
    ``memoize`` (``InMemCache(max_size=1000).memoize``, ``DiskCache("folder").memoize``, ...).

    Works on plain, coroutine, generator and async generator functions. The wrapper has
    ``cache_info()``, ``cache_clear()`` and ``__wrapped__``, as the wrapper of ``functools.cache`` does.

    Args:
        name: the identity stored in ``CacheEntry.func`` (default ``module.qualname``).
        exclude: parameter names left out of the key.
        annotation: stored in each entry's ``metadata["annotation"]``; its ``"ttl"`` sets the time to live.
        ttl: time to live of the function's entries (seconds, timedelta or ``"1h"``; default: no expiry).
        version: part of the function identity (``name@version``).
        cache_if: ``cache_if(result)`` true to store the result; rejected results are returned, not stored.
        wait_timeout: how long a call waits for another thread computing the same key (default 600 s).
        key, jitter, stale_if_error, track_age, stale, tags, types: as for ``InMemCache().memoize``
            (``BaseCache.memoize``; docs/memoize.md, "Freshness", and docs/value-codec.md).
    """
    decorate = _CACHE.memoize(name=name, exclude=exclude, annotation=annotation, ttl=ttl, version=version,
                              cache_if=cache_if, wait_timeout=wait_timeout, key=key, jitter=jitter,
                              stale_if_error=stale_if_error, track_age=track_age, stale=stale, tags=tags,
                              types=types)
    return decorate if func is None else decorate(func)
