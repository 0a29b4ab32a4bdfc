"""Edge cases of the native key encoder, checked against the reference encoder or the documented errors."""

import enum
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import key_reference  # noqa: E402

from oxicache import CacheEntry, InMemCache, KeyEncodingError  # noqa: E402
from oxicache.keys import canonical_bytes  # noqa: E402


@pytest.mark.parametrize(
    "value",
    [
        {"a" * 127: 1, "b" * 128: 2, "c": 3},  # one-byte and two-byte length prefixes side by side
        {"a" * 129: 1, "b" * 256: 2},  # LEB128 order differs from numeric order from 128 bytes up
        {"é" * 70: 1, "z": 2},
        {"x": 1, 2: "int key"},  # mixed key types take the general path
    ],
)
def test_dicts_match_reference(value):
    assert canonical_bytes(value) == key_reference.encode(value)
    assert CacheEntry(func="f", inputs={"d": value}).key == key_reference.key("f", {"d": value})


def test_cycle_through_a_scalar_is_reported_as_a_cycle():
    c = [1]
    c.append(c)
    with pytest.raises(KeyEncodingError, match="contains itself"):
        canonical_bytes(c)


def test_cycle_message_stays_short():
    d = {}
    d["self"] = d
    cache = InMemCache()

    @cache.memoize
    def f(v):
        return 1

    with pytest.raises(KeyEncodingError) as info:
        f(d)
    message = str(info.value)
    assert "argument 'v" in message and "reference cycle" in message and "exclude=['v']" in message
    assert len(message) < 400


class Color(enum.Flag):
    RED = 1
    BLUE = 2


def test_flag_without_a_name_is_keyed_by_value():
    assert canonical_bytes(Color(0)) != canonical_bytes(Color.RED)
    assert canonical_bytes(Color(0)) == canonical_bytes(Color(0))


class OddSet(set):
    def __iter__(self):
        yield 9


def test_set_subclass_is_keyed_by_its_contents_not_its_iter():
    assert canonical_bytes(OddSet({1, 2})) == canonical_bytes({1, 2})


def test_masked_arrays_and_object_records_are_refused():
    with pytest.raises(KeyEncodingError, match="register"):
        canonical_bytes(np.ma.masked_array([1, 2], mask=[0, 1]))
    records = np.array([(1, object())], dtype=[("a", "i4"), ("b", "O")])
    with pytest.raises(KeyEncodingError):
        canonical_bytes(records)


def test_unsupported_type_error_names_the_fixes():
    class Opaque:
        pass

    with pytest.raises(KeyEncodingError) as info:
        CacheEntry(func="f", inputs={"conn": Opaque()}).key
    message = str(info.value)
    assert "'conn'" in message and "Opaque" in message
    assert "__cache_key__" in message and "register_key_encoder" in message
    assert isinstance(info.value, TypeError)


def test_registered_encoder_applies_to_subclasses_and_can_be_removed():
    from oxicache import register_key_encoder

    class Point:
        def __init__(self, x):
            self.x = x

    class Point3(Point):
        pass

    register_key_encoder(Point, lambda p: p.x)
    try:
        assert canonical_bytes(Point(1)) == canonical_bytes(Point(1))
        assert canonical_bytes(Point(1)) != canonical_bytes(Point(2))
        assert canonical_bytes(Point3(1)) == canonical_bytes(Point(1))  # nearest registered base class
    finally:
        register_key_encoder(Point, None)
    with pytest.raises(KeyEncodingError):
        canonical_bytes(Point(1))


def test_large_arguments_are_keyed_by_digest_and_kept_as_a_copy():
    cache = InMemCache()
    calls = []

    @cache.memoize
    def total(values):
        calls.append(1)
        return float(values.sum())

    big = np.arange(10_000, dtype=np.float64)
    assert total(big) == total(big.copy()) == float(big.sum())
    assert len(calls) == 1  # equal arrays hit, whatever their identity
    (entry,) = list(cache)
    # A copy taken at the call (the key keeps only a digest), never the caller's array (issue 11).
    assert entry.inputs["values"] is not big and np.array_equal(entry.inputs["values"], big)
    assert entry.key == CacheEntry(func=total.cache_name, inputs={"values": big}).key == total.cache_key(big)
    assert cache[entry.key].output == float(big.sum())
    assert cache.get(total, values=big) == float(big.sum())
    big[0] = -1.0  # the caller changes its array afterwards: the entry is still the call's
    assert entry.key in cache and np.array_equal(list(cache)[0].inputs["values"], np.arange(10_000, dtype=np.float64))
    assert cache.remove(entry) and len(cache) == 0


def test_memoized_functions_pickle_by_reference():
    import pickle

    restored = pickle.loads(pickle.dumps(module_level_square))
    assert restored is module_level_square
    assert restored(3) == 9


