"""Support for the differential oracle (test_differential.py): values, an independent model of key
equivalence, a type-aware comparison, and the functions under test.

Nothing here imports oxicache's key or codec code: the model of which calls share an entry
(``key_canon``) is written from docs/key-scheme.md, and the comparison of results (``shape``) from
Python's own types, so a defect in the library cannot hide in the oracle.

Import as top-level ``oracle_support`` (tests/oracle/ is on sys.path under pytest's default import mode).
"""

from __future__ import annotations

import collections
import copy
import dataclasses
import datetime as dt
import decimal
import enum
import hashlib
import itertools
import math
import struct
import threading
import time
import uuid
import zoneinfo
from pathlib import PurePath, PurePosixPath, PureWindowsPath
from typing import Any, Callable

try:
    import numpy as np
except ImportError:  # the oracle runs without numpy; arrays are then left out of the strategies
    np = None  # type: ignore[assignment]

# ------------------------------------------------------------------------------------ value types


class Color(enum.Enum):
    RED = 1
    GREEN = "1"


class Num(enum.IntEnum):
    ONE = 1
    TWO = 2


@dataclasses.dataclass(frozen=True)
class Pt:
    x: Any
    y: Any


@dataclasses.dataclass
class Box:
    """A mutable dataclass: the caller may change it after passing it."""

    items: list
    label: str = ""


class Keyed:
    """Keyed through ``__cache_key__`` (no value encoding: persistent backends store its KeyBytes)."""

    def __init__(self, k: Any) -> None:
        self.k = k

    def __cache_key__(self) -> Any:
        return ("keyed", self.k)

    def __repr__(self) -> str:
        return f"Keyed({self.k!r})"


NT = collections.namedtuple("NT", "a b")

_serials = itertools.count(1)


def make_class(tag: Any) -> type:
    """A class made by a factory: every class it makes has the qualname ``make_class.<locals>.Made``."""

    class Made:
        TAG = tag
        SERIAL = next(_serials)

        def __repr__(self) -> str:  # pragma: no cover - classes are passed, not instances
            return f"Made[{tag!r}]"

    return Made


# ------------------------------------------------------------------------------------ the model


def is_factory_class(v: Any) -> bool:
    return isinstance(v, type) and hasattr(v, "SERIAL") and "<locals>" in v.__qualname__


def involves_local_class(v: Any) -> bool:
    """True when ``v`` holds a class its module cannot name (key-scheme 2: such keys are process-local,
    and stores other processes read refuse them with KeyEncodingError)."""
    if is_factory_class(v):
        return True
    if isinstance(v, dict):
        return any(involves_local_class(k) or involves_local_class(x) for k, x in v.items())
    if isinstance(v, (list, tuple, set, frozenset)):
        return any(involves_local_class(x) for x in v)
    if isinstance(v, Keyed):
        return involves_local_class(v.k)
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return any(involves_local_class(getattr(v, f.name)) for f in dataclasses.fields(v))
    return False


def _f64(x: float) -> bytes:
    return b"nan" if math.isnan(x) else struct.pack(">d", x)


