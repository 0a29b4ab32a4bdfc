"""batch_memoize (guide 5.2, docs/memoize.md "Batches"): per-item keys, one call with only the missing
items, deduplication, input order, errors, controls and options; sync and async functions, on InMemCache
(native engine), NoCache and a dict-backed custom backend (the Python engine)."""

from __future__ import annotations

import asyncio
import functools
import inspect

import pytest

import backends

import oxicache
from oxicache import CacheEntry, InMemCache, NoCache
from dict_backend import DictBackend


class BlockingDictBackend(DictBackend):
    """The same backend declaring blocking I/O: async batches then do their cache I/O in a worker thread."""

    blocking_io = True


BACKENDS = {
    "inmem": InMemCache,
    "none": NoCache,
    "dict": DictBackend,
    "dict-blocking": BlockingDictBackend,
}


@pytest.fixture(params=list(BACKENDS))
def cache(request):
    return BACKENDS[request.param]()


@pytest.fixture(params=["inmem", "dict", "dict-blocking", *backends.PERSISTENT])
def storing(request):
    """Only backends that store: for behaviour that needs a second call to hit."""
    if request.param in backends.PERSISTENT:
        return backends.make(request.param)
    return BACKENDS[request.param]()


@pytest.fixture(params=["sync", "async"])
def kind(request):
    return request.param


def stores(cache) -> bool:
    return not isinstance(cache, NoCache)


def make_batch(cache, kind, body, **options):
    """``cache.batch_memoize(**options)`` over ``body`` as a plain function, or as a coroutine function
    with ``body``'s signature. Returns ``(memoized, call)``; ``call`` runs a call to completion."""
    if kind == "sync":
        fn = cache.batch_memoize(**options)(body)
        return fn, fn

    @functools.wraps(body)
    async def abody(*args, **kwargs):
        await asyncio.sleep(0)
        return body(*args, **kwargs)

    fn = cache.batch_memoize(**options)(abody)
    assert inspect.iscoroutinefunction(fn)

    def call(*args, **kwargs):
        return asyncio.run(fn(*args, **kwargs))

    return fn, call


class Recorder:
    """A batch function body that records each batch it receives and returns ``[f(item)]``."""

    def __init__(self, per_item=lambda item, mult: item * mult):
        self.batches: list[list] = []
        self.per_item = per_item

    def __call__(self, items, mult=1):
        self.batches.append(list(items))
        return [self.per_item(item, mult) for item in items]


def recorder_body(rec):
    def body(items, mult=1):
        return rec(items, mult)

    return body


# ---- keys -----------------------------------------------------------------------------------------


def test_each_item_is_keyed_as_a_one_item_call(cache, kind):
    rec = Recorder()
    f, call = make_batch(cache, kind, recorder_body(rec))
    assert call([1, 2, 3], mult=2) == [2, 4, 6]
    for x in (1, 2, 3):
        assert cache.exists(f, items=[x], mult=2) is stores(cache)
        assert cache.exists(f, items=[x], mult=3) is False  # the other arguments are part of each key
        assert cache.get(f, items=[x], mult=2) == (2 * x if stores(cache) else ...)
    assert cache.exists(f, items=[1, 2, 3], mult=2) is False  # no entry for the whole batch
    if stores(cache):
        assert sorted(e.inputs["items"][0] for e in cache) == [1, 2, 3]
        assert all(e.inputs == {"items": [e.inputs["items"][0]], "mult": 2} for e in cache)
        assert {e.key for e in cache} == {f.cache_key([x], mult=2) for x in (1, 2, 3)}
        assert {e.func for e in cache} == {f.cache_name}


def test_manually_set_item_entry_is_used(storing, kind):
    rec = Recorder()
    f, call = make_batch(storing, kind, recorder_body(rec))
    storing.set(f, output="manual", items=[7], mult=1)  # bound like f([7]): mult defaults to 1
    assert call([6, 7, 8]) == [6, "manual", 8]
    assert rec.batches == [[6, 8]]


