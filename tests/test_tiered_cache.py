"""TieredCache: a memory tier in front of a shared store (docs/backends/tiered.md).

The matrix (tests/reliability, the contract suite, the oracle) runs on a TieredCache over RedisCache as
the "tiered" backend; this file checks what is the tiered cache's own: the native front, read-through
and write-through, and how fast other processes' changes reach a front.
"""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from typing import Any, Callable

import pytest

import oxicache
from oxicache import InMemCache, RedisCache, TieredCache
from servers import REDIS_URL_ENV, require_server

redis = pytest.importorskip("redis")

#: How long an announced change may take to reach another front here (pub/sub on loopback takes
#: milliseconds; the bound leaves room for a loaded machine and stays far below the fronts' 60 s ttl).
ANNOUNCED = 5.0


@pytest.fixture
def url() -> str:
    return require_server(REDIS_URL_ENV)


@pytest.fixture
def prefix(url: str):
    p = f"tc{uuid.uuid4().hex[:12]}"
    yield p
    client = redis.Redis.from_url(url)
    names = list(client.scan_iter(match=f"{p}:*"))
    if names:
        client.delete(*names)
    client.close()


@pytest.fixture
def tiered(url: str, prefix: str):
    """``tiered(front_ttl="60s", **back_options)``: TieredCaches over one Redis prefix, closed at the end."""
    made: list[TieredCache] = []

    def build(front_ttl: Any = "60s", **back_options: Any) -> TieredCache:
        cache = TieredCache(InMemCache(max_size=1000, ttl=front_ttl), RedisCache(url, prefix=prefix, **back_options))
        made.append(cache)
        return cache

    yield build
    for cache in made:
        cache.close()


def eventually(check: Callable[[], bool], within: float, what: str) -> float:
    """Seconds until ``check()`` held; fails after ``within`` seconds."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > within:
            pytest.fail(f"{what}: not within {within} s")
        time.sleep(0.01)
    return time.monotonic() - start


def counted(cache: oxicache.BaseCache, calls: list[Any], name: str = "tiered.f") -> Any:
    @cache.memoize(name=name)
    def f(x: int) -> str:
        calls.append(x)
        return f"v{x}-{len(calls)}"

    return f


# ---- construction -----------------------------------------------------------------------------------


def test_what_each_tier_must_be(url: str, prefix: str, tmp_path: Any) -> None:
    back = RedisCache(url, prefix=prefix)
    with pytest.raises(TypeError, match="front must be an InMemCache"):
        TieredCache(back, back)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="back must be a shared store"):
        TieredCache(InMemCache(ttl=1), InMemCache())
    with pytest.raises(ValueError, match="front needs a ttl"):
        TieredCache(InMemCache(max_size=10), back)
    cache = TieredCache(InMemCache(ttl="10s"), back)
    assert cache.ttl is None and cache.capabilities.shared and cache.capabilities.leases
    assert cache.blocking_io  # what the back does, read on the instance as on any cache
    cache.close()
    with TieredCache(InMemCache(ttl=5), oxicache.DiskCache(tmp_path), ttl="1h") as local:
        assert local.ttl == 3600 and not local.capabilities.notifies


# ---- the tiers ----------------------------------------------------------------------------------------


def test_a_plain_functions_wrapper_is_the_native_memoizer(tiered: Callable[..., TieredCache]) -> None:
    """The front hit is InMemCache's native hit: the wrapper is the Memoizer, not a Python function."""
    calls: list[int] = []
    f = counted(tiered(), calls)
    assert type(f).__name__ == "Memoizer"
    assert f(1) == f(1) == "v1-1" and calls == [1]


