"""oxicache: memoization and caching with a native Rust core.

>>> from oxicache import InMemCache
>>> cache = InMemCache()
>>> @cache.memoize
... def fibonacci(n: int) -> int:
...     return n if n <= 1 else fibonacci(n - 2) + fibonacci(n - 1)
>>> fibonacci(80)
23416728348467685
"""

from oxicache._core import CacheEntry, __version__
from oxicache._protocols import BatchMemoized, Memoized
from oxicache.backends.callback import CallbackCache
from oxicache.backends.memory import InMemCache
from oxicache.backends.none import NoCache
from oxicache.base import BaseCache
from oxicache.controls import bypass, refresh
from oxicache.errors import CacheError, KeyEncodingError
from oxicache.info import CacheInfo
from oxicache.keys import KEY_SCHEME_VERSION, register_key_encoder

__all__ = [
    "KEY_SCHEME_VERSION",
    "BaseCache",
    "BatchMemoized",
    "CacheEntry",
    "CacheError",
    "CacheInfo",
    "CallbackCache",
    "InMemCache",
    "KeyEncodingError",
    "Memoized",
    "NoCache",
    "__version__",
    "bypass",
    "refresh",
    "register_key_encoder",
]
