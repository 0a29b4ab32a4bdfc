"""The ``cache_info()`` record of memoized functions."""

from __future__ import annotations

__all__ = ["CacheInfo"]

TYPE_CHECKING = False  # not typing's: `import oxicache` does not load typing (oxicache/_light.py)
if TYPE_CHECKING:
    from typing import NamedTuple, Optional

    class _LruCacheInfo(NamedTuple):
        hits: int
        misses: int
        maxsize: Optional[int]
        currsize: int
else:
    from collections import namedtuple

    # The same plain named tuple as functools.lru_cache's: the checker reads the fields' types above.
    _LruCacheInfo = namedtuple("_LruCacheInfo", ["hits", "misses", "maxsize", "currsize"])


class CacheInfo(_LruCacheInfo):
    """Per-function counters. As a tuple it is ``functools.lru_cache``'s ``(hits, misses, maxsize,
    currsize)``, so code written for ``lru_cache`` keeps working; ``sets`` (results stored) and ``errors``
    (calls whose function raised, storing nothing) are extra attributes."""

    sets: int
    errors: int

    def __new__(cls, hits: int, misses: int, maxsize: Optional[int], currsize: int, sets: int = 0, errors: int = 0) -> CacheInfo:
        info = super().__new__(cls, hits, misses, maxsize, currsize)
        info.sets = sets
        info.errors = errors
        return info

    def __repr__(self) -> str:
        return (
            f"CacheInfo(hits={self.hits}, misses={self.misses}, maxsize={self.maxsize}, "
            f"currsize={self.currsize}, sets={self.sets}, errors={self.errors})"
        )

    def _replace(self, **changes: int | None) -> CacheInfo:
        """A copy with ``changes`` (any of the six counters): the tuple's own ``_replace`` would drop
        ``sets`` and ``errors``, which are not tuple fields."""
        fields: dict[str, int | None] = {**self._asdict(), "sets": self.sets, "errors": self.errors}
        unknown = sorted(set(changes) - set(fields))
        if unknown:
            msg = f"CacheInfo has no field {', '.join(map(repr, unknown))}; its fields are {', '.join(fields)}"
            raise ValueError(msg)
        fields.update(changes)
        return CacheInfo(**fields)  # type: ignore[arg-type]
