"""InMemCache's native store: LRU bound, TTL, exact statistics across threads, releasing values, GC,
re-entrant __del__, and integer-key access."""

from __future__ import annotations

import dataclasses
import gc
import subprocess
import sys
import textwrap
import threading
import weakref

import pytest
from threads import run_in_threads

from oxicache import CacheEntry, InMemCache


class Value:
    """A weak-referenceable stored object."""

    def __init__(self, tag=None):
        self.tag = tag


def live_inputs(cache):
    return [e.inputs["x"] for e in cache]


def advance(cache, seconds):
    cache._native_store._advance_clock(seconds)


# ---- construction ---------------------------------------------------------------------------------


def test_constructor_validation():
    assert InMemCache().max_size is None
    assert InMemCache(max_size=5).max_size == 5
    for bad in (-1, 1.5, True, "3"):
        with pytest.raises(ValueError):
            InMemCache(max_size=bad)
    with pytest.raises(TypeError):
        InMemCache(size_limit=3)
    with pytest.raises(TypeError):
        InMemCache(["x"], 3)
    for bad in (0, -1, "soon", float("inf")):
        with pytest.raises(ValueError):
            InMemCache(ttl=bad)


# ---- LRU ------------------------------------------------------------------------------------------


def test_lru_evicts_least_recently_used():
    cache = InMemCache(max_size=3)
    for x in "abc":
        cache.set("f", output=x, x=x)
    assert live_inputs(cache) == ["a", "b", "c"]  # least recently used first
    cache.set("f", output="d", x="d")
    assert live_inputs(cache) == ["b", "c", "d"]
    assert cache.get("f", x="a") is ...
    assert cache.stats()["evictions"] == 1


def test_get_protects_an_entry():
    cache = InMemCache(max_size=3)
    for x in "abc":
        cache.set("f", output=x, x=x)
    assert cache.get("f", x="a") == "a"
    cache.set("f", output="d", x="d")
    assert live_inputs(cache) == ["c", "a", "d"]
    assert cache.retrieve("f", x="c").output == "c"
    cache.set("f", output="e", x="e")
    assert sorted(live_inputs(cache)) == ["c", "d", "e"]


def test_memoized_hit_and_overwrite_protect_an_entry():
    cache = InMemCache(max_size=3)

    @cache.memoize
    def f(x):
        return x

    for x in "abc":
        f(x)
    f("a")  # hit
    cache.set(f.cache_name, output="B", x="b")  # overwrite refreshes too
    f("d")  # evicts c
    assert sorted(e.inputs["x"] for e in cache) == ["a", "b", "d"]
    assert f.cache_info().currsize == 3


def test_inspection_does_not_protect_an_entry():
    cache = InMemCache(max_size=2)
    cache.set("f", output=1, x=1)
    cache.set("f", output=2, x=2)
    key = CacheEntry("f", {"x": 1}).key
    assert cache.exists("f", x=1)
    assert key in cache
    assert cache[key].output == 1
    list(cache)
    cache.set("f", output=3, x=3)
    assert cache.get("f", x=1) is ...
    assert cache.get("f", x=2) == 2


def test_pop_returns_least_recently_used():
    cache = InMemCache()
    for x in range(3):
        cache.set("f", output=x, x=x)
    cache.get("f", x=0)
    assert cache.pop().inputs == {"x": 1}
    assert cache.pop().inputs == {"x": 2}
    assert cache.pop().inputs == {"x": 0}
    assert cache.pop() is None


def test_evictions_counted_exactly():
    cache = InMemCache(max_size=10)

    @cache.memoize
    def f(x):
        return x

    for x in range(25):
        f(x)
    s = cache.stats()
    assert (s["sets"], s["evictions"], s["size"], s["max_size"], s["misses"], s["hits"]) == (25, 15, 10, 10, 25, 0)
    assert len(cache) == 10
    assert f.cache_info().currsize == 10
    assert sorted(e.inputs["x"] for e in cache) == list(range(15, 25))


def test_documented_stats_example():
    cache = InMemCache(max_size=2)

    @cache.memoize
    def double(x):
        return 2 * x

    for x in (1, 2, 1, 3):
        double(x)
    assert cache.stats() == {"hits": 1, "misses": 3, "sets": 3, "evictions": 1, "expirations": 0, "errors": 0, "size": 2, "max_size": 2, "backend_errors": 0}
    assert tuple(double.cache_info()) == (1, 3, 2, 2)


