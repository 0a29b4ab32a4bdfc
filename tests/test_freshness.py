"""Freshness beyond a fixed TTL (issue 14): key=, jitter=, computed ttl=, max_age(), stale_if_error=.

Every test runs on every backend of tests/backends.py that stores, under an injected clock: the
backend's own expiry clock (as in tests/reliability/test_r09_ttl_clock.py) and the memoize layer's
(``oxicache.memo.freshness.clock``) move together; nothing sleeps.
"""

from __future__ import annotations

import asyncio
import threading
import time
import warnings
from typing import Any, Callable

import pytest
from backends import STORING, make
from fake_clock import Advance, on_all_clocks

import oxicache
from oxicache import CacheWarning, InMemCache, KeyEncodingError
from oxicache.memo import freshness


@pytest.fixture(params=STORING)
def timed(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Advance]:
    """A fresh cache of each storing backend, and ``advance(seconds)`` for every clock it reads."""
    cache = make(request.param)
    return cache, on_all_clocks(request.param, cache, monkeypatch)


# ---- key= --------------------------------------------------------------------------------------------


def test_key_function_names_the_call(timed: tuple[Any, Advance]) -> None:
    cache, _ = timed
    calls: list[tuple[int, str]] = []

    @cache.memoize(key=lambda user, token: user)
    def profile(user: int, token: str) -> str:
        calls.append((user, token))
        return f"user {user}"

    assert profile(1, "a") == "user 1"
    assert profile(1, "b") == "user 1"  # the token is not part of the identity
    assert profile(2, "a") == "user 2"
    assert calls == [(1, "a"), (2, "a")]
    assert profile.cache_inputs(1, "zzz") == {"key": 1}
    assert profile.cache_key(1, "x") == profile.cache_key(1, "y") != profile.cache_key(2, "x")
    assert profile.cache_info().hits == 1


def test_key_function_on_coroutines_and_generators(timed: tuple[Any, Advance]) -> None:
    cache, _ = timed
    runs: list[str] = []

    @cache.memoize(key=lambda q, trace_id: q.lower())
    async def search(q: str, trace_id: int) -> list[str]:
        runs.append(q)
        return [q.lower()]

    @cache.memoize(key=lambda n, log: n)
    def count(n: int, log: object) -> Any:
        runs.append(f"gen {n}")
        yield from range(n)

    async def main() -> list[Any]:
        return [await search("Cat", 1), await search("CAT", 2)]

    assert asyncio.run(main()) == [["cat"], ["cat"]]
    assert list(count(3, object())) == [0, 1, 2]
    assert list(count(3, object())) == [0, 1, 2]
    assert runs == ["Cat", "gen 3"]


def test_key_function_with_threads_runs_once() -> None:
    import threading

    cache = InMemCache()
    started = threading.Barrier(8)
    runs: list[int] = []

    @cache.memoize(key=lambda x, noise: x)
    def slow(x: int, noise: int) -> int:
        runs.append(x)
        time.sleep(0.05)  # overlap only, not timing
        return x

    def call(i: int) -> None:
        started.wait()
        assert slow(7, i) == 7

    threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert runs == [7]


def test_key_function_errors() -> None:
    cache = InMemCache()
    with pytest.raises(ValueError, match="key= replaces the arguments in the key, so exclude=\\['token'\\]"):
        cache.memoize(key=lambda user, token: user, exclude=["token"])(lambda user, token: user)
    with pytest.raises(TypeError, match="key must be a function"):
        cache.memoize(key="user")(lambda user: user)

    @cache.memoize(key=lambda x: object())
    def f(x: int) -> int:
        return x

    with pytest.raises(KeyEncodingError):
        f(1)


# ---- jitter= and computed ttl= ----------------------------------------------------------------------------


