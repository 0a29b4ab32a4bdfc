"""Decorator and cache options on every engine (guide 5.3, 5.5; docs/memoize.md "Options" and "Per-call
controls"): exclude, annotation, ttl, version, cache_if, bypass()/refresh(), and the errors for bad
values. Engines: InMemCache (native memoizer), NoCache (pass-through) and a dict-backed custom backend
(the Python engine over the five primitives)."""

from __future__ import annotations

import asyncio
import functools
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import backends

import oxicache
from oxicache import InMemCache, NoCache
from dict_backend import DictBackend, FakeClock

ENGINES = {"inmem": InMemCache, "none": NoCache, "dict": DictBackend}
KINDS = ["sync", "async", "gen", "asyncgen"]


@pytest.fixture(params=list(ENGINES))
def cache(request):
    return ENGINES[request.param]()


@pytest.fixture(params=["inmem", "dict", *backends.PERSISTENT])
def storing(request):
    if request.param in backends.PERSISTENT:
        return backends.make(request.param)
    return ENGINES[request.param]()


@pytest.fixture(params=list(ENGINES))
def engine(request):
    """The backend class: for tests that construct caches with options."""
    return ENGINES[request.param]


def stores(cache) -> bool:
    return not isinstance(cache, NoCache)


def make_fn(cache, kind, body, **options):
    """``cache.memoize(**options)`` over ``body`` turned into a function of ``kind`` with ``body``'s
    signature (for generator kinds, ``body`` returns the list of items to yield). Returns
    ``(memoized, call)`` where ``call`` runs a call to completion and returns its result (a list for
    generator kinds)."""
    if kind == "sync":
        fn = cache.memoize(**options)(body)
        return fn, fn
    if kind == "async":

        @functools.wraps(body)
        async def abody(*args, **kwargs):
            await asyncio.sleep(0)
            return body(*args, **kwargs)

        fn = cache.memoize(**options)(abody)
        return fn, lambda *a, **k: asyncio.run(fn(*a, **k))
    if kind == "gen":

        @functools.wraps(body)
        def gbody(*args, **kwargs):
            yield from body(*args, **kwargs)

        fn = cache.memoize(**options)(gbody)
        return fn, lambda *a, **k: list(fn(*a, **k))

    @functools.wraps(body)
    async def agbody(*args, **kwargs):
        for item in body(*args, **kwargs):
            await asyncio.sleep(0)
            yield item

    fn = cache.memoize(**options)(agbody)

    async def collect(*a, **k):
        return [item async for item in fn(*a, **k)]

    return fn, lambda *a, **k: asyncio.run(collect(*a, **k))


# ---- exclude --------------------------------------------------------------------------------------


@pytest.mark.parametrize("level", ["decorator", "cache", "both"])
def test_exclude_positional_or_keyword(engine, level):
    cache = engine(["debug"] if level in ("cache", "both") else None)
    calls = []
    options = {"exclude": ["debug"]} if level in ("decorator", "both") else {}

    @cache.memoize(**options)
    def compute_with_debug(x, debug=False):
        calls.append((x, debug))
        return x * x

    assert compute_with_debug(5, True) == 25  # positional
    assert compute_with_debug(5, debug=False) == 25  # keyword
    assert compute_with_debug(5) == 25  # default
    assert compute_with_debug(x=5, debug=[1]) == 25  # keyword, an unhashable value
    if stores(cache):
        assert calls == [(5, True)]  # the function still receives debug
        assert [e.inputs for e in cache] == [{"x": 5}]
        assert compute_with_debug.cache_inputs(5, True) == {"x": 5}
        assert compute_with_debug.cache_key(5, True) == compute_with_debug.cache_key(5, debug="other")
        assert cache.get(compute_with_debug, x=5, debug="anything") == 25
    else:
        assert len(calls) == 4
    compute_with_debug(6, debug=True)
    assert calls[-1] == (6, True)  # x is still part of the key


