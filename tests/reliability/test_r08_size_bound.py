"""Matrix row R8: size bound and eviction, with and without long TTLs (litellm #14864).

Adapted per backend:

- DiskCache: the row as written. ``size_limit=256 KB``, 2.5 MB of mixed 1 B-64 KB values, then one
  512 KB value. The bound is diskcache's ``volume()`` (SQLite pages plus value files). DiskCache culls
  back under ``size_limit`` after every store (diskcache alone culls at most ``cull_limit`` entries per
  store, which lets the folder grow without bound when the oldest entries are small: see
  ``test_disk_bound_holds_when_the_oldest_entries_are_tiny``), so the documented slack is zero for one
  writer; ``cull()`` is the public maintenance call. The eviction order is diskcache's
  ``eviction_policy``: oxicache keeps diskcache's default, least-recently-stored, under which reads do
  not protect an entry; the "hot keys survive" criterion is checked with
  ``eviction_policy="least-recently-used"`` on 1 B-4 KB values, and the default is asserted as
  documented. diskcache evicts in batches (up to ``cull_limit``, 10, per store; ``cull()`` 10 at a
  time), so when only ~15 large entries fit in 256 KB a batch can take recently read entries too: the
  hot-set guarantee with 1 B-64 KB values is InMemCache's, not DiskCache's.
- InMemCache: its bound is a count (``max_size``, LRU in the Rust store), not bytes. The byte bound is
  adapted to a count bound of 64 entries (256 KB / 4 KB); the same mixed values go in, hot keys are
  touched through memoized hits. A 512 KB value is one entry like any other, so "oversize" does not
  exist there: it is stored and displaces exactly one entry.
- JsonCache and DatabaseCache have no size bound (documented in their docstrings): they take no
  ``size_limit``/``max_size``, which is asserted so that the absence stays a decision.
"""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
from backends import make
from reliability_support import expected_value

from oxicache import CacheWarning, ValueEncodingError

LIMIT = 256 * 1024
TOTAL = 2_500_000
BIG = 512 * 1024
COUNT_LIMIT = LIMIT // 4096  # InMemCache: the byte bound as a count of ~4 KB entries
HOT = range(-8, 0)  # keys touched after every insert
TTLS = [pytest.param(None, id="no-ttl"), pytest.param("1d", id="ttl-1d")]


def mixed_sizes(seed: int) -> list[int]:
    """Log-uniform sizes from 1 B to 64 KB adding up to 2.5 MB."""
    rng = random.Random(seed)
    sizes: list[int] = []
    while sum(sizes) < TOTAL:
        sizes.append(int(math.exp(rng.uniform(0, math.log(65536)))))
    return sizes


def memoized(cache: Any, ttl: Any, sizes: dict[int, int]) -> tuple[Any, dict[int, int]]:
    """``f(i)`` = the oracle's value of ``sizes[i]`` bytes, counting runs per key."""
    runs: dict[int, int] = {}

    @cache.memoize(ttl=ttl)
    def f(i: int) -> bytes:
        runs[i] = runs.get(i, 0) + 1
        return expected_value(i, sizes[i])

    return f, runs


def assert_views_agree(cache: Any, f: Any) -> None:
    entries = list(cache)
    assert len(cache) == len(entries) == f.cache_info().currsize
    for entry in entries:  # and every survivor is its own key's value
        assert entry.output == expected_value(entry.inputs["i"], len(entry.output) - 32)


# ---- DiskCache ------------------------------------------------------------------------------------


@pytest.mark.parametrize("ttl", TTLS)
def test_disk_volume_stays_under_the_limit_after_every_store(ttl: Any, seed: int) -> None:
    cache = make("disk", size_limit=LIMIT)
    sizes = dict(enumerate(mixed_sizes(seed)))
    f, runs = memoized(cache, ttl, sizes)
    for i in sizes:
        assert f(i) == expected_value(i, sizes[i])
        assert cache.volume() <= LIMIT, f"volume {cache.volume()} > {LIMIT} after storing {i} ({sizes[i]} B)"
    assert 0 < len(cache) < len(sizes)
    assert cache.get(f, i=len(sizes) - 1) == expected_value(len(sizes) - 1, sizes[len(sizes) - 1])  # newest kept
    assert cache.cull() == 0  # nothing left to do
    assert_views_agree(cache, f)


def test_disk_bound_holds_when_the_oldest_entries_are_tiny() -> None:
    # diskcache culls at most cull_limit (10) entries per store: 64 KB stores each culling ten 1-byte
    # entries grew the folder by ~64 KB per store, far past the limit.
    cache = make("disk", size_limit=LIMIT)
    sizes = {i: 1 for i in range(300)} | {i: 65536 for i in range(300, 340)}
    f, _ = memoized(cache, None, sizes)
    for i in sizes:
        f(i)
        assert cache.volume() <= LIMIT, f"volume {cache.volume()} > {LIMIT} after storing {i} ({sizes[i]} B)"
    assert_views_agree(cache, f)


