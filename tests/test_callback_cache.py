"""CallbackCache (guide 3.6, docs/backends/callback.md): callbacks on every set, feeds on every get,
failures logged and skipped, signatures checked at construction, and the rest of the cache API."""

from __future__ import annotations

import asyncio
import logging

import pytest

from oxicache import CacheEntry, CallbackCache


class Events:
    """Callbacks and feeds that record what they receive."""

    def __init__(self):
        self.log: list[tuple] = []

    def callback(self, name):
        def cb(key, value):
            self.log.append((name, key, value))

        cb.__qualname__ = f"callback_{name}"
        return cb

    def feed(self, name, answer=lambda func, kwargs: ...):
        def fd(func, **kwargs):
            self.log.append((name, func, kwargs))
            return answer(func, kwargs)

        fd.__qualname__ = f"feed_{name}"
        return fd


# ---- the guide's example --------------------------------------------------------------------------


def test_guide_fast_computation_example(capsys):
    def log_cache_set(key, value):
        print(f"Cache set: {key} = {value}")

    def monitor_memory(key, value):
        # Custom memory monitoring logic
        print(f"Memory usage after setting {key}")

    def fast_computation(func, **kwargs):
        """Provide fast alternative for specific inputs"""
        if kwargs.get("x", 0) < 100:
            return kwargs["x"] * 2  # Fast computation
        return ...  # Let original function handle

    def database_lookup(func, **kwargs):
        """Check external database for cached results"""
        # Custom database lookup logic
        return ...  # Continue to next feed or original function

    def complex_calculation(x):
        return 1

    cache = CallbackCache(callbacks=[log_cache_set, monitor_memory], feeds=[fast_computation, database_lookup])

    @cache.memoize()
    def expensive_function(x):
        print(f"Computing for {x}")
        return x * x + complex_calculation(x)

    result = expensive_function(5)  # Uses fast_computation feed
    assert result == 10
    assert capsys.readouterr().out == ""  # the function did not run, no callback fired

    result = expensive_function(200)  # Falls back to expensive_function
    assert result == 40001
    key = expensive_function.cache_key(200)
    value = {"func": expensive_function.cache_name, "inputs": {"x": 200}, "output": 40001, "metadata": {}}
    assert capsys.readouterr().out.splitlines() == [
        "Computing for 200",
        f"Cache set: {key} = {value}",
        f"Memory usage after setting {key}",
    ]

    # nothing was stored: the same call asks the feeds again and runs again
    assert expensive_function(200) == 40001
    assert capsys.readouterr().out.splitlines()[0] == "Computing for 200"
    assert expensive_function(5) == 10
    assert capsys.readouterr().out == ""
    assert len(cache) == 0


# ---- callbacks ------------------------------------------------------------------------------------


def test_callback_receives_int_key_and_entry_dict():
    ev = Events()
    cache = CallbackCache(callbacks=[ev.callback("a")])

    @cache.memoize(exclude=["verbose"], annotation={"team": "x"})
    def area(w, h=2, verbose=False):
        return w * h

    assert area(3, verbose=True) == 6
    ((name, key, value),) = ev.log
    assert type(key) is int
    assert key == area.cache_key(3) == CacheEntry(area.cache_name, {"w": 3, "h": 2}).key
    assert value == {
        "func": area.cache_name,  # the name string, never the function
        "inputs": {"w": 3, "h": 2},  # defaults applied, excluded names removed
        "output": 6,
        "metadata": {"annotation": {"team": "x"}},
    }


def test_cache_level_exclude_removed_from_callback_and_feed_inputs():
    ev = Events()
    cache = CallbackCache(callbacks=[ev.callback("cb")], feeds=[ev.feed("fd")], exclude=["debug"])

    @cache.memoize
    def f(x, debug=False):
        return x

    f(1, debug=True)
    assert ev.log[0][2] == {"x": 1}  # the feed
    assert ev.log[1][2]["inputs"] == {"x": 1}  # the callback


def test_callbacks_run_in_order_on_every_set():
    ev = Events()
    cache = CallbackCache(callbacks=[ev.callback("first"), ev.callback("second"), ev.callback("third")])

    @cache.memoize
    def f(x):
        return x + 1

    f(1)
    f(1)  # nothing stored: runs and fires again
    assert [(name, value["output"]) for name, _, value in ev.log] == [
        ("first", 2), ("second", 2), ("third", 2), ("first", 2), ("second", 2), ("third", 2)
    ]