@pytest.mark.parametrize("kind", KINDS)
def test_exclude_on_every_kind_of_function(storing, kind):
    runs = []

    def body(n, verbose=False):
        runs.append((n, verbose))
        return [n, n + 1]

    fn, call = make_fn(storing, kind, body, exclude=["verbose"])
    assert call(1, True) == [1, 2]
    assert call(1, verbose=False) == [1, 2]
    assert call(1) == [1, 2]
    assert runs == [(1, True)]
    assert [e.inputs for e in storing] == [{"n": 1}]


def test_decorator_and_cache_exclude_add_up(engine):
    cache = engine(["trace"])
    calls = []

    @cache.memoize(exclude=["debug"])
    def f(x, debug=False, trace=None):
        calls.append(x)
        return x

    f(1, True, "t1")
    f(1, False, "t2")
    f(1, debug=True, trace="t3")
    assert len(calls) == (1 if stores(cache) else 3)
    assert f.cache_inputs(1, True, "t") == {"x": 1}


def test_exclude_of_a_parameter_changes_the_key_only_for_that_function(storing):
    @storing.memoize(name="f", exclude=["debug"])
    def f(x, debug=False):
        return ("f", x)

    @storing.memoize(name="g")
    def g(x, debug=False):
        return ("g", x, debug)

    f(1, True)
    g(1, True)
    assert sorted((e.func, tuple(sorted(e.inputs))) for e in storing) == [
        ("f", ("x",)),
        ("g", ("debug", "x")),
    ]


@pytest.mark.parametrize("decorator", ["memoize", "batch_memoize"])
def test_exclude_naming_a_non_parameter_raises(cache, decorator):
    def compute(items, debug=False):
        return list(items)

    with pytest.raises(ValueError) as info:
        getattr(cache, decorator)(exclude=["debgu"])(compute)
    msg = str(info.value)
    assert "debgu" in msg
    assert "compute" in msg
    assert "debug" in msg  # the actual parameters are listed

    with pytest.raises(ValueError, match="nope"):
        getattr(cache, decorator)(exclude=["debug", "nope"])(compute)


def test_exclude_naming_a_non_parameter_raises_for_coroutines_and_generators(cache):
    async def a(x):
        return x

    def g(x):
        yield x

    with pytest.raises(ValueError, match="nope"):
        cache.memoize(exclude=["nope"])(a)
    with pytest.raises(ValueError, match="nope"):
        cache.memoize(exclude=["nope"])(g)


def test_cache_level_exclude_naming_a_non_parameter_is_fine(engine):
    cache = engine(["debug"])  # cache-wide: applies to the functions that have it

    @cache.memoize
    def f(x):
        return x + 1

    assert f(1) == 2
    assert f.cache_inputs(1) == {"x": 1}


# ---- annotation -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_annotation_stored_in_metadata_for_every_kind(storing, kind):
    fn, call = make_fn(storing, kind, lambda user_id: [user_id], annotation={"purpose": "user_profile", "team": "backend"})
    call(1)
    (entry,) = list(storing)
    assert entry.metadata == {"annotation": {"purpose": "user_profile", "team": "backend"}}
    assert entry.metadata["annotation"]["team"] == "backend"


def test_annotation_filtering_and_removal_guide_5_5(cache):
    calls = []

    @cache.memoize(annotation={"purpose": "user_profile", "team": "backend"}, exclude=["session"])
    def get_user_profile(user_id: int, session=None) -> dict:
        calls.append(("profile", user_id))
        return {"id": user_id}

    @cache.memoize(annotation={"priority": "high", "ttl": "1h"})
    def get_realtime_data(sensor_id: str) -> dict:
        calls.append(("sensor", sensor_id))
        return {"sensor": sensor_id}

    @cache.batch_memoize(annotation={"purpose": "user_profile", "team": "ml"})
    def embed(texts):
        calls.append(("embed", tuple(texts)))
        return [len(t) for t in texts]

    for uid in (1, 2, 3):
        get_user_profile(uid, session=object())
    get_realtime_data("a")
    embed(["x", "yy"])
    cache.set("plain", output=0, x=0)

    backend_entries = [entry for entry in cache if entry.metadata.get("annotation", {}).get("team") == "backend"]
    if not stores(cache):
        assert backend_entries == []
        for entry in cache:  # iterating an empty cache: the guide's loop does nothing
            cache.remove(entry.func, entry.inputs)
        return
    assert sorted(e.inputs["user_id"] for e in backend_entries) == [1, 2, 3]
    assert {e.func for e in backend_entries} == {get_user_profile.cache_name}
    high = [e for e in cache if e.metadata.get("annotation", {}).get("priority") == "high"]
    assert [e.inputs for e in high] == [{"sensor_id": "a"}]

    # Clear specific annotated cache entries (guide 5.5): removes the profiles and the embed items
    for entry in cache:
        if entry.metadata.get("annotation", {}).get("purpose") == "user_profile":
            assert cache.remove(entry.func, entry.inputs) is True
    assert sorted(e.func for e in cache) == sorted([get_realtime_data.cache_name, "plain"])

    n = len(calls)
    get_user_profile(1)  # removed: recomputed
    embed(["yy"])  # removed: recomputed
    get_realtime_data("a")  # kept: a hit
    assert calls[n:] == [("profile", 1), ("embed", ("yy",))]