def test_jitter_spreads_expiries_within_the_ttl(timed: tuple[Any, Advance]) -> None:
    cache, advance = timed
    runs: list[int] = []

    @cache.memoize(ttl=100, jitter=0.5)
    def f(x: int) -> int:
        runs.append(x)
        return x

    keys = range(30)
    for k in keys:
        f(k)
    advance(49)  # within every jittered TTL (at least 50 s)
    for k in keys:
        f(k)
    assert len(runs) == 30
    advance(26)  # 75 s: each entry's TTL is uniform in [50, 100]
    for k in keys:
        f(k)
    expired = len(runs) - 30
    assert 0 < expired < 30, expired  # both sides: 2 * 0.5**30 chance of a false failure
    advance(26)  # 101 s: past the TTL itself, jitter never lengthens it
    runs.clear()
    for k in keys:
        f(k)
    # the ones recomputed at 75 s are younger; every one stored at 0 s is gone
    assert len(runs) == 30 - expired


def test_jitter_as_a_duration(timed: tuple[Any, Advance]) -> None:
    cache, advance = timed
    runs: list[int] = []

    @cache.memoize(ttl="10m", jitter="1m")
    def f(x: int) -> int:
        runs.append(x)
        return x

    for k in range(20):
        f(k)
    advance(539)  # 9 min: inside the shortest jittered TTL
    for k in range(20):
        f(k)
    assert len(runs) == 20
    advance(62)
    for k in range(20):
        f(k)
    assert len(runs) == 40


def test_jitter_errors() -> None:
    cache = InMemCache()
    with pytest.raises(ValueError, match="this function has none"):
        cache.memoize(jitter=0.1)(lambda x: x)
    with pytest.raises(ValueError, match="jitter must be a fraction of the TTL between 0 and 1"):
        cache.memoize(ttl=10, jitter=5)(lambda x: x)
    with pytest.raises(ValueError, match="jitter='soon' is not a duration"):
        cache.memoize(ttl=10, jitter="soon")(lambda x: x)
    InMemCache(ttl=10).memoize(jitter=0.1)(lambda x: x)  # the cache's ttl counts


def test_ttl_computed_from_the_result(timed: tuple[Any, Advance]) -> None:
    cache, advance = timed
    issued: list[str] = []

    @cache.memoize(ttl=lambda token: token["expires_in"])
    def token(scope: str, lifetime: float) -> dict[str, Any]:
        issued.append(scope)
        return {"scope": scope, "expires_in": lifetime}

    token("read", 30)
    token("write", 300)
    token("gone", 0)  # already expired: returned, never stored
    advance(29)
    token("read", 30)
    token("write", 300)
    token("gone", 0)
    assert issued == ["read", "write", "gone", "gone"]
    advance(2)
    token("read", 30)
    token("write", 300)
    assert issued == ["read", "write", "gone", "gone", "read"]


def test_ttl_callable_returning_a_bad_value() -> None:
    cache = InMemCache()

    @cache.memoize(ttl=lambda r: "soon")
    def f(x: int) -> int:
        return x

    with pytest.raises(ValueError, match="the ttl .* returned='soon' is not a duration"):
        f(1)


# ---- max_age() ---------------------------------------------------------------------------------------------


def test_max_age_takes_only_younger_values(timed: tuple[Any, Advance]) -> None:
    cache, advance = timed
    runs: list[int] = []

    @cache.memoize(track_age=True)
    def f(x: int) -> int:
        runs.append(x)
        return len(runs)

    assert f(1) == 1
    advance(30)
    with oxicache.max_age("1m"):
        assert f(1) == 1  # 30 s old: young enough
    with oxicache.max_age("10s"):
        assert f(1) == 2  # too old: recomputed and stored
        assert f(1) == 2  # now young
    with oxicache.max_age(60), oxicache.max_age(5):
        advance(6)
        assert f(1) == 3  # nested: the smaller age holds
    assert f(1) == 3  # outside: the stored value

    @oxicache.max_age("1s")
    def recent() -> int:
        return f(1)  # type: ignore[no-any-return]

    advance(2)
    assert recent() == 4


def test_max_age_composes_with_bypass_and_refresh(timed: tuple[Any, Advance]) -> None:
    cache, advance = timed
    runs: list[int] = []

    @cache.memoize(track_age=True)
    def f(x: int) -> int:
        runs.append(x)
        return len(runs)

    assert f(1) == 1
    with oxicache.bypass(), oxicache.max_age("1h"):
        assert f(1) == 2  # bypass() is stricter: neither read nor stored
    assert f(1) == 1
    with oxicache.max_age("1h"), oxicache.refresh():
        assert f(1) == 3  # refresh() inside: recomputed, stored
    with oxicache.max_age("1h"):
        assert f(1) == 3


