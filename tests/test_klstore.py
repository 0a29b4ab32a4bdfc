"""CacheKLStore (oxicache.klstore) on every storing backend of tests/backends.py.

Round trips keep types (dataclass, pydantic model, named tuple, dict), also through a second cache object
on the same storage for persistent backends and through a second process; len, iteration and clear are
scoped to one store (the reference implementation's act on the whole cache); ids of different types are
different ids; a stored object stands for its id wherever an id is taken (as in ahvn); absent ids,
objects without an id and values that are neither fail clearly.
"""

from __future__ import annotations

import dataclasses
import doctest
import subprocess
import sys
import textwrap
import uuid
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest

import oxicache
from oxicache import InMemCache
from backends import SPECS, STORING, is_persistent, make
from kl_objects import Doc, Fact, Row
from oxicache.klstore import CacheKLStore

TESTS = Path(__file__).resolve().parent


def reopen(cache):
    """A second cache object on the same storage as ``cache`` (as another process would open it)."""
    cls_name, args, kwargs = SPECS[id(cache)]
    return getattr(oxicache, cls_name)(*args, **kwargs, **KEEPS.get(cls_name, {}))


# A knowledge store refuses a cache that evicts: DiskCache is opened without its default eviction.
KEEPS = {"DiskCache": {"eviction_policy": "none"}}


def make_keeping(name):
    return make(name, **KEEPS.get({"disk": "DiskCache"}.get(name, ""), {}))


def objects():
    return [
        Fact(1, "water boils at 100 C", frozenset({"physics"})),
        Doc(id="d-1", title="Intro", sections=[("a", 1), ("b", 2)]),
        Row(7, 0.5),
        {"id": 9, "body": {"nested": (1, 2)}, "when": None},
    ]


@pytest.fixture(params=STORING)
def cache(request):
    c = make_keeping(request.param)
    yield c
    c.close()


def test_round_trip_keeps_types(cache):
    store = CacheKLStore(cache, name="kb")
    originals = objects()
    for obj in originals:
        assert store.store(obj) is None
    assert len(store) == len(originals)
    for obj in originals:
        kid = obj["id"] if isinstance(obj, dict) else obj.id
        back = store.retrieve(kid)
        assert back == obj
        assert type(back) is type(obj)
        assert store[kid] == obj
        assert store.exists(kid)
        assert kid in store
    assert sorted(map(repr, store)) == sorted(map(repr, originals))
    if id(cache) in SPECS:  # a persistent backend: read through a second cache object
        other = reopen(cache)
        try:
            again = CacheKLStore(other, name="kb")
            assert len(again) == len(originals)
            for obj in originals:
                kid = obj["id"] if isinstance(obj, dict) else obj.id
                back = again.retrieve(kid)
                assert back == obj
                assert type(back) is type(obj)
                assert back is not obj
        finally:
            other.close()


def test_two_stores_on_one_cache_do_not_see_each_other(cache):
    a = CacheKLStore(cache, name="a")
    b = CacheKLStore(cache, name="b")
    a.store(Fact(1, "from a"))
    a.store(Fact(2, "from a"))
    b.store(Fact(1, "from b"))
    assert a.retrieve(1).text == "from a"
    assert b.retrieve(1).text == "from b"
    assert not b.exists(2)
    assert b.get(2) is None
    assert (len(a), len(b)) == (2, 1)
    assert sorted(f.id for f in a) == [1, 2]
    assert [f.text for f in b] == ["from b"]
    assert sorted(a.ids()) == [1, 2]
    assert b.items() == [(1, Fact(1, "from b"))]
    assert a.remove(1) is True
    assert b.retrieve(1).text == "from b"  # removing from a leaves b's object with the same id
    assert a.clear() == 1
    assert (len(a), len(b)) == (0, 1)
    assert b.retrieve(1) == Fact(1, "from b")


def test_len_and_clear_leave_the_rest_of_the_cache_alone(cache):
    """The reference's __len__ was len(cache) and its clear emptied the whole cache."""
    cache.set("other_function", output=41, x=1)

    @cache.memoize
    def double(x: int) -> int:
        return 2 * x

    assert double(4) == 8
    store = CacheKLStore(cache, name="scoped")
    assert len(store) == 0
    assert list(store) == []
    store.store_many([Fact(i, f"fact {i}") for i in range(5)])
    assert len(store) == 5
    assert len(cache) == 7
    assert store.clear() == 5
    assert len(store) == 0
    assert len(cache) == 2
    assert cache.get("other_function", x=1) == 41
    assert double.cache_info().currsize == 1
    assert store.clear() == 0


