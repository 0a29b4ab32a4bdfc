"""Matrix row R23: memoized generators and async generators, on every backend.

For each backend and each kind (sync generator, async generator):

- first call streams lazily: each item reaches the consumer before the producer makes the next one
  (the producer's progress is recorded at each item the consumer receives); nothing is stored before
  the producer has finished;
- a hit replays the identical sequence without running the producer;
- an early ``break`` (the consumer closes the stream) stores nothing, and the next call runs again;
- an exception mid-stream reaches the consumer after the items before it, stores nothing, counts one
  error, and the next call runs again;
- two concurrent consumers of one key (threads for sync generators, tasks for async generators, stepping
  in lockstep, so both miss) each get the correct sequence, and what is stored is that sequence;
- replay after a process restart (persistent backends): a spawn process that reopens the store gets the
  sequence the test process stored, without running its own producer.

"A hit flag is exposed": oxicache has no per-call hit flag (a memoized generator returns only the
stream). The row is adapted to what exists: ``cache_info()`` counts hits and misses per function, and the
test checks its deltas call by call. (On a hit, a sync call returns the native ``Replay`` iterator instead
of a generator, but that is an implementation detail, not a documented flag.)

Per backend capability (tests/backends.py): ``none`` and ``callback`` store nothing, so every call runs
the producer and streams it. The items are ``f(key)`` from the independent oracle.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import uuid
from typing import Any, AsyncIterator, Iterator

import pytest
from backends import BACKENDS, PERSISTENT, SPECS, make
from reliability_support import expected_value, watchdog
from spawn_worker import SpawnWorker

import oxicache

N = 5
FAIL_AT = 3


def item(n: int, i: int) -> str:
    return expected_value((n, i)).hex()[:24]


def expected(n: int) -> list[str]:
    return [item(n, i) for i in range(n)]


class Streams:
    """A memoized producer of one kind on one cache, with its run log, and ways to consume it."""

    def __init__(self, cache: Any, kind: str, identity: str) -> None:
        self.cache, self.kind = cache, kind
        self.runs: list[int] = []
        self.progress: list[int] = []
        self.fail: int | None = None  # the index at which the producer raises, when set

        def step(n: int, i: int) -> str:
            if i == self.fail:
                msg = f"r23 failed at item {i} of {n}"
                raise ValueError(msg)
            self.progress.append(i)
            return item(n, i)

        if kind == "sync":

            @cache.memoize(name=identity)
            def produce(n: int) -> Iterator[str]:
                self.runs.append(n)
                for i in range(n):
                    yield step(n, i)

            self.produce: Any = produce
        else:

            @cache.memoize(name=identity)
            async def aproduce(n: int) -> AsyncIterator[str]:
                self.runs.append(n)
                for i in range(n):
                    await asyncio.sleep(0)
                    yield step(n, i)

            self.produce = aproduce

    def consume(self, n: int, stop_after: int | None = None) -> tuple[list[str], list[list[int]], str | None]:
        """Items received, the producer's progress seen at each item, and the error message if any."""
        items: list[str] = []
        seen: list[list[int]] = []
        self.progress.clear()

        def take(x: str) -> bool:
            items.append(x)
            seen.append(list(self.progress))
            return stop_after is not None and len(items) >= stop_after

        try:
            if self.kind == "sync":
                with contextlib.closing(self.produce(n)) as gen:
                    for x in gen:
                        if take(x):
                            break
            else:

                async def run() -> None:
                    async with contextlib.aclosing(self.produce(n)) as agen:
                        async for x in agen:
                            if take(x):
                                break

                asyncio.run(run())
        except ValueError as err:
            return items, seen, str(err)
        return items, seen, None

    def stored(self, n: int) -> Any:
        return self.cache.get(self.produce, n=n)

    def concurrently(self, n: int) -> list[list[str]]:
        """Two consumers of ``produce(n)`` stepping in lockstep (so both start before either finishes)."""
        if self.kind == "sync":
            barrier = threading.Barrier(2)
            out: list[list[str]] = [[], []]

            def consumer(slot: int) -> None:
                barrier.wait(10)
                for x in self.produce(n):
                    out[slot].append(x)
                    barrier.wait(10)

            threads = [threading.Thread(target=consumer, args=(s,), daemon=True) for s in (0, 1)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            assert not any(t.is_alive() for t in threads), "a consumer hung"
            return out

        async def both() -> list[list[str]]:
            # Lockstep without asyncio.Barrier (3.11+): a consumer goes on past item i only once both
            # have received it. The lookup is at the first step, so neither can store before the other
            # has looked up.
            received = [0, 0]
            step = asyncio.Condition()

            async def consumer(slot: int) -> list[str]:
                got = []
                async for x in self.produce(n):
                    got.append(x)
                    async with step:
                        received[slot] += 1
                        step.notify_all()
                        await step.wait_for(lambda: received[1 - slot] >= received[slot])
                return got

            return list(await asyncio.wait_for(asyncio.gather(consumer(0), consumer(1)), 30))

        return asyncio.run(both())


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("name", list(BACKENDS))
def test_streams(name: str, kind: str, seed: int) -> None:
    cache = make(name)
    s = Streams(cache, kind, f"r23.{uuid.uuid4().hex[:8]}")
    stores = BACKENDS[name].stores
    rnd = random.Random(seed)
    n = N + rnd.randrange(3)
    info = s.produce.cache_info

    with watchdog(60, f"R23 {kind} on {name}"):
        # 1. First call: lazy streaming, stored only at the end (checked in `seen`: the producer had made
        # exactly the items received so far when each one arrived).
        items, seen, err = s.consume(n)
        assert (items, err) == (expected(n), None)
        assert seen == [list(range(i + 1)) for i in range(n)]
        assert s.runs == [n]
        assert (info().misses, info().hits) == (1, 0)
        assert s.stored(n) == (expected(n) if stores else ...)

        # 2. A hit replays the identical sequence without running the producer.
        items, _, err = s.consume(n)
        assert (items, err) == (expected(n), None)
        if stores:
            assert s.runs == [n]
            assert (info().misses, info().hits) == (1, 1)
        else:
            assert s.runs == [n, n]
            assert (info().misses, info().hits) == (2, 0)

        # 3. Early break: nothing stored, the next call runs again.
        m = n + 10  # a fresh key
        stop = 1 + rnd.randrange(m - 1)
        items, seen, err = s.consume(m, stop_after=stop)
        assert (items, err) == (expected(m)[:stop], None)
        assert seen[-1] == list(range(stop))  # the producer stopped where the consumer did
        assert s.stored(m) is ...
        runs = len(s.runs)
        assert s.consume(m)[0] == expected(m)
        assert len(s.runs) == runs + 1
        assert s.stored(m) == (expected(m) if stores else ...)

        # 4. An exception mid-stream: the items before it, then the error; nothing stored; runs again.
        k = n + 20
        s.fail = FAIL_AT
        errors = info().errors
        items, _, err = s.consume(k)
        assert (items, err) == (expected(k)[:FAIL_AT], f"r23 failed at item {FAIL_AT} of {k}")
        assert info().errors == errors + 1
        assert s.stored(k) is ...
        s.fail = None
        runs = len(s.runs)
        assert s.consume(k) == (expected(k), [list(range(i + 1)) for i in range(k)], None)
        assert len(s.runs) == runs + 1

        # 5. Two concurrent consumers of a fresh key: both miss, both get the sequence, it is stored once.
        c = n + 30
        runs = len(s.runs)
        assert s.concurrently(c) == [expected(c), expected(c)]
        assert s.runs[runs:] == [c, c]
        assert s.stored(c) == (expected(c) if stores else ...)
        if stores:
            assert [e.output for e in cache if e.func == s.produce.cache_name and e.inputs == {"n": c}] == [expected(c)]
            assert s.consume(c)[0] == expected(c)
            assert len(s.runs) == runs + 2  # and then a hit


def replay_in_child(spec: tuple[str, tuple[Any, ...], dict[str, Any]], identity: str, kind: str, n: int) -> dict[str, Any]:
    """Runs in a fresh spawn process: reopen the store and call the same memoized generator."""
    cls_name, args, kwargs = spec
    cache = getattr(oxicache, cls_name)(*args, **kwargs)
    ran: list[int] = []
    try:
        if kind == "sync":

            @cache.memoize(name=identity)
            def produce(n: int) -> Iterator[str]:
                ran.append(n)
                yield "computed in the child"

            items = list(produce(n))
            info = produce.cache_info()
        else:

            @cache.memoize(name=identity)
            async def aproduce(n: int) -> AsyncIterator[str]:
                ran.append(n)
                yield "computed in the child"

            async def collect() -> list[str]:
                return [x async for x in aproduce(n)]

            items = asyncio.run(collect())
            info = aproduce.cache_info()
        return {"items": items, "ran": ran, "hits": info.hits, "misses": info.misses}
    finally:
        cache.close()


@pytest.fixture(scope="module")
def worker() -> Iterator[SpawnWorker]:
    w = SpawnWorker()
    yield w
    w.close()


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("name", PERSISTENT)
def test_stream_replays_after_process_restart(name: str, kind: str, worker: SpawnWorker, seed: int) -> None:
    cache = make(name)
    identity = f"r23.restart.{uuid.uuid4().hex[:8]}"
    s = Streams(cache, kind, identity)
    n = N + random.Random(seed).randrange(5)
    assert s.consume(n)[0] == expected(n)
    with watchdog(90, f"R23 restart {kind} on {name}"):
        reply = worker.call(replay_in_child, SPECS[id(cache)], identity, kind, n, timeout=60)
    assert reply == {"items": expected(n), "ran": [], "hits": 1, "misses": 0}
