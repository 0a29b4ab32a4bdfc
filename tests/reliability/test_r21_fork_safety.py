"""R21, fork safety: while a background thread of the parent keeps writing to the cache, fork children
("fork" start method) that each use the same cache object: a hit on a parent entry, a memoized call
that computes and stores, a ``set`` and a ``get``.

Pass: every child exits 0 within 10 s of its fork, otherwise it is SIGKILLed and the test fails
"deadlock" (with the child's thread stacks, dumped by faulthandler at 8 s); the parent's writer saw no
error; the parent store passes ``verify()`` and its own check afterwards, and (persistent stores) holds
what every child wrote. Connections are reopened in the child: DiskCache's diskcache connection was
opened by the child's PID; for DatabaseCache every connection
the child's pool holds was opened by the child's PID and is none of the parent's objects, and on
PostgreSQL/MySQL its server session (``pg_backend_pid()`` / ``CONNECTION_ID()``) is none of the
parent's sessions.

Backends: inmem (the Rust core), disk (diskcache), json, sqlite and the pooled postgresql/mysql
DatabaseCache.

Adapted: the default run forks 10 children per backend, 5 at a time (50 connections at once would
strain the shared PostgreSQL, 100 connections for every helper); ``@pytest.mark.slow`` forks the
matrix's 50.
"""

from __future__ import annotations

import faulthandler
import json
import multiprocessing
import os
import threading
import time
import traceback

import pytest

import backends
from concurrency_support import store_problems
from reliability_support import expected_value, watchdog

BACKENDS = ["inmem", "disk", "json", "sqlite", "postgresql", "mysql", "redis", "tiered"]
CHILD_TIMEOUT = 10.0
pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork"),
    # Python 3.12+ warns that forking a multi-threaded process may deadlock: that is this test's subject.
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning"),
]


def session_id(cache) -> object:
    """The server session of one connection taken from the cache's own pool (DatabaseCache internals:
    this is what the cache itself runs its statements on)."""
    query = "SELECT pg_backend_pid()" if cache.engine.dialect.name == "postgresql" else "SELECT CONNECTION_ID()"
    holder = cache._pool.take()
    try:
        holder.cursor.execute(query)
        return holder.cursor.fetchone()[0]
    finally:
        cache._pool.give(holder)


def connections(cache) -> list:
    """The DBAPI connections the cache's pool holds (idle or in use), with the PID that opened each."""
    return [(h.pid, id(h.dbapi)) for h in list(cache._pool.members)]


def child_body(cache, f, c: int, out: str, parent_conns: set[int]) -> None:
    """Runs in the forked child; writes its report to ``out`` and exits 0, or 1 with the traceback."""
    with open(out + ".stacks", "w") as stacks:
        faulthandler.dump_traceback_later(CHILD_TIMEOUT - 2, file=stacks)
        try:
            report: dict[str, object] = {"pid": os.getpid()}
            assert f(c) == expected_value(c, 100)  # an entry the parent stored before forking
            assert f(1000 + c) == expected_value(1000 + c, 100)  # computed and stored here
            cache.set("r21.child", output=os.getpid(), c=c)
            assert cache.get("r21.child", c=c) == os.getpid()
            if type(cache).__name__ == "DiskCache":  # diskcache reconnects when its recorded PID differs
                assert cache._dc._local.pid == os.getpid(), "the child ran on a connection of the parent"
            if type(cache).__name__ == "DatabaseCache":
                held = connections(cache)
                assert held, "the child ran statements without a connection of its own"
                assert all(pid == os.getpid() for pid, _ in held), f"a connection opened by another PID: {held}"
                assert not {i for _, i in held} & parent_conns, "the child used a connection object of the parent"
                if cache.engine.dialect.name != "sqlite":
                    report["session"] = session_id(cache)
            with open(out, "w") as fh:
                json.dump(report, fh)
        except BaseException:
            with open(out, "w") as fh:
                json.dump({"error": traceback.format_exc()}, fh)
            os._exit(1)
        finally:
            faulthandler.cancel_dump_traceback_later()


