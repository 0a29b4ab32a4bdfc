"""The manual cache API (seed guide sections 4.5, 5.4, 5.5, 5.6; ARCHITECTURE section 1), as one contract
run on every storing backend, plus NoCache's documented no-op semantics."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import fractions
import gc
import weakref
from typing import Any, Callable, Iterator

import pytest

import backends
from dict_backend import DictBackend

from oxicache import BaseCache, CacheEntry, InMemCache, NoCache


# The one dict-backed test backend (tests/dict_backend.py): the five primitives over a dict, so that
# BaseCache's defaults and the Python engine are exercised without any storage of their own.
DictCache = DictBackend


BACKENDS: dict[str, Callable[..., BaseCache]] = {
    "inmem": lambda exclude=None: InMemCache(exclude),
    "inmem-bounded": lambda exclude=None: InMemCache(exclude, max_size=1000),
    "custom-dict": lambda exclude=None: DictCache(exclude),
    # the persistent backends (tests/backends.py): the same public surface, through their own storage
    **{name: (lambda name: lambda exclude=None: backends.make(name, exclude=exclude))(name) for name in backends.PERSISTENT},
}


@pytest.fixture(params=list(BACKENDS))
def make(request) -> Callable[..., BaseCache]:
    return BACKENDS[request.param]


@pytest.fixture
def cache(make) -> BaseCache:
    return make()


def counters(cache: BaseCache) -> dict[str, int]:
    s = cache.stats()
    return {k: s[k] for k in ("hits", "misses", "sets", "size")}


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: int


class Opaque:
    """A value with no canonical encoding: fine as an output, not as an input."""


class TestContract:
    # ---- the three spellings of set, and get -------------------------------------------------

    def test_set_entry(self, cache):
        cache.set(CacheEntry(func="my_function", inputs={"x": 5}, output=25, metadata={"version": "1.0"}))
        assert cache.get("my_function", {"x": 5}) == 25
        assert cache.get("my_function", x=5) == 25
        assert cache.retrieve("my_function", x=5).metadata == {"version": "1.0"}

    def test_set_with_keyword_inputs(self, cache):
        cache.set("f", output=25, x=5)
        assert cache.get("f", {"x": 5}) == 25
        assert cache.get("f", x=5) == 25

    def test_set_with_dict_inputs(self, cache):
        cache.set("f", {"x": 5}, output=25)
        assert cache.get("f", {"x": 5}) == 25
        assert cache.get("f", x=5) == 25

    def test_three_spellings_write_the_same_entry(self, cache):
        cache.set(CacheEntry("f", {"x": 5}, 1))
        cache.set("f", output=2, x=5)
        assert len(cache) == 1
        cache.set("f", {"x": 5}, output=3)
        assert len(cache) == 1
        assert cache.get("f", x=5) == 3

    def test_set_entry_takes_no_other_fields(self, cache):
        with pytest.raises(TypeError):
            cache.set(CacheEntry("f", {"x": 1}, 1), output=2)
        with pytest.raises(TypeError):
            cache.set(CacheEntry("f", {"x": 1}, 1), {"x": 2})
        assert len(cache) == 0

    def test_inputs_either_dict_or_keywords_not_both(self, cache):
        with pytest.raises(TypeError, match="both"):
            cache.get("f", {"x": 1}, y=2)
        with pytest.raises(TypeError, match="both"):
            cache.set("f", {"x": 1}, output=1, y=2)
        with pytest.raises(TypeError, match="list"):
            cache.get("f", [("x", 1)])

    def test_miss_is_ellipsis(self, cache):
        assert cache.get("f", x=1) is ...
        assert cache.get("f", {"x": 1}) is ...
        assert cache.retrieve("f", x=1) is ...
        cache.set("f", output=None, x=1)
        assert cache.get("f", x=1) is None  # None is a value, not a miss
        assert cache.get("f", x=2) is ...
        assert cache.get("g", x=1) is ...

    def test_inputs_are_matched_by_type(self, cache):
        cache.set("f", output="int", x=1)
        assert cache.get("f", x=1.0) is ...
        assert cache.get("f", x=True) is ...
        assert cache.get("f", x="1") is ...
        cache.set("f", output="dict-int", x={1: "a"})
        assert cache.get("f", x={"1": "a"}) is ...

    def test_get_with_callable_func(self, cache):
        def compute(x):
            return x

        cache.set(compute, output=3, x=1)
        assert cache.get(f"{__name__}.{compute.__qualname__}", x=1) == 3
        assert cache.get(compute, {"x": 1}) == 3

    def test_retrieve_returns_the_entry(self, cache):
        cache.set("f", {"x": 5, "y": [1, 2]}, output=25, metadata={"m": 1})
        e = cache.retrieve("f", x=5, y=[1, 2])
        assert isinstance(e, CacheEntry)
        assert e == CacheEntry("f", {"x": 5, "y": [1, 2]}, 25, ..., {"m": 1})
        assert e.key == CacheEntry("f", {"y": [1, 2], "x": 5}).key

    def test_exists(self, cache):
        assert cache.exists("f", x=1) is False
        cache.set("f", output=1, x=1)
        assert cache.exists("f", x=1) is True
        assert cache.exists("f", {"x": 1}) is True
        assert cache.exists("f", x=2) is False
        assert cache.exists("g", x=1) is False

    # ---- key access --------------------------------------------------------------------------

    def test_contains_by_int_str_and_entry(self, cache):
        entry = CacheEntry("f", {"x": 5}, 25)
        assert entry.key not in cache
        assert entry not in cache
        cache.set(entry)
        assert entry.key in cache
        assert str(entry.key) in cache
        assert entry in cache
        assert CacheEntry("f", {"x": 5}) in cache  # any entry with the same key
        assert CacheEntry("f", {"x": 6}).key not in cache
        assert str(CacheEntry("f", {"x": 6}).key) not in cache

    def test_getitem(self, cache):
        entry = CacheEntry("f", {"x": 5}, 25)
        assert cache[entry.key] is ...
        cache.set(entry)
        assert cache[entry.key] == entry
        assert cache[str(entry.key)] == entry
        assert cache[CacheEntry("f", {"x": 5})] == entry
        assert cache[CacheEntry("f", {"x": 6}).key] is ...

    def test_bad_keys(self, cache):
        with pytest.raises(KeyError):
            cache["not-a-number"]
        with pytest.raises(TypeError):
            cache[1.5]
        with pytest.raises(TypeError):
            cache[True]

    def test_setitem(self, cache):
        entry = CacheEntry("f", {"x": 5}, 25)
        cache[entry.key] = entry
        assert cache.get("f", x=5) == 25
        other = CacheEntry("f", {"x": 6}, 36)
        cache[other.key] = other.to_dict()  # a dict is accepted too
        assert cache.get("f", x=6) == 36

    def test_setitem_with_mismatching_key_raises(self, cache):
        entry = CacheEntry("f", {"x": 5}, 25)
        wrong = CacheEntry("f", {"x": 6}).key
        with pytest.raises(KeyError):
            cache[wrong] = entry
        assert len(cache) == 0
        assert cache.get("f", x=5) is ...

    def test_delitem(self, cache):
        entry = CacheEntry("f", {"x": 5}, 25)
        cache.set(entry)
        cache.set("f", output=36, x=6)
        del cache[entry.key]
        assert entry.key not in cache
        assert cache.get("f", x=5) is ...
        assert cache.get("f", x=6) == 36
        del cache[entry.key]  # missing: no error
        del cache[CacheEntry("f", {"x": 6})]
        assert len(cache) == 0
        del cache[str(entry.key)]

    # ---- removal -----------------------------------------------------------------------------

    def test_remove_spellings(self, cache):
        for x in range(4):
            cache.set("f", output=x, x=x)
        assert cache.remove(CacheEntry("f", {"x": 0})) is True
        assert cache.remove("f", {"x": 1}) is True
        assert cache.remove("f", x=2) is True
        assert cache.unset("f", x=3) is True
        assert len(cache) == 0
        assert cache.remove("f", x=0) is False
        assert cache.unset("f", x=0) is False
        assert cache.remove(CacheEntry("f", {"x": 0})) is False

    def test_remove_touches_only_that_entry(self, cache):
        cache.set("f", output=1, x=1)
        cache.set("f", output=2, x=2)
        cache.set("g", output=3, x=1)
        cache.remove("f", x=1)
        assert cache.get("f", x=1) is ...
        assert cache.get("f", x=2) == 2
        assert cache.get("g", x=1) == 3

    def test_len_and_iteration(self, cache):
        assert len(cache) == 0
        assert list(cache) == []
        for x in range(5):
            cache.set("f", output=x * x, x=x)
        cache.set("g", {"x": 1}, output="g")
        assert len(cache) == 6
        entries = list(cache)
        assert len(entries) == 6
        assert all(isinstance(e, CacheEntry) for e in entries)
        assert {(e.func, e.inputs["x"], e.output) for e in entries} == {("f", x, x * x) for x in range(5)} | {("g", 1, "g")}

    def test_iteration_is_a_snapshot(self, cache):
        for x in range(10):
            cache.set("f", output=x, x=x)
        seen = 0
        for entry in cache:
            assert cache.remove(entry.func, entry.inputs)
            cache.set("other", output=entry.output, x=entry.inputs["x"])
            seen += 1
        assert seen == 10
        assert len(cache) == 10
        assert {e.func for e in cache} == {"other"}

    def test_pop(self, cache):
        assert cache.pop() is None
        cache.set("f", output=1, x=1)
        cache.set("f", output=2, x=2)
        first = cache.pop()
        assert isinstance(first, CacheEntry)
        assert len(cache) == 1
        second = cache.pop()
        assert {first.output, second.output} == {1, 2}
        assert cache.pop() is None
        assert len(cache) == 0

    def test_popall(self, cache):
        assert cache.popall() == []
        for x in range(20):
            cache.set("f", output=x, x=x)
        popped = cache.popall()
        assert sorted(e.output for e in popped) == list(range(20))
        assert len(cache) == 0
        assert list(cache) == []

    def test_clear(self, cache):
        for x in range(5):
            cache.set("f", output=x, x=x)
        cache.clear()
        assert len(cache) == 0
        assert cache.get("f", x=1) is ...
        cache.set("f", output=1, x=1)
        assert cache.get("f", x=1) == 1

    def test_close_and_context_manager(self, cache):
        cache.set("f", output=1, x=1)
        cache.close()
        cache.set("f", output=2, x=2)
        assert cache.get("f", x=2) == 2
        with cache as same:
            assert same is cache
            same.set("f", output=3, x=3)
            assert same.get("f", x=3) == 3
        cache.set("f", output=4, x=4)  # still usable after __exit__
        assert cache.get("f", x=4) == 4

    # ---- statistics --------------------------------------------------------------------------

    def test_stats_counters_are_exact(self, cache):
        assert counters(cache) == {"hits": 0, "misses": 0, "sets": 0, "size": 0}
        cache.set("f", output=1, x=1)
        cache.set("f", {"x": 2}, output=2)
        cache.set(CacheEntry("f", {"x": 3}, 3))
        cache.add(CacheEntry("f", {"x": 4}, 4))
        assert counters(cache) == {"hits": 0, "misses": 0, "sets": 4, "size": 4}
        assert cache.get("f", x=1) == 1
        assert cache.get("f", {"x": 2}) == 2
        assert cache.retrieve("f", x=3).output == 3
        assert cache.get("f", x=99) is ...
        assert cache.retrieve("f", x=98) is ...
        assert counters(cache) == {"hits": 3, "misses": 2, "sets": 4, "size": 4}
        cache.set("f", output=10, x=1)  # overwrite: one more set, same size
        assert counters(cache) == {"hits": 3, "misses": 2, "sets": 5, "size": 4}

    def test_stats_not_counted_by_inspection(self, cache):
        entry = CacheEntry("f", {"x": 1}, 1)
        cache.set(entry)
        before = counters(cache)
        cache.exists("f", x=1)
        cache.exists("f", x=2)
        _ = entry.key in cache
        _ = cache[entry.key]
        _ = cache[CacheEntry("f", {"x": 2}).key]
        _ = list(cache)
        _ = len(cache)
        assert counters(cache) == before

    def test_stats_count_memoized_calls(self, cache):
        @cache.memoize
        def sq(x):
            return x * x

        for x in (1, 2, 1, 1, 3):
            sq(x)
        assert counters(cache) == {"hits": 2, "misses": 3, "sets": 3, "size": 3}

    # ---- cache-level exclude -----------------------------------------------------------------

    def test_cache_level_exclude(self, make):
        cache = make(exclude=["debug"])
        assert cache.exclude == frozenset({"debug"})
        cache.set("f", output=25, x=5, debug=True)
        assert cache.get("f", x=5, debug=False) == 25
        assert cache.get("f", x=5) == 25
        assert cache.get("f", {"x": 5, "debug": "anything"}) == 25
        assert cache.exists("f", x=5, debug=1)
        assert cache.retrieve("f", x=5, debug=2).inputs == {"x": 5}
        assert cache.remove("f", x=5, debug=3) is True
        assert len(cache) == 0

    def test_cache_level_exclude_not_applied_to_add(self, make):
        cache = make(exclude=["debug"])
        entry = CacheEntry("f", {"x": 5, "debug": True}, 25)
        cache.add(entry)
        assert entry.key in cache
        assert cache[entry.key].inputs == {"x": 5, "debug": True}
        assert cache.get("f", x=5, debug=True) is ...  # get drops debug: {"x": 5} was never stored

    def test_cache_level_exclude_applies_to_memoize(self, make):
        cache = make(exclude=["debug"])
        calls = []

        @cache.memoize
        def compute(x, debug=False):
            calls.append((x, debug))
            return x * x

        assert compute(5, debug=True) == 25
        assert compute(5, debug=False) == 25
        assert compute(5) == 25
        assert calls == [(5, True)]
        assert [e.inputs for e in cache] == [{"x": 5}]

    def test_set_exclude_and_add_exclude(self, cache):
        cache.set_exclude(["a"])
        cache.add_exclude(["b"])
        assert cache.exclude == frozenset({"a", "b"})
        cache.set("f", output=1, x=1, a=1, b=2)
        assert cache.get("f", x=1) == 1
        with pytest.raises(TypeError):
            cache.set_exclude("a")

    # ---- annotate ----------------------------------------------------------------------------

    def test_annotate_existing_entry_defaults_expected_to_output(self, cache):
        cache.set("f", output=5, x=1)
        stored = cache.annotate("f", x=1)
        assert stored.output == 5
        assert stored.expected == 5
        e = cache.retrieve("f", x=1)
        assert (e.output, e.expected, e.annotated) == (5, 5, True)

    def test_annotate_existing_entry_keeps_output_sets_expected(self, cache):
        cache.set("f", {"x": 1}, output=5, metadata={"run": 1})
        stored = cache.annotate("f", {"x": 1}, expected=6, metadata={"source": "gold"})
        assert stored == cache.retrieve("f", x=1)
        assert stored.output == 5
        assert stored.expected == 6
        assert stored.metadata == {"run": 1, "source": "gold"}
        assert cache.get("f", x=1) == 6
        assert len(cache) == 1

    def test_annotate_missing_entry_without_expected_raises(self, cache):
        with pytest.raises(ValueError, match="expected"):
            cache.annotate("f", x=1)
        assert len(cache) == 0

    def test_annotate_missing_entry_with_expected_creates_it(self, cache):
        stored = cache.annotate("f", x=1, expected=7, metadata={"source": "gold"})
        e = cache.retrieve("f", x=1)
        assert e == stored
        assert (e.output, e.expected, e.metadata) == (7, 7, {"source": "gold"})
        assert cache.get("f", x=1) == 7

    def test_annotate_expected_none(self, cache):
        cache.set("f", output=5, x=1)
        cache.annotate("f", x=1, expected=None)
        assert cache.get("f", x=1) is None
        assert cache.retrieve("f", x=1).annotated is True

    def test_annotated_hit_returns_expected_through_get_and_memoize(self, cache):
        calls = []

        @cache.memoize
        def answer(q):
            calls.append(q)
            return "model says 41"

        assert answer("life") == "model says 41"
        cache.annotate(answer.cache_name, q="life", expected=42)
        assert cache.get(answer.cache_name, q="life") == 42
        assert answer("life") == 42
        assert calls == ["life"]
        assert cache.retrieve(answer.cache_name, q="life").output == "model says 41"

    def test_guide_annotation_filtering_loop(self, cache):
        @cache.memoize(annotation={"purpose": "user_profile", "team": "backend"})
        def get_user_profile(user_id: int) -> dict:
            return {"id": user_id}

        @cache.memoize(annotation={"priority": "high", "team": "sensors"})
        def get_realtime_data(sensor_id: str) -> dict:
            return {"sensor": sensor_id}

        for uid in (1, 2, 3):
            get_user_profile(uid)
        get_realtime_data("a")
        cache.set("plain", output=0, x=0)

        backend_entries = [e for e in cache if e.metadata.get("annotation", {}).get("team") == "backend"]
        assert sorted(e.inputs["user_id"] for e in backend_entries) == [1, 2, 3]
        assert {e.func for e in backend_entries} == {get_user_profile.cache_name}
        for entry in backend_entries:
            assert entry.metadata == {"annotation": {"purpose": "user_profile", "team": "backend"}}

        for entry in cache:
            if entry.metadata.get("annotation", {}).get("purpose") == "user_profile":
                cache.remove(entry.func, entry.inputs)
        assert len(cache) == 2
        assert {e.func for e in cache} == {get_realtime_data.cache_name, "plain"}

    # ---- values ------------------------------------------------------------------------------

    @pytest.mark.parametrize(
        "value",
        [
            0,
            10**40,
            -1.5,
            float("nan"),
            "text",
            b"bytes",
            bytearray(b"ba"),
            [1, [2, 3]],
            (1, "a"),
            {"k": [1]},
            {1, 2},
            frozenset({3}),
            1 + 2j,
            decimal.Decimal("1.10"),
            fractions.Fraction(1, 3),
            datetime.datetime(2024, 1, 1, 12, 0),
            Point(1, 2),
            Opaque(),
            len,
            Opaque,
            range(3),
        ],
        ids=lambda v: type(v).__name__,
    )
    def test_values_round_trip_as_the_same_object(self, cache, value):
        if backends.is_persistent(cache):
            pytest.skip("persistent backends store values through the codec: tests/test_persistent_contract.py")
        cache.set("f", output=value, x=1)
        assert cache.get("f", x=1) is value
        assert cache.retrieve("f", x=1).output is value
        assert cache[CacheEntry("f", {"x": 1}).key].output is value
        (entry,) = list(cache)
        assert entry.output is value

    def test_none_and_false_values(self, cache):
        cache.set("f", output=None, x=1)
        cache.set("f", output=False, x=2)
        cache.set("f", output=0, x=3)
        cache.set("f", output="", x=4)
        assert cache.get("f", x=1) is None
        assert cache.get("f", x=2) is False
        assert cache.get("f", x=3) == 0
        assert cache.get("f", x=4) == ""
        assert counters(cache)["hits"] == 4

    def test_inputs_of_many_types(self, cache):
        inputs = {
            "i": 10**30,
            "f": -0.0,
            "s": "é",
            "b": b"\x00",
            "t": (1, (2,)),
            "l": [None, True],
            "d": {1: "a", "1": "b"},
            "set": {1, 2},
            "fz": frozenset({"a"}),
            "dt": datetime.date(2024, 1, 1),
            "p": Point(1, 2),
            "e": ...,
        }
        cache.set("f", inputs, output="ok")
        assert cache.get("f", dict(inputs)) == "ok"
        back = cache.retrieve("f", inputs)
        assert back.inputs == inputs
        assert back.key == CacheEntry("f", inputs).key
        assert cache[back.key].output == "ok"

    def test_unencodable_input_raises(self, cache):
        from oxicache import KeyEncodingError

        with pytest.raises(KeyEncodingError, match="obj"):
            cache.set("f", output=1, obj=Opaque())
        assert len(cache) == 0

    def test_parameters_named_like_set_options_via_dict(self, cache):
        inputs = {"output": 1, "expected": 2, "metadata": 3, "ttl": 4, "func": 5, "exclude": 6}
        cache.set("f", inputs, output="r")
        assert cache.get("f", inputs) == "r"
        assert cache.exists("f", inputs)
        assert cache.retrieve("f", inputs).inputs == inputs
        assert cache.retrieve("f", inputs).output == "r"
        assert cache.get("f", {"output": 1}) is ...
        assert cache.remove("f", inputs) is True

    def test_parameter_named_func_via_keywords(self, cache):
        cache.set("f", output="r", func=1, x=2)
        assert cache.get("f", func=1, x=2) == "r"
        assert cache.retrieve("f", {"func": 1, "x": 2}).inputs == {"func": 1, "x": 2}

    def test_values_are_released_on_removal(self, cache):
        if backends.is_persistent(cache):
            pytest.skip("persistent backends never hold the value object")
        value = Opaque()
        ref = weakref.ref(value)
        cache.set("f", output=value, x=1)
        del value
        gc.collect()
        assert ref() is not None
        cache.remove("f", x=1)
        gc.collect()
        assert ref() is None


class TestNoCache:
    def test_construction(self):
        assert NoCache().exclude == frozenset()
        assert NoCache(["debug"]).exclude == frozenset({"debug"})
        NoCache(ttl="1h")
        with pytest.raises(TypeError):
            NoCache(max_size=3)

    def test_everything_misses(self):
        cache = NoCache()
        entry = CacheEntry("f", {"x": 5}, 25)
        cache.set(entry)
        cache.set("f", output=25, x=5)
        cache.set("f", {"x": 5}, output=25)
        cache.add(entry)
        cache[entry.key] = entry
        assert cache.get("f", x=5) is ...
        assert cache.get("f", {"x": 5}) is ...
        assert cache.retrieve("f", x=5) is ...
        assert cache[entry.key] is ...
        assert cache.exists("f", x=5) is False
        assert entry.key not in cache
        assert entry not in cache
        assert len(cache) == 0
        assert list(cache) == []

    def test_removal_is_a_no_op(self):
        cache = NoCache()
        entry = CacheEntry("f", {"x": 5}, 25)
        assert cache.remove(entry) is False
        assert cache.remove("f", x=5) is False
        assert cache.remove("f", {"x": 5}) is False
        assert cache.unset("f", x=5) is False
        del cache[entry.key]
        assert cache.pop() is None
        assert cache.popall() == []
        cache.clear()
        cache.close()
        cache.flush()
        cache.set("f", output=1, x=1)  # still usable
        assert cache.get("f", x=1) is ...

    def test_setitem_checks_key(self):
        cache = NoCache()
        with pytest.raises(KeyError):
            cache[CacheEntry("f", {"x": 6}).key] = CacheEntry("f", {"x": 5}, 25)

    def test_annotate(self):
        cache = NoCache()
        with pytest.raises(ValueError):
            cache.annotate("f", x=1)
        stored = cache.annotate("f", x=1, expected=3, metadata={"m": 1})
        assert stored == CacheEntry("f", {"x": 1}, 3, 3, {"m": 1})
        assert cache.get("f", x=1) is ...
        assert len(cache) == 0

    def test_stats(self):
        cache = NoCache()
        cache.set("f", output=1, x=1)
        cache.add(CacheEntry("f", {"x": 2}, 2))
        cache.get("f", x=1)
        cache.retrieve("f", x=2)
        cache.exists("f", x=1)
        assert cache.stats() == {"hits": 0, "misses": 2, "sets": 2, "errors": 0, "evictions": 0, "backend_errors": 0, "size": 0}

    def test_exclude_applies_to_probe(self):
        cache = NoCache(["debug"])
        assert cache.annotate("f", x=1, debug=True, expected=1).inputs == {"x": 1}

    def test_memoized_function_runs_every_time(self):
        cache = NoCache()
        calls = []

        @cache.memoize
        def expensive(x):
            calls.append(x)
            return x * x

        assert (expensive(3), expensive(3), len(calls)) == (9, 9, 2)
        assert cache.get(expensive, x=3) is ...
        assert len(cache) == 0
        assert expensive.cache_info() == (0, 2, None, 0)
        # every memoized call counts as a miss (hits + misses = lookups, as on every backend)
        assert cache.stats() == {"hits": 0, "misses": 3, "sets": 0, "errors": 0, "evictions": 0, "backend_errors": 0, "size": 0}


def test_ahvn_keyword_spelling_of_func():
    from oxicache import CacheEntry, InMemCache

    cache = InMemCache()
    cache.set(func="f", output=2, x=1)
    assert cache.get(func="f", x=1) == 2
    assert cache.exists(func="f", x=1)
    assert cache.retrieve(func="f", x=1).output == 2
    cache.annotate(func="f", x=1, expected=3)
    assert cache.get("f", x=1) == 3
    assert cache.unset(func="f", x=1) and not cache.exists("f", x=1)
    entry = CacheEntry("g", {"y": 1}, output=0)
    cache.add(entry)
    assert cache.remove(entry=entry) and len(cache) == 0
    # positional func: a keyword named func is then an input
    cache.set("h", {"func": "input value"}, output=5)
    assert cache.get("h", func="input value") == 5
    with pytest.raises(TypeError, match="first argument"):
        cache.get(x=1)


@pytest.mark.parametrize("make_cache", [lambda: __import__("oxicache").InMemCache(), lambda: __import__("oxicache").NoCache()])
def test_memoized_function_binds_manual_inputs_to_its_signature(make_cache):
    cache = make_cache()

    @cache.memoize(exclude=["verbose"])
    def add(x, y=10, verbose=False):
        return x + y

    assert add.cache_inputs(5) == {"x": 5, "y": 10}
    assert add.cache_inputs(x=5, y=1, verbose=True) == {"x": 5, "y": 1}
    add(5)
    stored = not isinstance(cache, __import__("oxicache").NoCache)
    assert cache.exists(add, x=5) is stored
    assert cache.get(add, x=5, verbose=True) == (15 if stored else ...)
    assert cache.get(add.cache_name, x=5) is ...  # a name takes the inputs as stored: y is missing
    assert cache.get(add.cache_name, x=5, y=10) == (15 if stored else ...)
    with pytest.raises(TypeError):
        cache.get(add, z=1)  # not a parameter of add
    assert cache.remove(add, x=5) is stored


@pytest.mark.parametrize("name", ["inmem", "custom-dict"])
def test_a_cache_is_freed_when_its_last_user_lets_it_go(name) -> None:
    """Freed by reference counting, not left to the garbage collector: the cache holds no reference back
    to itself (a cached EngineView once made a cycle), so a dropped cache's memory and connections go
    at once. Measured with the collector off."""
    import gc
    import weakref

    cache = BACKENDS[name]()
    memoized = cache.memoize(lambda x: x + 1)
    assert memoized(1) == 2
    ref = weakref.ref(cache)
    gc.disable()
    try:
        del cache, memoized
        assert ref() is None
    finally:
        gc.enable()
