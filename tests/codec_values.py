"""Example values for the value codec tests (docs/value-codec.md): the golden catalogue, hypothesis
strategies, `same()` (equal and of the same types all the way down) and invalid inputs for the decoders.

Always import this module as top-level `codec_values` (tests/ on sys.path): encodings name its classes,
e.g. "codec_values:Point", so renaming or moving a class changes tests/data/golden_codec.json
(regenerate it with tests/data/make_golden_codec.py). numpy and pydantic cases are left out when
those packages are missing.
"""

import collections
import dataclasses
import datetime
import decimal
import enum
import hashlib
import json
import math
import os
import pathlib
import re
import struct
import typing
import uuid
import zoneinfo

try:
    import numpy as np
except ImportError:  # pragma: no cover
    np = None
try:
    import pydantic
except ImportError:  # pragma: no cover
    pydantic = None

from codec_reference import KeyBytes  # noqa: E402  (oxicache._core.KeyBytes when the native module exists)

GOLDEN_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "golden_codec.json")
UTC = datetime.timezone.utc
PARIS = zoneinfo.ZoneInfo("Europe/Paris")

# ---------------------------------------------------------------- classes (named types)


class Color(enum.Enum):
    RED = 1
    GREEN = "green"
    PAIR = (1, 2)  # a tuple value


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Mode(str, enum.Enum):  # like enum.StrEnum (Python 3.11+)
    READ = "r"
    WRITE = "w"


class Perm(enum.IntFlag):
    R = 4
    W = 2


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: int


@dataclasses.dataclass(slots=True)
class Segment:
    start: Point
    end: Point
    label: str = ""
    tags: list = dataclasses.field(default_factory=list)
    cached: int = dataclasses.field(default=0, init=False)  # init=False fields are fields too

    def __post_init__(self):
        raise AssertionError("decoding must not run __init__/__post_init__")


@dataclasses.dataclass
class Box:
    value: typing.Any


class Outer:
    @dataclasses.dataclass(frozen=True, slots=True)
    class Inner:  # type name "codec_values:Outer.Inner"
        items: tuple


Pair = collections.namedtuple("Pair", "left right")


class Span(typing.NamedTuple):
    start: int
    end: int


