"""Matrix row R1: thread single-flight with exact statistics, on every backend.

32 threads start together on a barrier (in a seeded random order): 16 call ``f("hot")`` and 16 call
``f`` for 4 other keys (4 threads each). ``f`` counts its runs per key, waits until every caller of its
key has made its call (so a thread the loaded machine schedules late still finds the run in flight),
sleeps 200 ms and returns the independent oracle ``expected_value(key)``. Then the same with ``f`` raising ``ValueError`` (its
message names the key and the run number, so a caller that got another run's exception is caught).

Per backend capability (tests/backends.py):

- storing backends (InMemCache on the native engine; disk, json, sqlite, postgresql, mysql on the
  Python engine): exactly one run per key; every caller gets ``f(key)``; on failure every caller of a key
  gets the one run's ``ValueError``, nothing is stored and the next call runs again;
- ``none`` (NoCache) deliberately runs every call (no merging): one run per call, each caller gets the
  value or exception of its own run;
- ``callback`` (CallbackCache) merges concurrent calls but stores nothing, so a thread that arrives
  after a flight finished runs again: 1 <= runs <= calls per key, each caller gets a run of its key.

Always: ``cache_info().hits + misses`` equals the number of calls (and so do the cache-wide counters).
The slow variant repeats the round 10 times with fresh keys.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from typing import Any

import pytest
from backends import BACKENDS, make
from reliability_support import expected_value, watchdog

HOT, OTHERS = "hot", ["k1", "k2", "k3", "k4"]
SLEEP = 0.2


def one_round(name: str, cache: Any, fail: bool, rnd: random.Random, tag: str) -> None:
    runs: Counter[str] = Counter()
    arrived: Counter[str] = Counter()
    lock = threading.Lock()
    all_arrived = threading.Condition(lock)
    calls = [HOT] * 16 + [k for k in OTHERS for _ in range(4)]
    rnd.shuffle(calls)
    per_key = Counter(calls)

    @cache.memoize(name=f"r1.f.{tag}")
    def f(key: str) -> bytes:
        with lock:
            runs[key] += 1
            n = runs[key]
            # Every caller of the key has made its call before the run goes on (so on a loaded machine a
            # thread scheduled late still finds the flight running), then the run takes 200 ms.
            assert all_arrived.wait_for(lambda: arrived[key] >= per_key[key], 30), "callers never arrived"
        time.sleep(SLEEP)
        if fail:
            msg = f"r1 failed for {key} in run {n}"
            raise ValueError(msg)
        return expected_value(key)

    barrier = threading.Barrier(len(calls))
    outcomes: list[tuple[str, str, Any]] = []  # (key, "value" | "error" | "other", payload)

    def call(key: str) -> None:
        barrier.wait()
        with all_arrived:
            arrived[key] += 1
            all_arrived.notify_all()
        try:
            outcome = ("value", f(key))
        except ValueError as err:
            outcome = ("error", str(err))
        except BaseException as err:  # anything else is a defect; recorded so the test reports it
            outcome = ("other", repr(err))
        with lock:
            outcomes.append((key, *outcome))

    stats_before = cache.stats()
    with watchdog(60, f"R1 round on {name}"):
        threads = [threading.Thread(target=call, args=(k,), daemon=True) for k in calls]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not any(t.is_alive() for t in threads), "a caller hung"

    stats_after = cache.stats()
    assert len(outcomes) == len(calls)
    assert [o for o in outcomes if o[1] == "other"] == []
    backend = BACKENDS[name]
    if name == "none":
        assert runs == per_key  # no merging: every call runs
    elif backend.stores:
        assert runs == dict.fromkeys(per_key, 1)
    else:  # callback: merged while in flight, nothing stored afterwards
        assert set(runs) == set(per_key)
        assert all(1 <= runs[k] <= per_key[k] for k in per_key), runs

    for key, kind, payload in outcomes:
        if fail:
            assert kind == "error"
            if backend.stores:
                assert payload == f"r1 failed for {key} in run 1"
            else:
                assert payload.startswith(f"r1 failed for {key} in run ")
        else:
            assert (kind, payload) == ("value", expected_value(key))
    if fail and name == "none":  # each caller got its own run's exception
        assert len({p for _, _, p in outcomes}) == len(calls)

    info = f.cache_info()
    assert info.hits + info.misses == len(calls)
    cache_wide = sum(stats_after[c] - stats_before[c] for c in ("hits", "misses"))
    assert cache_wide == len(calls)
    if fail:
        assert info.hits == 0
        assert info.errors == sum(runs.values())  # one per run that raised, not per caller
        assert info.currsize == 0
        assert len(cache) == 0
        assert all(cache.get(f, key=k) is ... for k in per_key)
        before = runs[HOT]
        with pytest.raises(ValueError, match=f"run {before + 1}$"):
            f(HOT)  # nothing was stored: the next call runs again
        assert runs[HOT] == before + 1
    elif backend.stores:
        assert (info.currsize, info.sets, info.errors) == (len(per_key), len(per_key), 0)
        assert all(cache.get(f, key=k) == expected_value(k) for k in per_key)
        assert f(HOT) == expected_value(HOT)  # a plain hit afterwards, no new run
        assert runs[HOT] == 1
    else:
        assert (info.currsize, len(cache)) == (0, 0)


@pytest.mark.parametrize("name", list(BACKENDS))
@pytest.mark.parametrize("fail", [False, True], ids=["value", "raises"])
def test_thread_single_flight_exact_stats(name: str, fail: bool, seed: int) -> None:
    one_round(name, make(name), fail, random.Random(seed), "0")


@pytest.mark.slow
@pytest.mark.parametrize("name", list(BACKENDS))
@pytest.mark.parametrize("fail", [False, True], ids=["value", "raises"])
def test_thread_single_flight_soak(name: str, fail: bool, seed: int) -> None:
    cache = make(name)
    rnd = random.Random(seed)
    # Sampled at 6 rounds to keep CI's run within its budget; OXICACHE_FLIGHT_SOAK_ROUNDS=10 or more for a soak.
    for i in range(int(os.environ.get("OXICACHE_FLIGHT_SOAK_ROUNDS", "6"))):
        one_round(name, cache, fail, rnd, str(i))