def test_a_one_item_batch_and_the_same_item_in_a_larger_batch_share_the_entry(storing, kind):
    rec = Recorder()
    f, call = make_batch(storing, kind, recorder_body(rec))
    assert call([5]) == [5]
    assert call([4, 5, 6]) == [4, 5, 6]
    assert call((6,)) == [6]  # a tuple batch: the item is still keyed as f([6]), so it hits
    assert rec.batches == [[5], [4, 6]]
    assert len(storing) == 3


# ---- one call with only the missing items ---------------------------------------------------------


def test_runs_once_with_only_the_missing_items_in_order(cache, kind):
    rec = Recorder(lambda item, mult: f"out-{item}")
    f, call = make_batch(cache, kind, recorder_body(rec))
    assert call([2, 4]) == ["out-2", "out-4"]
    assert call([5, 4, 3, 2, 1]) == ["out-5", "out-4", "out-3", "out-2", "out-1"]
    if stores(cache):
        assert rec.batches == [[2, 4], [5, 3, 1]]
    else:
        assert rec.batches == [[2, 4], [5, 4, 3, 2, 1]]


def test_all_hits_do_not_call_the_function(storing, kind):
    rec = Recorder()
    f, call = make_batch(storing, kind, recorder_body(rec))
    call([1, 2, 3])
    assert call([3, 1, 2, 1]) == [3, 1, 2, 1]
    assert rec.batches == [[1, 2, 3]]


def test_results_mix_hits_and_misses_in_input_order(storing, kind):
    made = []

    def per_item(item, mult):
        made.append(item)
        return {"item": item, "run": len(made)}

    rec = Recorder(per_item)
    f, call = make_batch(storing, kind, recorder_body(rec))
    first = call(["b", "d"])
    second = call(["a", "b", "c", "d", "e"])
    assert [r["item"] for r in second] == ["a", "b", "c", "d", "e"]
    assert second[1] == first[0] and second[3] == first[1]  # the hits are the stored outputs
    assert [r["run"] for r in second] == [3, 1, 4, 2, 5]
    if isinstance(storing, InMemCache):
        assert second[1] is first[0]  # InMemCache returns the stored object itself


def test_duplicates_are_sent_once_and_every_position_gets_the_output(cache, kind):
    rec = Recorder(lambda item, mult: [item])  # a fresh list per output
    f, call = make_batch(cache, kind, recorder_body(rec))
    out = call([1, 2, 1, 3, 2, 1])
    assert out == [[1], [2], [1], [3], [2], [1]]
    assert rec.batches == [[1, 2, 3]]
    assert out[0] is out[2] is out[5]  # one output, given to each position
    assert out[1] is out[4]


def test_duplicates_are_found_by_key_not_by_hash(cache, kind):
    rec = Recorder(lambda item, mult: repr(item))
    f, call = make_batch(cache, kind, recorder_body(rec))
    # unhashable items that are equal share a key; 1, 1.0 and True are equal in Python but not as keys
    assert call([[1, 2], [1, 2], 1, 1.0, True, {"a": 1}, {"a": 1}]) == ["[1, 2]", "[1, 2]", "1", "1.0", "True", "{'a': 1}", "{'a': 1}"]
    assert rec.batches == [[[1, 2], 1, 1.0, True, {"a": 1}]]


def test_items_already_cached_and_duplicated(storing, kind):
    rec = Recorder()
    f, call = make_batch(storing, kind, recorder_body(rec))
    call([1])
    assert call([1, 2, 1, 2]) == [1, 2, 1, 2]
    assert rec.batches == [[1], [2]]


# ---- outputs --------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_outputs", [1, 3])
def test_wrong_number_of_outputs_raises_and_stores_nothing(cache, kind, n_outputs):
    def body(items):
        return ["x"] * n_outputs

    f, call = make_batch(cache, kind, body)
    with pytest.raises(ValueError) as info:
        call([1, 2])
    msg = str(info.value)
    assert f.cache_name in msg and "body" in msg
    assert f"{n_outputs} outputs for 2 inputs" in msg
    assert len(cache) == 0
    assert not cache.exists(f, items=[1]) and not cache.exists(f, items=[2])
    assert f.cache_info().sets == 0


def test_wrong_number_of_outputs_with_duplicates_counts_distinct_items(cache, kind):
    def body(items):
        return ["x"] * 3  # one per position, but the function only receives the 2 distinct items

    f, call = make_batch(cache, kind, body)
    with pytest.raises(ValueError, match="3 outputs for 2 inputs"):
        call([1, 2, 1])
    assert len(cache) == 0