def test_annotation_is_not_part_of_the_key(storing):
    @storing.memoize(name="shared", annotation={"team": "a"})
    def first(x):
        return "first"

    @storing.memoize(name="shared", annotation={"team": "b"})
    def second(x):
        return "second"

    assert first(1) == "first"
    assert second(1) == "first"
    assert [e.metadata for e in storing] == [{"annotation": {"team": "a"}}]


# ---- ttl ------------------------------------------------------------------------------------------

TTL_STRINGS = [("30s", 30.0), ("5m", 300.0), ("1h", 3600.0), ("2d", 172800.0)]
LEVELS = ["cache", "decorator", "annotation"]


def ttl_setup(make_cache, level, ttl):
    """A cache and the options that set ``ttl`` at ``level``."""
    cache = make_cache(ttl) if level == "cache" else make_cache(None)
    options = {"ttl": ttl} if level == "decorator" else {"annotation": {"ttl": ttl}} if level == "annotation" else {}
    return cache, options


@pytest.mark.parametrize("level", LEVELS)
def test_inmem_short_ttl_expires_in_real_time(level):
    cache, options = ttl_setup(lambda ttl: InMemCache(ttl=ttl), level, 0.3)
    calls = []

    @cache.memoize(**options)
    def f(x):
        calls.append(x)
        return len(calls)

    @cache.memoize
    def forever(x):
        calls.append(-x)
        return x

    assert f(1) == 1
    forever(1)
    assert f(1) == 1
    time.sleep(0.4)
    assert f(1) == 3  # expired: recomputed
    assert f(1) == 3
    if level != "cache":
        forever(1)  # no ttl of its own and none on the cache: still cached
        assert calls == [1, -1, 1]


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize(("ttl", "seconds"), TTL_STRINGS)
def test_inmem_ttl_strings(level, ttl, seconds):
    cache, options = ttl_setup(lambda t: InMemCache(ttl=t), level, ttl)
    calls = []

    @cache.memoize(**options)
    def f(x):
        calls.append(x)
        return len(calls)

    assert f(1) == 1
    cache._native_store._advance_clock(seconds * 0.9)
    assert f(1) == 1
    cache._native_store._advance_clock(seconds * 0.2)
    assert f(1) == 2
    assert cache.exists(f, x=1)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize(("ttl", "seconds"), [*TTL_STRINGS, (45, 45.0), (0.5, 0.5)])
def test_dict_backend_gets_the_ttl_and_expires(level, ttl, seconds):
    clock = FakeClock()
    cache, options = ttl_setup(lambda t: DictBackend(ttl=t, clock=clock), level, ttl)
    calls = []

    @cache.memoize(**options)
    def f(x):
        calls.append(x)
        return len(calls)

    assert f(1) == 1
    ((_key, passed),) = cache.set_calls
    assert passed == seconds
    assert isinstance(passed, float)
    clock.advance(seconds * 0.9)
    assert f(1) == 1
    clock.advance(seconds * 0.2)
    assert f(1) == 2
    assert [ttl for _, ttl in cache.set_calls] == [seconds, seconds]