def test_stats_keep_running_across_clear():
    cache = InMemCache()

    @cache.memoize
    def f(x):
        return x

    f(1), f(1), f(2)
    cache.clear()
    f(1)
    f.cache_clear()
    s = cache.stats()
    assert (s["hits"], s["misses"], s["sets"], s["size"]) == (1, 3, 3, 0)


def test_max_size_zero_stores_nothing():
    cache = InMemCache(max_size=0)
    calls = []

    @cache.memoize
    def f(x):
        calls.append(x)
        return x

    assert f(1) == 1
    assert f(1) == 1
    assert calls == [1, 1]
    cache.set("g", output=1, x=1)
    assert cache.get("g", x=1) is ...
    assert len(cache) == 0
    assert list(cache) == []
    s = cache.stats()
    assert (s["sets"], s["evictions"], s["size"]) == (3, 3, 0)


# ---- TTL ------------------------------------------------------------------------------------------


def test_cache_level_ttl():
    cache = InMemCache(ttl=10)
    cache.set("f", output=1, x=1)
    advance(cache, 5)
    assert cache.get("f", x=1) == 1
    advance(cache, 6)
    assert cache.get("f", x=1) is ...
    s = cache.stats()
    assert (s["hits"], s["misses"], s["expirations"], s["size"]) == (1, 1, 1, 0)


def test_per_set_ttl_overrides_cache_ttl():
    cache = InMemCache(ttl=10)
    cache.set("f", output=1, x=1, ttl="1h")
    cache.set("f", {"x": 2}, output=2, ttl=3)
    cache.set(CacheEntry("f", {"x": 3}, 3), ttl=3)
    cache.add(CacheEntry("f", {"x": 4}, 4), ttl=3)
    cache.set("f", output=5, x=5)  # cache default
    advance(cache, 4)
    assert [cache.get("f", x=x) for x in range(1, 6)] == [1, ..., ..., ..., 5]
    advance(cache, 7)
    assert [cache.get("f", x=x) for x in (1, 5)] == [1, ...]


def test_per_entry_annotation_ttl():
    cache = InMemCache()
    cache.set("f", output=1, x=1, metadata={"annotation": {"ttl": "5s"}})
    cache.set("f", output=2, x=2, metadata={"annotation": {"ttl": "5s"}}, ttl="1h")  # explicit ttl wins
    cache.set("f", output=3, x=3)
    advance(cache, 6)
    assert [cache.get("f", x=x) for x in (1, 2, 3)] == [..., 2, 3]


def test_bad_annotation_ttl_raises():
    cache = InMemCache()
    with pytest.raises(ValueError):
        cache.set("f", output=1, x=1, metadata={"annotation": {"ttl": "soon"}})
    assert len(cache) == 0


def test_storing_again_restarts_the_ttl():
    cache = InMemCache(ttl=10)
    cache.set("f", output=1, x=1)
    advance(cache, 8)
    cache.set("f", output=2, x=1)
    advance(cache, 8)
    assert cache.get("f", x=1) == 2


def test_expired_entries_are_invisible():
    cache = InMemCache()
    cache.set("f", output=1, x=1, ttl=5)
    cache.set("f", output=2, x=2)
    key = CacheEntry("f", {"x": 1}).key
    assert key in cache  # builds the integer-key index while the entry is live
    advance(cache, 6)
    assert cache.exists("f", x=1) is False
    assert key not in cache
    assert cache[key] is ...
    assert live_inputs(cache) == [2]
    assert len(cache) == 1
    assert cache.get("f", x=1) is ...
    assert cache.retrieve("f", x=1) is ...
    assert cache.stats()["size"] == 1


def test_expired_entries_do_not_count_in_len_before_a_sweep():
    cache = InMemCache()
    for x in range(5):
        cache.set("f", output=x, x=x, ttl=5)
    cache.set("f", output=9, x=9)
    assert len(cache) == 6
    advance(cache, 6)
    assert len(cache) == 1
    assert cache.stats()["expirations"] == 5


def test_expire_returns_count():
    cache = InMemCache()
    for x in range(3):
        cache.set("f", output=x, x=x, ttl=5)
    cache.set("f", output=10, x=10, ttl=50)
    cache.set("f", output=20, x=20)
    assert cache.expire() == 0
    advance(cache, 6)
    assert cache.expire() == 3
    assert cache.expire() == 0
    assert cache.stats()["expirations"] == 3
    assert len(cache) == 2
    advance(cache, 50)
    assert cache.expire() == 1
    assert live_inputs(cache) == [20]


