"""The ``cache_info()`` record of memoized functions."""

from typing import NamedTuple, Optional

__all__ = ["CacheInfo"]


class CacheInfo(NamedTuple):
    """Per-function counters, shaped like ``functools.lru_cache``'s ``cache_info()``."""

    hits: int
    misses: int
    maxsize: Optional[int]
    currsize: int