def test_read_through_and_write_through(tiered: Callable[..., TieredCache], url: str, prefix: str) -> None:
    cache = tiered()
    direct = RedisCache(url, prefix=prefix)  # the shared store as another process sees it
    calls: list[int] = []
    f = counted(cache, calls)
    assert f(1) == "v1-1"
    assert direct.get("tiered.f", x=1) == "v1-1", "a miss is written through to the back"
    direct.set("tiered.f", output="from-elsewhere", x=2)
    assert f(2) == "from-elsewhere" and calls == [1], "a front miss reads the back"
    direct.remove("tiered.f", x=2)  # not announced: the front keeps its copy until its ttl
    assert f(2) == "from-elsewhere" and calls == [1]
    info = f.cache_info()
    assert (info.hits, info.misses, info.currsize, info.sets) == (2, 1, 1, 1)
    stats = cache.stats()
    assert (stats["hits"], stats["misses"], stats["sets"]) == (2, 1, 1)
    assert stats["front"]["hits"] == 1  # the second f(2); the first was the back's
    direct.close()


def test_the_front_keeps_an_entry_at_most_its_ttl(url: str, prefix: str) -> None:
    """Without a message (a back that sends none, or a change made underneath), the front's ttl bounds
    how long this process serves an entry that changed elsewhere."""
    cache = TieredCache(InMemCache(ttl=0.3), RedisCache(url, prefix=prefix))
    direct = RedisCache(url, prefix=prefix)
    calls: list[int] = []
    f = counted(cache, calls)
    f(1)
    direct.set("tiered.f", output="changed", x=1)  # underneath: nobody is told
    assert f(1) == "v1-1"
    eventually(lambda: f(1) == "changed", within=5, what="the front's ttl")
    assert calls == [1]
    cache.close()
    direct.close()


def test_a_front_entry_never_outlives_the_entrys_ttl(tiered: Callable[..., TieredCache]) -> None:
    cache = tiered(front_ttl="60s")
    calls: list[int] = []

    @cache.memoize(name="short", ttl=0.3)
    def f(x: int) -> int:
        calls.append(x)
        return x

    f(1)
    time.sleep(0.5)
    f(1)
    assert calls == [1, 1]


def test_coroutine_functions_and_generators_use_both_tiers(tiered: Callable[..., TieredCache], url: str,
                                                           prefix: str) -> None:
    cache = tiered()
    direct = RedisCache(url, prefix=prefix)
    calls: list[int] = []

    @cache.memoize(name="co")
    async def co(x: int) -> int:
        calls.append(x)
        return x * 10

    @cache.memoize(name="gen")
    def gen(n: int):
        calls.append(-n)
        yield from range(n)

    assert asyncio.run(co(1)) == asyncio.run(co(1)) == 10
    assert list(gen(3)) == list(gen(3)) == [0, 1, 2]
    assert calls == [1, -3]
    assert direct.get("co", x=1) == 10 and direct.get("gen", n=3) == [0, 1, 2]
    direct.set("co", output=99, x=2)
    assert asyncio.run(co(2)) == 99 and calls == [1, -3]
    direct.close()


# ---- other processes' changes -----------------------------------------------------------------------


def test_remove_clear_and_cache_clear_reach_other_fronts(tiered: Callable[..., TieredCache]) -> None:
    """Two TieredCaches on one store stand for two processes: each has its own front and listener."""
    here, there = tiered(), tiered()
    calls_here: list[int] = []
    calls_there: list[int] = []
    f_here, f_there = counted(here, calls_here), counted(there, calls_there)
    assert [f_here(x) for x in (1, 2, 3)] == ["v1-1", "v2-2", "v3-3"]
    assert [f_there(x) for x in (1, 2, 3)] == ["v1-1", "v2-2", "v3-3"] and calls_there == []  # from the back
    here.remove("tiered.f", x=1)
    seconds = eventually(lambda: f_there(1) == "v1-1" and calls_there == [1], ANNOUNCED, "remove")
    print(f"remove reached the other front in {seconds * 1000:.0f} ms")
    f_here.cache_clear()
    eventually(lambda: f_there(2) == "v2-2" and calls_there == [1, 2], ANNOUNCED, "cache_clear")
    f_there(3)  # recomputed: cache_clear removed it from the back
    calls_there.clear()
    there.front.clear()
    f_there(4)
    here.clear()
    eventually(lambda: f_there(4) == "v4-2" and calls_there == [4, 4], ANNOUNCED, "clear")