def test_each_callback_gets_its_own_copy():
    seen = []

    def mutating(key, value):
        value["output"] = "changed"
        value["inputs"]["x"] = "changed"

    def reading(key, value):
        seen.append(value)

    cache = CallbackCache(callbacks=[mutating, reading])
    cache.set("f", output=1, x=1)
    assert seen == [{"func": "f", "inputs": {"x": 1}, "output": 1, "metadata": {}}]


def test_manual_set_add_and_annotate_fire_callbacks():
    ev = Events()
    cache = CallbackCache(callbacks=[ev.callback("cb")])
    cache.set("f", output=25, x=5)
    cache.set("f", {"x": 6}, output=36, metadata={"m": 1})
    cache.add(CacheEntry("g", {"y": 1}, "out"))
    cache.annotate("h", z=1, expected=7)
    assert [(v["func"], v["inputs"], v["output"]) for _, _, v in ev.log] == [
        ("f", {"x": 5}, 25),
        ("f", {"x": 6}, 36),
        ("g", {"y": 1}, "out"),
        ("h", {"z": 1}, 7),
    ]
    assert ev.log[1][2]["metadata"] == {"m": 1}
    assert ev.log[3][2]["expected"] == 7
    assert [k for _, k, _ in ev.log] == [
        CacheEntry("f", {"x": 5}).key, CacheEntry("f", {"x": 6}).key, CacheEntry("g", {"y": 1}).key, CacheEntry("h", {"z": 1}).key
    ]


def test_failing_callback_is_logged_and_skipped(caplog):
    ev = Events()

    def failing_callback(key, value):
        raise ValueError("Callback error!")

    cache = CallbackCache(callbacks=[failing_callback, ev.callback("working")])

    @cache.memoize
    def f(x):
        return x * 10

    with caplog.at_level(logging.ERROR, logger="oxicache"):
        assert f(1) == 10  # the call itself succeeds
    assert [(name, v["output"]) for name, _, v in ev.log] == [("working", 10)]
    records = [r for r in caplog.records if r.name == "oxicache.backends.callback"]
    assert len(records) == 1
    assert records[0].levelno == logging.ERROR
    assert "failing_callback" in records[0].getMessage()
    assert records[0].exc_info is not None and records[0].exc_info[0] is ValueError


# ---- feeds ----------------------------------------------------------------------------------------


def test_feeds_run_in_order_first_non_ellipsis_wins():
    ev = Events()
    cache = CallbackCache(
        callbacks=[ev.callback("cb")],
        feeds=[ev.feed("pass"), ev.feed("answer", lambda func, kw: kw["x"] * 100), ev.feed("never")],
    )
    runs = []

    @cache.memoize
    def f(x, y=0):
        runs.append(x)
        return -1

    assert f(2) == 200
    assert [entry[0] for entry in ev.log] == ["pass", "answer"]  # the later feed is not asked, no callback
    assert ev.log[0][2] == {"x": 2, "y": 0}  # feed(func, **inputs): defaults applied
    assert runs == []


def test_feed_none_is_a_value():
    runs = []
    cache = CallbackCache(feeds=[lambda func, **kw: None])

    @cache.memoize
    def f(x):
        runs.append(x)
        return "computed"

    assert f(1) is None
    assert runs == []
    assert cache.get("anything", x=1) is None


def test_no_feed_answers_runs_the_function():
    ev = Events()
    cache = CallbackCache(callbacks=[ev.callback("cb")], feeds=[ev.feed("a"), ev.feed("b")])

    @cache.memoize
    def f(x):
        return x

    assert f(3) == 3
    assert [e[0] for e in ev.log] == ["a", "b", "cb"]


@pytest.mark.parametrize("kind", ["sync", "async", "gen", "batch"])
def test_feed_receives_the_original_function_for_memoized_calls(kind):
    received = []

    def feed(func, **kwargs):
        received.append(func)
        return ...

    cache = CallbackCache(feeds=[feed])
    if kind == "sync":

        @cache.memoize
        def fibonacci(n):
            return n

        fibonacci(3)
    elif kind == "async":

        @cache.memoize
        async def fibonacci(n):
            return n

        asyncio.run(fibonacci(3))
    elif kind == "gen":

        @cache.memoize
        def fibonacci(n):
            yield n

        list(fibonacci(3))
    else:

        @cache.batch_memoize
        def fibonacci(n):
            return list(n)

        fibonacci([3])
    assert len(received) == 1
    # docs/backends/callback.md: the original, undecorated function (the guide's "original function"), so
    # a feed that calls it computes without going back through the cache
    assert received[0] is fibonacci.__wrapped__


