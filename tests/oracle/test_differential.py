"""A differential oracle: memoized functions against the same functions unmemoized, on every backend.

A hypothesis state machine (``DifferentialMachine``) makes random sequences of calls to each function
under test twice: through ``cache.memoize`` and plainly (the same code, with its own run counter), and
fails on any difference a user could observe:

- every result equals, type and value recursively (``oracle_support.shape``), what the plain function
  returns for the same arguments as they were at the call; an exception has the same type, args and
  message; a generator's items (snapshot with a deep copy as each one is consumed) equal the plain
  generator's, up to the same exception;
- the memoized function runs exactly when the model says it must: on a storing backend a call whose key
  (``oracle_support.key_canon``, written from docs/key-scheme.md) has a complete, successful, not
  bypassed earlier run is a hit, any other call runs; ``cache_info()`` counts it (hits, misses, errors);
  concurrent threads and asyncio tasks on one key run it once (single-flight), but for a raising key;
- every entry in the store recomputes to its key (``all(e.key in cache for e in cache)``,
  ``cache.verify() == []``), its output is what the plain function returns for its inputs, and each
  function's entries are the model's; on CallbackCache, every callback's ``(key, value)`` agrees the same
  way; ``cache.get(fn, ...)`` finds exactly the model's entries;
- a call involving a class its module cannot name is refused with ``KeyEncodingError`` (the function not
  run) by the stores other processes read, and works on InMemCache and NoCache (key scheme 2);
- no warning, no error logged by the ``oxicache`` logger (the calls here never meet a documented one).

The rules: calls with positional/keyword/default spellings (defaults, positional-only, keyword-only,
``*args``, ``**kwargs``, keywords in any order); new arguments, the same objects again, equal deep copies
with dicts and sets in another insertion order; type-distinct look-alikes (1, 1.0, True, "1", [1]/(1,),
dict key types, datetimes, Decimals, paths, enums, dataclasses, numpy arrays and scalars, ``__cache_key__``
objects, bytearrays, big lists kept by reference); the caller mutating an argument after a call and
calling again; a function that mutates its own argument; generators consumed fully, partly, steered with
``send()``, or raising midway; a generator yielding a reused buffer; arguments that do not fit the
signature; ``cache_clear()``, ``cache.clear()``, ``oxicache.refresh()`` and ``oxicache.bypass()``;
threads and asyncio tasks (coroutines and async generators) on the same keys.

Backends: every entry of ``backends.BACKENDS`` (real PostgreSQL and MariaDB servers included), plus
``callback-fed``: a CallbackCache whose callback keeps deep copies of the stored values in a dict and whose
feed answers from it, as a user-built store would.

Known defects are switched off in the machine by ``KNOWN_DEFECTS``, and each has a focused strict xfail
test at the end of this file (``test_found_*``): when a fix lands, the xfail turns into a pass; then
remove the mark and the name from ``KNOWN_DEFECTS``. Issue 11's wrong values, switched off while this
oracle was written and fixed on main since (0865f71, key scheme 2), are back in the machine and keep
their focused tests as regression tests (``test_fixed_*``).

``ORACLE_RECHECK=name,...`` puts known defects back into the machine (to check a fix before removing its
switch); ``ORACLE_CONFLATIONS=name,...`` adds the documented equal-value conflations (see below).

The default run uses few examples per backend (``FAST``); ``test_differential_soak`` (``--run-slow``)
runs many more (``SOAK``). A failure prints the steps (hypothesis) and a note per call: enough to replay.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import copy
import dataclasses
import datetime as dt
import decimal
import inspect
import logging
import math
import os
import random
import sys
import threading
import uuid
import warnings
import zoneinfo
from pathlib import Path
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, note, settings
from hypothesis.errors import HypothesisWarning
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, precondition, rule, run_state_machine_as_test

sys.path.insert(0, str(Path(__file__).resolve().parent))
import backends  # noqa: E402
import oracle_support as osup  # noqa: E402
from oracle_support import NT, Box, Color, Keyed, Num, Pt, PurePosixPath, PureWindowsPath, key_canon, np  # noqa: E402

import oxicache  # noqa: E402
from oxicache import CacheEntry, CallbackCache, KeyBytes, KeyEncodingError, NoCache  # noqa: E402
from oxicache.keys import canonical_bytes  # noqa: E402

# ------------------------------------------------------------------------------------ switches

# Known defects: the machine leaves these behaviours out until they are fixed. Each one has a strict xfail
# test below (test_found_*); when it starts passing, delete the mark and the name here.
KNOWN_DEFECTS: set[str] = set()
# Former switches, fixed on main by 0865f71 (issue 11, wrong values 1-6, key scheme 2) while this oracle
# was written, and now checked by the machine; their focused tests stay below as regression tests. The
# names still work in KNOWN_DEFECTS should one come back:
#   "mutating_args"     a function that mutates its argument was filed under the changed inputs
#                       (DiskCache, JsonCache, DatabaseCache, CallbackCache);
#   "path_flavour"      PurePosixPath("/x") and PureWindowsPath("/x") shared a key;
#   "reused_buffer"     a generator yielding a reused buffer replayed its final state at every step;
#   "factory_classes"   classes made by a factory shared keys (now: process-local on InMemCache,
#                       refused with KeyEncodingError by stores other processes read);
#   "inmem_large_args"  InMemCache kept the arguments of a call with key bytes over 512 as the caller's
#                       objects, so a later mutation changed the entry's inputs (found by this oracle);
#   "misfit_message"    on the Python engine, arguments that do not fit a plain function's signature
#                       raised inspect's binding TypeError instead of the function's own (found here);
#   "nocache_local_class_key"  NoCache's cache_key/get refused a class its module cannot name, as if it
#                       were a store other processes read (found here).

# Values that compare equal in Python and share a key by the documented key scheme, yet a function can
# tell apart (so the memoized function returns the first caller's variant). Not defects by the docs
# (docs/key-scheme.md rules 9, 15 and 16); left out of the machine unless named here.
#   "namedtuple": NT(1, 2) keys as (1, 2) (rule 16) and the codec returns the namedtuple;
#   "concrete_path": PosixPath("/x") keys as PurePosixPath("/x") (rule 15: as_posix());
#   "zone_vs_offset": a ZoneInfo datetime keys as the fixed-offset datetime of the same isoformat();
#   "naive_fold": datetime(..., fold=1) keys as fold=0 (isoformat() omits fold).
EQUAL_VALUE_CONFLATIONS: set[str] = set()

# To check a fix before removing its switch, or to look at a conflation, run with
# ORACLE_RECHECK=path_flavour,reused_buffer (known defects put back into the machine) and/or
# ORACLE_CONFLATIONS=namedtuple,... (conflations added to the values).
KNOWN_DEFECTS -= set(filter(None, os.environ.get("ORACLE_RECHECK", "").split(",")))
EQUAL_VALUE_CONFLATIONS |= set(filter(None, os.environ.get("ORACLE_CONFLATIONS", "").split(",")))

MACHINE_BACKENDS = [*backends.BACKENDS, "callback-fed"]
STORING = {*backends.STORING, "callback-fed"}  # a memoized call can hit
ITERABLE = set(backends.STORING)  # entries can be listed (CallbackCache keeps none)
PYTHON_ENGINE = {n for n in MACHINE_BACKENDS if n not in ("inmem", "none")}  # PythonMemo stores
SHARED = PYTHON_ENGINE  # stores other processes read: they refuse process-local keys (key scheme 2)


# ------------------------------------------------------------------------------------ values

UTC = dt.timezone.utc
PLUS2 = dt.timezone(dt.timedelta(hours=2))
PARIS = zoneinfo.ZoneInfo("Europe/Paris")

SCALARS: list[Any] = [
    0, 1, -1, 2**70, -(2**64), True, False,
    0.0, -0.0, 1.0, 1.5, math.inf, -math.inf, math.nan, 1e300,
    complex(1, 0), complex(0, -0.0),
    "", "1", "a", "é", "a\x00b", "$tuple", "\ud800", "\U0001d11e", "0x", " ",
    b"", b"1", b"\x00\xff", None, ...,
    decimal.Decimal("1"), decimal.Decimal("1.0"), decimal.Decimal("-0"), decimal.Decimal("NaN"),
    dt.datetime(2024, 1, 2, 3, 4, 5, 6), dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
    dt.datetime(2024, 1, 2, 5, 4, 5, tzinfo=PLUS2), dt.datetime(2024, 1, 2, 4, 4, 5, tzinfo=PARIS),
    dt.date(2024, 1, 2), dt.time(3, 4, 5), dt.time(3, 4, 5, tzinfo=UTC), dt.timedelta(days=1, microseconds=5),
    dt.timedelta(0), uuid.UUID(int=1), uuid.UUID(int=2**127),
    PurePosixPath("/x"), PurePosixPath("x/y"), PurePosixPath("C:/x"),
    Color.RED, Color.GREEN, Num.ONE, Num.TWO, Color, Pt, Pt(1, 2), Pt(1.0, "2"),
]
if np is not None:
    SCALARS += [np.float64(1.0), np.int32(1), np.bool_(True), np.float32(-0.0), np.int64(-1)]
if "path_flavour" not in KNOWN_DEFECTS:
    SCALARS += [PureWindowsPath("/x"), PureWindowsPath("C:/x"), PureWindowsPath("x/y")]
if "concrete_path" in EQUAL_VALUE_CONFLATIONS:
    SCALARS += [Path("/x"), Path("x/y")]
if "namedtuple" in EQUAL_VALUE_CONFLATIONS:
    SCALARS += [NT(1, 2), (1, 2)]
if "zone_vs_offset" in EQUAL_VALUE_CONFLATIONS:
    SCALARS += [dt.datetime(2024, 7, 1, 12, tzinfo=PARIS), dt.datetime(2024, 7, 1, 12, tzinfo=PLUS2)]
if "naive_fold" in EQUAL_VALUE_CONFLATIONS:
    SCALARS += [dt.datetime(2024, 10, 27, 2, 30, fold=1), dt.datetime(2024, 10, 27, 2, 30)]

_UNHASHABLE_OR_NAN = (lambda v: isinstance(v, float) and math.isnan(v),
                      lambda v: isinstance(v, decimal.Decimal) and v.is_nan())
# numpy scalars stay out of sets and dict keys: comparing one with a Decimal or a huge int raises inside
# hypothesis's uniqueness check (np.int32(1) == Decimal("1") -> TypeError), a numpy quirk.
HASHABLE_SCALARS = [v for v in SCALARS if not any(f(v) for f in _UNHASHABLE_OR_NAN)
                    and not (np is not None and isinstance(v, np.generic))]

hashables = st.recursive(
    st.sampled_from(HASHABLE_SCALARS) | st.integers(-3, 3) | st.text(max_size=2),
    lambda inner: st.lists(inner, max_size=2).map(tuple) | st.frozensets(inner, max_size=2),
    max_leaves=3,
)


def _arrays() -> st.SearchStrategy[Any]:
    if np is None:
        return st.nothing()
    dtypes = st.sampled_from(["<i4", "<f8", "|u1", "|b1", ">i2"])

    def build(items: list[int], dtype: str, two_d: bool) -> Any:
        arr = np.array(items, dtype=dtype)
        return arr.reshape(2, -1) if two_d and arr.size % 2 == 0 and arr.size else arr

    return st.builds(build, st.lists(st.integers(0, 3), max_size=4), dtypes, st.booleans())


leaves = st.one_of(
    st.sampled_from(SCALARS),
    st.integers(-3, 3),
    st.text(max_size=3),
    st.binary(max_size=2).map(bytearray),
    _arrays(),
)
if "factory_classes" not in KNOWN_DEFECTS:
    leaves = leaves | st.builds(osup.make_class, st.sampled_from(["a", "b"]))

values = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(hashables, inner, max_size=3),
        st.sets(hashables, max_size=3),
        st.frozensets(hashables, max_size=2),
        st.builds(Box, st.lists(inner, max_size=2), st.sampled_from(["", "l"])),
        st.builds(Pt, hashables, hashables),
        st.builds(Keyed, inner),
    ),
    max_leaves=5,
)
big_lists = st.integers(250, 300).map(lambda n: list(range(n)))  # key bytes over 512: kept by reference
args_values = values | big_lists

KW_NAMES = ["k1", "zz", "args", "kw", "é", "b_"]

def lookalike_group(i: int) -> list[Any]:
    """Group ``i`` of look-alikes: values that are equal in Python, print alike, or share bytes, but are
    different values by the key scheme (or the same value, where the docs say so: every NaN). Built fresh
    on each use, so mutable members are never shared between calls."""
    groups: list[list[Any]] = [
        [0, 0.0, -0.0, False, "", "0", None, b"", [], (), {}, set(), frozenset(), bytearray(), decimal.Decimal("0"),
         decimal.Decimal("-0"), dt.timedelta(0), ..., [[]], ((),), ([],)],
        [1, 1.0, True, "1", b"1", bytearray(b"1"), complex(1, 0), Num.ONE, Color.RED, Color.GREEN, decimal.Decimal("1"),
         decimal.Decimal("1.0"), [1], (1,), {1}, frozenset({1}), {1: None}, uuid.UUID(int=1), Keyed(1), ("keyed", 1)],
        ["a", "A", b"a", ["a"], ("a",), {"a"}, {"a": None}, Keyed("a"), ("keyed", "a"), Pt("a", None), "a\x00", "\ud800"],
        [PurePosixPath("/x"), "/x", b"/x", PurePosixPath("x"), PurePosixPath("/x/"), ["/x"], Keyed("/x")],
        [dt.datetime(2024, 1, 2, 3, 4, 5), dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
         dt.datetime(2024, 1, 2, 5, 4, 5, tzinfo=PLUS2), dt.datetime(2024, 1, 2, 4, 4, 5, tzinfo=PARIS),
         dt.date(2024, 1, 2), "2024-01-02T03:04:05", dt.time(3, 4, 5), dt.time(3, 4, 5, tzinfo=UTC), dt.timedelta(days=1)],
        [Pt(1, 2), Pt(2, 1), Pt(1.0, 2), (1, 2), [1, 2], {"x": 1, "y": 2}, {"y": 2, "x": 1}, Box([1, 2]), Box([1, 2], "l"),
         Keyed((1, 2)), ("keyed", (1, 2))],
        [{1: "a"}, {"1": "a"}, {True: "a"}, {1.0: "a"}, {(1,): "a"}, {frozenset({1}): "a"}, [(1, "a")],
         {1: "a", 2: "b"}, {2: "b", 1: "a"}, {None: "a"}, {"": "a"}],
        [math.nan, -math.nan, float("nan"), decimal.Decimal("NaN"), "nan", math.inf, -math.inf, [math.nan]],
        [Color, Pt, Num, Box, "oracle_support.Color", Color.RED, Keyed, type(None), int, bool],
    ]
    if np is not None:
        groups[1] += [np.int32(1), np.float64(1.0), np.bool_(True), np.array([1])]
        groups.append([np.array([1], "<i4"), np.array([1], "<u4"), np.array([1], "<i4").view("<f4"), np.array([1, 0], "<i2"),
                       np.array([[1]], "<i4"), np.array([1.0]), np.array([True]), np.array([], "<i4"), np.array([], "<f8"),
                       np.zeros((0, 2)), np.zeros((2, 0)), np.int32(1), [1]])
    if "path_flavour" not in KNOWN_DEFECTS:
        groups[3] += [PureWindowsPath("/x"), PureWindowsPath("\\x"), PureWindowsPath("C:/x"), PureWindowsPath("x")]
    if "factory_classes" not in KNOWN_DEFECTS:
        groups[8] += [osup.make_class("a"), osup.make_class("b"), osup.make_class("a")]
    if "concrete_path" in EQUAL_VALUE_CONFLATIONS:
        groups[3] += [Path("/x"), Path("x")]
    if "namedtuple" in EQUAL_VALUE_CONFLATIONS:
        groups[5] += [NT(1, 2)]
    if "zone_vs_offset" in EQUAL_VALUE_CONFLATIONS:
        groups[4] += [dt.datetime(2024, 1, 2, 4, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=1)))]
    if "naive_fold" in EQUAL_VALUE_CONFLATIONS:
        groups[4] += [dt.datetime(2024, 1, 2, 3, 4, 5, fold=1)]
    return groups[i % len(groups)]


lookalike_picks = st.lists(st.integers(0, 40), min_size=2, max_size=4)


def lookalike_pool() -> st.SearchStrategy[list[Any]]:
    """Two to four members of one look-alike group (fresh objects)."""
    return st.builds(lambda g, picks: [lookalike_group(g)[p % len(lookalike_group(g))] for p in picks],
                     st.integers(0, 9), lookalike_picks)

controls = st.sampled_from([None, None, None, "refresh", "bypass"])
styles = st.integers(0, 2**16)


def describe_inputs() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({
        "a": args_values,
        "b": st.builds(lambda: (1, "b")) | values,  # a fresh copy of the default, or another value
        "args": st.lists(values, max_size=2).map(tuple),
        "c": st.none() | values,
        "kw": st.dictionaries(st.sampled_from(KW_NAMES), values, max_size=2),
    })


def pos_kw_inputs() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({"x": args_values, "y": st.just(0.0) | values, "z": st.just("z") | values})


def stream_inputs() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({"n": st.integers(0, 4), "seed": values,
                                  "fail_at": st.none() | st.none() | st.integers(0, 3)})


def pop_inputs() -> st.SearchStrategy[dict[str, Any]]:
    xs = st.one_of(st.lists(values, max_size=4), st.dictionaries(hashables, values, max_size=3),
                   st.builds(Box, st.lists(values, max_size=3)), _arrays(), big_lists)
    return st.fixed_dictionaries({"xs": xs, "n": st.just(1) | st.integers(0, 3)})


# ------------------------------------------------------------------------------------ helpers

P = inspect.Parameter


def spell(sig: inspect.Signature, inputs: dict[str, Any], style: int) -> tuple[list[Any], dict[str, Any]]:
    """A call spelling of ``inputs`` (every parameter's value, defaults included): positionally, by
    keyword, or left out when the value keys as the default, chosen by ``style``; keywords in either
    order. The same style spells equal inputs the same way."""
    rnd = random.Random(style)
    params = list(sig.parameters.values())
    var_pos = next((p for p in params if p.kind is P.VAR_POSITIONAL), None)
    forced = bool(var_pos is not None and inputs[var_pos.name])  # *args given: everything before is positional
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    positional_open = True
    for p in params:
        v = inputs[p.name]
        if p.kind is P.VAR_POSITIONAL:
            args.extend(v)
            continue
        if p.kind is P.VAR_KEYWORD:
            items = list(v.items())
            if rnd.random() < 0.5:
                items.reverse()
            kwargs.update(items)
            continue
        omittable = p.default is not P.empty and key_canon(v) == key_canon(p.default)
        if p.kind is P.POSITIONAL_ONLY or (p.kind is P.POSITIONAL_OR_KEYWORD and forced):
            args.append(v)
            continue
        choices = ["kw"] + (["pos"] if positional_open and p.kind is P.POSITIONAL_OR_KEYWORD else []) + (["omit"] if omittable else [])
        how = rnd.choice(choices)
        if how == "pos":
            args.append(v)
        else:
            positional_open = False
            if how == "kw":
                kwargs[p.name] = v
    if rnd.random() < 0.5:
        kwargs = dict(reversed(list(kwargs.items())))
    return args, kwargs


def misfit(sig: inspect.Signature, inputs: dict[str, Any], which: int) -> tuple[list[Any], dict[str, Any]] | None:
    """A spelling that does not fit the signature, or None when this kind of misfit cannot happen here."""
    params = list(sig.parameters.values())
    first = params[0]
    named = [p for p in params if p.kind in (P.POSITIONAL_OR_KEYWORD, P.KEYWORD_ONLY)]
    has_var_pos = any(p.kind is P.VAR_POSITIONAL for p in params)
    has_var_kw = any(p.kind is P.VAR_KEYWORD for p in params)
    which %= 4
    if which == 0:  # the first (required) argument left out, the others by keyword
        if has_var_pos and inputs[next(p.name for p in params if p.kind is P.VAR_POSITIONAL)]:
            return None
        return [], {p.name: inputs[p.name] for p in named if p is not first}
    if which == 1:  # the first argument twice: by position and by keyword
        return [inputs[first.name]], {first.name: inputs[first.name]}
    if which == 2 and not has_var_pos:  # one positional argument too many
        return [inputs[p.name] for p in params if p.kind in (P.POSITIONAL_ONLY, P.POSITIONAL_OR_KEYWORD)] + ["extra"], {}
    if which == 3 and not has_var_kw:  # an unknown keyword
        args, kwargs = spell(sig, inputs, 0)
        return args, {**kwargs, "nope": 1}
    return None


def passed_values(fn: str, inputs: dict[str, Any]) -> list[Any]:
    """The argument objects a caller passes (the items of *args and **kwargs, not their containers)."""
    if fn == "describe":
        return [inputs["a"], inputs["b"], *inputs["args"], inputs["c"], *inputs["kw"].values()]
    return list(inputs.values())


def outcome(fn: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return ("ok", fn())
    except Exception as err:  # noqa: BLE001 - the outcome is compared
        return ("raised", err)


def show(out: tuple[str, Any]) -> str:
    kind, v = out
    return f"{type(v).__name__}{v.args!r}" if kind == "raised" else repr(v)[:300]


def assert_same_outcome(what: str, plain: tuple[str, Any], memo: tuple[str, Any], exact_message: bool = True) -> None:
    if plain[0] == "raised" and memo[0] == "raised" and not exact_message:
        assert type(plain[1]) is type(memo[1]), f"{what}: plain raised {show(plain)}, memoized {show(memo)}"
        return
    assert plain[0] == memo[0] and osup.same(plain[1], memo[1]), (
        f"{what}:\n  plain    -> {plain[0]} {show(plain)}\n  memoized -> {memo[0]} {show(memo)}")


def consume(make: Callable[[], Any], mode: str, k: int) -> tuple[list[Any], BaseException | None, bool]:
    """Consume a generator: "full", "partial" (stop after k items, then close), or "send" (send a value
    at each step). Each item is deep-copied as it arrives. Returns (items, exception, finished)."""
    items: list[Any] = []
    try:
        it = make()
        if mode == "send":
            x = it.send(None)
            while True:
                items.append(copy.deepcopy(x))
                x = it.send(len(items))
        for x in it:
            items.append(copy.deepcopy(x))
            if mode == "partial" and len(items) >= k:
                it.close()
                return items, None, False
    except StopIteration:
        return items, None, True
    except Exception as err:  # noqa: BLE001 - compared
        return items, err, False
    return items, None, True


async def aconsume(make: Callable[[], Any], mode: str, k: int) -> tuple[list[Any], BaseException | None, bool]:
    items: list[Any] = []
    try:
        agen = make()
        async for x in agen:
            items.append(copy.deepcopy(x))
            if mode == "partial" and len(items) >= k:
                await agen.aclose()
                return items, None, False
    except Exception as err:  # noqa: BLE001 - compared
        return items, err, False
    return items, None, True


def contains_keybytes(v: Any) -> bool:
    if isinstance(v, KeyBytes):
        return True
    if isinstance(v, dict):
        return any(contains_keybytes(k) or contains_keybytes(x) for k, x in v.items())
    if isinstance(v, (list, tuple, set, frozenset)):
        return any(contains_keybytes(x) for x in v)
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return any(contains_keybytes(getattr(v, f.name)) for f in dataclasses.fields(v))
    return False


def inmem_keeps_objects(inputs: dict[str, Any]) -> bool:
    """True when InMemCache keeps these arguments as the caller's objects (docs/backends/memory.md: key
    bytes over 512; a margin is left for the function name)."""
    return len(canonical_bytes(inputs)) > 400


class FeedStore:
    """A user-built store over CallbackCache: the callback keeps deep copies of each stored value (and a
    record of every callback), the feed answers from them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.data: dict[int, Any] = {}
        self.records: list[tuple[int, dict[str, Any]]] = []
        self.names: dict[Any, str] = {}

    def callback(self, key: int, value: dict[str, Any]) -> None:
        snapshot = copy.deepcopy(value)
        with self.lock:
            self.records.append((key, snapshot))
            self.data[key] = copy.deepcopy(value["output"])

    def feed(self, func: Any, **inputs: Any) -> Any:
        name = func if isinstance(func, str) else self.names.get(func)
        if name is None:
            return ...
        key = CacheEntry(name, inputs).key
        with self.lock:
            return copy.deepcopy(self.data[key]) if key in self.data else ...


