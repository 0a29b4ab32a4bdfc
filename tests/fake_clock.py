"""A clock tests move by hand, and how to put each backend of tests/backends.py on it (no sleeps for
timing): the in-memory store has its own native clock; the others read ``time.time()`` in known places."""

from __future__ import annotations

import time
from typing import Any, Callable

import pytest

Advance = Callable[[float], None]


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def time(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class TimeModule:
    """Stands in for the ``time`` module of one module: ``time()`` is the fake clock, the rest is real."""

    def __init__(self, clock: Clock) -> None:
        self.time = clock.time

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def put_on_clock(name: str, cache: Any, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> Advance:
    """Puts the expiry of backend ``name``'s ``cache`` on ``clock``; returns what else must move when the
    clock does (the native store's own clock, or nothing)."""
    if name == "inmem":
        return cache._native_store._advance_clock  # type: ignore[no-any-return]
    if name == "tiered":  # the front's native clock, and the back (a RedisCache) on ``clock``
        front = put_on_clock("inmem", cache.front, clock, monkeypatch)
        put_on_clock("redis", cache.back, clock, monkeypatch)
        return front
    if name in ("json", "redis"):
        cache._clock = clock.time
    elif name == "disk":
        import diskcache

        monkeypatch.setattr(diskcache.core, "time", TimeModule(clock))
    else:
        from oxicache.backends import _records, database

        monkeypatch.setattr(database, "time", TimeModule(clock))
        monkeypatch.setattr(_records, "time", TimeModule(clock))
    return lambda seconds: None


def on_all_clocks(name: str, cache: Any, monkeypatch: pytest.MonkeyPatch) -> Advance:
    """Puts backend ``name``'s ``cache`` (``put_on_clock``) and the memoize layer's freshness stamps
    (``oxicache.memo.freshness.clock``) on one new clock; returns ``advance(seconds)``, which moves both."""
    from oxicache.memo import freshness

    clock = Clock()
    also = put_on_clock(name, cache, clock, monkeypatch)
    monkeypatch.setattr(freshness, "clock", clock.time)

    def advance(seconds: float) -> None:
        clock.advance(seconds)
        also(seconds)

    return advance
