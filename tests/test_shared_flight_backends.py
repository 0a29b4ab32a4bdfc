"""Single-flight across processes (``memoize(shared_flight=True)``) on the lock-based backends: DiskCache,
JsonCache and DatabaseCache on SQLite (file locks), PostgreSQL (advisory locks) and MySQL/MariaDB
(``GET_LOCK``), and the protocol's checks that read the same on RedisCache (``EVERY``); what is Redis's
own is in tests/test_shared_flight.py.

Processes are real subprocesses, coordinated through files in the test's folder. Where the behaviour under
test is the lease protocol between two callers, two cache instances in one process stand for two processes
(each instance has its own in-process single-flight, and its own locks: separate ``flock`` descriptions,
separate server connections, so only the lock can make them agree).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from backends import SPECS, make

import oxicache
from oxicache import CacheEntry

LOCKED = ["disk", "json", "sqlite", "postgresql", "mysql"]
#: The protocol's checks that read the same on every backend with leases (Redis's lease, others' locks).
EVERY = [*LOCKED, "redis"]
FILES = ["disk", "json", "sqlite"]
SERVERS = ["postgresql", "mysql"]


def _spec(cache: Any) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
    return SPECS[id(cache)]


_opened: list[Any] = []


def _open(cache: Any, **options: Any) -> Any:
    """Another cache object on ``cache``'s store (closed after the test)."""
    name, args, kwargs = _spec(cache)
    other = getattr(oxicache, name)(*args, **kwargs, **options)
    SPECS[id(other)] = SPECS[id(cache)]
    _opened.append(other)
    return other


@pytest.fixture(autouse=True)
def _close_opened() -> Iterator[None]:
    yield
    while _opened:
        _opened.pop().close()