@pytest.mark.parametrize("result", [None, 5, "ab", {"a": 1, "b": 2}], ids=["None", "int", "str", "dict"])
def test_non_list_result_raises_type_error_and_stores_nothing(cache, kind, result):
    def body(items):
        return result

    f, call = make_batch(cache, kind, body)
    with pytest.raises(TypeError) as info:
        call(["a", "b"])
    assert f.cache_name in str(info.value)
    assert len(cache) == 0


def test_tuple_result_is_accepted(cache, kind):
    def body(items):
        return tuple(i * 10 for i in items)

    f, call = make_batch(cache, kind, body)
    assert call([1, 2]) == [10, 20]
    assert cache.get(f, items=[2]) == (20 if stores(cache) else ...)


def test_numpy_array_result_is_accepted_row_per_item(storing, kind):
    np = pytest.importorskip("numpy")
    rec = Recorder()

    def body(items):
        rec(items)
        return np.array([[i, i * 2.0] for i in items])  # an embedding function's ndarray: one row per item

    f, call = make_batch(storing, kind, body)
    first = call([1, 2])
    assert [row.tolist() for row in first] == [[1.0, 2.0], [2.0, 4.0]]
    again = call([2, 3])
    assert [row.tolist() for row in again] == [[2.0, 4.0], [3.0, 6.0]]
    assert rec.batches == [[1, 2], [3]]  # item 2 was a hit
    assert isinstance(again[0], np.ndarray) and again[0].dtype == np.float64


def test_numpy_vector_result_gives_numpy_scalars(storing, kind):
    np = pytest.importorskip("numpy")
    f, call = make_batch(storing, kind, lambda items: np.array([float(i) for i in items]))
    assert call([1, 2]) == [1.0, 2.0]
    assert type(call([2])[0]) is np.float64  # a hit returns what the array's item was


@pytest.mark.parametrize("result", ["zero-d", "generator", "set"])
def test_result_without_length_and_positions_raises_type_error(cache, kind, result):
    np = pytest.importorskip("numpy")

    def body(items):
        return {"zero-d": lambda: np.array(1.0), "generator": lambda: (i for i in items),
                "set": lambda: set(items)}[result]()

    f, call = make_batch(cache, kind, body)
    with pytest.raises(TypeError) as info:
        call([1])
    assert f.cache_name in str(info.value) and "one output per item" in str(info.value)
    assert len(cache) == 0


def test_none_outputs_are_cached_per_item(cache, kind):
    rec = Recorder(lambda item, mult: None)
    f, call = make_batch(cache, kind, recorder_body(rec))
    assert call([1, 2]) == [None, None]
    assert call([1, 2, 3]) == [None, None, None]
    if stores(cache):
        assert rec.batches == [[1, 2], [3]]
        assert cache.get(f, items=[1]) is None  # None is a value, not a miss
        assert cache.exists(f, items=[2])
    else:
        assert rec.batches == [[1, 2], [1, 2, 3]]


def test_ellipsis_output_is_not_stored(storing, kind):
    """``...`` is "no output": an entry without output answers no call (issue 17), so it is computed again."""
    rec = Recorder(lambda item, mult: ...)
    f, call = make_batch(storing, kind, recorder_body(rec))
    assert call([1]) == [...]
    assert call([1]) == [...]
    assert rec.batches == [[1], [1]]


def test_empty_batch_returns_empty_list_without_calling(cache, kind):
    rec = Recorder()
    f, call = make_batch(cache, kind, recorder_body(rec))
    assert call([]) == []
    assert call(()) == []
    assert call(items=[], mult=3) == []
    assert rec.batches == []
    assert tuple(f.cache_info())[:2] == (0, 0)  # no lookups counted


# ---- decoration and arguments ---------------------------------------------------------------------


def test_generator_function_is_refused_at_decoration(cache):
    def gen_batch(items):
        yield from items

    with pytest.raises(ValueError, match="gen_batch"):
        cache.batch_memoize(gen_batch)
    with pytest.raises(ValueError, match="gen_batch"):
        cache.batch_memoize(name="named")(gen_batch)