def test_disk_cull_restores_the_bound_after_the_limit_shrinks(seed: int) -> None:
    cache = make("disk", size_limit=4 * LIMIT)
    sizes = dict(enumerate(mixed_sizes(seed)[:80]))
    f, _ = memoized(cache, "1d", sizes)
    for i in sizes:
        f(i)
    before = len(cache)
    cache._dc.reset("size_limit", LIMIT)  # as another process opening the folder with a smaller limit would
    removed = cache.cull()
    assert cache.volume() <= LIMIT
    assert removed == before - len(cache) > 0
    assert_views_agree(cache, f)


@pytest.mark.parametrize("ttl", TTLS)
def test_disk_oversize_value_is_not_stored_and_evicts_nothing(ttl: Any, seed: int) -> None:
    cache = make("disk", size_limit=LIMIT)
    sizes = dict(enumerate(mixed_sizes(seed)[:60]))
    sizes[-1] = BIG
    f, runs = memoized(cache, ttl, sizes)
    for i in range(60):
        f(i)
    survivors = {e.key for e in cache}
    with pytest.warns(CacheWarning, match="size_limit") as caught:
        assert f(-1) == expected_value(-1, BIG)  # the caller gets its value
    assert len(caught) == 1
    assert {e.key for e in cache} == survivors  # nothing was evicted for it
    assert cache.get(f, i=-1) is ...
    with pytest.warns(CacheWarning, match="size_limit"):
        f(-1)
    assert runs[-1] == 2  # not stored: computed again
    # The direct API raises instead (storing is the point there), and writes nothing.
    with pytest.raises(ValueEncodingError, match="size_limit"):
        cache.set("g", output=b"x" * BIG, x=1)
    assert cache.get("g", x=1) is ...
    assert {e.key for e in cache} == survivors
    assert cache.volume() <= LIMIT
    assert_views_agree(cache, f)


@pytest.mark.parametrize("ttl", TTLS)
def test_disk_hot_keys_survive_under_lru(ttl: Any, seed: int) -> None:
    # Small values (1 B-4 KB, ~200 live entries): diskcache evicts in batches of up to cull_limit (10),
    # which must not reach the hot set. With 1 B-64 KB values only ~15 entries fit in 256 KB and a batch
    # can take recently read ones too (module docstring).
    cache = make("disk", size_limit=LIMIT, eviction_policy="least-recently-used")
    rng = random.Random(seed)
    sizes: dict[int, int] = {}
    while sum(sizes.values()) < TOTAL // 4:
        sizes[len(sizes)] = int(math.exp(rng.uniform(0, math.log(4096))))
    sizes.update({h: 100 for h in HOT})
    f, runs = memoized(cache, ttl, sizes)
    for i in sizes:
        f(i)
        if i % 4 == 0:
            for h in HOT:
                f(h)
        assert cache.volume() <= LIMIT
    assert all(runs[h] == 1 for h in HOT), {h: runs[h] for h in HOT}
    assert len(cache) < len(sizes)
    assert_views_agree(cache, f)


def test_disk_default_eviction_policy_is_least_recently_stored() -> None:
    # Documented (DiskCache docstring, docs/backends/disk.md): reads do not protect an entry by default.
    assert make("disk")._dc.eviction_policy == "least-recently-stored"


# ---- InMemCache (count bound) ---------------------------------------------------------------------


@pytest.mark.parametrize("ttl", TTLS)
def test_inmem_count_bound_and_hot_keys_under_lru(ttl: Any, seed: int) -> None:
    cache = make("inmem", max_size=COUNT_LIMIT)
    sizes = dict(enumerate(mixed_sizes(seed)))
    sizes.update({h: 100 for h in HOT})
    f, runs = memoized(cache, ttl, sizes)
    for i in sizes:
        assert f(i) == expected_value(i, sizes[i])
        for h in HOT:
            f(h)
        assert len(cache) <= COUNT_LIMIT
    assert all(runs[h] == 1 for h in HOT), {h: runs[h] for h in HOT}
    assert len(cache) == COUNT_LIMIT
    assert cache.stats()["evictions"] == len(sizes) - COUNT_LIMIT
    assert_views_agree(cache, f)
    # A 512 KB value is one entry: stored, displacing exactly one (the least recently used).
    sizes[-100] = BIG
    cold = sorted(e.inputs["i"] for e in cache if e.inputs["i"] >= 0)  # inserted in order, never touched
    assert f(-100) == expected_value(-100, BIG)
    assert len(cache) == COUNT_LIMIT
    assert cache.get(f, i=cold[0]) is ...
    assert all(cache.get(f, i=i) is not ... for i in cold[1:])
    assert cache.stats()["evictions"] == len(sizes) - COUNT_LIMIT
    assert cache.get(f, i=-100) == expected_value(-100, BIG)
    assert all(runs[h] == 1 for h in HOT)
    assert_views_agree(cache, f)


# ---- no bound -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["json", "sqlite"])
@pytest.mark.parametrize("option", ["size_limit", "max_size"])
def test_json_and_database_caches_have_no_size_bound(name: str, option: str) -> None:
    with pytest.raises(TypeError, match=option):
        make(name, **{option: LIMIT})
