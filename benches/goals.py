"""The performance goals of issue 15, each measured beside its baseline in this one run.

    bash scripts/bench-check.sh          # or: python benches/goals.py [--rounds N]

Each goal pairs an oxicache operation with its baseline (a peer library, the bare storage operation on
the same file, or a plain Python call). The two are timed in interleaved rounds (every case once per
round, so drift on a shared machine hits both alike) and the ratio of their medians is compared with the
goal. Two goals are absolute times of a fresh process. Timings are not tests: this script is not part
of the test command, and its verdicts say what this machine measured today.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import timeit
from dataclasses import dataclass
from typing import Any, Callable

import oxicache
from oxicache import CacheEntry, DatabaseCache, DiskCache, InMemCache, JsonCache, NoCache
from oxicache.codec import decode_binary, encode_binary, encode_json, encode_json_bytes
from oxicache.keys import key_of


@dataclass
class Goal:
    name: str
    ours: Callable[[], Any]
    base: Callable[[], Any]
    number: int  # calls per sample
    limit: float  # met when ours / base <= limit
    wording: str
    speedup: bool = False  # a "N x faster" goal: shown as base / ours


def _optional(name: str) -> Any:
    try:
        return __import__(name)
    except ImportError:
        return None


def goals(folder: str) -> list[Goal]:
    out: list[Goal] = []
    orjson, xxhash = _optional("orjson"), _optional("xxhash")

    inputs = {"x": 1, "y": "abc"}
    if orjson is not None and xxhash is not None:
        pair = ("f", inputs)
        out.append(Goal("key_of, small entry", lambda: key_of("f", inputs),
                        lambda: xxhash.xxh3_128_intdigest(orjson.dumps(pair, option=orjson.OPT_SORT_KEYS)),
                        20000, 0.5, "2x faster than orjson+xxh3_128", speedup=True))
    out.append(Goal("CacheEntry.from_args(...).key", lambda: CacheEntry.from_args(func="f", x=1, y="abc").key,
                    lambda: int(hashlib.md5(json.dumps({"func": "f", "inputs": inputs}, sort_keys=True).encode()).hexdigest(), 16),
                    20000, 1 / 15, "15x faster than json+md5", speedup=True))
    if orjson is not None:
        entry = {"func": "app.reports.summary", "inputs": {"x": 5, "y": "abc", "flags": [1, 2, 3]},
                 "output": {"total": 12.5, "rows": ["a", "b"]}, "metadata": {"annotation": {"team": "backend"}}}
        out.append(Goal("codec binary encode+decode, small entry", lambda: decode_binary(encode_binary(entry)),
                        lambda: orjson.loads(orjson.dumps(entry)), 20000, 1.0, "faster than orjson"))
        from oxicache.cli.bench_keys import _chat_messages

        reply = ("Here is the summary.\n\n1. Revenue grew 12% (€4.2M).\n2. Churn fell — see §3.\n要点：成本下降。\n") * 8
        llm = {"func": "oxicache.llm.chat", "inputs": {"model": "gpt-4o-mini", "messages": _chat_messages()},
               "output": reply, "metadata": {"usage": {"prompt_tokens": 1200, "completion_tokens": 300}}}
        # As bytes (what JsonCache writes to its files) against orjson's bytes; and as a str (what the SQL
        # JSON columns are given) against orjson's bytes made a str, the same output.
        out.append(Goal("codec JSON encode, LLM entry (6 KB), bytes", lambda: encode_json_bytes(llm),
                        lambda: orjson.dumps(llm), 2000, 1.5, "within 1.5x of orjson"))
        out.append(Goal("codec JSON encode, LLM entry (6 KB), str", lambda: encode_json(llm),
                        lambda: orjson.dumps(llm).decode(), 2000, 1.5, "within 1.5x of orjson + decode"))

    diskcache = _optional("diskcache")
    if diskcache is not None:
        peer = diskcache.Cache(os.path.join(folder, "peer"))
        ours_disk = DiskCache(os.path.join(folder, "disk"))
        peer_f = peer.memoize()(lambda x: x * 2)
        ours_f = ours_disk.memoize(name="f")(lambda x: x * 2)
        peer_f(1), ours_f(1)
        out.append(Goal("DiskCache hit", lambda: ours_f(1), lambda: peer_f(1), 2000, 0.8, "0.8x diskcache's memoize"))
        new_ours, new_peer = itertools.count(10**6).__next__, itertools.count(10**6).__next__
        out.append(Goal("DiskCache miss+store", lambda: ours_f(new_ours()), lambda: peer_f(new_peer()), 300, 1.0,
                        "1.0x diskcache's memoize"))

    db = DatabaseCache("sqlite", os.path.join(folder, "cache.db"))
    db_f = db.memoize(name="f")(lambda x: x * 2)
    db_f(1)
    holder = db._pool.take()  # the cache's own connection: the same file and pragmas
    db._pool.give(holder)
    cur = holder.dbapi.cursor()
    get_sql, get_args = db._q_get.sql, db._q_get.args({"key": f"{CacheEntry('f', {'x': 1}).key:032x}"})

    def bare_select() -> Any:
        cur.execute(get_sql, get_args)
        return cur.fetchone()

    out.append(Goal("DatabaseCache(sqlite) hit", lambda: db_f(1), bare_select, 2000, 1.5,
                    "within 1.5x of a bare SELECT by key"))
    from oxicache.backends._records import to_columns

    up_sql = db._q_upsert.sql
    new_key = itertools.count(10**6).__next__

    def bare_select_insert() -> None:
        n = new_key()
        cur.execute(get_sql, db._q_get.args({"key": f"{n:032x}"}))
        cur.fetchone()
        cur.execute(up_sql, db._q_upsert.args(to_columns(CacheEntry("g", {"x": n}, n * 2), None, now=1e9)))

    new_db = itertools.count(10**6).__next__
    out.append(Goal("DatabaseCache(sqlite) miss+store", lambda: db_f(new_db()), bare_select_insert, 300, 2.0,
                    "within 2x of a bare SELECT + INSERT"))

    jc = JsonCache(os.path.join(folder, "json"))
    jc_f = jc.memoize(name="small")(lambda x: {"answer": x, "text": "hello world"})
    jc_f(0)
    bare = os.path.join(folder, "bare")
    os.mkdir(bare)
    record = b'{"func":"small","inputs":{"x":0},"output":{"answer":0,"text":"hello world"}}'
    names = (os.path.join(bare, f"{n}.json") for n in itertools.count())

    def atomic_write() -> None:
        fd, tmp = tempfile.mkstemp(dir=bare, suffix=".tmp")
        os.write(fd, record)
        os.close(fd)
        os.replace(tmp, next(names))

    new_json = itertools.count(1).__next__
    out.append(Goal("JsonCache miss+store", lambda: jc_f(new_json()), atomic_write, 200, 1.3,
                    "within 1.3x of an atomic small-file write"))

    def bare_f(x: int) -> int:
        return x * 2

    nocache_f = NoCache().memoize(bare_f)
    out.append(Goal("NoCache wrapper", lambda: nocache_f(1), lambda: bare_f(1), 20000, 2.0, "within 2x of a bare call"))

    class Fresh:
        """Each sample starts empty caches; a call is a miss+store of a new int."""

        ints = itertools.count(10**6)

        def __init__(self, make: Callable[[], Callable[[int], int]]) -> None:
            self.make, self.fn, self.left = make, make(), 0

        def __call__(self) -> Any:
            if self.left == 0:
                self.fn, self.left = self.make(), 1000
            self.left -= 1
            return self.fn(next(self.ints))

    ours_miss = Fresh(lambda: InMemCache().memoize(bare_f))
    lru_miss = Fresh(lambda: functools.lru_cache(maxsize=None)(bare_f))
    out.append(Goal("InMemCache miss+store", ours_miss, lru_miss, 20000, 1.5, "within 1.5x of lru_cache's miss"))

    items = list(range(10))

    def gen(n: int) -> Any:
        yield from range(n)

    memo_gen = InMemCache().memoize(gen)
    list(memo_gen(10))
    out.append(Goal("memoized generator call, before its first item", lambda: memo_gen(10), lambda: iter(items),
                    20000, 1.5, "within 1.5x of iter(list)"))
    return out


def fresh_process_ms(code: str, runs: int = 7) -> float:
    """Median wall time of a new interpreter running ``code``, minus that of an empty one. With the
    package's bytecode compiled, as an installed wheel has it (pip compiles it at install): in a separate
    cache folder (PYTHONPYCACHEPREFIX) that a first, uncounted run fills, whatever PYTHONDONTWRITEBYTECODE
    says (without it, every start compiles the package's source again)."""
    with tempfile.TemporaryDirectory(prefix="oxicache-pycache-") as prefix:
        env = {**os.environ, "PYTHONPYCACHEPREFIX": prefix}
        env.pop("PYTHONDONTWRITEBYTECODE", None)

        def run(snippet: str) -> float:
            subprocess.run([sys.executable, "-c", snippet], check=True, env=env)  # writes the bytecode
            samples = []
            for _ in range(runs):
                start = timeit.default_timer()
                subprocess.run([sys.executable, "-c", snippet], check=True, env=env)
                samples.append(timeit.default_timer() - start)
            return statistics.median(samples)

        return (run(code) - run("pass")) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9, help="interleaved samples per case (default 9)")
    args = parser.parse_args()
    print(f"oxicache {oxicache.__version__}, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"medians of {args.rounds} interleaved samples")
    rows = []
    with tempfile.TemporaryDirectory(prefix="oxicache-goals-") as folder:
        cases = goals(folder)
        samples: dict[str, tuple[list[float], list[float]]] = {g.name: ([], []) for g in cases}
        for _ in range(args.rounds):
            for g in cases:
                samples[g.name][0].append(timeit.timeit(g.ours, number=g.number) / g.number)
                samples[g.name][1].append(timeit.timeit(g.base, number=g.number) / g.number)
        for g in cases:
            ours, base = (statistics.median(s) for s in samples[g.name])
            ratio = ours / base
            shown = f"{1 / ratio:.2f}x faster" if g.speedup else f"{ratio:.2f}x"
            rows.append((g.name, g.wording, f"{ours * 1e9:,.0f} ns vs {base * 1e9:,.0f} ns", shown, ratio <= g.limit))
    # A def, as user code memoizes (a builtin such as abs has its signature worked out by inspect, ~10 ms).
    db_code = ("import os, tempfile, oxicache; d = tempfile.mkdtemp(); "
               "c = oxicache.DatabaseCache('sqlite', os.path.join(d, 'c.db'))\n"
               "def f(x): return -x\n"
               "f = c.memoize(name='f')(f); f(-1)")
    for name, code, limit in (("import oxicache", "import oxicache", 30.0),
                              ("new process: import + DatabaseCache(sqlite) + first call", db_code, 80.0)):
        ms = fresh_process_ms(code)
        rows.append((name, f"under {limit:.0f} ms", f"{ms:.0f} ms", f"{ms:.0f} ms", ms < limit))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    head = ("goal", "target", "measured (ours vs baseline)", "ratio")
    print("  ".join(f"{h:<{w}}" for h, w in zip(head, widths)) + "  verdict")
    for row in rows:
        print("  ".join(f"{c:<{w}}" for c, w in zip(row[:4], widths)) + ("  met" if row[4] else "  NOT MET"))


if __name__ == "__main__":
    main()
