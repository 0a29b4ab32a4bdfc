"""memoize on InMemCache (native wrapper) and on NoCache (pass-through): binding, identity, exclusion,
annotation, TTL, methods, errors, generators and coroutines."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import inspect
import weakref

import pytest

from oxicache import CacheEntry, CacheError, CacheInfo, InMemCache, KeyEncodingError, NoCache


@pytest.fixture(params=["inmem", "none"])
def cache(request):
    return InMemCache() if request.param == "inmem" else NoCache()


@pytest.fixture
def inmem():
    return InMemCache()


def stores(cache) -> bool:
    return not isinstance(cache, NoCache)


def runs(cache, n_distinct: int, n_calls: int) -> int:
    """How many times the function body runs for n_calls calls over n_distinct keys."""
    return n_distinct if stores(cache) else n_calls


# ---- decorator forms ------------------------------------------------------------------------------


def test_bare_and_called_decorator(cache):
    @cache.memoize
    def a(x):
        return x + 1

    @cache.memoize()
    def b(x):
        return x + 2

    @cache.memoize(name="c-name")
    def c(x):
        return x + 3

    assert (a(1), b(1), c(1)) == (2, 3, 4)
    assert (a(1), b(1), c(1)) == (2, 3, 4)
    assert c.cache_name == "c-name"
    assert len(cache) == (3 if stores(cache) else 0)


def test_memoize_rejects_non_callable(cache):
    with pytest.raises(TypeError, match="callable"):
        cache.memoize(42)


def test_memoize_rejects_bad_options(cache):
    with pytest.raises(TypeError):
        cache.memoize(exclude="x")(lambda x: x)
    with pytest.raises(TypeError):
        cache.memoize(annotation=["x"])(lambda x: x)
    with pytest.raises(TypeError):
        cache.memoize(name="")(lambda x: x)
    with pytest.raises(ValueError):
        cache.memoize(ttl=-1)(lambda x: x)


# ---- calls and binding ----------------------------------------------------------------------------


def test_second_call_is_a_hit(cache):
    calls = []

    @cache.memoize
    def double(x):
        calls.append(x)
        return 2 * x

    assert double(1) == 2
    assert double(1) == 2
    assert len(calls) == runs(cache, 1, 2)
    assert double(2) == 4
    assert len(calls) == runs(cache, 2, 3)


def test_positional_keyword_and_default_share_an_entry(cache):
    calls = []

    @cache.memoize
    def f(x=1, y=2):
        calls.append((x, y))
        return x + y

    assert f(1) == f(x=1) == f() == f(1, 2) == f(y=2, x=1) == f(1, y=2) == 3
    assert len(calls) == runs(cache, 1, 6)
    assert len(cache) == (1 if stores(cache) else 0)
    assert f(2) == 4
    assert len(calls) == runs(cache, 2, 7)


def test_falsy_arguments_are_distinct(inmem):
    calls = []

    @inmem.memoize
    def f(x=None):
        calls.append(x)
        return repr(x)

    values = [None, 0, 0.0, False, "", (), [], {}, frozenset(), b""]
    assert [f(v) for v in values] == [repr(v) for v in values]
    assert [f(v) for v in values] == [repr(v) for v in values]
    assert len(calls) == len(values)
    assert f() == "None"
    assert len(calls) == len(values)


def test_var_args_and_kwargs_stored_under_their_names(inmem):
    calls = []

    @inmem.memoize
    def f(a, *rest, k=0, **opts):
        calls.append(1)
        return (a, rest, k, opts)

    assert f(1, 2, 3, k=4, z=5, w=6) == (1, (2, 3), 4, {"z": 5, "w": 6})
    (entry,) = list(inmem)
    assert entry.inputs == {"a": 1, "rest": (2, 3), "k": 4, "opts": {"z": 5, "w": 6}}
    assert entry.key == f.cache_key(1, 2, 3, k=4, z=5, w=6)
    assert f(1, 2, 3, w=6, z=5, k=4) == (1, (2, 3), 4, {"z": 5, "w": 6})
    assert len(calls) == 1
    f(1, (2, 3), k=4, z=5, w=6)  # a different *rest
    f(1, 2, 3, k=4, z=5)  # a different **opts
    f(1)  # empty *rest and **opts
    assert len(calls) == 4
    assert {"a": 1, "rest": (), "k": 0, "opts": {}} in [e.inputs for e in inmem]


def test_keyword_only_parameters(cache):
    calls = []

    @cache.memoize
    def f(a, *, b=2, c):
        calls.append(1)
        return (a, b, c)

    assert f(1, c=3) == (1, 2, 3)
    assert f(1, b=2, c=3) == (1, 2, 3)
    assert f(c=3, a=1) == (1, 2, 3)
    assert len(calls) == runs(cache, 1, 3)
    assert f(1, b=5, c=3) == (1, 5, 3)
    assert len(calls) == runs(cache, 2, 4)
    with pytest.raises(TypeError):
        f(1, 2, 3)


def test_positional_only_parameters(cache):
    calls = []

    @cache.memoize
    def f(a, /, b, **kw):
        calls.append(1)
        return (a, b, kw)

    assert f(1, 2) == (1, 2, {})
    assert f(1, b=2) == (1, 2, {})
    assert len(calls) == runs(cache, 1, 2)
    # a keyword named like a positional-only parameter lands in **kw
    assert f(1, 2, a=9) == (1, 2, {"a": 9})
    assert len(calls) == runs(cache, 2, 3)
    assert f(1, 2, a=9) == (1, 2, {"a": 9})
    assert len(calls) == runs(cache, 2, 4)
    with pytest.raises(TypeError):
        f(b=2)


def test_parameters_named_like_entry_fields(cache):
    calls = []

    @cache.memoize
    def f(func, output, expected, metadata, exclude, cls=None, ttl=None, name=None):
        calls.append(1)
        return (func, output, expected, metadata, exclude, cls, ttl, name)

    args = ("a", "b", "c", "d", "e")
    assert f(*args) == (*args, None, None, None)
    assert f(*args) == (*args, None, None, None)
    assert len(calls) == runs(cache, 1, 2)
    for i in range(5):  # every one of them is part of the key
        changed = list(args)
        changed[i] = "other"
        assert f(*changed)[i] == "other"
    assert len(calls) == runs(cache, 6, 7)
    if stores(cache):
        # get() has no reserved keywords besides its positional-only func: these are all inputs
        assert cache.get(f.cache_name, func="a", output="b", expected="c", metadata="d", exclude="e", cls=None, ttl=None, name=None) == (*args, None, None, None)
        assert cache.get(f.cache_name, dict(zip(("func", "output", "expected", "metadata", "exclude", "cls", "ttl", "name"), (*args, None, None, None)))) == (*args, None, None, None)


def test_arguments_not_matching_the_signature_raise_the_functions_own_type_error(cache):
    calls = []

    @cache.memoize
    def g(x):
        calls.append(x)
        return x

    with pytest.raises(TypeError, match=r"g\(\) takes 1 positional argument but 3 were given"):
        g(1, 2, 3)
    with pytest.raises(TypeError, match=r"g\(\) missing 1 required positional argument: 'x'"):
        g()
    with pytest.raises(TypeError, match=r"g\(\) got an unexpected keyword argument 'zz'"):
        g(1, zz=2)
    with pytest.raises(TypeError, match=r"g\(\) got multiple values for argument 'x'"):
        g(1, x=2)
    assert calls == []
    assert len(cache) == 0


# ---- results --------------------------------------------------------------------------------------


def test_exceptions_propagate_and_are_not_stored(cache):
    calls = []

    @cache.memoize
    def fail(x):
        calls.append(x)
        if len(calls) < 3:
            raise ValueError(f"boom {x} #{len(calls)}")
        return "ok"

    with pytest.raises(ValueError, match="boom 1 #1"):
        fail(1)
    assert len(cache) == 0
    with pytest.raises(ValueError, match="boom 1 #2"):
        fail(1)
    assert fail(1) == "ok"
    assert len(calls) == 3
    assert fail(1) == "ok"
    assert len(calls) == runs(cache, 3, 4)
    assert fail.cache_info().hits == (1 if stores(cache) else 0)


def test_none_result_is_cached(cache):
    calls = []

    @cache.memoize
    def nothing(x):
        calls.append(x)

    assert nothing(1) is None
    assert nothing(1) is None
    assert len(calls) == runs(cache, 1, 2)
    if stores(cache):
        assert cache.get(nothing.cache_name, x=1) is None


def test_ellipsis_result_is_not_stored(cache):
    """``...`` is "no output" (an entry without output answers no call, issue 17): the function runs."""
    calls = []

    @cache.memoize
    def dots(x):
        calls.append(x)
        return ...

    assert dots(1) is ...
    assert dots(1) is ...
    assert len(calls) == 2
    assert dots.cache_info().hits == 0


def test_hit_returns_the_same_object(inmem):
    @inmem.memoize
    def make(x):
        return [x]

    first = make(1)
    assert make(1) is first


def test_recursive_fibonacci(inmem):
    calls = []

    @inmem.memoize
    def fibonacci(n: int) -> int:
        calls.append(n)
        return n if n <= 1 else fibonacci(n - 2) + fibonacci(n - 1)

    a, b = 0, 1
    for _ in range(300):
        a, b = b, a + b
    assert fibonacci(300) == a
    assert len(calls) == 301
    assert fibonacci(300) == a
    assert len(calls) == 301
    assert fibonacci.cache_info().currsize == 301


# ---- wrapper attributes ---------------------------------------------------------------------------


def test_wrapper_attributes_and_signature(cache):
    def original(a: int, /, b: str = "x", *args: int, c: float = 1.0, **kw: object) -> list:
        """Docstring of the original."""
        return [a, b, args, c, kw]

    wrapped = cache.memoize(original)
    assert wrapped.__wrapped__ is original
    assert wrapped.__name__ == "original"
    assert wrapped.__qualname__ == original.__qualname__
    assert wrapped.__doc__ == "Docstring of the original."
    assert wrapped.__module__ == __name__
    assert inspect.signature(wrapped) == inspect.signature(original)
    assert callable(wrapped.cache_info)
    assert callable(wrapped.cache_clear)
    assert callable(wrapped.cache_key)
    assert wrapped(1, "y", 2, c=3.0, z=4) == [1, "y", (2,), 3.0, {"z": 4}]


# ---- cache_info / cache_clear ---------------------------------------------------------------------


def test_cache_info_exact():
    for max_size in (None, 10):
        cache = InMemCache(max_size=max_size)

        @cache.memoize
        def f(x):
            return x

        assert f.cache_info() == CacheInfo(hits=0, misses=0, maxsize=max_size, currsize=0)
        for x in (1, 2, 1, 3, 1, 2):
            f(x)
        info = f.cache_info()
        assert isinstance(info, CacheInfo)
        assert info == CacheInfo(hits=3, misses=3, maxsize=max_size, currsize=3)
        assert (info.hits, info.misses, info.maxsize, info.currsize) == (3, 3, max_size, 3)


def test_cache_info_replace_keeps_the_extra_counters():
    # As a namedtuple's, _replace builds the copy without __new__, so sets and errors were lost.
    info = CacheInfo(1, 2, None, 3, sets=4, errors=5)
    changed = info._replace(hits=10)
    assert isinstance(changed, CacheInfo) and tuple(changed) == (10, 2, None, 3)
    assert (changed.sets, changed.errors) == (4, 5)
    assert info._replace(errors=0).errors == 0
    with pytest.raises(ValueError, match="CacheInfo has no field 'size'"):
        info._replace(size=1)


def test_cache_info_on_nocache():
    cache = NoCache()

    @cache.memoize
    def f(x):
        return x

    for x in (1, 2, 1):
        f(x)
    assert f.cache_info() == CacheInfo(hits=0, misses=3, maxsize=None, currsize=0)
    f.cache_clear()
    assert f.cache_info() == CacheInfo(0, 0, None, 0)


def test_cache_info_is_per_function(inmem):
    @inmem.memoize
    def f(x):
        return x

    @inmem.memoize
    def g(x):
        return x

    f(1), f(1), f(2), g(1)
    assert f.cache_info() == CacheInfo(1, 2, None, 2)
    assert g.cache_info() == CacheInfo(0, 1, None, 1)


def test_cache_clear_only_clears_this_function(inmem):
    calls = []

    @inmem.memoize
    def f(x):
        calls.append(("f", x))
        return x

    @inmem.memoize
    def g(x):
        calls.append(("g", x))
        return -x

    for x in range(3):
        f(x)
        g(x)
    f(0)
    inmem.set("manual", output=1, x=1)
    assert len(inmem) == 7
    f.cache_clear()
    assert f.cache_info() == CacheInfo(0, 0, None, 0)
    assert g.cache_info() == CacheInfo(0, 3, None, 3)
    assert len(inmem) == 4
    assert inmem.get("manual", x=1) == 1
    assert {e.func for e in inmem} == {g.cache_name, "manual"}
    n = len(calls)
    f(0)
    g(0)
    assert calls[n:] == [("f", 0)]
    assert f.cache_info() == CacheInfo(0, 1, None, 1)


def test_cache_key_matches_stored_entry(inmem):
    @inmem.memoize
    def f(x, y=2):
        return x * y

    f(3)
    (entry,) = list(inmem)
    assert f.cache_key(3) == f.cache_key(x=3, y=2) == entry.key
    assert inmem[f.cache_key(3)].output == 6
    assert f.cache_key(3) == CacheEntry(f.cache_name, {"x": 3, "y": 2}).key


# ---- identity -------------------------------------------------------------------------------------


def test_name_sets_entry_func(inmem):
    @inmem.memoize(name="my.name")
    def f(x):
        return x

    f(1)
    assert [e.func for e in inmem] == ["my.name"]
    assert inmem.get("my.name", x=1) == 1


def test_same_name_shares_entries(cache):
    calls = []

    @cache.memoize(name="shared")
    def first(x):
        calls.append("first")
        return "first"

    @cache.memoize(name="shared")
    def second(x):
        calls.append("second")
        return "second"

    assert first(1) == "first"
    assert second(1) == ("first" if stores(cache) else "second")
    assert calls == (["first"] if stores(cache) else ["first", "second"])


def test_closures_from_one_factory_do_not_share(cache):
    def make(k):
        @cache.memoize
        def mul(x):
            return k * x

        return mul

    double, triple = make(2), make(3)
    assert double(5) == 10
    assert triple(5) == 15
    assert double.cache_name != triple.cache_name
    assert double.cache_name.startswith(f"{__name__}.test_closures_from_one_factory_do_not_share.<locals>.make.<locals>.mul#")


def test_closures_with_name_share(inmem):
    def make(k):
        @inmem.memoize(name="shared.mul")
        def mul(x):
            return k * x

        return mul

    assert make(2)(5) == 10
    assert make(3)(5) == 10


def test_lambdas_get_distinct_identities(inmem):
    square = inmem.memoize(lambda x: x * x)
    cube = inmem.memoize(lambda x: x * x * x)
    assert square(3) == 9
    assert cube(3) == 27
    assert "<lambda>#" in square.cache_name


_ID_CACHE = InMemCache()


@_ID_CACHE.memoize
def module_level(x):
    return ("module_level", x)


class Alpha:
    @staticmethod
    @_ID_CACHE.memoize
    def compute(x):
        return ("alpha", x)


class Beta:
    @staticmethod
    @_ID_CACHE.memoize
    def compute(x):
        return ("beta", x)


def test_identity_is_module_qualname():
    _ID_CACHE.clear()
    assert module_level.cache_name == f"{__name__}.module_level"
    assert Alpha.compute.cache_name == f"{__name__}.Alpha.compute"
    module_level(1)
    assert [e.func for e in _ID_CACHE] == [f"{__name__}.module_level"]


def test_same_name_in_different_classes_does_not_share():
    _ID_CACHE.clear()
    assert Alpha.compute(1) == ("alpha", 1)
    assert Beta.compute(1) == ("beta", 1)
    assert Alpha.compute(1) == ("alpha", 1)
    assert Beta().compute(1) == ("beta", 1)
    assert len(_ID_CACHE) == 2


def test_same_name_in_different_modules_does_not_share(cache):
    source = "@cache.memoize\ndef fibonacci(n):\n    return (__name__, n)\n"
    ns_a = {"__name__": "pkg.mod_a", "cache": cache}
    ns_b = {"__name__": "pkg.mod_b", "cache": cache}
    exec(source, ns_a)
    exec(source, ns_b)
    assert ns_a["fibonacci"](1) == ("pkg.mod_a", 1)
    assert ns_b["fibonacci"](1) == ("pkg.mod_b", 1)
    assert ns_a["fibonacci"].cache_name == "pkg.mod_a.fibonacci"
    assert ns_b["fibonacci"].cache_name == "pkg.mod_b.fibonacci"


# ---- exclude --------------------------------------------------------------------------------------


def test_exclude_positional_and_keyword(cache):
    calls = []

    @cache.memoize(exclude=["debug"])
    def compute_with_debug(x, debug=False):
        calls.append((x, debug))
        return x * x

    assert compute_with_debug(5, True) == 25
    assert compute_with_debug(5, debug=False) == 25
    assert compute_with_debug(5) == 25
    assert compute_with_debug(x=5, debug="anything") == 25
    assert len(calls) == runs(cache, 1, 4)
    if stores(cache):
        assert [e.inputs for e in cache] == [{"x": 5}]
        assert calls == [(5, True)]
    assert compute_with_debug(6, True) == 36
    assert len(calls) == runs(cache, 2, 5)


def test_exclude_inside_kwargs(cache):
    calls = []

    @cache.memoize(exclude=["api_key"])
    def call(prompt, **options):
        calls.append(options)
        return f"answer to {prompt}"

    assert call("hi", api_key="A") == "answer to hi"
    assert call("hi", api_key="B") == "answer to hi"
    assert call("hi") == "answer to hi"
    assert len(calls) == runs(cache, 1, 3)
    assert calls[0] == {"api_key": "A"}  # the function still receives it
    call("hi", api_key="A", temperature=1)
    assert len(calls) == runs(cache, 2, 4)
    if stores(cache):
        assert sorted((e.inputs for e in cache), key=repr) == sorted([{"prompt": "hi", "options": {}}, {"prompt": "hi", "options": {"temperature": 1}}], key=repr)


def test_exclude_unknown_parameter_raises(cache):
    with pytest.raises(ValueError, match="nope"):

        @cache.memoize(exclude=["nope"])
        def f(x):
            return x

    @cache.memoize(exclude=["nope"])  # allowed: it may arrive through **kw
    def g(x, **kw):
        return x

    assert g(1, nope=2) == 1


def test_exclude_unencodable_argument(inmem):
    class Client:
        pass

    calls = []

    @inmem.memoize(exclude=["client"])
    def fetch(client, url):
        calls.append(url)
        return url.upper()

    assert fetch(Client(), "a") == "A"
    assert fetch(Client(), "a") == "A"
    assert fetch(client=Client(), url="a") == "A"
    assert calls == ["a"]


# ---- annotation and TTL ---------------------------------------------------------------------------


def test_annotation_stored_in_metadata(inmem):
    @inmem.memoize(annotation={"purpose": "user_profile", "team": "backend"})
    def get_user_profile(user_id):
        return {"id": user_id}

    get_user_profile(1)
    (entry,) = list(inmem)
    assert entry.metadata == {"annotation": {"purpose": "user_profile", "team": "backend"}}
    assert inmem.retrieve(get_user_profile.cache_name, user_id=1).metadata["annotation"]["team"] == "backend"


def test_annotation_dict_is_copied(inmem):
    annotation = {"team": "a"}

    @inmem.memoize(annotation=annotation)
    def f(x):
        return x

    annotation["team"] = "b"
    f(1)
    assert next(iter(inmem)).metadata == {"annotation": {"team": "a"}}


def test_no_annotation_means_empty_metadata(inmem):
    @inmem.memoize
    def f(x):
        return x

    f(1)
    assert next(iter(inmem)).metadata == {}


def test_annotation_ttl_expires_entries(inmem):
    calls = []

    @inmem.memoize(annotation={"priority": "high", "ttl": "1h"})
    def get_realtime_data(sensor_id):
        calls.append(sensor_id)
        return len(calls)

    assert get_realtime_data("s") == 1
    inmem._native_store._advance_clock(3599)
    assert get_realtime_data("s") == 1
    inmem._native_store._advance_clock(2)
    assert get_realtime_data("s") == 2
    assert calls == ["s", "s"]
    assert next(iter(inmem)).metadata == {"annotation": {"priority": "high", "ttl": "1h"}}


def test_ttl_option_expires_entries(inmem):
    calls = []

    @inmem.memoize(ttl=10)
    def f(x):
        calls.append(x)
        return len(calls)

    @inmem.memoize
    def forever(x):
        calls.append(-x)
        return x

    assert f(1) == 1
    forever(1)
    inmem._native_store._advance_clock(5)
    assert f(1) == 1
    inmem._native_store._advance_clock(6)
    assert f(1) == 3
    forever(1)
    assert calls == [1, -1, 1]


def test_ttl_option_overrides_annotation_ttl(inmem):
    @inmem.memoize(ttl="10s", annotation={"ttl": "1h"})
    def f(x):
        return object()

    first = f(1)
    inmem._native_store._advance_clock(11)
    assert f(1) is not first


def test_cache_level_ttl_applies_to_memoize():
    cache = InMemCache(ttl="10s")

    @cache.memoize
    def f(x):
        return object()

    first = f(1)
    cache._native_store._advance_clock(5)
    assert f(1) is first
    cache._native_store._advance_clock(6)
    assert f(1) is not first


# ---- methods --------------------------------------------------------------------------------------


def test_method_with_cache_key_hook(inmem):
    calls = []

    class Pricing:
        def __init__(self, rate):
            self.rate = rate

        def __cache_key__(self):
            return self.rate

        @inmem.memoize
        def price(self, qty):
            calls.append((self.rate, qty))
            return self.rate * qty

    assert Pricing(3).price(2) == 6
    assert Pricing(3).price(2) == 6
    assert Pricing(4).price(2) == 8
    assert Pricing(3).price(qty=2) == 6
    assert calls == [(3, 2), (4, 2)]


def test_method_on_dataclass(inmem):
    calls = []

    @dataclasses.dataclass(frozen=True)
    class Tax:
        percent: int

        @inmem.memoize
        def apply(self, amount):
            calls.append(amount)
            return amount * (100 + self.percent) // 100

    assert Tax(20).apply(100) == 120
    assert Tax(20).apply(100) == 120
    assert Tax(10).apply(100) == 110
    assert len(calls) == 2


def test_method_exclude_self_shares_across_instances(inmem):
    class Units:
        @inmem.memoize(exclude=["self"])
        def to_cm(self, inches):
            return inches * 2.54

    assert Units().to_cm(10) == 25.4
    assert Units().to_cm(10) == 25.4
    assert Units.to_cm.cache_info().hits == 1
    assert [e.inputs for e in inmem] == [{"inches": 10}]


def test_method_without_encoding_raises(inmem):
    calls = []

    class Plain:
        @inmem.memoize
        def method(self, x):
            calls.append(x)
            return x

    with pytest.raises(KeyEncodingError) as info:
        Plain().method(1)
    msg = str(info.value)
    assert "'self'" in msg
    assert "Plain" in msg
    assert "exclude" in msg
    assert "__cache_key__" in msg
    assert "register_key_encoder" in msg
    assert calls == []
    assert len(inmem) == 0


def test_excluded_self_is_not_kept_alive(inmem):
    class Service:
        @inmem.memoize(exclude=["self"])
        def lookup(self, x):
            return x * 2

    refs = []
    for i in range(1000):
        s = Service()
        assert s.lookup(i % 10) == (i % 10) * 2
        refs.append(weakref.ref(s))
    del s
    gc.collect()
    assert all(r() is None for r in refs)
    assert len(inmem) == 10


def test_staticmethod_stacking(cache):
    calls = []

    class K:
        @staticmethod
        @cache.memoize
        def s(x):
            calls.append(x)
            return x + 1

    assert K.s(1) == 2
    assert K().s(1) == 2
    assert len(calls) == runs(cache, 1, 2)


def test_classmethod_stacking(cache):
    calls = []

    class Base:
        @classmethod
        @cache.memoize
        def make(cls, x):
            calls.append((cls.__name__, x))
            return (cls.__name__, x)

    class Sub(Base):
        pass

    assert Base.make(1) == ("Base", 1)
    assert Base().make(1) == ("Base", 1)
    assert Sub.make(1) == ("Sub", 1)
    assert Sub().make(1) == ("Sub", 1)
    assert len(calls) == runs(cache, 2, 4)
    if stores(cache):
        assert {e.inputs["cls"] for e in cache} == {Base, Sub}


# ---- unencodable and pathological arguments -------------------------------------------------------


class Opaque:
    pass


def test_unencodable_argument_raises_key_encoding_error(inmem):
    calls = []

    @inmem.memoize
    def handle(request, n=1):
        calls.append(1)
        return n

    with pytest.raises(KeyEncodingError) as info:
        handle(Opaque())
    err = info.value
    assert isinstance(err, TypeError)
    assert isinstance(err, CacheError)
    msg = str(err)
    assert "'request'" in msg
    assert "Opaque" in msg
    assert "exclude=['request']" in msg
    assert "__cache_key__" in msg
    assert "register_key_encoder" in msg
    assert calls == []
    assert len(inmem) == 0
    assert handle.cache_info().currsize == 0


def test_unencodable_nested_argument_names_the_path(inmem):
    @inmem.memoize
    def f(items):
        return 1

    with pytest.raises(KeyEncodingError, match=r"'items\[1\]'") as info:
        f([1, Opaque()])
    assert "Opaque" in str(info.value)


def test_nocache_does_not_build_keys_but_cache_key_does():
    cache = NoCache()

    @cache.memoize
    def f(x):
        return "ran"

    assert f(Opaque()) == "ran"
    with pytest.raises(KeyEncodingError, match="'x'"):
        f.cache_key(Opaque())


@pytest.mark.parametrize("kind", ["list", "dict"])
def test_self_referencing_argument(inmem, kind):
    calls = []

    @inmem.memoize
    def f(data):
        calls.append(1)
        return 1

    if kind == "list":
        data = [1]
        data.append(data)
    else:
        data = {"a": 1}
        data["self"] = data
    with pytest.raises(KeyEncodingError, match="cycle") as info:
        f(data)
    assert "'data" in str(info.value)
    assert calls == []
    assert len(inmem) == 0


@pytest.mark.parametrize("kind", ["list", "dict"])
def test_deep_nesting_is_refused(inmem, kind):
    calls = []

    @inmem.memoize
    def f(data):
        calls.append(1)
        return 1

    data: object = 0
    for _ in range(10_000):
        data = [data] if kind == "list" else {"k": data}
    with pytest.raises(KeyEncodingError, match="nesting") as info:
        f(data)
    assert "cycle" not in str(info.value)
    assert calls == []
    assert len(inmem) == 0


@pytest.mark.parametrize("kind", ["cycle", "deep"])
def test_recursive_argument_errors_are_readable(inmem, kind):
    """The error for a self-referencing or very deep argument must stay short enough to read."""

    @inmem.memoize
    def f(data):
        return 1

    if kind == "cycle":
        data = []
        data.append(data)
    else:
        data = 0
        for _ in range(10_000):
            data = [data]
    with pytest.raises(KeyEncodingError) as info:
        f(data)
    assert len(str(info.value)) < 400, str(info.value)


# ---- generators and coroutines --------------------------------------------------------------------


def test_generator_replayed_after_full_consumption(cache):
    runs_ = []

    @cache.memoize
    def data_stream(n):
        runs_.append(n)
        for i in range(n):
            yield i * i

    assert inspect.isgeneratorfunction(data_stream)
    assert list(data_stream(4)) == [0, 1, 4, 9]
    assert list(data_stream(4)) == [0, 1, 4, 9]
    assert len(runs_) == runs(cache, 1, 2)
    if stores(cache):
        assert cache.get(data_stream.cache_name, n=4) == [0, 1, 4, 9]


def test_generator_break_stores_nothing(inmem):
    runs_ = []

    @inmem.memoize
    def data_stream(n):
        runs_.append(n)
        yield from range(n)

    for item in data_stream(10):
        if item > 3:
            break
    assert len(inmem) == 0
    gen = data_stream(10)
    next(gen)
    next(gen)
    del gen  # partial consumption
    gc.collect()
    assert len(inmem) == 0
    assert list(data_stream(10)) == list(range(10))
    assert len(runs_) == 3
    assert list(data_stream(10)) == list(range(10))
    assert len(runs_) == 3


def test_generator_exception_stores_nothing(inmem):
    runs_ = []

    @inmem.memoize
    def data_stream(n, fail_at=None):
        runs_.append(n)
        for i in range(n):
            if i == fail_at:
                raise RuntimeError("stream failed")
            yield i

    with pytest.raises(RuntimeError, match="stream failed"):
        list(data_stream(10, fail_at=5))
    assert len(inmem) == 0
    with pytest.raises(ValueError):
        for item in data_stream(10):
            if item == 5:
                raise ValueError("consumer failed")
    assert len(inmem) == 0
    assert list(data_stream(10)) == list(range(10))
    assert list(data_stream(10)) == list(range(10))
    assert len(runs_) == 3


def test_async_function_cached(cache):
    calls = []

    @cache.memoize
    async def async_operation(x):
        await asyncio.sleep(0)
        calls.append(x)
        return x * 2

    assert inspect.iscoroutinefunction(async_operation)

    async def main():
        return [await async_operation(5), await async_operation(5), await async_operation(6)]

    assert asyncio.run(main()) == [10, 10, 12]
    assert asyncio.run(main()) == [10, 10, 12]  # a second event loop
    assert len(calls) == runs(cache, 2, 6)
    if stores(cache):
        outputs = sorted(e.output for e in cache)
        assert outputs == [10, 12]  # values, never coroutine objects


def test_async_exception_not_cached(inmem):
    calls = []

    @inmem.memoize
    async def flaky(x):
        calls.append(x)
        if len(calls) == 1:
            raise ValueError("first call fails")
        return x

    with pytest.raises(ValueError, match="first call fails"):
        asyncio.run(flaky(1))
    assert len(inmem) == 0
    assert asyncio.run(flaky(1)) == 1
    assert asyncio.run(flaky(1)) == 1
    assert calls == [1, 1]


def test_async_generator_cached_after_full_consumption(cache):
    runs_ = []

    @cache.memoize
    async def agen(n):
        runs_.append(n)
        for i in range(n):
            await asyncio.sleep(0)
            yield i

    async def collect(n, stop=None):
        out = []
        async for item in agen(n):
            if item == stop:
                break
            out.append(item)
        return out

    assert inspect.isasyncgenfunction(agen)
    assert asyncio.run(collect(5, stop=2)) == [0, 1]
    assert len(cache) == 0
    assert asyncio.run(collect(5)) == [0, 1, 2, 3, 4]
    assert asyncio.run(collect(5)) == [0, 1, 2, 3, 4]
    assert len(runs_) == runs(cache, 2, 3)
    if stores(cache):
        assert cache.get(agen.cache_name, n=5) == [0, 1, 2, 3, 4]


# ---- more identity / results / wrappers -----------------------------------------------------------


def test_partial_needs_a_name(cache):
    import functools

    def add(a, b):
        return a + b

    with pytest.raises(TypeError, match="name="):
        cache.memoize(functools.partial(add, 1))
    add_one = cache.memoize(name="add_one")(functools.partial(add, 1))
    assert add_one(2) == add_one(b=2) == 3
    if stores(cache):
        assert [e.inputs for e in cache] == [{"b": 2}]


def test_reraised_exception_is_the_original(cache):
    error = KeyError("missing thing")

    @cache.memoize
    def f(x):
        raise error

    with pytest.raises(KeyError) as info:
        f(1)
    assert info.value is error
    assert f.cache_info().currsize == 0


def test_async_cache_info(cache):
    @cache.memoize
    async def f(x):
        return x

    async def main():
        for x in (1, 2, 1, 1):
            await f(x)

    asyncio.run(main())
    expected = (2, 2, None, 2) if stores(cache) else (0, 4, None, 0)
    assert tuple(f.cache_info()) == expected
    f.cache_clear()
    assert tuple(f.cache_info()) == (0, 0, None, 0)
    assert len(cache) == 0


def test_generator_ttl(inmem):
    runs_ = []

    @inmem.memoize(ttl=10)
    def stream(n):
        runs_.append(n)
        yield from range(n)

    assert list(stream(3)) == [0, 1, 2]
    inmem._native_store._advance_clock(5)
    assert list(stream(3)) == [0, 1, 2]
    inmem._native_store._advance_clock(6)
    assert list(stream(3)) == [0, 1, 2]
    assert runs_ == [3, 3]


def test_generator_exclude_and_annotation(inmem):
    @inmem.memoize(exclude=["verbose"], annotation={"kind": "stream"})
    def stream(n, verbose=False):
        yield from range(n)

    assert list(stream(2, verbose=True)) == [0, 1]
    assert list(stream(2)) == [0, 1]
    (entry,) = list(inmem)
    assert entry.inputs == {"n": 2}
    assert entry.metadata == {"annotation": {"kind": "stream"}}
    assert entry.output == [0, 1]
    assert stream.cache_info().hits == 1


def test_annotated_generator_hit_replays_expected(inmem):
    @inmem.memoize
    def stream(n):
        yield from range(n)

    assert list(stream(3)) == [0, 1, 2]
    inmem.annotate(stream.cache_name, n=3, expected=["a", "b"])
    assert list(stream(3)) == ["a", "b"]