def test_refresh_and_set_reach_other_fronts(tiered: Callable[..., TieredCache]) -> None:
    here, there = tiered(), tiered()
    calls_here: list[int] = []
    f_here, f_there = counted(here, calls_here), counted(there, [])
    assert f_here(1) == f_there(1) == "v1-1"
    with oxicache.refresh():
        assert f_here(1) == "v1-2"
    eventually(lambda: f_there(1) == "v1-2", ANNOUNCED, "a refreshed value")
    here.set("tiered.f", output="set by hand", x=1)
    eventually(lambda: f_there(1) == "set by hand", ANNOUNCED, "a set")
    assert f_here(1) == "set by hand"


def test_a_lost_subscription_empties_the_front(tiered: Callable[..., TieredCache], url: str, prefix: str) -> None:
    """Messages published while the listener reconnects are lost: the front is dropped once it is back."""
    cache = tiered()
    direct = RedisCache(url, prefix=prefix)
    calls: list[int] = []
    f = counted(cache, calls)
    f(1)
    f(1)
    direct.set("tiered.f", output="changed while away", x=1)  # underneath
    admin = redis.Redis.from_url(url)
    assert admin.client_kill_filter(_type="pubsub") >= 1
    eventually(lambda: f(1) == "changed while away", ANNOUNCED, "the front emptied after reconnecting")
    admin.close()
    direct.close()


CHILD = """
import sys, time
import oxicache
cache = oxicache.TieredCache(oxicache.InMemCache(ttl="60s"), oxicache.RedisCache({url!r}, prefix={prefix!r}))
calls = []

@cache.memoize(name="tiered.f")
def f(x):
    calls.append(x)
    return f"child-{{x}}-{{len(calls)}}"

print(f(1), flush=True)
for line in sys.stdin:  # each line: call again and report
    print(f(1), len(calls), flush=True)
"""


def test_another_process_sees_a_remove_at_once(tiered: Callable[..., TieredCache], url: str, prefix: str) -> None:
    cache = tiered()
    f = counted(cache, [])
    assert f(1) == "v1-1"
    with subprocess.Popen([sys.executable, "-c", textwrap.dedent(CHILD.format(url=url, prefix=prefix))],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as child:
        try:
            _ask(child, cache)
        finally:
            child.kill()


def _ask(child: subprocess.Popen[str], cache: TieredCache) -> None:
    """The child reads the parent's entry into its front; the parent removes it; the child recomputes
    within ANNOUNCED seconds (its front's ttl is 60 s)."""
    assert child.stdout is not None and child.stdin is not None
    stdin, stdout = child.stdin, child.stdout

    def again() -> list[str]:
        stdin.write("\n")
        stdin.flush()
        return stdout.readline().split()

    assert stdout.readline().strip() == "v1-1"  # the parent's entry, read from the back
    assert again() == ["v1-1", "0"]  # now from its front
    cache.remove("tiered.f", x=1)
    start = time.monotonic()
    while (reply := again()) != ["child-1-1", "1"]:
        assert reply == ["v1-1", "0"], reply
        assert time.monotonic() - start < ANNOUNCED, "the remove did not reach the other process"
        time.sleep(0.02)


# ---- lifetime -------------------------------------------------------------------------------------------


def _listeners() -> int:
    return sum(t.name == "oxicache-tiered-listener" and t.is_alive() for t in threading.enumerate())


def test_the_listener_stops_with_the_cache(url: str, prefix: str) -> None:
    before = _listeners()
    cache = TieredCache(InMemCache(ttl=5), RedisCache(url, prefix=prefix))
    assert _listeners() == before + 1
    cache.close()
    assert _listeners() == before
    dropped = TieredCache(InMemCache(ttl=5), RedisCache(url, prefix=prefix))
    del dropped
    gc.collect()
    eventually(lambda: _listeners() == before, 3, "the listener of a collected cache")


def test_shared_flight_through_the_front(url: str, prefix: str, tmp_path: Any) -> None:
    """The back's leases work behind the native front: three processes missing one key compute it once."""
    marks = tmp_path / "marks"
    marks.mkdir()
    script = textwrap.dedent(f"""
        import os, time
        import oxicache
        back = oxicache.RedisCache({url!r}, prefix={prefix!r}, shared_flight=True, lease=5)
        cache = oxicache.TieredCache(oxicache.InMemCache(ttl="60s"), back)

        @cache.memoize(name="slow")
        def slow(x):
            open(os.path.join({str(marks)!r}, str(os.getpid())), "w").close()
            time.sleep(0.5)
            return x + 1

        print(slow(41), slow(41))
    """)
    children = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) for _ in range(3)]
    outputs = [c.communicate(timeout=60)[0].split() for c in children]
    assert outputs == [["42", "42"]] * 3
    assert len(list(marks.iterdir())) == 1


