"""memoize over every kind of function (generators, async generators, coroutine functions, plain
functions under threads), on both engines: the native one (InMemCache) and the Python one over the five
backend primitives (DictCache below, the way persistent backends will run), plus NoCache where it
matters. Streams are stored only after a complete, unsteered run; single-flight holds for threads and
asyncio tasks; blocking backends keep the event loop running; counters stay exact under concurrency."""

from __future__ import annotations

import asyncio
import collections.abc
import gc
import inspect
import threading
import time

import pytest

import backends
from dict_backend import DictBackend
from threads import run_in_threads

from oxicache import BaseCache, CacheEntry, InMemCache, NoCache

TIMEOUT = 5  # seconds: any single wait below; a hang fails fast instead of at pytest-timeout


DictCache = DictBackend  # the one dict-backed test backend (tests/dict_backend.py)


class SlowDictCache(DictCache):
    """A backend whose I/O blocks (disk, network): lookups and/or stores sleep."""

    blocking_io = True

    def __init__(self, get_delay=0.2, set_delay=0.0, **kwargs):
        super().__init__(**kwargs)
        self.get_delay, self.set_delay = get_delay, set_delay

    def _get(self, ref):
        time.sleep(self.get_delay)
        return super()._get(ref)

    def _set(self, entry, ttl):
        time.sleep(self.set_delay)
        super()._set(entry, ttl)


class InlineSlowDictCache(SlowDictCache):
    """The same slow backend, but declaring non-blocking I/O: the control for the event-loop tests."""

    blocking_io = False


def make_cache(kind):
    if kind in backends.PERSISTENT:
        return backends.make(kind)
    return {"inmem": InMemCache, "dict": DictCache, "none": NoCache}[kind]()


@pytest.fixture(params=["inmem", "dict", *backends.PERSISTENT])
def cache(request):
    """A storing backend, on each engine."""
    return make_cache(request.param)


@pytest.fixture(params=["inmem", "dict", "none"])
def any_cache(request):
    return make_cache(request.param)


def stores(cache) -> bool:
    return not isinstance(cache, NoCache)


