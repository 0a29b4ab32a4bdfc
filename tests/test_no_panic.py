"""No Rust panic reaches Python (issue 11, crash 8): containers that change while the key encoder or a
value codec reads them (through `__cache_key__` hooks, dataclass properties, or another thread) give a
KeyEncodingError / ValueEncodingError, never a PanicException (a BaseException that `except Exception`
misses), and the binary writer never emits a record whose item count disagrees with its header.
Decoders given damaged bytes raise ValueDecodingError and nothing else."""

from __future__ import annotations

import dataclasses
import random
import threading
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oxicache import CacheWarning, DiskCache, InMemCache, JsonCache, KeyEncodingError, ValueDecodingError, ValueEncodingError
from oxicache.codec import decode_binary, decode_json, encode_binary, encode_json
from oxicache.keys import canonical_bytes

ENCODERS = {"key": canonical_bytes, "binary": encode_binary, "json": encode_json}
EXPECTED_ERROR = {"key": KeyEncodingError, "binary": ValueEncodingError, "json": ValueEncodingError}


def mutate(container, how: int) -> None:
    """Changes `container` in one of several ways (grow, shrink, replace, clear)."""
    if isinstance(container, dict):
        if how == 0:
            container[f"new{len(container)}"] = 1
        elif how == 1 and container:
            container.pop(next(iter(container)))
        elif how == 2 and container:
            k = next(iter(container))
            container.pop(k)
            container[f"swapped{random.random()}"] = 2  # same size, other keys
        else:
            container.clear()
    elif isinstance(container, list):
        if how == 0:
            container.append(1)
        elif how == 1 and container:
            container.pop()
        elif how == 2 and container:
            container[0] = "replaced"
        else:
            container.clear()
    else:  # set
        if how == 0:
            container.add(f"new{len(container)}")
        elif how == 1 and container:
            container.pop()
        elif how == 2 and container:
            container.pop()
            container.add(random.random())
        else:
            container.clear()


class KeyHook:
    """An argument whose key hook changes the container holding it."""

    def __init__(self, container, how):
        self.container, self.how = container, how

    def __cache_key__(self):
        mutate(self.container, self.how)
        return "hook"

    def __hash__(self):  # so that it can sit in a set
        return id(self)


@dataclasses.dataclass(eq=False)
class FieldHook:
    """A dataclass whose field read (the value codec reads every field) changes the container holding it."""

    how: int

    def __getattribute__(self, name):
        value = object.__getattribute__(self, name)
        if name == "how":
            container = object.__getattribute__(self, "__dict__").get("_container")
            if container is not None:
                mutate(container, value)
        return value

    def __hash__(self):
        return id(self)


def build(kind: str, size: int, position: int, how: int, hook_cls):
    """A container of `size` plain items with a mutating hook at `position`."""
    if kind in ("small_dict", "big_dict", "int_dict"):
        container = {(i if kind == "int_dict" else f"k{i}"): i for i in range(size)}
        hook = hook_cls(container, how) if hook_cls is KeyHook else FieldHook(how)
        container["hook" if kind != "int_dict" else 10_000] = hook
    elif kind == "list":
        container = list(range(size))
        hook = hook_cls(container, how) if hook_cls is KeyHook else FieldHook(how)
        container.insert(min(position, size), hook)
    else:
        container = {f"s{i}" for i in range(size)}
        hook = hook_cls(container, how) if hook_cls is KeyHook else FieldHook(how)
        container.add(hook)
    if isinstance(hook, FieldHook):
        hook.__dict__["_container"] = container
    return container


KINDS = ["small_dict", "big_dict", "int_dict", "list", "set"]


@settings(max_examples=150)
@given(
    encoder=st.sampled_from(sorted(ENCODERS)),
    kind=st.sampled_from(KINDS),
    size=st.integers(0, 40),
    position=st.integers(0, 40),
    how=st.integers(0, 3),
    nested=st.booleans(),
)
def test_a_container_changed_while_encoding_is_an_encoding_error(encoder, kind, size, position, how, nested):
    if kind == "big_dict":
        size += 17  # past the key encoder's small-dict path
    container = build(kind, size, position, how, KeyHook if encoder == "key" else FieldHook)
    if encoder != "key" and kind == "set":
        container = build("list", size, position, how, FieldHook)  # the codecs store sets of hashables only
    value = {"outer": [container, 1]} if nested else container
    try:
        encoded = ENCODERS[encoder](value)
    except BaseException as err:  # noqa: BLE001 - the point: what kind of exception it is
        assert isinstance(err, Exception), f"{type(err).__module__}.{type(err).__name__} reached Python: {err}"
        assert isinstance(err, EXPECTED_ERROR[encoder]), repr(err)
        assert "changed while" in str(err)
        return
    # The container did not end up changed (e.g. a clear of an empty one): the encoding is readable.
    if encoder == "binary":
        decode_binary(encoded)
    elif encoder == "json":
        decode_json(encoded)


