"""``OXICACHE_DISABLE``: an environment variable that turns memoization off for a whole process.

Read once per decoration (``@cache.memoize``, ``@cache.batch_memoize``, ``@oxicache.memoize``), never on a
call: a function decorated while it says so runs every call and stores nothing, as if memoized on a
``NoCache`` (its ``cache_info()`` counts misses); one decorated while it does not is memoized as usual.
The direct API (``cache.get``/``set``...) is not affected. docs/testing.md has the details.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from oxicache.base import BaseCache

__all__ = ["ENV_VAR", "caching_disabled", "unless_disabled"]

ENV_VAR = "OXICACHE_DISABLE"
_ON = frozenset(("1", "true", "yes", "on"))
_OFF = frozenset(("", "0", "false", "no", "off"))

O = TypeVar("O")


def caching_disabled() -> bool:
    """True when ``OXICACHE_DISABLE`` is set to 1/true/yes/on (any case); False when unset or 0/false/no/off."""
    raw = os.environ.get(ENV_VAR, "")
    value = raw.strip().lower()
    if value in _ON:
        return True
    if value in _OFF:
        return False
    msg = f"{ENV_VAR}={raw!r} is not understood: set it to 1 to turn memoization off, or to 0 (or unset it)"
    raise ValueError(msg)


def unless_disabled(cache: BaseCache, options: O) -> tuple[BaseCache, O]:
    """``(cache, options)`` to memoize a function with: a ``NoCache`` (and no shared flight) when disabled."""
    if not caching_disabled():
        return cache, options
    from oxicache.backends.none import NoCache  # (none.py imports base.py, which imports the engine)

    if isinstance(cache, NoCache):
        return cache, options
    off = NoCache(cache.exclude, on_backend_error=cache.on_backend_error)
    import dataclasses  # only when memoization is off

    return off, dataclasses.replace(options, shared_flight=None)  # type: ignore[type-var]
