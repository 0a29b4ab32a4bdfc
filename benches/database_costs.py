"""DatabaseCache costs per dialect beside the bare driver running the same statements.

    eval "$(bash scripts/db-servers.sh)"   # exports OXICACHE_PG_URL and OXICACHE_MYSQL_URL
    python benches/database_costs.py       # dialects whose URL is unset are left out

For each dialect, the per-call time (best of 7 runs taking turns, microseconds) of:
  driver SELECT   the cache's own SELECT by key, on a bare DBAPI connection in autocommit (the floor)
  cache._get      the backend primitive: that SELECT plus decoding the row into a CacheEntry
  cache.get       the public lookup: cache.get("f", x=1) (argument binding, key digest, decode)
  memoized hit    a call of a memoized function whose result is stored
  driver upsert   the cache's INSERT ... ON CONFLICT / ON DUPLICATE KEY UPDATE on the bare connection
  cache.set       cache.set("f", output=..., x=1): encode the record, then that upsert
"""

from __future__ import annotations

import os
import sys
import tempfile
import timeit
import uuid

from oxicache import CacheEntry
from oxicache.backends._records import to_columns
from oxicache.backends.database import DatabaseCache

OUTPUT = {"answer": [1, 2, 3], "text": "hello world" * 4}


def best(fns: dict[str, object], number: int, rounds: int = 7) -> dict[str, float]:
    """Best per-call time of each function, the functions taking turns (so that noise on a shared
    machine or network hits them alike)."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            times[name].append(timeit.timeit(fn, number=number) / number * 1e6)
    return {name: min(t) for name, t in times.items()}


def measure(label: str, cache: DatabaseCache, number: int) -> dict[str, float]:
    cache.set("f", output=OUTPUT, x=1)

    @cache.memoize(name="f")
    def f(x):
        return OUTPUT

    key = CacheEntry("f", {"x": 1}).key
    f(1)
    holder = cache._pool.take()  # the cache's own DBAPI connection (autocommit), used here directly
    cache._pool.give(holder)
    cur = holder.dbapi.cursor()
    get_sql, get_args = cache._q_get.sql, cache._q_get.args({"key": f"{key:032x}"})
    # Each upsert writes a new created_at, as cache.set does (an unchanged row can be a no-op on MySQL).
    up_sql = cache._q_upsert.sql
    up_args = [cache._q_upsert.args(to_columns(CacheEntry("f", {"x": 1}, OUTPUT), None, now=1e9 + i))
               for i in range(number * 8)]
    next_args = iter(up_args).__next__

    def driver_select():
        cur.execute(get_sql, get_args)
        return cur.fetchone()

    def driver_upsert():
        cur.execute(up_sql, next_args())

    results = best({
        "driver SELECT": driver_select,
        "cache._get": lambda: cache._get(key),
        "cache.get": lambda: cache.get("f", x=1),
        "memoized hit": lambda: f(1),
    }, number)
    results.update(best({
        "driver upsert": driver_upsert,
        "cache.set": lambda: cache.set("f", output=OUTPUT, x=1),
    }, max(number // 10, 1)))
    cur.close()
    print(f"{label:<11}" + "".join(f"{v:>15.1f}" for v in results.values()), flush=True)
    return results


def main() -> None:
    names = ["driver SELECT", "cache._get", "cache.get", "memoized hit", "driver upsert", "cache.set"]
    print(f"{'µs/call':<11}" + "".join(f"{n:>15}" for n in names))
    with tempfile.TemporaryDirectory() as folder:
        cache = DatabaseCache(database=os.path.join(folder, "cache.db"))
        measure("sqlite", cache, 5000)
        cache.close()
        cache = DatabaseCache(database=":memory:")
        measure("sqlite mem", cache, 5000)
        cache.close()
    for label, env in (("postgresql", "OXICACHE_PG_URL"), ("mysql", "OXICACHE_MYSQL_URL")):
        url = os.environ.get(env)
        if not url:
            print(f"{label:<11}  ({env} not set)", file=sys.stderr)
            continue
        table = f"bench_{uuid.uuid4().hex[:8]}"
        cache = DatabaseCache(url=url, table=table)
        try:
            measure(label, cache, 1000)
        finally:
            cache.table.drop(cache.engine)
            cache.close()


if __name__ == "__main__":
    main()
