"""Helpers of the concurrency rows (R3 hammer, R20 upsert race, R21 fork safety): child-process bodies,
a start gate with a watchdog, and the store-level checks that do not rest on ``verify()`` alone.

The child bodies are module-level functions of this module (no pytest import), so a "spawn" child
imports only oxicache and this file. Children report through a ``multiprocessing`` queue: first
``("ready", index, None)``, then ``("done", index, report)``.

Import as ``from concurrency_support import ...`` (pytest puts this folder on sys.path; spawn children
get the parent's sys.path).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import queue as queue_module
import random
import sqlite3
import threading
import time
import traceback
import warnings
from typing import Any, Callable, Sequence

import oxicache
from reliability_support import expected_value

Spec = tuple[str, tuple[Any, ...], dict[str, Any]]
NKEYS = 64
MAX_SIZE = 64 * 1024


def open_spec(spec: Spec, **options: Any) -> Any:
    """A new cache object on the store described by ``spec`` (``backends.SPECS[id(cache)]``)."""
    name, args, kwargs = spec
    return getattr(oxicache, name)(*args, **kwargs, **options)


def size_of(key: int) -> int:
    """The payload size of key's value: 0-64 KB, chosen from the key alone (the same in every process)."""
    return random.Random(f"r03-size-{key}").randrange(MAX_SIZE + 1)


def value_of(key: int) -> bytes:
    """f(key), the only value a read of ``key`` may return."""
    return expected_value(key, size_of(key))


def describe_bad_read(key: int, got: Any) -> str:
    """Why ``got`` is not f(key): another key's value, a torn value, or something else."""
    if isinstance(got, bytes):
        for other in range(NKEYS):
            if other != key and got == value_of(other):
                return f"key {key}: read key {other}'s value"
        want = value_of(key)
        if want.startswith(got) or got.startswith(want):
            return f"key {key}: torn value ({len(got)} bytes, want {len(want)})"
        return f"key {key}: wrong bytes ({len(got)} bytes, want {len(want)})"
    return f"key {key}: read a {type(got).__name__}, not bytes"


# ---- running children ------------------------------------------------------------------------------


class Workers:
    """Long-lived "spawn" children that run one job each at a time, so a module's tests pay the
    interpreter starts once. ``run`` gives each the job ``target(*args, index, queue, go)``."""

    def __init__(self, n: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.queue, self.go = ctx.Queue(), ctx.Event()
        self.conns, self.procs = [], []
        for i in range(n):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=_serve, args=(child, i, self.queue, self.go), daemon=True)
            p.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(p)
        self.broken = False

    def run(self, target: Callable[..., Any], args_list: Sequence[tuple[Any, ...]], *, timeout: float,
            what: str) -> list[dict[str, Any]]:
        """Run the jobs at once (one per child); once every child is ready (store open), release them
        together; return their reports in order. Fails, killing the children, when one dies or a report
        does not come within ``timeout`` seconds."""
        assert not self.broken, "the workers were killed by an earlier failure"
        assert len(args_list) <= len(self.procs)
        self.go.clear()
        for conn, args in zip(self.conns, args_list):
            conn.send((target, args))
        procs = self.procs[: len(args_list)]
        deadline = time.monotonic() + timeout
        ready: set[int] = set()
        reports: dict[int, dict[str, Any]] = {}
        try:
            while len(reports) < len(procs):
                try:
                    kind, index, report = self.queue.get(timeout=0.5)
                except queue_module.Empty:
                    dead = [p for p in procs if p.exitcode is not None]
                    assert not dead, f"{what}: child {dead[0].pid} died with exit code {dead[0].exitcode}"
                    assert time.monotonic() < deadline, f"watchdog: {what} gave no report within {timeout}s (children killed)"
                    continue
                if kind == "ready":
                    ready.add(index)
                    if len(ready) == len(procs):
                        self.go.set()
                elif kind == "crashed":
                    raise AssertionError(f"{what}: child {index} raised:\n{report}")
                else:
                    reports[index] = report
        except BaseException:
            self.close(kill=True)
            raise
        return [reports[i] for i in range(len(procs))]

    def close(self, kill: bool = False) -> None:
        self.broken = True
        for conn, p in zip(self.conns, self.procs):
            if not kill:
                try:
                    conn.send(None)
                except OSError:
                    pass
            p.join(0 if kill else 10)
            if p.is_alive():
                p.kill()
                p.join(5)
        self.queue.close()


def _serve(conn: Any, index: int, queue: Any, go: Any) -> None:
    while (job := conn.recv()) is not None:
        target, args = job
        try:
            target(*args, index, queue, go)
        except BaseException:
            queue.put(("crashed", index, traceback.format_exc()))


class Recorder:
    """A child's failures (tracebacks) and the warnings any of its threads emitted, both reported."""

    def __init__(self) -> None:
        self.failures: list[str] = []
        self._lock = threading.Lock()
        self._warnings = warnings.catch_warnings(record=True)
        self.caught = self._warnings.__enter__()
        warnings.simplefilter("always")

    def fail(self, text: str) -> None:
        with self._lock:
            if len(self.failures) < 20:
                self.failures.append(text)

    def report(self, **extra: Any) -> dict[str, Any]:
        self._warnings.__exit__(None, None, None)
        return {"failures": self.failures, "warnings": [f"{w.category.__name__}: {w.message}" for w in self.caught],
                **extra}


