"""Memoized-call overhead: oxicache beside functools.lru_cache, cachetools and cachebox, in one run.

Groups (compare rows within a group; ratios go against the ``lru_cache`` row of the same group):

* ``hit f(1)``: the wrapped function called directly by pytest-benchmark's loop (``f(1)``), no lambda, so
  every peer pays the same loop overhead;
* ``miss f(new int) x1000``: each round creates a fresh, empty cache (untimed setup) and feeds it 1000 ints
  never seen before, so every timed call is a miss + store. The round time in µs is the cost per call in ns;
* ``hit g dict arg``: oxicache with ``g(1, {"k": 1, "tags": ["a", "b"]}, scale=2.0)``; the peers key on
  ``hash()`` and reject a dict (``extra_info["accepts_dict_arg"]``), so they run the hashable
  ``g(1, "abc", scale=2.0)`` instead, which is the reference for the target.

Bounded peers (cachetools, cachebox) get a capacity well above what a benchmark inserts, so nothing is
ever evicted; ``lru_cache`` and ``InMemCache`` are unbounded, as in their default use.
"""

from __future__ import annotations

import functools
import itertools
from typing import Any, Callable

import pytest

from oxicache import InMemCache

cachetools = pytest.importorskip("cachetools")
cachebox = pytest.importorskip("cachebox")

CAPACITY = 1 << 20
MISS_BATCH = 1000
MISS_ROUNDS = 150
DICT_ARG = {"k": 1, "tags": ["a", "b"]}


def f(x: int) -> int:
    return x * 2


def g(a: int, b: Any, scale: float = 1.0) -> float:
    return a * scale


PEERS: dict[str, Callable[[Callable[..., Any]], Callable[..., Any]]] = {
    "oxicache.InMemCache": lambda fn: InMemCache().memoize(fn),
    "functools.lru_cache": lambda fn: functools.lru_cache(maxsize=None)(fn),
    "cachetools.LRUCache": lambda fn: cachetools.cached(cachetools.LRUCache(maxsize=CAPACITY))(fn),
    "cachebox.LRUCache": lambda fn: cachebox.cached(cachebox.LRUCache(maxsize=CAPACITY))(fn),
}
peer_ids = list(PEERS)


def _accepts_dict(wrapped: Callable[..., Any]) -> bool:
    try:
        wrapped(1, DICT_ARG, scale=2.0)
    except TypeError:
        return False
    return True


@pytest.mark.benchmark(group="hit f(1)")
@pytest.mark.parametrize("peer", peer_ids)
def test_hit_f(benchmark: Any, peer: str) -> None:
    wrapped = PEERS[peer](f)
    assert wrapped(1) == 2  # the miss that fills the cache
    benchmark.extra_info["peer"] = peer
    assert benchmark(wrapped, 1) == 2
    if hasattr(wrapped, "cache_info"):  # every timed call was a hit
        assert wrapped.cache_info().misses == 1


@pytest.mark.benchmark(group="hit f(1)")
def test_hit_f_bare_call_no_cache(benchmark: Any) -> None:
    """Reference: the unmemoized call through the same benchmark loop."""
    assert benchmark(f, 1) == 2


@pytest.mark.benchmark(group=f"miss f(new int) x{MISS_BATCH}")
@pytest.mark.parametrize("peer", peer_ids)
def test_miss_f(benchmark: Any, peer: str) -> None:
    make = PEERS[peer]
    fresh = itertools.count(10**6, MISS_BATCH)  # ints above the small-int cache, never repeated
    calls = 0

    def counted(x: int) -> int:
        nonlocal calls
        calls += 1
        return x * 2

    def setup() -> tuple[tuple[Any, range], dict[str, Any]]:
        start = next(fresh)
        return (make(counted), range(start, start + MISS_BATCH)), {}

    def run(wrapped: Callable[[int], int], ints: range) -> None:
        for i in ints:
            wrapped(i)

    benchmark.extra_info.update(peer=peer, calls_per_round=MISS_BATCH, unit_note="µs per round = ns per call")
    benchmark.pedantic(run, setup=setup, rounds=MISS_ROUNDS, warmup_rounds=5, iterations=1)
    assert calls == (MISS_ROUNDS + 5) * MISS_BATCH  # every timed call was a miss


@pytest.mark.benchmark(group="hit g dict arg")
@pytest.mark.parametrize("peer", peer_ids)
def test_hit_g(benchmark: Any, peer: str) -> None:
    wrapped = PEERS[peer](g)
    accepts = _accepts_dict(wrapped)
    benchmark.extra_info.update(peer=peer, accepts_dict_arg=accepts)
    if accepts:
        benchmark.extra_info["call"] = 'g(1, {"k": 1, "tags": ["a", "b"]}, scale=2.0)'
        assert benchmark(wrapped, 1, DICT_ARG, scale=2.0) == 2.0
    else:
        benchmark.extra_info["call"] = 'g(1, "abc", scale=2.0)  (rejects the dict argument: TypeError)'
        assert wrapped(1, "abc", scale=2.0) == 2.0
        assert benchmark(wrapped, 1, "abc", scale=2.0) == 2.0


@pytest.mark.benchmark(group="hit g dict arg")
def test_hit_g_hashable_oxicache(benchmark: Any) -> None:
    """oxicache on the same hashable call the peers run: separates the dict's cost from the rest."""
    wrapped = InMemCache().memoize(g)
    assert wrapped(1, "abc", scale=2.0) == 2.0
    benchmark.extra_info.update(peer="oxicache.InMemCache", call='g(1, "abc", scale=2.0)')
    assert benchmark(wrapped, 1, "abc", scale=2.0) == 2.0
