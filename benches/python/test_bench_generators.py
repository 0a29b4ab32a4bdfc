"""Memoized generators of 1000 ints: replaying a cached generator against iterating a list, in one run.

Groups (compare rows within a group; the ratios printed at the end go against each group's reference row):

* ``generator replay 1000 ints``: the target. The reference is ``for x in items: pass`` over a list of the
  same 1000 ints; oxicache runs ``for x in gen(1000): pass`` on ``InMemCache().memoize(gen)`` with the key
  already cached, so each round includes the memoized call (lookup, ``Replay`` created) and then iterates
  the ``Replay``. Both loops are closures called by pytest-benchmark's loop. For information: the unmemoized
  generator run with the same loop, and the memoized call alone (``gen(1000)``, the ``Replay`` not iterated);
* ``generator miss 1000 ints (record + store)``: each round gets a fresh, empty ``InMemCache`` (untimed
  setup) and runs ``for x in gen(1000): pass`` once, so the generator runs, the wrapper records its 1000
  items and stores the list when it returns. The reference is the same loop over the unmemoized generator
  under the same harness;
* ``async generator replay 1000 ints x10`` (information, no target): inside one event loop, each round is
  ``loop.run_until_complete`` of a coroutine doing ``async for x in agen(1000): pass`` 10 times, so the
  round time divided by 10 is one replay (the harness's fixed cost, about 9 µs per round here, is spread
  over the 10). The reference is the unmemoized async generator with the same harness.

At the end of the run the terminal summary prints each row's median in µs per 1000-item run (per replay in
the async group) and its ratio to its group's reference, from the medians of this run.
"""

from __future__ import annotations

import asyncio
import collections.abc
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from oxicache import InMemCache

N = 1000
ITEMS = list(range(N))
MISS_ROUNDS = 200
ASYNC_REPLAYS = 10

G_REPLAY = f"generator replay {N} ints"
G_MISS = f"generator miss {N} ints (record + store)"
G_ASYNC = f"async generator replay {N} ints x{ASYNC_REPLAYS}"
REFERENCES = {  # group -> its reference row
    G_REPLAY: f"list of {N} ints (reference)",
    G_MISS: "plain generator, no cache (reference)",
    G_ASYNC: "plain async generator, no cache (reference)",
}


def gen_plain(n: int) -> Iterator[int]:
    for i in range(n):
        yield i


async def agen_plain(n: int) -> AsyncIterator[int]:
    for i in range(n):
        yield i


def _counted_gen() -> tuple[Callable[[int], Iterator[int]], list[int]]:
    runs: list[int] = []

    def gen(n: int) -> Iterator[int]:
        runs.append(n)
        for i in range(n):
            yield i

    return gen, runs


@pytest.fixture(scope="module")
def medians(bench_summary: list[tuple[str, str]]) -> Iterator[dict[str, dict[str, float]]]:
    """group -> row -> median µs per unit; ratios to each group's reference go to the terminal summary."""
    found: dict[str, dict[str, float]] = {}
    yield found
    for group, rows in found.items():
        ref_row = REFERENCES[group]
        ref = rows.get(ref_row)
        for row, us in rows.items():
            ratio = f"{us / ref:5.2f}x the reference" if ref else "(no reference row in this run)"
            bench_summary.append((group, f"{row:<44} {us:8.2f} µs  {ratio}"))


def _record(benchmark: Any, medians: dict[str, dict[str, float]], group: str, row: str, per: int = 1) -> None:
    benchmark.extra_info["row"] = row
    if benchmark.stats is not None:  # None under --benchmark-disable
        medians.setdefault(group, {})[row] = benchmark.stats.stats.median * 1e6 / per


# --- replay (the target) -------------------------------------------------------------------------------


@pytest.mark.benchmark(group=G_REPLAY)
def test_replay_list_reference(benchmark: Any, medians: dict[str, dict[str, float]]) -> None:
    items = list(ITEMS)

    def run() -> None:
        for x in items:
            pass

    benchmark(run)
    _record(benchmark, medians, G_REPLAY, REFERENCES[G_REPLAY])


@pytest.mark.benchmark(group=G_REPLAY)
def test_replay_oxicache(benchmark: Any, medians: dict[str, dict[str, float]]) -> None:
    gen, runs = _counted_gen()
    wrapped = InMemCache().memoize(gen)
    assert list(wrapped(N)) == ITEMS  # the miss that fills the cache
    replay = wrapped(N)
    assert isinstance(replay, collections.abc.Generator) and list(replay) == ITEMS

    def run() -> None:
        for x in wrapped(N):
            pass

    benchmark(run)
    assert runs == [N]  # every timed call was a replay
    _record(benchmark, medians, G_REPLAY, "oxicache.InMemCache replay")


