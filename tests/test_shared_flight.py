"""Single-flight across processes (``memoize(shared_flight=True)``) on a real Redis server.

Processes are real subprocesses; where the behaviour under test is the lease protocol between two
callers, two ``RedisCache`` instances in one process stand for two processes (each instance has its own
in-process single-flight, so only the server's lease can make them agree).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import time
import uuid
import warnings

import pytest

import oxicache
from servers import REDIS_URL_ENV, require_server

redis = pytest.importorskip("redis")


@pytest.fixture
def url() -> str:
    return require_server(REDIS_URL_ENV)


@pytest.fixture
def prefix(url: str):
    p = f"sf{uuid.uuid4().hex[:12]}"
    yield p
    client = redis.Redis.from_url(url)
    names = list(client.scan_iter(match=f"{p}:*"))
    if names:
        client.delete(*names)
    client.close()


def _child(url: str, prefix: str, body: str, **options: object) -> str:
    """A child script: a RedisCache on ``prefix`` with ``options``, a counter, then ``body``."""
    return textwrap.dedent(
        f"""
        import signal, sys, time
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a background shell may ignore SIGINT
        import oxicache, redis
        raw = redis.Redis.from_url({url!r})
        cache = oxicache.RedisCache({url!r}, prefix={prefix!r}, **{options!r})
        """
    ) + textwrap.dedent(body)


STAMPEDE = """
import threading

@cache.memoize(name="expensive")
def expensive(x):
    raw.incr("{prefix}:runs")
    time.sleep(0.4)
    return {{"x": x, "pid": "leader"}}

raw.incr("{prefix}:ready")
while not raw.exists("{prefix}:go"):
    time.sleep(0.005)
results = []
threads = [threading.Thread(target=lambda: results.append(expensive(1))) for _ in range(3)]
for t in threads: t.start()
for t in threads: t.join()
assert results == [{{"x": 1, "pid": "leader"}}] * 3, results
print("ok")
"""


def _stampede(url: str, prefix: str, processes: int, body: str | None = None, **options: object) -> int:
    raw = redis.Redis.from_url(url)
    script = _child(url, prefix, STAMPEDE.format(prefix=prefix) if body is None else body, **options)
    children = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for _ in range(processes)]
    try:
        deadline = time.monotonic() + 60
        while int(raw.get(f"{prefix}:ready") or 0) < processes:
            assert time.monotonic() < deadline, "children did not start"
            assert all(c.poll() is None for c in children), [c.communicate() for c in children if c.poll() is not None]
            time.sleep(0.01)
        raw.set(f"{prefix}:go", 1)
        for c in children:
            out, err = c.communicate(timeout=60)
            assert c.returncode == 0 and out.strip() == "ok", err
        return int(raw.get(f"{prefix}:runs") or 0)
    finally:
        for c in children:
            if c.poll() is None:
                c.kill()
        raw.close()


def test_a_stampede_runs_once_across_processes(url: str, prefix: str) -> None:
    # 4 processes x 3 threads miss the same key at once: one execution in all
    assert _stampede(url, prefix, 4, shared_flight=True) == 1


def test_without_shared_flight_each_process_computes(url: str, prefix: str) -> None:
    # the same stampede without the option: once per process (the in-process single-flight only)
    assert _stampede(url, prefix, 3) == 3


def test_a_killed_leader_is_taken_over_within_its_lease(url: str, prefix: str) -> None:
    raw = redis.Redis.from_url(url)
    body = f"""
    @cache.memoize(name="slow")
    def slow(x):
        raw.rpush("{prefix}:started", sys.argv[1])
        time.sleep(float(sys.argv[2]))
        return x * 10

    print(slow(4))
    """
    script = _child(url, prefix, body, shared_flight=True, lease=1.0)
    leader = subprocess.Popen([sys.executable, "-c", script, "leader", "60"], stdout=subprocess.PIPE, text=True)
    try:
        assert raw.blpop(f"{prefix}:started", timeout=60) == (f"{prefix}:started".encode(), b"leader")
        follower = subprocess.Popen([sys.executable, "-c", script, "follower", "0"], stdout=subprocess.PIPE, text=True)
        time.sleep(1.5)  # the follower is waiting on the leader's lease, renewed every 1/3 s
        assert follower.poll() is None and raw.llen(f"{prefix}:started") == 0, "the follower must wait for a live leader"
        leader.kill()  # kill -9 mid-call: nothing is released, the lease just stops being renewed
        killed = time.monotonic()
        out, _ = follower.communicate(timeout=30)
        took = time.monotonic() - killed
        assert out.strip() == "40"
        assert raw.lrange(f"{prefix}:started", 0, -1) == [b"follower"]  # the follower computed it itself
        assert took < 1.0 + 3.0, f"took over {took:.1f}s after the kill with a 1 s lease"
    finally:
        for p in (leader, locals().get("follower")):
            if p is not None:
                if p.poll() is None:
                    p.kill()
                p.communicate()
        raw.close()


def _two(url: str, prefix: str, **options: object) -> tuple[oxicache.RedisCache, oxicache.RedisCache]:
    return (oxicache.RedisCache(url, prefix=prefix, shared_flight=True, **options),
            oxicache.RedisCache(url, prefix=prefix, shared_flight=True, **options))


def test_a_lost_lease_never_overwrites_a_newer_value(url: str, prefix: str) -> None:
    cache = oxicache.RedisCache(url, prefix=prefix)
    old, new = (oxicache.CacheEntry("f", {"x": 1}, output=v) for v in ("old", "new"))
    key = old.key
    stale = cache._lease_acquire(key, 0.2)
    assert stale is not None and cache._lease_acquire(key, 5) is None  # held
    time.sleep(0.35)  # the first leader's lease expires unrenewed (a pause, a partition)
    fresh = cache._lease_acquire(key, 5)
    assert fresh is not None
    assert cache._set_leased(new, None, fresh) is True
    assert cache._set_leased(old, None, stale) is False  # the first leader comes back: nothing written
    assert cache.get("f", x=1) == "new"
    assert cache._lease_acquire(key, 5) is not None  # the store released the fresh lease


def test_an_unreachable_server_warns_once_per_call() -> None:
    """A lookup that fails under "warn" computes at once, without trying for a lease (which would wait
    out the same failure, a second ``timeout`` on a silent server, and warn a second time)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: connections are refused
    cache = oxicache.RedisCache(f"redis://127.0.0.1:{port}/0", connect_timeout=1, shared_flight=True)

    @cache.memoize(name="unreachable")
    def unreachable(x: int) -> int:
        return x * 3

    for _ in range(2):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert unreachable(2) == 6
        assert [w.category for w in caught] == [oxicache.CacheWarning], [str(w.message) for w in caught]