def test_async_generator_function_is_refused_at_decoration(cache):
    async def agen_batch(items):
        for item in items:
            yield item

    with pytest.raises(ValueError, match="agen_batch"):
        cache.batch_memoize(agen_batch)
    with pytest.raises(ValueError, match="agen_batch"):
        cache.batch_memoize()(agen_batch)


def test_non_callable_is_refused(cache):
    with pytest.raises(TypeError, match="int"):
        cache.batch_memoize(42)


def test_batch_passed_by_keyword(cache, kind):
    rec = Recorder()
    f, call = make_batch(cache, kind, recorder_body(rec))
    assert call(items=[1, 2], mult=10) == [10, 20]
    assert call(mult=10, items=[2, 3]) == [20, 30]
    assert call([1, 3], 10) == [10, 30]  # positional spelling: the same per-item keys
    if stores(cache):
        assert rec.batches == [[1, 2], [3]]
        assert cache.exists(f, items=[3], mult=10)
    else:
        assert len(rec.batches) == 3


@pytest.mark.parametrize(
    "batch",
    [
        pytest.param(lambda: (x for x in [1, 2]), id="generator"),
        pytest.param(lambda: {1, 2}, id="set"),
        pytest.param(lambda: "ab", id="str"),
        pytest.param(lambda: b"ab", id="bytes"),
        pytest.param(lambda: 5, id="int"),
        pytest.param(lambda: {1: "a"}, id="dict"),
        pytest.param(lambda: iter([1, 2]), id="iterator"),
        pytest.param(lambda: None, id="None"),
    ],
)
def test_batch_that_is_not_a_list_or_tuple_raises_type_error_naming_the_parameter(cache, kind, batch):
    calls = []

    def body(texts, model="m"):
        calls.append(texts)
        return list(texts)

    f, call = make_batch(cache, kind, body)
    with pytest.raises(TypeError) as info:
        call(batch())
    msg = str(info.value)
    assert "'texts'" in msg  # the name of this function's batch parameter
    assert f.cache_name in msg
    with pytest.raises(TypeError, match="'texts'"):
        call(texts=batch(), model="n")
    assert calls == []
    assert len(cache) == 0


def test_arguments_not_matching_the_signature_raise_type_error(cache, kind):
    rec = Recorder()
    f, call = make_batch(cache, kind, recorder_body(rec))
    with pytest.raises(TypeError):
        call()
    with pytest.raises(TypeError):
        call([1], 2, 3)
    with pytest.raises(TypeError):
        call([1], nope=1)
    assert rec.batches == []


def test_batch_needs_a_positional_first_parameter(cache):
    def kw_only(*, items):
        return items

    def var_args(*items):
        return list(items)

    with pytest.raises(TypeError, match="kw_only"):
        cache.batch_memoize(kw_only)
    with pytest.raises(TypeError, match="var_args"):
        cache.batch_memoize(var_args)


def test_wrapper_keeps_name_and_signature(cache, kind):
    def embed(texts, model="small"):
        """Embed some texts."""
        return [len(t) for t in texts]

    f, _ = make_batch(cache, kind, embed)
    assert f.__name__ == "embed"
    assert f.__doc__ == "Embed some texts."
    assert inspect.signature(f) == inspect.signature(embed)
    assert callable(f.cache_info) and callable(f.cache_clear)


# ---- failures -------------------------------------------------------------------------------------


def test_function_raising_stores_nothing_and_counts_one_error(cache, kind):
    attempts = []

    def body(items):
        attempts.append(list(items))
        if len(attempts) == 1:
            raise RuntimeError("batch failed")
        return [i * 2 for i in items]

    f, call = make_batch(cache, kind, body)
    with pytest.raises(RuntimeError, match="batch failed"):
        call([1, 2, 3])
    assert len(cache) == 0
    assert not cache.exists(f, items=[1])
    info = f.cache_info()
    assert info.errors == 1  # one failed call, not one per item
    assert info.sets == 0
    assert cache.stats()["errors"] == 1
    assert call([1, 2, 3]) == [2, 4, 6]
    assert attempts == [[1, 2, 3], [1, 2, 3]]
    assert f.cache_info().errors == 1


