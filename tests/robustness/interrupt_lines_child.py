"""The child process of the line-by-line interrupt checks of test_interrupt_injection.py.

``python interrupt_lines_child.py <sweep> [<json config>]`` runs one sweep and prints one JSON line: the
list of problems found (empty when sound). A KeyboardInterrupt is raised *at* one line of the code under
test (a trace function raises it at that line's ``line`` event, where Ctrl-C or an asynchronous
exception can land: a signal handler runs, and ``PyThreadState_SetAsyncExc`` fires, at the eval loop's
checks, which come at least once per line that calls anything), once per line, each time on fresh
objects; then the sweep checks that the state left behind is sound and that the next calls complete
within a bound with the right result. This turns the random storm into a deterministic reproduction
for each line where an interrupt leaves damage.

Sweeps:

- ``async_flight``: every line of ``AsyncFlights.run`` (the coroutines' single-flight), in a leader that
  returns, a leader that raises, and a leader with a waiter: no flight of the key may stay registered, and
  a later call of the key from another task returns the right value (or runs the function again and
  raises its new exception) within 1 s.
- ``pool``: every line of DatabaseCache's statement runner and connection pool (``_statement``,
  ``_take``, ``Pool.take``/``_wait``/``give``, ``Watchdog.arm``/``disarm``) during the first statement of a
  new cache (the one that opens its first connection), on the store of ``config["spec"]``: afterwards
  no connection may stay checked out with nobody using it, calls (one that must open a new connection
  too) complete within 1 s, and on a server the statement deadline (the WATCHDOG) still works.
- ``pool_kept``: the same, with the interrupted call's KeyboardInterrupt kept while the next calls run
  (as the interactive interpreter keeps the last uncaught exception): no call may wait for state that
  only frames of the kept traceback hold (a connection they hold is not counted as leaked).
- ``disk_txn``: DiskCache, a write interrupted inside diskcache's transaction while another thread
  writes: the other thread's write must succeed (deterministic interleaving, see ``disk_txn``).
"""

from __future__ import annotations

import asyncio
import contextvars
import faulthandler
import gc
import inspect
import json
import os
import signal
import sys
import tempfile
import threading
import time
from typing import Any, Callable

from robustness_support import value  # (first: it puts tests/reliability on sys.path)
from store_support import open_spec

import oxicache
from oxicache.memo import async_flight as _async_flight
from oxicache.backends import _sql, database

BOUND = 1.0  # seconds a call after the interrupt may take (each takes milliseconds)

faulthandler.register(signal.SIGUSR1, all_threads=True)  # the test's timeout asks for the stacks


def code_lines(func: Any) -> list[tuple[int, str]]:
    """(line number, source text) of every line of ``func``'s body that has code."""
    code = func.__code__
    lines, first = inspect.getsourcelines(code)
    numbers = sorted({n for _, _, n in code.co_lines() if n is not None and n > code.co_firstlineno})
    return [(n, lines[n - first].strip()) for n in numbers if 0 <= n - first < len(lines)]


class Injector:
    """One KeyboardInterrupt, in the thread that calls ``start``, at a point of a function (``code``):

    - ``("line", n)``: at the first ``line`` event of line n in a frame of the function (for which
      ``only()`` is true): before the line runs, i.e. after the previous one, where an interrupt lands
      after a call into C returns;
    - ``("callee", k)``: at the first line of the k-th Python function it calls (its entry, where the
      eval loop checks for interrupts on every call: e.g. inside ``threading.Condition.__exit__`` before
      it releases the lock); ``("callee", 0)`` injects nothing and records the calls in ``callees``.

    Raising from the trace function switches tracing off: exactly one interrupt."""

    def __init__(self, code: Any, point: tuple[str, int], only: Callable[[], bool] = lambda: True) -> None:
        self.code, (self.kind, self.n), self.only = code, point, only
        self.hit = False
        self.callees: list[tuple[int, str]] = []  # (calling line, callee) in call order

    def local(self, frame: Any, event: str, arg: Any) -> Any:
        if self.kind == "line" and event == "line" and frame.f_lineno == self.n and not self.hit and self.only():
            self.hit = True
            raise KeyboardInterrupt
        return self.local

    def callee_local(self, frame: Any, event: str, arg: Any) -> Any:
        if event == "line" and not self.hit:
            self.hit = True
            raise KeyboardInterrupt
        return self.callee_local

    def tracer(self, frame: Any, event: str, arg: Any) -> Any:
        if self.hit:
            return None
        if frame.f_code is self.code:
            return self.local
        back = frame.f_back
        if back is not None and back.f_code is self.code and self.only():
            self.callees.append((back.f_lineno, frame.f_code.co_qualname))
            if self.kind == "callee" and len(self.callees) == self.n:
                return self.callee_local
        return None

    def start(self) -> None:
        sys.settrace(self.tracer)

    def stop(self) -> None:
        sys.settrace(None)