if pydantic is not None:

    class Config(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(extra="allow")
        name: str
        size: int = 0

    class Job(pydantic.BaseModel):
        config: Config
        tags: list[str] = []
        origin: Point | None = None

    class Holder(pydantic.BaseModel):
        payload: typing.Any = None


class Tag(str):
    """A str subclass: not encodable."""


def f64(hex16: str) -> float:
    """A float from its 16 hex digits (big-endian), e.g. a NaN with a payload."""
    return struct.unpack(">d", bytes.fromhex(hex16))[0]


def nested_lists(levels: int):
    value = None
    for _ in range(levels):
        value = [value]
    return value


def _segment():
    seg = Segment.__new__(Segment)  # Segment.__post_init__ refuses to run
    for name, value in dict(start=Point(0, 0), end=Point(3, -4), label="diag", tags=[1, "x", (2.5,)], cached=5).items():
        object.__setattr__(seg, name, value)
    return seg


# ---------------------------------------------------------------- the catalogue

# Sets hold only values whose hash does not depend on PYTHONHASHSEED (ints, floats, tuples and
# frozensets of them...; not str, bytes, None, NaN, enum members or dates), so their iteration
# order, hence their encoding, is the same in every process.


def catalogue() -> dict:
    """name -> value; every row of the spec table and its edge cases."""
    c = {
        "none": None, "true": True, "false": False,
        # ints: every MessagePack form and the ext 1 boundary
        "int_0": 0, "int_1": 1, "int_127": 127, "int_128": 128, "int_255": 255, "int_256": 256,
        "int_65535": 65535, "int_65536": 65536, "int_2_32_minus_1": 2**32 - 1, "int_2_32": 2**32,
        "int_minus_1": -1, "int_minus_32": -32, "int_minus_33": -33, "int_minus_128": -128, "int_minus_129": -129,
        "int_minus_32768": -32768, "int_minus_32769": -32769, "int_minus_2_31": -(2**31),
        "int_minus_2_31_minus_1": -(2**31) - 1,
        "int_2_63_minus_1": 2**63 - 1, "int_2_63": 2**63, "int_2_64_minus_1": 2**64 - 1, "int_2_64": 2**64,
        "int_minus_2_63": -(2**63), "int_minus_2_63_minus_1": -(2**63) - 1, "int_minus_2_64": -(2**64),
        "int_minus_2_71": -(2**71), "int_2_71": 2**71, "int_10_40": 10**40, "int_minus_10_40": -(10**40),
        "int_2_1000_plus": 2**1000 + 12345,
        # floats
        "float_0": 0.0, "float_minus_0": -0.0, "float_1": 1.0, "float_minus_1_5": -1.5, "float_0_1": 0.1,
        "float_1e300": 1e300, "float_1e_minus_7": 1e-7, "float_1e16": 1e16, "float_1e15": 1e15,
        "float_123456789_5": 123456789.5, "float_max": 1.7976931348623157e308, "float_min_subnormal": 5e-324,
        "float_nan": math.nan, "float_nan_negative": f64("fff8000000000000"), "float_nan_payload": f64("7ff8000000000abc"),
        "float_inf": math.inf, "float_minus_inf": -math.inf,
        # complex
        "complex": 1 + 2j, "complex_zero": 0j, "complex_negative_zero": complex(-0.0, -1e300),
        "complex_nan_inf": complex(math.nan, -math.inf),
        # str: every length form
        "str_empty": "", "str_ascii": "hello world", "str_31": "x" * 31, "str_32": "y" * 32, "str_255": "z" * 255,
        "str_256": "w" * 256, "str_65535": "v" * 65535, "str_65536": "u" * 65536,
        "str_unicode": "ünïcødé 日本語 🐍 \u2028 \ufeff",
        "str_escapes": "quote\" backslash\\ nl\n cr\r tab\t bs\b ff\f nul\x00 us\x1f del\x7f slash/",
        "str_dollar": "$tuple", "str_long_unicode": "日本" * 20,
        "str_lone_surrogate": "a\ud800b", "str_low_surrogate": "\udcff", "str_surrogates_and_astral": "\udc80🐍\ud800",
        # bytes, bytearray
        "bytes_empty": b"", "bytes": b"\x00\x01\xfe\xff", "bytes_255": b"b" * 255, "bytes_256": b"B" * 256,
        "bytes_65536": b"\xab" * 65536, "bytearray": bytearray(b"ab\x00"), "bytearray_empty": bytearray(),
        "keybytes": {"self": KeyBytes(b"\x0bcodec_values:Client\x05small"), "prompt": "hi"},
        "ellipsis": ...,
        # containers
        "list_empty": [], "list": [1, "two", 3.0, None], "list_15": list(range(15)), "list_16": list(range(16)),
        "list_65536": [0] * 65536, "tuple_empty": (), "tuple_1": (1,), "tuple_mixed": (1, "a", [2], (3,), None),
        "dict_empty": {}, "dict_str_keys": {"a": 1, "b": [1, 2], "": None, "ключ": "значение"},
        "dict_15": {f"k{i}": i for i in range(15)}, "dict_16": {f"k{i}": i for i in range(16)},
        "dict_65536": {i: None for i in range(65536)},
        "dict_dollar_key": {"$tuple": [1, 2]}, "dict_dollar_later_key": {"a": 1, "$b": 2},
        "dict_mixed_keys": {1: "int", 2.5: "float", None: "none", (1, "a"): "tuple", frozenset({1, 2}): "frozenset",
                            b"k": "bytes", False: "bool", "s": "str"},
        "dict_surrogate_key": {"\ud800": 1},
        "dict_nested_keys": {(1, (2, 3)): {"inner": {4: [5]}}},
        "set_empty": set(), "set_ints": {1, 2, 3}, "set_mixed": {1, 2.5, -3, (1, 2.5), frozenset({4, 5}), 1 + 2j, False},
        "frozenset_empty": frozenset(), "frozenset": frozenset({10, 20}),
        "nested": {"list": [1, [2, [3, {"t": (4, frozenset({5}))}]]], "set": {(1, 2)}, "empty": [[], {}, ()]},
        "nested_200": nested_lists(200),
        # datetime, date, time, timedelta
        "datetime_naive": datetime.datetime(2024, 1, 2, 3, 4, 5, 123456),
        "datetime_naive_no_micro": datetime.datetime(2024, 1, 2, 3, 4, 5),
        "datetime_naive_fold": datetime.datetime(2024, 1, 2, 3, 4, 5, fold=1),
        "datetime_utc": datetime.datetime(2024, 6, 1, 12, 0, tzinfo=UTC),
        "datetime_offset": datetime.datetime(2024, 6, 1, 12, 0, 0, 7, tzinfo=datetime.timezone(datetime.timedelta(hours=5, minutes=30))),
        "datetime_negative_offset": datetime.datetime(2024, 6, 1, tzinfo=datetime.timezone(-datetime.timedelta(hours=8))),
        "datetime_offset_seconds": datetime.datetime(2024, 6, 1, tzinfo=datetime.timezone(datetime.timedelta(seconds=3661, microseconds=5))),
        "datetime_paris_summer": datetime.datetime(2024, 7, 14, 10, 30, tzinfo=PARIS),
        "datetime_paris_fold_0": datetime.datetime(2024, 10, 27, 2, 30, tzinfo=PARIS),
        "datetime_paris_fold_1": datetime.datetime(2024, 10, 27, 2, 30, fold=1, tzinfo=PARIS),
        "datetime_paris_gap": datetime.datetime(2024, 3, 31, 2, 30, tzinfo=PARIS),
        "datetime_zoneinfo_utc": datetime.datetime(2024, 1, 1, tzinfo=zoneinfo.ZoneInfo("UTC")),
        "datetime_min": datetime.datetime.min, "datetime_max": datetime.datetime.max,
        "date": datetime.date(2024, 2, 29), "date_min": datetime.date.min, "date_max": datetime.date.max,
        "time": datetime.time(12, 30), "time_micro": datetime.time(1, 2, 3, 4),
        "time_offset": datetime.time(23, 59, 59, 999999, tzinfo=datetime.timezone(datetime.timedelta(hours=-3))),
        "time_utc": datetime.time(0, 0, tzinfo=UTC), "time_paris": datetime.time(8, 0, tzinfo=PARIS),
        "time_fold": datetime.time(1, 30, fold=1),
        "timedelta_zero": datetime.timedelta(0), "timedelta": datetime.timedelta(days=3, seconds=7, microseconds=11),
        "timedelta_negative": datetime.timedelta(days=-1, seconds=5, microseconds=7),
        "timedelta_max": datetime.timedelta.max, "timedelta_min": datetime.timedelta.min,
        # Decimal, UUID, paths
        "decimal": decimal.Decimal("1.10"), "decimal_nan": decimal.Decimal("NaN"), "decimal_snan": decimal.Decimal("-sNaN7"),
        "decimal_minus_zero": decimal.Decimal("-0"), "decimal_minus_inf": decimal.Decimal("-Infinity"),
        "decimal_exponent": decimal.Decimal("1E+2"), "decimal_long": decimal.Decimal("123456789012345678901234567890.123456789"),
        "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"), "uuid_zero": uuid.UUID(int=0),
        "pure_posix_path": pathlib.PurePosixPath("/tmp/a b/c.txt"), "posix_path": pathlib.PosixPath("rel/päth"),
        "pure_windows_path": pathlib.PureWindowsPath(r"C:\Users\x\file.txt"),
        "path_surrogateescape": pathlib.PurePosixPath("/tmp/caf\udce9"),
        # enums
        "enum": Color.RED, "enum_str_value": Color.GREEN, "enum_tuple_value": Color.PAIR, "int_enum": Level.HIGH,
        "str_enum": Mode.READ, "int_flag_combined": Perm.R | Perm.W,
        "enums_as_keys": {Level.LOW: Mode.WRITE, Color.RED: [Color.PAIR]},
        # dataclasses, named tuples
        "dataclass_frozen": Point(1, 2), "dataclass_slots_nested": _segment(),
        "dataclass_nested_class": Outer.Inner((Point(1, 1), {"k": Box(None)})),
        "dataclass_any": Box({"deep": [Box(Box(1.5)), (Color.RED,)]}),
        "dataclass_as_key": {Point(1, 2): "p"},
        "namedtuple": Pair(1, "two"), "typed_namedtuple": Span(3, 4), "namedtuple_nested": Pair(Pair([1], {}), Span(0, -1)),
    }
    if pydantic is not None:
        c["pydantic"] = Config(name="small", size=3)
        c["pydantic_extra"] = Config(name="extra", colour="red", weights=[1.5, 2])
        c["pydantic_nested"] = Job(config=Config(name="n", flag=True), tags=["x", "y"], origin=Point(5, 6))
        c["pydantic_any"] = Holder(payload={"t": (1, Pair(2, 3)), "m": Holder()})
    if np is not None:
        c.update({
            "ndarray_int32_2d": np.arange(6, dtype="<i4").reshape(2, 3),
            "ndarray_float64": np.array([1.5, math.nan, -0.0, math.inf]),
            "ndarray_bool": np.array([True, False, True]),
            "ndarray_uint8": np.frombuffer(b"\x00\x7f\x80\xff", dtype=np.uint8).copy(),
            "ndarray_big_endian": np.array([1, -2, 3], dtype=">i2"),
            "ndarray_complex": np.array([1 + 2j, -0.5j], dtype="<c16"),
            "ndarray_float16_3d": np.arange(8, dtype="<f2").reshape(2, 2, 2),
            "ndarray_0d": np.array(3.5),
            "ndarray_empty": np.zeros(0),
            "ndarray_empty_2d": np.zeros((2, 0), dtype="<i8"),
            "ndarray_fortran": np.asfortranarray(np.arange(6, dtype="<i8").reshape(2, 3)),
            "ndarray_strided": np.arange(10, dtype="<i2")[::3],
            "ndarray_datetime64": np.array(["2024-01-01T00:00:00", "NaT"], dtype="<M8[s]"),
            "ndarray_timedelta64": np.array([5, -1], dtype="<m8[ms]"),
            "ndarray_bytes": np.array([b"ab", b"xyz"], dtype="|S3"),
            "ndarray_str": np.array(["héllo", "日本"], dtype="<U5"),
            "npscalar_float64": np.float64(1.5), "npscalar_float32_nan": np.float32(math.nan),
            "npscalar_float16": np.float16(0.5), "npscalar_int8": np.int8(-5), "npscalar_int64": np.int64(-(2**63)),
            "npscalar_uint64": np.uint64(2**64 - 1), "npscalar_bool": np.bool_(True),
            "npscalar_complex64": np.complex64(1 + 2j), "npscalar_datetime64": np.datetime64("2024-01-01T12:00:00", "s"),
            "npscalar_timedelta64": np.timedelta64(5, "ms"), "npscalar_str": np.str_("héllo"),
            "npscalar_bytes": np.bytes_(b"ab"), "npscalar_str_empty": np.str_(""), "npscalar_bytes_empty": np.bytes_(b""),
            "numpy_in_containers": {"a": [np.int32(7), np.zeros(2, dtype="<f4")], "t": (np.bool_(False),)},
        })
    return c


