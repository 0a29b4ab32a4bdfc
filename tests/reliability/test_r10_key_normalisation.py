"""R10 of the reliability matrix: key normalisation, property-based (hypothesis), on both memoize engines.

Engines: ``native`` is ``InMemCache`` (the Rust ``Memoizer`` binds, keys and looks up); ``python`` is
``DiskCache`` (the Python engine of ``_memoize.py`` over a real diskcache store). Every property is checked
through ``fn.cache_key(...)`` *and* through real calls (the body's run count says hit or miss).

Properties:

- equivalent spellings of a call (positional, keyword, defaults omitted or given explicitly, reordered
  keywords) give one key and one entry; signatures come from ``test_binding_properties.signatures``
  (positional-only, defaults, keyword-only, ``*args``, ``**kwargs``), reused rather than copied;
- changing any one argument to a value that is not equivalent gives another key: no argument is dropped.
  "Equivalent" is decided by an independent structural oracle (``same()``, below), which encodes the
  documented policy: keys are type-tagged, so ``1``, ``1.0``, ``True``, ``"1"`` and ``b"1"`` differ, the
  falsy values ``0``, ``0.0``, ``-0.0``, ``False``, ``""``, ``None``, ``[]``, ``()``, ``{}`` all differ,
  dict keys keep their types (``{1: x}`` vs ``{"1": x}``), dict insertion order does not matter, every
  NaN is one value, and numpy arrays key by dtype, shape and bytes (equal bytes, other dtype: other key);
- an argument of an unsupported type anywhere (a positional, a keyword, inside ``*args``/``**kwargs`` or
  nested in a container) raises ``KeyEncodingError``, the function does not run and nothing is stored.

Adaptation: the generated values go into the inputs, not the outputs (the output is the run count), so
the Python engine's codec is not what is under test here. The soak variants (``@pytest.mark.slow``) run
10x the examples.
"""

from __future__ import annotations

import itertools
import math
import os
import struct
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import test_binding_properties as tbp  # noqa: E402  (its strategies: generated signatures and spellings)
from backends import make  # noqa: E402

from oxicache import CacheEntry, KeyEncodingError  # noqa: E402

P = tbp.P
EXAMPLES = 100
# The matrix's soak is 10x the examples; CI samples 4x to fit its budget (OXICACHE_R10_SOAK_EXAMPLES=1000
# runs the whole soak).
SOAK = settings(max_examples=int(os.environ.get("OXICACHE_R10_SOAK_EXAMPLES", 4 * EXAMPLES)), deadline=None, suppress_health_check=[HealthCheck.too_slow])
FAST = settings(max_examples=EXAMPLES, deadline=None)
ENGINES = {"native": "inmem", "python": "disk"}
_names = itertools.count()


@pytest.fixture(scope="module", params=sorted(ENGINES))
def engine(request: pytest.FixtureRequest) -> tuple[str, Any]:
    """(engine name, cache): one cache per engine for the module; each example memoizes under its own name."""
    cache = make(ENGINES[request.param])
    if request.param == "native":
        assert getattr(cache, "_native_store", None) is not None
    else:
        assert getattr(cache, "_native_store", None) is None
    yield request.param, cache
    cache.close()


# ---------------------------------------------------------------------------------------------- values

TRICKY = [0, 0.0, -0.0, False, "", None, b"", [], (), {}, 1, 1.0, True, "1", b"1", [1], (1,), math.nan, -math.nan,
          math.inf, {1: "a"}, {"1": "a"}, {True: "a"}, {1.0: "a"}, frozenset(), set(), "0", "None", "False"]
DTYPES = ["<i4", "<u4", "<f4", ">i4", "|u1", "|i1", "<i2", "<f2"]


@st.composite
def arrays(draw: Any) -> np.ndarray:
    """Small arrays whose bytes are drawn first and the dtype second, so equal bytes recur under other dtypes."""
    raw = draw(st.sampled_from([bytes(4), b"\x01\x00\x00\x00", b"\x00\x00\x80\x3f", bytes(range(8))]))
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    arr = np.frombuffer(raw[: len(raw) - len(raw) % dtype.itemsize], dtype=dtype).copy()
    if arr.size % 2 == 0 and arr.size and draw(st.booleans()):
        arr = arr.reshape(2, -1)
    return arr


leaves = st.one_of(
    st.sampled_from(TRICKY),
    st.integers(-3, 3),
    st.floats(allow_nan=True, width=64),
    st.text(max_size=3),
    st.binary(max_size=3),
    arrays(),
)
hashables = st.one_of(st.sampled_from([0, 1, True, False, 1.0, "1", "", None, b"1", (1,), (), -0.0]), st.text(max_size=2))
values = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(hashables, inner, max_size=3),
        st.frozensets(hashables, max_size=3),
        st.sets(hashables, max_size=3),
    ),
    max_leaves=6,
)