def points(func: Any, dry_run: Callable[[Injector], Any]) -> list[tuple[tuple[str, int], str]]:
    """Every injection point of ``func`` (its lines, then the entries of the Python functions it calls on
    the path ``dry_run`` takes), each with a label."""
    lines = [(("line", n), f"line {n} `{text}`") for n, text in code_lines(func)]
    probe = Injector(func.__code__, ("callee", 0))
    dry_run(probe)
    calls = [(("callee", k), f"entering {name} (called at line {line})")
             for k, (line, name) in enumerate(probe.callees, start=1)]
    return lines + calls


# ---- async_flight ---------------------------------------------------------------------------------------


def async_flight() -> list[str]:
    problems: list[str] = []
    run = _async_flight.AsyncFlights.run
    for scenario in ("returns", "raises", "waiter"):
        for point, label in points(run, lambda probe, s=scenario: async_flight_case(run.__code__, probe, s)):
            problem = async_flight_case(run.__code__, Injector(run.__code__, point), scenario)
            if problem:
                problems.append(f"AsyncFlights.run {label}, leader that {scenario}: {problem}")
    return problems


def async_flight_case(code: Any, injector: Injector, scenario: str) -> str | None:
    cache = oxicache.InMemCache()
    runs: list[int] = []
    x = 3 if scenario == "raises" else 1

    @cache.memoize(name="lines.af")
    async def af(x: int) -> str:
        runs.append(x)
        await asyncio.sleep(0.01)
        if x == 3:
            raise ValueError(f"run {len(runs)}")
        return value("af", x)

    async def main() -> str | None:
        loop = asyncio.get_running_loop()
        leader: asyncio.Task[Any] | None = None
        injector.only = lambda: asyncio.current_task() is leader

        async def first() -> None:
            try:
                await af(x)
            except (KeyboardInterrupt, ValueError):
                pass

        injector.start()
        try:
            leader = loop.create_task(first())
            waiter = loop.create_task(af(x)) if scenario == "waiter" else None
            await asyncio.sleep(0)
            await asyncio.wait_for(leader, BOUND)
        finally:
            injector.stop()
        if not injector.hit:
            return None  # the point is not on this scenario's path (or a dry run)
        if waiter is not None:
            try:
                got = await asyncio.wait_for(asyncio.shield(waiter), BOUND)
                if got != value("af", x):
                    return f"the waiter got {got!r}"
            except TimeoutError:
                return f"the waiter was still waiting {BOUND} s after the leader was interrupted"
        # A later call, from a task of its own context (not the interrupted leader's).
        before = len(runs)
        later = loop.create_task(af(x), context=contextvars.Context())
        try:
            got: Any = await asyncio.wait_for(later, BOUND)
        except TimeoutError:
            return (f"a later call of the key was still waiting after {BOUND} s (the interrupted leader's "
                    f"flight stays registered: it would wait wait_timeout, 600 s by default)")
        except ValueError as err:
            got = err
        if x == 3:
            if not (isinstance(got, ValueError) and len(runs) == before + 1 and str(got) == f"run {len(runs)}"):
                return f"a later call raised {got!r} without running the function (a stale exception)"
        elif got != value("af", x):
            return f"a later call returned {got!r}"
        left = cache._async_flights._by_loop.get(loop) or {}
        if left:
            futures = [v[0] if isinstance(v, tuple) else v for v in left.values()]  # (flight, leader's task)
            states = ["pending" if not f.done() else repr(f.exception() or f.result())[:60] for f in futures]
            return f"a flight stays registered after every call ended ({', '.join(states)})"
        return None

    try:
        return asyncio.run(main())
    except TimeoutError:
        return f"the interrupted leader did not finish within {BOUND} s"


# ---- pool -----------------------------------------------------------------------------------------------


