"""``NoCache``: stores nothing; memoized functions run every time. Switches caching off without
touching call sites."""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: `import oxicache` does not load typing (oxicache/_light.py)
if TYPE_CHECKING:
    from typing import Iterator

from oxicache._core import CacheEntry
from oxicache.base import BaseCache, Capabilities, Ref

__all__ = ["NoCache"]


class NoStorage(BaseCache):
    """The primitives of a backend that keeps nothing: reads find nothing, removals remove nothing."""

    def _get(self, ref: Ref) -> CacheEntry | None:
        return None

    def _set(self, entry: CacheEntry, ttl: float | None) -> None:
        return None

    def _remove(self, ref: Ref) -> bool:
        return False

    def _iter(self) -> Iterator[CacheEntry]:
        return iter(())

    def _clear(self) -> None:
        return None

    def _len(self) -> int:
        return 0


class NoCache(NoStorage):
    """Always misses. ``get`` returns ``...``, ``len`` is 0, and ``annotate`` stores nothing.

    Memoized functions of every kind call straight through (counted as misses in ``cache_info()``).
    """

    capabilities = Capabilities(shared=False, stores_nothing=True, ttl=False)
