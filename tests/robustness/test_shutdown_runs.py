"""Interpreters that exit while memoized calls are in flight in daemon threads, many times: exit status 0
and a clean stderr every time.

Each run is a fresh child (shutdown_child.py ``exit``): daemon threads lead and wait on single-flight keys
(a leader sleeping inside the memoized function, three waiters on its key), daemon threads run asyncio
loops with memoized coroutines (four tasks on one key) and async generators, one runs generators,
``cache_clear()`` and the direct API, another uses a second open store of the same backend; the main
thread returns after a random 0-200 ms, so finalization catches the threads in every state. On CPython
3.11-3.13 a daemon thread that takes the GIL back during finalization is ended with ``pthread_exit``, a
forced unwind through whatever native frames it is in (rust/shutdown.rs); before that was handled, such
a run aborted with "FATAL: exception not rethrown" about one run in five.

A run fails when it exits non-zero, overruns its time (its thread stacks are dumped, SIGUSR1, then it is
killed), or prints "Fatal Python error", "FATAL", "Segmentation fault" or a traceback to stderr. The test
reports the failure rate and the seed (replay with ``OXICACHE_SEED=<n>``; run i uses seed + i and a delay
drawn from it).

Default: 10 runs per backend (two at a time). ``@pytest.mark.slow``: 24 runs per backend (sampled to keep
CI within its budget; OXICACHE_SHUTDOWN_RUNS=<n> runs more, e.g. 200 before a release).

The children's second open store is the same store. On SQLite files that once corrupted the file (the
second construction's header check dropped the process's POSIX locks), a defect these runs found;
``test_second_instance_on_a_sqlite_store_in_use`` checks it stays fixed.

Also, Linux only: a daemon thread that calls ``pthread_exit`` itself from inside a memoized function, on
InMemCache and on each persistent backend: the process keeps running, its cache keeps working, and it
exits 0.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import backends

CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shutdown_child.py")
BUILT_IN_CHILD = ("inmem", "none", "callback")
SQLITE_FILES = ("disk", "sqlite")  # the backends whose store is a SQLite file
RUN_TIMEOUT = 60.0  # seconds one run may take (start, imports and connects on a loaded machine included)
BAD_STDERR = re.compile(r"Fatal Python error|FATAL|Segmentation fault|Traceback|core dumped")
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and daemon-thread finalization")


def seed_for(nodeid: str) -> int:
    value = int(os.environ.get("OXICACHE_SEED") or random.SystemRandom().randrange(2**32))
    print(f"\n[{nodeid}] seed={value} (replay with OXICACHE_SEED={value})", file=sys.stderr)
    return value


def spec_for(name: str) -> list | None:
    """The spec of a new store of backend ``name`` (None: the child builds it)."""
    if name in BUILT_IN_CHILD:
        return None
    cache = backends.make(name)  # skips (or fails under OXICACHE_REQUIRE_SERVERS=1) without its server
    spec = backends.SPECS[id(cache)]
    cache.close()
    return list(spec)


def run_child(mode: str, config: dict) -> tuple[int | None, str, str, float]:
    """(exit status or None when it overran, stdout, stderr, seconds)."""
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, CHILD, mode, json.dumps(config)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=RUN_TIMEOUT)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGUSR1)  # faulthandler: every thread's stack to stderr
        time.sleep(2)
        proc.kill()
        out, err = proc.communicate()
        code = None
    return code, out, err, time.monotonic() - started


def verdict(code: int | None, err: str) -> str | None:
    """Why a run failed, or None."""
    if code is None:
        return f"still running after {RUN_TIMEOUT:.0f} s (a hang at exit; killed after dumping its stacks)"
    if code != 0:
        name = f" ({signal.Signals(-code).name})" if code < 0 and -code in signal.valid_signals() else ""
        return f"exit status {code}{name}"
    if BAD_STDERR.search(err):
        return "exit status 0, but stderr shows a crash or a traceback"
    return None


def exit_runs(name: str, runs: int, nodeid: str, mode: str = "exit") -> None:
    seed = seed_for(nodeid)
    spec = spec_for(name)
    configs = [{"backend": name, "spec": spec, "seed": seed + i,
                "delay": random.Random(seed + i).uniform(0, 0.2)} for i in range(runs)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda c: run_child(mode, c), configs))
    failed = []
    for config, (code, out, err, took) in zip(configs, results):
        why = verdict(code, err)
        if why is not None:
            failed.append(f"run seed={config['seed']} delay={config['delay'] * 1000:.0f} ms, {took:.1f} s: {why}\n"
                          f"--- stdout ---\n{out[-2000:]}\n--- stderr ---\n{err[-6000:]}")
    others = sorted({err.strip()[-300:] for code, _, err, _ in results if err.strip() and not BAD_STDERR.search(err)})
    print(f"{name}: {runs - len(failed)} of {runs} runs exited cleanly (seed {seed})")
    for text in others[:5]:
        print(f"note: other stderr output of a clean run: {text}")
    assert not failed, (f"{len(failed)} of {runs} runs on {name} failed ({100 * len(failed) / runs:.0f}%; seed {seed}, "
                        f"replay with OXICACHE_SEED={seed}); first:\n" + "\n\n".join(failed[:2]))


@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", list(backends.BACKENDS))
def test_exit_with_calls_in_flight(name: str, request: pytest.FixtureRequest) -> None:
    exit_runs(name, 10, request.node.nodeid)


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("name", list(backends.BACKENDS))
def test_exit_with_calls_in_flight_many(name: str, request: pytest.FixtureRequest) -> None:
    exit_runs(name, int(os.environ.get("OXICACHE_SHUTDOWN_RUNS", "24")), request.node.nodeid)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", ["postgresql", "mysql"])
def test_exit_while_connecting(name: str, request: pytest.FixtureRequest) -> None:
    """Daemon threads connect again for every call while the interpreter exits. PyMySQL and libpq set
    up OpenSSL on each connect (TLS is preferred), with the GIL released; the process's exit runs
    OpenSSL's cleanup, so a connect still in flight then crashed the process (SIGSEGV in
    ``CRYPTO_THREAD_write_lock``; found by the slow runs above, about one in 200 on MySQL). The SQL
    pool drains at exit (backends/_exit_drain.py): connects and statements in flight finish first,
    and no new one starts."""
    exit_runs(name, int(os.environ.get("OXICACHE_SHUTDOWN_RUNS", "24")) // 2, request.node.nodeid, "connecting")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", ["postgresql", "mysql"])
def test_no_statement_starts_once_exit_drains(name: str) -> None:
    """The drain itself, deterministically: once the interpreter's exit handlers run, daemon threads
    still running memoized calls start no statement (their calls get DatabaseCache's connection error)."""
    config = {"backend": name, "spec": spec_for(name), "seed": 0, "delay": 0.3}
    code, out, err, took = run_child("drain", config)
    assert verdict(code, err) is None and "OK:" in out, f"{out}\n--- stderr ---\n{err[-4000:]}"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pthread_exit through ctypes.CDLL(None): glibc")
@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", ["inmem", *backends.PERSISTENT])
def test_pthread_exit_inside_a_memoized_call(name: str) -> None:
    config = {"backend": name, "spec": spec_for(name), "seed": 0, "delay": 0}
    code, out, err, took = run_child("pthread_exit", config)
    why = verdict(code, err)
    assert why is None and "OK" in out, (f"a daemon thread's pthread_exit inside a memoized call on {name}: "
                                         f"{why or 'no OK line'} after {took:.1f} s\n--- stdout ---\n{out}\n"
                                         f"--- stderr ---\n{err[-6000:]}")


def sqlite_path(name: str, spec: list) -> str:
    cls, args, kwargs = spec
    return os.path.join(args[0], "cache.db") if name == "disk" else kwargs["database"]


ATTEMPTS = 2  # each of 5 s; every attempt damaged the file before the fix


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", SQLITE_FILES)
def test_second_instance_on_a_sqlite_store_in_use(name: str) -> None:
    """One process writes to the store from a thread while its main thread constructs another cache
    object on the same store every 5 ms; another process opens, uses and closes the store in a loop.
    For 5 s, twice: both processes must finish without an error and the file must pass SQLite's
    integrity check. Before the fix (``hold_sqlite_file``: the header is read only while no cache of the
    process has the file open), 3 of 3 attempts damaged the file on both backends."""
    failures = []
    for attempt in range(ATTEMPTS):
        spec = spec_for(name)
        config = {"spec": spec, "seconds": 5.0, "reopen": True}
        procs = {mode: subprocess.Popen([sys.executable, CHILD, mode, json.dumps(config)], stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
                 for mode in ("reopen_writer", "reopen_other")}
        outcome = {}
        for mode, proc in procs.items():
            try:
                out, err = proc.communicate(timeout=RUN_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
            outcome[mode] = (proc.returncode, out.strip()[-500:], err.strip()[-500:])
        con = sqlite3.connect(sqlite_path(name, spec), timeout=30)
        try:
            verdict = [row[0] for row in con.execute("PRAGMA integrity_check").fetchall()]
        except sqlite3.DatabaseError as damage:
            verdict = [f"{type(damage).__name__}: {damage}"]
        finally:
            con.close()
        if verdict != ["ok"] or any(code != 0 for code, _, _ in outcome.values()):
            failures.append(f"attempt {attempt + 1}: integrity_check {verdict[:3]}; processes {outcome}")
    assert not failures, f"{len(failures)} of {ATTEMPTS} attempts damaged the {name} store:\n" + "\n".join(failures)
