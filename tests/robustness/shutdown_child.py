"""The child process of test_shutdown_runs.py: an interpreter that exits while memoized calls are in
flight in daemon threads.

``python shutdown_child.py exit '<json config>'``: starts daemon threads that lead and wait on
single-flight keys (a leader sleeping inside the memoized function, several waiters on the same key),
daemon threads running asyncio loops with memoized coroutines (several tasks on one key), a thread
running generators, ``cache_clear()`` and the direct API, a second open store of the backend (on the same
data) used by another thread, then returns from the main thread after ``delay`` seconds (0 to 0.2), so that
interpreter shutdown catches the threads in every state: starting, looking up, leading, waiting,
storing, between calls. The test asserts exit status 0 and a clean stderr.

``python shutdown_child.py connecting '<json config>'``: daemon threads reconnect for every call (the
cache is closed between calls) while the main thread returns, so exit catches connects in flight.

``python shutdown_child.py drain '<json config>'``: daemon threads run statements on a SQL server as the
main thread returns; an exit handler that runs after oxicache's drain counts the statements started
meanwhile (none may be) and prints OK.

``python shutdown_child.py pthread_exit '<json config>'``: a daemon thread ends itself with
``pthread_exit`` from inside a memoized function (a forced unwind through the native wrapper, as CPython
3.11-3.13 does to daemon threads that touch the GIL during finalization). The process must keep
running: the main thread then makes calls on the same cache (the same key too: its wait for the ended
thread's flight is bounded by ``wait_timeout``), prints OK and exits 0.

Config: ``backend``, ``spec`` (as for interrupt_storm_child.py), ``seed``, ``delay``.
"""

from __future__ import annotations

import asyncio
import ctypes
import faulthandler
import json
import random
import signal
import sys
import threading
import time
from typing import Any

from robustness_support import build_cache, named, pause, value  # (first: it puts tests/reliability on sys.path)
from store_support import open_spec

faulthandler.register(signal.SIGUSR1, all_threads=True)  # the test's timeout asks for the stacks


def define(cache: Any, rng: random.Random) -> dict[str, Any]:
    @named(cache, "shutdown.slow")
    def slow(x: str) -> str:
        pause(rng.uniform(0.01, 0.08))  # the leader sleeps inside the function; waiters wait for it
        return value("slow", x)

    @named(cache, "shutdown.gen")
    def gen(n: int):  # noqa: ANN202
        for i in range(n):
            time.sleep(0.002)
            yield value("gen", f"{n}.{i}")

    @named(cache, "shutdown.aslow")
    async def aslow(x: str) -> str:
        await asyncio.sleep(rng.uniform(0.005, 0.05))
        return value("aslow", x)

    @named(cache, "shutdown.agen")
    async def agen(n: int):  # noqa: ANN202
        for i in range(n):
            await asyncio.sleep(0.001)
            yield value("agen", f"{n}.{i}")

    return {"slow": slow, "gen": gen, "aslow": aslow, "agen": agen}


DONE: dict[str, int] = {}  # thread name -> rounds completed (printed at exit: how far the threads got)


def forever(body: Any) -> Any:
    """A daemon thread's loop: ``body(i)`` for i = 0, 1, ...; a backend failure while the interpreter
    goes down is not this test's subject, a crash or an abort is."""
    def run() -> None:
        name = threading.current_thread().name
        i = 0
        while True:
            try:
                body(i)
            except Exception:  # noqa: BLE001 - see above
                time.sleep(0.001)
            i += 1
            DONE[name] = i
    return run