def key_canon(v: Any) -> Any:
    """The documented key equivalence (docs/key-scheme.md, scheme 2) as a comparable structure.

    Keys are type-tagged: 1, 1.0, True, "1", b"1" differ; -0.0 differs from 0.0; every NaN is one value;
    dict insertion order does not matter, dict keys keep their types; list and tuple differ; set and
    frozenset differ. Paths key by flavour and path (PurePosixPath("/x") is not PureWindowsPath("/x"));
    a class its module cannot name (made by a factory) keys as that class object (process-local), others
    by module and qualname. A namedtuple keys as a tuple (rule 16).
    """
    t = type(v)
    if v is None or v is ...:
        return (repr(v),)
    if t is bool:
        return ("bool", v)
    if t is int:
        return ("int", v)
    if t is float:
        return ("float", _f64(v))
    if t is complex:
        return ("complex", _f64(v.real), _f64(v.imag))
    if t in (str, bytes, bytearray):
        return (t.__name__, bytes(v) if t is bytearray else v)
    if t in (list, tuple):
        return (t.__name__, tuple(key_canon(x) for x in v))
    if t is dict:
        return ("dict", tuple(sorted(repr((key_canon(k), key_canon(x))) for k, x in v.items())))
    if t in (set, frozenset):
        return (t.__name__, tuple(sorted(repr(key_canon(x)) for x in v)))
    if isinstance(v, Keyed):
        return ("K", key_canon(v.__cache_key__()))
    if isinstance(v, enum.Enum):
        return ("enum", t.__module__, t.__qualname__, v.name)
    if isinstance(v, type):
        if is_factory_class(v):
            return ("class", v.__qualname__, v.SERIAL)
        return ("class", v.__module__, v.__qualname__)
    if np is not None and t is np.ndarray:
        return ("ndarray", v.dtype.str, v.shape, v.tobytes())
    if np is not None and isinstance(v, np.generic):
        return ("npscalar", v.dtype.str, v.tobytes())
    if dataclasses.is_dataclass(v):
        return ("dataclass", t.__module__, t.__qualname__, key_canon({f.name: getattr(v, f.name) for f in dataclasses.fields(v)}))
    if isinstance(v, dt.datetime):
        return ("datetime", v.isoformat())
    if isinstance(v, dt.date):
        return ("date", v.isoformat())
    if isinstance(v, dt.time):
        return ("time", v.isoformat())
    if isinstance(v, dt.timedelta):
        return ("timedelta", v.days, v.seconds, v.microseconds)
    if isinstance(v, decimal.Decimal):
        return ("decimal", str(v))
    if isinstance(v, uuid.UUID):
        return ("uuid", v.bytes)
    if isinstance(v, PurePath):
        return ("path", t.__name__, v.as_posix())
    if isinstance(v, tuple):  # namedtuple: rule 16, keyed as its base
        return ("tuple", tuple(key_canon(x) for x in v))
    raise AssertionError(f"oracle: no key model for {t!r}")


def digest(v: Any) -> str:
    """A digest of the value under the key equivalence: equal for values that share an entry."""
    return hashlib.blake2b(repr(key_canon(v)).encode(), digest_size=6).hexdigest()


def _tz(tz: Any) -> Any:
    if tz is None:
        return None
    if isinstance(tz, zoneinfo.ZoneInfo):
        return ("zone", tz.key)
    return (type(tz).__name__, tz.utcoffset(None), tz.tzname(None))


def shape(v: Any) -> Any:
    """A type-aware structure of a result: two results are the same when their shapes are equal.

    Types are compared exactly, all the way down (a namedtuple is not a tuple, a PurePosixPath is not a
    PureWindowsPath, 1 is not True); floats bit for bit (-0.0 is not 0.0) except that NaN equals NaN;
    dict items in order (the functions under test build their dicts in a canonical order); sets as sets.
    """
    t = type(v)
    if t is float:
        return ("float", "nan" if math.isnan(v) else v.hex())
    if t is complex:
        return ("complex", shape(v.real), shape(v.imag))
    if v is None or v is ... or t in (bool, int, str, bytes, bytearray):
        return (t.__name__, repr(v))
    if t is dict:
        return ("dict", tuple((shape(k), shape(x)) for k, x in v.items()))
    if t in (set, frozenset):
        return (t.__name__, tuple(sorted(repr(shape(x)) for x in v)))
    if isinstance(v, BaseException):
        return ("exception", t.__module__, t.__qualname__, shape(list(v.args)), str(v))
    if isinstance(v, enum.Enum):
        return ("enum", t.__module__, t.__qualname__, v.name, shape(v.value))
    if isinstance(v, type):
        return ("class", id(v))
    if np is not None and t is np.ndarray:
        return ("ndarray", v.dtype.str, v.shape, v.tobytes())
    if np is not None and isinstance(v, np.generic):
        return ("npscalar", t.__name__, v.dtype.str, v.tobytes())
    if dataclasses.is_dataclass(v):
        return ("dataclass", t.__module__, t.__qualname__, tuple((f.name, shape(getattr(v, f.name))) for f in dataclasses.fields(v)))
    if isinstance(v, (dt.datetime, dt.time)):
        return (t.__name__, v.isoformat(), v.fold, _tz(v.tzinfo))
    if isinstance(v, (dt.date, dt.timedelta, decimal.Decimal, uuid.UUID, PurePath)):
        return (t.__module__, t.__qualname__, str(v))
    if isinstance(v, (list, tuple)):  # list, tuple, namedtuple
        return (t.__module__, t.__qualname__, tuple(shape(x) for x in v))
    return ("other", t.__module__, t.__qualname__, repr(v))


def same(a: Any, b: Any) -> bool:
    return shape(a) == shape(b)


