"""The child process of test_interrupt_injection.py: a storm of KeyboardInterrupts over memoized calls on
one backend, then checks that nothing is wedged or damaged.

Run as ``python interrupt_storm_child.py '<json config>'`` (the test does it, in a fresh interpreter per
backend). The config: ``backend`` (a name of tests/backends.py), ``spec`` (``[class name, args, kwargs]``
of the store to reopen, or null for InMemCache/NoCache/CallbackCache, built here), ``seed``,
``storm_seconds`` (at least), ``min_calls`` (the storm runs on until this many calls were made, up to
``max_storm_seconds``), ``threads`` (worker threads besides the main thread and the asyncio thread).

The storm: the main thread and the workers call memoized plain functions and generators, an asyncio
thread runs tasks calling memoized coroutines and async generators (same and different keys, some
raising, some slow enough to have single-flight waiters, ``cache_clear()``/``cache.clear()`` now and
then), in loops that catch KeyboardInterrupt and carry on. An interrupter thread sends, at random short
intervals, SIGINT to the process (handled by the main thread) or an asynchronous KeyboardInterrupt
(``PyThreadState_SetAsyncExc``) to a worker or the asyncio thread, which lands at whatever bytecode that
thread is running: wrappers, backends, SQLAlchemy, diskcache, asyncio. Each function is called once
before the interrupts start (imports, first connections, threads the backends start once), and no storm
thread starts a thread (see SharedExecutor). An event loop of the storm lives EPOCH seconds (asyncio's
own code is not safe against asynchronous exceptions, so one that landed there may have lost a wakeup);
when its tasks are done, the cache's coroutine single-flight must hold no flight for it (``audit``).

Every call that returns is checked against values computed independently of the cache. After the storm
(interrupts stopped, a short settling time for pending ones, every thread joined within a bound):

- every function, on old and new keys, alone and from several threads or tasks at once, returns the
  right value within a bound (a watchdog dumps every thread's stack and exits 1 otherwise), and a second
  call is a hit on backends that store;
- ``os.fork()`` works: the child makes calls on the same store and exits 0 within 10 s;
- the SQLite fork gate is open and empty;
- the store passes ``integrity_problems`` (``verify()`` plus SQLite's own check).

Exit status 0 when all of this holds; 1 with a report on stdout otherwise (wrong values, unexpected
exceptions, threads that do not stop, stale flights; ``KNOWN_DEFECTS`` are counted and printed instead). SIGUSR1 dumps every thread's
stack to stderr (the test sends it before killing a child that overran its time).
"""

from __future__ import annotations

import asyncio
import ctypes
import faulthandler
import json
import os
import random
import re
import signal
import sys
import threading
import time
import traceback
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from robustness_support import build_cache, named, pause, value  # (first: it puts tests/reliability on sys.path)
from oxicache.memo.async_flight import _RETRY
from oxicache.backends._forkgate import SQLITE_GATE
from store_support import integrity_problems

faulthandler.enable()
faulthandler.register(signal.SIGUSR1, all_threads=True)

HOT = 12  # keys 0..11: shared by every thread, so calls collide on them (single-flight)
CHECK_BOUND = 60.0  # seconds any post-storm phase may take before the watchdog declares a wedge
JOIN_BOUND = 30.0  # seconds the storm's threads get to finish once told to stop
SETTLE = 0.5  # seconds the threads keep catching interrupts after the last one was sent
EPOCH = 0.5  # seconds an event loop of the storm runs before it is torn down and a new one started


def raises(x: int) -> bool:
    """The keys on which g and ag raise ValueError."""
    return x % 3 == 0