def read(path: str) -> str:
    if not os.path.exists(path):
        return ""
    with open(path) as fh:
        return fh.read()


def fork_children(name: str, n: int, tmp_path) -> None:
    cache = backends.make(name)

    @cache.memoize(name="r21.f")
    def f(x):
        return expected_value(x, 100)

    for x in range(50):
        f(x)
    is_db = type(cache).__name__ == "DatabaseCache"
    parent_conns = {i for _, i in connections(cache)} if is_db else set()

    stop, wrote, writer_errors = threading.Event(), [0], []

    def writer() -> None:
        i = 0
        while not stop.is_set():
            try:
                cache.set("r21.bg", output=expected_value(i % 40, 200), i=i % 40)
                got = cache.get("r21.bg", i=(i + 7) % 40)
                assert got is ... or got == expected_value((i + 7) % 40, 200)
                f(100 + i % 30)
            except Exception:  # noqa: BLE001 - reported below
                writer_errors.append(traceback.format_exc())
            i += 1
            wrote[0] = i

    bg = threading.Thread(target=writer, daemon=True)
    bg.start()
    while wrote[0] < 5 and bg.is_alive():
        time.sleep(0.005)
    ctx = multiprocessing.get_context("fork")
    deadlocked, failed, reports = [], [], []
    try:
        with watchdog(60 + 4 * n, f"R21 forking {n} children on {name}"):
            for start in range(0, n, 5):
                batch = []
                for c in range(start, min(n, start + 5)):
                    out = str(tmp_path / f"child{c}.json")
                    p = ctx.Process(target=child_body, args=(cache, f, c, out, parent_conns), daemon=True)
                    p.start()  # the writer thread is running: it may hold any lock at this moment
                    batch.append((p, time.monotonic(), out))
                for p, started, out in batch:
                    p.join(max(0.0, started + CHILD_TIMEOUT - time.monotonic()))
                    if p.is_alive():
                        p.kill()
                        p.join(5)
                        stacks = read(out + ".stacks")
                        deadlocked.append(f"child {p.pid}: still running after {CHILD_TIMEOUT}s\n{stacks}")
                    elif p.exitcode != 0:
                        text = read(out) or "(no report)"
                        failed.append(f"child {p.pid}: exit code {p.exitcode}\n{text}")
                    else:
                        with open(out) as fh:
                            reports.append(json.load(fh))
    finally:
        stop.set()
        bg.join(30)
    assert not deadlocked, f"deadlock: {len(deadlocked)} of {n} children SIGKILLed; first:\n{deadlocked[0]}"
    assert not failed, f"{len(failed)} of {n} children failed; first:\n{failed[0]}"
    assert not writer_errors, f"the parent's writer failed {len(writer_errors)} times; first:\n{writer_errors[0]}"
    assert wrote[0] > 5
    if backends.is_persistent(cache):  # the children wrote to the parent's store
        assert {r["pid"] for r in reports} == {cache.get("r21.child", c=c) for c in range(n)}
        assert all(cache.get(f, x=1000 + c) == expected_value(1000 + c, 100) for c in range(n))
    if is_db and cache.engine.dialect.name != "sqlite":
        mine = set()
        for _ in connections(cache):
            mine.add(session_id(cache))
        assert not mine & {r["session"] for r in reports}, "a child ran on one of the parent's server sessions"
        assert len({r["session"] for r in reports}) == n  # each child opened its own
    assert store_problems(cache) == []
    cache.close()


@pytest.mark.parametrize("name", BACKENDS)
def test_r21_fork_with_a_writing_thread(name: str, tmp_path) -> None:
    fork_children(name, 10, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", BACKENDS)
def test_r21_fork_fifty_children(name: str, tmp_path) -> None:
    fork_children(name, 50, tmp_path)