# ------------------------------------------------------------------------------------- copies


def snap(v: Any) -> Any:
    """A fresh copy of a value for a result: same types, dicts (and sets) rebuilt in a canonical order,
    so that key-equivalent arguments give identical results; classes and ``Keyed`` objects, which have
    no value encoding, become descriptions."""
    t = type(v)
    if t is dict:
        items = sorted(((snap(k), snap(x)) for k, x in v.items()), key=lambda kv: repr(key_canon(kv[0])))
        return dict(items)
    if t is list:
        return [snap(x) for x in v]
    if t is tuple:
        return tuple(snap(x) for x in v)
    if t in (set, frozenset):
        return t(sorted((snap(x) for x in v), key=lambda x: repr(key_canon(x))))
    if t is bytearray:
        return bytearray(v)
    if isinstance(v, Keyed):
        return ("keyed", snap(v.k))
    if isinstance(v, type):  # hashable, as classes may be dict keys
        return ("class", v.__qualname__, snap(getattr(v, "TAG", None)))
    if np is not None and t is np.ndarray:
        return v.copy()
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return t(**{f.name: snap(getattr(v, f.name)) for f in dataclasses.fields(v)})
    if isinstance(v, tuple):  # namedtuple
        return t(*(snap(x) for x in v))
    return v  # immutable scalars


def reordered(v: Any) -> Any:
    """An equal-but-distinct deep copy: dicts with their insertion order reversed, sets rebuilt in
    reverse, every container a new object."""
    t = type(v)
    if t is dict:
        return {reordered(k): reordered(x) for k, x in reversed(list(v.items()))}
    if t is list:
        return [reordered(x) for x in v]
    if t is tuple:
        return tuple(reordered(x) for x in v)
    if t in (set, frozenset):
        return t(reversed([reordered(x) for x in v]))
    if t is bytearray:
        return bytearray(v)
    if isinstance(v, Keyed):
        return Keyed(reordered(v.k))
    if np is not None and t is np.ndarray:
        return v.copy()
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return t(**{f.name: reordered(getattr(v, f.name)) for f in dataclasses.fields(v)})
    if isinstance(v, tuple):
        return t(*(reordered(x) for x in v))
    return v


def mutables(v: Any) -> list[Any]:
    """The mutable objects inside ``v`` that a caller could change in place (lists, dicts, sets,
    bytearrays, mutable dataclasses, numpy arrays, Keyed objects)."""
    found: list[Any] = []

    def walk(x: Any) -> None:
        t = type(x)
        if t in (list, dict, set, bytearray, Box, Keyed) or (np is not None and t is np.ndarray and x.size):
            found.append(x)
        if t in (list, tuple, set, frozenset) or isinstance(x, tuple):
            for y in x:
                walk(y)
        elif t is dict:
            for y in x.values():
                walk(y)
        elif t is Box:
            walk(x.items)
        elif t is Pt:
            walk(x.x)
            walk(x.y)
        elif t is Keyed:
            walk(x.k)

    walk(v)
    return found


def mutate(x: Any, how: int) -> str:
    """Change ``x`` in place; returns what was done (for the notes)."""
    t = type(x)
    if t is list:
        if x and how % 2:
            x.pop()
            return "list.pop()"
        x.append(how)
        return f"list.append({how})"
    if t is dict:
        x[f"m{how}"] = how
        return f"dict['m{how}'] = {how}"
    if t is set:
        x.add(f"m{how}")
        return f"set.add('m{how}')"
    if t is bytearray:
        x.append(how % 256)
        return f"bytearray.append({how % 256})"
    if t is Box:
        if how % 2:
            x.label += "!"
            return "box.label += '!'"
        x.items.append(how)
        return f"box.items.append({how})"
    if t is Keyed:
        x.k = ("changed", how)
        return f"keyed.k = ('changed', {how})"
    if np is not None and t is np.ndarray:
        flat = x.reshape(-1)
        flat[0] = not flat[0] if x.dtype == bool else flat[0] + 1
        return "array[0] += 1"
    raise AssertionError(t)


# ------------------------------------------------------------------------------------ counting


class Counter:
    """Thread-safe run counts per function name."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: dict[str, int] = collections.defaultdict(int)

    def hit(self, name: str) -> None:
        with self.lock:
            self.counts[name] += 1

    def __getitem__(self, name: str) -> int:
        with self.lock:
            return self.counts[name]


class OracleError(Exception):
    """A function's own exception type (besides ValueError and KeyError)."""