class SharedExecutor(ThreadPoolExecutor):
    """The default executor of every event loop of the storm (``asyncio.to_thread`` runs the backends'
    I/O there), with all its threads started before the storm and never shut down by a loop's close().

    A thread started while the interrupter runs could be hit by an interrupt meant for the thread that
    starts it: CPython gives the new thread's state its creator's id until the thread runs, and
    ``PyThreadState_SetAsyncExc`` matches by id. The new thread then dies before it reports that it
    started, and its creator waits in ``Thread.start()`` forever: an artefact of the injection, not of
    the code under test. So no thread may be started by a storm thread."""

    WORKERS = 8

    def __init__(self) -> None:
        super().__init__(max_workers=self.WORKERS, thread_name_prefix="storm-executor")
        barrier = threading.Barrier(self.WORKERS + 1)
        for _ in range(self.WORKERS):
            self.submit(barrier.wait, 10)
        barrier.wait(10)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        pass  # a loop's close(): the executor outlives it

    def close(self) -> None:
        super().shutdown(wait=False)


class Report:
    """What the storm saw, shared by the threads (a ``threading.Lock``, whose ``with`` runs no Python code
    on entry or exit, so an interrupt cannot leave it held)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.problems: list[str] = []  # wrong values, unexpected exceptions: the storm fails
        self.kinds: Counter[str] = Counter()  # unexpected exceptions by type, for the summary
        self.notes: Counter[str] = Counter()  # information, not failures (deduplicated)

    def count(self, what: str, n: int = 1) -> None:
        with self.lock:
            self.counts[what] += n

    def note(self, text: str) -> None:
        with self.lock:
            self.notes[text] += 1

    def problem(self, text: str, kind: str) -> None:
        with self.lock:
            self.kinds[kind] += 1
            if len(self.problems) < 20:
                self.problems.append(text)


REPORT = Report()


def define(cache: Any) -> dict[str, Any]:
    """The memoized functions of the storm, by name."""

    @named(cache, "storm.f")
    def f(x: int) -> str:
        if x % 4 == 0:
            pause(0.01)  # slow enough for other threads to wait on it
        return value("f", x)

    @named(cache, "storm.g")
    def g(x: int) -> str:
        if raises(x):
            pause(0.003)
            raise ValueError(f"g|{x}")
        return value("g", x)

    @named(cache, "storm.gen")
    def gen(n: int):  # noqa: ANN202
        for i in range(n):
            if i == 1:
                pause(0.002)
            yield value("gen", f"{n}.{i}")

    @named(cache, "storm.af")
    async def af(x: int) -> str:
        if x % 4 == 0:
            await asyncio.sleep(0.01)
        return value("af", x)

    @named(cache, "storm.ag")
    async def ag(x: int) -> str:
        if raises(x):
            await asyncio.sleep(0.003)
            raise ValueError(f"ag|{x}")
        return value("ag", x)

    @named(cache, "storm.agen")
    async def agen(n: int):  # noqa: ANN202
        for i in range(n):
            if i == 1:
                await asyncio.sleep(0.001)
            yield value("agen", f"{n}.{i}")

    return {"f": f, "g": g, "gen": gen, "af": af, "ag": ag, "agen": agen}


def expect(tag: str, x: int) -> Any:
    """The right outcome of ``tag(x)``: a value, a list of items, or the ValueError's message."""
    if tag in ("gen", "agen"):
        return [value(tag, f"{x}.{i}") for i in range(x)]
    if tag in ("g", "ag") and raises(x):
        return ValueError(f"{tag}|{x}")
    return value(tag, x)


#: Defects this storm hits often enough to fail nearly every run, each reproduced deterministically by an
#: xfail test of test_interrupt_injection.py; counted (and printed) instead of failing the storm, so that
#: the storm keeps finding anything else. Remove an entry when its defect is fixed (its xfail test then
#: passes, and fails as XPASS(strict) until its mark is removed).
KNOWN_DEFECTS: dict[str, tuple[str, str, type[BaseException]]] = {}


def known_defect(err: BaseException) -> str | None:
    """The KNOWN_DEFECTS entry ``err`` (or an exception it was raised from) is, if any."""
    seen: BaseException | None = err
    for _ in range(6):
        if seen is None:
            return None
        frames = traceback.extract_tb(seen.__traceback__)
        for name, (file, func, kind) in KNOWN_DEFECTS.items():
            if isinstance(seen, kind) and frames and frames[-1].filename.endswith(file) and frames[-1].name == func:
                return name
        seen = seen.__cause__ or seen.__context__
    return None


