"""Native fronts on InMemCache: a plain function with freshness options or computed tags (which the
Python engine keeps) answers its fresh hits on the native path (issue 14: "with stale= on InMemCache, a
fresh hit stays on the native path"), and a generator function answers its hits with a native
``Replay`` (issue 15: the call before the first item); every other call (a miss, a value in its stale
window, bypass/refresh/max_age, a partial run) is the Python wrapper's.

"Native" is observed from outside: a profiler hook sees no Python function called during a fresh hit,
and sees the engine's wrapper once the value is stale. The clocks are injected (tests/fake_clock.py).
"""

from __future__ import annotations

import sys
import threading
from typing import Any, Callable

import pytest
from fake_clock import on_all_clocks

import oxicache
from oxicache import InMemCache


def python_calls(call: Callable[[], Any]) -> tuple[Any, list[str]]:
    """``call()``'s result and the Python functions it ran (by name; ``call`` itself left out)."""
    seen: list[str] = []

    def hook(frame: Any, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code is not getattr(call, "__code__", None):
            seen.append(frame.f_code.co_name)

    sys.setprofile(hook)
    try:
        result = call()
    finally:
        sys.setprofile(None)
    return result, seen


@pytest.fixture
def clocked(monkeypatch: pytest.MonkeyPatch) -> tuple[InMemCache, Callable[[float], None]]:
    cache = InMemCache()
    return cache, on_all_clocks("inmem", cache, monkeypatch)


OPTIONS: dict[str, dict[str, Any]] = {
    "stale": {"ttl": 60, "stale": 30},
    "stale_if_error": {"ttl": 60, "stale_if_error": 300},
    "jitter": {"ttl": 60, "jitter": 0.1},
    "computed ttl": {"ttl": lambda result: 60},
    "track_age": {"ttl": 60, "track_age": True},
    "static tags": {"ttl": 60, "tags": ["t"]},
    "computed tags": {"ttl": 60, "tags": lambda x: [f"x{x}"]},
}


@pytest.mark.parametrize("name", list(OPTIONS))
def test_a_fresh_hit_runs_no_python_code(clocked: tuple[InMemCache, Callable[[float], None]], name: str) -> None:
    cache, advance = clocked
    runs: list[int] = []

    @cache.memoize(**OPTIONS[name])
    def square(x: int) -> int:
        runs.append(x)
        return x * x

    assert square(3) == 9
    result, ran = python_calls(lambda: square(3))
    assert result == 9 and ran == [], f"a fresh hit ran Python code: {ran}"
    result, ran = python_calls(lambda: square(x=3))  # by keyword: the general binding, still native
    assert result == 9 and ran == []
    advance(61)  # past the TTL (the stale window, or the fallback window, or nothing): the engine's call
    result, ran = python_calls(lambda: square(3))
    # (static tags alone need no engine: that function is the native memoizer itself, its miss native too)
    assert result == 9 and ("wrapper" in ran if name != "static tags" else ran == ["square"])
    info = square.cache_info()
    assert info.hits + info.misses == 4 and info.hits >= 2 and runs[0] == 3


def test_stale_while_revalidate_with_the_native_front(clocked: tuple[InMemCache, Callable[[float], None]]) -> None:
    """The whole cycle: fresh hits (native), one stale hit that refreshes in the background (the engine),
    fresh hits on the refreshed value (native again), a miss past ttl + stale; the counts add up."""
    cache, advance = clocked
    value = [1]
    refreshed = threading.Event()

    @cache.memoize(ttl=60, stale=30)
    def read() -> int:
        refreshed.set()
        return value[0]

    assert read() == 1  # miss
    refreshed.clear()
    assert [read(), read()] == [1, 1]  # fresh: native
    value[0] = 2
    advance(70)  # in the stale window
    assert read() == 1  # the stored value at once; one refresh in the background
    assert refreshed.wait(10)
    for _ in range(200):  # the refresh stores (in its thread) right after the function returns
        if python_calls(read)[1] == []:
            break
        threading.Event().wait(0.01)
    result, ran = python_calls(read)
    assert result == 2 and ran == []  # the refreshed value, fresh: native again
    advance(200)  # past ttl + stale: a plain miss
    value[0] = 3
    assert read() == 3
    info = read.cache_info()
    assert info.misses == 2 and info.hits + info.misses >= 7 and info.sets >= 3


def test_controls_and_clearing_reach_the_engine(clocked: tuple[InMemCache, Callable[[float], None]]) -> None:
    cache, _ = clocked
    runs: list[int] = []

    @cache.memoize(ttl=60, stale=30, tags=["group"])
    def f(x: int) -> int:
        runs.append(x)
        return x + 1

    assert f(1) == 2 and f(1) == 2 and runs == [1]
    with oxicache.refresh():
        assert f(1) == 2 and runs == [1, 1]
    with oxicache.bypass():
        assert f(1) == 2 and runs == [1, 1, 1]
    with oxicache.max_age("1h"):
        assert f(1) == 2 and runs == [1, 1, 1]  # stored just now: young enough
    assert cache.invalidate(tags=["group"]) == 1
    assert f(1) == 2 and runs == [1, 1, 1, 1]  # invalidated: not answered by the native front
    f.cache_clear()
    assert f.cache_info() == (0, 0, None, 0)
    assert f(1) == 2 and runs == [1, 1, 1, 1, 1]
    assert f.cache_info().misses == 1 and f.cache_info().sets == 1
    # Outside the controls (which, once used, the process reads on every call), hits are native again.
    result, ran = python_calls(lambda: f(1))
    assert result == 2 and ran == []


def test_an_interrupt_while_keying_goes_up_and_an_unkeyable_argument_is_the_engines(
        clocked: tuple[InMemCache, Callable[[float], None]]) -> None:
    cache, _ = clocked

    class Interrupting:
        pass

    class Broken:
        pass

    interrupts = [1]

    def interrupt(obj: Any) -> Any:
        if interrupts:  # once: swallowed and retried by the engine, the call would go on and run
            interrupts.pop()
            raise KeyboardInterrupt
        return "interrupting"

    def broken(obj: Any) -> Any:
        raise ValueError("no key for this one")

    oxicache.keys.register_key_encoder(Interrupting, interrupt)
    oxicache.keys.register_key_encoder(Broken, broken)
    try:
        runs: list[Any] = []

        @cache.memoize(ttl=60, stale=30)
        def f(x: Any) -> str:
            runs.append(x)
            return "ran"

        with pytest.raises(KeyboardInterrupt):
            f(Interrupting())
        assert runs == []  # Ctrl-C while keying: nothing ran, nothing swallowed
        with pytest.raises(Exception, match="no key for this one"):
            f(Broken())  # the front leaves it to the engine, which reports the encoder's error
        assert runs == []
    finally:
        oxicache.keys.register_key_encoder(Interrupting, None)
        oxicache.keys.register_key_encoder(Broken, None)


# ---- generator functions ---------------------------------------------------------------------------


def test_a_generator_hit_is_a_native_replay() -> None:
    """A memoized generator function on InMemCache answers a hit without Python code: a ``Replay`` of the
    stored items (issue 15: the call before the first item). Misses, partial runs and the controls are
    the Python wrapper's, as before."""
    import inspect

    cache = InMemCache()
    runs: list[int] = []

    @cache.memoize
    def count(n: int, step: int = 1):  # noqa: ANN202
        runs.append(n)
        yield from range(0, n, step)

    partial = count(5)
    assert next(partial) == 0  # a run not finished: nothing stored
    partial.close()
    assert list(count(5)) == [0, 1, 2, 3, 4] and runs == [5, 5]
    replay, ran = python_calls(lambda: count(5))
    assert type(replay).__name__ == "Replay" and ran == []
    assert list(replay) == [0, 1, 2, 3, 4] and list(count(n=5, step=1)) == [0, 1, 2, 3, 4]
    assert runs == [5, 5]
    with oxicache.refresh():
        assert list(count(5)) == [0, 1, 2, 3, 4] and runs == [5, 5, 5]
    info = count.cache_info()
    assert (info.hits, info.misses, info.currsize) == (2, 3, 1)
    assert inspect.isgeneratorfunction(count) and inspect.signature(count) == inspect.signature(count.__wrapped__)
    assert repr(count) == f"<memoized generator function {count.__qualname__}>"
    count.cache_clear()
    assert count.cache_info() == (0, 0, None, 0) and list(count(5)) == [0, 1, 2, 3, 4] and runs == [5, 5, 5, 5]
    # Items stored as another iterable (a manual set): not read on the no-Python path, still replayed
    cache.set(count.cache_name, output=range(7, 10), n=3, step=1)
    assert list(count(3)) == [7, 8, 9] and runs == [5, 5, 5, 5]


def test_a_generator_method_and_a_stale_generator(clocked: tuple[InMemCache, Callable[[float], None]]) -> None:
    cache = InMemCache()

    class Source:
        def __init__(self, base: int) -> None:
            self.base = base

        def __cache_key__(self) -> int:
            return self.base

        @cache.memoize
        def items(self, n: int):  # noqa: ANN202
            yield from (self.base + i for i in range(n))

    assert list(Source(10).items(2)) == [10, 11] and list(Source(10).items(2)) == [10, 11]
    assert list(Source(20).items(2)) == [20, 21]  # the object is part of the key

    stale_cache, advance = clocked
    version = [1]

    @stale_cache.memoize(ttl=60, stale=600)
    def feed():  # noqa: ANN202
        yield version[0]

    assert list(feed()) == [1]
    hit, ran = python_calls(lambda: list(feed()))
    assert hit == [1] and ran == []  # fresh: the native front
    version[0] = 2
    advance(61)
    assert list(feed()) == [1]  # stale: served, refreshed in the background
    for _ in range(3000):
        if list(feed()) == [2]:
            break
        threading.Event().wait(0.01)
    assert list(feed()) == [2]