def maybe_raise(where: str, d: str, every: int) -> None:
    """Raise for some inputs, deterministically from their digest: roughly one input in ``every``."""
    n = int(d, 16)
    if n % every:
        return
    kind = (n // every) % 3
    if kind == 0:
        raise ValueError(f"{where} rejects {d}")
    if kind == 1:
        raise KeyError(d)
    raise OracleError(where, d, n % 7)


DEFAULT_B = (1, "b")
DEFAULT_C = None


def make_functions(runs: Counter) -> dict[str, Callable[..., Any]]:
    """The functions under test, each counting its runs in ``runs`` under its name. Call once for the
    plain side and once for the memoized side: the same code, separate counts."""

    def describe(a, b=DEFAULT_B, *args, c=DEFAULT_C, **kw):  # noqa: ANN001, ANN202, ANN003, ANN002
        runs.hit("describe")
        inputs = {"a": a, "b": b, "args": args, "c": c, "kw": kw}
        d = digest(inputs)
        maybe_raise("describe", d, 11)
        return {"echo": snap(inputs), "digest": d, "types": [type(a).__name__, type(b).__name__]}

    def pos_kw(x, /, y=0.0, *, z="z"):  # noqa: ANN001, ANN202
        runs.hit("pos_kw")
        d = digest((x, y, z))
        maybe_raise("pos_kw", d, 3)
        return (d, snap(x), snap(y), snap(z))

    def pause(x, y=1):  # noqa: ANN001, ANN202
        """For the threads: slow enough that concurrent calls overlap."""
        runs.hit("pause")
        time.sleep(0.002)
        d = digest((x, y))
        maybe_raise("pause", d, 4)
        return {"x": snap(x), "y": snap(y), "d": d}

    def pop_some(xs, n=1):  # noqa: ANN001, ANN202
        """Mutates its own argument: the result must be the plain function's for xs as it was."""
        runs.hit("pop_some")
        d = digest((xs, n))
        if type(xs) is dict:
            popped = [xs.pop(k) for k in sorted(xs, key=lambda k: repr(key_canon(k)))[: max(n, 0)]]
        elif type(xs) is Box:
            popped = [xs.items.pop() for _ in range(min(max(n, 0), len(xs.items)))]
        elif np is not None and type(xs) is np.ndarray:
            popped = [xs.tolist()]
            xs[...] = 0
        else:
            popped = [xs.pop() for _ in range(min(max(n, 0), len(xs)))]
        return {"popped": snap(popped), "d": d}

    def stream(n, seed=None, *, fail_at=None):  # noqa: ANN001, ANN202
        runs.hit("stream")
        for i in range(n):
            if i == fail_at:
                raise ValueError(f"stream of {digest(seed)} failed at {i}")
            yield {"i": i, "seed": snap(seed), "d": digest((seed, i))}

    def buffer_stream(n, seed=None):  # noqa: ANN001, ANN202
        """Yields one list, refilled between items (as csv readers and batched loaders do)."""
        runs.hit("buffer_stream")
        buf: list[Any] = []
        for i in range(n):
            buf.append((i, snap(seed)))
            yield buf

    async def acompute(x, y=1):  # noqa: ANN001, ANN202
        import asyncio

        runs.hit("acompute")
        await asyncio.sleep(0.001)
        d = digest((x, y))
        maybe_raise("acompute", d, 4)
        return {"x": snap(x), "y": snap(y), "d": d}

    async def astream(n, seed=None, *, fail_at=None):  # noqa: ANN001, ANN202
        import asyncio

        runs.hit("astream")
        for i in range(n):
            await asyncio.sleep(0)
            if i == fail_at:
                raise ValueError(f"astream of {digest(seed)} failed at {i}")
            yield {"i": i, "seed": snap(seed), "d": digest((seed, i))}

    return {f.__name__: f for f in (describe, pos_kw, pause, pop_some, stream, buffer_stream, acompute, astream)}


def deepcopy(v: Any) -> Any:
    return copy.deepcopy(v)


__all__ = [
    "NT", "Box", "Color", "Counter", "Keyed", "Num", "OracleError", "Pt", "PurePosixPath", "PureWindowsPath",
    "deepcopy", "digest", "involves_local_class", "is_factory_class", "key_canon", "make_class", "make_functions",
    "mutables", "mutate", "np", "reordered", "same", "shape", "snap",
]
