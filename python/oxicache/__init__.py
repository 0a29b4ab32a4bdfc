"""oxicache: memoization and caching with a native Rust core.

>>> from oxicache import InMemCache
>>> cache = InMemCache()
>>> @cache.memoize
... def fibonacci(n: int) -> int:
...     return n if n <= 1 else fibonacci(n - 2) + fibonacci(n - 1)
>>> fibonacci(80)
23416728348467685
"""

from __future__ import annotations

from oxicache._core import CacheEntry, KeyBytes, __version__
from oxicache.backends.callback import CallbackCache
from oxicache.backends.memory import InMemCache
from oxicache.backends.none import NoCache
from oxicache.base import BaseCache
from oxicache.capabilities import Capabilities
from oxicache.controls import bypass, max_age, refresh
from oxicache.default import default_cache, memoize
from oxicache.errors import (
    BackendError,
    CacheError,
    CacheWarning,
    CorruptStoreError,
    DatabaseConnectionError,
    IdentityWarning,
    KeyEncodingError,
    ValueDecodingError,
    ValueEncodingError,
)
from oxicache.info import CacheInfo
from oxicache.keys import KEY_SCHEME_VERSION, register_key_encoder

__all__ = [
    "KEY_SCHEME_VERSION",
    "BackendError",
    "BaseCache",
    "BatchMemoized",
    "CacheEntry",
    "CacheError",
    "CacheInfo",
    "CacheWarning",
    "CallbackCache",
    "Capabilities",
    "CorruptStoreError",
    "DatabaseCache",
    "DatabaseConnectionError",
    "DiskCache",
    "IdentityWarning",
    "InMemCache",
    "JsonCache",
    "KeyBytes",
    "KeyEncodingError",
    "Memoized",
    "MemoizedMethod",
    "NoCache",
    "RedisCache",
    "TieredCache",
    "ValueDecodingError",
    "ValueEncodingError",
    "__version__",
    "bypass",
    "default_cache",
    "max_age",
    "memoize",
    "refresh",
    "register_key_encoder",
]

# Persistent backends import their libraries (diskcache, SQLAlchemy, redis) only when first used, and the
# decorators' protocols (typing's Protocol and overload) only for type annotations read at run time, so that
# `import oxicache` stays light (tests/test_import_weight.py).
_LAZY = {
    "BatchMemoized": "oxicache.memo.protocols",
    "Memoized": "oxicache.memo.protocols",
    "MemoizedMethod": "oxicache.memo.protocols",
    "DiskCache": "oxicache.backends.disk",
    "JsonCache": "oxicache.backends.jsonfile",
    "DatabaseCache": "oxicache.backends.database",
    "RedisCache": "oxicache.backends.rediscache",
    "TieredCache": "oxicache.backends.tiered",
}

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from oxicache.memo.protocols import BatchMemoized, Memoized, MemoizedMethod
    from oxicache.backends.database import DatabaseCache
    from oxicache.backends.disk import DiskCache
    from oxicache.backends.jsonfile import JsonCache
    from oxicache.backends.rediscache import RedisCache
    from oxicache.backends.tiered import TieredCache


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))  # the lazy names too, for completion and help()


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        msg = f"module 'oxicache' has no attribute {name!r}"
        raise AttributeError(msg)
    import importlib

    try:
        imported = importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name != module:
            raise  # a missing dependency: its own message names it
        raise AttributeError(f"module 'oxicache' has no attribute {name!r}") from err
    value = getattr(imported, name)
    globals()[name] = value
    return value
