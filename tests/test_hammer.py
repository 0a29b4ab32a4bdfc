"""Threads hammering one small InMemCache with every operation: reads are always a miss or exactly
f(key), never another key's value, and the store's bookkeeping stays consistent (R3, in process)."""

import hashlib
import random

from threads import run_in_threads

from oxicache import CacheEntry, InMemCache


def expected(key: int) -> str:
    return hashlib.sha256(str(key).encode()).hexdigest()


def test_mixed_operations_from_threads_never_mix_values():
    cache = InMemCache(max_size=16, ttl=3600)

    @cache.memoize
    def f(key):
        return expected(key)

    failures = []

    def worker(seed):
        rng = random.Random(seed)
        for _ in range(3000):
            key = rng.randrange(64)
            op = rng.random()
            try:
                if op < 0.45:
                    assert f(key) == expected(key)
                elif op < 0.65:
                    got = cache.get(f, key=key)
                    assert got is ... or got == expected(key)
                elif op < 0.8:
                    cache.set(f.cache_name, {"key": key}, output=expected(key))
                elif op < 0.95:
                    cache.remove(f, key=key)
                elif op < 0.99:
                    for entry in cache:
                        assert entry.output == expected(entry.inputs["key"])
                        assert entry.key == CacheEntry(f.cache_name, entry.inputs).key
                else:
                    cache.clear()
            except AssertionError as err:  # pragma: no cover - reported below
                failures.append(repr(err))

    run_in_threads(worker, [(seed,) for seed in range(4)], switch_interval=1e-5)
    assert not failures
    stats = cache.stats()
    assert stats["size"] == len(cache) == len(list(cache)) <= 16
    assert f.cache_info().currsize == len(cache)
