"""retrieve() returns CacheEntry | EllipsisType to type checkers: a miss must be ruled out before .output."""

from typing import reveal_type

from oxicache import DiskCache, InMemCache

cache = InMemCache()
disk = DiskCache("/tmp/never-created-by-type-checking")

found = cache.retrieve("f", x=1)
reveal_type(found)  # revealed: oxicache._core.CacheEntry | types.EllipsisType
reveal_type(disk.retrieve("f", {"x": 1}))  # revealed: oxicache._core.CacheEntry | types.EllipsisType
if found is not ...:
    reveal_type(found)  # revealed: oxicache._core.CacheEntry
    reveal_type(found.output)  # revealed: Any
print(cache.retrieve("f", x=1).output)  # E: a miss (...) has no .output
