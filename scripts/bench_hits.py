"""Hit and miss+store times of a memoized function on each embedded backend, for comparing two builds.

Run it with each build's interpreter, alternating, several times (this machine is shared and noisy):

    for i in 1 2 3 4; do old/bin/python scripts/bench_hits.py; .venv/bin/python scripts/bench_hits.py; done

Each line is JSON: per backend, the best of 15 hit loops and the median of 5 miss+store loops, in ns per
call. Compare the two builds' minima per backend; differences within a few percent are noise here.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time

from oxicache import DatabaseCache, DiskCache, InMemCache, JsonCache

CALLS = {"inmem": 100_000, "disk": 2_000, "json": 2_000, "sqlite": 2_000}


def make(name: str, folder: str):
    if name == "inmem":
        return InMemCache()
    if name == "disk":
        return DiskCache(folder + "/disk")
    if name == "json":
        return JsonCache(folder + "/json")
    return DatabaseCache(provider="sqlite", database=folder + "/cache.db")


def measure(name: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        cache = make(name, folder)

        @cache.memoize
        def f(x, y="a"):
            return x + 1

        f(1)
        n = CALLS[name]
        hits = []
        for _ in range(15):
            start = time.perf_counter_ns()
            for _ in range(n):
                f(1)
            hits.append((time.perf_counter_ns() - start) / n)
        misses, first = [], 10
        m = max(n // 10, 200)
        for _ in range(5):
            start = time.perf_counter_ns()
            for i in range(first, first + m):
                f(i)
            misses.append((time.perf_counter_ns() - start) / m)
            first += m
        cache.close()
    return {"hit_ns": round(min(hits), 1), "miss_ns": round(statistics.median(misses), 1)}


if __name__ == "__main__":
    names = sys.argv[1:] or list(CALLS)
    print(json.dumps({name: measure(name) for name in names}))