def run_async(coro, timeout=TIMEOUT):
    """asyncio.run with a watchdog on the whole coroutine."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def join_all(threads, timeout=TIMEOUT):
    for t in threads:
        t.join(timeout)
    assert not any(t.is_alive() for t in threads), "a thread hung (deadlock in single-flight?)"


# ==== generators ===================================================================================


def test_generator_first_call_streams_lazily_and_stores_only_at_the_end(cache):
    progress = []

    @cache.memoize
    def produce(n):
        for i in range(n):
            progress.append(i)
            yield i * 10

    assert inspect.isgeneratorfunction(produce)
    gen = produce(3)
    assert progress == []  # the call only creates the generator
    assert next(gen) == 0
    assert progress == [0]  # the item reached the consumer before the producer went on
    assert next(gen) == 10
    assert progress == [0, 1]
    assert next(gen) == 20
    assert progress == [0, 1, 2]
    # every item delivered, but the producer has not returned yet: nothing stored
    assert len(cache) == 0
    assert cache.get(produce, n=3) is ...
    with pytest.raises(StopIteration):
        next(gen)
    assert cache.get(produce, n=3) == [0, 10, 20]
    assert cache.retrieve(produce, n=3).output == [0, 10, 20]
    info = produce.cache_info()
    assert (info.misses, info.sets, info.currsize, info.errors) == (1, 1, 1, 0)


INCOMPLETE = ["break", "close", "partial_next", "producer_raises", "throw_propagates", "throw_handled", "send"]


@pytest.mark.parametrize("how", INCOMPLETE)
def test_generator_incomplete_or_steered_run_stores_nothing(cache, how):
    runs, closed, received, handled = [], [], [], []
    fail = [how == "producer_raises"]

    @cache.memoize
    def produce(n):
        runs.append(n)
        try:
            for i in range(n):
                if fail[0] and i == 2:
                    raise RuntimeError("producer failed")
                try:
                    got = yield i
                except KeyError as err:  # an exception thrown in by the consumer, handled
                    handled.append(err.args[0])
                    continue
                if got is not None:
                    received.append(got)
        finally:
            closed.append(n)

    if how == "break":
        seen = []
        for item in produce(4):
            seen.append(item)
            if item == 1:
                break
        assert seen == [0, 1]
    elif how == "close":
        gen = produce(4)
        assert next(gen) == 0
        gen.close()
    elif how == "partial_next":
        gen = produce(4)
        assert (next(gen), next(gen)) == (0, 1)
        del gen
        gc.collect()
    elif how == "producer_raises":
        with pytest.raises(RuntimeError, match="producer failed"):
            list(produce(4))
    elif how == "throw_propagates":
        gen = produce(4)
        assert next(gen) == 0
        with pytest.raises(ValueError, match="consumer error"):
            gen.throw(ValueError("consumer error"))
    elif how == "throw_handled":
        gen = produce(4)
        assert next(gen) == 0
        assert gen.throw(KeyError("thrown in")) == 1  # the producer handled it and went on
        assert list(gen) == [2, 3]  # and ran to its end
        assert handled == ["thrown in"]
    elif how == "send":
        gen = produce(4)
        assert next(gen) == 0
        assert gen.send("steer") == 1
        assert list(gen) == [2, 3]  # ran to its end
        assert received == ["steer"]  # the sent value reached the producer
    else:  # pragma: no cover
        raise AssertionError(how)

    assert runs == [4]
    assert closed == [4]  # the producer was closed / finished, not left suspended
    assert len(cache) == 0
    assert cache.get(produce, n=4) is ...
    assert produce.cache_info().sets == 0
    if how in ("break", "close", "partial_next", "throw_handled", "send"):
        assert produce.cache_info().errors == 0  # the producer itself never raised

    fail[0] = False
    assert list(produce(4)) == [0, 1, 2, 3]
    assert runs == [4, 4]  # nothing was stored: the producer ran again
    assert list(produce(4)) == [0, 1, 2, 3]
    assert runs == [4, 4]  # the complete run was stored
    assert cache.get(produce, n=4) == [0, 1, 2, 3]


def test_generator_producer_errors_are_counted(any_cache):
    runs = []

    @any_cache.memoize
    def produce(n):
        runs.append(n)
        yield 1
        if len(runs) <= 2:
            raise OSError(f"stream broke #{len(runs)}")
        yield 2

    for attempt in (1, 2):
        gen = produce(5)
        assert next(gen) == 1  # the first item still streams before the failure
        with pytest.raises(OSError, match=f"stream broke #{attempt}"):
            next(gen)
        assert produce.cache_info().errors == attempt
        assert any_cache.stats()["errors"] == attempt
        assert len(any_cache) == 0
    assert list(produce(5)) == [1, 2]
    info = produce.cache_info()
    assert info.errors == 2
    assert info.currsize == (1 if stores(any_cache) else 0)
    assert runs == [5, 5, 5]


def test_empty_generator_is_cached_as_empty(any_cache):
    runs = []

    @any_cache.memoize
    def nothing(n):
        runs.append(n)
        return
        yield  # pragma: no cover

    assert list(nothing(0)) == []
    assert list(nothing(0)) == []
    if stores(any_cache):
        assert runs == [0]  # the empty result was a hit, not "absent"
        assert any_cache.get(nothing, n=0) == []
        assert nothing.cache_info().hits == 1
    else:
        assert runs == [0, 0]
        assert any_cache.get(nothing, n=0) is ...


def test_generator_hit_replays_lazily_as_a_generator(cache):
    runs = []
    items = [("a", 1), ["b"], None, 0]

    @cache.memoize
    def produce(n):
        runs.append(n)
        yield from items

    assert list(produce(1)) == items
    assert runs == [1]

    hit = produce(1)
    assert runs == [1]  # a hit never runs the producer
    assert isinstance(hit, collections.abc.Generator)
    assert not isinstance(hit, list)
    assert next(hit) == ("a", 1)  # item by item, in order
    assert hit.send(None) == ["b"]
    assert next(hit) is None
    assert next(hit) == 0
    with pytest.raises(StopIteration):
        next(hit)

    closing = produce(1)
    assert next(closing) == ("a", 1)
    closing.close()
    assert list(closing) == []  # a closed replay is finished
    closing.close()  # closing twice is fine, as for generators

    throwing = produce(1)
    assert next(throwing) == ("a", 1)
    with pytest.raises(ValueError, match="thrown into the replay"):
        throwing.throw(ValueError("thrown into the replay"))
    assert list(throwing) == []  # like a generator that did not handle it: finished

    # each hit is a fresh replay: consuming one never empties the stored list
    assert list(produce(1)) == items
    assert cache.get(produce, n=1) == items
    assert runs == [1]
    assert produce.cache_info().hits == 4


class Scaler:
    """At module level: stores other processes read key instances only of classes their module names."""

    def __init__(self, rate):
        self.rate = rate

    def __cache_key__(self):
        return self.rate


def test_generator_method_on_a_class(cache):
    runs = []

    @cache.memoize
    def scaled(self, n):
        runs.append((self.rate, n))
        for i in range(n):
            yield i * self.rate

    Scaler.scaled = scaled

    assert inspect.isgeneratorfunction(Scaler.scaled)
    assert inspect.isgeneratorfunction(Scaler(2).scaled)
    assert list(Scaler(2).scaled(3)) == [0, 2, 4]
    assert list(Scaler(2).scaled(3)) == [0, 2, 4]  # another instance with the same key: a hit
    assert list(Scaler(3).scaled(3)) == [0, 3, 6]
    assert list(Scaler(3).scaled(n=3)) == [0, 3, 6]
    assert runs == [(2, 3), (3, 3)]
    assert Scaler.scaled.cache_info().hits == 2


def test_nocache_generator_streams_and_runs_every_time():
    cache = NoCache()
    progress = []

    @cache.memoize
    def produce(n):
        for i in range(n):
            progress.append(i)
            yield i

    assert inspect.isgeneratorfunction(produce)
    gen = produce(2)
    assert next(gen) == 0
    assert progress == [0]
    assert list(gen) == [1]
    assert list(produce(2)) == [0, 1]
    assert progress == [0, 1, 0, 1]
    assert cache.get(produce, n=2) is ...
    assert produce.cache_info().hits == 0


# ==== async generators =============================================================================


def test_async_generator_streams_stores_after_full_run_and_replays(any_cache):
    runs, progress = [], []

    @any_cache.memoize
    async def produce(n):
        runs.append(n)
        for i in range(n):
            progress.append(i)
            await asyncio.sleep(0)
            yield i * 10

    assert inspect.isasyncgenfunction(produce)

    async def first_run():
        agen = produce(3)
        got = []
        for expected_progress in ([0], [0, 1], [0, 1, 2]):
            got.append(await agen.__anext__())
            assert progress == expected_progress  # streamed: one item at a time
        assert len(any_cache) == 0  # every item delivered, but the producer has not returned
        with pytest.raises(StopAsyncIteration):
            await agen.__anext__()
        return got

    assert run_async(first_run()) == [0, 10, 20]
    if stores(any_cache):
        assert any_cache.get(produce, n=3) == [0, 10, 20]

    async def collect():
        return [x async for x in produce(3)]

    assert run_async(collect()) == [0, 10, 20]
    assert runs == ([3] if stores(any_cache) else [3, 3])
    info = produce.cache_info()
    if stores(any_cache):
        assert (info.hits, info.misses, info.sets, info.currsize) == (1, 1, 1, 1)
    else:
        assert (info.hits, info.misses, info.currsize) == (0, 2, 0)


@pytest.mark.parametrize("how", ["break", "aclose", "producer_raises", "asend", "athrow_handled"])
def test_async_generator_incomplete_or_steered_run_stores_nothing(cache, how):
    runs, closed, received, handled = [], [], [], []
    fail = [how == "producer_raises"]

    @cache.memoize
    async def produce(n):
        runs.append(n)
        try:
            for i in range(n):
                await asyncio.sleep(0)
                if fail[0] and i == 2:
                    raise RuntimeError("producer failed")
                try:
                    got = yield i
                except KeyError as err:
                    handled.append(err.args[0])
                    continue
                if got is not None:
                    received.append(got)
        finally:
            closed.append(n)

    async def incomplete():
        if how == "break":
            async for item in produce(4):
                if item == 1:
                    break
            await asyncio.sleep(0.01)  # let the loop finalize the abandoned generator
        elif how == "aclose":
            agen = produce(4)
            assert await agen.__anext__() == 0
            await agen.aclose()
        elif how == "producer_raises":
            with pytest.raises(RuntimeError, match="producer failed"):
                [x async for x in produce(4)]
        elif how == "asend":
            agen = produce(4)
            assert await agen.__anext__() == 0
            assert await agen.asend("steer") == 1
            assert [x async for x in agen] == [2, 3]
            assert received == ["steer"]
        elif how == "athrow_handled":
            agen = produce(4)
            assert await agen.__anext__() == 0
            assert await agen.athrow(KeyError("thrown in")) == 1
            assert [x async for x in agen] == [2, 3]
            assert handled == ["thrown in"]
        assert len(cache) == 0

    run_async(incomplete())
    assert runs == [4]
    assert closed == [4]
    assert len(cache) == 0
    assert produce.cache_info().sets == 0
    assert produce.cache_info().errors == (1 if how == "producer_raises" else 0)

    fail[0] = False

    async def collect():
        return [x async for x in produce(4)]

    assert run_async(collect()) == [0, 1, 2, 3]
    assert runs == [4, 4]  # ran again: nothing had been stored
    assert run_async(collect()) == [0, 1, 2, 3]
    assert runs == [4, 4]  # the complete run was stored
    assert cache.get(produce, n=4) == [0, 1, 2, 3]


# ==== coroutine functions ==========================================================================


def test_async_wrapper_is_a_coroutine_function_and_stores_the_awaited_value(cache):
    runs = []

    @cache.memoize
    async def fetch(x):
        runs.append(x)
        await asyncio.sleep(0)
        return {"x": x}

    assert inspect.iscoroutinefunction(fetch)
    first = run_async(fetch(2))
    assert first == {"x": 2}
    stored = cache.get(fetch, x=2)
    assert stored == {"x": 2}
    assert not inspect.isawaitable(stored)
    entry = cache.retrieve(fetch, x=2)
    assert entry.output == {"x": 2}
    assert not inspect.isawaitable(entry.output)
    assert all(not inspect.isawaitable(e.output) for e in cache)
    hit = run_async(fetch(2))
    if not backends.is_persistent(cache):
        assert hit is first  # in memory, a hit returns the stored object
    assert hit == first
    assert runs == [2]


def test_async_exception_is_not_stored_and_is_counted(any_cache):
    runs = []

    @any_cache.memoize
    async def flaky(x):
        runs.append(x)
        await asyncio.sleep(0)
        if len(runs) == 1:
            raise LookupError("first call fails")
        return x * 3

    with pytest.raises(LookupError, match="first call fails"):
        run_async(flaky(1))
    assert len(any_cache) == 0
    assert flaky.cache_info().errors == 1
    assert any_cache.stats()["errors"] == 1
    assert run_async(flaky(1)) == 3
    assert runs == [1, 1]
    assert flaky.cache_info().errors == 1
    assert flaky.cache_info().currsize == (1 if stores(any_cache) else 0)


def test_async_across_three_event_loops(cache):
    runs = []

    @cache.memoize
    async def fetch(key):
        runs.append(key)
        await asyncio.sleep(0.02)
        return key * 2

    async def burst(keys):
        return await asyncio.gather(*(fetch(k) for k in keys))

    assert run_async(burst([1] * 5)) == [2] * 5  # loop 1: concurrent misses, one run
    assert runs == [1]
    assert run_async(burst([1] * 3 + [2] * 3)) == [2] * 3 + [4] * 3  # loop 2: hits + a new flight
    assert runs == [1, 2]
    assert run_async(burst([3] * 4)) == [6] * 4  # loop 3: no flight state bound to a closed loop
    assert runs == [1, 2, 3]
    info = fetch.cache_info()
    assert info.hits + info.misses == 15
    assert info.sets == 3


def test_async_single_flight_twenty_tasks(cache):
    runs = []

    @cache.memoize
    async def fetch(key):
        runs.append(key)
        await asyncio.sleep(0.05)
        return ["value", key]

    async def main():
        return await asyncio.gather(*(fetch("k") for _ in range(20)))

    results = run_async(main())
    assert runs == ["k"]
    assert results == [["value", "k"]] * 20
    if not cache.blocking_io:
        # Every task got the one computed value. (With blocking I/O the lookups run in worker threads:
        # on a loaded machine one can finish after the flight stored the value, and read back a copy.)
        assert all(r is results[0] for r in results)
    info = fetch.cache_info()
    assert info.hits + info.misses == 20
    assert (info.sets, info.currsize) == (1, 1)
    assert cache.get(fetch, key="k") == ["value", "k"]


def test_async_leader_exception_reaches_all_waiters(cache):
    runs = []

    @cache.memoize
    async def fetch(key):
        runs.append(key)
        # Long enough for the 19 other calls' lookups to miss and join the flight: on a server backend each
        # runs in a worker thread (a handful at a time), and a call that looks up after the leader failed
        # rightly computes again (CI saw one at 0.05 s on a loaded machine).
        await asyncio.sleep(0.5)
        if len(runs) == 1:
            raise ConnectionError(f"upstream down for {key}")
        return key

    async def main():
        return await asyncio.gather(*(fetch(9) for _ in range(20)), return_exceptions=True)

    outcomes = run_async(main())
    assert runs == [9]
    assert all(isinstance(o, ConnectionError) for o in outcomes)
    assert all(o is outcomes[0] for o in outcomes)  # the same exception, not 20 computations
    assert str(outcomes[0]) == "upstream down for 9"
    assert len(cache) == 0
    assert fetch.cache_info().errors == 1
    assert run_async(fetch(9)) == 9  # nothing stored: a later call recomputes
    assert runs == [9, 9]


def test_async_cancelled_leader_hands_over(cache):
    runs = []

    @cache.memoize
    async def fetch(key):
        runs.append(key)
        await asyncio.sleep(0.3)
        return ("v", key)

    async def main():
        leader = asyncio.ensure_future(fetch(1))
        for _ in range(400):  # the leader owns the flight once it runs the function (its lookup may go
            if runs:  # through a worker thread on blocking backends)
                break
            await asyncio.sleep(0.005)
        waiters = [asyncio.ensure_future(fetch(1)) for _ in range(10)]
        await asyncio.sleep(0.05)  # the waiters are waiting on the leader
        leader.cancel()
        results = await asyncio.wait_for(asyncio.gather(*waiters), TIMEOUT)
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(leader, TIMEOUT)
        return results

    assert run_async(main()) == [("v", 1)] * 10
    assert runs == [1, 1]  # the cancelled leader, then exactly one waiter that took over
    assert cache.get(fetch, key=1) == ("v", 1)
    assert run_async(fetch(1)) == ("v", 1)
    assert runs == [1, 1]


def test_async_different_keys_do_not_wait_on_each_other(cache):
    runs = []

    @cache.memoize(exclude=["gate"])  # an Event has no canonical encoding: key on `key` only
    async def fetch(key, gate):
        runs.append(key)
        if key == "first":
            await gate.wait()  # released only after "second" has completed
        return key

    async def main():
        gate = asyncio.Event()
        first = asyncio.ensure_future(fetch("first", gate))
        for _ in range(400):  # "first" gets in flight (through a worker thread on blocking backends)
            if runs:
                break
            await asyncio.sleep(0.005)
        assert runs == ["first"]
        # would time out if "second" waited on the flight of "first"
        assert await asyncio.wait_for(fetch("second", gate), 2) == "second"
        assert not first.done()
        gate.set()
        return await asyncio.wait_for(first, 2)

    assert run_async(main()) == "first"
    assert runs == ["first", "second"]
    assert len(cache) == 2


# ==== blocking backends ============================================================================


async def _ticking_while(awaitable, period=0.01):
    """Await `awaitable` while a ticker task counts how often the loop let it run."""
    ticks = [0]
    stop = asyncio.Event()

    async def ticker():
        while not stop.is_set():
            await asyncio.sleep(period)
            ticks[0] += 1

    task = asyncio.ensure_future(ticker())
    await asyncio.sleep(0)  # the ticker is running before the call starts
    start = ticks[0]
    try:
        result = await awaitable
    finally:
        stop.set()
        await asyncio.wait_for(task, TIMEOUT)
    return result, ticks[0] - start


@pytest.mark.parametrize("slow", ["lookup", "store"])
def test_blocking_backend_coroutine_keeps_the_loop_running(slow):
    get_delay, set_delay = (0.2, 0.0) if slow == "lookup" else (0.0, 0.2)
    cache = SlowDictCache(get_delay=get_delay, set_delay=set_delay)
    runs = []

    @cache.memoize
    async def fetch(x):
        runs.append(x)
        return x + 1

    value, ticks = run_async(_ticking_while(fetch(1)))
    assert value == 2
    assert ticks >= 5, f"the event loop was blocked during the {slow}: the ticker ticked {ticks} times"
    assert [e.output for e in cache._iter()] == [2]  # stored
    value, ticks = run_async(_ticking_while(fetch(1)))
    assert value == 2
    assert runs == [1]  # the second call hit
    if slow == "lookup":
        assert ticks >= 5, f"the event loop was blocked during the lookup of a hit: {ticks} ticks"
    info = fetch.cache_info()
    assert (info.hits, info.misses, info.sets) == (1, 1, 1)


def test_blocking_backend_async_generator_keeps_the_loop_running():
    cache = SlowDictCache(get_delay=0.2, set_delay=0.2)
    runs = []

    @cache.memoize
    async def produce(n):
        runs.append(n)
        for i in range(n):
            yield i

    async def collect():
        return [x async for x in produce(3)]

    for _ in range(2):
        items, ticks = run_async(_ticking_while(collect()))
        assert items == [0, 1, 2]
        assert ticks >= 5, f"the event loop was blocked by the backend: {ticks} ticks"
    assert runs == [3]


def test_inline_slow_backend_control_blocks_the_loop():
    """Control for the two tests above: the same slow backend without `blocking_io` blocks the ticker,
    so their tick counts measure the offloading and nothing else."""
    cache = InlineSlowDictCache(get_delay=0.2)

    @cache.memoize
    async def fetch(x):
        return x

    value, ticks = run_async(_ticking_while(fetch(1)))
    assert value == 1
    assert ticks <= 2


# ==== threads: single-flight on both engines =======================================================


def test_threads_concurrent_misses_run_once(cache):
    runs = []
    barrier = threading.Barrier(8)

    @cache.memoize
    def slow(key):
        runs.append(key)
        time.sleep(0.2)
        return {"key": key}

    results = []

    def call():
        barrier.wait(TIMEOUT)
        results.append(slow("k"))

    run_in_threads(call, [()] * 8, timeout=TIMEOUT)
    assert runs == ["k"]
    assert results == [{"key": "k"}] * 8
    assert all(r is results[0] for r in results)
    info = slow.cache_info()
    assert info.hits + info.misses == 8
    assert (info.sets, info.currsize, info.errors) == (1, 1, 0)


def test_threads_leader_exception_reaches_every_thread(cache):
    runs = []
    barrier = threading.Barrier(8)

    @cache.memoize
    def slow(key):
        runs.append(key)
        time.sleep(0.2)
        if len(runs) == 1:
            raise TimeoutError(f"backend timed out on {key}")
        return key

    errors, values = [], []

    def call():
        barrier.wait(TIMEOUT)
        try:
            values.append(slow(3))
        except TimeoutError as err:
            errors.append(err)

    run_in_threads(call, [()] * 8, timeout=TIMEOUT)
    assert runs == [3]
    assert values == []
    assert len(errors) == 8
    assert all(e is errors[0] for e in errors)
    assert str(errors[0]) == "backend timed out on 3"
    assert len(cache) == 0
    assert slow.cache_info().errors == 1
    assert slow(3) == 3  # recomputed
    assert runs == [3, 3]


def test_threads_recursion_does_not_deadlock(cache):
    calls = []
    same_key = []

    @cache.memoize
    def fibonacci(n):
        calls.append(n)
        return n if n <= 1 else fibonacci(n - 2) + fibonacci(n - 1)

    @cache.memoize
    def again(x):
        same_key.append(x)
        return again(x) + 1 if len(same_key) == 1 else 1  # the same key from inside its own flight

    out = {}

    def body():
        out["fib"] = fibonacci(150)
        out["again"] = again(5)

    worker = threading.Thread(target=body)
    worker.start()
    join_all([worker])
    a, b = 0, 1
    for _ in range(150):
        a, b = b, a + b
    assert out["fib"] == a
    assert len(calls) == 151
    assert out["again"] == 2
    assert same_key == [5, 5]


def test_threads_different_keys_run_in_parallel(cache):
    started = {"a": threading.Event(), "b": threading.Event()}

    @cache.memoize
    def work(key):
        started[key].set()
        other = "b" if key == "a" else "a"
        # both must be running at once: each waits for the other to have started
        return started[other].wait(TIMEOUT)

    results = {}

    def call(key):
        results[key] = work(key)

    run_in_threads(call, [("a",), ("b",)], timeout=2 * TIMEOUT)
    assert results == {"a": True, "b": True}, "one key waited on the other's computation"


def test_nocache_threads_each_call_runs():
    cache = NoCache()
    runs = []
    barrier = threading.Barrier(4)

    @cache.memoize
    def slow(key):
        runs.append(key)
        time.sleep(0.05)
        return key

    def call():
        barrier.wait(TIMEOUT)
        assert slow(1) == 1

    run_in_threads(call, [()] * 4, timeout=TIMEOUT)
    assert runs == [1] * 4


def test_nocache_concurrent_async_calls_each_run():
    """NoCache documents "a memoized call: the function runs, every time"; concurrent coroutine calls
    are calls too (plain functions on NoCache do run once per concurrent call, see the test above)."""
    cache = NoCache()
    runs = []

    @cache.memoize
    async def fetch(key):
        runs.append(key)
        await asyncio.sleep(0.02)
        return key

    async def main():
        return await asyncio.gather(*(fetch(1) for _ in range(5)))

    assert run_async(main()) == [1] * 5
    assert runs == [1] * 5


class PausingDictCache(DictCache):
    """The first lookup reads the store, then pauses until released: a miss that is stale by the time
    its caller goes on, because another caller computed and stored the value meanwhile."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.paused, self.release = threading.Event(), threading.Event()
        self.first = True

    def _get(self, ref):
        found = super()._get(ref)
        if self.first:
            self.first = False
            self.paused.set()
            assert self.release.wait(TIMEOUT), "never released"
        return found