def test_max_age_on_a_function_without_ages_recomputes(timed: tuple[Any, Advance]) -> None:
    cache, _ = timed
    runs: list[int] = []

    @cache.memoize
    def f(x: int) -> int:
        runs.append(x)
        return len(runs)

    assert f(1) == 1
    with oxicache.max_age("1h"):
        assert f(1) == 2  # no recorded age: not known to be young enough
    assert f(1) == 2  # the recomputed value was stored


def test_max_age_in_asyncio_tasks(timed: tuple[Any, Advance]) -> None:
    cache, advance = timed
    runs: list[int] = []

    @cache.memoize(track_age=True)
    async def f(x: int) -> int:
        runs.append(x)
        return len(runs)

    async def main() -> None:
        assert await f(1) == 1
        advance(60)

        @oxicache.max_age("30s")
        async def strict() -> int:
            return await f(1)  # type: ignore[no-any-return]

        assert await strict() == 2
        assert await f(1) == 2

    asyncio.run(main())


def test_max_age_errors() -> None:
    with pytest.raises(ValueError, match="max_age='soon' is not a duration"):
        oxicache.max_age("soon")
    with pytest.raises(ValueError, match="max_age needs a duration"):
        oxicache.max_age(None)


# ---- stale_if_error= ---------------------------------------------------------------------------------------


def test_stale_if_error_returns_the_old_value_within_the_window(timed: tuple[Any, Advance]) -> None:
    cache, advance = timed
    up = [True]
    runs: list[int] = []

    @cache.memoize(ttl=60, stale_if_error=300)
    def price(item: str) -> int:
        runs.append(1)
        if not up[0]:
            raise ConnectionError("upstream down")
        return len(runs)

    assert price("a") == 1
    advance(120)  # past the TTL, within TTL + window
    up[0] = False
    with pytest.warns(CacheWarning, match="raised ConnectionError: upstream down; returned the value stored 120s ago"):
        assert price("a") == 1
    assert price.cache_info().errors == 1
    up[0] = True
    assert price("a") == 3  # a success replaces the stale value
    up[0] = False
    advance(361)  # past TTL + window of that value
    with pytest.raises(ConnectionError):
        price("a")


def test_stale_if_error_is_off_by_default(timed: tuple[Any, Advance]) -> None:
    cache, advance = timed
    up = [True]

    @cache.memoize(ttl=60)
    def price(item: str) -> int:
        if not up[0]:
            raise ConnectionError("upstream down")
        return 1

    price("a")
    advance(61)
    up[0] = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ConnectionError):
            price("a")


def test_stale_if_error_on_coroutines(timed: tuple[Any, Advance]) -> None:
    cache, advance = timed
    up = [True]

    @cache.memoize(ttl="1m", stale_if_error="5m")
    async def price(item: str) -> int:
        if not up[0]:
            raise ConnectionError("down")
        return 7

    async def main() -> None:
        assert await price("a") == 7
        advance(90)
        up[0] = False
        with pytest.warns(CacheWarning):
            assert await price("a") == 7
        advance(300)
        with pytest.raises(ConnectionError):
            await price("a")

    asyncio.run(main())


def test_stale_value_is_not_a_hit_for_other_calls(timed: tuple[Any, Advance]) -> None:
    """The entry kept for the window is past its TTL: a call that succeeds recomputes."""
    cache, advance = timed
    runs: list[int] = []

    @cache.memoize(ttl=60, stale_if_error=600)
    def f(x: int) -> int:
        runs.append(x)
        return len(runs)

    assert f(1) == 1
    advance(61)
    assert f(1) == 2


def test_stale_if_error_refuses_generators() -> None:
    with pytest.raises(ValueError, match="stale_if_error is for plain and coroutine functions"):
        InMemCache().memoize(ttl=1, stale_if_error=1)(lambda: (yield 1))


# ---- stale-while-revalidate (stale=) ----------------------------------------------------------------------