@pytest.fixture(params=LOCKED)
def store(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh store of the backend (the cache object that made it; tests open more on it)."""
    cache = make(request.param)
    yield cache
    cache.close()


@pytest.fixture
def state(tmp_path: Path) -> Path:
    """The folder the test and its children coordinate through."""
    (tmp_path / "ready").mkdir()
    return tmp_path


def _script(cache: Any, state: Path, body: str, **options: Any) -> str:
    """A child: a cache on ``cache``'s store with ``options``, helpers on the ``state`` folder, then ``body``."""
    name, args, kwargs = _spec(cache)
    return textwrap.dedent(
        f"""
        import os, signal, sys, threading, time
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a background shell may ignore SIGINT
        import oxicache
        STATE = {str(state)!r}
        cache = getattr(oxicache, {name!r})(*{args!r}, **{kwargs!r}, **{options!r})

        def mark(name, text):
            with open(os.path.join(STATE, name), "a") as out:  # one short append: atomic
                out.write(text + "\\n")
        """
    ) + textwrap.dedent(body)


def _lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def _run(script: str, *argv: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", script, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _until(condition: Any, seconds: float, what: str, children: list[subprocess.Popen[str]] = ()) -> None:  # type: ignore[assignment]
    deadline = time.monotonic() + seconds
    while not condition():
        for child in children:
            if child.poll() is not None:
                raise AssertionError(f"a child ended early ({what}): {child.communicate()}")
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


@contextlib.contextmanager
def _reaped(*children: subprocess.Popen[str]) -> Iterator[None]:
    try:
        yield
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
            child.communicate()


# ---- processes ---------------------------------------------------------------------------------------

STAMPEDE = """
@cache.memoize(name="expensive")
def expensive(x):
    mark("runs", str(os.getpid()))
    time.sleep(0.4)
    return {"x": x}

open(os.path.join(STATE, "ready", str(os.getpid())), "w").close()
while not os.path.exists(os.path.join(STATE, "go")):
    time.sleep(0.005)
results = []
threads = [threading.Thread(target=lambda: results.append(expensive(1))) for _ in range(3)]
for t in threads: t.start()
for t in threads: t.join()
assert results == [{"x": 1}] * 3, results
print("ok")
"""


def _stampede(cache: Any, state: Path, processes: int, **options: Any) -> int:
    script = _script(cache, state, STAMPEDE, **options)
    children = [_run(script) for _ in range(processes)]
    with _reaped(*children):
        _until(lambda: len(os.listdir(state / "ready")) == processes, 60, "the children start", children)
        (state / "go").touch()
        for child in children:
            out, err = child.communicate(timeout=60)
            assert child.returncode == 0 and out.strip() == "ok", err
    return len(_lines(state / "runs"))


def test_a_stampede_runs_once_across_processes(store: Any, state: Path) -> None:
    # 4 processes x 3 threads miss the same key at once: one execution in all
    assert _stampede(store, state, 4, shared_flight=True) == 1
    assert _open(store).get("expensive", x=1) == {"x": 1}


def test_without_shared_flight_each_process_computes(store: Any, state: Path) -> None:
    # the same stampede without the option: once per process (3; a process that the machine's load delays
    # past the first store reads it instead), which the test above would see without leases
    assert _stampede(store, state, 3) >= 2


SLOW = """
@cache.memoize(name="slow")
def slow(x):
    mark("started", sys.argv[1])
    time.sleep(float(sys.argv[2]))
    return x * 10

print(slow(4), flush=True)
"""


def test_a_killed_leader_is_taken_over_at_once(store: Any, state: Path) -> None:
    """A lock goes with its holder: kill -9 of the leader frees the key at once (the default 30 s lease
    plays no part)."""
    script = _script(store, state, SLOW, shared_flight=True)
    leader = _run(script, "leader", "60")
    with _reaped(leader):
        _until(lambda: _lines(state / "started") == ["leader"], 60, "the leader starts", [leader])
        follower = _run(script, "follower", "0")
        with _reaped(follower):
            time.sleep(1.5)  # the follower waits on the live leader's lock
            assert follower.poll() is None and _lines(state / "started") == ["leader"], "the follower must wait"
            leader.kill()  # kill -9 mid-call: the system (or the server) lets go of its lock
            killed = time.monotonic()
            out, err = follower.communicate(timeout=30)
            took = time.monotonic() - killed
            assert out.strip() == "40", err
            assert _lines(state / "started") == ["leader", "follower"]  # the follower computed it itself
            assert took < 5.0, f"took over {took:.1f}s after the kill"


FORKING = """
@cache.memoize(name="forking")
def forking(x):
    if sys.argv[1] == "leader":
        pid = os.fork()  # a child that copies the leader's descriptors and outlives it
        if pid == 0:
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):  # not the test's pipes: the test waits for their end
                os.dup2(null, fd)
            time.sleep(60)
            os._exit(0)
        mark("child", str(pid))
    mark("started", sys.argv[1])
    time.sleep(float(sys.argv[2]))
    return x * 10

print(forking(4), flush=True)
"""


def test_a_forked_child_does_not_keep_a_killed_leaders_lock(store: Any, state: Path) -> None:
    """A lock held through a descriptor (a file's, a connection's socket) would outlive a killed leader
    in a forked child that copied it: the child lets go of its copies."""
    script = _script(store, state, FORKING, shared_flight=True)
    leader = _run(script, "leader", "60")
    forked = 0
    try:
        with _reaped(leader):
            _until(lambda: _lines(state / "started") == ["leader"], 60, "the leader starts", [leader])
            forked = int(_lines(state / "child")[0])
            leader.kill()
            leader.communicate()
            start = time.monotonic()
            follower = _run(script, "follower", "0")
            with _reaped(follower):
                out, err = follower.communicate(timeout=30)
                assert out.strip() == "40", err
            assert time.monotonic() - start < 10
            assert _lines(state / "started") == ["leader", "follower"]
    finally:
        if forked:
            with contextlib.suppress(ProcessLookupError):
                os.kill(forked, signal.SIGKILL)


HELD = """
@cache.memoize(name="held")
def held(x):
    return x

print("waiting", flush=True)
try:
    held(1)
except KeyboardInterrupt:
    print("interrupted", flush=True)
"""


@pytest.mark.parametrize("store", EVERY, indirect=True)
def test_ctrl_c_interrupts_a_waiter(store: Any, state: Path) -> None:
    holder = _open(store)
    key = CacheEntry("held", {"x": 1}).key
    token = holder._lease_acquire(key, 60)
    assert token is not None  # another "process" leads, and stays alive
    try:
        child = _run(_script(store, state, HELD, shared_flight=True))
        with _reaped(child):
            assert child.stdout is not None and child.stdout.readline().strip() == "waiting"
            time.sleep(1.0)
            os.kill(child.pid, signal.SIGINT)
            sent = time.monotonic()
            out, err = child.communicate(timeout=10)
            assert out.strip() == "interrupted", err
            assert time.monotonic() - sent < 3
    finally:
        holder._lease_release(key, token)
        holder.close()


SILENT = """
@cache.memoize(name="silent")
def silent(x):
    mark("started", sys.argv[1])
    while not os.path.exists(os.path.join(STATE, "resume")):
        time.sleep(0.01)
    return sys.argv[1]

print(silent(1), flush=True)
"""


@pytest.mark.parametrize("store", SERVERS, indirect=True)
def test_a_silent_leader_loses_its_lock_after_the_lease(store: Any, state: Path) -> None:
    """A leader that stops talking (SIGSTOP: a frozen VM, a partition) keeps its connection open, but the
    server ends it once it has been idle for the lease; the follower computes, and the leader, resumed,
    stores nothing over the follower's value."""
    script = _script(store, state, SILENT, shared_flight=True, lease=1.0)
    leader = _run(script, "leader")
    with _reaped(leader):
        _until(lambda: _lines(state / "started") == ["leader"], 60, "the leader starts", [leader])
        follower = _run(script, "follower")
        with _reaped(follower):
            time.sleep(1.5)  # a live leader renews every third of the lease: the follower waits
            assert follower.poll() is None and _lines(state / "started") == ["leader"]
            os.kill(leader.pid, signal.SIGSTOP)
            stopped = time.monotonic()
            _until(lambda: len(_lines(state / "started")) == 2, 15, "the follower takes over", [follower])
            took = time.monotonic() - stopped
            (state / "resume").touch()
            out, err = follower.communicate(timeout=30)
            assert out.strip() == "follower", err
            assert took < 1.0 + 5.0, f"took over {took:.1f}s after the leader stopped, with a 1 s lease"
        os.kill(leader.pid, signal.SIGCONT)
        out, _ = leader.communicate(timeout=30)
        assert out.strip() == "leader"  # the leader's caller still gets its own value
    assert _open(store).get("silent", x=1) == "follower"  # not overwritten by the leader that lost its lock


# ---- two callers in one process -----------------------------------------------------------------------


def _two(store: Any, **options: Any) -> tuple[Any, Any]:
    return _open(store, shared_flight=True, **options), _open(store, shared_flight=True, **options)


@pytest.mark.parametrize("store", EVERY, indirect=True)
def test_a_leader_that_raises_releases_the_lease_at_once(store: Any) -> None:
    first, second = _two(store)
    entered = threading.Event()

    @first.memoize(name="flaky")
    def flaky_first(x: int) -> int:
        entered.set()
        time.sleep(0.3)
        raise RuntimeError("boom")

    @second.memoize(name="flaky")
    def flaky_second(x: int) -> int:
        return x + 1

    errors: list[BaseException] = []

    def run_first() -> None:
        try:
            flaky_first(1)
        except RuntimeError as err:
            errors.append(err)

    t = threading.Thread(target=run_first)
    t.start()
    assert entered.wait(10)
    start = time.monotonic()
    assert flaky_second(1) == 2
    assert time.monotonic() - start < 5
    t.join(10)
    assert len(errors) == 1


@pytest.mark.parametrize("store", EVERY, indirect=True)
def test_a_waiter_takes_the_stored_value(store: Any) -> None:
    first, second = _two(store)
    runs: list[str] = []
    entered = threading.Event()

    @first.memoize(name="value")
    def value_first(x: int) -> str:
        entered.set()
        runs.append("first")
        time.sleep(0.4)
        return f"value {x}"

    @second.memoize(name="value")
    def value_second(x: int) -> str:
        runs.append("second")
        return f"value {x}"

    t = threading.Thread(target=value_first, args=(1,))
    t.start()
    assert entered.wait(10)
    start = time.monotonic()
    assert value_second(1) == "value 1"
    assert time.monotonic() - start < 3  # woken by the release, not by a whole lease
    t.join(10)
    assert runs == ["first"]
    info = value_second.cache_info()
    assert (info.misses, info.sets) == (1, 0)  # a miss answered by the leader's value, stored only once


@pytest.mark.parametrize("store", EVERY, indirect=True)
def test_a_value_stored_just_before_the_lease_is_granted_is_taken(store: Any) -> None:
    """This call's lookup misses, then another process leads, stores and lets go, then this call takes the
    lock, free again: it must look again and take the value, not run the function a second time."""
    leader, late = _two(store)
    runs: list[str] = []
    take = late._lease_take

    def take_after_the_leader_stored(key: int, seconds: float) -> tuple[str | None, CacheEntry | None]:
        assert raced_leader(5) == 10  # another process leads, stores and releases between lookup and lease
        return take(key, seconds)

    late._lease_take = take_after_the_leader_stored

    @leader.memoize(name="raced")
    def raced_leader(x: int) -> int:
        runs.append("leader")
        return x * 2

    @late.memoize(name="raced")
    def raced_late(x: int) -> int:
        runs.append("late")
        return x * 2

    assert raced_late(5) == 10
    assert runs == ["leader"]
    key = CacheEntry("raced", {"x": 5}).key
    token = late._lease_acquire(key, 5)
    assert token is not None  # the lease it took was let go
    late._lease_release(key, token)


@pytest.mark.parametrize("store", EVERY, indirect=True)
def test_wait_timeout_bounds_the_wait_for_another_process(store: Any) -> None:
    first, second = _two(store)
    entered, runs = threading.Event(), []

    @first.memoize(name="stuck")
    def stuck_first(x: int) -> str:
        entered.set()
        runs.append("first")
        time.sleep(2)
        return "first"

    @second.memoize(name="stuck", wait_timeout=0.5)
    def stuck_second(x: int) -> str:
        runs.append("second")
        return "second"

    t = threading.Thread(target=stuck_first, args=(1,))
    t.start()
    assert entered.wait(10)
    start = time.monotonic()
    assert stuck_second(1) == "second"
    assert time.monotonic() - start < 2.5
    t.join(10)
    assert sorted(runs) == ["first", "second"]


# ---- losing a lock --------------------------------------------------------------------------------------


def _cut(cache: Any, key: int) -> None:
    """Takes ``key``'s lock away from its holder from outside: ends the holder's server session
    (``pg_terminate_backend``, ``KILL``), or removes the lock files (a clean-up run by hand)."""
    import shutil

    url = str(cache.engine.url.render_as_string(hide_password=False)) if hasattr(cache, "engine") else ""
    if url.startswith("postgresql"):
        import sqlalchemy

        unsigned = cache._leases.lock_id(key) & 0xFFFF_FFFF_FFFF_FFFF
        engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
        with engine.connect() as conn:
            pid = conn.execute(sqlalchemy.text(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = :hi AND objid = :lo"),
                {"hi": unsigned >> 32, "lo": unsigned & 0xFFFF_FFFF}).scalar()
            assert pid is not None and conn.execute(sqlalchemy.text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()
        engine.dispose()
    elif url.startswith(("mysql", "mariadb")):
        import sqlalchemy

        engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
        with engine.connect() as conn:
            holder = conn.execute(sqlalchemy.text("SELECT IS_USED_LOCK(:n)"), {"n": cache._leases.lock_id(key)}).scalar()
            assert holder is not None
            conn.execute(sqlalchemy.text(f"KILL {int(holder)}"))
        engine.dispose()
    else:
        shutil.rmtree(cache._leases.folder)
    deadline = time.monotonic() + 10
    while not _free(cache, key):  # the server has ended the session
        assert time.monotonic() < deadline
        time.sleep(0.02)


def _free(cache: Any, key: int) -> bool:
    other = _open(cache)
    token = other._lease_acquire(key, 5)
    if token is None:
        return False
    other._lease_release(key, token)
    return True


def test_a_lost_lease_never_overwrites_a_newer_value(store: Any) -> None:
    first, second = _open(store), _open(store)
    old, new = (CacheEntry("f", {"x": 1}, output=v) for v in ("old", "new"))
    key = old.key
    stale = first._lease_acquire(key, 30)
    assert stale is not None and second._lease_acquire(key, 30) is None  # held
    assert first._lease_renew(key, stale, 30)
    _cut(first, key)  # the first leader loses its lock (a killed connection, a removed lock file)
    fresh = second._lease_acquire(key, 30)
    assert fresh is not None
    assert first._lease_renew(key, stale, 30) is False
    assert second._set_leased(new, None, fresh) is True
    assert first._set_leased(old, None, stale) is False  # the first leader comes back: nothing written
    assert second.get("f", x=1) == "new"
    first._lease_release(key, stale)  # (a no-op by now)
    again = first._lease_acquire(key, 30)
    assert again is not None  # the store released the fresh lease, and the stale one holds nothing
    first._lease_release(key, again)
    first.close()
    second.close()


def test_a_lost_lease_found_only_when_storing(store: Any) -> None:
    """No renewal in between: the store itself finds the lock gone and writes nothing."""
    first, second = _open(store), _open(store)
    old, new = (CacheEntry("g", {"x": 1}, output=v) for v in ("old", "new"))
    second.add(new)
    stale = first._lease_acquire(old.key, 30)
    assert stale is not None
    _cut(first, old.key)
    assert first._set_leased(old, None, stale) is False
    assert second.get("g", x=1) == "new"
    first.close()
    second.close()


# ---- the lock files -------------------------------------------------------------------------------------


@pytest.mark.parametrize("store", FILES, indirect=True)
def test_lock_files_do_not_pile_up(store: Any, state: Path) -> None:
    """A lock file lives while its key is leased: the leader removes it as it lets go, the next leader
    removes one a dead leader left, and so does the next cache opened on the folder."""
    cache = _open(store, shared_flight=True)
    folder = Path(cache._leases.folder)

    @cache.memoize(name="many")
    def many(x: int) -> int:
        assert len(list(folder.iterdir())) == 1  # this key's, held
        return x

    assert [many(i) for i in range(20)] == list(range(20))
    assert list(folder.iterdir()) == []
    # a leader killed mid-call leaves its file
    leader = _run(_script(store, state, SLOW, shared_flight=True), "leader", "60")
    with _reaped(leader):
        _until(lambda: _lines(state / "started") == ["leader"], 60, "the leader starts", [leader])
        leader.kill()
        leader.communicate()
    assert len(list(folder.iterdir())) == 1
    _open(store).close()  # the next cache opened on the store removes it
    assert list(folder.iterdir()) == []
    cache.close()


@pytest.mark.parametrize("store", FILES, indirect=True)
def test_a_lock_file_no_one_holds_is_taken_and_removed(store: Any) -> None:
    cache = _open(store)
    key = CacheEntry("f", {"x": 1}).key
    path = Path(cache._leases.path(key))
    path.parent.mkdir(exist_ok=True)
    path.write_text("12345")  # a dead leader's, say
    token = cache._lease_acquire(key, 30)
    assert token is not None
    cache._lease_release(key, token)
    assert not path.exists()
    cache.close()


@pytest.mark.parametrize("store", FILES, indirect=True)
def test_the_store_stays_sound_with_its_lock_folder(store: Any) -> None:
    cache = _open(store, shared_flight=True)
    folder = Path(cache._leases.folder)
    assert cache.memoize(name="f")(lambda x: x)(1) == 1
    assert folder.is_dir() and list(folder.iterdir()) == []  # empty, as after every lease
    assert cache.verify() == []
    key = CacheEntry("f", {"x": 2}).key
    token = cache._lease_acquire(key, 30)
    assert cache.verify() == []  # and with a lock file in it
    cache._lease_release(key, token)
    cache.close()


def test_a_symbolic_link_in_place_of_a_lock_file_is_refused(tmp_path: Path) -> None:
    cache = oxicache.JsonCache(tmp_path / "j", shared_flight=True)
    key = CacheEntry("f", {"x": 1}).key
    path = Path(cache._leases.path(key))
    path.parent.mkdir()
    target = tmp_path / "elsewhere"
    path.symlink_to(target)
    with pytest.raises(OSError):
        cache._lease_acquire(key, 30)
    assert not target.exists()
    calls = []

    @cache.memoize(name="f")
    def f(x: int) -> int:
        calls.append(x)
        return x

    with pytest.warns(oxicache.CacheWarning, match="without a shared-flight lease"):
        assert f(1) == 1  # the backend failure policy: computed without a lease
    assert calls == [1] and not target.exists()


# ---- a private database, the options --------------------------------------------------------------------


def test_in_memory_sqlite_leases_are_the_process_own() -> None:
    cache = oxicache.DatabaseCache(database=":memory:", shared_flight=True)
    key = CacheEntry("f", {"x": 1}).key
    token = cache._lease_acquire(key, 30)
    assert token is not None and cache._lease_acquire(key, 30) is None
    assert cache._lease_renew(key, token, 30) and not cache._lease_renew(key, "other", 30)
    released = threading.Timer(0.2, cache._lease_release, (key, token))
    released.start()
    start = time.monotonic()
    cache._lease_wait(key, 10)
    assert 0.1 < time.monotonic() - start < 5
    token = cache._lease_acquire(key, 30)
    assert cache._set_leased(CacheEntry("f", {"x": 1}, output=2), None, token) is True
    assert cache._set_leased(CacheEntry("f", {"x": 1}, output=3), None, token) is False
    assert cache.get("f", x=1) == 2
    runs = []

    @cache.memoize(name="g")
    def g(x: int) -> int:
        runs.append(x)
        time.sleep(0.1)
        return x

    threads = [threading.Thread(target=g, args=(1,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert runs == [1]
    cache.close()


@pytest.mark.parametrize("backend", ["disk", "json", "sqlite"])
def test_options(backend: str, tmp_path: Path) -> None:
    def build(**options: Any) -> Any:
        if backend == "disk":
            return oxicache.DiskCache(tmp_path / "d", **options)
        if backend == "json":
            return oxicache.JsonCache(tmp_path / "j", **options)
        return oxicache.DatabaseCache(database=tmp_path / "c.db", **options)

    name = {"disk": "DiskCache", "json": "JsonCache", "sqlite": "DatabaseCache"}[backend]
    with pytest.raises(TypeError, match=f"{name} shared_flight must be True or False"):
        build(shared_flight=1)
    for bad in (0, -1, "soon", float("inf")):
        with pytest.raises(ValueError, match=f"{name} lease=.* is not a positive, finite duration"):
            build(lease=bad)
    cache = build()
    assert cache.capabilities.leases and cache.shared_flight is False and cache.lease_seconds == 30.0
    cache.memoize(shared_flight=True)(lambda x: x)  # a lease per function: fine
    cache.close()
    cache = build(shared_flight=True, lease="2m")
    assert cache.shared_flight is True and cache.lease_seconds == 120.0
    with pytest.raises(ValueError, match="shared_flight=True is for plain"):
        cache.memoize(a_generator)  # the cache's default applies to its functions
    cache.close()


def a_generator(x: int) -> Iterator[int]:
    yield x


def test_a_backend_without_leases_names_those_with() -> None:
    with pytest.raises(ValueError, match=r"grants leases across processes \(RedisCache, DatabaseCache, DiskCache, JsonCache\)"):
        oxicache.InMemCache().memoize(shared_flight=True)(lambda x: x)