def test_ids_of_different_types_are_different_ids(cache):
    store = CacheKLStore(cache, name="ids")
    ids = [1, "1", 1.0, True, (1, 2), uuid.UUID(int=1), b"1"]
    for n, kid in enumerate(ids):
        store.store({"id": kid, "n": n})
    assert len(store) == len(ids)
    for n, kid in enumerate(ids):
        got = store.retrieve(kid)
        assert got["n"] == n
        assert type(got["id"]) is type(kid)
    assert store.remove("1") is True
    assert store.retrieve(1)["n"] == 0
    assert "1" not in store
    assert len(store) == len(ids) - 1


def test_a_stored_object_stands_for_its_id(cache):
    """ahvn's BaseKLStore takes a knowledge object wherever it takes an id (`kl in store`,
    `batch_remove([kl])`, ...); every method that takes ids takes the object and uses its id."""
    store = CacheKLStore(cache, name="by-object")
    originals = objects()  # a dataclass, a pydantic model, a named tuple and a dict with an "id" key
    store.store_many(originals)
    for obj in originals:
        assert obj in store
        assert store.exists(obj)
        assert store.get(obj) == obj
        assert store.retrieve(obj) == obj
        assert store[obj] == obj
    assert store.get_many(originals) == originals
    assert store.batch_get(originals) == originals
    assert store.retrieve_many(originals) == originals
    # the id is what counts: another object with the same id names the stored one
    assert store.retrieve(Fact(1, "other text")) == originals[0]
    assert Fact(2, "absent") not in store
    assert store.get(Fact(2, "absent"), "fallback") == "fallback"
    with pytest.raises(KeyError) as info:
        store.retrieve(Fact(2, "absent"))
    assert info.value.args == (2,)  # the id, as for a plain id
    assert SimpleNamespace(id=7) in store  # any object with an `id` attribute (Row(7, 0.5) is stored)
    assert SimpleNamespace(id=None) not in store  # as `None in store`
    if is_persistent(cache):  # objects read back through a second cache object stand for their ids too
        other = reopen(cache)
        try:
            again = list(CacheKLStore(other, name="by-object"))  # new copies, not the stored objects
            assert len(again) == len(originals)
            assert all(back in store for back in again)
        finally:
            other.close()

    assert store.batch_remove([originals[0], originals[1]]) == 2
    assert originals[0] not in store
    assert store.remove(originals[2]) is True
    assert store.remove(originals[2]) is False
    del store[originals[3]]
    with pytest.raises(KeyError) as info:
        del store[originals[3]]
    assert info.value.args == (9,)
    assert len(store) == 0
    assert store.remove_many(originals) == 0


def test_plain_ids_keep_working_beside_objects(cache):
    """Values without an `id` (and mappings without an "id" key) are ids themselves, as before."""
    store = CacheKLStore(cache, name="plain")
    ids = [1, "x", (1, "a"), frozenset({2}), {"key": 1}, [1, 2], uuid.UUID(int=3)]
    for n, kid in enumerate(ids):
        store.store({"id": kid, "n": n})
    for n, kid in enumerate(ids):
        assert kid in store
        assert store.retrieve(kid)["n"] == n
    assert store.remove_many(ids[:2]) == 2
    assert len(store) == len(ids) - 2


def test_values_that_are_neither_ids_nor_objects_are_refused(cache):
    store = CacheKLStore(cache, name="refused")
    store.store(Fact(1, "kept"))
    for bad in (object(), lambda: 1):
        for call in (store.get, store.retrieve, store.exists, store.remove, store.__contains__,
                     store.__getitem__, store.__delitem__):
            with pytest.raises(TypeError, match="takes an id") as info:
                call(bad)
            message = str(info.value)
            assert type(bad).__name__ in message  # names the value ...
            assert "an object with an `id`" in message  # ... and what is accepted
    with pytest.raises(TypeError, match=r"SimpleNamespace.*whose id .*object") as info:
        store.get(SimpleNamespace(id=object()))  # an object whose id is not a keyable value
    with pytest.raises(TypeError, match="never None"):
        store.retrieve(SimpleNamespace(id=None))
    # a batch with one bad value removes nothing
    with pytest.raises(TypeError, match="takes an id"):
        store.batch_remove([Fact(1, "kept"), object()])
    assert store.retrieve(1) == Fact(1, "kept")
    with pytest.raises(TypeError, match="takes an id"):
        store.get_many([1, object()])


def test_missing_id(cache):
    store = CacheKLStore(cache, name="missing")
    store.store(Fact(1, "present"))
    with pytest.raises(KeyError) as info:
        store.retrieve(2)
    assert info.value.args == (2,)
    with pytest.raises(KeyError):
        store[2]
    with pytest.raises(KeyError):
        store.retrieve_many([1, 2])
    assert store.get(2) is None
    assert store.get(2, "fallback") == "fallback"
    assert store.get_many([1, 2], default=0) == [Fact(1, "present"), 0]
    assert store.exists(2) is False
    assert 2 not in store
    assert None not in store
    assert store.remove(2) is False
    with pytest.raises(KeyError):
        del store[2]
    del store[1]
    assert len(store) == 0