def _until(condition: Callable[[], bool], what: str | Callable[[], str]) -> None:
    """Waits for a background refresh to land (a bounded wait for another thread, not a timing)."""
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, what if isinstance(what, str) else what()
        time.sleep(0.01)


async def _auntil(condition: Callable[[], Any], what: str) -> None:
    deadline = time.monotonic() + 30
    while not await condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.01)


def test_stale_while_revalidate_runs_exactly_one_background_refresh(timed: tuple[Any, Advance]) -> None:
    import threading

    cache, advance = timed
    runs: list[int] = []
    gate = threading.Event()

    @cache.memoize(ttl=60, stale=600)
    def f(x: int) -> int:
        runs.append(x)
        if len(runs) > 1:
            assert gate.wait(30)
        return len(runs)

    assert f(1) == 1
    advance(61)  # past the TTL, within the stale window
    answers: list[int] = []
    threads = [threading.Thread(target=lambda: answers.append(f(1))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == [1] * 8  # at once: the refresh is held at the gate meanwhile
    assert f(1) == 1
    gate.set()
    _until(lambda: f(1) == 2, lambda: f"the refreshed value (runs: {runs}, f(1): {f(1)}, {f.cache_info()})")
    assert runs == [1, 1]  # exactly one refresh for 10 stale calls
    assert f.cache_info().misses == 1  # every later call was answered from the cache


def test_a_call_that_read_the_stale_value_before_a_refresh_ended_starts_no_second_one(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The interleaving behind "exactly one background refresh" (found under load: runs [1, 1, 1]): a call
    reads the stale entry, the refresh running meanwhile stores its value and ends, then the call claims
    the key. It must see the newer value and start nothing."""
    cache = oxicache.JsonCache(tmp_path / "c")
    advance = on_all_clocks("json", cache, monkeypatch)
    runs: list[int] = []

    @cache.memoize(ttl=60, stale=600)
    def f(x: int) -> int:
        runs.append(x)
        return len(runs)

    assert f(1) == 1
    advance(61)
    memo = f.cache_info.__self__  # the Python engine (JsonCache: no native front)
    probe = oxicache.CacheEntry(memo.cache_name, f.cache_inputs(1))
    stale = next(e for e in cache if e.func == memo.cache_name)  # what the late call read
    assert f(1) == 1  # stale: served, and one refresh starts
    _until(lambda: f(1) == 2, "the refreshed value")
    assert runs == [1, 1]
    for done in [t for t in threading.enumerate() if t.name == "oxicache-revalidate"]:
        done.join(10)  # the refresh stored its value: let its thread end, so a thread seen below is new
    # The late claim, with the stale entry read before the refresh stored its value: served, nothing started
    assert memo.revalidator.serve(stale, probe, lambda: probe, (1,), {}) is True
    assert probe.key not in memo.revalidator.running
    assert not [t for t in threading.enumerate() if t.name == "oxicache-revalidate"]
    assert runs == [1, 1] and f(1) == 2


def test_stale_while_revalidate_window_bounds_the_age(timed: tuple[Any, Advance]) -> None:
    cache, advance = timed
    runs: list[int] = []

    @cache.memoize(ttl=60, stale=600)
    def f(x: int) -> int:
        runs.append(x)
        return len(runs)

    assert f(1) == 1
    advance(661)  # past ttl + stale: a plain miss, computed in the call
    assert f(1) == 2
    assert runs == [1, 1]


def test_a_failed_refresh_never_replaces_a_value(timed: tuple[Any, Advance]) -> None:
    cache, advance = timed
    fail = [False]
    runs: list[int] = []

    @cache.memoize(ttl=60, stale=600)
    def f(x: int) -> int:
        runs.append(x)
        if fail[0]:
            raise ConnectionError("down")
        return len(runs)

    assert f(1) == 1
    advance(61)
    fail[0] = True
    assert f(1) == 1
    _until(lambda: f.cache_info().errors == 1, "the failed refresh counted")
    fail[0] = False
    assert f(1) == 1  # still the old value; this call starts a new refresh
    _until(lambda: f(1) == 3, "the second refresh's value")


def test_stale_while_revalidate_on_coroutines(timed: tuple[Any, Advance]) -> None:
    cache, advance = timed
    runs: list[int] = []
    gates: list[asyncio.Event] = []

    @cache.memoize(ttl=60, stale=600)
    async def f(x: int) -> int:
        runs.append(x)
        if len(runs) > 1:
            await gates[0].wait()  # the refresh, held until the stale calls are answered
        return len(runs)

    async def main() -> None:
        gates.append(asyncio.Event())
        assert await f(1) == 1
        advance(61)
        assert await asyncio.gather(*(f(1) for _ in range(5))) == [1] * 5
        gates[0].set()

        async def refreshed() -> bool:
            return await f(1) == 2

        await _auntil(refreshed, "the refreshed value")
        assert runs == [1, 1]

    asyncio.run(main())


def test_stale_while_revalidate_on_generators(timed: tuple[Any, Advance]) -> None:
    cache, advance = timed
    runs: list[int] = []

    @cache.memoize(ttl=60, stale=600)
    def f(n: int) -> Any:
        runs.append(n)
        yield from range(len(runs) * n)

    assert list(f(2)) == [0, 1]
    advance(61)
    assert list(f(2)) == [0, 1]
    _until(lambda: list(f(2)) == [0, 1, 2, 3], "the refreshed items")
    assert runs == [2, 2]


def test_stale_needs_a_ttl() -> None:
    with pytest.raises(ValueError, match="stale=60 serves a value for a while after its TTL"):
        InMemCache().memoize(stale=60)(lambda x: x)


LEASING = [n for n in STORING if n not in ("inmem", "tiered")]


@pytest.mark.parametrize("coroutine", [False, True], ids=["plain", "coroutine"])
def test_a_refresh_under_shared_flight_waits_for_another_process_lease(
        coroutine: bool, timed: tuple[Any, Advance], request: pytest.FixtureRequest) -> None:
    """While another process holds the key's lease (taken here by hand), the background refresh does not
    compute: it takes the value that process stores."""
    from oxicache import CacheEntry

    cache, advance = timed
    if request.node.callspec.params["timed"] not in LEASING:
        pytest.skip("no leases across processes")
    runs: list[int] = []

    def plain(x: int) -> int:
        runs.append(x)
        return len(runs)

    async def coro(x: int) -> int:
        return plain(x)

    f = cache.memoize(ttl=60, stale=600, shared_flight=True)(coro if coroutine else plain)
    call = (lambda: asyncio.run(f(1))) if coroutine else (lambda: f(1))
    assert call() == 1
    advance(61)
    key = f.cache_key(1)
    token = cache._lease_acquire(key, 30)  # "another process" leads the key
    assert token is not None
    if coroutine:
        async def stale_then_store() -> None:
            assert await f(1) == 1  # served stale; the refresh task waits on the lease
            now = freshness.clock()
            entry = CacheEntry(f.cache_name, f.cache_inputs(1), output=42,
                               metadata={"stored_at": now, "fresh_until": now + 60})
            assert await asyncio.to_thread(cache._set_leased, entry, 600, token)  # stores and releases

            async def refreshed() -> bool:
                return await f(1) == 42

            await _auntil(refreshed, "the other process's value")

        asyncio.run(stale_then_store())
    else:
        assert f(1) == 1
        now = freshness.clock()
        entry = CacheEntry(f.cache_name, f.cache_inputs(1), output=42, metadata={"stored_at": now, "fresh_until": now + 60})
        assert cache._set_leased(entry, 600, token)
        _until(lambda: f(1) == 42, "the other process's value")
    assert runs == [1]  # the refresh never ran the function


def test_max_age_turns_stale_while_revalidate_off(timed: tuple[Any, Advance]) -> None:
    cache, advance = timed
    runs: list[int] = []

    @cache.memoize(ttl=60, stale=600)
    def f(x: int) -> int:
        runs.append(x)
        return len(runs)

    assert f(1) == 1
    advance(61)
    with oxicache.max_age("1h"):
        assert f(1) == 2  # past its TTL: computed in the call, not served stale
    assert runs == [1, 1]
    assert f(1) == 2
