"""Freshness beyond a fixed TTL, for the Python engine: recorded ages, jittered and computed TTLs,
``max_age()`` and ``stale_if_error``.

A function that uses any of these has its entries stamped in ``metadata``: ``"stored_at"`` (wall-clock
seconds when stored) and ``"fresh_until"`` (when its TTL ends, or None). The stamp, not the backend's own
expiry, decides whether a stored value is fresh: the backend keeps the entry ``stale_if_error`` longer
than its TTL so that a failing call can still fall back on it. Wall-clock time, because other processes
and hosts read the same entries; ``clock`` is the seam tests replace.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from oxicache.controls import MAX_AGE, current_max_age
from oxicache.durations import TTL, is_timedelta, parse_ttl
from oxicache.errors import CacheWarning

if TYPE_CHECKING:
    from dataclasses import dataclass

    from oxicache._core import CacheEntry
else:
    from oxicache._light import dataclass  # a frozen dataclass without importing inspect (_light.py)

__all__ = ["SKIP", "Freshness", "clock", "make_freshness"]

#: Wall-clock seconds (tests replace it: ``monkeypatch.setattr(freshness, "clock", fake)``).
clock: Callable[[], float] = time.time
_random: Any = None  # a random.Random, made for the first jittered TTL (random is not imported before)

#: ``ttl_for``'s answer for a result that must not be stored (a computed TTL already over).
SKIP = -1.0


@dataclass(frozen=True)
class Freshness:
    """One function's freshness settings, resolved at decoration."""

    ttl: float | None  # the fixed TTL (the function's, its annotation's or the cache's), or None
    compute: Callable[[Any], Any] | None  # ttl= given as a callable on the result
    jitter: float  # a fraction of the TTL (< 1) when `fraction`, else seconds
    fraction: bool
    stale_if_error: float | None  # seconds past the TTL a failing call may fall back on the value
    stale: float | None = None  # seconds past the TTL the value is served while refreshed (revalidate.py)

    def ttl_for(self, output: Any) -> float | None:
        """The TTL of this result (seconds, None for no expiry, ``SKIP`` not to store it)."""
        ttl = self.ttl
        if self.compute is not None:
            computed = self.compute(output)
            ttl = self.ttl if computed is None else _computed_seconds(computed, self.compute)
            if ttl is not None and ttl <= 0:
                return SKIP
        if ttl is not None and self.jitter:
            spread = ttl * self.jitter if self.fraction else min(self.jitter, ttl)
            ttl -= _jitter_source().uniform(0.0, spread)  # shorter only: no entry outlives its TTL
        return ttl

    def stamp(self, metadata: dict[str, Any], ttl: float | None) -> dict[str, Any]:
        """``metadata`` with the entry's age and the end of its freshness."""
        now = clock()
        return {**metadata, "stored_at": now, "fresh_until": None if ttl is None else now + ttl}

    def kept_for(self, ttl: float | None) -> float | None:
        """How long the backend keeps the entry: its TTL, plus the longer of the ``stale_if_error`` and
        ``stale`` windows."""
        windows = [w for w in (self.stale_if_error, self.stale) if w is not None]
        if ttl is None or not windows:
            return ttl
        return ttl + max(windows)

    def fallback(self, stale: CacheEntry | None, err: Exception, name: str) -> Any:
        """The stored value a failing call returns instead of ``err`` (with one CacheWarning), if there is
        one within the ``stale_if_error`` window; else ``err`` is raised."""
        window = self.stale_if_error
        until = None if stale is None else stale.metadata.get("fresh_until")
        if stale is None or window is None or until is None or clock() > until + window:
            raise err
        warnings.warn(f"oxicache: {name} raised {type(err).__name__}: {err}; returned the value stored "
                      f"{clock() - stale.metadata['stored_at']:.0f}s ago (stale_if_error)", CacheWarning, stacklevel=4)
        return stale.value


def acceptable(entry: CacheEntry, mode: int) -> bool:
    """True when a found entry may answer a call: still fresh by its stamp and, under ``max_age()``,
    younger than the age allowed. An entry without a stamp is of unknown age: refused under max_age."""
    metadata = entry.metadata
    now = clock()
    until = metadata.get("fresh_until")
    if until is not None and now >= until:
        return False
    if mode == MAX_AGE:
        stored = metadata.get("stored_at")
        return stored is not None and now - stored < current_max_age()
    return True


def _jitter_source() -> Any:
    global _random
    if _random is None:
        import random

        _random = random.Random()
    return _random


def _computed_seconds(value: Any, compute: Callable[[Any], Any]) -> float:
    """A computed TTL in seconds; a non-positive number (a token already expired) is returned as is."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value <= 0:
        return float(value)
    if is_timedelta(value) and value.total_seconds() <= 0:
        return value.total_seconds()
    name = getattr(compute, "__qualname__", repr(compute))
    seconds = parse_ttl(value, what=f"the ttl {name} returned")
    assert seconds is not None
    return seconds


def make_freshness(ttl: TTL | Callable[[Any], Any], fixed: float | None, jitter: Any, stale_if_error: TTL,
                   track_age: bool, kind: str, stale: TTL = None) -> Freshness | None:
    """The settings of a function, or None when it uses none of them (it then pays nothing).
    ``fixed``: the TTL that applies when ``ttl`` is not a callable (the function's, else the cache's)."""
    if not isinstance(track_age, bool):
        msg = f"track_age must be True or False, got {track_age!r}"
        raise TypeError(msg)
    compute = ttl if callable(ttl) else None
    window = parse_ttl(stale_if_error, what="stale_if_error")
    revalidate = parse_ttl(stale, what="stale")
    if compute is None and jitter is None and window is None and revalidate is None and not track_age:
        return None
    if revalidate is not None and fixed is None and compute is None:
        msg = (f"stale={stale!r} serves a value for a while after its TTL, and this function has none: give "
               f"memoize (or the cache) a ttl")
        raise ValueError(msg)
    spread, fraction = _jitter(jitter)
    if spread and fixed is None and compute is None:
        msg = f"jitter={jitter!r} shortens a TTL, and this function has none: give memoize (or the cache) a ttl"
        raise ValueError(msg)
    if window is not None and kind in ("gen", "asyncgen"):
        msg = ("stale_if_error is for plain and coroutine functions: a generator that fails has already "
               "yielded part of a fresh stream; drop stale_if_error for this function")
        raise ValueError(msg)
    return Freshness(fixed, compute, spread, fraction, window, revalidate)


def _jitter(jitter: Any) -> tuple[float, bool]:
    """``(amount, is_fraction)``: a float in (0, 1) is a fraction of the TTL; a duration string or
    timedelta is seconds."""
    if jitter is None:
        return 0.0, False
    if isinstance(jitter, float) and 0 < jitter < 1:
        return jitter, True
    if isinstance(jitter, str) or is_timedelta(jitter):
        seconds = parse_ttl(jitter, what="jitter")
        assert seconds is not None
        return seconds, False
    msg = (f"jitter must be a fraction of the TTL between 0 and 1 (0.1) or a duration ('30s', a timedelta), "
           f"got {jitter!r}")
    raise ValueError(msg)
