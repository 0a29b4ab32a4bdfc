"""Issue 17 store operations at N entries per function (two functions, each N entries), one timing each: a batch of N hits, f.cache_info(), len(cache), f.cache_clear().

    python benches/store_ops.py 10000 disk json sqlite pg redis   # pg/redis need OXICACHE_PG_URL / OXICACHE_REDIS_URL
"""
import os, sys, tempfile, time, uuid
import oxicache

N = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
which = sys.argv[2:] or ["disk", "json", "sqlite", "pg", "redis"]

def t(fn):
    s = time.perf_counter(); r = fn(); return (time.perf_counter() - s) * 1e3, r

def fill(cache, name):
    @cache.batch_memoize(name=name)
    def f(xs): return [x * 2 for x in xs]
    for start in range(0, N, 1000):
        f(list(range(start, min(N, start + 1000))))
    return f

def stores(kind, d):
    if kind == "disk": return oxicache.DiskCache(os.path.join(d, "c"))
    if kind == "json": return oxicache.JsonCache(os.path.join(d, "c"))
    if kind == "sqlite": return oxicache.DatabaseCache(provider="sqlite", database=os.path.join(d, "c.db"))
    if kind == "pg": return oxicache.DatabaseCache(url=os.environ["OXICACHE_PG_URL"], table="m" + uuid.uuid4().hex[:8])
    if kind == "redis": return oxicache.RedisCache(os.environ["OXICACHE_REDIS_URL"], prefix="m" + uuid.uuid4().hex[:8] + ":")

for kind in which:
    with tempfile.TemporaryDirectory(dir="/tmp") as d:
        c = stores(kind, d)
        f = fill(c, "f"); fill(c, "g")
        ms_hits, out = t(lambda: f(list(range(N))))
        assert out == [x * 2 for x in range(N)] and f.cache_info().misses == N
        ms_info, info = t(f.cache_info)
        assert info.currsize == N, info
        ms_len, n = t(lambda: len(c))
        assert n == 2 * N, n
        ms_clear, _ = t(f.cache_clear)
        assert f.cache_info().currsize == 0 and len(c) == N
        print(f"{kind:7s} N={N}: batch of {N} hits {ms_hits:8.1f} ms | cache_info {ms_info:8.1f} ms | len {ms_len:8.1f} ms | cache_clear {ms_clear:8.1f} ms", flush=True)
        c.clear()
