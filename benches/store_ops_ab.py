"""A/B in one process (python benches/store_ops_ab.py 10000 disk json): the per-function index against the previous way (BaseCache's defaults, which read
every entry: what JsonCache used, and DiskCache for cache_info), interleaved, best of R."""
import os, sys, tempfile, time
import oxicache
from oxicache.base import BaseCache

N = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
R = 3

def best(fn):
    out = []
    for _ in range(R):
        s = time.perf_counter(); fn(); out.append((time.perf_counter() - s) * 1e3)
    return min(out)

def fill(c, name):
    @c.batch_memoize(name=name)
    def f(xs): return [x * 2 for x in xs]
    for s in range(0, N, 1000): f(list(range(s, min(N, s + 1000))))
    return f

for kind in sys.argv[2:] or ["disk", "json"]:
    if kind in ("sqlite", "pg", "redis"):
        continue  # batch_ab, below
    with tempfile.TemporaryDirectory(dir="/tmp") as d:
        c = oxicache.DiskCache(os.path.join(d, "c")) if kind == "disk" else oxicache.JsonCache(os.path.join(d, "c"))
        f = fill(c, "f"); fill(c, "g")
        c.count_function("f")  # the migration (none here: a new folder) out of the timing
        old_info = best(lambda: BaseCache._count_func(c, "f"))
        new_info = best(lambda: c.count_function("f"))
        old_len = best(lambda: BaseCache._len(c)) if kind == "json" else float("nan")
        new_len = best(lambda: len(c))
        s = time.perf_counter(); n_old = BaseCache._clear_func(c, "f"); old_clear = (time.perf_counter() - s) * 1e3
        fill(c, "f")
        s = time.perf_counter(); n_new = c.clear_function("f"); new_clear = (time.perf_counter() - s) * 1e3
        assert n_old == n_new == N
        print(f"{kind} N={N} (2 functions x N): cache_info old {old_info:.1f} ms new {new_info:.1f} ms | "
              f"len old {old_len:.1f} ms new {new_len:.1f} ms | cache_clear old {old_clear:.1f} ms new {new_clear:.1f} ms", flush=True)


def batch_ab(kind: str) -> None:
    """A batch of N hits: one _get per item (the contract's default, as before) against the store's
    _get_many (one statement / MGET per 512 / 1000 keys), interleaved, best of R."""
    import uuid

    if kind == "sqlite":
        d = tempfile.mkdtemp(dir="/tmp")
        c = oxicache.DatabaseCache(provider="sqlite", database=os.path.join(d, "c.db"))
    elif kind == "pg":
        c = oxicache.DatabaseCache(url=os.environ["OXICACHE_PG_URL"], table="ab" + uuid.uuid4().hex[:8])
    else:
        c = oxicache.RedisCache(os.environ["OXICACHE_REDIS_URL"], prefix="ab" + uuid.uuid4().hex[:8])
    f = fill(c, "f")
    items = list(range(N))
    own = type(c)._get_many
    old, new = [], []
    for _ in range(R):
        type(c)._get_many = BaseCache._get_many  # type: ignore[method-assign]
        s = time.perf_counter(); f(items); old.append((time.perf_counter() - s) * 1e3)
        type(c)._get_many = own  # type: ignore[method-assign]
        s = time.perf_counter(); f(items); new.append((time.perf_counter() - s) * 1e3)
    assert f.cache_info().misses == N
    c.clear()
    print(f"{kind} batch of {N} hits: one read per item {min(old):.1f} ms, _get_many {min(new):.1f} ms", flush=True)


for kind in sys.argv[2:]:
    if kind in ("sqlite", "pg", "redis"):
        batch_ab(kind)