@pytest.mark.parametrize("kind", KINDS)
def test_dict_backend_ttl_for_every_kind(kind):
    cache = DictBackend()
    fn, call = make_fn(cache, kind, lambda x: [x], ttl="5m")
    call(1)
    assert [ttl for _, ttl in cache.set_calls] == [300.0]


def test_no_ttl_anywhere_passes_none():
    cache = DictBackend()

    @cache.memoize(annotation={"team": "x"})
    def f(x):
        return x

    f(1)
    assert [ttl for _, ttl in cache.set_calls] == [None]


def test_ttl_precedence_on_dict_backend():
    cache = DictBackend(ttl="1h")

    @cache.memoize
    def default(x):
        return x

    @cache.memoize(annotation={"ttl": "5m"})
    def annotated(x):
        return x

    @cache.memoize(ttl="2d", annotation={"ttl": "5m"})
    def decorated(x):
        return x

    @cache.memoize(ttl=10)
    def shorter(x):
        return x

    for fn in (default, annotated, decorated, shorter):
        fn(1)
    assert [ttl for _, ttl in cache.set_calls] == [3600.0, 300.0, 172800.0, 10.0]


def test_decorator_ttl_longer_than_cache_ttl_on_inmem():
    cache = InMemCache(ttl="1m")
    calls = []

    @cache.memoize(ttl="1h")
    def f(x):
        calls.append(x)
        return x

    @cache.memoize(annotation={"ttl": "1h"})
    def g(x):
        calls.append(-x)
        return x

    f(1)
    g(1)
    cache._native_store._advance_clock(120)  # past the cache's minute, within the functions' hour
    f(1)
    g(1)
    assert calls == [1, -1]


BAD_DURATIONS = ["5 parsecs", "1y", ""]


@pytest.mark.parametrize("bad", BAD_DURATIONS)
@pytest.mark.parametrize("where", ["ttl", "annotation"])
@pytest.mark.parametrize("decorator", ["memoize", "batch_memoize"])
def test_unknown_duration_raises_at_decoration(cache, bad, where, decorator):
    calls = []

    def f(items):
        calls.append(items)
        return list(items)

    options = {"ttl": bad} if where == "ttl" else {"annotation": {"ttl": bad}}
    with pytest.raises(ValueError) as info:
        getattr(cache, decorator)(**options)(f)
    assert repr(bad) in str(info.value)
    assert calls == []


@pytest.mark.parametrize("bad", BAD_DURATIONS)
def test_unknown_duration_at_cache_level_raises(engine, bad):
    with pytest.raises(ValueError) as info:
        engine(ttl=bad)
    assert repr(bad) in str(info.value)


# ---- version --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_new_version_never_reads_old_entries(storing, kind):
    runs = []

    def v1(x):
        runs.append(("v1", x))
        return ["v1", x]

    def v2(x):
        runs.append(("v2", x))
        return ["v2", x]

    old, call_old = make_fn(storing, kind, v1, name="model", version=1)
    new, call_new = make_fn(storing, kind, v2, name="model", version=2)
    assert call_old(1) == ["v1", 1]
    assert call_new(1) == ["v2", 1]
    assert call_old(1) == ["v1", 1]
    assert call_new(1) == ["v2", 1]
    assert runs == [("v1", 1), ("v2", 1)]
    assert sorted(e.func for e in storing) == ["model@1", "model@2"]
    assert storing.get("model", x=1) is ...  # an unversioned lookup finds neither
    assert storing.get("model@2", x=1) == ["v2", 1]
    assert storing.get(new, x=1) == ["v2", 1]


def test_version_in_the_default_identity(cache):
    source = (
        "@cache.memoize(version='2024-06')\n"
        "def f(x):\n"
        "    return ('new', x)\n"
        "@cache.memoize\n"
        "def g(x):\n"
        "    return ('old', x)\n"
    )
    ns = {"__name__": "pkg.models", "cache": cache}
    exec(source, ns)
    f = ns["f"]
    assert f.cache_name == "pkg.models.f@2024-06"
    assert ns["g"].cache_name == "pkg.models.g"
    assert f(1) == ("new", 1)
    if stores(cache):
        assert [e.func for e in cache] == ["pkg.models.f@2024-06"]
        assert cache.get("pkg.models.f", x=1) is ...
        assert cache.get("pkg.models.f@2024-06", x=1) == ("new", 1)
    unversioned = cache.memoize(name="pkg.models.f")(lambda x: x)
    assert f.cache_key(1) != unversioned.cache_key(1)


