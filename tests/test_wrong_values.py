"""A cache never returns a value the function would not have returned for those arguments (issue 11,
wrong values 1 to 6), on every backend of tests/backends.py, PostgreSQL and MariaDB included:

1. a function that changes its argument is filed under the arguments as they were at the call, and an
   entry never aliases the caller's mutable arguments;
2. memoizing a bound method keys the object it is bound to (two instances, two subclasses);
3. two closures that compute different things never share entries, even when their cells are filled
   after decoration;
4. two classes Python treats as different never share a key (factory classes, factory enums, type());
5. `PurePosixPath("/x")` and `PureWindowsPath("/x")` are different keys;
6. a generator that yields one buffer again and again replays what the consumer saw at each step.
"""

from __future__ import annotations

import enum
import pathlib

import backends
import pytest

from oxicache import KeyEncodingError

STORING = backends.STORING
ALL = list(backends.BACKENDS)


@pytest.fixture(params=ALL)
def cache(request):
    c = backends.make(request.param)
    yield c
    c.close()


@pytest.fixture(params=STORING)
def storing(request):
    c = backends.make(request.param)
    yield c
    c.close()


def shares_keys_with_other_processes(cache) -> bool:
    return type(cache).__name__ not in ("InMemCache", "NoCache")


# ---- 1. arguments changed by the function, or by the caller afterwards ----------------------------------


def test_a_function_that_changes_its_argument_is_filed_under_the_call(cache):
    @cache.memoize
    def pop_last(stack):
        return stack.pop()

    assert pop_last([1, 2, 3]) == 3
    assert pop_last([1, 2]) == 2  # not the entry of [1, 2, 3] filed under the popped list
    assert pop_last([1, 2, 3]) == 3


def test_an_entry_never_aliases_the_callers_argument(storing):
    import datetime

    @storing.memoize
    def total(values, when):
        return sum(values)

    values = [1, 2, 3]
    when = datetime.date(2026, 1, 1)  # not rebuilt from key bytes: the entry keeps the inputs itself
    assert total(values, when) == 6
    values.append(100)  # the caller changes its list afterwards
    (entry,) = list(storing)
    assert entry.inputs["values"] == [1, 2, 3]
    assert entry.key in storing
    assert total([1, 2, 3], when) == 6 and total.cache_info().hits == 1


# ---- 2. bound methods ----------------------------------------------------------------------------------


class Service:
    def __init__(self, base):
        self.base = base

    def __cache_key__(self):
        return self.base

    def url(self, path):
        return self.base + path

    @classmethod
    def kind(cls, x):
        return f"{cls.__name__}:{x}"


class Staging(Service):
    pass


def test_memoizing_bound_methods_keys_their_objects(cache):
    prod, test = Service("prod/"), Service("test/")
    prod_url, test_url = cache.memoize(prod.url), cache.memoize(test.url)
    assert prod_url("x") == "prod/x"
    assert test_url("x") == "test/x"
    assert prod_url("x") == "prod/x"
    base_kind, staging_kind = cache.memoize(Service.kind), cache.memoize(Staging.kind)
    assert base_kind(1) == "Service:1"
    assert staging_kind(1) == "Staging:1"


def test_a_bound_method_of_an_object_without_a_key_is_refused_clearly(cache):
    class Plain:
        def value(self, x):
            return x

    memoized = cache.memoize(Plain().value)
    if type(cache).__name__ == "NoCache":
        assert memoized(1) == 1  # stores nothing, so nothing needs a key
        return
    with pytest.raises(KeyEncodingError, match="self"):
        memoized(1)


def test_a_builtin_method_bound_to_an_object_is_refused(cache):
    d = {"a": 1}
    with pytest.raises(TypeError, match="bound to a dict"):
        cache.memoize(d.get)


# ---- 3. closures -----------------------------------------------------------------------------------------


def test_closures_over_values_assigned_after_decoration_do_not_share_entries(cache):
    def make(k):
        @cache.memoize
        def scaled(x):
            return x * factor

        factor = k  # assigned after the nested def (and after decoration)
        return scaled

    double, triple = make(2), make(3)
    assert (double(1), triple(1), double(1), triple(1)) == (2, 3, 2, 3)


def test_closures_over_a_dict_filled_later_do_not_share_entries(cache):
    def make(rate):
        table = {}

        @cache.memoize
        def convert(x):
            return x * table["rate"]

        table["rate"] = rate
        return convert

    a, b = make(10), make(20)
    assert (a(1), b(1), a(1), b(1)) == (10, 20, 10, 20)


def test_closures_over_local_classes_do_not_share_entries(cache):
    def make(factor):
        class Unit:
            scale = factor

        @cache.memoize
        def to_base(x):
            return x * Unit.scale

        return to_base

    meters, km = make(1), make(1000)
    assert (meters(5), km(5), meters(5), km(5)) == (5, 5000, 5, 5000)


# ---- 4. classes ------------------------------------------------------------------------------------------


def unit(name, factor):
    class Unit:
        def __init__(self, v):
            self.v = v

        def __cache_key__(self):
            return self.v

    Unit.factor = factor
    return Unit