CATALOGUE = catalogue()

# ---------------------------------------------------------------- golden file helpers

INLINE_LIMIT = 2048  # longer encodings are stored in the golden file as a length and a sha256


def golden_entry(value, encode_binary, encode_json) -> dict:
    out = {}
    for key, data in (("binary", encode_binary(value)), ("json", encode_json(value).encode("utf-8"))):
        text = data.hex() if key == "binary" else data.decode("utf-8")
        if len(data) <= INLINE_LIMIT:
            out[key] = text
        else:
            out[key + "_len"], out[key + "_sha256"] = len(data), hashlib.sha256(data).hexdigest()
    return out


def load_golden() -> dict:
    with open(GOLDEN_PATH, encoding="utf-8") as fh:
        return json.load(fh)


def matches_golden(case: dict, key: str, data) -> bool:
    """`data` (bytes for "binary", str for "json") is the golden encoding of the case."""
    if key in case:
        return (data.hex() if key == "binary" else data) == case[key]
    raw = data if key == "binary" else data.encode("utf-8")
    return len(raw) == case[key + "_len"] and hashlib.sha256(raw).hexdigest() == case[key + "_sha256"]


# ---------------------------------------------------------------- same(): equal, same types, all the way down


def same_tz(a, b) -> bool:
    if a is None or b is None:
        return a is b
    if type(a) is not type(b):
        return False
    if isinstance(a, zoneinfo.ZoneInfo):
        return a.key == b.key
    return a.utcoffset(None) == b.utcoffset(None)


