"""RedisCache against a real Redis server (scripts/db-servers.sh starts one; OXICACHE_REDIS_URL).

The contract suite (tests/contract) and the reliability matrix run on RedisCache through the backend
registry; these tests cover what is Redis's own: construction errors, prefixes that share one server,
the server-side TTL and the per-function index, damaged and foreign keys, unreachable and silent
servers under the failure policy, entries shared between processes, and coroutine functions on
redis.asyncio.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
import warnings

import pytest

import oxicache
from oxicache import BackendError, CacheWarning
from servers import REDIS_URL_ENV, require_server

redis = pytest.importorskip("redis")


@pytest.fixture
def url() -> str:
    return require_server(REDIS_URL_ENV)


@pytest.fixture
def raw(url: str):
    client = redis.Redis.from_url(url)
    yield client
    client.close()


def _prefix() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def cache(url: str):
    c = oxicache.RedisCache(url, prefix=_prefix())
    yield c
    c.clear()
    c.close()


# ---- construction -----------------------------------------------------------------------------------


def test_needs_exactly_one_of_url_and_client(url: str) -> None:
    with pytest.raises(ValueError, match="exactly one of url="):
        oxicache.RedisCache()
    client = redis.Redis.from_url(url)
    with pytest.raises(ValueError, match="exactly one of url="):
        oxicache.RedisCache(url, client=client)
    client.close()


def test_refuses_a_client_that_decodes_responses(url: str) -> None:
    client = redis.Redis.from_url(url, decode_responses=True)
    with pytest.raises(ValueError, match="decode_responses=False"):
        oxicache.RedisCache(client=client)
    client.close()


@pytest.mark.parametrize("prefix", ["", "a b", "x\n", 5])
def test_refuses_a_bad_prefix(url: str, prefix: object) -> None:
    with pytest.raises(ValueError, match="prefix must be a non-empty str"):
        oxicache.RedisCache(url, prefix=prefix)  # type: ignore[arg-type]


@pytest.mark.parametrize("option", ["timeout", "connect_timeout"])
@pytest.mark.parametrize("seconds", [0, -1, float("inf"), "soon", None])
def test_refuses_bad_timeouts(url: str, option: str, seconds: object) -> None:
    with pytest.raises(ValueError, match=f"{option}=.* is not a positive, finite duration"):
        oxicache.RedisCache(url, **{option: seconds})  # type: ignore[arg-type]


@pytest.mark.parametrize("option", ["timeout", "connect_timeout"])
def test_a_bool_timeout_is_a_type_error(url: str, option: str) -> None:
    with pytest.raises(TypeError, match=f"{option}=True: .* got bool"):
        oxicache.RedisCache(url, **{option: True})  # type: ignore[arg-type]


def test_timeouts_take_durations(url: str) -> None:
    import datetime

    cache = oxicache.RedisCache(url, prefix=_prefix(), timeout="2s", connect_timeout=datetime.timedelta(seconds=1))
    kwargs = cache.client.get_connection_kwargs()
    assert kwargs["socket_timeout"] == 2 and kwargs["socket_connect_timeout"] == 1
    cache.close()


def test_a_given_client_is_used_and_left_open(url: str) -> None:
    client = redis.Redis.from_url(url)
    cache = oxicache.RedisCache(client=client, prefix=_prefix())
    cache.set("f", output=1, x=1)
    cache.close()
    assert client.ping()  # still usable: the cache did not close what it did not open
    assert cache.get("f", x=1) == 1
    cache.clear()
    client.close()


def test_repr_hides_the_password() -> None:
    cache = oxicache.RedisCache("redis://user:s3cret@127.0.0.1:1/0", prefix="p")
    assert "s3cret" not in repr(cache) and "user:***@" in repr(cache)


# ---- layout ------------------------------------------------------------------------------------------


def test_prefixes_share_one_server_without_seeing_each_other(url: str) -> None:
    base = _prefix()
    # "a*" as a glob would match "ab...": prefixes are matched literally
    star, plain = oxicache.RedisCache(url, prefix=base + "a*"), oxicache.RedisCache(url, prefix=base + "ab")
    try:
        star.set("f", output="star", x=1)
        plain.set("f", output="plain", x=1)
        plain.set("f", output="plain2", x=2)
        assert star.get("f", x=1) == "star" and plain.get("f", x=1) == "plain"
        assert len(star) == 1 and len(plain) == 2
        star.clear()
        assert len(star) == 0 and len(plain) == 2 and plain.get("f", x=2) == "plain2"
    finally:
        star.clear()
        plain.clear()


def test_foreign_keys_under_the_prefix_are_left_alone(cache, raw) -> None:
    cache.set("f", output=1, x=1)
    raw.set(f"{cache.prefix}:e:not-hex", b"user data")
    raw.set(f"{cache.prefix}:other", b"user data")
    assert [e.output for e in cache] == [1] and len(cache) == 1
    assert cache.verify() == []
    raw.delete(f"{cache.prefix}:e:not-hex", f"{cache.prefix}:other")


def test_the_server_keeps_the_ttl(cache, raw) -> None:
    cache.set("f", output=1, ttl=1.5, x=1)
    cache.set("f", output=2, x=2)
    names = sorted(raw.scan_iter(match=f"{cache.prefix}:e:*"))
    ttls = sorted(raw.pttl(n) for n in names)
    assert ttls[0] == -1 and 0 < ttls[1] <= 1500, ttls  # -1: no expiry
    time.sleep(2.0)
    assert len(list(raw.scan_iter(match=f"{cache.prefix}:e:*"))) == 1  # freed by the server itself
    assert cache.get("f", x=1) is ... and cache.get("f", x=2) == 2


def test_the_function_index_counts_live_entries_only(cache, raw) -> None:
    @cache.memoize(name="g")
    def g(x: int) -> int:
        return x * 2

    for i in range(5):
        g(i)
    assert g.cache_info().currsize == 5
    del cache[g.cache_key(0)]  # by int key: the index is not told which function
    raw.delete(f"{cache.prefix}:e:{g.cache_key(1):032x}")  # as maxmemory eviction would
    assert g.cache_info().currsize == 3
    index = f"{cache.prefix}:f:" + oxicache.backends.rediscache.function_digest("g")
    assert raw.zcard(index) == 3  # the gone members were dropped
    g.cache_clear()
    assert g.cache_info().currsize == 0 and len(cache) == 0 and raw.zcard(index) == 0


def test_expired_index_members_are_trimmed_by_later_writes(cache, raw) -> None:
    clock = [1000.0]
    cache._clock = lambda: clock[0]
    for i in range(3):
        cache.set("h", output=i, ttl=5, x=i)
    index = f"{cache.prefix}:f:" + oxicache.backends.rediscache.function_digest("h")
    assert raw.zcard(index) == 3
    clock[0] += 5 + oxicache.backends.rediscache.CLOCK_SLACK + 1
    cache.set("h", output=9, x=9)
    assert raw.zcard(index) == 1


def test_expire_deletes_records_past_their_expiry(cache, raw) -> None:
    clock = [1000.0]
    cache._clock = lambda: clock[0]
    cache.set("f", output=1, ttl=5, x=1)
    cache.set("f", output=2, x=2)
    clock[0] += 6
    assert cache.get("f", x=1) is ...  # the record's own expiry, before the server's
    assert cache.expire() == 1
    assert len(list(raw.scan_iter(match=f"{cache.prefix}:e:*"))) == 1


# ---- records it did not write ---------------------------------------------------------------------------


def test_a_damaged_record_is_a_warned_miss_then_overwritten(cache, raw) -> None:
    runs = []

    @cache.memoize(name="d")
    def d(x: int) -> int:
        runs.append(x)
        return x + 1

    d(1)
    name = f"{cache.prefix}:e:{d.cache_key(1):032x}"
    raw.set(name, b"\xc1 not msgpack")
    with pytest.warns(CacheWarning, match="damaged"):
        assert d(1) == 2
    assert runs == [1, 1]
    assert d(1) == 2 and runs == [1, 1]  # the damaged record was replaced
    assert cache.stats()["backend_errors"] == 1


def test_a_record_under_another_key_never_answers(cache, raw) -> None:
    @cache.memoize(name="m")
    def m(x: int) -> str:
        return f"value of {x}"

    m(1)
    m(2)
    one, two = (f"{cache.prefix}:e:{m.cache_key(x):032x}" for x in (1, 2))
    raw.set(two, raw.get(one))  # 1's record copied under 2's key
    with pytest.warns(CacheWarning, match="do not match the key"):
        assert m(2) == "value of 2"
    assert cache.verify() == []  # replaced by the recomputed entry


# ---- the failure policy -----------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_server_falls_back_to_calling_under_warn() -> None:
    cache = oxicache.RedisCache(f"redis://127.0.0.1:{_closed_port()}/0", connect_timeout=1)
    runs = []

    @cache.memoize
    def f(x: int) -> int:
        runs.append(x)
        return x * 3

    with pytest.warns(CacheWarning):
        assert f(2) == 6
    with pytest.warns(CacheWarning):
        assert f(2) == 6  # no hit can come from a server that is not there: computed again
    assert runs == [2, 2]
    with pytest.raises(redis.ConnectionError):
        cache.get(f, x=2)  # the direct API raises: there, reaching the store is the point


def test_an_unreachable_server_raises_backend_error_under_raise() -> None:
    cache = oxicache.RedisCache(f"redis://127.0.0.1:{_closed_port()}/0", connect_timeout=1, on_backend_error="raise")

    @cache.memoize
    def f(x: int) -> int:
        return x

    with pytest.raises(BackendError) as info:
        f(1)
    assert isinstance(info.value.__cause__, redis.RedisError)


def test_a_silent_server_fails_within_the_timeout() -> None:
    """A server that accepts connections and never answers (a hung host): each call fails after about
    ``timeout`` seconds, never hangs, and the function's own value is returned."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        port = listener.getsockname()[1]
        cache = oxicache.RedisCache(f"redis://127.0.0.1:{port}/0", timeout=0.5, connect_timeout=0.5)

        @cache.memoize
        def f(x: int) -> int:
            return x + 100

        start = time.monotonic()
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            assert f(1) == 101
        elapsed = time.monotonic() - start
        assert elapsed < 5, f"took {elapsed:.1f}s with a 0.5s timeout"
    finally:
        stop.set()
        thread.join(5)
        for conn in accepted:
            conn.close()
        listener.close()