def pool(config: dict[str, Any], keep: bool = False) -> list[str]:
    """``keep``: the interrupted call's KeyboardInterrupt stays referenced while the next calls run, as
    the interactive interpreter keeps an uncaught one in ``sys.last_value``/``sys.last_traceback`` (and as
    a logger, a future or a chained exception may): its traceback keeps the interrupted frames, and their
    locals, alive."""
    spec = tuple(config["spec"])
    funcs = {
        "DatabaseCache._statement": database.DatabaseCache._statement,
        "DatabaseCache._take": database.DatabaseCache._take,
        "Pool.take": _sql.Pool.take,
        "Pool._wait": _sql.Pool._wait,
        "Pool.give": _sql.Pool.give,
        "Watchdog.arm": _sql.Watchdog.arm,
        "Watchdog.disarm": _sql.Watchdog.disarm,
    }
    # A sample on the servers (each point opens a connection): every stride-th point, from offset.
    stride, offset = config.get("stride", 1), config.get("offset", 0)
    problems = []
    for where, func in funcs.items():
        walk = points(func, lambda probe, f=func: pool_case(spec, f.__code__, probe))
        for point, label in walk[offset % stride::stride]:
            problem = pool_case(spec, func.__code__, Injector(func.__code__, point), keep)
            if problem:
                problems.append(f"{where} {label}: {problem}")
    return problems


def bounded(body: Callable[[], Any]) -> str | None:
    """``body()`` in a daemon thread; why it failed, or None."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            body()
            outcome.append(None)
        except BaseException as err:  # noqa: BLE001 - reported
            outcome.append(f"{type(err).__name__}: {err}")

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(BOUND)
    if t.is_alive():
        return f"still waiting after {BOUND} s (it would wait forever)"
    return outcome[0]


def deadline_works() -> bool:
    """The WATCHDOG still shuts down a statement that overruns its deadline (on a socket pair)."""
    import socket

    left, right = socket.socketpair()
    try:
        watch = _sql.WATCHDOG.arm(left.fileno(), 0.05)
        time.sleep(0.5)
        return _sql.WATCHDOG.disarm(watch)
    finally:
        left.close()
        right.close()


def pool_state(p: Any) -> str:
    return f"open={p._open_count()}, opening={p._opener() is not None}"


def lock_held(cond: Any) -> bool:
    """Whether the pool's lock (a native Monitor) is held."""
    return bool(cond.locked)


def pool_case(spec: tuple[Any, ...], code: Any, injector: Injector, keep: bool = False) -> str | None:
    _sql.WATCHDOG.reset()  # as in a new process: the first statement of a server starts its thread
    cache = open_spec(spec)
    injector.start()
    try:
        cache.set("lines.pool", output=value("pool", 0), x=0)
    except KeyboardInterrupt as err:
        if keep:  # as the interactive interpreter does with an uncaught exception
            sys.last_type, sys.last_value, sys.last_traceback = type(err), err, err.__traceback__
    finally:
        injector.stop()
    try:
        if not injector.hit:
            return None
        p = cache._pool

        def use(x: int) -> None:
            cache.set("lines.pool", output=value("pool", x), x=x)
            got = cache.get("lines.pool", x=x)
            assert got == value("pool", x), f"get returned {got!r}"

        why = bounded(lambda: use(1))
        if why:
            return f"the next call: {why} (pool: {pool_state(p)}, idle={len(p.idle)}, lock held={lock_held(p.cond)})"
        gc.collect()  # a connection dropped on the floor by the interrupted call leaves the (weak) set
        leaked = len(p.members) - len(p.idle)
        if leaked and not keep:  # (a kept traceback keeps its frames' connection until it is dropped)
            return (f"{leaked} connection(s) stay checked out with no call running: leaked (never reused nor "
                    f"closed until the process exits)")
        p.close(dispose=False)  # as cache.close() does: the next call opens a new connection
        why = bounded(lambda: use(2))
        if why:
            return f"a call that opens a new connection: {why} (pool: {pool_state(p)})"
        if p.watched:
            works: list[bool] = []
            why = bounded(lambda: works.append(deadline_works()))
            if why or not works[0]:
                return f"the statement deadline (the WATCHDOG) no longer works: {why or 'a late statement is not shut down'}"
        return None
    finally:
        for name in ("last_type", "last_value", "last_traceback"):
            if hasattr(sys, name):
                delattr(sys, name)
        bounded(cache.close)  # (a pool whose lock an interrupt left held would block close() too)