def _fields(v) -> dict:
    if dataclasses.is_dataclass(v):
        return {f.name: getattr(v, f.name) for f in dataclasses.fields(v)}
    return {**{name: getattr(v, name) for name in type(v).model_fields}, **(v.__pydantic_extra__ or {})}


def same(a, b) -> bool:
    """Equal and of the same types recursively; NaN is the same as NaN, -0.0 is not 0.0, datetimes
    compare wall time, offset, fold and time zone (ZoneInfo by key), dicts compare in order."""
    t = type(a)
    if t is not type(b):
        return False
    if t is float:
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if t is complex:
        return same(a.real, b.real) and same(a.imag, b.imag)
    if np is not None and (t is np.ndarray or isinstance(a, np.generic)):
        return a.dtype.str == b.dtype.str and a.shape == b.shape and a.tobytes() == b.tobytes()
    if isinstance(a, enum.Enum):
        return a is b
    if t is list or issubclass(t, tuple):  # tuple and named tuples
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if t is dict:
        return len(a) == len(b) and all(same(ka, kb) and same(a[ka], b[kb]) for ka, kb in zip(a, b))
    if t in (set, frozenset):
        unmatched = list(b)
        for x in a:
            match = next((i for i, y in enumerate(unmatched) if same(x, y)), None)
            if match is None:
                return False
            del unmatched[match]
        return not unmatched
    if t in (datetime.datetime, datetime.time):
        return a.isoformat() == b.isoformat() and a.fold == b.fold and same_tz(a.tzinfo, b.tzinfo)
    if t is decimal.Decimal:
        return str(a) == str(b)
    if dataclasses.is_dataclass(a) or (pydantic is not None and isinstance(a, pydantic.BaseModel)):
        return same(_fields(a), _fields(b))
    return a == b