@dataclasses.dataclass
class NoId:
    name: str


def test_objects_without_an_id_are_refused_with_a_clear_error(cache):
    store = CacheKLStore(cache, name="noid")
    with pytest.raises(TypeError, match="NoId has no `id` attribute"):
        store.store(NoId("x"))
    with pytest.raises(TypeError, match='dict has no "id" key'):
        store.upsert({"name": "x"})
    with pytest.raises(TypeError, match="whose id is None"):
        store.store({"id": None})
    with pytest.raises(TypeError, match="never None"):
        store.retrieve(None)
    # a batch with one bad object writes nothing
    with pytest.raises(TypeError, match="NoId"):
        store.store_many([Fact(1, "ok"), NoId("bad")])
    assert len(store) == 0
    assert len(cache) == 0


def test_store_replaces_and_insert_keeps(cache):
    store = CacheKLStore(cache, name="semantics")
    store.store(Fact(1, "first"))
    store.store(Fact(1, "second"))  # store() is upsert: the newer object wins
    assert store.retrieve(1).text == "second"
    assert len(store) == 1
    store.upsert(Fact(1, "third"))
    assert store.retrieve(1).text == "third"
    assert store.insert(Fact(1, "fourth")) is False  # insert() never replaces
    assert store.retrieve(1).text == "third"
    assert store.insert(Fact(2, "new")) is True
    assert store.insert_many([Fact(2, "again"), Fact(3, "three"), Fact(4, "four")]) == 2
    assert store.retrieve(2).text == "new"
    assert len(store) == 4


def test_batch_forms(cache):
    store = CacheKLStore(cache, name="batch")
    facts = [Fact(i, f"f{i}") for i in range(10)]
    assert store.store_many(facts) == 10
    assert store.upsert_many(iter(facts[:3])) == 3
    assert store.retrieve_many([3, 1, 4]) == [facts[3], facts[1], facts[4]]
    assert store.get_many([0, 99]) == [facts[0], None]
    assert store.remove_many([0, 1, 99]) == 2
    assert len(store) == 8
    # ahvn's spellings
    assert store.batch_get([2]) == [facts[2]]
    assert store.batch_remove([2, 3]) == 2
    assert store.batch_upsert([Fact(2, "back")]) == 1
    assert store.batch_insert([Fact(2, "no"), Fact(3, "yes")]) == 1
    assert store.retrieve(2).text == "back"
    assert len(store) == 8


def test_cache_wide_exclude_does_not_drop_the_id():
    cache = make("inmem", exclude=["id"])
    store = CacheKLStore(cache, name="excl")
    store.store(Fact(1, "one"))
    store.store(Fact(2, "two"))
    assert len(store) == 2
    assert store.retrieve(1).text == "one"


def test_stats_count_lookups(cache):
    store = CacheKLStore(cache, name="stats")
    store.store(Fact(1, "x"))
    store.get(1)
    store.get(2)
    stats = cache.stats()
    assert (stats["hits"], stats["misses"], stats["sets"]) == (1, 1, 1)


def test_bad_arguments():
    with pytest.raises(TypeError, match="needs an oxicache cache"):
        CacheKLStore({}, name="x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-empty str"):
        CacheKLStore(make("inmem"), name="")


def test_default_name_and_repr():
    store = CacheKLStore(make("inmem"))
    assert store.func == "oxicache.klstore:default"
    assert "name='default'" in repr(store)


