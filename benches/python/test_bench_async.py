"""Memoized coroutine hit: oxicache beside async-lru, aiocache and cashews, in one run.

Group ``async hit await f(1) x1000`` (compare rows within it; the target's ratio goes against the
``async_lru.alru_cache`` row):

* every row uses the same harness: one event loop per test (``asyncio.new_event_loop()``, default
  policy), and each benchmark round is ``loop.run_until_complete(_await_n(fn, 1000))``, a coroutine that
  awaits ``fn(1)`` 1000 times in a plain ``for`` loop. So the round time in µs is the cost per await in ns;
* the key is cached before the first round (one miss, awaited in the same loop), so every timed await is a
  hit of an already-cached key; each test checks afterwards that the function body ran exactly once;
* the rows with no cache give the floor: ``await`` of a plain ``async def`` returning a constant, and an
  empty round (``_await_n(fn, 0)``), which is the harness's fixed cost per round (``run_until_complete``
  of one coroutine) spread over 1000 awaits, so already included in every other row.

Peers, each in its ordinary in-memory form: ``async_lru.alru_cache(maxsize=None)`` (unbounded, like
``lru_cache(maxsize=None)`` in test_bench_memoize.py, and its cheapest hit: no LRU reordering);
aiocache ``@cached()`` with its default in-memory ``SimpleMemoryCache`` and no TTL; cashews
``@cache(ttl="1h")`` on a ``Cache()`` set up with ``"mem://"`` (the same class as the module-level
``cashews.cache``, kept private so that no global state leaks into other benchmarks).

At the end of the run the terminal summary prints each row's ratio to ``alru_cache`` (section
``async hit``), from the medians of this run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from oxicache import InMemCache

async_lru = pytest.importorskip("async_lru")
aiocache = pytest.importorskip("aiocache")
cashews = pytest.importorskip("cashews")

AWAITS = 1000
REFERENCE = "async_lru.alru_cache"
GROUP = f"async hit await f(1) x{AWAITS}"
AsyncFn = Callable[[int], Awaitable[int]]


def _cashews(fn: Callable[..., Any]) -> Any:
    cache = cashews.Cache()
    cache.setup("mem://")
    return cache(ttl="1h")(fn)


PEERS: dict[str, Callable[[Callable[..., Any]], Any]] = {
    "oxicache.InMemCache": lambda fn: InMemCache().memoize(fn),
    "async_lru.alru_cache": lambda fn: async_lru.alru_cache(maxsize=None)(fn),
    "aiocache.cached (SimpleMemoryCache)": lambda fn: aiocache.cached()(fn),
    "cashews (mem://)": _cashews,
}
peer_ids = list(PEERS)


async def _await_n(fn: AsyncFn, n: int) -> int | None:
    """The harness every row shares: n awaits of fn(1) inside the running loop."""
    result = None
    for _ in range(n):
        result = await fn(1)
    return result


async def const(x: int) -> int:
    return 2


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    lp = asyncio.new_event_loop()
    try:
        yield lp
    finally:
        lp.run_until_complete(lp.shutdown_asyncgens())
        lp.close()


@pytest.fixture(scope="module")
def medians(bench_summary: list[tuple[str, str]]) -> Iterator[dict[str, float]]:
    """Row -> median ns per await; the ratios to alru_cache go to the terminal summary at module end."""
    found: dict[str, float] = {}
    yield found
    ref = found.get(REFERENCE)
    for row, ns in found.items():
        ratio = f"{ns / ref:5.2f}x {REFERENCE}" if ref else "(no alru_cache row in this run)"
        bench_summary.append(("async hit", f"{row:<42} {ns:9.1f} ns per await  {ratio}"))


def _round(benchmark: Any, loop: asyncio.AbstractEventLoop, fn: AsyncFn, n: int = AWAITS) -> Any:
    note = "µs per round = ns per await" if n else f"the fixed cost of a round: µs per round = ns per await of the x{AWAITS} rows"
    benchmark.extra_info.update(awaits_per_round=n, unit_note=note)
    return benchmark(lambda: loop.run_until_complete(_await_n(fn, n)))


def _record(benchmark: Any, medians: dict[str, float], row: str) -> None:
    if benchmark.stats is not None:  # None under --benchmark-disable
        medians[row] = benchmark.stats.stats.median * 1e9 / AWAITS


@pytest.mark.benchmark(group=GROUP)
@pytest.mark.parametrize("peer", peer_ids)
def test_async_hit(benchmark: Any, loop: asyncio.AbstractEventLoop, medians: dict[str, float], peer: str) -> None:
    calls = 0

    async def f(x: int) -> int:
        nonlocal calls
        calls += 1
        return x * 2

    wrapped = PEERS[peer](f)
    assert loop.run_until_complete(wrapped(1)) == 2  # the miss that fills the cache, in the same loop
    benchmark.extra_info["peer"] = peer
    assert _round(benchmark, loop, wrapped) == 2
    assert calls == 1  # every timed await was a hit
    if hasattr(wrapped, "cache_info"):
        assert wrapped.cache_info().misses == 1
    _record(benchmark, medians, peer)


@pytest.mark.benchmark(group=GROUP)
def test_async_plain_const_no_cache(benchmark: Any, loop: asyncio.AbstractEventLoop, medians: dict[str, float]) -> None:
    """Floor: await of a plain ``async def`` returning a constant, through the same harness."""
    benchmark.extra_info["call"] = "await const(1), async def const(x): return 2"
    assert _round(benchmark, loop, const) == 2
    _record(benchmark, medians, "plain async def, no cache (floor)")


@pytest.mark.benchmark(group=GROUP)
def test_async_empty_round(benchmark: Any, loop: asyncio.AbstractEventLoop, medians: dict[str, float]) -> None:
    """The harness alone: run_until_complete of _await_n with no await, reported per 1000 awaits."""
    benchmark.extra_info["call"] = "loop.run_until_complete(_await_n(const, 0))"
    assert _round(benchmark, loop, const, n=0) is None
    _record(benchmark, medians, "empty round (harness cost / 1000)")