# ---------------------------------------------------------------- hypothesis strategies


def _no_surrogate_pairs(s: str) -> bool:
    # A high surrogate followed by a low one is read back from JSON $str16 as one astral character.
    return re.search("[\ud800-\udbff][\udc00-\udfff]", s) is None


def values(max_leaves: int = 20):
    """Recursive values of every supported type (surrogate code points included, but never a high
    surrogate directly followed by a low one: see `_no_surrogate_pairs`)."""
    from hypothesis import strategies as st

    text = st.text(st.characters(exclude_categories=()), max_size=12).filter(_no_surrogate_pairs)
    ints = st.one_of(st.integers(), st.integers(min_value=-(2**200), max_value=2**200),
                     st.sampled_from([2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64 - 1, 2**64, -(2**64)]))
    floats = st.one_of(st.floats(), st.sampled_from([math.nan, -math.nan, -0.0, math.inf, -math.inf]))
    offsets = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda m: datetime.timezone(datetime.timedelta(minutes=m)))
    zones = st.one_of(st.none(), st.just(UTC), offsets, st.timezones())
    folds = st.integers(0, 1)
    datetimes = st.builds(lambda d, f: d.replace(fold=f), st.datetimes(timezones=zones), folds)
    times = st.builds(lambda t, f: t.replace(fold=f), st.times(timezones=zones), folds)
    paths = st.builds(lambda cls, s: cls(s), st.sampled_from([pathlib.PurePosixPath, pathlib.PosixPath,
                                                              pathlib.PureWindowsPath]),
                      st.text(st.characters(exclude_characters="\x00"), max_size=10).filter(_no_surrogate_pairs))
    members = st.sampled_from([*Color, *Level, *Mode, Perm.R, Perm.R | Perm.W])
    hashable_scalars = st.one_of(st.none(), st.booleans(), ints, floats, text, st.binary(max_size=8),
                                 st.dates(), st.uuids(), members, st.builds(Point, st.integers(), st.integers()))
    hashables = st.recursive(hashable_scalars, lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(tuple), st.frozensets(hashable_scalars, max_size=3)), max_leaves=5)
    scalars = [hashable_scalars, st.complex_numbers(), st.binary(max_size=8).map(bytearray), st.just(...),
               datetimes, times, st.timedeltas(), st.decimals(), paths]
    if np is not None:
        from hypothesis.extra import numpy as nps

        dtypes = st.sampled_from(["<i1", "<i8", "<u2", ">i4", "<f2", "<f4", "<f8", ">f8", "<c8", "<c16", "|b1",
                                  "<M8[s]", "<m8[ms]", "|S3", "<U2"])
        arrays = dtypes.flatmap(lambda d: nps.arrays(d, nps.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3)))
        scalars += [arrays, dtypes.flatmap(lambda d: nps.arrays(d, ())).map(lambda a: a[()])]

    def containers(inner):
        out = [st.lists(inner, max_size=4), st.lists(inner, max_size=4).map(tuple),
               st.dictionaries(hashables, inner, max_size=4), st.sets(hashable_scalars, max_size=4),
               st.frozensets(hashable_scalars, max_size=4), st.builds(Pair, inner, inner), st.builds(Box, inner)]
        if pydantic is not None:
            out.append(st.builds(lambda v: Holder(payload=v), inner))
        return st.one_of(out)

    return st.recursive(st.one_of(scalars), containers, max_leaves=max_leaves)


