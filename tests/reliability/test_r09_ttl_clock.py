"""Matrix row R9: TTL and expiry on an injected clock.

How the clock is injected, per backend (no sleeping):

- InMemCache: the TTL lives in the Rust store, on a monotonic clock (``Instant``) plus a test offset
  that ``MemoryStore._advance_clock(seconds)`` moves forward: that seam is the injected clock. One test
  also runs a real 0.2 s TTL without it, so the monotonic clock itself is covered.
- JsonCache and RedisCache: their ``_clock`` attribute (wall-clock seconds) is replaced on the instance.
  RedisCache also gives the server the TTL (``PX``), which runs on the server's real clock: at the
  10 s these tests use it never fires within a test, so what is checked is the records' own expiry.
- DiskCache: diskcache stamps and checks expiry with ``time.time()``; the ``time`` module seen by
  ``diskcache.core`` is replaced by one whose ``time()`` is the fake clock.
- DatabaseCache (SQLite, and PostgreSQL/MySQL when their servers are up): likewise for
  ``oxicache.backends.database`` (expiry checks) and ``oxicache.backends._records`` (``expires_at``
  written with each row); the servers' own clocks are never used.

Adapted parts of the row:

- "Expired entries don't count toward capacity" applies where there is a capacity: InMemCache
  (``max_size``, a count) and DiskCache (``size_limit``, bytes). JsonCache and DatabaseCache have no
  bound, so for them (and all the others) the check is that the sweep, ``expire()``, reclaims the
  expired entries from the store itself (files, rows, diskcache items, the Rust map).
- Stale-while-revalidate is opt-in (``memoize(stale=...)``); without it an expired entry is a miss,
  which is what this row checks. The SWR variant is tested on every backend in tests/test_freshness.py.
"""

from __future__ import annotations

import os
import time
from typing import Any

import pytest
from backends import STORING, make
from fake_clock import Advance, Clock, put_on_clock
from reliability_support import expected_value

def fake_clock(name: str, cache: Any, monkeypatch: pytest.MonkeyPatch) -> Advance:
    """Puts ``cache`` on a clock the test moves; returns ``advance(seconds)``."""
    clock = Clock()
    also = put_on_clock(name, cache, clock, monkeypatch)
    return lambda seconds: (clock.advance(seconds), also(seconds)) and None


def stored_count(name: str, cache: Any) -> int:
    """Entries physically in the store, expired or not (not through the cache's own filters)."""
    if name == "inmem":
        return int(cache.stats()["size"])  # this one purges expired entries first
    if name == "tiered":
        return stored_count("redis", cache.back)
    if name == "json":
        return sum(n.endswith(".json") for n in os.listdir(cache.path))
    if name == "disk":
        import diskcache

        with diskcache.Cache(cache.path) as raw:
            return len(raw)
    if name == "redis":
        return sum(1 for _ in cache.client.scan_iter(match=f"{cache.prefix}:e:*"))
    import sqlalchemy

    with cache.engine.connect() as conn:
        return int(conn.execute(sqlalchemy.select(sqlalchemy.func.count()).select_from(cache.table)).scalar_one())


@pytest.mark.parametrize("where", ["decorator", "cache", "entry"])
@pytest.mark.parametrize("name", STORING)
def test_hit_at_5s_miss_at_11s(name: str, where: str, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = make(name, **({"ttl": 10} if where == "cache" else {}))
    advance = fake_clock(name, cache, monkeypatch)
    runs: list[int] = []

    @cache.memoize(**({"ttl": 10} if where == "decorator" else {}))
    def f(x: int) -> bytes:
        runs.append(x)
        return expected_value(x)

    if where == "entry":
        cache.set(f, {"x": 1}, output=expected_value(1), ttl=10)
    else:
        assert f(1) == expected_value(1)
    advance(5)
    assert f(1) == expected_value(1)
    assert cache.get(f, x=1) == expected_value(1)
    assert runs == ([] if where == "entry" else [1])
    advance(6)  # 11 s after the store
    assert cache.get(f, x=1) is ...
    assert not cache.exists(f, x=1)
    assert len(cache) == 0
    assert f(1) == expected_value(1)  # a miss: computed and stored again, with a fresh 10 s
    assert runs[-1] == 1 and len(runs) == (1 if where == "entry" else 2)
    advance(9)
    assert f(1) == expected_value(1)
    assert len(runs) == (1 if where == "entry" else 2)


@pytest.mark.parametrize("name", STORING)
def test_the_sweep_reclaims_expired_entries(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = make(name)
    advance = fake_clock(name, cache, monkeypatch)
    for x in range(3):
        cache.set("f", output=expected_value(x), ttl=5, x=x)
    cache.set("f", output=expected_value(9), x=9)
    advance(6)
    if name != "inmem":  # the Rust store has no count that does not purge (its len and stats do)
        assert stored_count(name, cache) == 4  # still there: expiry is lazy until read or swept
    assert cache.expire() == 3
    assert stored_count(name, cache) == 1
    if name == "inmem":
        assert cache.stats()["expirations"] == 3
    assert len(cache) == 1 and [e.inputs for e in cache] == [{"x": 9}]


def test_inmem_expired_entries_do_not_count_toward_max_size(monkeypatch: pytest.MonkeyPatch) -> None:
    cache = make("inmem", max_size=4)
    advance = fake_clock("inmem", cache, monkeypatch)
    for x in (1, 2):
        cache.set("f", output=x, ttl=5, x=x)
    for x in (3, 4):  # least recently used among the live ones, but live
        cache.set("f", output=x, x=x)
    advance(6)
    for x in (5, 6):
        cache.set("f", output=x, x=x)
    assert sorted(e.inputs["x"] for e in cache) == [3, 4, 5, 6]
    stats = cache.stats()
    assert stats["evictions"] == 0 and stats["expirations"] == 2
    cache.set("f", output=7, x=7)  # now the store is full of live entries: LRU evicts 3
    assert sorted(e.inputs["x"] for e in cache) == [4, 5, 6, 7]
    assert cache.stats()["evictions"] == 1


def test_disk_expired_entries_are_culled_before_live_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    value = 40 * 1024  # five fit in 256 KB (with diskcache's ~32 KB of SQLite pages), seven do not
    cache = make("disk", size_limit=256 * 1024)
    advance = fake_clock("disk", cache, monkeypatch)
    for x in (1, 2):  # the least recently stored, but live
        cache.set("f", output=expected_value(x, value), x=x)
    for x in (3, 4, 5):
        cache.set("f", output=expected_value(x, value), ttl=5, x=x)
    assert len(cache) == 5
    advance(6)
    for x in (6, 7):
        cache.set("f", output=expected_value(x, value), x=x)
        assert cache.volume() <= 256 * 1024
    assert sorted(e.inputs["x"] for e in cache) == [1, 2, 6, 7]
    assert all(cache.get("f", x=x) == expected_value(x, value) for x in (1, 2, 6, 7))
    assert stored_count("disk", cache) == 4


def test_inmem_real_short_ttl_on_the_monotonic_clock() -> None:
    cache = make("inmem")
    runs: list[int] = []

    @cache.memoize(ttl=0.2)
    def f(x: int) -> int:
        runs.append(x)
        return x

    f(1)
    f(1)
    assert runs == [1]
    time.sleep(0.35)
    f(1)
    assert runs == [1, 1]