def canon(v: Any) -> Any:
    """The documented equivalence as a plain comparable structure (independent of the key encoder)."""
    t = type(v)
    if t is float:
        return ("float", "nan" if math.isnan(v) else struct.pack(">d", v))
    if t in (bool, int, str, bytes) or v is None:
        return (t.__name__, v)
    if t in (list, tuple):
        return (t.__name__, tuple(canon(x) for x in v))
    if t is dict:
        return ("dict", tuple(sorted((repr(canon(k)), canon(x)) for k, x in v.items())))
    if t in (set, frozenset):
        return (t.__name__, tuple(sorted(repr(canon(x)) for x in v)))
    if t is np.ndarray:
        return ("ndarray", v.dtype.str, v.shape, v.tobytes())
    raise AssertionError(f"no oracle for {t}")


def same(a: Any, b: Any) -> bool:
    return canon(a) == canon(b)


def keys_of(fn: Any, args: tuple, kwargs: dict) -> int:
    return fn.cache_key(*args, **kwargs)


def memoized(cache: Any, sig: Any) -> tuple[Any, list[int]]:
    """A memoized function with signature ``sig`` under a fresh name; returns it and its run log."""
    runs: list[int] = []
    body = tbp.make_function(sig)

    def f(*args: Any, **kwargs: Any) -> int:
        body(*args, **kwargs)  # the signature must accept the spelling, as the real function would
        runs.append(1)
        return len(runs)

    f.__signature__ = sig  # type: ignore[attr-defined]
    return cache.memoize(name=f"r10.f{next(_names)}")(f), runs


def explicit_spelling(sig: Any, inputs: dict) -> tuple[tuple, dict] | None:
    """Every parameter given: positional-only by position, the rest by keyword (None with *args)."""
    params = list(sig.parameters.values())
    if any(p.kind is P.VAR_POSITIONAL for p in params):
        return None
    args = tuple(inputs[p.name] for p in params if p.kind is P.POSITIONAL_ONLY)
    kwargs = {p.name: inputs[p.name] for p in params if p.kind in (P.POSITIONAL_OR_KEYWORD, P.KEYWORD_ONLY)}
    for p in params:
        if p.kind is P.VAR_KEYWORD:
            kwargs.update(inputs[p.name])
    return args, dict(reversed(list(kwargs.items())))  # reordered keywords too


# --------------------------------------------------------------------------- 1. equivalent spellings


def check_equivalent_spellings(engine: tuple[str, Any], data: Any) -> None:
    name, cache = engine
    sig = data.draw(tbp.signatures(), label="signature")
    args, kwargs = data.draw(tbp.calls(sig), label="call")
    fn, runs = memoized(cache, sig)
    bound = sig.bind(*args, **kwargs)
    bound.apply_defaults()
    inputs = dict(bound.arguments)

    key = keys_of(fn, args, kwargs)
    assert key == CacheEntry(fn.cache_name, inputs).key
    spellings = [(args, kwargs), (args, dict(reversed(list(kwargs.items()))))]
    explicit = explicit_spelling(sig, inputs)
    if explicit is not None:
        spellings.append(explicit)
    for a, k in spellings:
        assert keys_of(fn, a, k) == key, (name, a, k)
    assert fn(*args, **kwargs) == 1
    for a, k in spellings:
        assert fn(*a, **k) == 1, f"{name}: {a!r} {k!r} missed"
    assert len(runs) == 1
    info = fn.cache_info()
    assert (info.misses, info.hits, info.currsize) == (1, len(spellings), 1)


@given(data=st.data())
@FAST
def test_equivalent_spellings_share_one_key(engine: tuple[str, Any], data: Any) -> None:
    check_equivalent_spellings(engine, data)


@pytest.mark.slow
@given(data=st.data())
@SOAK
def test_equivalent_spellings_share_one_key_soak(engine: tuple[str, Any], data: Any) -> None:
    check_equivalent_spellings(engine, data)


# ---------------------------------------------------------------- 2. defaults and falsy values, fixed


def test_falsy_defaults_and_numeric_policy(engine: tuple[str, Any]) -> None:
    """The documented policy on fixed examples: f(1) == f(x=1) == f(1, y=default) for every falsy default,
    and each of the look-alike values is its own key."""
    _, cache = engine
    for default in [0, "", False, None, [], 0.0, -0.0, ()]:
        runs: list[Any] = []

        def f(x: Any, y: Any = default, *, z: Any = default) -> int:
            runs.append((x, y, z))
            return len(runs)

        fn = cache.memoize(name=f"r10.falsy{next(_names)}")(f)
        assert fn(1) == fn(x=1) == fn(1, default) == fn(1, y=default) == fn(1, z=default, y=default) == 1
        assert len({fn.cache_key(1), fn.cache_key(x=1), fn.cache_key(1, default), fn.cache_key(1, z=default)}) == 1
        # the default's look-alikes are other values, so other keys
        for other in [0, "", False, None, [], 0.0, -0.0, (), {}]:
            if not same(other, default):
                assert fn.cache_key(1, other) != fn.cache_key(1), (default, other)
    fn = cache.memoize(name=f"r10.lookalike{next(_names)}")(lambda x: x)
    lookalikes = [1, 1.0, True, "1", b"1", [1], (1,), {1: "v"}, {"1": "v"}, {True: "v"}, {1.0: "v"},
                  np.array([1], dtype="<i4"), np.array([1], dtype="<u4"), np.array([1], dtype="<i4").view("<f4"),
                  np.array([1, 0], dtype="<i2")]  # the last four share their 4 bytes
    assert len({fn.cache_key(v) for v in lookalikes}) == len(lookalikes)
    assert fn.cache_key({"a": 1, "b": 2}) == fn.cache_key({"b": 2, "a": 1})
    assert fn.cache_key(math.nan) == fn.cache_key(-math.nan) == fn.cache_key(float("nan"))
    assert fn.cache_key(0.0) != fn.cache_key(-0.0)