_square_cache = InMemCache()


@_square_cache.memoize
def module_level_square(x):
    return x * x


def test_large_decodable_arguments_also_round_trip():
    cache = InMemCache()

    @cache.memoize
    def length(text):
        return len(text)

    text = "x" * 5000
    assert length(text) == 5000
    (entry,) = list(cache)
    assert entry.inputs == {"text": text}
    assert cache.get(length, text="x" * 5000) == 5000
    assert length.cache_info().hits == 0 and length("x" * 5000) == 5000 and length.cache_info().hits == 1


def test_parameter_names_longer_than_127_bytes_bind_by_keyword():
    """A name's canonical encoding has a two-byte length prefix past 127 bytes; keyword binding and
    `exclude` compare the names themselves."""
    name = "p" * 200
    namespace: dict = {}
    exec(f"def f({name}, other=0):\n    return {name} * 2", namespace)
    cache = InMemCache()
    f = cache.memoize(name="long", exclude=["other"])(namespace["f"])
    assert f(**{name: 3}) == 6
    assert f(3, other=5) == 6  # the same entry: `other` is excluded
    assert f.cache_info().currsize == 1


def test_structured_dtypes_without_descr_are_keyed():
    """An out-of-order (or overlapping) structured dtype has no `descr`: it is keyed by `str(dtype)` (its
    names, formats, offsets and itemsize) instead of raising a plain ValueError (issue 11, item 18)."""
    out_of_order = np.dtype({"names": ["a", "b"], "formats": ["f8", "i4"], "offsets": [8, 0]})
    in_order = np.dtype({"names": ["a", "b"], "formats": ["f8", "i4"], "offsets": [0, 8]})
    x, y = np.zeros(2, dtype=out_of_order), np.zeros(2, dtype=in_order)
    assert canonical_bytes(x) == canonical_bytes(np.zeros(2, dtype=out_of_order))
    assert canonical_bytes(x) != canonical_bytes(y)


@pytest.mark.skipif(not hasattr(np, "dtypes") or not hasattr(np.dtypes, "StringDType"), reason="numpy 2's StringDType")
def test_variable_width_string_arrays_are_keyed_but_never_stored(tmp_path):
    """A StringDType array's bytes point into this process's memory: it is keyed by its strings, and a
    result holding one is refused by the codec at store time (a warning, nothing stored), never stored as
    a record no process can decode (issue 11, item 18)."""
    from oxicache import CacheWarning, DiskCache, ValueEncodingError
    from oxicache.codec import encode_binary, encode_json

    strings = np.array(["a", "bb" * 40], dtype=np.dtypes.StringDType())
    assert canonical_bytes(strings) == canonical_bytes(np.array(["a", "bb" * 40], dtype=np.dtypes.StringDType()))
    for encode in (encode_binary, encode_json):
        with pytest.raises(ValueEncodingError, match="astype"):
            encode(strings)
    cache = DiskCache(tmp_path)

    @cache.memoize
    def words(n):
        return np.array(["w"] * n, dtype=np.dtypes.StringDType())

    for _ in range(2):
        with pytest.warns(CacheWarning, match="StringDType"):
            assert list(words(2)) == ["w", "w"]
    assert len(cache) == 0


_BASE = np.arange(24, dtype=np.float64).reshape(4, 6)


@pytest.mark.parametrize(
    "array",
    [
        _BASE,  # C-contiguous: its memory is read through the buffer protocol
        _BASE[:, ::2],  # strided view: copied to C order first
        _BASE.T,  # Fortran order
        np.asfortranarray(_BASE),
        np.zeros((0, 3)),
        np.arange(5, dtype=">i4"),  # non-native byte order
        np.array(["2020-01-01", "NaT"], dtype="datetime64[D]"),  # no buffer format: tobytes()
        np.array([(1, 2.0)], dtype=[("a", "<i4"), ("b", "<f8")]),
        np.array([1 + 2j, 3j]),
        np.frombuffer(b"\x01\x02\x03\x04", dtype=np.uint8),  # read-only
    ],
    ids=["c", "strided", "transposed", "fortran", "empty", "big-endian", "datetime64", "record", "complex", "readonly"],
)
def test_every_array_layout_keys_its_c_order_bytes(array):
    """Whichever way the bytes are read (the array's own memory, or a C-order copy), the key's payload is
    ``ascontiguousarray(a).tobytes()`` (docs/key-scheme.md rule 5), and equal arrays in different layouts
    share one key."""
    encoded = canonical_bytes(array)
    assert encoded == key_reference.encode(array)
    assert encoded.endswith(np.ascontiguousarray(array).tobytes())
    assert canonical_bytes(np.ascontiguousarray(array).copy()) == encoded
