"""The behaviours async-lru's tests check (aio-libs/async-lru: test_cancel, test_exception, test_cache_clear,
test_thread_safety, test_async_lru, ...), run on oxicache's memoized coroutine functions: on InMemCache, the
persistent backends, NoCache and CallbackCache (tests/backends.py).

Differences from async-lru that are oxicache's documented behaviour (docs/memoize.md), asserted as such:
tasks that wait for another task's run of their key count as misses (async-lru counts them as hits); a
decorated function works across successive ``asyncio.run()`` loops (async-lru raises for a second loop);
NoCache runs every call (no merging); CallbackCache merges concurrent calls but stores nothing.

Every test is bounded (``asyncio.wait_for`` and a pytest timeout), so a hang is a failure. Tests that fail on
today's main because of a defect are ``xfail(strict=True)``: the mark must go when the fix lands.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import traceback
import weakref

import pytest
from backends import BACKENDS, make

from oxicache import CacheInfo, InMemCache

pytestmark = pytest.mark.timeout(60)

ALL = list(BACKENDS)  # inmem, none, callback, disk, json, sqlite, postgresql, mysql
MERGING = [n for n in ALL if n != "none"]  # every backend but NoCache runs one call per key at a time
NO_HANG = 10.0  # seconds: no await below should take anywhere near this


DEFAULT = ["inmem", "none", "callback", "disk", "sqlite"]  # one of each engine; the rest run with --run-slow


def _matrix(names: list[str] = ALL) -> list:
    """``names`` as parameters, those outside DEFAULT marked slow (the same Python engine as disk and sqlite)."""
    return [n if n in DEFAULT else pytest.param(n, marks=pytest.mark.slow) for n in names]


def _stores(name: str) -> bool:
    return BACKENDS[name].stores


def _run(coro, timeout: float = NO_HANG):
    async def bounded():
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


class _Flight:
    """A memoized coroutine function that records who ran it and can be held inside its body."""

    def __init__(self, cache, delay: float = 0.2, fail: bool = False) -> None:
        self.runs: list[object] = []
        self.leaders: list[asyncio.Task] = []
        self.finished: list[object] = []
        self.entered: asyncio.Event | None = None
        self.delay = delay

        @cache.memoize
        async def fetch(key):
            self.runs.append(key)
            self.leaders.append(asyncio.current_task())
            if self.entered is not None:
                self.entered.set()
            await asyncio.sleep(self.delay)
            if fail:
                raise ValueError(f"upstream failed for {key}")
            self.finished.append(key)
            return {"key": key}

        self.fetch = fetch

    async def started(self) -> None:
        """Waits until some task is inside the body (it leads the flight)."""
        self.entered = asyncio.Event()
        if not self.runs:
            await asyncio.wait_for(self.entered.wait(), NO_HANG)


# ---- one key, many tasks --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL)
def test_concurrent_calls_of_one_key_share_one_run(name):
    # async-lru: test_alru_cache_coros_waiting_same_value, test_concurrent_same_loop_works
    cache = make(name)
    flight = _Flight(cache, delay=0.05)

    async def main():
        return await asyncio.gather(*(flight.fetch("a") for _ in range(10)))

    assert _run(main()) == [{"key": "a"}] * 10
    assert len(flight.runs) == (10 if name == "none" else 1)
    info = flight.fetch.cache_info()
    assert info.hits + info.misses == 10
    assert _run(main()) == [{"key": "a"}] * 10  # a second event loop
    info = flight.fetch.cache_info()
    assert info.hits + info.misses == 20
    if _stores(name):
        assert len(flight.runs) == 1
        assert (info.sets, info.currsize) == (1, 1)
        assert info.hits >= 10  # the second loop only hits
        assert [e.output for e in cache] == [{"key": "a"}]  # the value, never a coroutine
    if name == "inmem":
        # docs/memoize.md: the tasks that waited count as misses (async-lru counts them as hits)
        assert info[:2] == (10, 10)


@pytest.mark.parametrize("name", ALL)
def test_different_keys_run_separately_and_concurrently(name):
    cache = make(name)
    delay = 0.4  # run one after another, the five take 2 s; together, 0.4 s plus the store's I/O
    flight = _Flight(cache, delay=delay)

    async def main():
        started = time.monotonic()
        results = await asyncio.gather(*(flight.fetch(k) for k in range(5)))
        return results, time.monotonic() - started

    results, elapsed = _run(main())
    assert results == [{"key": k} for k in range(5)]
    assert sorted(flight.runs) == list(range(5))
    assert elapsed < 5 * delay * 0.6, f"keys waited on each other: {elapsed:.2f} s"


@pytest.mark.parametrize(
    ("max_size", "rounds"),
    [
        # (inputs gathered, cache_clear() first, (hits, misses, currsize) after)
        (4, [([1, 2, 3], False, (0, 3, 3)), ([1, 1, 1], True, (2, 1, 1)), ([1, 2, 3, 4] * 2, True, (4, 4, 4))]),
        (3, [([3, 4, 5], False, (0, 3, 3)), ([3, 2, 1], False, (1, 5, 3))]),
        (None, [([1, 2, 3, 4] * 2, False, (4, 4, 4))]),
        (0, [([1, 2, 3, 4] * 2, False, (0, 8, 0))]),
    ],
    ids=["size-4", "lru-eviction", "unbounded", "size-0"],
)
def test_bounded_inmem_cache_counts_like_async_lru(max_size, rounds):
    # async-lru: test_alru_cache_basic, test_alru_cache_removing_lru_keys, test_alru_cache_none_max_size,
    # test_alru_cache_zero_max_size, test_cache_clear (coroutines that finish without awaiting, gathered)
    cache = InMemCache(max_size=max_size)
    runs = []

    @cache.memoize
    async def coro(val):
        runs.append(val)
        return val

    before = 0  # misses counted before this round
    for inputs, clear_first, (hits, misses, currsize) in rounds:
        if clear_first:
            coro.cache_clear()
            assert coro.cache_info()[:4] == (0, 0, max_size, 0)
            before = 0
        del runs[:]

        async def main(inputs=inputs):
            return await asyncio.gather(*(coro(v) for v in inputs))

        assert _run(main()) == inputs
        assert coro.cache_info()[:4] == (hits, misses, max_size, currsize)
        assert len(runs) == misses - before  # every miss ran the coroutine: none of them waited
        before = misses


# ---- exceptions -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL)
def test_exception_reaches_every_waiter_and_is_not_cached(name):
    # async-lru: test_alru_not_cache_exception (cache_exceptions=False is oxicache's only behaviour)
    cache = make(name)
    flight = _Flight(cache, delay=0.25, fail=True)  # long enough for every lookup to reach the flight

    async def main():
        return await asyncio.gather(*(flight.fetch(7) for _ in range(5)), return_exceptions=True)

    outcomes = _run(main())
    assert all(type(o) is ValueError and str(o) == "upstream failed for 7" for o in outcomes)
    assert len(flight.runs) == (5 if name == "none" else 1)
    assert len(cache) == 0
    assert flight.fetch.cache_info().errors == len(flight.runs)
    flight.delay = 0

    async def once():
        try:
            await flight.fetch(7)
        except ValueError as err:
            return len(traceback.extract_tb(err.__traceback__))
        raise AssertionError("the exception was cached as a value")

    depths = [_run(once()) for _ in range(3)]
    assert len(set(depths)) == 1  # the traceback does not grow from one call to the next
    assert len(flight.runs) == (8 if name == "none" else 4)  # every later call ran again


# ---- cancellation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "num_to_cancel"),
    [(n, 1) for n in DEFAULT]
    + [(n, k) for n in ("inmem", "disk") for k in (0, 2, 3)]
    + [("none", 3)]
    + [pytest.param(n, 1, marks=pytest.mark.slow) for n in ALL if n not in DEFAULT],
)
def test_cancelling_some_of_three_callers(name, num_to_cancel):
    # async-lru: test_cancel: the run finishes while at least one caller still wants it
    cache = make(name)
    flight = _Flight(cache, delay=0.1)

    async def main():
        tasks = [asyncio.ensure_future(flight.fetch(1)) for _ in range(3)]
        await flight.started()
        for task in tasks[:num_to_cancel]:
            task.cancel()
        outcomes = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), NO_HANG)
        await asyncio.sleep(0.15)  # a run nobody waits for any more would have finished by now
        return outcomes

    outcomes = _run(main())
    assert all(isinstance(o, asyncio.CancelledError) for o in outcomes[:num_to_cancel])
    assert outcomes[num_to_cancel:] == [{"key": 1}] * (3 - num_to_cancel)
    assert bool(flight.finished) == (num_to_cancel < 3)
    if name != "none":
        assert len(flight.finished) <= 1
        assert len(flight.runs) <= 2  # at most one hand-over


@pytest.mark.parametrize("name", _matrix(MERGING))
def test_cancelling_a_waiter_leaves_the_leader_and_the_others_alone(name):
    cache = make(name)
    flight = _Flight(cache, delay=0.2)

    async def main():
        tasks = [asyncio.ensure_future(flight.fetch(1)) for _ in range(4)]
        await flight.started()
        await asyncio.sleep(0.05)  # every task has reached the flight
        (leader,) = flight.leaders
        victim = next(t for t in tasks if t is not leader)
        victim.cancel()
        outcomes = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), NO_HANG)
        return [o for t, o in zip(tasks, outcomes) if t is victim], [o for t, o in zip(tasks, outcomes) if t is not victim]

    cancelled, others = _run(main())
    assert isinstance(cancelled[0], asyncio.CancelledError)
    assert others == [{"key": 1}] * 3
    assert flight.runs == [1] and flight.finished == [1]  # the leader ran once, to the end
    if _stores(name):
        assert [e.output for e in cache] == [{"key": 1}]


@pytest.mark.parametrize("how", ["cancel", "timeout"])
@pytest.mark.parametrize("name", _matrix(MERGING))
def test_cancelled_leader_hands_over(name, how):
    cache = make(name)
    flight = _Flight(cache, delay=0.2)

    async def main():
        if how == "timeout":
            first = asyncio.ensure_future(asyncio.wait_for(flight.fetch(1), 0.1))
        else:
            first = asyncio.ensure_future(flight.fetch(1))
        await flight.started()
        waiters = [asyncio.ensure_future(flight.fetch(1)) for _ in range(5)]
        await asyncio.sleep(0.05)
        if how == "cancel":
            flight.leaders[0].cancel()
        results = await asyncio.wait_for(asyncio.gather(*waiters), NO_HANG)
        with pytest.raises((asyncio.CancelledError, asyncio.TimeoutError)):
            await first
        return results

    assert _run(main()) == [{"key": 1}] * 5
    assert flight.runs == [1, 1]  # the cancelled run, then one waiter's
    assert flight.finished == [1]
    if _stores(name):
        assert _run(flight.fetch(1)) == {"key": 1}
        assert flight.runs == [1, 1]


@pytest.mark.parametrize("name", _matrix(MERGING))
def test_a_waiters_timeout_leaves_the_others_unaffected(name):
    cache = make(name)
    flight = _Flight(cache, delay=0.2)

    async def main():
        leader = asyncio.ensure_future(flight.fetch(1))
        await flight.started()
        impatient = asyncio.ensure_future(asyncio.wait_for(flight.fetch(1), 0.05))
        patient = [asyncio.ensure_future(flight.fetch(1)) for _ in range(3)]
        with pytest.raises(asyncio.TimeoutError):
            await impatient
        return await asyncio.wait_for(asyncio.gather(leader, *patient), NO_HANG)

    assert _run(main()) == [{"key": 1}] * 4
    assert flight.runs == [1] and flight.finished == [1]


# ---- event loops, threads -------------------------------------------------------------------------


@pytest.mark.parametrize("name", _matrix(ALL))
def test_successive_event_loops_even_after_a_loop_closed_mid_flight(name):
    # async-lru: test_thread_safety's cross-loop tests raise RuntimeError for a second loop; oxicache binds
    # nothing to a loop (docs/memoize.md), so every loop works, including after one closed during a run.
    cache = make(name)
    flight = _Flight(cache, delay=0.1)
    with pytest.raises(asyncio.TimeoutError):
        asyncio.run(asyncio.wait_for(flight.fetch(1), 0.05))  # the loop closes with the run cancelled
    cancelled = list(flight.runs)  # [1], or [] when the lookup itself outlasted the timeout
    assert flight.finished == []
    assert _run(flight.fetch(1), 5) == {"key": 1}
    assert _run(flight.fetch(1), 5) == {"key": 1}
    assert _run(flight.fetch(2), 5) == {"key": 2}
    assert flight.runs == cancelled + ([1, 2] if _stores(name) else [1, 1, 2])


@pytest.mark.parametrize("name", _matrix(ALL))
def test_event_loops_in_several_threads(name):
    cache = make(name)
    flight = _Flight(cache, delay=0.05)
    results, errors = [], []

    def worker():
        async def main():
            return await asyncio.gather(*(flight.fetch(k % 3) for k in range(12)))

        try:
            results.append(_run(main()))
        except BaseException as err:  # noqa: BLE001  (reported below)
            errors.append(err)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert results == [[{"key": k % 3} for k in range(12)]] * 4
    info = flight.fetch.cache_info()
    assert info.hits + info.misses == 48
    if name != "none":
        for k in range(3):
            assert 1 <= flight.runs.count(k) <= 4  # at most one run per key per event loop
    if _stores(name):
        assert info.currsize == 3


# ---- methods, cache_clear -------------------------------------------------------------------------


class Service:
    """At module level: stores other processes read key only instances of classes their module can name
    (issue 11); the test attaches a memoized method per backend."""

    def __init__(self, n):
        self.n = n

    def __cache_key__(self):
        return ("Service", self.n)


@pytest.mark.parametrize("name", _matrix(ALL))
def test_memoized_async_methods_key_instances_apart(name):
    # async-lru: methods (test_partialmethod, test_internals' instance tests)
    cache = make(name)
    runs = []

    @cache.memoize
    async def get(self, x):
        runs.append((self.n, x))
        await asyncio.sleep(0.05)
        return self.n * 100 + x

    Service.get = get

    one, two, one_again = Service(1), Service(2), Service(1)

    async def main():
        return await asyncio.gather(one.get(5), two.get(5), one_again.get(5), one.get(6))

    assert _run(main()) == [105, 205, 105, 106]
    if name == "none":
        assert len(runs) == 4
    else:
        assert sorted(runs) == [(1, 5), (1, 6), (2, 5)]  # the same key (one, one_again) ran once
    ref = weakref.ref(one)
    del one
    gc.collect()
    assert ref() is None  # the entries keep no instance alive
    assert _run(Service(1).get(5)) == 105
    if _stores(name):
        assert len(runs) == 3 and Service.get.cache_info().currsize == 3


@pytest.mark.parametrize("name", _matrix(ALL))
def test_cache_clear_while_a_call_is_in_flight(name):
    # async-lru: test_cache_clear_pending_task: the pending call still completes with its value
    cache = make(name)
    flight = _Flight(cache, delay=0.2)

    async def main():
        first = [asyncio.ensure_future(flight.fetch(1)) for _ in range(3)]
        await flight.started()
        await asyncio.sleep(0.1)  # every lookup is done (and counted)
        flight.fetch.cache_clear()
        assert flight.fetch.cache_info()[:2] == (0, 0)
        late = asyncio.ensure_future(flight.fetch(1))  # after the clear, while the run is still going
        return await asyncio.wait_for(asyncio.gather(*first, late), NO_HANG)

    assert _run(main()) == [{"key": 1}] * 4
    assert flight.runs.count(1) <= (4 if name == "none" else 2)
    info = flight.fetch.cache_info()
    if _stores(name):
        assert info.currsize == sum(1 for e in cache if e.func == flight.fetch.cache_name) <= 1
    assert _run(flight.fetch(1)) == {"key": 1}
    if _stores(name):
        assert flight.fetch.cache_info().currsize == 1
    flight.fetch.cache_clear()
    assert flight.fetch.cache_info() == CacheInfo(0, 0, getattr(cache, "max_size", None), 0)


# ---- recursion through a memoized coroutine function ----------------------------------------------


@pytest.mark.parametrize("name", ALL)
def test_async_recursion_on_other_keys(name):
    cache = make(name)
    runs = []

    @cache.memoize
    async def fib(n):
        runs.append(n)
        if n < 2:
            return n
        return await fib(n - 1) + await fib(n - 2)

    async def main():
        return [await fib(n) for n in range(16)]

    assert _run(main()) == [0, 1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610]
    if _stores(name):
        assert sorted(runs) == list(range(16))
        assert fib.cache_info()[:4] == (28, 16, getattr(cache, "max_size", None), 16)




@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=[] if n in DEFAULT else [pytest.mark.slow])
        if n != "none"
        else n
        for n in ALL
    ],
)
def test_async_reentrant_call_on_the_same_key_completes(name):
    # lru_cache's test_lru_bug_35780 in its async form: the sync wrapper computes again instead of waiting on
    # itself (docs/memoize.md); the coroutine wrapper must not wait on its own flight either.
    cache = make(name)
    runs = []

    @cache.memoize
    async def again(x):
        runs.append(x)
        if len(runs) == 1:
            return await again(x) + 1
        return 1

    try:
        result = _run(again(5), 0.5)
    except asyncio.TimeoutError:
        result = "hung"
    assert result == 2
    assert runs == [5, 5]
    if _stores(name):
        assert _run(again(5), 0.5) in (1, 2)  # a hit, whichever of the two values was stored last
        assert runs == [5, 5]