def test_versioned_and_unversioned_do_not_share(storing):
    @storing.memoize(name="fn")
    def plain(x):
        return "plain"

    @storing.memoize(name="fn", version=0)
    def zero(x):
        return "zero"

    assert zero.cache_name == "fn@0"  # 0 is a version, not "no version"
    assert plain(1) == "plain"
    assert zero(1) == "zero"
    assert len(storing) == 2


@pytest.mark.parametrize("bad", [True, False, 1.5, "", b"1", [1], {"v": 1}])
@pytest.mark.parametrize("decorator", ["memoize", "batch_memoize"])
def test_bad_version_raises_type_error(cache, bad, decorator):
    def f(items):
        return list(items)

    with pytest.raises(TypeError) as info:
        getattr(cache, decorator)(version=bad)(f)
    assert "version" in str(info.value)
    assert repr(bad) in str(info.value)


# ---- cache_if -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_cache_if_rejected_returned_not_stored_accepted_stored(cache, kind):
    seen = []
    runs = []

    def keep(result):
        seen.append(result)
        return len(result) > 0

    def search(query):
        runs.append(query)
        return [] if query == "nothing" else [query, query]

    fn, call = make_fn(cache, kind, search, cache_if=keep)
    assert call("nothing") == []
    assert call("nothing") == []
    assert call("cats") == ["cats", "cats"]
    assert call("cats") == ["cats", "cats"]
    if stores(cache):
        assert runs == ["nothing", "nothing", "cats"]
        assert seen == [[], [], ["cats", "cats"]]  # generators: cache_if sees the list of items
        assert cache.exists(fn, query="cats")
        assert not cache.exists(fn, query="nothing")
        assert len(cache) == 1
        info = fn.cache_info()
        assert (info.hits, info.misses, info.sets) == (1, 3, 1)
    else:
        assert runs == ["nothing", "nothing", "cats", "cats"]


def test_cache_if_result_truthiness(storing):
    @storing.memoize(cache_if=len)  # a builtin; any truthy result stores
    def f(x):
        return "x" * x

    f(0)
    f(2)
    assert [e.output for e in storing] == ["xx"]


def test_cache_if_none_and_falsy_results(storing):
    runs = []

    @storing.memoize(cache_if=lambda r: r is not None)
    def f(x):
        runs.append(x)
        return None if x < 0 else x * 0  # 0 is falsy but accepted

    assert f(-1) is None
    assert f(-1) is None
    assert f(3) == 0
    assert f(3) == 0
    assert runs == [-1, -1, 3]


def test_cache_if_does_not_apply_to_manual_set(storing):
    @storing.memoize(cache_if=lambda r: False)
    def f(x):
        return x

    f(1)
    assert len(storing) == 0
    storing.set(f, output=5, x=1)
    assert f(1) == 5


def test_cache_if_with_refresh_keeps_old_entry_when_rejected(storing):
    value = ["good"]

    @storing.memoize(cache_if=lambda r: r != "bad")
    def f(x):
        return value[0]

    assert f(1) == "good"
    value[0] = "bad"
    with oxicache.refresh():
        assert f(1) == "bad"  # returned, not stored
    assert f(1) == "good"


@pytest.mark.parametrize("bad", [True, "yes", 1, [len]])
@pytest.mark.parametrize("decorator", ["memoize", "batch_memoize"])
def test_non_callable_cache_if_raises_type_error(cache, bad, decorator):
    def f(items):
        return list(items)

    with pytest.raises(TypeError, match="cache_if"):
        getattr(cache, decorator)(cache_if=bad)(f)