def test_shared_flight_needs_a_backend_with_leases() -> None:
    for cache in (oxicache.InMemCache(), oxicache.NoCache(), oxicache.CallbackCache()):
        with pytest.raises(ValueError, match="needs a backend that grants leases"):
            cache.memoize(shared_flight=True)(lambda x: x)


def test_shared_flight_is_for_plain_and_coroutine_functions_so_far(url: str, prefix: str) -> None:
    cache = oxicache.RedisCache(url, prefix=prefix)

    def gen(x: int):
        yield x

    async def agen(x: int):
        yield x

    for func in (gen, agen):
        with pytest.raises(ValueError, match="for plain and coroutine functions so far"):
            cache.memoize(shared_flight=True)(func)
    shared = oxicache.RedisCache(url, prefix=prefix, shared_flight=True)
    shared.memoize(shared_flight=False)(gen)  # the cache's default turned off for one function: fine
    with pytest.raises(ValueError, match="for plain and coroutine functions so far"):
        shared.memoize(gen)


ASYNC_STAMPEDE = """
import asyncio

@cache.memoize(name="expensive")
async def expensive(x):
    raw.incr("{prefix}:runs")
    await asyncio.sleep(0.4)
    return {{"x": x}}

raw.incr("{prefix}:ready")
while not raw.exists("{prefix}:go"):
    time.sleep(0.005)

async def main():
    return await asyncio.gather(*(expensive(1) for _ in range(3)))

assert asyncio.run(main()) == [{{"x": 1}}] * 3
print("ok")
"""


@pytest.mark.parametrize("tiered", [False, True], ids=["redis", "tiered"])
def test_a_coroutine_functions_stampede_runs_once_across_processes(url: str, prefix: str, tiered: bool) -> None:
    """4 processes x 3 tasks; the coroutine function awaits on the loop while the lease is held, and the
    waiters' lease calls run in worker threads (a RedisCache, or a TieredCache over it)."""
    body = ASYNC_STAMPEDE.format(prefix=prefix)
    if tiered:
        body = "cache = oxicache.TieredCache(oxicache.InMemCache(ttl=30), cache)\n" + body
    assert _stampede(url, prefix, 4, body=body, shared_flight=True) == 1
    raw = redis.Redis.from_url(url)
    raw.delete(f"{prefix}:runs", f"{prefix}:ready", f"{prefix}:go", *raw.scan_iter(match=f"{prefix}:e:*"))
    raw.close()
    assert _stampede(url, prefix, 3, body=body) == 3  # without shared_flight: once per process


def test_bad_shared_flight_values(url: str, prefix: str) -> None:
    with pytest.raises(TypeError, match="shared_flight must be True or False"):
        oxicache.RedisCache(url, prefix=prefix, shared_flight=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="shared_flight must be True or False"):
        oxicache.RedisCache(url, prefix=prefix).memoize(shared_flight="yes")(lambda x: x)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lease=.* is not a positive, finite duration"):
        oxicache.RedisCache(url, prefix=prefix, lease=0)


def test_shared_flight_adds_one_round_trip_to_a_miss_and_none_to_a_hit(url: str, prefix: str,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A miss is lookup + store (2 round trips); under shared flight, lookup + take the lease and read the
    key in one script + store-and-release (3). A hit is one GET either way."""
    sent: list[bytes] = []
    original = redis.connection.AbstractConnection.send_packed_command

    def counting(self: object, command: object, check_health: bool = True) -> None:
        sent.append(b"")
        original(self, command, check_health)  # type: ignore[arg-type]

    def round_trips(cache: oxicache.RedisCache, name: str) -> tuple[int, int]:
        @cache.memoize(name=name)
        def f(x: int) -> int:
            return x * 2

        f(0)  # the connection made and the scripts loaded: not what is counted
        sent.clear()
        f(1)
        miss = len(sent)
        sent.clear()
        f(1)
        return miss, len(sent)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)
    plain = round_trips(oxicache.RedisCache(url, prefix=prefix), "plain")
    shared = round_trips(oxicache.RedisCache(url, prefix=prefix, shared_flight=True), "shared")
    assert plain == (2, 1)
    assert shared == (3, 1)
