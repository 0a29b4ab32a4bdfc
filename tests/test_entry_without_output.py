"""An entry without output is no answer to a memoized call (issue 17, item 11).

``cache.set(func, **inputs)`` without ``output=``, or an imported line without ``"output"``, stores an
entry whose output is ``...`` (unset). A memoized call finding it must run the function, not return
``...``: on every storing backend of tests/backends.py, for plain and coroutine functions, batches and
shared flight, through the native paths (InMemCache's memoizer, TieredCache's front) and the Python
engine. An annotated entry without output still answers with its ``expected`` value, and a function
whose result is ``...`` runs each time (``...`` is "no output": it is not stored).
"""

from __future__ import annotations

import asyncio

import pytest

from backends import BACKENDS, STORING, make
from oxicache import CacheEntry


@pytest.fixture(params=STORING)
def cache(request):
    c = make(request.param)
    yield c
    c.close()


def counted(cache, **options):
    calls: list[int] = []

    @cache.memoize(name="double", **options)
    def double(x):
        calls.append(x)
        return 2 * x

    return double, calls


def test_set_without_output_is_a_miss_then_the_result_is_stored(cache):
    double, calls = counted(cache)
    cache.set("double", x=1)  # no output=
    assert cache.exists("double", x=1)
    assert double(1) == 2 and calls == [1]
    assert double(1) == 2 and calls == [1]  # stored over it: a hit now
    assert cache.get("double", x=1) == 2
    info = double.cache_info()
    assert (info.hits, info.misses) == (1, 1)


def test_imported_entry_without_output_is_a_miss(cache):
    cache.add(CacheEntry.from_dict({"func": "double", "inputs": {"x": 3}, "metadata": {"note": "imported"}}))
    double, calls = counted(cache)
    assert double(3) == 6 and calls == [3]


def test_a_known_call_as_its_first_hit_on_the_native_fast_path(cache):
    """Called with exact builtins, positionally: InMemCache's memoizer answers from its store without
    Python code; TieredCache's front the same. Neither may return the unset output."""
    double, calls = counted(cache)
    for _ in range(3):
        cache.set("double", x=5)
        assert double(5) == 10
        cache.remove("double", x=5)
    assert calls == [5, 5, 5]


def test_annotated_entry_without_output_answers_with_expected(cache):
    cache.add(CacheEntry("double", {"x": 4}, expected=100))
    double, calls = counted(cache)
    assert double(4) == 100 and calls == []


def test_a_result_of_ellipsis_is_not_stored_and_runs_each_time(cache):
    calls = []

    @cache.memoize
    def dots(x):
        calls.append(x)
        return ...

    assert dots(1) is ... and dots(1) is ...
    assert calls == [1, 1]
    assert not cache.exists(dots, x=1)


def test_coroutine_function(cache):
    calls = []

    @cache.memoize(name="adouble")
    async def adouble(x):
        calls.append(x)
        return 2 * x

    cache.set("adouble", x=2)
    assert asyncio.run(adouble(2)) == 4 and asyncio.run(adouble(2)) == 4
    assert calls == [2]


def test_batch_item_without_output_is_computed(cache):
    batches = []

    @cache.batch_memoize(name="embed")
    def embed(items):
        batches.append(list(items))
        return [i * 10 for i in items]

    assert embed([1]) == [10]
    cache.set("embed", items=[2])  # an item entry without output
    assert embed([1, 2]) == [10, 20]
    assert batches == [[1], [2]]


@pytest.mark.parametrize("backend", [n for n in STORING if n not in ("inmem", "tiered")])
def test_shared_flight(backend):
    cache = make(backend)
    try:
        if not cache.capabilities.leases:
            pytest.skip(f"{backend} grants no leases")
        double, calls = counted(cache, shared_flight=True)
        cache.set("double", x=7)
        assert double(7) == 14 and double(7) == 14
        assert calls == [7]
    finally:
        cache.close()


def test_every_storing_backend_is_covered():
    assert {"inmem", "disk", "json", "sqlite", "tiered"} <= set(STORING) <= set(BACKENDS)
