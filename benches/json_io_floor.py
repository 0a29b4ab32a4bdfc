"""JsonCache memoize hit and miss beside bare small-file I/O on the same disk, interleaved in one run.

Usage: python benches/json_io_floor.py [parent folder for the temporary cache, default: the temp dir]

Prints µs per operation (min and median of 15 interleaved samples) and the ratios quoted in
docs/backends/json.md. Every case runs in each round, so drift in disk speed hits them alike.
"""
import itertools, os, shutil, statistics, sys, tempfile, timeit

from oxicache import JsonCache

root = tempfile.mkdtemp(prefix="jcbench-", dir=sys.argv[1] if len(sys.argv) > 1 else None)
cache = JsonCache(os.path.join(root, "cache"))

@cache.memoize(name="small")
def small(x):
    return {"answer": x, "text": "hello world"}

small(0)  # the key every hit reads
record = open(os.path.join(cache.path, os.listdir(cache.path)[0]), "rb").read()
args = itertools.count(1)
bare = os.path.join(root, "bare"); os.mkdir(bare)
same_name = os.path.join(bare, "same.json")
new_names = (os.path.join(bare, f"{n}.json") for n in itertools.count())

def atomic_write(final):
    fd, tmp = tempfile.mkstemp(dir=bare, suffix=".tmp")
    os.write(fd, record)
    os.close(fd)
    os.replace(tmp, final)

atomic_write(same_name)

def bare_read():
    with open(same_name, "rb") as fh:
        fh.read()

CASES = {  # name: (function, calls per sample)
    "JsonCache memoize hit": (lambda: small(0), 2000),
    "JsonCache memoize miss (new key: compute + store)": (lambda: small(next(args)), 200),
    "JsonCache.set overwriting one key": (lambda: cache.set("small", {"x": 0}, output={"answer": 0, "text": "hello world"}), 200),
    "bare atomic write, new name (mkstemp+write+close+replace)": (lambda: atomic_write(next(new_names)), 200),
    "bare atomic write, same name (replaces a file)": (lambda: atomic_write(same_name), 200),
    "bare small-file read (open+read+close)": (bare_read, 2000),
}
samples = {name: [] for name in CASES}
for _ in range(15):  # interleaved rounds: drift in disk speed hits every case alike
    for name, (fn, n) in CASES.items():
        samples[name].append(timeit.timeit(fn, number=n) / n * 1e6)
best = {name: min(v) for name, v in samples.items()}
med = {name: statistics.median(v) for name, v in samples.items()}
print(f"record: {len(record)} bytes; python {sys.version.split()[0]}; folder {root}")
print(f"{'case':58s} {'min':>8s} {'median':>8s}")
for name in CASES:
    print(f"{name:58s} {best[name]:8.1f} {med[name]:8.1f}")
W = "bare atomic write, new name (mkstemp+write+close+replace)"
print("ratios (min / median):")
for a, b in [("JsonCache memoize hit", W), ("JsonCache memoize miss (new key: compute + store)", W),
             ("JsonCache memoize hit", "bare small-file read (open+read+close)"),
             ("JsonCache.set overwriting one key", "bare atomic write, same name (replaces a file)")]:
    print(f"  {a} / {b}: {best[a] / best[b]:.2f} / {med[a] / med[b]:.2f}")
shutil.rmtree(root)
