"""Whole-store operations at N entries per function, beside diskcache's own equivalents (issue 17).

Each store holds two batch-memoized functions, ``f`` and ``g``, with N entries each (``f(xs) -> [x * 2]``),
built once per store and size in the untimed setup. Groups (compare rows within a group):

* ``cache_info N``: ``f.cache_info()`` (counts f's live entries) on DiskCache, JsonCache and
  DatabaseCache(sqlite), beside diskcache's ``len(cache)`` (its O(1) count of everything; diskcache has
  no count per tag);
* ``len N``: ``len(cache)`` on the same stores (2N entries), beside diskcache's ``len``;
* ``cache_clear N``: ``f.cache_clear()``, the N entries of f stored again before each round (untimed),
  beside diskcache's ``evict(tag)`` of N items tagged alike next to N items of another tag;
* ``batch hits N``: ``f(list(range(N)))`` where every item is stored (one multi-key read per batch on
  DatabaseCache and RedisCache), beside diskcache's ``[cache.get(k) for k in keys]``. PostgreSQL, MySQL
  and Redis rows run when ``OXICACHE_PG_URL`` / ``OXICACHE_MYSQL_URL`` / ``OXICACHE_REDIS_URL`` are set.

N is 1,000 and 10,000; ``OXICACHE_BENCH_1E5=1`` adds 100,000 (building those stores takes minutes).

    python -m pytest benches/python/test_bench_store_ops.py --benchmark-only \\
        --benchmark-columns=median,iqr,rounds --benchmark-sort=name -p no:cacheprovider
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import oxicache

diskcache = pytest.importorskip("diskcache")

SIZES = [1_000, 10_000] + ([100_000] if os.environ.get("OXICACHE_BENCH_1E5") else [])
BUILD = 1_000  # items per batch while filling a store
CLEAR_ROUNDS = 3


def _stores() -> dict[str, Any]:
    makers: dict[str, Any] = {
        "oxicache.DiskCache": lambda d: oxicache.DiskCache(os.path.join(d, "disk")),
        "oxicache.JsonCache": lambda d: oxicache.JsonCache(os.path.join(d, "json")),
        "oxicache.DatabaseCache(sqlite)": lambda d: oxicache.DatabaseCache(provider="sqlite", database=os.path.join(d, "c.db")),
    }
    for label, env in (("postgresql", "OXICACHE_PG_URL"), ("mysql", "OXICACHE_MYSQL_URL")):
        if os.environ.get(env):
            makers[f"oxicache.DatabaseCache({label})"] = (
                lambda d, url=os.environ[env]: oxicache.DatabaseCache(url=url, table="b" + uuid.uuid4().hex[:10]))
    if os.environ.get("OXICACHE_REDIS_URL"):
        makers["oxicache.RedisCache"] = lambda d: oxicache.RedisCache(os.environ["OXICACHE_REDIS_URL"], prefix="b" + uuid.uuid4().hex[:8])
    return makers


STORES = _stores()
LOCAL = [name for name in STORES if "sqlite" in name or "Disk" in name or "Json" in name]


def _batch(cache: Any, name: str) -> Any:
    @cache.batch_memoize(name=name)
    def f(xs: list[int]) -> list[int]:
        return [x * 2 for x in xs]

    return f


def _fill(f: Any, n: int) -> None:
    for start in range(0, n, BUILD):
        f(list(range(start, min(n, start + BUILD))))


class Built:
    def __init__(self, cache: Any, n: int) -> None:
        self.cache, self.n = cache, n
        self.f, self.g = _batch(cache, "f"), _batch(cache, "g")
        _fill(self.f, n)
        _fill(self.g, n)


_built: dict[tuple[str, int], Built] = {}


@pytest.fixture(scope="module")
def folder() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="oxicache-store-ops-") as d:
        yield d
    for built in _built.values():
        if not isinstance(built.cache, (oxicache.DiskCache, oxicache.JsonCache)):
            built.cache.clear()
    _built.clear()


def built(folder: str, name: str, n: int) -> Built:
    if (name, n) not in _built:
        _built[(name, n)] = Built(STORES[name](os.path.join(folder, f"{len(_built)}")), n)
    return _built[(name, n)]


_raw: dict[int, Any] = {}


def raw_diskcache(folder: str, n: int) -> Any:
    """A diskcache.Cache with N items tagged "f" and N tagged "g" (keys ("f", i) and ("g", i))."""
    if n not in _raw:
        cache = diskcache.Cache(os.path.join(folder, f"raw{n}"), tag_index=True)
        for tag in ("f", "g"):
            for i in range(n):
                cache.set((tag, i), i * 2, tag=tag)
        _raw[n] = cache
    return _raw[n]


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("name", LOCAL + ["diskcache len()"])
def test_cache_info(benchmark: Any, folder: str, name: str, n: int) -> None:
    benchmark.group = f"cache_info {n}"
    if name == "diskcache len()":
        raw = raw_diskcache(folder, n)
        assert benchmark(len, raw) == 2 * n
        return
    b = built(folder, name, n)
    assert benchmark(b.f.cache_info).currsize == n


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("name", LOCAL + ["diskcache len()"])
def test_len(benchmark: Any, folder: str, name: str, n: int) -> None:
    benchmark.group = f"len {n}"
    cache = raw_diskcache(folder, n) if name == "diskcache len()" else built(folder, name, n).cache
    assert benchmark(len, cache) == 2 * n


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("name", LOCAL + ["diskcache evict(tag)"])
def test_cache_clear(benchmark: Any, folder: str, name: str, n: int) -> None:
    benchmark.group = f"cache_clear {n}"
    if name == "diskcache evict(tag)":
        raw = raw_diskcache(folder, n)

        def refill_raw() -> None:
            for i in range(n):
                raw.set(("f", i), i * 2, tag="f")

        benchmark.pedantic(lambda: raw.evict("f"), setup=refill_raw, rounds=CLEAR_ROUNDS, iterations=1)
        assert len(raw) == n
        refill_raw()  # as built, for the other tests
        return
    b = built(folder, name, n)
    benchmark.pedantic(b.f.cache_clear, setup=lambda: _fill(b.f, n), rounds=CLEAR_ROUNDS, iterations=1)
    assert b.f.cache_info().currsize == 0
    _fill(b.f, n)  # as built, for the other tests


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("name", list(STORES) + ["diskcache get loop"])
def test_batch_hits(benchmark: Any, folder: str, name: str, n: int) -> None:
    benchmark.group = f"batch hits {n}"
    items = list(range(n))
    if name == "diskcache get loop":
        raw = raw_diskcache(folder, n)
        keys = [("f", i) for i in items]
        assert benchmark.pedantic(lambda: [raw.get(k) for k in keys], rounds=5, iterations=1) == [i * 2 for i in items]
        return
    b = built(folder, name, n)
    before = b.f.cache_info().misses
    assert benchmark.pedantic(b.f, args=(items,), rounds=5, iterations=1) == [i * 2 for i in items]
    assert b.f.cache_info().misses == before  # every item a hit