def judge(tag: str, x: int, got: Any, err: BaseException | None) -> None:
    """Records a wrong outcome (a wrong value, a missing or wrong exception)."""
    want = expect(tag, x)
    if isinstance(want, ValueError):
        if type(err) is ValueError and str(err) == str(want):
            return
        shown = f"raised {type(err).__name__}: {err}" if err is not None else f"returned {got!r}"
        REPORT.problem(f"{tag}({x}) {shown}; expected ValueError({str(want)!r})", "wrong outcome")
        return
    if err is not None:
        known = known_defect(err)
        if known:
            REPORT.count(f"known defect: {known}")
            return
        tb = "".join(traceback.format_exception(err))
        REPORT.problem(f"{tag}({x}) raised unexpectedly:\n{tb}", type(err).__name__)
        return
    if got != want:
        REPORT.problem(f"{tag}({x}) returned {got!r}; expected {want!r}", "wrong value")


class Storm:
    def __init__(self, config: dict[str, Any], cache: Any, funcs: dict[str, Any]) -> None:
        self.config, self.cache, self.funcs = config, cache, funcs
        self.seed = int(config["seed"])
        self.stop = threading.Event()  # the workers stop looping
        self.over = threading.Event()  # the interrupter stops interrupting
        self.main_armed = False  # the SIGINT handler raises KeyboardInterrupt only while set
        self.armed: dict[int, bool] = {}  # thread ident -> inside its interruptible loop
        self.targets: list[threading.Thread] = []
        self.escaped: list[str] = []  # KeyboardInterrupts that left a thread's outermost loop
        self.executor = SharedExecutor()

    # ---- the calls ------------------------------------------------------------------------------------
    def key(self, rng: random.Random) -> int:
        return rng.randrange(HOT) if rng.random() < 0.8 else rng.randrange(1000, 200_000)

    def sync_op(self, rng: random.Random) -> None:
        r = rng.random()
        f, g, gen = self.funcs["f"], self.funcs["g"], self.funcs["gen"]
        if r < 0.010:
            REPORT.count("cache_clear")
            self.funcs[rng.choice(list(self.funcs))].cache_clear()
            return
        if r < 0.013:
            REPORT.count("clear")
            self.cache.clear()
            return
        if r < 0.04:  # the direct API: a miss or exactly the value
            x = self.key(rng)
            got = self.cache.get(f, x=x)
            REPORT.count("get")
            if got is not ... and got != value("f", x):
                REPORT.problem(f"cache.get(f, x={x}) returned {got!r}", "wrong value")
            return
        if r < 0.55:
            tag, fn, x = ("f", f, self.key(rng)) if r < 0.35 else ("g", g, self.key(rng))
            REPORT.count("calls")
            try:
                got = fn(x)
            except KeyboardInterrupt:
                raise
            except Exception as err:  # noqa: BLE001 - judged
                judge(tag, x, None, err)
                return
            judge(tag, x, got, None)
            return
        n = rng.randrange(6)
        REPORT.count("calls")
        if r < 0.9:
            try:
                got = list(gen(n))
            except KeyboardInterrupt:
                raise
            except Exception as err:  # noqa: BLE001 - judged
                judge("gen", n, None, err)
                return
            judge("gen", n, got, None)
        else:  # partial consumption: nothing may be stored, the next call still sees every item
            for item in gen(n):
                if item != value("gen", f"{n}.0"):
                    REPORT.problem(f"gen({n}) yielded {item!r} first", "wrong value")
                break

    def sync_loop(self) -> None:
        rng = random.Random(f"{self.seed}-{threading.current_thread().name}")
        me = threading.get_ident()
        while not self.stop.is_set():
            try:
                self.armed[me] = True
                while not self.stop.is_set():
                    try:
                        self.sync_op(rng)
                    except KeyboardInterrupt:
                        REPORT.count("interrupted")
            except KeyboardInterrupt:
                REPORT.count("interrupted")
        self.armed[me] = False

    def thread_main(self, body: Callable[[], None]) -> None:
        """A storm thread: ``body`` until told to stop. An interrupt that lands in this loop's own
        bookkeeping, outside every handler, ends the thread (counted as an escape, not a failure)."""
        try:
            while not self.stop.is_set():
                try:
                    body()
                except KeyboardInterrupt:
                    REPORT.count("interrupted")
        except KeyboardInterrupt:
            self.escaped.append(threading.current_thread().name)

    async def guarded(self, fn: Any, x: int, timeout: float | None) -> tuple[str, Any]:
        """One call, as a task of its own: ("ok", value), ("err", exception) or ("interrupted", None). A
        KeyboardInterrupt is caught here, in the task's coroutine, so it does not stop the event loop;
        ``timeout`` cancels the call at a random point (a cancelled single-flight leader hands over)."""
        try:
            if timeout is None:
                return "ok", await fn(x)
            return "ok", await asyncio.wait_for(fn(x), timeout)
        except KeyboardInterrupt:
            return "interrupted", None
        except Exception as err:  # noqa: BLE001 - judged by the caller
            return "err", err

    async def async_op(self, rng: random.Random) -> None:
        af, ag, agen = self.funcs["af"], self.funcs["ag"], self.funcs["agen"]
        r = rng.random()
        if r < 0.01:
            REPORT.count("cache_clear")
            self.funcs[rng.choice(["af", "ag", "agen"])].cache_clear()
            return
        if r < 0.75:
            tag, fn = ("af", af) if r < 0.5 else ("ag", ag)
            x = self.key(rng)
            width = 1 if rng.random() < 0.5 else rng.randrange(2, 5)  # same key from several tasks at once
            REPORT.count("calls", width)
            timeouts = [rng.uniform(0, 0.015) if rng.random() < 0.2 else None for _ in range(width)]
            if width == 1:
                results = [await self.guarded(fn, x, timeouts[0])]
            else:
                tasks = [asyncio.ensure_future(self.guarded(fn, x, t)) for t in timeouts]
                results = [await t for t in tasks]
            for kind, got in results:
                if kind == "interrupted":
                    REPORT.count("interrupted")
                elif kind == "err" and isinstance(got, TimeoutError):
                    REPORT.count("cancelled")
                elif kind == "err":
                    judge(tag, x, None, got)
                else:
                    judge(tag, x, got, None)
            return
        n = rng.randrange(6)
        REPORT.count("calls")
        try:
            got = [item async for item in agen(n)]
        except KeyboardInterrupt:
            raise
        except Exception as err:  # noqa: BLE001 - judged
            judge("agen", n, None, err)
            return
        judge("agen", n, got, None)

    async def async_task(self, i: int) -> None:
        rng = random.Random(f"{self.seed}-task{i}-{time.monotonic_ns()}")
        while not self.stop.is_set():
            try:
                await self.async_op(rng)
            except KeyboardInterrupt:
                REPORT.count("interrupted")

    def async_loop(self) -> None:
        """The asyncio thread: event loops of EPOCH seconds each. A KeyboardInterrupt that lands in
        asyncio's own code (the loop, a Handle, a done-callback) leaves the loop and may have lost a
        wakeup (asyncio is not safe against asynchronous exceptions), so a loop is not kept long: it is
        torn down (tasks cancelled, a bounded wait) and its single-flight state audited."""
        me = threading.get_ident()
        self.armed[me] = True
        while not self.stop.is_set():
            REPORT.count("event_loops")
            loop = asyncio.new_event_loop()
            loop.set_default_executor(self.executor)
            loop.set_exception_handler(lambda _loop, _context: REPORT.count("asyncio_handler_calls"))
            usable = True
            try:
                tasks = [loop.create_task(self.async_task(i)) for i in range(4)]
                until = time.monotonic() + EPOCH
                while usable and not self.stop.is_set() and time.monotonic() < until:
                    try:
                        loop.call_later(0.05, loop.stop)
                        loop.run_forever()
                    except KeyboardInterrupt:  # landed in the loop's own code
                        REPORT.count("interrupted")
                    except RuntimeError:  # interrupted half-way out of run_forever: "already running"
                        usable = False
            except KeyboardInterrupt:
                REPORT.count("interrupted")
            self.teardown(loop, usable)
        self.armed[me] = False

    def teardown(self, loop: asyncio.AbstractEventLoop, usable: bool) -> None:
        """Cancel the loop's tasks, run it until they are done (at most 2 s), audit the single-flight
        state it leaves, close it. Interrupts may land here too: the steps are retried."""
        for _ in range(20):
            try:
                pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
                if usable:
                    for t in pending:
                        t.cancel()
                    deadline = time.monotonic() + 2
                    while pending and time.monotonic() < deadline:
                        loop.call_later(0.02, loop.stop)
                        loop.run_forever()
                        pending = [t for t in pending if not t.done()]
                break
            except KeyboardInterrupt:
                REPORT.count("interrupted")
            except RuntimeError:
                usable = False
        for _ in range(20):
            try:
                if usable and not pending:
                    self.audit(loop)
                elif pending:
                    REPORT.count("tasks_stuck_in_teardown", len(pending))
                    for t in pending[:1]:
                        where = "".join(traceback.format_stack(t.get_stack(limit=8)[-1])) if t.get_stack() else "?"
                        REPORT.note(f"a task still pending 2 s after cancel() (a wakeup lost to an interrupt in "
                                    f"asyncio's code?), at:\n{where}")
                else:
                    REPORT.count("loops_unusable")
                break
            except KeyboardInterrupt:
                REPORT.count("interrupted")
        for _ in range(20):
            try:
                if not loop.is_running():
                    loop.close()
                break
            except KeyboardInterrupt:
                REPORT.count("interrupted")
            except RuntimeError:
                break

    def audit(self, loop: asyncio.AbstractEventLoop) -> None:
        """Every task of ``loop`` is done: no single-flight of a coroutine may still be registered for it.
        One that is would make the next call of its key in this loop wait for a leader that is gone (up
        to wait_timeout, 600 s), or, if its future is done, spin on it or get its stale outcome."""
        running = self.cache._async_flights._by_loop.get(loop)
        if running:
            for key, fut in list(running.items()):
                if fut.cancelled():
                    state = "its future cancelled"
                elif not fut.done():
                    state = "its future pending, with no task left to finish it"
                elif fut.exception() is not None:
                    state = f"its future done with {fut.exception()!r:.80}"
                else:
                    state = "its future done with " + ("the hand-over marker" if fut.result() is _RETRY else repr(fut.result())[:80])
                REPORT.problem(f"after every task of an event loop ended, the cache's async single-flight "
                               f"still registers key {key!r} ({state}): a later call of that key in this loop would "
                               f"wait for a leader that is gone", "stale async flight")

    # ---- the interrupts -----------------------------------------------------------------------------
    def on_sigint(self, signum: int, frame: Any) -> None:
        if self.main_armed:
            REPORT.count("sigint_raised")
            raise KeyboardInterrupt

    def interrupter(self) -> None:
        rng = random.Random(f"{self.seed}-interrupter")
        set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
        set_async_exc.argtypes = (ctypes.c_ulong, ctypes.py_object)
        set_async_exc.restype = ctypes.c_int
        while not self.over.is_set():
            time.sleep(rng.expovariate(1 / 0.002))
            if rng.random() < 0.3:
                os.kill(os.getpid(), signal.SIGINT)
                REPORT.count("sigint_sent")
                continue
            target = rng.choice(self.targets)
            ident = target.ident
            if ident is not None and target.is_alive() and self.armed.get(ident):
                if set_async_exc(ident, KeyboardInterrupt) == 1:
                    REPORT.count("async_exc_sent")

    # ---- the run --------------------------------------------------------------------------------------
    def warm_up(self) -> None:
        """One call of each function before the storm: lazy imports, first connections and the threads
        the backends start once (the DatabaseCache watchdog) happen here, not in a storm thread."""
        rng = random.Random(self.seed)
        for _ in range(20):
            self.sync_op(rng)
        loop = asyncio.new_event_loop()
        loop.set_default_executor(self.executor)
        try:
            for _ in range(20):
                loop.run_until_complete(self.async_op(rng))
        finally:
            loop.close()

    def run(self) -> None:
        self.warm_up()
        signal.signal(signal.SIGINT, self.on_sigint)
        workers = [threading.Thread(target=self.thread_main, args=(self.sync_loop,), name=f"worker{i}", daemon=True)
                   for i in range(int(self.config["threads"]))]
        loop_thread = threading.Thread(target=self.thread_main, args=(self.async_loop,), name="asyncio", daemon=True)
        self.targets = [*workers, loop_thread]
        interrupter = threading.Thread(target=self.interrupter, name="interrupter", daemon=True)
        for t in self.targets:
            t.start()
        interrupter.start()
        started = time.monotonic()
        least, most, min_calls = float(self.config["storm_seconds"]), float(self.config["max_storm_seconds"]), int(self.config["min_calls"])
        rng = random.Random(f"{self.seed}-main")
        # The main thread calls too; SIGINT lands here.
        while True:
            try:
                self.main_armed = True
                while True:
                    elapsed = time.monotonic() - started
                    if elapsed >= most or (elapsed >= least and REPORT.counts["calls"] >= min_calls):
                        break
                    try:
                        self.sync_op(rng)
                    except KeyboardInterrupt:
                        REPORT.count("interrupted")
                self.main_armed = False
                break
            except KeyboardInterrupt:
                REPORT.count("interrupted")
        self.main_armed = False
        self.over.set()
        interrupter.join(10)
        REPORT.counts["storm_ms"] = int((time.monotonic() - started) * 1000)
        time.sleep(SETTLE)  # pending asynchronous exceptions land while the threads still catch them
        self.stop.set()
        deadline = time.monotonic() + JOIN_BOUND
        for t in self.targets:
            t.join(max(0.1, deadline - time.monotonic()))
        stuck = [t.name for t in self.targets if t.is_alive()]
        if stuck:
            print(f"WEDGED: storm threads {stuck} still running {JOIN_BOUND:.0f} s after being told to stop; stacks:",
                  file=sys.stderr, flush=True)
            faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
            REPORT.problem(f"storm threads {stuck} did not stop within {JOIN_BOUND:.0f} s (stacks on stderr)", "wedged")
        signal.signal(signal.SIGINT, signal.default_int_handler)
        self.executor.close()


