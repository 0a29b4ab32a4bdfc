"""Matrix row R16: per-call controls are context-local, on every backend.

8 threads (a plain function) and 8 asyncio tasks (a coroutine function memoized under the same ``name=``,
so both read and write the same entry) run at the same time, each making a seeded random sequence of
plain calls, ``with oxicache.refresh():`` calls and ``with oxicache.bypass():`` calls on one key. The
control blocks stay open across a short sleep (threads) or an ``await`` (tasks), so other threads and
tasks make their calls while a block is open. Every run of the function records which call ran it (a
context variable set by each caller) and returns ``f(key)`` tagged with a run id.

Exact per-call semantics checked (storing backends; the key is stored before the threads start):

- a plain call hits: it never runs the function and gets the initial run or a refresh's run, never a
  bypassed one (bypass stores nothing);
- a bypass call runs the function itself, exactly once, and gets its own run;
- a refresh call gets a run made by a refresh (its own, or, single-flight, one of a concurrent refresh
  on the same flight registry); each refresh runs at most once, and every refresh run reached a caller;
- ``cache_info()``: hits == plain calls, misses == refresh + bypass calls (per function);
- afterwards, outside any block, a plain call hits (no global toggle was left behind).

``none`` (NoCache) runs every call, each caller gets its own run. ``callback`` stores nothing: plain
calls run too (merged with concurrent plain/refresh calls), bypass calls still get their own run.

Adaptation: the matrix also lists ``read_only``; oxicache has no such control (only ``bypass()`` and
``refresh()``). Adding one would touch the native Memoizer's call path (InMemCache), so the row covers
the two controls that exist. The slow variant makes 10x as many calls.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import random
import threading
import time
import uuid
from collections import Counter
from typing import Any

import pytest
from backends import BACKENDS, make
from reliability_support import expected_value, watchdog

import oxicache
from oxicache.controls import NORMAL, current_mode

WORKERS = 8
KEY = "r16-key"
OPS = ("plain", "plain", "refresh", "bypass")  # plain calls twice as often

Label = tuple[str, int, str]  # (worker, call index, op)


def run_matrix(name: str, seed: int, calls_per_worker: int) -> None:
    cache = make(name)
    rnd = random.Random(seed)
    caller: contextvars.ContextVar[Label] = contextvars.ContextVar("caller")
    runs: dict[int, Label] = {}
    ids = itertools.count(1)
    lock = threading.Lock()

    def body() -> dict[str, Any]:
        with lock:
            run = next(ids)
            runs[run] = caller.get()
        return {"value": expected_value(KEY).hex(), "run": run}

    identity = f"r16.{uuid.uuid4().hex[:8]}"

    @cache.memoize(name=identity)
    def value(key: str) -> dict[str, Any]:
        time.sleep(0.002)
        return body()

    @cache.memoize(name=identity)
    async def avalue(key: str) -> dict[str, Any]:
        await asyncio.sleep(0.002)
        return body()

    plans = {
        f"{kind}{w}": [rnd.choice(OPS) for _ in range(calls_per_worker)] for kind in ("t", "a") for w in range(WORKERS)
    }
    results: list[tuple[Label, dict[str, Any]]] = []
    failures: list[str] = []

    def control(op: str) -> Any:
        return {"bypass": oxicache.bypass, "refresh": oxicache.refresh}[op]()

    def thread_worker(worker: str, start: threading.Barrier) -> None:
        start.wait()
        try:
            for i, op in enumerate(plans[worker]):
                label = (worker, i, op)
                caller.set(label)
                if op == "plain":
                    got = value(KEY)
                else:
                    with control(op):
                        time.sleep(0.001)  # the block is open while other threads call
                        got = value(KEY)
                assert current_mode() == NORMAL
                with lock:
                    results.append((label, got))
        except BaseException as err:
            failures.append(f"{worker}: {err!r}")

    async def task_worker(worker: str) -> None:
        for i, op in enumerate(plans[worker]):
            label = (worker, i, op)
            caller.set(label)
            if op == "plain":
                got = await avalue(KEY)
            else:
                with control(op):
                    await asyncio.sleep(0.001)  # other tasks run while this block is open
                    got = await avalue(KEY)
            assert current_mode() == NORMAL
            with lock:
                results.append((label, got))

    def loop_thread(start: threading.Barrier) -> None:
        start.wait()

        async def main() -> None:
            await asyncio.gather(*(task_worker(f"a{w}") for w in range(WORKERS)))

        try:
            asyncio.run(main())
        except BaseException as err:
            failures.append(f"tasks: {err!r}")

    caller.set(("setup", 0, "plain"))
    initial = value(KEY)
    assert initial["run"] == 1

    with watchdog(120, f"R16 on {name}"):
        start = threading.Barrier(WORKERS + 1)
        threads = [threading.Thread(target=thread_worker, args=(f"t{w}", start), daemon=True) for w in range(WORKERS)]
        threads.append(threading.Thread(target=loop_thread, args=(start,), daemon=True))
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not any(t.is_alive() for t in threads), "a worker hung"
    assert failures == []
    assert len(results) == 2 * WORKERS * calls_per_worker

    backend = BACKENDS[name]
    per_label = Counter(runs.values())
    assert max(per_label.values()) == 1, "a call ran the function more than once"
    delivered = set()
    for label, got in results:
        op, run = label[2], got["run"]
        assert got["value"] == expected_value(KEY).hex()
        source = runs[run]
        delivered.add(run)
        if name == "none" or op == "bypass":
            assert source == label, f"{label} got run {run} of {source}"
        elif backend.stores and op == "plain":
            assert label not in per_label, f"plain call {label} ran the function"
            assert source[2] == "refresh" or run == 1, f"plain call {label} got run {run} of {source}"
        elif backend.stores:  # refresh
            assert source[2] == "refresh", f"refresh call {label} got run {run} of {source}"
        else:  # callback, plain or refresh: a merged run of a plain or refresh call
            assert source[2] in ("plain", "refresh"), f"{label} got run {run} of {source}"
    assert set(runs) - {1} <= delivered, "a run's value reached no caller"

    for func, prefix in ((value, "t"), (avalue, "a")):
        ops = Counter(label[2] for label, _ in results if label[0].startswith(prefix))
        info = func.cache_info()
        setup = 1 if func is value else 0
        if backend.stores:
            assert (info.hits, info.misses) == (ops["plain"], ops["refresh"] + ops["bypass"] + setup)
        else:
            assert (info.hits, info.misses) == (0, sum(ops.values()) + setup)

    assert current_mode() == NORMAL
    before = len(runs)
    final = value(KEY)  # outside any block: a hit on storing backends
    if backend.stores:
        assert len(runs) == before
        assert final["run"] == 1 or runs[final["run"]][2] == "refresh"


@pytest.mark.parametrize("name", list(BACKENDS))
def test_controls_are_context_local(name: str, seed: int) -> None:
    run_matrix(name, seed, 20)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(BACKENDS))
def test_controls_are_context_local_soak(name: str, seed: int) -> None:
    run_matrix(name, seed, 200)