@pytest.mark.benchmark(group=G_REPLAY)
def test_replay_plain_generator_no_cache(benchmark: Any, medians: dict[str, dict[str, float]]) -> None:
    """Information: what running the generator itself costs with the same loop."""

    def run() -> None:
        for x in gen_plain(N):
            pass

    benchmark(run)
    _record(benchmark, medians, G_REPLAY, "plain generator, no cache (information)")


@pytest.mark.benchmark(group=G_REPLAY)
def test_replay_call_only_oxicache(benchmark: Any, medians: dict[str, dict[str, float]]) -> None:
    """Information: the memoized call alone (lookup + Replay), included once in each replay round."""
    gen, runs = _counted_gen()
    wrapped = InMemCache().memoize(gen)
    assert list(wrapped(N)) == ITEMS
    benchmark(wrapped, N)
    assert runs == [N]
    _record(benchmark, medians, G_REPLAY, "oxicache gen(1000) call only (information)")


# --- miss: record + store -------------------------------------------------------------------------------


def _miss_bench(benchmark: Any, make: Callable[[], Callable[[int], Iterator[int]]]) -> None:
    def setup() -> tuple[tuple[Callable[[int], Iterator[int]]], dict[str, Any]]:
        return (make(),), {}

    def run(fn: Callable[[int], Iterator[int]]) -> None:
        for x in fn(N):
            pass

    benchmark.pedantic(run, setup=setup, rounds=MISS_ROUNDS, warmup_rounds=5, iterations=1)


@pytest.mark.benchmark(group=G_MISS)
def test_miss_oxicache(benchmark: Any, medians: dict[str, dict[str, float]]) -> None:
    gen, runs = _counted_gen()
    caches: list[tuple[InMemCache, Any]] = []

    def make() -> Callable[[int], Iterator[int]]:
        cache = InMemCache()
        wrapped = cache.memoize(gen)
        caches.append((cache, wrapped))
        return wrapped

    _miss_bench(benchmark, make)
    assert len(runs) == MISS_ROUNDS + 5  # every timed call ran the generator: a miss
    for cache, wrapped in caches:  # and each one stored the complete list
        assert len(cache) == 1 and cache.get(wrapped, n=N) == ITEMS
    _record(benchmark, medians, G_MISS, "oxicache.InMemCache miss (fresh cache)")


@pytest.mark.benchmark(group=G_MISS)
def test_miss_plain_generator_reference(benchmark: Any, medians: dict[str, dict[str, float]]) -> None:
    _miss_bench(benchmark, lambda: gen_plain)
    _record(benchmark, medians, G_MISS, REFERENCES[G_MISS])


# --- async generator replay (information) ---------------------------------------------------------------


async def _replay_async(agen: Callable[[int], AsyncIterator[int]], times: int) -> int:
    count = 0
    for _ in range(times):
        async for x in agen(N):
            count += 1
    return count


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    lp = asyncio.new_event_loop()
    try:
        yield lp
    finally:
        lp.run_until_complete(lp.shutdown_asyncgens())
        lp.close()


def _async_bench(benchmark: Any, loop: asyncio.AbstractEventLoop, agen: Callable[[int], AsyncIterator[int]]) -> None:
    benchmark.extra_info.update(replays_per_round=ASYNC_REPLAYS, unit_note=f"round time / {ASYNC_REPLAYS} = one replay")
    assert benchmark(lambda: loop.run_until_complete(_replay_async(agen, ASYNC_REPLAYS))) == N * ASYNC_REPLAYS


@pytest.mark.benchmark(group=G_ASYNC)
def test_async_replay_oxicache(benchmark: Any, loop: asyncio.AbstractEventLoop, medians: dict[str, dict[str, float]]) -> None:
    runs: list[int] = []

    async def agen(n: int) -> AsyncIterator[int]:
        runs.append(n)
        for i in range(n):
            yield i

    wrapped = InMemCache().memoize(agen)
    assert loop.run_until_complete(_replay_async(wrapped, 1)) == N  # the miss that fills the cache
    _async_bench(benchmark, loop, wrapped)
    assert runs == [N]  # every timed run was a replay
    _record(benchmark, medians, G_ASYNC, "oxicache.InMemCache async replay", per=ASYNC_REPLAYS)


@pytest.mark.benchmark(group=G_ASYNC)
def test_async_replay_plain_reference(benchmark: Any, loop: asyncio.AbstractEventLoop, medians: dict[str, dict[str, float]]) -> None:
    _async_bench(benchmark, loop, agen_plain)
    _record(benchmark, medians, G_ASYNC, REFERENCES[G_ASYNC], per=ASYNC_REPLAYS)