# ---- after the storm --------------------------------------------------------------------------------


class Checks:
    def __init__(self, cache: Any, funcs: dict[str, Any], stores: bool, seed: int) -> None:
        self.cache, self.funcs, self.stores = cache, funcs, stores
        self.fresh = 10_000_000 + random.Random(seed).randrange(10**9)  # keys no storm call used
        self.failures: list[str] = []

    def fail(self, text: str) -> None:
        self.failures.append(text)

    def phase(self, what: str, body: Callable[[], None]) -> None:
        """``body()`` under a watchdog: past CHECK_BOUND every thread's stack is dumped and the process
        exits 1 (a wedge). The watchdog is a thread of ours, not ``faulthandler.dump_traceback_later``:
        that one's lock, held by its thread at a fork, would hang a forked child that arms its own."""
        print(f"check: {what}", flush=True)
        done = threading.Event()

        def watch() -> None:
            if not done.wait(CHECK_BOUND):
                sys.stderr.write(f"WEDGED: the check '{what}' still runs after {CHECK_BOUND:.0f} s; stacks:\n")
                faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
                print(f"FAILED\nwedged: the check '{what}' did not finish within {CHECK_BOUND:.0f} s", flush=True)
                os._exit(1)

        watcher = threading.Thread(target=watch, name="watchdog", daemon=True)
        watcher.start()
        try:
            body()
        except Exception:  # noqa: BLE001 - reported
            self.fail(f"{what}: {traceback.format_exc()}")
        finally:
            done.set()
            watcher.join()

    def outcome(self, tag: str, x: int) -> tuple[Any, BaseException | None]:
        fn = self.funcs[tag]
        try:
            if tag == "gen":
                return list(fn(x)), None
            if tag == "agen":
                async def items() -> list[Any]:
                    return [i async for i in fn(x)]
                return asyncio.run(asyncio.wait_for(items(), CHECK_BOUND / 2)), None
            if tag in ("af", "ag"):
                return asyncio.run(asyncio.wait_for(fn(x), CHECK_BOUND / 2)), None
            return fn(x), None
        except Exception as err:  # noqa: BLE001 - judged
            return None, err

    def right(self, tag: str, x: int, got: Any, err: BaseException | None) -> bool:
        want = expect(tag, x)
        if isinstance(want, ValueError):
            ok = type(err) is ValueError and str(err) == str(want)
        else:
            ok = err is None and got == want
        if not ok:
            shown = f"raised {type(err).__name__}: {err}" if err is not None else f"returned {got!r}"
            self.fail(f"{tag}({x}) {shown}; expected {want!r}")
        return ok

    def every_call(self) -> None:
        """Every function on every hot key, a few cold ones and a fresh one: the right outcome, twice."""
        for tag in self.funcs:
            keys = list(range(6)) if tag in ("gen", "agen") else [*range(HOT), 1000, 1001, self.fresh, self.fresh + 1]
            for x in keys:
                for _ in range(2):
                    got, err = self.outcome(tag, x)
                    self.right(tag, x, got, err)

    def hits(self) -> None:
        """A fresh key: the first call is a miss, the second a hit (the store still stores)."""
        quiet = next(k for k in range(self.fresh + 5, self.fresh + 9) if not raises(k))  # g returns on it
        for tag, x in (("f", self.fresh + 2), ("g", quiet), ("gen", 7), ("af", self.fresh + 2), ("agen", 7)):
            fn = self.funcs[tag]
            before = fn.cache_info()
            for _ in range(2):
                got, err = self.outcome(tag, x)
                self.right(tag, x, got, err)
            after = fn.cache_info()
            hits, misses = after.hits - before.hits, after.misses - before.misses
            want = (1, 1) if self.stores else (0, 2)
            if (hits, misses) != want:
                self.fail(f"{tag}({x}) twice after the storm: {hits} hits, {misses} misses; expected {want}")

    def together(self) -> None:
        """Several threads on one new slow key, then several tasks on one new key: all get the value."""
        x = self.fresh + 8  # x % 4 == 0: f sleeps, so the threads wait on one another
        results: list[Any] = []

        def call() -> None:
            results.append(self.outcome("f", x))

        threads = [threading.Thread(target=call, daemon=True) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(CHECK_BOUND / 2)
        if any(t.is_alive() for t in threads):
            self.fail(f"6 threads calling f({x}) together: still running after {CHECK_BOUND / 2:.0f} s")
        for got, err in results:
            self.right("f", x, got, err)

        async def gathered() -> list[Any]:
            return await asyncio.gather(*(self.funcs["af"](x) for _ in range(6)), return_exceptions=True)

        for got in asyncio.run(asyncio.wait_for(gathered(), CHECK_BOUND / 2)):
            self.right("af", x, None if isinstance(got, BaseException) else got, got if isinstance(got, BaseException) else None)

    def fork(self) -> None:
        """A forked child calls on the same store and exits 0 within 10 s."""
        if not hasattr(os, "fork"):
            return
        x = self.fresh + 12
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: forking a multi-threaded process
            pid = os.fork()
        if pid == 0:
            code = 1
            try:
                faulthandler.dump_traceback_later(9, exit=True)
                ok = self.funcs["f"](3) == value("f", 3) and self.funcs["f"](x) == value("f", x)
                ok = ok and list(self.funcs["gen"](3)) == expect("gen", 3)
                code = 0 if ok else 2
            except BaseException:  # noqa: BLE001 - reported by the exit status
                traceback.print_exc()
            finally:
                os._exit(code)
        deadline = time.monotonic() + 10
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                code = os.waitstatus_to_exitcode(status)
                if code != 0:
                    self.fail(f"the forked child exited with status {code}")
                return
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                self.fail("the forked child did not exit within 10 s (wedged after fork; killed)")
                return
            time.sleep(0.01)

    def gate(self) -> None:
        if SQLITE_GATE.inside != 0 or SQLITE_GATE.forking:
            self.fail(f"SQLite fork gate left closed or occupied: inside={SQLITE_GATE.inside}, forking={SQLITE_GATE.forking}")

    def integrity(self) -> None:
        problems = integrity_problems(self.cache)
        if problems:
            self.fail("integrity problems:\n  " + "\n  ".join(problems[:20]))

    def pool(self) -> None:
        """Information only: a DatabaseCache's connections that are neither idle nor in use by anyone."""
        pool = getattr(self.cache, "_pool", None)
        if pool is not None:
            opening = pool._opener() is not None
            print(f"info: DatabaseCache pool: {len(pool.members)} connections, {len(pool.idle)} idle, "
                  f"opening={opening}, open={pool._open_count()}", flush=True)


def main() -> int:
    config = json.loads(sys.argv[1])
    seed = int(config["seed"])
    print(f"interrupt storm: backend={config['backend']} seed={seed} (replay with OXICACHE_SEED={seed})", flush=True)
    warnings.simplefilter("default")

    def unraisable(hook: Any) -> None:  # e.g. an abandoned event loop's coroutines closed by the GC
        text = f"unraisable {type(hook.exc_value).__name__} in {hook.object!r:.60}: {hook.exc_value}"[:300]
        REPORT.note(re.sub(r"0x[0-9a-f]+", "0x...", text))

    sys.unraisablehook = unraisable
    cache, stores = build_cache(config, on_backend_error="raise")
    funcs = define(cache)
    storm = Storm(config, cache, funcs)
    storm.run()
    c = REPORT.counts
    print(f"storm: {c['storm_ms']} ms, {c['calls']} calls, {c['sigint_sent']} SIGINT sent "
          f"({c['sigint_raised']} raised), {c['async_exc_sent']} async KeyboardInterrupts sent, "
          f"{c['interrupted']} caught, {c['event_loops']} event loops, {c['cache_clear']} cache_clear(), "
          f"{c['clear']} clear(), {c['get']} get(), {len(storm.escaped)} threads ended by an escaped interrupt",
          flush=True)
    for what, n in sorted(c.items()):
        if what.startswith("known defect: "):
            print(f"{what} (hit {n} times; not counted as a failure)", flush=True)
    for text, n in REPORT.notes.most_common(8):
        print(f"note ({n}x): {text}", flush=True)
    failures = [f"during the storm ({dict(REPORT.kinds)}):\n{p}" for p in REPORT.problems]
    if any(kind == "wedged" for kind in REPORT.kinds):
        print("FAILED", *failures, sep="\n", flush=True)
        return 1
    checks = Checks(cache, funcs, stores, seed)
    checks.pool()
    checks.phase("every function returns the right value", checks.every_call)
    checks.phase("a fresh key is a miss, then a hit", checks.hits)
    checks.phase("threads and tasks on one key together", checks.together)
    checks.phase("os.fork() and a call in the child", checks.fork)
    checks.phase("the SQLite fork gate", checks.gate)
    checks.phase("store integrity", checks.integrity)
    checks.pool()
    failures += checks.failures
    if failures:
        print("FAILED", *failures, sep="\n", flush=True)
        return 1
    print("OK", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