@pytest.mark.parametrize("backend", ["disk", "sqlite"])
def test_another_process_reads_objects_once_their_classes_are_allowed(backend):
    """A fresh process has not encoded a Fact yet: without ``types=`` reading a stored object raises
    ValueNotAllowedError naming the class and ``types=`` (never an import named by the data, never a
    silent miss while ``len`` and ``in`` count it); with it, it comes back."""
    cache = make_keeping(backend)
    CacheKLStore(cache, name="xproc").store_many([Fact(1, "one", frozenset({"t"})), Doc(id="d", title="T")])
    cache.close()
    cls_name, args, kwargs = SPECS[id(cache)]
    script = textwrap.dedent(f"""
        import sys, warnings
        sys.path.insert(0, {str(TESTS)!r})
        import oxicache
        from oxicache.klstore import CacheKLStore
        cache = getattr(oxicache, {cls_name!r})(*{args!r}, **{kwargs!r}, **{KEEPS.get(cls_name, {})!r})
        blind = CacheKLStore(cache, name="xproc")
        print(len(blind), 1 in blind, blind.exists("d"), 2 in blind)
        for read in (lambda: blind.get(1, "absent"), lambda: blind.retrieve("d"), lambda: list(blind), blind.items):
            try:
                print("read", read())
            except oxicache.errors.ValueNotAllowedError as err:
                text = str(err)
                print("not allowed" in text, "damaged" not in text, "types=[" in text, "'xproc'" in text)
        from kl_objects import Doc, Fact
        store = CacheKLStore(cache, name="xproc", types=[Fact, Doc])
        print(repr(store.retrieve(1)))
        print(repr(store.retrieve("d")))
        cache.close()
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "2 True True False",
        *["True True True True"] * 4,
        "Fact(id=1, text='one', tags=frozenset({'t'}))",
        "Doc(id='d', title='T', sections=[])",
    ]


def test_module_docstring_example_runs():
    import oxicache.klstore as module

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = doctest.testmod(module)
    assert result.attempted > 0
    assert result.failed == 0


# ---- a knowledge store never loses objects silently (issue 17) --------------------------------------

def test_a_cache_that_evicts_is_refused_unless_allowed(tmp_path):
    for evicting in (oxicache.DiskCache(str(tmp_path / "default")), InMemCache(max_size=100)):
        assert evicting.evicts
        with pytest.raises(ValueError, match="allow_eviction=True") as info:
            CacheKLStore(evicting, name="kb")
        assert "eviction_policy='none'" in str(info.value) and repr(evicting) in str(info.value)
        assert CacheKLStore(evicting, name="kb", allow_eviction=True).name == "kb"
    keeping = oxicache.DiskCache(str(tmp_path / "keeps"), eviction_policy="none")
    assert not keeping.evicts and not InMemCache().evicts
    CacheKLStore(keeping, name="kb")


def test_objects_past_the_size_limit_are_kept_with_eviction_off(tmp_path):
    """What the refusal is for: with eviction, 60 objects of 20 KB in a 300 KB DiskCache lose most of
    themselves; with eviction_policy='none' every one is still there."""
    blob = "x" * 20_000
    evicting = CacheKLStore(oxicache.DiskCache(str(tmp_path / "e"), size_limit=300_000), name="kb", allow_eviction=True)
    keeping = CacheKLStore(oxicache.DiskCache(str(tmp_path / "k"), size_limit=300_000, eviction_policy="none"), name="kb")
    for store in (evicting, keeping):
        store.store_many({"id": i, "body": blob} for i in range(60))
    assert len(evicting) < 30
    assert len(keeping) == 60 and all(keeping.get(i)["body"] == blob for i in range(60))


def test_tiered_cache_evicts_as_its_back_does(tmp_path):
    front = dict(max_size=10, ttl="30s")  # the front's evictions lose nothing: the back has the entry
    keeping = oxicache.TieredCache(InMemCache(**front), oxicache.DiskCache(str(tmp_path / "k"), eviction_policy="none"))
    evicting = oxicache.TieredCache(InMemCache(**front), oxicache.DiskCache(str(tmp_path / "e")))
    assert not keeping.evicts and evicting.evicts
    CacheKLStore(keeping, name="kb")
    with pytest.raises(ValueError, match="allow_eviction"):
        CacheKLStore(evicting, name="kb")


class Unstorable:
    """An object with an id that no persistent store can encode (not a dataclass or pydantic model)."""

    def __init__(self, id):
        self.id = id


@pytest.mark.parametrize("backend", [b for b in STORING if b not in ("inmem",)])
def test_store_many_is_all_or_nothing(backend):
    cache = make_keeping(backend)
    try:
        store = CacheKLStore(cache, name="kb")
        store.store_many([{"id": 1, "v": "old"}, {"id": 2, "v": "old"}])
        batch = [{"id": 1, "v": "new"}, {"id": 3, "v": "new"}, Unstorable(4), {"id": 5, "v": "new"}]
        with pytest.raises(oxicache.ValueEncodingError):
            store.store_many(batch)
        assert sorted(store.ids()) == [1, 2]  # 3 (written before the failure) was taken back out
        assert store.get(1) == {"id": 1, "v": "old"}  # and 1 has its old object again
        with pytest.raises(TypeError):  # an object without an id: refused before any write
            store.store_many([{"id": 6}, {"v": "no id"}])
        assert 6 not in store
        assert store.insert_many([{"id": 2, "v": "x"}, {"id": 7}, {"id": 7, "v": "second"}]) == 1
        assert store.get(7) == {"id": 7} and store.get(2) == {"id": 2, "v": "old"}
        with pytest.raises(oxicache.ValueEncodingError):
            store.insert_many([{"id": 8}, Unstorable(9)])
        assert sorted(store.ids()) == [1, 2, 7]
    finally:
        cache.close()
