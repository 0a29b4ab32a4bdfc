"""The contract every persistent backend keeps (tests/backends.py: DiskCache, JsonCache, DatabaseCache
on SQLite, PostgreSQL and MySQL), beyond the public surface that tests/test_base_api.py,
test_function_kinds.py, test_options.py and test_batch.py already run on them:

- every value of the codec catalogue round-trips with its types, through `set`/`get` and memoize;
- an entry read back recomputes to the key it is stored under (the key invariant);
- arguments the codec cannot store (an object keyed by `__cache_key__`, a memoized method's `self`) are
  stored as their key bytes: hits still work and the invariant still holds;
- an output the codec cannot encode: the caller gets its value, one CacheWarning, the previous entry
  survives;
- TTL; entries written by another process are hits here, and two processes writing the same keys at
  once leave exactly one intact entry per key.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

import backends
import codec_values as cv
import oxicache
from oxicache import CacheEntry, CacheWarning, KeyEncodingError

TESTS = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(params=backends.PERSISTENT)
def name(request):
    return request.param


@pytest.fixture
def cache(name):
    return backends.make(name)


# Every catalogue value but `nested_200`: a value at the codec's depth limit cannot sit inside a record
# (docs/value-codec.md).
SAMPLE = sorted(k for k in cv.CATALOGUE if k != "nested_200")


def test_catalogue_round_trips_with_types(cache):
    for label in SAMPLE:
        value = cv.CATALOGUE[label]
        cache.set("catalogue", output=value, label=label)
        got = cache.get("catalogue", label=label)
        assert cv.same(got, value), label


def test_inputs_round_trip_and_entries_recompute_to_their_key(cache):
    inputs = [
        {"t": (1, 2), "s": {3, 4}, "f": frozenset({"a"}), "d": {1: "one", (2, 3): None}},
        {"when": cv.CATALOGUE.get("datetime_paris_fold1", 0), "n": 2**80, "x": -0.0},
        {"b": b"\x00\xff", "nested": [[(1,)], {"k": [1.5]}]},
    ]
    keys = {}
    for i, args in enumerate(inputs):
        entry = CacheEntry("invariant", args, output=i)
        cache.add(entry)
        keys[entry.key] = i
    read = list(cache)
    assert sorted(e.output for e in read) == sorted(keys.values())
    for entry in read:
        assert entry.key in keys and keys[entry.key] == entry.output  # recomputed from what was stored
        assert cv.same(entry.inputs, inputs[entry.output])


class Client:
    """An object with a key but no value encoding: its calls are keyed through __cache_key__."""

    def __init__(self, model):
        self.model = model

    def __cache_key__(self):
        return self.model


def test_arguments_without_a_value_encoding_are_stored_by_their_key(cache):
    runs = []

    @cache.memoize
    def ask(client, prompt):
        runs.append(prompt)
        return f"{client.model}:{prompt}"

    small = Client("small")
    assert ask(small, "hi") == "small:hi"
    assert ask(Client("small"), "hi") == "small:hi"  # another object with the same key: a hit
    assert ask(Client("large"), "hi") == "large:hi"
    assert runs == ["hi", "hi"]
    for entry in cache:
        assert entry.key == ask.cache_key(Client(entry.output.split(":")[0]), "hi")
        assert type(entry.inputs["client"]).__name__ == "KeyBytes"


def test_unkeyable_argument_raises_naming_it(cache):
    with pytest.raises(KeyEncodingError, match="obj"):
        cache.set("f", output=1, obj=object())
    assert len(cache) == 0


def test_unencodable_output_warns_and_keeps_the_previous_entry(cache):
    outputs = iter([{"v": 1}, object()])

    @cache.memoize
    def produce(x):
        return next(outputs)

    assert produce(1) == {"v": 1}
    with oxicache.refresh(), pytest.warns(CacheWarning, match="not cached"):
        result = produce(1)
    assert type(result) is object  # the caller still gets its value
    assert cache.get(produce, x=1) == {"v": 1}  # nothing partial was written over the old entry


def test_ttl_expires_entries(cache):
    cache.set("f", output=1, ttl=0.3, x=1)
    cache.set("f", output=2, x=2)
    assert cache.get("f", x=1) == 1
    time.sleep(0.45)
    assert cache.get("f", x=1) is ...
    assert cache.get("f", x=2) == 2
    assert [e.output for e in cache] == [2]


# ---- several processes ----------------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, {tests!r})
    import oxicache
    spec = json.loads(sys.argv[1])
    cls = getattr(oxicache, spec["cls"])
    cache = cls(*spec["args"], **spec["kwargs"])
    runs = []

    @cache.memoize(name="shared.square")
    def square(x):
        runs.append(x)
        return {{"x": x, "square": x * x, "pid": spec["tag"]}}

    out = [square(x) for x in spec["keys"]]
    print(json.dumps({{"runs": runs, "out": out}}))
    """
)


def spec_of(cache, name):
    """How a child process opens the same store (recorded by tests/backends.py)."""
    cls, args, kwargs = backends.SPECS[id(cache)]
    return {"cls": cls, "args": list(args), "kwargs": kwargs}


def run_children(cache, name, keys_per_child, tags):
    code = CHILD.format(tests=TESTS)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, json.dumps({**spec_of(cache, name), "keys": keys, "tag": tag})],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for keys, tag in zip(keys_per_child, tags)
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        results.append(json.loads(out))
    return results


def test_entries_written_by_one_process_are_hits_in_another(cache, name):
    (first,) = run_children(cache, name, [[1, 2, 3]], ["a"])
    assert first["runs"] == [1, 2, 3]
    (second,) = run_children(cache, name, [[1, 2, 3, 4]], ["b"])
    assert second["runs"] == [4]
    assert second["out"][:3] == first["out"]


def test_two_processes_writing_the_same_keys_leave_one_intact_entry_each(cache, name):
    keys = list(range(40))
    run_children(cache, name, [keys, keys[::-1]], ["a", "b"])
    entries = list(cache)
    assert sorted(e.inputs["x"] for e in entries) == keys
    for e in entries:
        assert e.output["square"] == e.inputs["x"] ** 2 and e.output["pid"] in ("a", "b")


def test_cache_info_and_cache_clear_are_per_function(cache):
    @cache.memoize(name="a")
    def a(x):
        return x

    @cache.memoize(name="b")
    def b(x):
        return -x

    for x in range(3):
        a(x)
        b(x)
    cache.set("a", output=1, x=99, ttl=0.05)  # expired entries are not counted
    time.sleep(0.1)
    assert a.cache_info().currsize == 3 and b.cache_info().currsize == 3
    a.cache_clear()
    assert a.cache_info() == (0, 0, None, 0)
    assert sorted(e.func for e in cache) == ["b", "b", "b"]