def test_a_forked_child_listens_on_its_own(tiered: Callable[..., TieredCache]) -> None:
    """fork() copies the front but not the listener thread: the child starts its own, so the parent's
    remove still reaches the child's front."""
    import multiprocessing

    cache = tiered()
    f = counted(cache, [])
    assert f(1) == "v1-1"
    ctx = multiprocessing.get_context("fork")
    to_child, from_child = ctx.Queue(), ctx.Queue()

    def child() -> None:
        @cache.memoize(name="tiered.f")
        def g(x: int) -> str:
            return "computed in the child"

        from_child.put(g(1))  # the parent's value, from the copied front or the back
        to_child.get(timeout=30)  # the parent removed it
        deadline = time.monotonic() + ANNOUNCED
        while g(1) == "v1-1" and time.monotonic() < deadline:
            time.sleep(0.01)
        from_child.put(g(1))

    proc = ctx.Process(target=child)
    proc.start()
    try:
        assert from_child.get(timeout=30) == "v1-1"
        time.sleep(0.5)  # the child's listener subscribed (it does not wait inside fork())
        cache.remove("tiered.f", x=1)
        to_child.put("removed")
        assert from_child.get(timeout=30) == "computed in the child"
    finally:
        proc.join(30)
        if proc.is_alive():
            proc.kill()


def test_invalidate_by_tag_reaches_other_fronts_and_uses_the_backs_index(
        tiered: Callable[..., TieredCache], monkeypatch: pytest.MonkeyPatch) -> None:
    """invalidate(tags=) removes through RedisCache's per-tag sets (no scan of the store) and each front
    drops the tagged entries it holds, this process's at once and another's through the announcement; an
    untagged entry stays in every front."""
    here, there = tiered(), tiered()
    calls_here: list[int] = []
    calls_there: list[int] = []

    def tagged(cache: TieredCache, calls: list[int]) -> Any:
        @cache.memoize(name="tiered.report", tags=["reports"])
        def report(x: int) -> str:
            calls.append(x)
            return f"r{x}-{len(calls)}"

        return report

    r_here, r_there = tagged(here, calls_here), tagged(there, calls_there)
    plain_calls: list[int] = []
    plain_there = counted(there, plain_calls, name="tiered.plain")
    assert [r_here(x) for x in (1, 2)] == ["r1-1", "r2-2"]
    assert [r_there(x) for x in (1, 2)] == ["r1-1", "r2-2"] and calls_there == []  # both fronts hold them
    assert plain_there(7) == "v7-1"

    def no_scan() -> Any:
        raise AssertionError("invalidate read every entry of the store")

    with monkeypatch.context() as scan:
        scan.setattr(here, "_iter", no_scan)
        scan.setattr(here.back, "_iter", no_scan)
        assert here.invalidate(tags=["reports"]) == 2
    assert r_here(1) == "r1-3" and calls_here == [1, 2, 1]  # this front dropped it at once
    eventually(lambda: r_there(2) == "r2-1" and calls_there == [2], ANNOUNCED, "an invalidate by tag")
    assert plain_there(7) == "v7-1" and plain_calls == [7]  # untagged: still in the other front