# ---- disk_txn -------------------------------------------------------------------------------------------


def disk_txn() -> list[str]:
    """Thread A's write is interrupted just after diskcache's ``BEGIN IMMEDIATE``; DiskCache rolls it
    back. A is held right after its ROLLBACK (where it once reset diskcache's shared transaction marker,
    ``_txn_id``), until thread B has begun a transaction of its own; then B must still commit its write.
    (Hooks: SQLite's statement trace callback on A's connection, and line tracing, set from it, of the
    frame that runs the ROLLBACK.)"""
    import diskcache.core

    cache = oxicache.DiskCache(tempfile.mkdtemp(prefix="oxicache-lines-"), on_backend_error="raise")
    after_code = type(cache)._after_failed_write.__code__
    set_code = diskcache.core.Cache.set.__code__
    b_may_start, b_in_txn, a_reset = threading.Event(), threading.Event(), threading.Event()
    outcome: dict[str, str] = {}

    def interrupt(frame: Any, event: str, arg: Any) -> Any:
        raise KeyboardInterrupt  # at the line after A's BEGIN IMMEDIATE in diskcache's _transact

    def hold_a(frame: Any, event: str, arg: Any) -> Any:
        if event == "line" and not b_may_start.is_set():  # the first line after A's ROLLBACK
            b_may_start.set()
            b_in_txn.wait(BOUND)
        return hold_a

    def a_statements(sql: str) -> None:  # runs in A's thread, as A's connection starts a statement
        if sql == "BEGIN IMMEDIATE":
            sys._getframe(1).f_trace = interrupt
            sys.settrace(lambda *_: None)
        elif sql == "ROLLBACK" and sys._getframe(1).f_code is after_code:
            sys._getframe(1).f_trace = hold_a
            sys.settrace(lambda *_: None)

    def a() -> None:
        con = cache._dc._con
        con.set_trace_callback(a_statements)
        try:
            cache.set("lines.a", output=1, x=1)
            outcome["a"] = "stored (not interrupted)"
        except KeyboardInterrupt:
            outcome["a"] = "interrupted"
        except BaseException as err:  # noqa: BLE001 - reported
            outcome["a"] = f"{type(err).__name__}: {err}"
        finally:
            sys.settrace(None)
            con.set_trace_callback(None)
            a_reset.set()

    def b_local(frame: Any, event: str, arg: Any) -> Any:
        if event == "line" and cache._dc._txn_id == threading.get_ident() and not b_in_txn.is_set():
            b_in_txn.set()  # B is inside its transaction: let A go on
            a_reset.wait(BOUND)
        return b_local

    def b() -> None:
        if not b_may_start.wait(BOUND):
            outcome["b"] = "A never got past its ROLLBACK"
            return
        sys.settrace(lambda frame, event, arg: b_local if frame.f_code is set_code else None)
        try:
            cache.set("lines.b", output=2, x=2)
            outcome["b"] = "stored"
        except BaseException as err:  # noqa: BLE001 - reported
            outcome["b"] = f"{type(err).__name__}: {err!r}"
        finally:
            sys.settrace(None)

    threads = [threading.Thread(target=b, daemon=True), threading.Thread(target=a, daemon=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(4 * BOUND)
    if outcome.get("a") != "interrupted":
        return [f"set-up: thread A's write was not interrupted as planned: {outcome.get('a')}"]
    problems = []
    if outcome.get("b") != "stored":
        problems.append(f"DiskCache._after_failed_write: another thread's write failed with {outcome.get('b')} "
                        f"(its transaction marker was reset by the interrupted thread after its ROLLBACK)")
    got = cache.get("lines.b", x=2)
    if got != 2:
        problems.append(f"the other thread's entry is {got!r}, not stored")
    return problems


def main() -> int:
    sweep = sys.argv[1]
    config = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    started = time.monotonic()
    if sweep == "async_flight":
        problems = async_flight()
    elif sweep == "pool":
        problems = pool(config)
    elif sweep == "pool_kept":
        problems = pool(config, keep=True)
    else:
        problems = disk_txn()
    print(json.dumps({"problems": problems, "seconds": round(time.monotonic() - started, 1)}), flush=True)
    os._exit(0)  # threads left waiting by a wedged pool are daemon threads: nothing to wait for


if __name__ == "__main__":
    main()