def exit_run(config: dict[str, Any]) -> int:
    rng = random.Random(config["seed"])
    cache, _ = build_cache(config)
    funcs = define(cache, rng)
    slow, gen, aslow, agen = funcs["slow"], funcs["gen"], funcs["aslow"], funcs["agen"]
    run_id = f"{config['seed']}"
    threads: list[threading.Thread] = []

    def start(body: Any, name: str) -> None:
        t = threading.Thread(target=forever(body), name=name, daemon=True)
        threads.append(t)
        t.start()

    # Two groups of four threads on one sequence of keys each: in every round one leads (sleeping in
    # the function) and three wait for it.
    for group in range(2):
        for member in range(4):
            start(lambda i, g=group: slow(f"{run_id}.{g}.{i // 2}"), f"flight{group}.{member}")

    async def tasks(loop_no: int) -> None:
        i = 0
        while True:
            key = f"{run_id}.a{loop_no}.{i}"
            await asyncio.gather(*(aslow(key) for _ in range(4)), return_exceptions=True)
            async for _ in agen(i % 4):
                pass
            i += 1

    for loop_no in range(2):
        start(lambda i, n=loop_no: asyncio.run(tasks(n)), f"asyncio{loop_no}")

    def misc(i: int) -> None:
        list(gen(i % 5))
        if i % 7 == 0:
            slow.cache_clear()
        cache.set("shutdown.direct", output=i, i=i % 5)
        cache.get("shutdown.direct", i=(i + 1) % 5)

    start(misc, "misc")
    if config["spec"] is not None:  # a second open store of the backend, used by its own thread
        other = open_spec(tuple(config["spec"]))  # the same data

        def second(i: int) -> None:
            other.set("shutdown.other", output=value("other", i), i=i % 3)
            other.get("shutdown.other", i=(i + 1) % 3)

        start(second, "second-store")
    time.sleep(config["delay"])
    print(f"exiting after {config['delay'] * 1000:.0f} ms with {sum(t.is_alive() for t in threads)} daemon threads "
          f"running; rounds done: {dict(DONE)}", flush=True)
    return 0  # the main thread returns: finalization with every daemon thread wherever it is


def pthread_exit_run(config: dict[str, Any]) -> int:
    """A daemon thread ends itself with pthread_exit inside a memoized call; the process keeps going."""
    cache, _ = build_cache(config)
    inside = threading.Event()

    @named(cache, "pthread.f", wait_timeout=2)
    def f(x: int) -> str:
        if threading.current_thread().name == "ends-itself":
            inside.set()
            ctypes.CDLL(None).pthread_exit(None)  # a forced unwind through the memoized call's frames
        return value("f", x)

    t = threading.Thread(target=f, args=(0,), name="ends-itself", daemon=True)
    t.start()
    if not inside.wait(30):
        print("FAILED: the thread never entered the memoized function", flush=True)
        return 1
    time.sleep(0.2)
    # The process keeps running and the cache works: other keys at once; the ended thread's own key
    # once the single-flight wait for it runs out (wait_timeout=2 s), when this thread takes it over.
    for x in (1, 2, 1):
        if f(x) != value("f", x):
            print(f"FAILED: f({x}) returned a wrong value", flush=True)
            return 1
    started = time.monotonic()
    if f(0) != value("f", 0):
        print("FAILED: f(0) returned a wrong value", flush=True)
        return 1
    print(f"OK: f(0) taken over after {time.monotonic() - started:.1f} s (thread alive: {t.is_alive()})", flush=True)
    return 0


def connecting_run(config: dict[str, Any]) -> int:
    """Daemon threads that open a new connection for every statement (``close()`` between calls: the
    next call reconnects), so that exit catches connects and TLS set-up in flight (PyMySQL and libpq set
    up OpenSSL on every connect; the process's exit tears OpenSSL down)."""
    cache, _ = build_cache(config)

    def reconnecting(i: int) -> None:
        cache.set("connecting.r", output=value("r", i), i=i % 7)
        cache.get("connecting.r", i=(i + 1) % 7)
        cache.close()

    for n in range(4):
        threading.Thread(target=forever(reconnecting), name=f"reconnect{n}", daemon=True).start()
    time.sleep(config["delay"])
    print(f"exiting after {config['delay'] * 1000:.0f} ms; rounds done: {dict(DONE)}", flush=True)
    return 0