# ---- non-callables --------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "type_name"), [(42, "int"), ("f", "str"), ([len], "list")])
@pytest.mark.parametrize("decorator", ["memoize", "batch_memoize"])
def test_decorating_a_non_callable_raises_type_error_naming_the_type(cache, value, type_name, decorator):
    with pytest.raises(TypeError) as info:
        getattr(cache, decorator)(value)
    assert type_name in str(info.value)
    with pytest.raises(TypeError, match=type_name):
        getattr(cache, decorator)(name="x")(value)


# ---- per-call controls: bypass() and refresh() ----------------------------------------------------


class Source:
    """A function body whose result is the current generation: shows whether a call recomputed."""

    def __init__(self):
        self.generation = 1
        self.runs = 0

    def __call__(self, x):
        self.runs += 1
        return [x, self.generation]


@pytest.mark.parametrize("kind", KINDS)
def test_bypass_runs_and_neither_reads_nor_writes(storing, kind):
    src = Source()
    fn, call = make_fn(storing, kind, lambda x: src(x))
    assert call(1) == [1, 1]
    src.generation = 2
    with oxicache.bypass():
        assert call(1) == [1, 2]  # not read
        assert call(2) == [2, 2]
        assert call(2) == [2, 2]  # and not written: runs again
    assert src.runs == 4
    assert call(1) == [1, 1]  # the old entry is untouched
    assert not storing.exists(fn, x=2)
    assert len(storing) == 1


@pytest.mark.parametrize("kind", KINDS)
def test_refresh_recomputes_and_overwrites(storing, kind):
    src = Source()
    fn, call = make_fn(storing, kind, lambda x: src(x))
    assert call(1) == [1, 1]
    src.generation = 2
    assert call(1) == [1, 1]
    with oxicache.refresh():
        assert call(1) == [1, 2]
        assert call(3) == [3, 2]
        assert call(1) == [1, 2]  # every call in the block recomputes
    assert src.runs == 4
    src.generation = 3
    assert call(1) == [1, 2]  # the refreshed value was stored
    assert call(3) == [3, 2]
    assert src.runs == 4
    assert len(storing) == 2


def test_controls_on_nocache_just_run():
    cache = NoCache()
    src = Source()
    f = cache.memoize(lambda x: src(x))
    with oxicache.bypass():
        assert f(1) == [1, 1]
    with oxicache.refresh():
        assert f(1) == [1, 1]
    assert src.runs == 2
    assert len(cache) == 0


def test_controls_restore_the_previous_mode(storing):
    src = Source()
    f = storing.memoize(lambda x: src(x))
    f(1)
    src.generation = 2
    with oxicache.refresh():
        with oxicache.bypass():
            src.generation = 3
            assert f(1) == [1, 3]  # innermost wins: not stored
        assert f(1) == [1, 3]  # back to refresh: recomputed and stored
        src.generation = 4
    assert f(1) == [1, 3]  # back to normal: read
    assert src.runs == 3


def test_a_control_object_cannot_be_entered_twice():
    control = oxicache.bypass()
    with control:
        with pytest.raises(RuntimeError, match="already entered"):
            control.__enter__()
    with control:  # after exiting, it can be entered again
        pass


def test_bypass_and_refresh_count_as_misses(storing):
    @storing.memoize
    def f(x):
        return x

    f(1)
    f(1)
    with oxicache.bypass():
        f(1)
        f(2)
    with oxicache.refresh():
        f(1)
    info = f.cache_info()
    assert (info.hits, info.misses, info.sets) == (1, 4, 2)
    stats = storing.stats()
    assert (stats["hits"], stats["misses"], stats["sets"]) == (1, 4, 2)