def test_feed_gets_a_function_with_its_name_guide_3_6_2():
    table = [0, 1, 1, 2, 3, 5, 8, 13, 21, 34, 55]

    def custom_feed(func, **kwargs):
        if func.__name__ == "fibonacci" and kwargs["n"] <= 10:
            return table[kwargs["n"]]
        return ...

    cache = CallbackCache(feeds=[custom_feed])
    runs = []

    @cache.memoize
    def fibonacci(n):
        runs.append(n)
        return n if n < 2 else fibonacci(n - 1) + fibonacci(n - 2)

    assert fibonacci(10) == 55
    assert runs == []
    assert fibonacci(12) == 144  # 12 and 11 run; 10 and below come from the feed
    assert sorted(runs) == [11, 12]


def test_feed_receives_the_name_string_for_get():
    ev = Events()
    cache = CallbackCache(feeds=[ev.feed("fd", lambda func, kw: ("answer", func, kw))])
    assert cache.get("name", x=1) == ("answer", "name", {"x": 1})
    assert cache.get("name", {"x": 2}) == ("answer", "name", {"x": 2})
    entry = cache.retrieve("other", y=3)
    assert isinstance(entry, CacheEntry)
    assert (entry.func, entry.inputs, entry.output) == ("other", {"y": 3}, ("answer", "other", {"y": 3}))
    assert [(f, kw) for _, f, kw in ev.log] == [("name", {"x": 1}), ("name", {"x": 2}), ("other", {"y": 3})]
    assert all(type(f) is str for _, f, _ in ev.log)


def test_exists_and_contains_ask_the_feeds():
    cache = CallbackCache(feeds=[lambda func, **kw: "yes" if kw.get("x") == 1 else ...])
    assert cache.exists("f", x=1) is True
    assert cache.exists("f", x=2) is False
    assert CacheEntry("f", {"x": 1}) in cache
    assert CacheEntry("f", {"x": 2}) not in cache
    assert CacheEntry("f", {"x": 1}).key not in cache  # a bare key names nothing to feed
    assert cache[CacheEntry("f", {"x": 1}).key] is ...


def test_failing_feed_is_logged_and_the_next_feed_answers(caplog):
    def failing_feed(func, **kwargs):
        raise RuntimeError("Feed error!")

    def working_feed(func, **kwargs):
        return "from working feed"

    cache = CallbackCache(feeds=[failing_feed, working_feed])

    @cache.memoize
    def f(x):
        return "computed"

    with caplog.at_level(logging.ERROR, logger="oxicache"):
        assert f(1) == "from working feed"
        assert cache.get("g", x=1) == "from working feed"
    records = [r for r in caplog.records if r.name == "oxicache.backends.callback"]
    assert len(records) == 2
    assert all("failing_feed" in r.getMessage() for r in records)
    assert all(r.exc_info is not None and r.exc_info[0] is RuntimeError for r in records)


def test_all_feeds_failing_falls_back_to_the_function(caplog):
    ev = Events()

    def broken(func, **kwargs):
        raise KeyError("nope")

    cache = CallbackCache(callbacks=[ev.callback("cb")], feeds=[broken, broken])

    @cache.memoize
    def f(x):
        return x + 1

    with caplog.at_level(logging.ERROR, logger="oxicache"):
        assert f(1) == 2
    assert len([r for r in caplog.records if r.name == "oxicache.backends.callback"]) == 2
    assert [v["output"] for _, _, v in ev.log] == [2]


def test_async_and_batch_functions_use_feeds_and_callbacks():
    ev = Events()
    cache = CallbackCache(callbacks=[ev.callback("cb")], feeds=[ev.feed("fd", lambda func, kw: "fed" if kw.get("x") == 1 or kw.get("items") == [1] else ...)])

    @cache.memoize
    async def af(x):
        return x * 2

    @cache.batch_memoize
    def bf(items):
        return [i * 3 for i in items]

    assert asyncio.run(af(1)) == "fed"
    assert asyncio.run(af(2)) == 4
    assert bf([1, 2, 1]) == ["fed", 6, "fed"]
    callbacks = [(v["inputs"], v["output"]) for name, _, v in ev.log if name == "cb"]
    assert callbacks == [({"x": 2}, 4), ({"items": [2]}, 6)]


# ---- construction checks --------------------------------------------------------------------------


def test_callback_taking_one_argument_is_refused():
    def one_arg_callback(key):
        pass

    with pytest.raises(TypeError, match="one_arg_callback"):
        CallbackCache(callbacks=[one_arg_callback])