def drain_run(config: dict[str, Any]) -> int:
    """Daemon threads run statements in a loop as the main thread returns. An exit handler registered
    before oxicache's drain (so it runs after it: atexit is last-in, first-out) counts the statements the
    driver starts during 0.3 s of exit, while the daemon threads still run: none may start. Prints OK."""
    import atexit

    import sqlalchemy

    assert "oxicache.backends._exit_drain" not in sys.modules, "the check must be registered first"
    started = [0]
    refused: list[str] = []

    def check() -> None:
        before = started[0]
        time.sleep(0.3)
        during = started[0] - before
        verdict = "OK" if during == 0 and before > 0 and refused else "FAILED"
        print(f"{verdict}: {before} statements before exit, {during} during the last 0.3 s of it; "
              f"refused calls: {len(refused)} ({sorted(set(refused))})", flush=True)

    atexit.register(check)
    url = sqlalchemy.engine.make_url(config["spec"][2]["url"])
    dbapi = url.get_dialect().import_dbapi()
    cursor = dbapi.cursors.Cursor if hasattr(dbapi, "cursors") else dbapi.Cursor
    execute = cursor.execute

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        started[0] += 1
        return execute(self, *args, **kwargs)

    cursor.execute = counted
    cache, _ = build_cache(config)

    def statements(i: int) -> None:
        try:
            cache.set("drain.s", output=value("s", i), i=i % 11)
            cache.get("drain.s", i=(i + 3) % 11)
        except Exception as err:
            refused.append(type(err).__name__)
            raise

    for n in range(4):
        threading.Thread(target=forever(statements), name=f"statements{n}", daemon=True).start()
    time.sleep(config["delay"])
    return 0


def reopen_writer(config: dict[str, Any]) -> int:
    """Writes to the store from a thread for ``seconds`` while the main thread constructs a second cache
    object on the same store every 5 ms (``reopen``; without it, only the writes)."""
    cache = open_spec(tuple(config["spec"]))
    stop = time.monotonic() + config["seconds"]
    failures: list[str] = []

    def write() -> None:
        i = 0
        try:
            while time.monotonic() < stop:
                cache.set("reopen.w", output=value("w", i) * (1 + i % 40), i=i % 500)
                i += 1
        except Exception as err:  # noqa: BLE001 - reported
            failures.append(f"{type(err).__name__}: {err}")

    t = threading.Thread(target=write)
    t.start()
    try:
        while time.monotonic() < stop and t.is_alive():
            if config["reopen"]:
                open_spec(tuple(config["spec"]))  # a second instance on the store, in this process
            time.sleep(0.005)
    except Exception as err:  # noqa: BLE001 - reported
        failures.append(f"{type(err).__name__}: {err}")
    t.join()
    print("\n".join(failures) or "OK", flush=True)
    return 1 if failures else 0


def reopen_other(config: dict[str, Any]) -> int:
    """Another process: opens the store, uses it, closes it, again and again for ``seconds``."""
    stop = time.monotonic() + config["seconds"]
    rng = random.Random(0)
    try:
        while time.monotonic() < stop:
            cache = open_spec(tuple(config["spec"]))
            cache.set("reopen.o", output=1, i=rng.randrange(50))
            cache.get("reopen.o", i=1)
            cache.close()
    except Exception as err:  # noqa: BLE001 - reported
        print(f"{type(err).__name__}: {err}", flush=True)
        return 1
    print("OK", flush=True)
    return 0


def main() -> int:
    mode, config = sys.argv[1], json.loads(sys.argv[2])
    if mode == "exit":
        return exit_run(config)
    if mode == "drain":
        return drain_run(config)
    if mode == "connecting":
        return connecting_run(config)
    if mode == "reopen_writer":
        return reopen_writer(config)
    if mode == "reopen_other":
        return reopen_other(config)
    return pthread_exit_run(config)


if __name__ == "__main__":
    sys.exit(main())