# ---- several processes ------------------------------------------------------------------------------


def test_entries_are_shared_between_processes(url: str) -> None:
    prefix = _prefix()
    script = textwrap.dedent(
        f"""
        import oxicache
        cache = oxicache.RedisCache({url!r}, prefix={prefix!r})
        @cache.memoize(name="shared")
        def f(x):
            print("ran", x)
            return {{"x": x, "t": (x, x)}}
        print(f(7), f(7))
        """
    )
    first = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    second = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert first.stdout.count("ran 7") == 1
    assert "ran" not in second.stdout and "{'x': 7, 't': (7, 7)}" in second.stdout
    oxicache.RedisCache(url, prefix=prefix).clear()


# ---- connections ------------------------------------------------------------------------------------


def test_connections_cannot_run_out(cache) -> None:
    """redis-py's pool refuses a 101st connection, and loses a slot for good to a thread interrupted
    between taking a connection and giving it back (the interrupt storm found it). RedisCache's threads
    keep their own connections: 150 taken and never given back, then every thread still works."""
    cache.set("f", output="v", x=1)
    pool = cache.client.connection_pool
    results: list[object] = []

    def leak_then_use() -> None:
        pool.get_connection()  # taken and never released, as by an interrupted command
        results.append(cache.get("f", x=1))

    threads = [threading.Thread(target=leak_then_use) for _ in range(150)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == ["v"] * 150


def test_an_unread_reply_never_answers_the_next_command(cache, raw) -> None:
    """A command interrupted after it was sent leaves its reply unread on the connection: the next
    command must not take that reply for its own."""
    cache.set("f", output="mine", x=1)
    cache.set("f", output="other", x=2)
    connection = cache.client.connection_pool.get_connection()
    other = f"{cache.prefix}:e:{oxicache.CacheEntry('f', {'x': 2}).key:032x}"
    connection.send_command("GET", other)  # sent, its reply never read
    assert cache.get("f", x=1) == "mine"
    assert cache.get("f", x=2) == "other"


# ---- coroutine functions: redis.asyncio on the event loop -------------------------------------------


class _NoWorkerThreads(concurrent.futures.ThreadPoolExecutor):
    """An event loop's default executor that refuses work: a cache call offloaded to a thread fails."""

    def submit(self, *args: object, **kwargs: object) -> concurrent.futures.Future:  # type: ignore[override]
        raise AssertionError("a cache call ran in a worker thread")


def _on_the_loop_only(main):  # noqa: ANN001, ANN202 - a coroutine function
    async def run():  # noqa: ANN202
        asyncio.get_running_loop().set_default_executor(_NoWorkerThreads())
        return await main()

    return asyncio.run(run())


@pytest.mark.parametrize("tiered", [False, True], ids=["redis", "tiered"])
def test_coroutine_functions_await_the_server_without_threads(url: str, tiered: bool) -> None:
    """redis.asyncio, one client per event loop, closed when asyncio.run ends (no ResourceWarning);
    concurrent misses of one key in the loop compute it once."""
    cache: oxicache.BaseCache = oxicache.RedisCache(url, prefix=_prefix())
    if tiered:
        cache = oxicache.TieredCache(oxicache.InMemCache(ttl=30), cache)
    assert cache.capabilities.async_io
    runs: list[int] = []

    @cache.memoize(name="co")
    async def co(x: int) -> int:
        runs.append(x)
        await asyncio.sleep(0.05)
        return x * 2

    async def main() -> list[int]:
        return [*await asyncio.gather(*(co(1) for _ in range(20))), await co(1), await co(2)]

    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        assert _on_the_loop_only(main) == [2] * 21 + [4]
        assert _on_the_loop_only(main) == [2] * 21 + [4]  # a second loop: its own client, all hits
        gc.collect()  # the first loop's client was closed with it, not left to the collector
    assert runs == [1, 2]
    assert cache.get("co", x=1) == 2
    cache.clear()
    cache.close()


def test_a_coroutine_function_on_an_unreachable_server_computes_with_a_warning() -> None:
    cache = oxicache.RedisCache(f"redis://127.0.0.1:{_closed_port()}/0", connect_timeout=1)

    @cache.memoize
    async def co(x: int) -> int:
        return x + 1

    with pytest.warns(CacheWarning) as caught:
        assert _on_the_loop_only(lambda: co(1)) == 2
    assert len(caught) == 1  # the lookup's failure; the store's is counted, not warned again
    raising = oxicache.RedisCache(f"redis://127.0.0.1:{_closed_port()}/0", connect_timeout=1, on_backend_error="raise")

    @raising.memoize
    async def co2(x: int) -> int:
        return x

    with pytest.raises(BackendError):
        _on_the_loop_only(lambda: co2(1))


def test_a_given_client_offloads_coroutine_functions_to_a_thread(url: str) -> None:
    """A sync client given as client= has no asyncio twin: coroutine functions still work, their cache
    I/O in a worker thread."""
    client = redis.Redis.from_url(url)
    cache = oxicache.RedisCache(client=client, prefix=_prefix())
    assert not cache.capabilities.async_io and oxicache.RedisCache.capabilities.async_io

    @cache.memoize
    async def co(x: int) -> int:
        return x * 5

    assert asyncio.run(co(1)) == asyncio.run(co(1)) == 5
    cache.clear()
    client.close()