def test_callback_needing_three_arguments_is_refused():
    def three_args(key, value, extra):
        pass

    with pytest.raises(TypeError, match="three_args"):
        CallbackCache(callbacks=[lambda k, v: None, three_args])


def test_feed_taking_no_arguments_is_refused():
    def no_arg_feed():
        return ...

    def kwargs_only_feed(**kwargs):
        return ...

    with pytest.raises(TypeError, match="no_arg_feed"):
        CallbackCache(feeds=[no_arg_feed])
    with pytest.raises(TypeError, match="kwargs_only_feed"):
        CallbackCache(feeds=[kwargs_only_feed])


@pytest.mark.parametrize("where", ["callbacks", "feeds"])
def test_non_callable_is_refused(where):
    with pytest.raises(TypeError, match="42"):
        CallbackCache(**{where: [42]})
    with pytest.raises(TypeError, match="'not a function'"):
        CallbackCache(**{where: ["not a function"]})


@pytest.mark.parametrize("where", ["callbacks", "feeds"])
def test_single_function_instead_of_a_list_is_refused_naming_it(where):
    def lonely_function(key, value=None, **kwargs):
        return ...

    with pytest.raises(TypeError) as info:
        CallbackCache(**{where: lonely_function})
    assert "list" in str(info.value)
    assert "lonely_function" in str(info.value)  # docs/backends/callback.md: "raise TypeError naming it"


@pytest.mark.parametrize("where", ["callbacks", "feeds"])
def test_a_string_instead_of_a_list_is_refused(where):
    with pytest.raises(TypeError):
        CallbackCache(**{where: "log"})


def test_accepted_signatures():
    class Counter:
        def __init__(self):
            self.n = 0

        def __call__(self, key, value):
            self.n += 1

        def method_feed(self, func, **kwargs):
            return ...

    counter = Counter()
    cache = CallbackCache(
        callbacks=[counter, lambda *args: None, lambda key, value, extra=1: None],
        feeds=[counter.method_feed, lambda *args, **kw: ..., lambda func, x=0: ..., lambda f, /, **kw: ...],
    )
    cache.set("f", output=1, x=1)
    assert counter.n == 1
    assert cache.get("f", x=1) is ...


def test_one_shot_generator_of_callbacks_keeps_working():
    ev = Events()
    cache = CallbackCache(
        callbacks=(ev.callback(name) for name in ("a", "b")),
        feeds=(ev.feed(name) for name in ("fa", "fb")),
    )
    for x in range(3):
        cache.set("f", output=x, x=x)
        cache.get("f", x=x)
    assert [e[0] for e in ev.log] == ["a", "b", "fa", "fb"] * 3


# ---- storage-less API -----------------------------------------------------------------------------


def test_nothing_is_stored_and_removal_does_not_raise():
    ev = Events()
    cache = CallbackCache(callbacks=[ev.callback("cb")])

    @cache.memoize
    def f(x):
        return x

    f(1)
    cache.set("g", output=1, y=1)
    assert len(cache) == 0
    assert list(cache) == []
    assert cache.remove("g", y=1) is False
    assert cache.remove(CacheEntry("g", {"y": 1})) is False
    assert cache.unset("g", y=1) is False
    del cache[CacheEntry("g", {"y": 1}).key]
    cache.clear()
    assert cache.pop() is None
    assert cache.popall() == []
    f.cache_clear()
    assert f.cache_info().currsize == 0
    assert len(ev.log) == 2


def test_stats_count_feed_answers_as_hits():
    cache = CallbackCache(callbacks=[lambda k, v: None], feeds=[lambda func, **kw: kw["x"] if kw["x"] % 2 else ...])

    @cache.memoize
    def f(x):
        return -x

    for x in (1, 2, 3, 2):
        f(x)
    info = f.cache_info()
    assert (info.hits, info.misses, info.sets, info.currsize) == (2, 2, 2, 0)
    cache.get("g", x=5)  # answered
    cache.get("g", x=6)  # not answered
    stats = cache.stats()
    assert (stats["hits"], stats["misses"], stats["sets"], stats["size"]) == (3, 3, 2, 0)


def test_stats_count_errors():
    cache = CallbackCache()

    @cache.memoize
    def f(x):
        raise ValueError("x")

    with pytest.raises(ValueError):
        f(1)
    assert f.cache_info().errors == 1
    assert cache.stats()["errors"] == 1


def test_repr_counts_callbacks_and_feeds():
    cache = CallbackCache(callbacks=[lambda k, v: None], feeds=[])
    assert repr(cache) == "CallbackCache(callbacks=1, feeds=0)"