@pytest.mark.parametrize("mode", ["bypass", "refresh"])
def test_control_is_local_to_its_thread(storing, mode):
    src = Source()
    f = storing.memoize(lambda x: src(x))
    f(1)
    src.generation = 2
    control = getattr(oxicache, mode)
    inside = threading.Barrier(2, timeout=10)
    done = threading.Barrier(2, timeout=10)
    results = {}

    def controlled():
        with control():
            inside.wait()  # the other thread calls while this one is in the block
            results["controlled"] = f(1)
            done.wait()

    def plain():
        inside.wait()
        results["plain"] = f(1)
        done.wait()

    threads = [threading.Thread(target=controlled), threading.Thread(target=plain)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not any(t.is_alive() for t in threads)
    assert results["controlled"] == [1, 2]
    assert results["plain"] in ([1, 1], [1, 2])  # a hit: the old value, or the refreshed one if stored first
    if mode == "bypass":
        assert results["plain"] == [1, 1]
    assert src.runs == 2  # the plain call never ran the function


def test_bypass_in_one_thread_does_not_make_another_skip_the_cache(storing):
    """The plain thread's call happens strictly while the other is inside bypass() and before it calls."""
    runs = []

    @storing.memoize
    def f(x):
        runs.append((threading.current_thread().name, x))
        return x

    f(1)
    entered, checked = threading.Event(), threading.Event()
    out = {}

    def controlled():
        with oxicache.bypass():
            entered.set()
            assert checked.wait(10)
            out["c"] = f(1)

    def plain():
        assert entered.wait(10)
        out["p"] = f(1)
        f(2)  # a plain miss stores
        checked.set()

    tc = threading.Thread(target=controlled, name="controlled")
    tp = threading.Thread(target=plain, name="plain")
    tc.start()
    tp.start()
    tc.join(10)
    tp.join(10)
    assert runs == [("MainThread", 1), ("plain", 2), ("controlled", 1)]
    assert storing.exists(f, x=2)


@pytest.mark.parametrize("mode", ["bypass", "refresh"])
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_control_is_local_to_its_asyncio_task(storing, mode, kind):
    src = Source()
    fn, _ = make_fn(storing, kind, lambda x: src(x))

    async def call(x):
        return await fn(x) if kind == "async" else fn(x)

    async def main():
        await call(1)
        src.generation = 2
        entered, released = asyncio.Event(), asyncio.Event()

        async def controlled():
            with getattr(oxicache, mode)():
                entered.set()
                await released.wait()
                return await call(1)

        async def plain():
            await entered.wait()
            result = await call(1)  # the other task is inside its block right now
            released.set()
            return result

        return await asyncio.gather(controlled(), plain())

    controlled_result, plain_result = asyncio.run(main())
    assert controlled_result == [1, 2]
    assert plain_result == [1, 1]
    assert src.runs == 2


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_task_created_inside_the_block_inherits_the_control(storing, kind):
    src = Source()
    fn, _ = make_fn(storing, kind, lambda x: src(x))

    async def call(x):
        await asyncio.sleep(0)  # runs after the block has been left
        return await fn(x) if kind == "async" else fn(x)

    async def main():
        await call(1)
        src.generation = 2
        with oxicache.refresh():
            inherited = asyncio.create_task(call(1))
        outside = asyncio.create_task(call(1))
        return await inherited, await outside

    inherited, outside = asyncio.run(main())
    assert inherited == [1, 2]  # refreshed, although it ran after the block
    assert outside in ([1, 1], [1, 2])
    assert storing.get(fn, x=1) == [1, 2]


def test_task_created_inside_bypass_does_not_store(storing):
    @storing.memoize
    async def f(x):
        return x

    async def main():
        with oxicache.bypass():
            task = asyncio.create_task(f(1))
        return await task

    assert asyncio.run(main()) == 1
    assert len(storing) == 0


def test_refresh_as_a_decorator(storing):
    src = Source()
    f = storing.memoize(lambda x: src(x))

    @oxicache.refresh()
    def reload(x):
        return f(x)

    assert f(1) == [1, 1]
    src.generation = 2
    assert reload(1) == [1, 2]
    assert f(1) == [1, 2]
    src.generation = 3
    assert reload(1) == [1, 3]  # the decorator works for every call
    assert f(1) == [1, 3]
    assert src.runs == 3


def test_refresh_as_a_decorator_of_a_coroutine_function(storing):
    """docs/memoize.md says both controls "also work as decorators": on an ``async def`` the control
    must be active while the coroutine runs, not only while the coroutine object is created."""
    src = Source()
    f = storing.memoize(lambda x: src(x))

    @storing.memoize
    async def af(x):
        return src(x)

    @oxicache.refresh()
    async def reload(x):
        return f(x), await af(x)

    assert f(1) == [1, 1]
    assert asyncio.run(af(1)) == [1, 1]
    src.generation = 2
    assert asyncio.run(reload(1)) == ([1, 2], [1, 2])
    assert f(1) == [1, 2]


def test_refresh_keeps_the_old_entry_when_a_generator_is_not_consumed(storing):
    src = Source()
    fn, call = make_fn(storing, "gen", lambda n: [src(n)[1]] * n)
    assert call(3) == [1, 1, 1]
    src.generation = 2
    with oxicache.refresh():
        gen = fn(3)
        assert next(gen) == 2
        gen.close()  # a partial run stores nothing, and does not drop what was stored
    assert call(3) == [1, 1, 1]
    with oxicache.refresh():
        assert call(3) == [2, 2, 2]
    assert call(3) == [2, 2, 2]


def test_bypass_as_a_decorator_in_several_threads(storing):
    src = Source()
    f = storing.memoize(lambda x: src(x))
    f(1)
    src.generation = 2
    barrier = threading.Barrier(4, timeout=10)
    results = []

    @oxicache.bypass()
    def fresh():
        barrier.wait()  # all four inside the decorated function at once: one control object, four entries
        results.append(f(1))

    threads = [threading.Thread(target=fresh) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == [[1, 2]] * 4
    assert f(1) == [1, 1]


def test_nested_recursion_under_refresh_recomputes_inner_calls(storing):
    calls = []

    @storing.memoize
    def fib(n):
        calls.append(n)
        return n if n < 2 else fib(n - 1) + fib(n - 2)

    assert fib(15) == 610
    assert sorted(calls) == list(range(16))
    calls.clear()
    assert fib(15) == 610
    assert calls == []
    with oxicache.refresh():
        assert fib(15) == 610
    # every call made inside the block recomputes, the nested ones included
    assert set(calls) == set(range(16))
    assert len(calls) > 16  # refresh never reads, so fib(n - 2) recomputes too
    calls.clear()
    assert fib(15) == 610
    assert calls == []


def test_nested_recursion_under_bypass_reads_and_writes_nothing(storing):
    calls = []

    @storing.memoize
    def fib(n):
        calls.append(n)
        return n if n < 2 else fib(n - 1) + fib(n - 2)

    fib(5)
    with oxicache.bypass():
        assert fib(10) == 55
    assert len(calls) == 6 + 177  # fib(10) unmemoized makes 177 calls
    assert sorted(e.inputs["n"] for e in storing) == list(range(6))


def test_first_control_in_a_fresh_process_applies_to_functions_memoized_before_it():
    """Controls cost nothing until first used in the process: the first one, entered after functions
    were memoized and called, in another thread, must still apply (and only there)."""
    script = textwrap.dedent(
        """
        import threading
        import oxicache
        from oxicache import InMemCache
        from dict_backend import DictBackend

        out = []
        for cache in (InMemCache(), DictBackend()):
            gen = [1]

            @cache.memoize
            def f(x):
                return gen[0]

            f(1)
            gen[0] = 2

            def controlled():
                with oxicache.bypass():
                    out.append(f(1))
                with oxicache.refresh():
                    out.append(f(2))

            t = threading.Thread(target=controlled)
            t.start()
            t.join()
            out.append(f(1))
        print(out)
        """
    )
    tests_dir = str(__import__("pathlib").Path(__file__).parent)
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=tests_dir, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[2, 2, 1, 2, 2, 1]"


@pytest.mark.parametrize("control", [oxicache.refresh, oxicache.bypass])
def test_controls_refuse_to_decorate_generator_functions(control):
    """A generator runs in its consumer's context between items, so a decorator could not scope the
    control to it: refused at decoration, with the `with` form as the fix."""

    def gen():
        yield 1

    async def agen():
        yield 1

    for fn in (gen, agen):
        with pytest.raises(TypeError, match=r"generator function .*wrap the iteration in `with oxicache\.(refresh|bypass)\(\):`"):
            control()(fn)