def test_expired_entries_do_not_evict_live_ones():
    cache = InMemCache(max_size=3)
    cache.set("f", output="old", x="old", ttl=5)
    cache.set("f", output="a", x="a")
    cache.set("f", output="b", x="b")
    advance(cache, 6)
    cache.set("f", output="c", x="c")  # room comes from the expired entry
    assert sorted(live_inputs(cache)) == ["a", "b", "c"]
    s = cache.stats()
    assert (s["evictions"], s["expirations"], s["size"]) == (0, 1, 3)
    cache.set("f", output="d", x="d")  # now a live entry has to go
    assert sorted(live_inputs(cache)) == ["b", "c", "d"]
    assert cache.stats()["evictions"] == 1


def test_memoized_ttl_counts_expiration():
    cache = InMemCache()

    @cache.memoize(ttl=1)
    def f(x):
        return Value(x)

    first = f(1)
    advance(cache, 2)
    second = f(1)
    assert second is not first
    s = cache.stats()
    assert (s["misses"], s["hits"], s["expirations"], s["sets"]) == (2, 0, 1, 2)
    assert f.cache_info() == (0, 2, None, 1)


# ---- threads --------------------------------------------------------------------------------------


def test_stats_exact_under_threads():
    cache = InMemCache()
    n_threads, n_calls, n_keys = 8, 2000, 50
    results: list[list[tuple[int, int]]] = [[] for _ in range(n_threads)]
    errors: list[BaseException] = []

    @cache.memoize
    def f(k):
        return k * 7 + 1

    barrier = threading.Barrier(n_threads)

    def work(t):
        try:
            barrier.wait()
            for i in range(n_calls):
                k = (i * 13 + t) % n_keys
                results[t].append((k, f(k)))
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    run_in_threads(work, [(t,) for t in range(n_threads)], switch_interval=1e-5)
    assert not errors
    total = n_threads * n_calls
    assert all(v == k * 7 + 1 for r in results for k, v in r)
    assert sum(len(r) for r in results) == total
    s = cache.stats()
    info = f.cache_info()
    assert s["hits"] + s["misses"] == total
    assert info.hits + info.misses == total
    assert (info.hits, info.misses) == (s["hits"], s["misses"])
    # concurrent misses of one key may or may not each compute (no single-flight promise here)
    assert n_keys <= s["sets"] <= s["misses"]
    assert s["size"] == n_keys == info.currsize
    assert {e.inputs["k"]: e.output for e in cache} == {k: k * 7 + 1 for k in range(n_keys)}