def test_memoized_calls_refuse_an_argument_changed_by_its_own_hook():
    cache = InMemCache()

    @cache.memoize
    def f(d):
        return len(d)

    d = {f"k{i}": i for i in range(30)}
    d["hook"] = KeyHook(d, 0)
    with pytest.raises(KeyEncodingError, match="changed while"):
        f(d)
    assert len(cache) == 0


@pytest.mark.parametrize("make", [lambda p: DiskCache(p), lambda p: JsonCache(p)], ids=["disk", "json"])
def test_a_result_changed_while_it_is_stored_is_not_stored(tmp_path, make):
    cache = make(str(tmp_path))

    @cache.memoize
    def f(n):
        out = list(range(n))
        hook = FieldHook(0)
        hook._container = out
        out.append(hook)
        return out

    with pytest.warns(CacheWarning, match="changed while"):
        result = f(5)
    assert result[:5] == [0, 1, 2, 3, 4]  # the caller still gets its value
    assert len(cache) == 0  # nothing partial or inconsistent was written


@pytest.mark.parametrize("encoder", sorted(ENCODERS))
def test_another_thread_changing_a_container_never_panics(encoder):
    """A hook that lets other threads run (it releases the GIL) while one mutates the container."""
    shared = {f"k{i}": list(range(i)) for i in range(40)}
    shared_list = [1, 2, 3] * 10

    class Yielding:
        def __cache_key__(self):
            threading.Event().wait(0.0001)  # releases the GIL
            return 1

    @dataclasses.dataclass
    class Slow:
        x: int

        def __getattribute__(self, name):
            if name == "x":
                threading.Event().wait(0.0001)
            return object.__getattribute__(self, name)

    hook = Yielding() if encoder == "key" else Slow(1)
    shared["hook"] = hook
    shared_list.append(hook)
    stop = threading.Event()

    def churn():
        rnd = random.Random(1)
        while not stop.is_set():
            mutate(shared, rnd.randrange(3))
            shared["hook"] = hook
            mutate(shared_list, rnd.randrange(3))

    t = threading.Thread(target=churn)
    t.start()
    outcomes = {"ok": 0, "error": 0}
    try:
        for _ in range(300):
            try:
                encoded = ENCODERS[encoder]({"d": shared, "l": shared_list})
            except BaseException as err:  # noqa: BLE001
                assert isinstance(err, EXPECTED_ERROR[encoder]), repr(err)
                outcomes["error"] += 1
            else:
                outcomes["ok"] += 1
                if encoder == "binary":
                    decode_binary(encoded)  # consistent: every header matches its items
                elif encoder == "json":
                    decode_json(encoded)
    finally:
        stop.set()
        t.join(10)
    assert outcomes["ok"] + outcomes["error"] == 300


@settings(max_examples=300)
@given(data=st.binary(max_size=200))
def test_damaged_binary_records_raise_value_decoding_error(data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            decode_binary(data)
        except BaseException as err:  # noqa: BLE001
            assert isinstance(err, ValueDecodingError), repr(err)


VALID = [
    {"a": [1, 2.5, "x", None, True], "b": (1, 2), "c": {1, 2}, "d": b"\x00\xff", "e": {1: "one"}},
    [{"nested": [[[]]]}, frozenset({"a"}), 10**40, -(10**30), float("nan")],
]


@settings(max_examples=300)
@given(which=st.sampled_from(range(len(VALID))), cut=st.integers(0, 400), flip=st.integers(0, 400), byte=st.integers(0, 255))
def test_truncated_or_flipped_records_raise_value_decoding_error(which, cut, flip, byte):
    for encode, decode in ((encode_binary, decode_binary), (encode_json, decode_json)):
        raw = bytearray(encode(VALID[which]).encode() if encode is encode_json else encode(VALID[which]))
        if flip < len(raw):
            raw[flip] = byte
        damaged = bytes(raw[: cut % (len(raw) + 1)])
        try:
            decode(damaged.decode("utf-8", "replace") if decode is decode_json else damaged)
        except BaseException as err:  # noqa: BLE001
            assert isinstance(err, ValueDecodingError), repr(err)
