"""A plain function memoized on a backend that stores nothing (NoCache, and OXICACHE_DISABLE's caches) is
a native passthrough (issue 15: "NoCache wrapper within 2x of a bare call"): every call runs the function
with the caller's arguments as they came, counted as a miss, and as an error when it raises, in
``cache_info()`` and in the cache's ``stats()``; nothing is keyed, looked up or stored."""

from __future__ import annotations

import pickle
import sys
from typing import Any

import pytest

import oxicache
from oxicache import NoCache


class Unkeyable:
    """No key can be made of it: a passthrough never tries."""

    def __reduce__(self) -> Any:
        raise TypeError("not this one")


cache = NoCache()


@cache.memoize
def add(x: int, y: int = 10, *rest: int, scale: int = 1) -> int:
    return (x + y + sum(rest)) * scale


def test_every_call_runs_with_its_arguments_and_is_counted() -> None:
    add.cache_clear()
    before = cache.stats()
    assert type(add).__name__ == "Memoizer"
    assert [add(1), add(1, 2), add(1, 2, 3, scale=2), add(x=5), add(1, y=1)] == [11, 3, 12, 15, 2]
    info = add.cache_info()
    assert (info.hits, info.misses, info.currsize, info.sets, info.errors) == (0, 5, 0, 0, 0)
    assert len(cache) == 0
    after = cache.stats()
    assert after["misses"] - before["misses"] == 5 and after["sets"] == after["hits"] == 0


def test_errors_are_counted_and_raised_as_they_are() -> None:
    calls: list[Any] = []

    @cache.memoize
    def fails(x: Any) -> None:
        calls.append(x)
        raise ValueError(f"bad {x}")

    before = cache.stats()["errors"]
    with pytest.raises(ValueError, match="bad 1"):
        fails(1)
    with pytest.raises(TypeError):
        fails()  # type: ignore[call-arg]  # the function's own TypeError, as a plain call
    assert fails.cache_info().errors == 2 and fails.cache_info().misses == 2
    assert cache.stats()["errors"] - before == 2
    with pytest.raises(ValueError):
        fails(Unkeyable())  # nothing is keyed: the argument reaches the function
    assert len(calls) == 2
    fails.cache_clear()
    assert fails.cache_info() == (0, 0, None, 0)
    assert cache.stats()["errors"] - before == 3  # the cache's counters are not the function's


def test_methods_helpers_and_pickling() -> None:
    class Account:
        def __init__(self, balance: int) -> None:
            self.balance = balance

        @cache.memoize
        def with_interest(self, rate: float) -> float:
            return self.balance * (1 + rate)

    assert Account(100).with_interest(0.5) == 150.0
    assert add.cache_key(1) == add.cache_key(1, 10) != add.cache_key(2)
    assert add.cache_inputs(1) == {"x": 1, "y": 10, "rest": (), "scale": 1}
    assert add.__wrapped__(1) == 11 and add.__name__ == "add"
    assert pickle.loads(pickle.dumps(add)) is add


def test_deep_recursion_is_a_recursion_error() -> None:
    @cache.memoize
    def down(n: int) -> int:
        return 0 if n == 0 else down(n - 1) + 1

    assert down(100) == 100
    with pytest.raises(RecursionError):
        down(sys.getrecursionlimit() * 50)


def test_disabled_caching_is_the_native_passthrough(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OXICACHE_DISABLE", "1")
    runs: list[int] = []

    @oxicache.InMemCache().memoize
    def square(x: int) -> int:
        runs.append(x)
        return x * x

    assert [square(3), square(3)] == [9, 9] and runs == [3, 3]
    assert type(square).__name__ == "Memoizer" and square.cache_info().misses == 2