class BlockingPausingDictCache(PausingDictCache):
    blocking_io = True


def test_threads_stale_miss_takes_the_value_stored_meanwhile():
    cache = PausingDictCache()
    runs = []

    @cache.memoize
    def f(key):
        runs.append(key)
        return [key]

    out = []
    late = threading.Thread(target=lambda: out.append(f(1)))
    late.start()
    assert cache.paused.wait(TIMEOUT)  # `late` has missed and is paused before it takes the lead
    first = f(1)  # computes and stores, while `late` still holds its (now stale) miss
    cache.release.set()
    join_all([late])
    assert runs == [1]  # `late` found the stored value instead of computing again
    assert out == [first]
    info = f.cache_info()
    assert (info.hits, info.misses, info.sets) == (0, 2, 1)


def test_async_blocking_backend_stale_miss_takes_the_value_stored_meanwhile():
    cache = BlockingPausingDictCache()
    runs = []

    @cache.memoize
    async def fetch(key):
        runs.append(key)
        return [key]

    async def main():
        late = asyncio.ensure_future(fetch(1))
        assert await asyncio.to_thread(cache.paused.wait, TIMEOUT)  # its lookup missed, in a worker thread
        first = await asyncio.wait_for(fetch(1), TIMEOUT)  # computes and stores meanwhile
        cache.release.set()
        return first, await asyncio.wait_for(late, TIMEOUT)

    first, second = run_async(main())
    assert runs == [1]
    assert second == first == [1]
    assert fetch.cache_info().sets == 1


# ==== exact statistics under concurrency ===========================================================


def test_stats_exact_under_concurrency(cache):
    n_threads, n_calls, n_keys = 8, 500, 50
    computed = {}
    lock = threading.Lock()

    @cache.memoize
    def f(key):
        with lock:
            computed[key] = computed.get(key, 0) + 1
        time.sleep(0.001)  # widen the window in which other threads miss the same key
        return key * key

    bad = []

    def call(offset):
        for i in range(n_calls):
            key = (i * 7 + offset) % n_keys
            if f(key) != key * key:
                bad.append(key)

    run_in_threads(call, [(t,) for t in range(n_threads)], switch_interval=1e-5, timeout=30)
    total = n_threads * n_calls
    assert bad == []
    info = f.cache_info()
    assert info.hits + info.misses == total
    assert info.sets == sum(computed.values())  # every computation stored exactly once
    assert computed == dict.fromkeys(range(n_keys), 1)  # single-flight: one computation per key
    assert info.sets == n_keys
    assert (info.currsize, info.errors) == (n_keys, 0)
    stats = cache.stats()
    assert stats["hits"] + stats["misses"] == total
    assert stats["sets"] == n_keys
    assert stats["size"] == n_keys