def run_threads(body: Callable[[int], Any], n: int) -> list[Any]:
    results: list[Any] = [None] * n

    def run(t: int) -> None:
        results[t] = body(t)

    threads = [threading.Thread(target=run, args=(t,), daemon=True) for t in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return results


# ---- R3: the hammer ----------------------------------------------------------------------------------


def hammer_child(spec: Spec, seed: int, threads: int, seconds: float, index: int, queue: Any, go: Any) -> None:
    """R3's child: ``threads`` threads doing random get / memoized call / refresh (a store through the
    decorator) / remove and a rare clear() on keys 0-63 for ``seconds``; every value read must be f(key)."""
    rec = Recorder()
    cache = open_spec(spec)
    calls = [0] * threads

    @cache.memoize(name="r03.f")
    def f(key: int) -> bytes:
        return value_of(key)

    queue.put(("ready", index, None))
    go.wait(300)
    deadline = time.monotonic() + seconds

    def worker(t: int) -> dict[str, int]:
        rng = random.Random(f"{seed}-{index}-{t}")
        ops = dict.fromkeys(("call", "get_hit", "get_miss", "refresh", "remove", "clear"), 0)
        while time.monotonic() < deadline:
            key, op = rng.randrange(NKEYS), rng.random()
            try:
                if op < 0.35:
                    got, name = f(key), "call"
                    calls[t] += 1
                elif op < 0.6:
                    got = cache.get(f, key=key)
                    name = "get_miss" if got is ... else "get_hit"
                elif op < 0.8:
                    with oxicache.refresh():  # a write through the decorator, whatever is stored
                        got, name = f(key), "refresh"
                    calls[t] += 1
                elif op < 0.997:
                    cache.remove(f, key=key)
                    got, name = ..., "remove"
                else:
                    cache.clear()
                    got, name = ..., "clear"
                ops[name] += 1
                if got is not ... and got != value_of(key):
                    rec.fail(f"{name}: {describe_bad_read(key, got)}")
            except Exception:  # every exception is unexpected here
                rec.fail(traceback.format_exc())
        return ops

    per_thread = run_threads(worker, threads)
    ops = {k: sum(d[k] for d in per_thread) for k in per_thread[0]}
    info = f.cache_info()
    cache.close()
    queue.put(("done", index, rec.report(ops=ops, calls=sum(calls), hits=info.hits, misses=info.misses,
                                         sets=info.sets, errors=info.errors)))


# ---- R20: the upsert race -----------------------------------------------------------------------------


def upsert_child(spec: Spec, shared: bool, threads: int, nkeys: int, rounds: int, min_seconds: float,
                 index: int, queue: Any, go: Any) -> None:
    """R20's child: each thread writes ``nkeys`` keys ``rounds`` times through ``cache.set``.

    ``shared``: every thread of every process writes the same keys 0..nkeys-1 (the race). Otherwise
    (the control) each (process, thread, round, key) is its own key, written once, so every write leaves
    a row; the report then has each write's time, to show the processes' writes interleaved.
    ``min_seconds``: keep writing whole rounds until that long after the start, so that on a loaded
    machine a process cannot finish before the other one is scheduled."""
    rec = Recorder()
    cache = open_spec(spec)
    queue.put(("ready", index, None))
    go.wait(300)

    until = time.monotonic() + min_seconds

    def worker(t: int) -> list[tuple[float, str]]:
        times = []
        r = 0
        while r < rounds or time.monotonic() < until:
            for k in range(nkeys):
                tag = f"p{index}t{t}r{r}k{k}"
                key = k if shared else tag
                try:
                    cache.set("r20.f", {"k": key}, output=tag)
                    times.append((time.time(), tag))
                except Exception:
                    rec.fail(traceback.format_exc())
            r += 1
        return times

    writes = sorted(w for ws in run_threads(worker, threads) for w in ws)
    cache.close()
    queue.put(("done", index, rec.report(writes=writes)))


# ---- store-level checks (not through the code under test) --------------------------------------------


def sqlite_integrity(path: str) -> list[str]:
    con = sqlite3.connect(path, timeout=30)
    try:
        return [str(r[0]) for r in con.execute("PRAGMA integrity_check").fetchall()]
    finally:
        con.close()


def diskcache_check(path: str) -> list[str]:
    import diskcache  # type: ignore[import-untyped]

    dc = diskcache.Cache(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            return [str(w.message) for w in dc.check()]
    finally:
        dc.close()


def json_files_problems(folder: str) -> list[str]:
    """Every ``*.json`` file parses as JSON and holds the record of its own name; no temp file is left."""
    problems = []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if name.endswith(".tmp"):
            problems.append(f"{name}: a temporary file left behind")
        elif name.endswith(".json"):
            try:
                with open(path, "rb") as fh:
                    record = json.loads(fh.read())
            except ValueError as err:
                problems.append(f"{name}: does not parse ({err})")
                continue
            if not isinstance(record, dict) or record.get("key") != name[:-5] or "inputs" not in record:
                problems.append(f"{name}: not the record of its own name")
    return problems


def store_problems(cache: Any) -> list[str]:
    """``cache.verify()`` plus the store's own check underneath: SQLite's integrity_check, diskcache's
    check(), every JSON file parsing."""
    problems = list(cache.verify())
    kind = type(cache).__name__
    if kind == "DiskCache":
        problems += [f"diskcache check: {p}" for p in diskcache_check(cache.path)]
    elif kind == "JsonCache":
        problems += json_files_problems(cache.path)
    elif kind == "DatabaseCache" and cache.url.startswith("sqlite:///") and not cache.url.endswith(":memory:"):
        found = sqlite_integrity(str(cache.engine.url.database))
        problems += [] if found == ["ok"] else [f"integrity_check: {p}" for p in found]
    return problems