def test_function_raising_after_some_items_were_cached(storing, kind):
    fail = [False]

    def body(items):
        if fail[0]:
            raise KeyError("down")
        return [i + 100 for i in items]

    f, call = make_batch(storing, kind, body)
    call([1])
    fail[0] = True
    with pytest.raises(KeyError):
        call([1, 2])
    assert storing.get(f, items=[1]) == 101  # the earlier entry is untouched
    assert not storing.exists(f, items=[2])
    assert len(storing) == 1


# ---- statistics -----------------------------------------------------------------------------------


def test_counts_one_hit_or_miss_per_item(cache, kind):
    rec = Recorder()
    f, call = make_batch(cache, kind, recorder_body(rec))
    call([1, 2])
    call([1, 2, 3, 3])
    info = f.cache_info()
    if stores(cache):
        assert (info.hits, info.misses, info.currsize, info.sets) == (2, 4, 3, 3)
        stats = cache.stats()
        assert (stats["hits"], stats["misses"], stats["sets"], stats["size"]) == (2, 4, 3, 3)
    else:
        assert (info.hits, info.misses, info.currsize) == (0, 6, 0)


def test_cache_clear_removes_this_functions_items(storing, kind):
    rec = Recorder()
    f, call = make_batch(storing, kind, recorder_body(rec))
    storing.set("other", output=1, x=1)
    call([1, 2])
    f.cache_clear()
    assert len(storing) == 1
    assert storing.get("other", x=1) == 1
    call([1, 2])
    assert rec.batches == [[1, 2], [1, 2]]


# ---- options --------------------------------------------------------------------------------------


def test_cache_if_is_applied_per_item(cache, kind):
    seen = []

    def keep(output):
        seen.append(output)
        return output is not None and output > 0

    def body(items):
        return [None if i == 0 else i for i in items]

    rec_calls = []

    def recorded(items):
        rec_calls.append(list(items))
        return body(items)

    f, call = make_batch(cache, kind, recorded, cache_if=keep)
    assert call([1, -1, 0, 2]) == [1, -1, None, 2]  # rejected outputs are still returned
    if stores(cache):
        assert sorted(seen, key=repr) == sorted([1, -1, None, 2], key=repr)
        assert cache.exists(f, items=[1]) and cache.exists(f, items=[2])
        assert not cache.exists(f, items=[-1]) and not cache.exists(f, items=[0])
        assert call([2, -1, 1, 0]) == [2, -1, 1, None]
        assert rec_calls == [[1, -1, 0, 2], [-1, 0]]
        assert f.cache_info().sets == 2
    else:
        assert len(cache) == 0


def test_version_separates_entries(storing, kind):
    rec1, rec2 = Recorder(lambda i, m: ("v1", i)), Recorder(lambda i, m: ("v2", i))
    f1, call1 = make_batch(storing, kind, recorder_body(rec1), name="embed", version=1)
    f2, call2 = make_batch(storing, kind, recorder_body(rec2), name="embed", version="2")
    assert (f1.cache_name, f2.cache_name) == ("embed@1", "embed@2")
    assert call1([1, 2]) == [("v1", 1), ("v1", 2)]
    assert call2([2, 3]) == [("v2", 2), ("v2", 3)]  # the v1 entry of 2 is not read
    assert rec2.batches == [[2, 3]]
    assert call1([2, 3]) == [("v1", 2), ("v1", 3)]
    assert rec1.batches == [[1, 2], [3]]
    assert sorted((e.func, e.inputs["items"][0]) for e in storing) == [
        ("embed@1", 1), ("embed@1", 2), ("embed@1", 3), ("embed@2", 2), ("embed@2", 3)
    ]
    assert storing.get("embed", items=[1], mult=1) is ...


def test_exclude_applies_to_every_item_key(cache, kind):
    calls = []

    def body(items, verbose=False):
        calls.append((list(items), verbose))
        return [i * 3 for i in items]

    f, call = make_batch(cache, kind, body, exclude=["verbose"])
    assert call([1, 2], verbose=True) == [3, 6]
    assert call([2, 1], False) == [6, 3]
    if stores(cache):
        assert calls == [([1, 2], True)]
        assert sorted(e.inputs["items"][0] for e in cache) == [1, 2]
        assert all(set(e.inputs) == {"items"} for e in cache)