@contextlib.contextmanager
def control_cm(control: str | None):  # noqa: ANN201
    if control is None:
        yield
    else:
        with getattr(oxicache, control)():
            yield


class _LogRecords(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


# ------------------------------------------------------------------------------------ the machine


@dataclasses.dataclass(eq=False)
class Call:
    """A call made earlier: the function and its bound inputs (the very objects the caller holds)."""

    fn: str
    inputs: dict[str, Any]

    def __repr__(self) -> str:
        return f"Call({self.fn!r}, {self.inputs!r})"


class Tally:
    """The expected change of one function's ``cache_info()`` counters since they were last compared, as
    a (low, high) range per counter. Compared at each store check, not per call: on JsonCache,
    ``cache_info()`` reads every entry file (its ``currsize``), so per-call reads dominated the run."""

    def __init__(self) -> None:
        self.ranges = {name: [0, 0] for name in ("hits", "misses", "errors", "calls")}

    def add(self, **ranges: tuple[int, int]) -> None:
        for name, (lo, hi) in ranges.items():
            self.ranges[name][0] += lo
            self.ranges[name][1] += hi

    def check(self, what: str, before: Any, after: Any) -> None:
        delta = {"hits": after.hits - before.hits, "misses": after.misses - before.misses,
                 "errors": after.errors - before.errors}
        delta["calls"] = delta["hits"] + delta["misses"]
        for name, (lo, hi) in self.ranges.items():
            assert lo <= delta[name] <= hi, f"{what}: cache_info() {name} changed by {delta[name]}, expected {lo}..{hi} ({before} -> {after})"


RULE_COUNTS: collections.Counter[str] = collections.Counter()  # rule runs in this process (for tuning)


def step(method: Callable[..., Any]) -> Callable[..., Any]:
    """Marks the machine busy during a rule, so teardown skips its checks after a failed step."""

    def run(self: DifferentialMachine, *args: Any, **kwargs: Any) -> Any:
        RULE_COUNTS[method.__name__] += 1
        self.busy = True
        result = method(self, *args, **kwargs)
        self.busy = False
        return result

    run.__name__ = method.__name__
    run.__signature__ = inspect.signature(method)  # type: ignore[attr-defined]
    return run


SYNC = ["describe", "pos_kw"]
ALL_FNS = ["describe", "pos_kw", "pause", "pop_some", "stream", "buffer_stream", "acompute", "astream"]


class DifferentialMachine(RuleBasedStateMachine):
    calls = Bundle("calls")

    def __init__(self, backend: str, get_cache: Callable[[FeedStore], Any]) -> None:
        super().__init__()
        self.backend = backend
        self.feed = FeedStore()
        self.cache = get_cache(self.feed)
        self.cache.clear()
        self.stores = backend in STORING
        self.clearable = backend in ITERABLE
        self.busy = False
        self.memo_runs, self.plain_runs = osup.Counter(), osup.Counter()
        self.plain = osup.make_functions(self.plain_runs)
        raw = osup.make_functions(self.memo_runs)
        self.memo: dict[str, Any] = {}
        for name, fn in raw.items():
            self.memo[name] = self.cache.memoize(name=f"oracle.{name}")(fn)
            for alias in (fn, self.memo[name], self.memo[name].cache_name):
                self.feed.names[alias] = self.memo[name].cache_name
        self.fn_of_name = {self.memo[n].cache_name: n for n in self.memo}
        self.sigs = {name: inspect.signature(fn) for name, fn in self.plain.items()}
        self.model: dict[str, set[Any]] = {n: set() for n in ALL_FNS}  # keys with an entry
        self.tally = {n: Tally() for n in ALL_FNS}
        self.info_base = {n: self.memo[n].cache_info() for n in ALL_FNS}
        self.checked_records = 0
        self._warnings = warnings.catch_warnings(record=True)
        self.caught = self._warnings.__enter__()
        warnings.simplefilter("always")
        self.log = _LogRecords()
        logging.getLogger("oxicache").addHandler(self.log)
        note(f"backend={backend}")

    # ---- the model

    def key(self, fn: str, inputs: dict[str, Any]) -> Any:
        """The model's key of a call (``fn`` is implied: the model keeps one set per function)."""
        return key_canon(inputs)

    def refused(self, inputs: dict[str, Any]) -> bool:
        """Key scheme 2: a store other processes read refuses a key involving a class its module cannot
        name, with KeyEncodingError, and the function does not run."""
        return self.backend in SHARED and osup.involves_local_class(inputs)

    def expect_hit(self, fn: str, key: Any, control: str | None) -> bool:
        if not self.stores or control is not None:
            return False
        return key in self.model[fn]

    def stored(self, fn: str, key: Any, control: str | None) -> None:
        """A complete, successful run of ``fn`` that was not bypassed: its key now has an entry."""
        if self.stores and control != "bypass":
            self.model[fn].add(key)

    def clear_model(self, fn: str | None = None) -> None:
        if not self.clearable:
            return  # CallbackCache: the user's store is not the cache's to clear
        for name in [fn] if fn else ALL_FNS:
            self.model[name].clear()

    def assert_refused(self, what: str, got: tuple[str, Any], ran: int) -> None:
        assert got[0] == "raised" and isinstance(got[1], KeyEncodingError), (
            f"{what}: a class its module cannot name must be refused with KeyEncodingError on {self.backend}; got {show(got)}")
        assert ran == 0, f"{what}: the function ran {ran} times"

    # ---- one sync call

    def call_sync(self, fn: str, inputs: dict[str, Any], style: int, control: str | None,
                  plain_inputs: dict[str, Any] | None = None) -> tuple[str, Any]:
        plain_inputs = copy.deepcopy(inputs) if plain_inputs is None else plain_inputs
        key, refused = self.key(fn, plain_inputs), self.refused(plain_inputs)  # before the calls change them
        m_args, m_kwargs = spell(self.sigs[fn], inputs, style)
        p_args, p_kwargs = spell(self.sigs[fn], plain_inputs, style)
        expected = outcome(lambda: self.plain[fn](*p_args, **p_kwargs))
        hit = self.expect_hit(fn, key, control)
        runs0 = self.memo_runs[fn]
        with control_cm(control):
            got = outcome(lambda: self.memo[fn](*m_args, **m_kwargs))
        ran = self.memo_runs[fn] - runs0
        note(f"{fn}(*{m_args!r}, **{m_kwargs!r}) control={control} expect_hit={hit} ran={ran} -> {show(got)}")
        what = f"{self.backend}: {fn}(*{m_args!r}, **{m_kwargs!r}) under {control}"
        if refused:
            self.assert_refused(what, got, ran)
            self.tally[fn].add(misses=(0, 1), calls=(0, 1))  # whether a refused lookup counts is not specified
            return got
        assert_same_outcome(what, expected, got)
        assert ran == (0 if hit else 1), f"{self.backend}: {fn} ran {ran} times, the model expected a {'hit' if hit else 'miss'}"
        raised = int(got[0] == "raised" and ran > 0)
        self.tally[fn].add(hits=(int(hit),) * 2, misses=(int(not hit),) * 2, errors=(raised, raised), calls=(1, 1))
        if got[0] == "ok" and ran:
            self.stored(fn, key, control)
        return got

    # ---- rules: plain functions

    @rule(target=calls, fn=st.sampled_from(SYNC), data=st.data(), style=styles, control=controls)
    @step
    def call_new(self, fn: str, data: Any, style: int, control: str | None) -> Call:
        inputs = data.draw(describe_inputs() if fn == "describe" else pos_kw_inputs(), label="inputs")
        self.call_sync(fn, inputs, style, control)
        return Call(fn, inputs)

    @rule(call=calls, how=st.sampled_from(["same objects", "deep copy", "reordered copy"]), style=styles, control=controls)
    @step
    def call_again(self, call: Call, how: str, style: int, control: str | None) -> None:
        inputs = {"same objects": lambda v: v, "deep copy": copy.deepcopy, "reordered copy": osup.reordered}[how](call.inputs)
        if how != "same objects":
            assert key_canon(inputs) == key_canon(call.inputs), "oracle: a copy must key as the original"
        note(f"again with {how}")
        self.call_sync(call.fn, inputs, style, control)

    @rule(fn=st.sampled_from(SYNC), data=st.data(), seed=st.integers(0, 2**20), style=styles)
    @step
    def call_lookalikes(self, fn: str, data: Any, seed: int, style: int) -> None:
        """A call made again and again with one parameter set in turn to every member of a look-alike
        group, in a drawn order (1, 1.0, True, "1", [1]...; a PurePosixPath and a PureWindowsPath; a
        dataclass, a tuple and a dict of its fields; ...): two members that share an entry by mistake
        always meet. ``seed`` picks the group, the parameter and the order."""
        base = data.draw(describe_inputs() if fn == "describe" else pos_kw_inputs(), label="inputs")
        names = [n for n in self.sigs[fn].parameters if n not in ("args", "kw")]
        group, name = seed % 10, names[(seed // 10) % len(names)]
        members = lookalike_group(group)
        random.Random(seed).shuffle(members)
        for value in members:
            inputs = {**copy.deepcopy(base), name: value}
            note(f"look-alike {name}={value!r}")
            self.call_sync(fn, inputs, style, None)
            self.check_get(fn, inputs)

    @rule(seed=st.integers(0, 2**20), style=styles)
    @step
    def stream_lookalikes(self, seed: int, style: int) -> None:
        """A stream seeded in turn with every member of a look-alike group, consumed fully (so stored, on
        storing backends)."""
        members = lookalike_group(seed % 10)
        random.Random(seed).shuffle(members)
        for value in members:
            self.run_stream("stream", {"n": 2, "seed": value, "fail_at": None}, "full", 1, style, None)

    @rule(call=calls, pick=st.integers(0, 50), how=st.integers(0, 9), style=styles, control=controls)
    @step
    def mutate_then_call(self, call: Call, pick: int, how: int, style: int, control: str | None) -> None:
        """The caller changes an argument it passed earlier (in place), then calls again."""
        found = [m for v in passed_values(call.fn, call.inputs) for m in osup.mutables(v)]
        if not found:
            return
        if self.backend == "inmem" and "inmem_large_args" in KNOWN_DEFECTS and inmem_keeps_objects(call.inputs):
            note("skipped: inmem_stale_inputs")
            return
        did = osup.mutate(found[pick % len(found)], how)
        note(f"caller mutated {call.fn}'s argument: {did}")
        self.call_sync(call.fn, call.inputs, style, control)

    @rule(call=calls, which=st.integers(0, 3))
    @step
    def call_misfit(self, call: Call, which: int) -> None:
        """Arguments that do not fit the signature: the function's own TypeError (plain functions)."""
        spelled = misfit(self.sigs[call.fn], call.inputs, which)
        if spelled is None or self.refused(call.inputs):
            return  # with a refused key, which TypeError comes first is not specified
        args, kwargs = spelled
        expected = outcome(lambda: self.plain[call.fn](*args, **kwargs))
        if expected[0] == "ok":
            return  # the spelling happens to fit
        runs0 = self.memo_runs[call.fn]
        got = outcome(lambda: self.memo[call.fn](*args, **kwargs))
        note(f"misfit {call.fn}(*{args!r}, **{kwargs!r}) -> {show(got)}")
        self.tally[call.fn].add(misses=(0, 1), errors=(0, 1), calls=(0, 1))  # not specified for a misfit
        exact = "misfit_message" not in KNOWN_DEFECTS or self.backend not in PYTHON_ENGINE
        assert_same_outcome(f"{self.backend}: misfit {call.fn}(*{args!r}, **{kwargs!r})", expected, got, exact)
        assert self.memo_runs[call.fn] == runs0

    @rule(data=st.data(), style=styles, control=controls)
    @step
    def call_mutating(self, data: Any, style: int, control: str | None) -> None:
        """A function that mutates its own argument: the result is the plain function's for the argument
        as it was at the call."""
        if "mutating_args" in KNOWN_DEFECTS and self.backend in PYTHON_ENGINE:
            return
        inputs = data.draw(pop_inputs(), label="inputs")
        if self.backend == "inmem" and "inmem_large_args" in KNOWN_DEFECTS and inmem_keeps_objects(inputs):
            return
        original = copy.deepcopy(inputs)
        self.call_sync("pop_some", inputs, style, control, plain_inputs=copy.deepcopy(original))
        note(f"after the call the caller holds {inputs!r}")
        self._last_pop = (inputs, original)

    @precondition(lambda self: hasattr(self, "_last_pop"))
    @rule(how=st.sampled_from(["the mutated objects", "a copy of the original"]), style=styles, control=controls)
    @step
    def call_mutating_again(self, how: str, style: int, control: str | None) -> None:
        mutated, original = self._last_pop
        inputs = mutated if how == "the mutated objects" else copy.deepcopy(original)
        if self.backend == "inmem" and "inmem_large_args" in KNOWN_DEFECTS and inmem_keeps_objects(inputs):
            return
        self.call_sync("pop_some", inputs, style, control)

    # ---- rules: generators

    def run_stream(self, fn: str, inputs: dict[str, Any], mode: str, k: int, style: int, control: str | None) -> None:
        plain_inputs = copy.deepcopy(inputs)
        key, refused = self.key(fn, plain_inputs), self.refused(plain_inputs)
        m_args, m_kwargs = spell(self.sigs[fn], inputs, style)
        p_args, p_kwargs = spell(self.sigs[fn], plain_inputs, style)
        expected = consume(lambda: self.plain[fn](*p_args, **p_kwargs), mode, k)
        hit = self.expect_hit(fn, key, control)
        runs0 = self.memo_runs[fn]
        with control_cm(control):
            got = consume(lambda: self.memo[fn](*m_args, **m_kwargs), mode, k)
        ran = self.memo_runs[fn] - runs0
        note(f"{fn}(*{m_args!r}, **{m_kwargs!r}) consumed {mode} k={k} control={control} expect_hit={hit} ran={ran} -> {got[0]!r} {got[1]!r} finished={got[2]}")
        what = f"{self.backend}: {fn}(*{m_args!r}, **{m_kwargs!r}) consumed {mode} (k={k}) under {control}"
        if refused:
            assert got[0] == [], f"{what}: items {got[0]!r} before the refusal"
            self.assert_refused(what, ("raised", got[1]) if got[1] else ("ok", None), ran)
            self.tally[fn].add(misses=(0, 1), calls=(0, 1))
            return
        assert osup.same(expected[0], got[0]), f"{what}:\n  plain items    {expected[0]!r}\n  memoized items {got[0]!r}"
        assert_same_outcome(what, ("raised", expected[1]) if expected[1] else ("ok", None),
                            ("raised", got[1]) if got[1] else ("ok", None))
        assert expected[2] == got[2], what
        assert ran == (0 if hit else 1), f"{what}: ran {ran} times, the model expected a {'hit' if hit else 'miss'}"
        # send() steers the run once an item was received: a steered run neither counts an error nor stores
        steered = mode == "send" and len(got[0]) > 0 and self.backend != "none"
        error = int(got[1] is not None and ran > 0 and not steered)
        self.tally[fn].add(hits=(int(hit),) * 2, misses=(int(not hit),) * 2, errors=(error, error), calls=(1, 1))
        if ran and got[2] and got[1] is None and not steered:
            self.stored(fn, key, control)

    @rule(data=st.data(), mode=st.sampled_from(["full", "full", "partial", "send"]), k=st.integers(0, 3),
          style=styles, control=controls)
    @step
    def consume_stream(self, data: Any, mode: str, k: int, style: int, control: str | None) -> None:
        inputs = data.draw(stream_inputs(), label="inputs")
        self.run_stream("stream", inputs, mode, max(k, 1), style, control)
        self._last_stream = inputs

    @precondition(lambda self: hasattr(self, "_last_stream"))
    @rule(mode=st.sampled_from(["full", "partial", "send"]), k=st.integers(1, 3), style=styles, control=controls)
    @step
    def consume_stream_again(self, mode: str, k: int, style: int, control: str | None) -> None:
        self.run_stream("stream", osup.reordered(self._last_stream), mode, k, style, control)

    @precondition(lambda self: "reused_buffer" not in KNOWN_DEFECTS)
    @rule(n=st.integers(0, 4), seed=values, times=st.integers(1, 3), style=styles)
    @step
    def consume_buffer_stream(self, n: int, seed: Any, times: int, style: int) -> None:
        """A generator yielding one reused list: each replay must yield what the first consumer saw."""
        for _ in range(times):
            self.run_stream("buffer_stream", {"n": n, "seed": seed}, "full", 1, style, None)

    # ---- rules: controls and clearing

    @rule(action=st.sampled_from(["check the store", "fn.cache_clear()", "cache.clear()"]), fn=st.sampled_from(ALL_FNS))
    @step
    def maintain(self, action: str, fn: str) -> None:
        """One rule for the three (hypothesis favours rules with few arguments: three such rules took half
        the steps)."""
        if action == "check the store":
            self.check_store()
        elif action == "fn.cache_clear()":
            self.memo[fn].cache_clear()
            info = self.memo[fn].cache_info()
            assert (info.hits, info.misses, info.errors, info.currsize) == (0, 0, 0, 0), info
            self.info_base[fn], self.tally[fn] = info, Tally()
            self.clear_model(fn)
        else:
            self.cache.clear()
            self.clear_model()

    @rule(call=calls)
    @step
    def direct_get(self, call: Call) -> None:
        self.check_get(call.fn, call.inputs)

    def check_get(self, fn: str, inputs: dict[str, Any]) -> None:
        """``cache.get(fn, **inputs)`` (keyword inputs bound to the signature, as a call): the stored value
        of the call, or ``...``; and ``fn.cache_key(...)`` is an int. For describe calls without *args
        (pos_kw's x is positional-only)."""
        if fn != "describe" or inputs["args"]:
            return
        kwargs = {"a": inputs["a"], "b": inputs["b"], "c": inputs["c"], **inputs["kw"]}
        inputs = copy.deepcopy(inputs)
        key = self.key(fn, inputs)
        if self.refused(inputs):
            with pytest.raises(KeyEncodingError):
                self.cache.get(self.memo[fn], **kwargs)
            return
        if self.backend == "none" and "nocache_local_class_key" in KNOWN_DEFECTS and osup.involves_local_class(inputs):
            return
        assert isinstance(self.memo[fn].cache_key(**kwargs), int)
        got = self.cache.get(self.memo[fn], **kwargs)
        note(f"cache.get(describe, **{kwargs!r}) -> {got!r}"[:500])
        if key in self.model[fn]:
            p_args, p_kwargs = spell(self.sigs[fn], inputs, 0)
            assert_same_outcome(f"{self.backend}: cache.get(describe, **{kwargs!r})",
                                outcome(lambda: self.plain[fn](*p_args, **p_kwargs)), ("ok", got))
        else:
            assert got is ..., f"{self.backend}: cache.get(describe, **{kwargs!r}) found {got!r}; the model has no entry"

    # ---- rules: concurrency

    @rule(fn=st.sampled_from(["pause", "pos_kw"]), pool=st.lists(values, min_size=1, max_size=3) | lookalike_pool(),
          picks=st.lists(st.integers(0, 3), min_size=2, max_size=6), copies=st.booleans())
    @step
    def threads(self, fn: str, pool: list[Any], picks: list[int], copies: bool) -> None:
        """Threads call the same keys at once (released together by a barrier)."""
        inputs = [{"x": copy.deepcopy(pool[i % len(pool)]) if copies else pool[i % len(pool)]} for i in picks]
        defaults = {p.name: p.default for p in self.sigs[fn].parameters.values() if p.default is not P.empty}
        keys = [self.key(fn, {**defaults, **i}) for i in inputs]
        expected = [outcome(lambda i=i: self.plain[fn](copy.deepcopy(i["x"]))) for i in inputs]
        results: list[Any] = [None] * len(inputs)
        barrier = threading.Barrier(len(inputs))
        runs0 = self.memo_runs[fn]

        def worker(n: int) -> None:
            barrier.wait(timeout=30)
            x = inputs[n]["x"]
            results[n] = outcome(lambda: self.memo[fn](x))

        workers = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(len(inputs))]
        for w in workers:
            w.start()
        for w in workers:
            w.join(timeout=60)
        assert not any(w.is_alive() for w in workers), f"{self.backend}: a thread calling {fn} hangs"
        note(f"threads {fn} on {[repr(i['x'])[:60] for i in inputs]}: {[show(r)[:80] for r in results]}")
        refused = [self.refused(i) for i in inputs]
        for i, (e, g) in enumerate(zip(expected, results)):
            what = f"{self.backend}: thread {i} {fn}({inputs[i]['x']!r})"
            if refused[i]:
                self.assert_refused(what, g, 0)
            else:
                assert_same_outcome(what, e, g)
        kept = [n for n in range(len(inputs)) if not refused[n]]  # refused calls never run
        self.check_concurrent_runs(fn, [keys[n] for n in kept], [expected[n][0] == "raised" for n in kept],
                                   self.memo_runs[fn] - runs0, None, single_flight=True)
        n, r = len(kept), len(inputs) - len(kept)
        self.tally[fn].add(hits=(0, n), misses=(0, n + r), errors=(0, n), calls=(n, n + r))

    def check_concurrent_runs(self, fn: str, keys: list[Any], unstored: list[bool], ran: int, control: str | None,
                              single_flight: bool) -> None:
        """Bounds on the runs of concurrent calls. ``unstored[i]``: call i stores nothing even when it runs
        (it raises, or consumes a stream partly)."""
        calls = len(keys)
        if not calls:
            assert ran == 0, f"{self.backend}: {fn} ran {ran} times without a call"
            return
        distinct = {repr(k) for k in keys}
        if self.backend == "none" or control == "bypass":
            lo = hi = calls
        elif control == "refresh" or not self.stores:
            lo, hi = (len(distinct) if single_flight else 1), calls
        else:
            # calls whose key has an entry are hits; each key without one runs at least once; with
            # single-flight a key that gets stored runs exactly once, a key that does not (it raises) may
            # run again for a caller that arrives after the first run failed
            missing = [(repr(k), u) for k, u in zip(keys, unstored) if k not in self.model[fn]]
            keys_missing = {k for k, _ in missing}
            if single_flight:
                storing = {k for k, u in missing if not u}
                lo = len(keys_missing)
                hi = len(storing) + sum(1 for k, u in missing if k not in storing)
            else:
                lo, hi = len(keys_missing), len(missing)
        assert lo <= ran <= hi, f"{self.backend}: {fn} ran {ran} times for {calls} concurrent calls; expected {lo}..{hi}"
        for k, u in zip(keys, unstored):
            if not u:
                self.stored(fn, k, control)

    @rule(pool=st.lists(values, min_size=1, max_size=3) | lookalike_pool(),
          tasks=st.lists(st.tuples(st.sampled_from(["acompute", "astream"]), st.integers(0, 3), st.integers(0, 2)),
                         min_size=2, max_size=6),
          control=controls)
    @step
    def async_tasks(self, pool: list[Any], tasks: list[tuple[str, int, int]], control: str | None) -> None:
        """asyncio tasks of one event loop call the same keys: coroutines (single-flight) and async
        generators (consumed fully, partly, or failing midway)."""
        specs = []
        for kind, pick, variant in tasks:
            seed = copy.deepcopy(pool[pick % len(pool)])
            if kind == "acompute":
                specs.append((kind, {"x": seed, "y": [1, 2, "y"][variant]}, None))
            else:
                mode = ["full", "partial", "full"][variant]
                specs.append((kind, {"n": 3, "seed": seed, "fail_at": 1 if variant == 2 else None}, mode))

        def run(fns: dict[str, Any], spec_inputs: list[tuple[str, dict[str, Any], str | None]]) -> list[Any]:
            async def one(kind: str, inputs: dict[str, Any], mode: str | None) -> Any:
                if kind == "acompute":
                    try:
                        return ("ok", await fns[kind](inputs["x"], y=inputs["y"]))
                    except Exception as err:  # noqa: BLE001
                        return ("raised", err)
                return await aconsume(lambda: fns[kind](inputs["n"], inputs["seed"], fail_at=inputs["fail_at"]), mode, 1)

            async def main() -> list[Any]:
                return list(await asyncio.gather(*(one(*s) for s in spec_inputs)))

            return asyncio.run(main())

        expected = run(self.plain, copy.deepcopy(specs))
        runs0 = {k: self.memo_runs[k] for k in ("acompute", "astream")}
        with control_cm(control):
            got = run(self.memo, specs)
        note(f"async tasks under {control}: {[(k, repr(i)[:60], m) for k, i, m in specs]} -> {[repr(g)[:80] for g in got]}")
        for i, ((kind, inputs, mode), e, g) in enumerate(zip(specs, expected, got)):
            what = f"{self.backend}: task {i} {kind}({inputs!r}) {mode or ''} under {control}"
            if self.refused(inputs):
                if kind == "astream":
                    assert g[0] == [], f"{what}: items {g[0]!r} before the refusal"
                    g = ("raised", g[1]) if g[1] else ("ok", None)
                self.assert_refused(what, g, 0)
            elif kind == "acompute":
                assert_same_outcome(what, e, g)
            else:
                assert osup.same(e[0], g[0]), f"{what}:\n  plain items    {e[0]!r}\n  memoized items {g[0]!r}"
                assert_same_outcome(what, ("raised", e[1]) if e[1] else ("ok", None), ("raised", g[1]) if g[1] else ("ok", None))
        for kind in ("acompute", "astream"):
            calls_of_kind = sum(1 for s in specs if s[0] == kind)
            mine = [(s, e) for s, e in zip(specs, expected) if s[0] == kind and not self.refused(s[1])]
            keys = [self.key(kind, {**({"y": 1} if kind == "acompute" else {}), **s[1]}) for s, _ in mine]
            if kind == "acompute":
                raises = [e[0] == "raised" for _, e in mine]
                self.check_concurrent_runs(kind, keys, raises, self.memo_runs[kind] - runs0[kind], control, single_flight=True)
            else:
                # a stream is stored by a complete run; a partial or failing one stores nothing
                incomplete = [s[2] != "full" or e[1] is not None for s, e in mine]
                self.check_concurrent_runs(kind, keys, incomplete, self.memo_runs[kind] - runs0[kind], control,
                                           single_flight=False)
            n, r = len(mine), calls_of_kind - len(mine)
            self.tally[kind].add(hits=(0, n), misses=(0, n + r), errors=(0, n), calls=(n, n + r))

    # ---- checks

    def recompute(self, fn: str, inputs: dict[str, Any]) -> tuple[str, Any]:
        """What the plain function gives for stored inputs (a stream: its list of items)."""
        args, kwargs = spell(self.sigs[fn], copy.deepcopy(inputs), 0)
        if fn in ("stream", "buffer_stream"):
            items, err, _ = consume(lambda: self.plain[fn](*args, **kwargs), "full", 0)
            return ("raised", err) if err else ("ok", items)
        if fn == "astream":
            items, err, _ = asyncio.run(aconsume(lambda: self.plain[fn](*args, **kwargs), "full", 0))
            return ("raised", err) if err else ("ok", items)
        if fn == "acompute":
            return outcome(lambda: asyncio.run(self.plain[fn](*args, **kwargs)))
        return outcome(lambda: self.plain[fn](*args, **kwargs))

    def check_entry(self, where: str, func: str, inputs: dict[str, Any], output: Any) -> None:
        fn = self.fn_of_name.get(func)
        assert fn is not None, f"{where}: an entry of an unknown function {func!r}"
        if contains_keybytes(inputs):
            return  # a __cache_key__ argument is stored as its key bytes: no object to call with
        expected = self.recompute(fn, inputs)
        if fn in ("stream", "buffer_stream", "astream"):
            output = list(output)
        assert_same_outcome(f"{where}: the entry {func}({inputs!r}) holds {output!r}; the plain function gives",
                            expected, ("ok", output))

    def check_store(self) -> None:
        # Hypothesis's own warnings (a large repr of a failing step) are about the harness, not oxicache
        caught = [w for w in self.caught if not issubclass(w.category, HypothesisWarning)]
        assert not caught, f"{self.backend}: warnings: {[f'{w.category.__name__}: {w.message}' for w in caught]}"
        assert not self.log.records, f"{self.backend}: logged: {[r.getMessage() for r in self.log.records]}"
        for fn in ALL_FNS:
            if any(hi for _, hi in self.tally[fn].ranges.values()):
                info = self.memo[fn].cache_info()
                self.tally[fn].check(f"{self.backend}: {fn}", self.info_base[fn], info)
                self.info_base[fn], self.tally[fn] = info, Tally()
        if self.backend in ITERABLE:
            entries = list(self.cache)
            stale = [e for e in entries if e.key not in self.cache]
            assert not stale, f"{self.backend}: entries whose key does not find them: {stale!r}"
            if hasattr(self.cache, "verify"):
                problems = self.cache.verify()
                assert problems == [], f"{self.backend}: verify(): {problems}"
            for e in entries:
                self.check_entry(self.backend, e.func, e.inputs, e.output)
            for fn in ALL_FNS:
                name = self.memo[fn].cache_name
                count = sum(1 for e in entries if e.func == name)
                assert count == len(self.model[fn]), f"{self.backend}: {fn} has {count} entries, the model {len(self.model[fn])}"
                assert self.memo[fn].cache_info().currsize == count
        if self.backend.startswith("callback"):
            for key, value in self.feed.records[self.checked_records:]:
                where = f"{self.backend} callback"
                assert key == CacheEntry(value["func"], value["inputs"]).key, f"{where}: key {key} is not the key of {value!r}"
                self.check_entry(where, value["func"], value["inputs"], value["output"])
            self.checked_records = len(self.feed.records)

    def teardown(self) -> None:
        try:
            if not self.busy:
                self.check_store()
        finally:
            logging.getLogger("oxicache").removeHandler(self.log)
            self._warnings.__exit__(None, None, None)
            if self.backend.startswith("callback"):
                self.cache.close()


# ------------------------------------------------------------------------------------ the tests

# Examples x steps per backend. The default run is sized to stay near a minute for all nine on an idle
# 2-core machine (the in-process backends are cheap; the stores and servers pay I/O per call); the soak
# is sampled at 1.5 times the examples (about 2 minutes here: CI runs it, and its budget is 45 minutes for
# all); OXICACHE_ORACLE_SOAK_SCALE=4 runs the full soak (100 / 60 examples per backend) before a release.
_CHEAP = ("inmem", "none", "callback", "callback-fed")
FAST = {name: dict(max_examples=25 if name in _CHEAP else 15, stateful_step_count=30) for name in MACHINE_BACKENDS}
_SOAK_SCALE = float(os.environ.get("OXICACHE_ORACLE_SOAK_SCALE", "1.5"))
SOAK = {
    name: dict(max_examples=round((25 if name in _CHEAP else 15) * _SOAK_SCALE), stateful_step_count=40)
    for name in MACHINE_BACKENDS
}


def run_machine(backend: str, options: dict[str, int]) -> None:
    """The cache is built once per test (a server table, a folder) and cleared for each example; the
    CallbackCache variants are built per example around the example's FeedStore."""
    shared = None if backend.startswith("callback") else backends.make(backend)

    def get(feed: FeedStore) -> Any:
        if backend == "callback":
            return backends.make("callback", callbacks=[feed.callback])
        if backend == "callback-fed":
            return backends.make("callback", callbacks=[feed.callback], feeds=[feed.feed])
        return shared

    try:
        run_state_machine_as_test(
            lambda: DifferentialMachine(backend, get),
            settings=settings(deadline=None, suppress_health_check=list(HealthCheck), **options),
        )
    finally:
        if shared is not None:
            shared.close()


# A failure's shrinking replays many sequences (on the servers, each step is a round trip): more time
# than pytest's default 300 s is left for it, so the report shows the shrunk sequence, not a timeout.
@pytest.mark.timeout(900)
@pytest.mark.parametrize("backend", MACHINE_BACKENDS)
def test_differential(backend: str) -> None:
    run_machine(backend, FAST[backend])


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("backend", MACHINE_BACKENDS)
def test_differential_soak(backend: str) -> None:
    run_machine(backend, SOAK[backend])


# ------------------------------------------------------------------------------------ focused tests
# Issue 11's wrong values, as first reproduced here: strict xfails while this oracle was written, fixed on
# main by 0865f71 (key scheme 2) and kept as regression tests. Then the defects this oracle found that are
# still open: strict xfails, each with the switch in KNOWN_DEFECTS that keeps it out of the machine.

PERSISTENT = backends.PERSISTENT


def _pop_last(cache: Any) -> Any:
    @cache.memoize(name="oracle.focused.pop_last")
    def pop_last(xs: list) -> Any:
        return xs.pop()

    return pop_last


@pytest.mark.parametrize("backend", backends.STORING)
def test_fixed_mutating_args(backend: str) -> None:
    """Issue 11: a function that mutates its argument was filed under the changed inputs."""
    cache = backends.make(backend)
    pop_last = _pop_last(cache)
    assert pop_last([1, 2, 3]) == 3
    assert pop_last([1, 2]) == 2  # was 3 on DiskCache/JsonCache/DatabaseCache: [1, 2, 3]'s entry, filed under [1, 2]
    assert all(e.key in cache for e in cache)


def test_fixed_mutating_args_callback() -> None:
    seen: list[tuple[int, dict[str, Any]]] = []
    cache = CallbackCache(callbacks=[lambda key, value: seen.append((key, copy.deepcopy(value)))])
    pop_last = _pop_last(cache)
    pop_last([1, 2, 3])
    assert seen[0][1]["inputs"] == {"xs": [1, 2, 3]}  # was {'xs': [1, 2]}
    assert seen[0][0] == pop_last.cache_key([1, 2, 3])


@pytest.mark.parametrize("backend", backends.STORING)
def test_fixed_path_flavour(backend: str) -> None:
    """Issue 11: PurePosixPath("/x") and PureWindowsPath("/x") shared a key."""
    cache = backends.make(backend)

    @cache.memoize(name="oracle.focused.flavour")
    def flavour(p: Any) -> str:
        return type(p).__name__

    assert flavour(PurePosixPath("/x")) == "PurePosixPath"
    assert flavour(PureWindowsPath("/x")) == "PureWindowsPath"  # was "PurePosixPath", a hit


@pytest.mark.parametrize("backend", backends.STORING)
def test_fixed_reused_buffer(backend: str) -> None:
    """Issue 11: a generator yielding a reused buffer replayed its final state at every step."""
    cache = backends.make(backend)

    @cache.memoize(name="oracle.focused.buffer")
    def rows(n: int) -> Any:
        buf: list[int] = []
        for i in range(n):
            buf.append(i)
            yield buf

    assert [list(r) for r in rows(3)] == [[0], [0, 1], [0, 1, 2]]
    assert [list(r) for r in rows(3)] == [[0], [0, 1], [0, 1, 2]]  # was [[0, 1, 2]] * 3


@pytest.mark.parametrize("backend", MACHINE_BACKENDS)
def test_fixed_factory_classes(backend: str) -> None:
    """Issue 11: classes made by a factory shared keys. Key scheme 2: InMemCache keys them by the class
    object; stores other processes read refuse them with KeyEncodingError; NoCache runs the function."""
    cache = backends.make("callback" if backend == "callback-fed" else backend)

    @cache.memoize(name="oracle.focused.tag")
    def tag(cls: type) -> Any:
        return cls.TAG

    if backend in SHARED:
        with pytest.raises(KeyEncodingError, match="cls"):
            tag(osup.make_class("a"))
        return
    assert tag(osup.make_class("a")) == "a"
    assert tag(osup.make_class("b")) == "b"  # was "a", a hit


@pytest.mark.parametrize("who", ["the caller", "the function"])
def test_fixed_inmem_large_arguments_alias_the_callers_objects(who: str) -> None:
    """Found by this oracle: InMemCache kept the arguments of a call whose key bytes exceed 512 as the
    caller's objects. After the caller (or the function itself) mutated one, the entry's inputs were the
    new value: the entry said total(new value) = total(old value), its key no longer found it,
    ``remove(entry)`` removed nothing, and ``verify()`` still returned []."""
    cache = backends.make("inmem")

    @cache.memoize(name="oracle.focused.alias")
    def total(xs: list) -> int:
        result = sum(xs)
        if who == "the function":
            xs.append(-1)
        return result

    xs = list(range(300))
    total(xs)
    if who == "the caller":
        xs.append(1)
    (entry,) = list(cache)
    assert entry.key in cache, f"the entry now claims total(<{len(entry.inputs['xs'])} items>) = {entry.output}"


@pytest.mark.parametrize("backend", ["callback", *PERSISTENT])
def test_found_misfit_arguments_raise_the_functions_own_type_error(backend: str) -> None:
    """README: "When the arguments of a plain function do not fit its signature, they are passed straight
    to the function, so you get its own TypeError". Was true on InMemCache and NoCache only; the other
    backends gave inspect's message ("missing a required argument: 'x'"). Switch: "misfit_message"."""
    cache = backends.make(backend)

    def g(x: Any, /, y: Any = 0, *, z: Any = 0) -> Any:
        return x

    memoized = cache.memoize(name="oracle.focused.misfit")(g)
    for args, kwargs in [((), {}), ((1, 2, 3), {}), ((1,), {"w": 1}), ((), {"x": 1}), ((1,), {"y": 1, "z": 1, "q": 2})]:
        with pytest.raises(TypeError) as want:
            g(*args, **kwargs)
        with pytest.raises(TypeError) as got:
            memoized(*args, **kwargs)
        assert str(got.value) == str(want.value), (args, kwargs)


def test_found_nocache_refuses_local_classes() -> None:
    """Key scheme 2 refuses process-local class identities on stores other processes read (persistent
    backends, CallbackCache). NoCache is no such store: a memoized call with a factory-made class runs,
    ``cache.get("name", ...)`` returns ``...``, but ``fn.cache_key(...)`` ("computes the key the call would
    have", docs/backends/none.md) and ``cache.get(fn, ...)`` raise KeyEncodingError ("for a store other
    processes read"). Switch: "nocache_local_class_key"."""
    cache = NoCache()

    @cache.memoize(name="oracle.focused.nocache")
    def tag(cls: type) -> Any:
        return cls.TAG

    made = osup.make_class("a")
    assert tag(made) == "a"
    assert cache.get("oracle.focused.nocache", cls=made) is ...
    assert cache.get(tag, cls=made) is ...  # today: KeyEncodingError
    assert isinstance(tag.cache_key(made), int)