# ---------------------------------------------------------------- what encoders refuse, what decoders refuse or accept


def unsupported_values() -> dict:
    """name -> (value, words naming the type: the error message must contain one of them)."""
    cyclic = [1]
    cyclic.append(cyclic)
    cyclic_dict = {}
    cyclic_dict["self"] = [cyclic_dict]
    out = {
        "object": (object(), ("object",)), "str_subclass": (Tag("x"), ("Tag",)),
        "ordered_dict": (collections.OrderedDict(a=1), ("OrderedDict",)), "lambda": (lambda: None, ("function",)),
        "class": (int, ("type",)), "nested_object": ({"a": [1, (2, object())]}, ("object",)),
        "cycle": (cyclic, ("list",)), "cycle_in_dict": (cyclic_dict, ("dict",)), "too_deep": (nested_lists(300), ("list",)),
        "defaultdict": (collections.defaultdict(int), ("defaultdict",)), "str_subclass_key": ({Tag("k"): 1}, ("Tag",)),
    }
    if np is not None:  # the array type, or its dtype
        out["numpy_object_array"] = (np.array([1, None], dtype=object), ("ndarray", "dtype"))
        out["numpy_structured_array"] = (np.zeros(2, dtype=[("a", "<i4")]), ("ndarray", "dtype"))
        out["numpy_masked_array"] = (np.ma.masked_array([1, 2]), ("MaskedArray",))
    return out


def _ext32(code: int, payload: bytes) -> bytes:
    return b"\xc9" + len(payload).to_bytes(4, "big") + code.to_bytes(1, "big", signed=True) + payload


def _named(code: int, name: str, body: bytes) -> bytes:
    name_bytes = name.encode()
    return _ext32(code, b"\x92" + bytes([0xA0 | len(name_bytes)]) + name_bytes + body)


