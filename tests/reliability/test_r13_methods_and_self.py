"""R13 of the reliability matrix: memoized methods and ``self``, on every storing backend.

The documented policy (README "Methods and `self`", docs/backends/memory.md): ``self`` is part of the key,
encoded like any argument, so the class needs a ``__cache_key__`` method (or a registered encoder, or is
a dataclass / pydantic model); ``exclude=["self"]`` is the ignore-self mode and shares entries across
instances; a ``self`` without a key raises ``KeyEncodingError`` naming the fixes. Checked here: 1000
instances created and dropped, different state -> different results, equal state -> one entry, the
ignore-self mode, and the error. (250 instances on the PostgreSQL/MariaDB servers, where every call is a
round trip.)

References: no backend keeps an instance alive. With ``exclude=["self"]`` the instance is not part of
the entry at all; with ``self`` in the key, every backend (InMemCache included, unlike
``functools.lru_cache``) keeps an argument the value codec cannot encode as its ``KeyBytes`` (its
canonical key bytes), so the entry still recomputes to its key and holds no reference to the instance.
"""

from __future__ import annotations

import dataclasses
import gc
import weakref
from typing import Any

import pytest
from backends import SPECS, STORING, make

from oxicache import KeyEncodingError

N = 1000
N_SERVER = 250  # PostgreSQL/MariaDB: every call is a round trip; the reference checks need no more
STATES = 10


def count_for(cache: Any) -> int:
    spec = SPECS.get(id(cache))
    return N_SERVER if spec is not None and "url" in spec[2] else N


@pytest.fixture(params=STORING)
def cache(request: pytest.FixtureRequest) -> Any:
    c = make(request.param)
    yield c
    c.close()


class Pricing:
    """At module level: a store other processes read keys an instance by a class its module can name
    (a class made inside a function is refused there, tests/test_wrong_values.py)."""

    def __init__(self, rate: int) -> None:
        self.rate = rate

    def __cache_key__(self) -> int:
        return self.rate


def pricing_class(cache: Any, runs: list[tuple[int, int]], **options: Any) -> type:
    """``Pricing`` with a ``price`` method memoized on ``cache``, recording its runs in ``runs``."""

    def price(self: Pricing, qty: int) -> int:
        runs.append((self.rate, qty))
        return self.rate * qty

    Pricing.price = cache.memoize(**options)(price)  # type: ignore[attr-defined]
    return Pricing


@dataclasses.dataclass(frozen=True)
class Tax:
    percent: int


def churn(cls: type, method: str, n: int = N) -> list[weakref.ref[Any]]:
    """n instances with STATES distinct states, each called once and dropped; their weak references."""
    refs = []
    for i in range(n):
        obj = cls(i % STATES)
        assert getattr(obj, method)(3) == (i % STATES) * 3
        refs.append(weakref.ref(obj))
        del obj
    gc.collect()
    return refs


def test_state_is_part_of_the_key(cache: Any) -> None:
    runs: list[tuple[int, int]] = []
    pricing = pricing_class(cache, runs)
    n = count_for(cache)
    refs = churn(pricing, "price", n)
    assert sorted(set(runs)) == [(r, 3) for r in range(STATES)] and len(runs) == STATES
    info = pricing.price.cache_info()
    assert (info.hits, info.misses, info.currsize) == (n - STATES, STATES, STATES)
    assert pricing(4).price(2) == 8 and pricing(5).price(2) == 10  # different state, different result
    assert pricing(4).price(qty=2) == 8 and runs[-2:] == [(4, 2), (5, 2)]
    alive = sum(r() is not None for r in refs)
    assert alive == 0, f"{alive} dropped instances are still alive"


def test_inmem_holds_no_strong_reference_to_dropped_instances() -> None:
    """The matrix's criterion on the in-memory backend (the persistent ones: test_state_is_part_of_the_key)."""
    cache = make("inmem")
    refs = churn(pricing_class(cache, []), "price")
    alive = sum(r() is not None for r in refs)
    assert alive == 0, f"{alive} of {N} dropped instances are still alive after gc.collect()"


def test_exclude_self_shares_entries_and_keeps_no_instance(cache: Any) -> None:
    runs: list[tuple[int, int]] = []
    pricing = pricing_class(cache, runs, exclude=["self"])
    refs, n = [], count_for(cache)
    for i in range(n):
        obj = pricing(7)
        assert obj.price(i % STATES) == 7 * (i % STATES)
        refs.append(weakref.ref(obj))
        del obj
    gc.collect()
    assert len(runs) == STATES and pricing.price.cache_info().hits == n - STATES
    assert pricing(8).price(1) == 7, "ignore-self mode: another instance's state does not change the key"
    assert all(r() is None for r in refs)
    assert sorted(e.inputs["qty"] for e in cache) == list(range(STATES))
    assert all("self" not in e.inputs for e in cache)


def test_dataclass_self_is_keyed_by_its_fields(cache: Any) -> None:
    runs: list[int] = []

    @cache.memoize
    def apply(self: Tax, amount: int) -> int:
        runs.append(self.percent)
        return amount * (100 + self.percent) // 100

    Tax.apply = apply  # type: ignore[attr-defined]
    assert (Tax(20).apply(100), Tax(20).apply(100), Tax(10).apply(100)) == (120, 120, 110)  # type: ignore[attr-defined]
    assert runs == [20, 10]


def test_self_without_a_key_raises(cache: Any) -> None:
    runs: list[int] = []

    class Plain:
        @cache.memoize
        def method(self, x: int) -> int:
            runs.append(x)
            return x

    with pytest.raises(KeyEncodingError) as info:
        Plain().method(1)
    message = str(info.value)
    assert all(part in message for part in ("'self'", "Plain", "exclude", "__cache_key__", "register_key_encoder"))
    assert runs == [] and len(cache) == 0