def test_manual_operations_under_threads_with_a_bound():
    cache = InMemCache(max_size=20)
    n_threads, n_ops = 8, 1500
    gets = [0] * n_threads
    errors: list[BaseException] = []
    barrier = threading.Barrier(n_threads)

    def work(t):
        try:
            barrier.wait()
            for i in range(n_ops):
                k = (i * 7 + t) % 40
                op = i % 4
                if op == 0:
                    cache.set("f", output=("v", k), k=k)
                elif op == 3 and i % 8 == 3:
                    cache.remove("f", k=k)
                else:
                    v = cache.get("f", k=k)
                    gets[t] += 1
                    assert v is ... or v == ("v", k), (k, v)
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    run_in_threads(work, [(t,) for t in range(n_threads)], switch_interval=1e-5)
    assert not errors, errors[0]
    s = cache.stats()
    assert s["hits"] + s["misses"] == sum(gets)
    assert s["sets"] == n_threads * (n_ops // 4 + (1 if n_ops % 4 else 0))
    assert len(cache) <= 20
    assert s["size"] == len(cache) == len(list(cache))
    for e in cache:
        assert e.output == ("v", e.inputs["k"])
        assert cache[e.key] == e


# ---- releasing values -----------------------------------------------------------------------------


def _stored_ref(cache, x=1, **kw):
    value = Value(x)
    cache.set("f", output=value, x=x, **kw)
    return weakref.ref(value)


def _dead(ref):
    gc.collect()
    return ref() is None


def test_value_released_after_remove():
    cache = InMemCache()
    ref = _stored_ref(cache)
    assert not _dead(ref)
    cache.remove("f", x=1)
    assert _dead(ref)


def test_value_released_after_del_by_key():
    cache = InMemCache()
    ref = _stored_ref(cache)
    del cache[CacheEntry("f", {"x": 1}).key]
    assert _dead(ref)


def test_value_released_after_overwrite():
    cache = InMemCache()
    ref = _stored_ref(cache)
    cache.set("f", output="new", x=1)
    assert _dead(ref)


def test_value_released_after_eviction():
    cache = InMemCache(max_size=1)
    ref = _stored_ref(cache, 1)
    cache.set("f", output=2, x=2)
    assert _dead(ref)


def test_value_released_after_clear_and_close():
    cache = InMemCache()
    ref = _stored_ref(cache)
    cache.clear()
    assert _dead(ref)
    ref = _stored_ref(cache)
    cache.close()
    assert _dead(ref)


def test_value_released_after_expiry():
    cache = InMemCache()
    ref = _stored_ref(cache, ttl=1)
    advance(cache, 2)
    assert cache.expire() == 1
    assert _dead(ref)


def test_value_released_after_cache_clear_and_popall():
    cache = InMemCache()

    @cache.memoize
    def f(x):
        return Value(x)

    ref = weakref.ref(f(1))
    assert not _dead(ref)
    f.cache_clear()
    assert _dead(ref)
    ref = weakref.ref(f(1))
    popped = cache.popall()
    assert len(popped) == 1
    del popped
    assert _dead(ref)


def test_value_released_when_cache_is_dropped():
    cache = InMemCache()
    ref = _stored_ref(cache)
    del cache
    assert _dead(ref)


def test_arguments_are_not_kept_alive_by_builtin_inputs():
    cache = InMemCache()
    arg = [1, 2, 3]

    @cache.memoize
    def f(x):
        return sum(x)

    f(arg)
    # the inputs were stored as key bytes; a rebuilt list comes back, not the caller's object
    (entry,) = list(cache)
    assert entry.inputs == {"x": [1, 2, 3]}
    assert entry.inputs["x"] is not arg


# ---- __del__ calling back into the cache ----------------------------------------------------------

_REENTRANT_SCRIPT = textwrap.dedent(
    """
    import gc, sys
    from oxicache import InMemCache

    finalized = []

    class Reentrant:
        def __init__(self, cache, tag):
            self.cache, self.tag = cache, tag
        def __del__(self):
            finalized.append(self.tag)
            self.cache.get("f", x="probe")
            self.cache.set("g", output=self.tag, x=self.tag)
            len(self.cache)
            self.cache.stats()

    def step(name):
        print(name, flush=True)

    cache = InMemCache(max_size=2)
    step("evict")
    cache.set("f", output=Reentrant(cache, "a"), x="a")
    cache.set("f", output=1, x="b")
    cache.set("f", output=1, x="c")
    cache.set("f", output=1, x="d")
    step("overwrite")
    cache = InMemCache()
    cache.set("f", output=Reentrant(cache, "o"), x=1)
    cache.set("f", output=2, x=1)
    step("remove")
    cache.set("f", output=Reentrant(cache, "r"), x=2)
    cache.remove("f", x=2)
    step("clear")
    for i in range(5):
        cache.set("f", output=Reentrant(cache, i), x=i)
    cache.clear()
    step("expire")
    cache.set("f", output=Reentrant(cache, "e"), x=3, ttl=1)
    cache._native_store._advance_clock(2)
    cache.expire()
    step("expired-get")
    cache.set("f", output=Reentrant(cache, "eg"), x=4, ttl=1)
    cache._native_store._advance_clock(2)
    cache.get("f", x=4)
    step("memoized-evict")
    bounded = InMemCache(max_size=1)
    @bounded.memoize
    def make(x):
        return Reentrant(bounded, x)
    for i in range(5):
        make(i)
    step("cache_clear")
    make.cache_clear()
    step("gc")
    cache = InMemCache()
    cache.set("f", output=Reentrant(cache, "gc"), x=1)
    del cache
    gc.collect()
    step(f"finalized={len(finalized)}")
    step("ok")
    """
)


def test_del_calling_back_into_the_cache_does_not_deadlock():
    try:
        proc = subprocess.run([sys.executable, "-c", _REENTRANT_SCRIPT], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired as err:
        out = err.stdout.decode() if isinstance(err.stdout, bytes) else (err.stdout or "")
        pytest.fail(f"deadlock: the child hung after these steps: {out.split()}")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[-2:] == ["finalized=16", "ok"], proc.stdout  # every __del__ ran
    assert "Exception ignored" not in proc.stderr, proc.stderr


# ---- garbage collection ---------------------------------------------------------------------------


def test_cycle_through_a_memoized_result_is_collected():
    def build():
        cache = InMemCache()

        class Node:
            pass

        @cache.memoize
        def make(x):
            node = Node()
            node.cache = cache  # the result references the cache that stores it
            node.make = make
            return node

        result = make(1)
        return weakref.ref(result), weakref.ref(cache), weakref.ref(make)

    refs = build()
    gc.collect()
    assert [r() for r in refs] == [None, None, None]


def test_cycle_through_a_manual_entry_is_collected():
    def build():
        cache = InMemCache()
        value = Value()
        value.cache = cache
        cache.set("f", output=value, x=1)
        cache.annotate("f", x=1, expected=value, metadata={"cache": cache})
        return weakref.ref(value), weakref.ref(cache)

    refs = build()
    gc.collect()
    assert [r() for r in refs] == [None, None]


def test_cycle_through_kept_inputs_is_collected():
    def build():
        cache = InMemCache()

        class Keyed:
            def __init__(self):
                self.cache = cache

            def __cache_key__(self):
                return "keyed"

        @cache.memoize
        def f(obj):
            return 1

        obj = Keyed()
        f(obj)  # a non-builtin argument: the entry keeps the inputs dict
        return weakref.ref(obj), weakref.ref(cache)

    refs = build()
    gc.collect()
    assert [r() for r in refs] == [None, None]


# ---- integer keys ---------------------------------------------------------------------------------


def test_int_key_access_after_many_inserts():
    cache = InMemCache()

    @cache.memoize
    def f(x):
        return x * 3

    for x in range(2000):
        f(x)
    entries = list(cache)
    assert len(entries) == 2000
    for e in entries:
        assert cache[e.key] == e
        assert e.key in cache
        assert str(e.key) in cache
    # stores made after the index exists are found too
    for x in range(2000, 2500):
        f(x)
    cache.set("manual", output="m", x=1)
    for e in cache:
        assert cache[e.key] == e
    assert cache[CacheEntry("manual", {"x": 1}).key].output == "m"
    assert cache[f.cache_key(2499)].output == 7497


def test_int_key_access_after_removals():
    cache = InMemCache()
    for x in range(3000):
        cache.set("f", output=x, x=x)
    keys = {x: CacheEntry("f", {"x": x}).key for x in range(3000)}
    assert all(keys[x] in cache for x in range(0, 3000, 97))  # builds the index
    for x in range(0, 3000, 2):
        if x % 4 == 0:
            cache.remove("f", x=x)
        else:
            del cache[keys[x]]
    for x in range(3000):
        if x % 2 == 0:
            assert keys[x] not in cache
            assert cache[keys[x]] is ...
        else:
            assert cache[keys[x]].output == x
    # re-insert some removed keys and many new ones (the index outgrows its stale rows)
    for x in range(0, 3000, 4):
        cache.set("f", output=-x, x=x)
    for x in range(3000, 6000):
        cache.set("f", output=x, x=x)
    for x in range(1, 3000, 4):
        cache.remove("f", x=x)
    for e in cache:
        assert cache[e.key] == e
    for x in range(3000):
        expected = -x if x % 4 == 0 else (x if x % 4 == 3 else ...)
        got = cache[keys[x]]
        assert (got if got is ... else got.output) == expected, x
    assert len(cache) == len(list(cache))


def test_int_key_access_after_clear_and_eviction():
    cache = InMemCache(max_size=100)
    for x in range(100):
        cache.set("f", output=x, x=x)
    first = CacheEntry("f", {"x": 0}).key
    assert first in cache
    for x in range(100, 250):
        cache.set("f", output=x, x=x)
    assert first not in cache
    assert all(cache[CacheEntry("f", {"x": x}).key].output == x for x in range(150, 250))
    cache.clear()
    assert CacheEntry("f", {"x": 200}).key not in cache
    cache.set("f", output="again", x=0)
    assert cache[first].output == "again"
    del cache[first]
    assert len(cache) == 0


# ---- inputs rebuilt from key bytes ----------------------------------------------------------------


def _same(a, b):
    assert type(a) is type(b), (a, b)
    if isinstance(a, float):
        assert repr(a) == repr(b)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _same(x, y)
    elif isinstance(a, dict):
        assert a == b
        for k in a:
            (kb,) = [k2 for k2 in b if k2 == k and type(k2) is type(k)]
            _same(a[k], b[kb])
    else:
        assert a == b


def test_inputs_rebuilt_with_their_types():
    cache = InMemCache()
    inputs = {
        "s": "\ud800x",
        "ba": bytearray(b"\x00\xff"),
        "b": b"",
        "c": complex(1.5, -0.0),
        "d": {1: {2: (3,)}, "1": None, (1, 2): frozenset({(1,), (2,)}), 2.5: "float key", None: "none key"},
        "neg": -(10**40),
        "z": -0.0,
        "e": ...,
        "set": {(1, "a"), (2, "b")},
        "edges": [2**63, -(2**63), 2**63 - 1, -1, 0, 255, -256],
        "t": (True, False, None),
    }
    cache.set("f", inputs, output=1)
    back = cache.retrieve("f", inputs).inputs
    assert set(back) == set(inputs)
    for k in inputs:
        _same(inputs[k], back[k])
    (entry,) = list(cache)
    assert entry.key == CacheEntry("f", inputs).key
    assert cache[entry.key].output == 1


@dataclasses.dataclass(frozen=True)
class P:
    """Module level: the value codec stores only instances of classes their module can name (issue 11)."""

    x: int


@dataclasses.dataclass(frozen=True)
class Point:
    x: int


def test_int_key_access_with_kept_inputs():
    cache = InMemCache()

    @cache.memoize
    def g(p, scale=2):
        return p.x * scale

    g(P(1))
    g(P(2), scale=3)
    for e in cache:
        assert isinstance(e.inputs["p"], P)
        assert e.key == CacheEntry(e.func, e.inputs).key
        assert cache[e.key] == e
    assert cache[g.cache_key(P(2), 3)].output == 6


def test_annotate_counts_as_a_lookup():
    cache = InMemCache()
    cache.set("f", output=1, x=1)
    cache.annotate("f", x=1)
    cache.annotate("f", x=2, expected=2)
    s = cache.stats()
    assert (s["hits"], s["misses"], s["sets"]) == (1, 1, 3)


def test_an_argument_the_codec_cannot_store_is_kept_as_its_key_bytes():
    """InMemCache keeps no instance alive (R13): a `__cache_key__` argument is kept as its KeyBytes, as the
    persistent backends store it, while a class and a codec-storable value stay objects; the entry still
    recomputes to its key, and the manual API still finds it. A codec-storable value is kept as a copy taken
    at the call (issue 11: an entry never aliases a caller's argument)."""
    import weakref

    from oxicache import KeyBytes
    from oxicache.keys import canonical_bytes

    class Model:
        def __cache_key__(self):
            return "model-v1"

    cache = InMemCache()

    @cache.memoize
    def score(model, point, kind):
        return point.x * 2

    model, point = Model(), Point(3)
    assert score(model, point, Point) == 6
    (entry,) = list(cache)
    assert isinstance(entry.inputs["model"], KeyBytes)
    assert entry.inputs["model"].canonical == canonical_bytes(model)
    assert entry.inputs["point"] == point and type(entry.inputs["point"]) is Point
    assert entry.inputs["kind"] is Point
    assert entry.key == score.cache_key(model, point, Point)
    assert cache.get(score, model=model, point=point, kind=Point) == 6
    ref = weakref.ref(model)
    del model
    assert ref() is None


def test_decorating_local_functions_in_a_loop_does_not_grow_memory():
    """Each decoration of a local function gets its own identity (`#n`) on InMemCache; it and its entries
    are freed with the function (issue 11: ~32 MB per 200k decorate/call/clear cycles before). Measured as
    the process's resident size, in a fresh interpreter."""
    import os
    import subprocess
    import sys
    import textwrap

    if not os.path.exists("/proc/self/statm"):
        pytest.skip("reads the resident size from /proc (Linux)")
    child = textwrap.dedent(
        """
        import gc, resource, sys
        from oxicache import InMemCache
        cache = InMemCache()

        def cycle(i):
            @cache.memoize
            def local(x):
                return [x] * 4
            local(i)
            local.cache_clear()
            local(i + 1)  # one entry left behind when the function goes

        def rss_kib():
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * resource.getpagesize() // 1024

        for i in range(20_000):
            cycle(i)
        gc.collect()
        before = rss_kib()
        for i in range(100_000):
            cycle(i)
        gc.collect()
        print(rss_kib() - before, len(cache))
        """
    )
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    growth_kib, left = map(int, out.stdout.split())
    assert left == 0  # every function's entries went with it
    assert growth_kib < 4096, f"RSS grew {growth_kib} KiB over 100,000 cycles"