INVALID_BINARY = {
    "empty": b"",
    "never_used_byte": b"\xc1",
    "trailing_byte": b"\x01\x00",
    "truncated_str": b"\xa5ab",
    "truncated_uint16": b"\xcd\x01",
    "truncated_array": b"\x92\x01",
    "truncated_map": b"\x81\x01",
    "huge_str_length": b"\xdb\xff\xff\xff\xffab",
    "huge_array_length": b"\xdd\xff\xff\xff\xff\x01",
    "huge_map_length": b"\xdf\xff\xff\xff\xff\x01",
    "huge_ext_length": b"\xc9\xff\xff\xff\xff\x02\x90",
    "invalid_utf8": b"\xa2\xc3\x28",
    "surrogate_in_plain_str": b"\xa3\xed\xa0\x80",
    "unhashable_map_key": b"\x81\x90\x00",
    "unhashable_set_item": _ext32(3, b"\x91\x90"),
    "too_deep": b"\x91" * 201 + b"\xc0",
    "ext_unknown_23": _ext32(23, b""),
    "ext_unknown_0": _ext32(0, b""),
    "ext_unknown_negative": _ext32(-1, b"\x00"),
    "ext_int_empty": _ext32(1, b""),
    "ext_tuple_not_array": _ext32(2, b"\x01"),
    "ext_tuple_trailing": _ext32(2, b"\x90\x00"),
    "ext_tuple_truncated": _ext32(2, b"\x92\x01"),
    "ext_ellipsis_payload": _ext32(5, b"\x00"),
    "ext_complex_short": _ext32(7, b"\x00" * 15),
    "ext_datetime_bad_iso": _ext32(8, b"\x93\xa3bad\xc0\x00"),
    "ext_datetime_fold_2": _ext32(8, b"\x93\xb32024-01-01T00:00:00\xc0\x02"),
    "ext_datetime_fold_bool": _ext32(8, b"\x93\xb32024-01-01T00:00:00\xc0\xc3"),
    "ext_datetime_two_items": _ext32(8, b"\x92\xb32024-01-01T00:00:00\xc0"),
    "ext_datetime_unknown_zone": _ext32(8, b"\x93\xb32024-01-01T00:00:00\xacNowhere/Zone\x00"),
    "ext_date_bad": _ext32(9, b"\xaa2024-13-01"),
    "ext_timedelta_float": _ext32(11, b"\x93\x00\xcb" + struct.pack(">d", 1.5) + b"\x00"),
    "ext_decimal_bad": _ext32(12, b"\xa3abc"),
    "ext_uuid_short": _ext32(13, b"\x00" * 15),
    "ext_path_unknown_class": _ext32(14, b"\x92\xa3str\xa1a"),
    "ext_enum_not_allowed": _named(15, "codec_values_nowhere:Color", b"\x01"),
    "ext_dataclass_not_allowed": _named(16, "codec_values_nowhere:Point", b"\x80"),
    "ext_pydantic_not_allowed": _named(17, "codec_values_nowhere:Model", b"\x80"),
    "ext_namedtuple_not_allowed": _named(20, "codec_values_nowhere:Pair", b"\x90"),
    "ext_enum_bad_value": _named(15, "codec_values:Level", b"\x63"),
    "ext_dataclass_missing_field": _named(16, "codec_values:Point", b"\x81\xa1x\x01"),
    "ext_dataclass_unknown_field": _named(16, "codec_values:Point", b"\x83\xa1x\x01\xa1y\x02\xa1z\x03"),
    "ext_dataclass_names_an_enum": _named(16, "codec_values:Level", b"\x80"),
    "ext_namedtuple_wrong_arity": _named(20, "codec_values:Pair", b"\x91\x01"),
    "ext_ndarray_object_dtype": _ext32(18, b"\x93\xa3|O8\x91\x01\xc4\x08" + b"\x00" * 8),
    "ext_ndarray_void_dtype": _ext32(18, b"\x93\xa3|V8\x91\x01\xc4\x08" + b"\x00" * 8),
    "ext_ndarray_bad_dtype": _ext32(18, b"\x93\xa2zz\x91\x01\xc4\x08" + b"\x00" * 8),
    "ext_ndarray_wrong_size": _ext32(18, b"\x93\xa3<f8\x91\x02\xc4\x08" + b"\x00" * 8),
    "ext_ndarray_negative_shape": _ext32(18, b"\x93\xa3<f8\x91\xff\xc4\x00"),
    "ext_npscalar_wrong_size": _ext32(19, b"\x92\xa3<f8\xc4\x04" + b"\x00" * 4),
    "ext_str16_invalid": _ext32(21, b"\xff"),
}

# Any MessagePack form of a head decodes, not only the smallest one the encoder writes: (data, value).
NONCANONICAL_BINARY = {
    "uint8_small": (b"\xcc\x05", 5), "int64_small": (b"\xd3" + (-1).to_bytes(8, "big", signed=True), -1),
    "str8_short": (b"\xd9\x01a", "a"), "bin32": (b"\xc6\x00\x00\x00\x01z", b"z"), "array16": (b"\xdc\x00\x01\x01", [1]),
    "map32": (b"\xdf\x00\x00\x00\x01\xa1k\xc0", {"k": None}), "float32": (b"\xca" + struct.pack(">f", 1.5), 1.5),
    "ext8_tuple": (b"\xc7\x02\x02\x91\x01", (1,)), "ext16_ellipsis": (b"\xc8\x00\x00\x05", ...),
    "fixext1_int": (b"\xd4\x01\x05", 5), "fixext16_uuid": (b"\xd8\x0d" + bytes(range(16)), uuid.UUID(bytes=bytes(range(16)))),
    "duplicate_map_key": (b"\x82\xa1a\x01\xa1a\x02", {"a": 2}),
}
NONCANONICAL_JSON = {
    "whitespace": (' [ 1 , 2 ] ', [1, 2]), "int_tag_small": ('{"$int": "5"}', 5),
    "tag_keys_any_order": ('{"fold": 1, "zone": null, "$datetime": "2024-01-01T00:00:00"}',
                           datetime.datetime(2024, 1, 1, fold=1)),
    "duplicate_plain_key": ('{"a": 1, "a": 2}', {"a": 2}), "escaped_astral": ('"\\ud83d\\udc0d"', "🐍"),
    "dict_tag_str_keys": ('{"$dict": [["a", 1]]}', {"a": 1}), "str16_without_surrogates": ('{"$str16": [97]}', "a"),
    "exponent_float": ("1E2", 100.0),
}

