"""The persistent backends on their embedded defaults: entries survive the process.

Each backend memoizes the same slow function; the second "run" opens the store again, as a new process
would, and gets every result back without recomputing, with its types intact.
"""

import tempfile
import time
from pathlib import Path

from oxicache import DatabaseCache, DiskCache, JsonCache

folder = Path(tempfile.mkdtemp(prefix="oxicache-demo-"))
STORES = {
    "DiskCache": lambda: DiskCache(folder / "disk"),
    "JsonCache": lambda: JsonCache(folder / "json"),
    "DatabaseCache (SQLite)": lambda: DatabaseCache(provider="sqlite", database=str(folder / "cache.db")),
}


def run(name, make):
    cache = make()
    calls = []

    @cache.memoize(name="demo.slow_square")
    def slow_square(x):
        calls.append(x)
        time.sleep(0.01)
        return (x, x * x)  # a tuple: it comes back as a tuple

    t0 = time.perf_counter()
    results = [slow_square(x) for x in range(20)]
    ms = (time.perf_counter() - t0) * 1000
    cache.close()
    return results, len(calls), ms


for name, make in STORES.items():
    first, computed, ms1 = run(name, make)
    second, recomputed, ms2 = run(name, make)  # a fresh instance on the same store
    assert first == second and type(second[3]) is tuple
    print(f"{name:24s} first run: {computed} computed in {ms1:6.1f} ms; reopened: {recomputed} computed in {ms2:5.1f} ms")
print(f"(stores in {folder})")
