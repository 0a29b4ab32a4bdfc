"""asyncio single-flight (R2): concurrent misses of one key run the coroutine once, exceptions are
shared and not stored, a cancelled leader hands over without hanging anyone, and successive
asyncio.run() calls work."""

import asyncio

import pytest

from oxicache import InMemCache


def make(cache, runs, delay=0.05, fail=False):
    @cache.memoize
    async def fetch(key):
        runs.append(key)
        await asyncio.sleep(delay)
        if fail:
            raise ValueError(f"upstream failed for {key}")
        return {"key": key}

    return fetch


def test_gathered_misses_run_once_and_share_the_value():
    cache, runs = InMemCache(), []
    fetch = make(cache, runs)

    async def main():
        return await asyncio.wait_for(asyncio.gather(*(fetch(k % 2) for k in range(50))), 5)

    results = asyncio.run(main())
    assert runs == [0, 1]
    assert results == [{"key": k % 2} for k in range(50)]
    assert [e.output for e in cache] == [{"key": 0}, {"key": 1}]  # values, never coroutine objects


def test_leader_exception_reaches_every_waiter_and_nothing_is_stored():
    cache, runs = InMemCache(), []
    fetch = make(cache, runs, fail=True)

    async def main():
        return await asyncio.gather(*(fetch(7) for _ in range(20)), return_exceptions=True)

    outcomes = asyncio.run(main())
    assert runs == [7]
    assert all(isinstance(o, ValueError) and str(o) == "upstream failed for 7" for o in outcomes)
    assert len(cache) == 0
    with pytest.raises(ValueError):
        asyncio.run(fetch(7))  # not cached: runs again
    assert runs == [7, 7]


def test_cancelled_leader_hands_over_and_nobody_hangs():
    cache, runs = InMemCache(), []
    fetch = make(cache, runs, delay=0.1)

    async def main():
        leader = asyncio.ensure_future(fetch(1))
        await asyncio.sleep(0)  # the leader starts and registers the flight
        waiters = [asyncio.ensure_future(fetch(1)) for _ in range(10)]
        await asyncio.sleep(0.02)
        leader.cancel()
        done = await asyncio.wait_for(asyncio.gather(*waiters), 5)
        with pytest.raises(asyncio.CancelledError):
            await leader
        return done

    assert asyncio.run(main()) == [{"key": 1}] * 10
    assert runs == [1, 1]  # once by the cancelled leader, once by the waiter that took over


def test_successive_event_loops():
    cache, runs = InMemCache(), []
    fetch = make(cache, runs, delay=0)
    assert asyncio.run(fetch(3)) == {"key": 3}
    assert asyncio.run(fetch(3)) == {"key": 3}  # a hit in a new loop
    assert asyncio.run(fetch(4)) == {"key": 4}  # a miss in a third loop: no state bound to a closed loop
    assert runs == [3, 4]