INVALID_JSON = {
    "empty": "", "whitespace": "  ", "garbage": "nul", "truncated_array": "[1,", "truncated_object": '{"a":',
    "trailing": "[1] x", "two_values": "1 2", "nan_literal": "NaN", "inf_literal": "Infinity",
    "minus_inf_literal": "[-Infinity]", "lone_surrogate_escape": '"\\ud800"', "lone_surrogate_key": '{"\\udc00": 1}',
    "plain_int_above_uint64": "18446744073709551616", "plain_int_below_int64": "-9223372036854775809",
    "too_deep": "[" * 201 + "null" + "]" * 201, "too_deep_tuples": '{"$tuple":[' * 201 + "null" + "]}" * 201,
    "unknown_tag": '{"$nope": 1}', "two_tags": '{"$tuple": [], "$set": []}', "tag_extra_key": '{"$tuple": [], "x": 1}',
    "tag_missing_key": '{"$datetime": "2024-01-01T00:00:00"}', "tuple_not_list": '{"$tuple": 1}',
    "int_not_digits": '{"$int": "12a"}', "int_not_str": '{"$int": 12}', "float_bad": '{"$float": "NaN"}',
    "bytes_bad_base64": '{"$bytes": "!!"}', "bytes_not_str": '{"$bytes": 1}', "str16_out_of_range": '{"$str16": [65536]}',
    "str16_not_int": '{"$str16": ["a"]}', "dict_bad_pair": '{"$dict": [[1]]}', "dict_unhashable_key": '{"$dict": [[[1], 2]]}',
    "set_unhashable_item": '{"$set": [[1]]}', "ellipsis_not_null": '{"$ellipsis": 0}', "complex_one_part": '{"$complex": [1.0]}',
    "complex_int_parts": '{"$complex": [1, 2]}',
    "datetime_bad_iso": '{"$datetime": "bad", "zone": null, "fold": 0}',
    "datetime_fold_2": '{"$datetime": "2024-01-01T00:00:00", "zone": null, "fold": 2}',
    "datetime_fold_bool": '{"$datetime": "2024-01-01T00:00:00", "zone": null, "fold": true}',
    "datetime_unknown_zone": '{"$datetime": "2024-01-01T00:00:00", "zone": "Nowhere/Zone", "fold": 0}',
    "time_bad": '{"$time": "25:00:00", "zone": null, "fold": 0}', "date_bad": '{"$date": "2024-02-30"}',
    "timedelta_two_items": '{"$timedelta": [1, 2]}', "decimal_bad": '{"$decimal": "abc"}', "uuid_bad": '{"$uuid": "xyz"}',
    "path_unknown_class": '{"$path": "a", "class": "Path"}',
    "enum_not_allowed": '{"$enum": "codec_values_nowhere:Color", "value": 1}',
    "dataclass_not_allowed": '{"$dataclass": "codec_values_nowhere:Point", "fields": {}}',
    "pydantic_not_allowed": '{"$pydantic": "codec_values_nowhere:Model", "fields": {}}',
    "namedtuple_not_allowed": '{"$namedtuple": "codec_values_nowhere:Pair", "items": []}',
    "enum_bad_value": '{"$enum": "codec_values:Level", "value": 99}',
    "dataclass_missing_field": '{"$dataclass": "codec_values:Point", "fields": {"x": 1}}',
    "dataclass_fields_not_object": '{"$dataclass": "codec_values:Point", "fields": [1, 2]}',
    "namedtuple_wrong_arity": '{"$namedtuple": "codec_values:Pair", "items": [1]}',
    "ndarray_object_dtype": '{"$ndarray": "|O", "shape": [1], "data": "AAAAAAAAAAA="}',
    "ndarray_wrong_size": '{"$ndarray": "<f8", "shape": [2], "data": "AAAAAAAAAAA="}',
    "npscalar_wrong_size": '{"$npscalar": "<f8", "data": "AAAA"}',
}