def test_classes_made_by_a_factory_never_share_a_key(cache):
    Meters, Km = unit("m", 1), unit("km", 1000)

    @cache.memoize
    def to_base(q):
        return q.v * type(q).factor

    if shares_keys_with_other_processes(cache):
        # No other process can tell the two classes apart: refused, with the fix.
        with pytest.raises(KeyEncodingError, match="module level"):
            to_base(Meters(5))
        return
    assert (to_base(Meters(5)), to_base(Km(5)), to_base(Meters(5)), to_base(Km(5))) == (5, 5000, 5, 5000)


def test_factory_enums_and_type_made_classes_never_share_a_key(cache):
    def make_enum(value):
        return enum.Enum("Color", {"RED": value})

    A, B = make_enum(1), make_enum(2)
    C, D = type("Tag", (), {"x": 1}), type("Tag", (), {"x": 2})

    @cache.memoize
    def value_of(member):
        return member.value

    @cache.memoize
    def x_of(cls):
        return cls.x

    if shares_keys_with_other_processes(cache):
        with pytest.raises(KeyEncodingError):
            value_of(A.RED)
        with pytest.raises(KeyEncodingError):
            x_of(C)
        return
    assert (value_of(A.RED), value_of(B.RED)) == (1, 2)
    assert (x_of(C), x_of(D)) == (1, 2)


class Color(enum.Enum):
    RED = 1


def test_importable_classes_keep_their_shared_keys(cache):
    @cache.memoize
    def value_of(member, cls):
        return (member.value, cls.__name__)

    assert value_of(Color.RED, Service) == (1, "Service")
    assert value_of(Color.RED, Service) == (1, "Service")
    if type(cache).__name__ not in ("NoCache", "CallbackCache"):  # (those store nothing)
        assert value_of.cache_info().hits == 1


# ---- 5. path flavours ------------------------------------------------------------------------------------


def test_path_flavours_are_different_keys(cache):
    @cache.memoize
    def flavour(p):
        return type(p).__name__

    assert flavour(pathlib.PurePosixPath("/x")) == "PurePosixPath"
    assert flavour(pathlib.PureWindowsPath("/x")) == "PureWindowsPath"
    assert flavour(pathlib.PurePosixPath("/x")) == "PurePosixPath"


# ---- 6. generators that reuse a buffer ---------------------------------------------------------------------


def test_a_generator_reusing_a_buffer_replays_what_was_seen(cache):
    @cache.memoize
    def growing(n):
        buf = []
        for i in range(n):
            buf.append(i)
            yield buf

    first = [list(x) for x in growing(3)]
    assert first == [[0], [0, 1], [0, 1, 2]]
    assert [list(x) for x in growing(3)] == first
    assert [list(x) for x in growing(3)] == first


def test_an_async_generator_reusing_a_buffer_replays_what_was_seen(cache):
    import asyncio

    @cache.memoize
    async def growing(n):
        buf = {}
        for i in range(n):
            buf[i] = i * i
            yield buf

    async def consume():
        return [dict(x) async for x in growing(3)]

    first = asyncio.run(consume())
    assert first == [{0: 0}, {0: 0, 1: 1}, {0: 0, 1: 1, 2: 4}]
    assert asyncio.run(consume()) == first


def test_a_reused_object_the_codec_cannot_copy_is_not_stored(storing):
    class Box:
        def __init__(self):
            self.n = 0

    @storing.memoize
    def boxes(k):
        box = Box()
        for i in range(k):
            box.n = i
            yield box

    assert [b.n for b in boxes(3)] == [0, 1, 2]  # the consumer reads each as it comes
    assert len(storing) == 0  # a replay could not show 0, 1, 2: the run is not stored


def test_instances_of_factory_classes_are_never_stored_as_each_other(storing):
    """The value codec revives a stored dataclass, enum, named tuple or pydantic model by its class's name.
    Two classes made by one factory share that name, so a record of one could come back as the other:
    the codec refuses instances of classes their module cannot name (the caller still gets its value, with
    a warning, and nothing is stored)."""
    import dataclasses
    import warnings

    from oxicache import CacheWarning, ValueEncodingError
    from oxicache.codec import allow, encode_binary, encode_json

    def quantity(factor):
        @dataclasses.dataclass
        class Q:
            v: float

            def base(self):
                return self.v * factor

        return Q

    Meters, Km = quantity(1), quantity(1000)
    for encode in (encode_binary, encode_json):
        with pytest.raises(ValueEncodingError, match="module level"):
            encode(Meters(5))
    with pytest.raises(ValueError, match="module level"):
        allow(Km)

    @storing.memoize
    def measure(which):
        return Meters(which) if which < 10 else Km(which)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = [measure(5).base(), measure(50).base(), measure(5).base(), measure(50).base()]
    assert results == [5, 50_000, 5, 50_000]
    if type(storing).__name__ != "InMemCache":  # InMemCache keeps the objects themselves
        assert any(issubclass(w.category, CacheWarning) for w in caught)
        assert len(storing) == 0