def test_annotation_and_ttl_apply_per_item(kind):
    cache = DictBackend()
    rec = Recorder()
    f, call = make_batch(cache, kind, recorder_body(rec), annotation={"team": "ml", "ttl": "5m"})
    call([1, 2])
    assert len(cache.set_calls) == 2
    assert all(ttl == 300.0 for _, ttl in cache.set_calls)
    assert all(e.metadata == {"annotation": {"team": "ml", "ttl": "5m"}} for e in cache)


def test_ttl_expires_items_on_inmem(kind):
    cache = InMemCache()
    rec = Recorder()
    f, call = make_batch(cache, kind, recorder_body(rec), ttl="1h")
    call([1])
    cache._native_store._advance_clock(1800)
    call([1, 2])
    cache._native_store._advance_clock(1801)  # item 1 is past its hour; item 2 is not
    call([1, 2])
    assert rec.batches == [[1], [2], [1]]


# ---- per-call controls ----------------------------------------------------------------------------


def test_bypass_runs_every_item_and_stores_nothing(storing, kind):
    rec = Recorder(lambda item, mult: f"fresh-{item}")
    f, call = make_batch(storing, kind, recorder_body(rec))
    storing.set(f, output="old-1", items=[1], mult=1)
    with oxicache.bypass():
        assert call([1, 2, 1]) == ["fresh-1", "fresh-2", "fresh-1"]
    assert sorted(rec.batches[0]) == [1, 1, 2] or rec.batches[0] == [1, 2]
    assert len(rec.batches) == 1
    assert storing.get(f, items=[1]) == "old-1"  # not overwritten
    assert not storing.exists(f, items=[2])  # not written
    assert call([1, 2]) == ["old-1", "fresh-2"]  # outside the block: read again
    assert rec.batches[-1] == [2]


def test_refresh_recomputes_every_item_and_overwrites(storing, kind):
    generation = [1]
    rec = Recorder(lambda item, mult: (item, generation[0]))
    f, call = make_batch(storing, kind, recorder_body(rec))
    assert call([1, 2]) == [(1, 1), (2, 1)]
    generation[0] = 2
    assert call([1, 2]) == [(1, 1), (2, 1)]
    with oxicache.refresh():
        assert call([2, 3, 2]) == [(2, 2), (3, 2), (2, 2)]
    assert rec.batches == [[1, 2], [2, 3]]  # under refresh duplicates are still sent once
    assert call([1, 2, 3]) == [(1, 1), (2, 2), (3, 2)]
    assert len(rec.batches) == 2
    assert storing.get(f, items=[2]) == (2, 2)


def test_controls_count_misses(storing, kind):
    rec = Recorder()
    f, call = make_batch(storing, kind, recorder_body(rec))
    call([1, 2])
    with oxicache.bypass():
        call([1, 2])
    with oxicache.refresh():
        call([1])
    info = f.cache_info()
    assert (info.hits, info.misses) == (0, 5)
    assert info.sets == 3  # refresh stores, bypass does not


def test_batch_method_takes_the_batch_after_self():
    """On a method the batch is the parameter after ``self``; ``self`` is part of each item's key (here
    through ``__cache_key__``), so two instances with different keys do not share items."""
    cache = InMemCache()
    calls = []

    class Embedder:
        def __init__(self, model):
            self.model = model

        def __cache_key__(self):
            return self.model

        @cache.batch_memoize
        def embed(self, texts, scale=1):
            calls.append((self.model, list(texts)))
            return [len(t) * scale for t in texts]

    small, large = Embedder("small"), Embedder("large")
    assert small.embed(["a", "bb"]) == [1, 2]
    assert small.embed(["bb", "ccc"]) == [2, 3]
    assert small.embed(texts=["ccc", "a"]) == [3, 1]
    assert large.embed(["a"], scale=10) == [10]
    assert calls == [("small", ["a", "bb"]), ("small", ["ccc"]), ("large", ["a"])]
    assert Embedder.embed.cache_inputs(small, ["a"]) == {"scale": 1, "self": small, "texts": ["a"]}