# ----------------------------------------------------------------- 3. no argument is silently dropped


def check_changed_argument_changes_key(engine: tuple[str, Any], data: Any) -> None:
    name, cache = engine
    sig = data.draw(tbp.signatures(), label="signature")
    assume(sig.parameters)
    fn, runs = memoized(cache, sig)
    params = list(sig.parameters.values())
    # every parameter given explicitly, with drawn values (one *args item, one **kwargs item)
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    slots: list[tuple[str, Any]] = []  # ("arg", index) or ("kw", name)
    for p in params:
        if p.kind is P.VAR_POSITIONAL:
            for _ in range(data.draw(st.integers(0, 2))):
                slots.append(("arg", len(args)))
                args.append(data.draw(values))
        elif p.kind is P.VAR_KEYWORD:
            slots.append(("kw", "extra"))
            kwargs["extra"] = data.draw(values)
        elif p.kind in (P.POSITIONAL_ONLY, P.POSITIONAL_OR_KEYWORD):
            slots.append(("arg", len(args)))
            args.append(data.draw(values))
        else:
            slots.append(("kw", p.name))
            kwargs[p.name] = data.draw(values)
    assume(slots)
    where, at = data.draw(st.sampled_from(slots), label="changed slot")
    old = args[at] if where == "arg" else kwargs[at]
    new = data.draw(values, label="new value")
    args2, kwargs2 = list(args), dict(kwargs)
    if where == "arg":
        args2[at] = new
    else:
        kwargs2[at] = new
    k1, k2 = fn.cache_key(*args, **kwargs), fn.cache_key(*args2, **kwargs2)
    if same(old, new):
        assert k1 == k2, f"{name}: equivalent {old!r} and {new!r} keyed apart"
    else:
        assert k1 != k2, f"{name}: {old!r} and {new!r} collided at {where} {at}"
    fn(*args, **kwargs)
    fn(*args2, **kwargs2)
    assert len(runs) == (1 if same(old, new) else 2)


@given(data=st.data())
@FAST
def test_changed_argument_changes_key(engine: tuple[str, Any], data: Any) -> None:
    check_changed_argument_changes_key(engine, data)


@pytest.mark.slow
@given(data=st.data())
@SOAK
def test_changed_argument_changes_key_soak(engine: tuple[str, Any], data: Any) -> None:
    check_changed_argument_changes_key(engine, data)


@given(a=values, b=values)
@FAST
def test_value_pairs_key_apart_unless_equivalent(engine: tuple[str, Any], a: Any, b: Any) -> None:
    _, cache = engine
    fn = cache.memoize(name="r10.pair")(lambda x: 0)
    assert (fn.cache_key(a) == fn.cache_key(b)) == same(a, b), (a, b)


# ------------------------------------------------------------------- 4. unsupported types raise


class Opaque:
    """No __cache_key__, no registered encoder, not a dataclass: has no key."""


def check_unsupported_raises(engine: tuple[str, Any], data: Any) -> None:
    name, cache = engine
    sig = data.draw(tbp.signatures(), label="signature")
    args, kwargs = data.draw(tbp.calls(sig), label="call")
    slots = [("arg", i) for i in range(len(args))] + [("kw", k) for k in kwargs]
    assume(slots)
    where, at = data.draw(st.sampled_from(slots), label="slot")
    wrap = data.draw(st.sampled_from(["bare", "list", "dict", "tuple"]), label="nesting")
    bad: Any = {"bare": Opaque(), "list": [1, Opaque()], "dict": {"k": Opaque()}, "tuple": (Opaque(),)}[wrap]
    args, kwargs = list(args), dict(kwargs)
    if where == "arg":
        args[at] = bad
    else:
        kwargs[at] = bad
    fn, runs = memoized(cache, sig)
    with pytest.raises(KeyEncodingError, match="Opaque"):
        fn.cache_key(*args, **kwargs)
    with pytest.raises(KeyEncodingError, match="Opaque"):
        fn(*args, **kwargs)
    assert runs == [], f"{name}: the function ran with an unkeyable argument"
    assert fn.cache_info().currsize == 0


@given(data=st.data())
@FAST
def test_unsupported_argument_raises_key_encoding_error(engine: tuple[str, Any], data: Any) -> None:
    check_unsupported_raises(engine, data)


@pytest.mark.slow
@given(data=st.data())
@SOAK
def test_unsupported_argument_raises_key_encoding_error_soak(engine: tuple[str, Any], data: Any) -> None:
    check_unsupported_raises(engine, data)
