"""Pure-Python reference of the value codec (docs/value-codec.md): binary MessagePack and tagged JSON.

Test-only. Written to be read next to the spec; the tests compare it with the native codec
(`oxicache.codec`) and it generates tests/data/golden_codec.json. Not optimised, not part of the package.
Where the spec is silent, the choice made here is marked "Decision:".

- encode_binary(value) -> bytes, decode_binary(data) -> value: MessagePack, no envelope.
- encode_json(value) -> str, decode_json(text) -> value.
- allow(*classes) and REGISTRY: the allow-list, type name ("module:qualname") -> class.

Levels: the value passed to encode is level 0; each child (an item of a list, tuple, set, frozenset or
named tuple, a key or value of a dict, a field of a dataclass or pydantic model, the value of an enum
member) is one level deeper. A value above level 200 is refused, when encoding and when decoding. The
parts of a tagged form (an isoformat, a zone, a shape, the real part of a complex...) are not levels.
"""

import base64
import dataclasses
import datetime
import decimal
import enum
import json
import math
import pathlib
import re
import struct
import sys
import uuid
import zoneinfo

try:
    from oxicache._core import KeyBytes
except ImportError:  # the reference also runs without the native module

    @dataclasses.dataclass(frozen=True)
    class KeyBytes:  # type: ignore[no-redef]
        canonical: bytes

MAX_DEPTH = 200
PATH_CLASSES = ("PurePosixPath", "PureWindowsPath", "PosixPath", "WindowsPath")
NUMPY_KINDS = "biufcmMSU"  # bool, ints, floats, complex, timedelta64, datetime64, bytes, str; not O/V/T
INT_RANGE = range(-(2**63), 2**64)  # int64 and uint64: plain MessagePack ints / JSON numbers


class ValueEncodingError(TypeError):
    pass


class ValueDecodingError(ValueError):
    pass


# ---------------------------------------------------------------- kinds and the allow-list

REGISTRY: dict = {}  # type name -> class


def type_name(cls) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def class_kind(cls):
    """"enum", "dataclass", "pydantic" or "namedtuple" for a class whose instances are named types."""
    if not isinstance(cls, type):
        return None
    if issubclass(cls, enum.Enum):
        return "enum"
    if dataclasses.is_dataclass(cls):
        return "dataclass"
    pydantic = sys.modules.get("pydantic")  # never imported here: no model exists unless it is loaded
    if pydantic is not None and issubclass(cls, pydantic.BaseModel):
        return "pydantic"
    if issubclass(cls, tuple) and isinstance(getattr(cls, "_fields", None), tuple):
        return "namedtuple"
    return None


def allow(*classes) -> None:
    """Decision: only named-type classes can be allowed (TypeError otherwise); the last class allowed
    under a type name wins."""
    for cls in classes:
        if class_kind(cls) is None:
            raise TypeError(f"allow() takes enum, dataclass, pydantic model or named tuple classes, not {cls!r}")
        REGISTRY[type_name(cls)] = cls


# Exact types only: a subclass of any of these (a str subclass, an OrderedDict, a datetime subclass...)
# is not one of them. Named types (enum, dataclass, pydantic, named tuple) and numpy come next.
EXACT_KINDS = {
    type(None): "none", bool: "bool", int: "int", float: "float", str: "str", bytes: "bytes",
    bytearray: "bytearray", list: "list", tuple: "tuple", dict: "dict", set: "set", frozenset: "frozenset",
    KeyBytes: "keybytes", type(Ellipsis): "ellipsis", complex: "complex", datetime.datetime: "datetime", datetime.date: "date",
    datetime.time: "time", datetime.timedelta: "timedelta", decimal.Decimal: "decimal", uuid.UUID: "uuid",
    **{getattr(pathlib, name): "path" for name in PATH_CLASSES},
}
PARENTS = {"list", "tuple", "dict", "set", "frozenset", "enum", "dataclass", "pydantic", "namedtuple"}
EXT = {
    "int": 1, "tuple": 2, "set": 3, "frozenset": 4, "ellipsis": 5, "bytearray": 6, "complex": 7,
    "datetime": 8, "date": 9, "time": 10, "timedelta": 11, "decimal": 12, "uuid": 13, "path": 14,
    "enum": 15, "dataclass": 16, "pydantic": 17, "ndarray": 18, "npscalar": 19, "namedtuple": 20, "str16": 21,
    "keybytes": 22,
}


def kind_of(v, path: str) -> str:
    t = type(v)
    kind = EXACT_KINDS.get(t) or class_kind(t)
    np = sys.modules.get("numpy")
    if kind is None and np is not None and (t is np.ndarray or isinstance(v, np.generic)):
        kind = "ndarray" if t is np.ndarray else "npscalar"  # exact ndarray: no matrix or masked array
        if v.dtype.kind not in NUMPY_KINDS:
            raise ValueEncodingError(f"cannot encode a numpy.{t.__name__} of dtype {v.dtype} at {path}: "
                                     "object, structured and void dtypes are not supported")
    if kind is None:
        raise ValueEncodingError(f"cannot encode a {t.__module__}.{t.__qualname__} object at {path}: convert it "
                                 "to a supported type, or make it a dataclass")
    if kind in ("enum", "dataclass", "pydantic", "namedtuple"):
        REGISTRY[type_name(t)] = t  # encoding an instance allows its class
    return kind


def fields_of(kind: str, v) -> dict:
    if kind == "dataclass":
        return {f.name: getattr(v, f.name) for f in dataclasses.fields(v)}
    fields = {name: getattr(v, name) for name in type(v).model_fields}  # pydantic: fields, then extras
    fields.update(v.__pydantic_extra__ or {})
    return fields


def zone_of(v):
    return v.tzinfo.key if isinstance(v.tzinfo, zoneinfo.ZoneInfo) else None


def has_surrogates(s: str) -> bool:
    try:
        s.encode("utf-8")
        return False
    except UnicodeEncodeError:
        return True


def walk(v, one, depth=0, path="value", active=frozenset()):
    """Depth and cycle checks around one(kind, v, child): child(x, step) encodes a child of v."""
    if depth > MAX_DEPTH:
        raise ValueEncodingError(f"cannot encode the {type(v).__qualname__} at {path}: nesting deeper than "
                                 f"{MAX_DEPTH} levels")
    kind = kind_of(v, path)
    if kind in PARENTS:
        if id(v) in active:
            raise ValueEncodingError(f"cannot encode the {type(v).__qualname__} at {path}: it contains itself (a cycle)")
        active = active | {id(v)}
    return one(kind, v, lambda x, step: walk(x, one, depth + 1, path + step, active))


def deep(fn, *args):
    limit = sys.getrecursionlimit()  # a few Python frames per level: make room for 200 levels
    sys.setrecursionlimit(max(limit, 20 * MAX_DEPTH + 1000))
    try:
        return fn(*args)
    finally:
        sys.setrecursionlimit(limit)


# ---------------------------------------------------------------- binary: encoding

# Length heads: (fix base, fix limit, 8-bit code, 16-bit code, 32-bit code); None: no such form.
STR, BIN, ARRAY, MAP = (0xA0, 32, 0xD9, 0xDA, 0xDB), (0, 0, 0xC4, 0xC5, 0xC6), (0x90, 16, None, 0xDC, 0xDD), \
    (0x80, 16, None, 0xDE, 0xDF)


def b_head(form, n: int) -> bytes:
    fix, fix_limit, *codes = form
    if n < fix_limit:
        return bytes([fix | n])
    for code, size in zip(codes, (1, 2, 4)):
        if code is not None and n < 1 << 8 * size:
            return bytes([code]) + n.to_bytes(size, "big")
    raise ValueEncodingError(f"a length of {n} is too long for MessagePack")


def b_ext(kind: str, payload: bytes) -> bytes:
    """Every extension as ext 32: 0xC9, 4-byte big-endian length, type, payload."""
    return b"\xc9" + len(payload).to_bytes(4, "big") + bytes([EXT[kind]]) + payload


def b_int(n: int) -> bytes:
    if 0 <= n < 0x80:
        return bytes([n])  # positive fixint
    if -32 <= n < 0:
        return n.to_bytes(1, "big", signed=True)  # negative fixint
    signed = n < 0
    for code, size in ((0xD0, 1), (0xD1, 2), (0xD2, 4), (0xD3, 8)) if signed else \
            ((0xCC, 1), (0xCD, 2), (0xCE, 4), (0xCF, 8)):
        try:
            return bytes([code]) + n.to_bytes(size, "big", signed=signed)
        except OverflowError:
            pass
    # Decision: "minimal length" is the fewest bytes holding n in two's complement (-2**71 takes 9).
    return b_ext("int", n.to_bytes(((n if n >= 0 else ~n).bit_length() + 8) // 8, "big", signed=True))


def b_str(s: str) -> bytes:
    if has_surrogates(s):
        return b_ext("str16", s.encode("utf-8", "surrogatepass"))
    data = s.encode("utf-8")
    return b_head(STR, len(data)) + data


def b_bin(data: bytes) -> bytes:
    return b_head(BIN, len(data)) + data


def b_array(*items: bytes) -> bytes:
    return b_head(ARRAY, len(items)) + b"".join(items)


def b_named(name: str, kind: str, body: bytes) -> bytes:
    return b_ext(kind, b_head(ARRAY, 2) + b_str(name) + body)


def b_one(kind, v, child) -> bytes:
    if kind in ("none", "bool"):
        return {None: b"\xc0", False: b"\xc2", True: b"\xc3"}[v]
    if kind == "int":
        return b_int(v)
    if kind == "float":
        return b"\xcb" + struct.pack(">d", v)  # NaN bits as they are (sign and payload kept)
    if kind == "str":
        return b_str(v)
    if kind == "bytes":
        return b_bin(v)
    if kind in ("list", "tuple", "set", "frozenset"):
        array = b_array(*(child(x, f"[{i}]") for i, x in enumerate(v)))
        return array if kind == "list" else b_ext(kind, array)
    if kind == "dict":
        return b_head(MAP, len(v)) + b"".join(child(k, f"<key {k!r}>") + child(x, f"[{k!r}]") for k, x in v.items())
    if kind == "ellipsis":
        return b_ext(kind, b"")
    if kind == "bytearray":
        return b_ext(kind, bytes(v))
    if kind == "keybytes":
        return b_ext(kind, v.canonical)
    if kind == "complex":
        return b_ext(kind, struct.pack(">dd", v.real, v.imag))
    if kind in ("datetime", "time"):
        zone = zone_of(v)
        return b_ext(kind, b_array(b_str(v.isoformat()), b"\xc0" if zone is None else b_str(zone), b_int(v.fold)))
    if kind in ("date", "decimal"):
        return b_ext(kind, b_str(v.isoformat() if kind == "date" else str(v)))
    if kind == "timedelta":
        return b_ext(kind, b_array(b_int(v.days), b_int(v.seconds), b_int(v.microseconds)))
    if kind == "uuid":
        return b_ext(kind, v.bytes)
    if kind == "path":  # Decision: the path str is written like any str (ext 21 if it has surrogates)
        return b_ext(kind, b_array(b_str(type(v).__name__), b_str(str(v))))
    if kind == "enum":
        return b_named(type_name(type(v)), kind, child(v.value, ".value"))
    if kind in ("dataclass", "pydantic"):
        fields = fields_of(kind, v)
        body = b_head(MAP, len(fields)) + b"".join(b_str(k) + child(x, f".{k}") for k, x in fields.items())
        return b_named(type_name(type(v)), kind, body)
    if kind == "namedtuple":
        return b_named(type_name(type(v)), kind, b_array(*(child(x, f"[{i}]") for i, x in enumerate(v))))
    if kind == "ndarray":
        return b_ext(kind, b_array(b_str(v.dtype.str), b_array(*map(b_int, v.shape)), b_bin(v.tobytes(order="C"))))
    assert kind == "npscalar"
    return b_ext(kind, b_array(b_str(v.dtype.str), b_bin(v.tobytes())))


def encode_binary(value) -> bytes:
    return deep(walk, value, b_one)


# ---------------------------------------------------------------- binary: decoding


class Reader:
    """MessagePack heads. Decision: decoding accepts every MessagePack form of a head (non-minimal ints
    and lengths, fixext/ext 8/ext 16, float 32), not only the forms the encoder writes."""

    HEADS = {
        0xC4: ("bin", 1), 0xC5: ("bin", 2), 0xC6: ("bin", 4), 0xC7: ("ext", 1), 0xC8: ("ext", 2),
        0xC9: ("ext", 4), 0xCA: ("float", 4), 0xCB: ("float", 8), 0xCC: ("uint", 1), 0xCD: ("uint", 2),
        0xCE: ("uint", 4), 0xCF: ("uint", 8), 0xD0: ("sint", 1), 0xD1: ("sint", 2), 0xD2: ("sint", 4),
        0xD3: ("sint", 8), 0xD4: ("fixext", 1), 0xD5: ("fixext", 2), 0xD6: ("fixext", 4), 0xD7: ("fixext", 8),
        0xD8: ("fixext", 16), 0xD9: ("str", 1), 0xDA: ("str", 2), 0xDB: ("str", 4), 0xDC: ("array", 2),
        0xDD: ("array", 4), 0xDE: ("map", 2), 0xDF: ("map", 4),
    }

    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueDecodingError("truncated data")
        self.pos += n
        return self.data[self.pos - n:self.pos]

    def uint(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def head(self):
        """The next head as (kind, arg): nil/bool/int/float -> the value, str/bin -> the bytes,
        array/map -> the count, ext -> (type, payload)."""
        b = self.take(1)[0]
        if b < 0x80 or b >= 0xE0:
            return "int", b if b < 0x80 else b - 0x100
        if b < 0xC0:
            kind = ("map", "array", "str", "str")[(b - 0x80) >> 4]
            return (kind, self.take(b & 0x1F)) if kind == "str" else (kind, b & 0x0F)
        if b in (0xC0, 0xC2, 0xC3):
            return ("nil", None) if b == 0xC0 else ("bool", b == 0xC3)
        if b not in self.HEADS:
            raise ValueDecodingError(f"invalid MessagePack byte 0x{b:02x}")
        kind, size = self.HEADS[b]
        if kind in ("uint", "sint"):
            return "int", int.from_bytes(self.take(size), "big", signed=kind == "sint")
        if kind == "float":
            return "float", struct.unpack(">f" if size == 4 else ">d", self.take(size))[0]
        if kind in ("str", "bin"):
            return kind, self.take(self.uint(size))
        if kind in ("array", "map"):
            return kind, self.uint(size)
        n = size if kind == "fixext" else self.uint(size)
        code = int.from_bytes(self.take(1), "big", signed=True)
        return "ext", (code, self.take(n))

    def count(self, kind: str, n: int | None = None) -> int:
        """An array or map head (of n entries, if given) inside an extension."""
        got, arg = self.head()
        if got != kind or (n is not None and arg != n):
            raise ValueDecodingError(f"expected a {kind}{'' if n is None else f' of {n}'}, found {got}")
        return arg

    def leaf(self, *types):
        """A str, int, None, float or bytes part of an extension (a str may be ext 21)."""
        v = b_value(self, MAX_DEPTH)  # at the last level: a leaf, never a container with children
        if type(v) not in types:
            raise ValueDecodingError(f"expected {' or '.join(t.__name__ for t in types)}, found {type(v).__name__}")
        return v


def b_value(r: Reader, depth: int):
    if depth > MAX_DEPTH:
        raise ValueDecodingError(f"nesting deeper than {MAX_DEPTH} levels")
    kind, arg = r.head()
    if kind == "str":
        return arg.decode("utf-8")  # strict: lone surrogates only come in ext 21
    if kind == "array":
        return [b_value(r, depth + 1) for _ in range(arg)]
    if kind == "map":
        return dict((b_value(r, depth + 1), b_value(r, depth + 1)) for _ in range(arg))
    if kind == "ext":
        return b_ext_value(*arg, depth)
    return arg  # nil, bool, int, float, bin (bytes)


def b_ext_value(code: int, payload: bytes, depth: int):
    kinds = {v: k for k, v in EXT.items()}
    if code not in kinds:
        raise ValueDecodingError(f"unknown extension type {code}")
    kind, r = kinds[code], Reader(payload)
    if kind in ("int", "ellipsis", "bytearray", "complex", "uuid", "str16", "keybytes"):  # raw payloads
        size = {"ellipsis": 0, "complex": 16, "uuid": 16}.get(kind, len(payload))
        if len(payload) != size or (kind == "int" and not payload):
            raise ValueDecodingError(f"bad {kind} extension length {len(payload)}")
        r.pos = len(payload)
    if kind == "int":
        v = int.from_bytes(payload, "big", signed=True)
    elif kind == "ellipsis":
        v = ...
    elif kind == "bytearray":
        v = bytearray(payload)
    elif kind == "keybytes":
        v = KeyBytes(payload)
    elif kind == "complex":
        v = complex(*struct.unpack(">dd", payload))
    elif kind == "uuid":
        v = uuid.UUID(bytes=payload)
    elif kind == "str16":
        v = payload.decode("utf-8", "surrogatepass")
    elif kind in ("tuple", "set", "frozenset"):
        v = {"tuple": tuple, "set": set, "frozenset": frozenset}[kind](
            b_value(r, depth + 1) for _ in range(r.count("array")))
    elif kind in ("datetime", "time"):
        r.count("array", 3)
        v = revive_time(kind, r.leaf(str), r.leaf(str, type(None)), r.leaf(int))
    elif kind == "date":
        v = datetime.date.fromisoformat(r.leaf(str))
    elif kind == "timedelta":
        r.count("array", 3)
        v = datetime.timedelta(days=r.leaf(int), seconds=r.leaf(int), microseconds=r.leaf(int))
    elif kind == "decimal":
        v = decimal.Decimal(r.leaf(str))
    elif kind == "path":
        r.count("array", 2)
        v = revive_path(r.leaf(str), r.leaf(str))
    elif kind in ("ndarray", "npscalar"):
        r.count("array", 3 if kind == "ndarray" else 2)
        dtype = r.leaf(str)
        shape = [r.leaf(int) for _ in range(r.count("array"))] if kind == "ndarray" else None
        v = revive_numpy(dtype, shape, r.leaf(bytes))
    else:  # named types: [type name, body]
        r.count("array", 2)
        name = r.leaf(str)
        if kind == "enum":
            body = b_value(r, depth + 1)
        elif kind == "namedtuple":
            body = [b_value(r, depth + 1) for _ in range(r.count("array"))]
        else:
            body = {}
            for _ in range(r.count("map")):
                key = r.leaf(str)
                body[key] = b_value(r, depth + 1)
        v = revive_named(kind, name, body)
    if r.pos != len(payload):
        raise ValueDecodingError(f"trailing bytes in a {kind} extension")
    return v


def decode_binary(data) -> object:
    data = memoryview(data).tobytes()  # TypeError (not ValueDecodingError) for a non-bytes-like argument
    r = Reader(data)
    value = decoding(deep, b_value, r, 0)
    if r.pos != len(data):
        raise ValueDecodingError(f"trailing bytes after the value (offset {r.pos} of {len(data)})")
    return value


def decoding(fn, *args):
    """Any failure while decoding is a ValueDecodingError."""
    try:
        return fn(*args)
    except ValueDecodingError:
        raise
    except Exception as exc:  # ValueError, TypeError (unhashable key), KeyError, RecursionError, ...
        raise ValueDecodingError(f"invalid codec data: {type(exc).__name__}: {exc}") from exc


# ---------------------------------------------------------------- revival (both encodings)


def revive_time(kind: str, iso: str, zone, fold: int):
    if fold not in (0, 1):
        raise ValueDecodingError(f"fold must be 0 or 1, not {fold}")
    v = (datetime.datetime if kind == "datetime" else datetime.time).fromisoformat(iso)
    if zone is not None:  # Decision: the wall time is kept and the stored offset is not checked
        v = v.replace(tzinfo=zoneinfo.ZoneInfo(zone))
    return v.replace(fold=fold)


def revive_path(class_name: str, text: str):
    if class_name not in PATH_CLASSES:
        raise ValueDecodingError(f"unknown path class {class_name!r}")
    return getattr(pathlib, class_name)(text)  # WindowsPath on POSIX (or the reverse) raises: refused


def revive_named(kind: str, name: str, body):
    cls = REGISTRY.get(name)
    if cls is None:
        raise ValueDecodingError(f"type {name} is not allowed: encode one of its instances in this process "
                                 f"first, or call oxicache.codec.allow({name.rpartition(':')[2]})")
    if class_kind(cls) != kind:
        raise ValueDecodingError(f"type {name} is not a {kind}")
    if kind == "enum":
        return cls(body)  # lookup by value
    if kind == "namedtuple":
        return cls(*body)
    if kind == "dataclass":
        # Decision: the stored field names must be exactly the class's fields (a changed class: no value).
        names = [f.name for f in dataclasses.fields(cls)]
        if sorted(names) != sorted(body):
            raise ValueDecodingError(f"stored fields {sorted(body)} are not the fields {names} of {name}")
        obj = cls.__new__(cls)
        for field_name in names:
            object.__setattr__(obj, field_name, body[field_name])
        return obj
    # pydantic. Decision: every model field must be stored; other names only if the model allows extras.
    missing, extra = set(cls.model_fields) - set(body), set(body) - set(cls.model_fields)
    if missing or (extra and cls.model_config.get("extra") != "allow"):
        raise ValueDecodingError(f"stored fields {sorted(body)} do not fit {name}")
    return cls.model_construct(**body)


def revive_numpy(dtype_str: str, shape, data: bytes):
    import numpy as np  # Decision: decoding an array imports numpy (a fixed module, not one the data names)

    dtype = np.dtype(dtype_str)
    if dtype.kind not in NUMPY_KINDS:
        raise ValueDecodingError(f"numpy dtype {dtype_str!r} is not supported")
    if shape is None:  # a scalar: the bytes of scalar.tobytes(); a 0-byte str/bytes dtype still has one item
        if len(data) != (dtype.itemsize or len(dtype.type().tobytes())):
            raise ValueDecodingError("numpy scalar data has the wrong length")
        return np.ndarray((), dtype, buffer=data)[()]
    if any(d < 0 for d in shape) or math.prod(shape) * dtype.itemsize != len(data):
        raise ValueDecodingError(f"numpy data of {len(data)} bytes does not fit shape {shape} and dtype {dtype_str}")
    return np.ndarray(tuple(shape), dtype, buffer=data).copy()


# ---------------------------------------------------------------- JSON: encoding


def j_float(x: float):
    return x if math.isfinite(x) else {"$float": "nan" if math.isnan(x) else "inf" if x > 0 else "-inf"}


def j_str(s: str):
    if not has_surrogates(s):
        return s
    data = s.encode("utf-16-le", "surrogatepass")
    return {"$str16": list(struct.unpack(f"<{len(data) // 2}H", data))}


def b64(data) -> str:
    return base64.b64encode(data).decode("ascii")  # standard alphabet, padded


def j_one(kind, v, child):
    """The value as a tree of JSON-ready Python objects (tag objects as dicts, keys in table order)."""
    if kind in ("none", "bool"):
        return v
    if kind == "int":
        return v if v in INT_RANGE else {"$int": str(v)}
    if kind == "float":
        return j_float(v)
    if kind == "str":
        return j_str(v)
    if kind in ("bytes", "bytearray"):
        return {f"${kind}": b64(v)}
    if kind == "keybytes":
        return {"$keybytes": b64(v.canonical)}
    if kind == "list":
        return [child(x, f"[{i}]") for i, x in enumerate(v)]
    if kind in ("tuple", "set", "frozenset"):
        return {f"${kind}": [child(x, f"[{i}]") for i, x in enumerate(v)]}
    if kind == "dict":
        # Decision: a str key with lone surrogates can't be an object key either: it takes the $dict form.
        if all(type(k) is str and not k.startswith("$") and not has_surrogates(k) for k in v):
            return {k: child(x, f"[{k!r}]") for k, x in v.items()}
        return {"$dict": [[child(k, f"<key {k!r}>"), child(x, f"[{k!r}]")] for k, x in v.items()]}
    if kind == "ellipsis":
        return {"$ellipsis": None}
    if kind == "complex":  # Decision: each part as a float is written (NaN and inf as $float tags)
        return {"$complex": [j_float(v.real), j_float(v.imag)]}
    if kind in ("datetime", "time"):
        return {f"${kind}": v.isoformat(), "zone": zone_of(v), "fold": v.fold}
    if kind == "date":
        return {"$date": v.isoformat()}
    if kind == "timedelta":
        return {"$timedelta": [v.days, v.seconds, v.microseconds]}
    if kind == "decimal":
        return {"$decimal": str(v)}
    if kind == "uuid":
        return {"$uuid": str(v)}
    if kind == "path":
        return {"$path": j_str(str(v)), "class": type(v).__name__}
    if kind == "enum":
        return {"$enum": type_name(type(v)), "value": child(v.value, ".value")}
    if kind in ("dataclass", "pydantic"):  # "fields": a plain object, names as they are
        fields = {k: child(x, f".{k}") for k, x in fields_of(kind, v).items()}
        return {f"${kind}": type_name(type(v)), "fields": fields}
    if kind == "namedtuple":
        return {"$namedtuple": type_name(type(v)), "items": [child(x, f"[{i}]") for i, x in enumerate(v)]}
    if kind == "ndarray":
        return {"$ndarray": v.dtype.str, "shape": list(v.shape), "data": b64(v.tobytes(order="C"))}
    assert kind == "npscalar"
    return {"$npscalar": v.dtype.str, "data": b64(v.tobytes())}


def encode_json(value) -> str:
    return deep(lambda: json.dumps(walk(value, j_one), ensure_ascii=False, separators=(",", ":"), allow_nan=False))


# ---------------------------------------------------------------- JSON: decoding


class Pairs(list):
    """A JSON object as its (key, value) pairs, in order."""


# The keys of each tag object besides the tag. Decision: exactly these keys, in any order.
TAG_KEYS = {
    "$int": (), "$float": (), "$str16": (), "$bytes": (), "$bytearray": (), "$keybytes": (), "$tuple": (), "$dict": (), "$set": (),
    "$frozenset": (), "$ellipsis": (), "$complex": (), "$datetime": ("zone", "fold"), "$date": (),
    "$time": ("zone", "fold"), "$timedelta": (), "$decimal": (), "$uuid": (), "$path": ("class",),
    "$enum": ("value",), "$dataclass": ("fields",), "$pydantic": ("fields",), "$ndarray": ("shape", "data"),
    "$npscalar": ("data",), "$namedtuple": ("items",),
}


def j_leaf(x, *types):
    """A str, int, None or float part of a tag object (a str may be $str16, a float $float)."""
    v = j_value(x, MAX_DEPTH)  # at the last level: a leaf, never a container with children
    if type(v) not in types:
        raise ValueDecodingError(f"expected {' or '.join(t.__name__ for t in types)}, found {type(v).__name__}")
    return v


def j_list(x, n: int | None = None) -> list:
    if type(x) is not list or (n is not None and len(x) != n):
        raise ValueDecodingError(f"expected a JSON array{'' if n is None else f' of {n}'}")
    return x


def unb64(x) -> bytes:
    return base64.b64decode(j_leaf(x, str), validate=True)


def j_value(x, depth: int):
    if depth > MAX_DEPTH:
        raise ValueDecodingError(f"nesting deeper than {MAX_DEPTH} levels")
    if type(x) is str:
        if has_surrogates(x):  # Decision: "\ud800" escapes are refused; such strs come as $str16
            raise ValueDecodingError("a JSON string with lone surrogates")
        return x
    if type(x) is int and x not in INT_RANGE:  # Decision: bigger ints only come as $int
        raise ValueDecodingError("a JSON integer outside the int64/uint64 range")
    if type(x) is list:
        return [j_value(i, depth + 1) for i in x]
    if type(x) is not Pairs:
        return x  # None, bool, int, float
    tags = [k for k, _ in x if k.startswith("$")]
    if not tags:  # a plain object: a dict with str keys (later duplicates win, as in json.loads)
        return dict((j_value(k, depth + 1), j_value(v, depth + 1)) for k, v in x)
    tag = tags[0]
    if tag not in TAG_KEYS:
        raise ValueDecodingError(f"unknown tag {tag!r}")
    obj = dict(x)
    if len(x) != 1 + len(TAG_KEYS[tag]) or set(obj) != {tag, *TAG_KEYS[tag]}:
        raise ValueDecodingError(f"a {tag} object must have the keys {[tag, *TAG_KEYS[tag]]}, not {[k for k, _ in x]}")
    return j_tag(tag[1:], obj, depth)


def j_tag(kind: str, obj: dict, depth: int):
    a = obj[f"${kind}"]
    if kind == "int":
        if not re.fullmatch(r"-?[0-9]+", j_leaf(a, str)):
            raise ValueDecodingError(f"bad $int {a!r}")
        return int(a)
    if kind == "float":
        if j_leaf(a, str) not in ("nan", "inf", "-inf"):
            raise ValueDecodingError(f"bad $float {a!r}")
        return float(a)  # a new object each time: a set can hold two NaNs
    if kind == "str16":
        units = j_list(a)
        if any(type(u) is not int or not 0 <= u <= 0xFFFF for u in units):
            raise ValueDecodingError("$str16 items must be UTF-16 code units")
        return struct.pack(f"<{len(units)}H", *units).decode("utf-16-le", "surrogatepass")  # pairs are joined
    if kind in ("bytes", "bytearray"):
        return (bytes if kind == "bytes" else bytearray)(unb64(a))
    if kind == "keybytes":
        return KeyBytes(unb64(a))
    if kind in ("tuple", "set", "frozenset"):
        return {"tuple": tuple, "set": set, "frozenset": frozenset}[kind](j_value(i, depth + 1) for i in j_list(a))
    if kind == "dict":
        return dict((j_value(k, depth + 1), j_value(v, depth + 1)) for k, v in map(lambda p: j_list(p, 2), j_list(a)))
    if kind == "ellipsis":
        if a is not None:
            raise ValueDecodingError("$ellipsis must be null")
        return ...
    if kind == "complex":
        real, imag = (j_leaf(p, float) for p in j_list(a, 2))
        return complex(real, imag)
    if kind in ("datetime", "time"):
        return revive_time(kind, j_leaf(a, str), j_leaf(obj["zone"], str, type(None)), j_leaf(obj["fold"], int))
    if kind == "date":
        return datetime.date.fromisoformat(j_leaf(a, str))
    if kind == "timedelta":
        days, seconds, micros = (j_leaf(p, int) for p in j_list(a, 3))
        return datetime.timedelta(days=days, seconds=seconds, microseconds=micros)
    if kind == "decimal":
        return decimal.Decimal(j_leaf(a, str))
    if kind == "uuid":
        return uuid.UUID(j_leaf(a, str))
    if kind == "path":
        return revive_path(j_leaf(obj["class"], str), j_leaf(a, str))
    if kind in ("ndarray", "npscalar"):
        shape = [j_leaf(d, int) for d in j_list(obj["shape"])] if kind == "ndarray" else None
        return revive_numpy(j_leaf(a, str), shape, unb64(obj["data"]))
    name = j_leaf(a, str)
    if kind == "enum":
        body = j_value(obj["value"], depth + 1)
    elif kind == "namedtuple":
        body = [j_value(i, depth + 1) for i in j_list(obj["items"])]
    else:
        if type(obj["fields"]) is not Pairs:
            raise ValueDecodingError('"fields" must be a JSON object')
        body = {j_leaf(k, str): j_value(v, depth + 1) for k, v in obj["fields"]}
    return revive_named(kind, name, body)


def reject_constant(name):
    raise ValueDecodingError(f"{name} is not JSON")  # json.loads would accept NaN, Infinity, -Infinity


def decode_json(text: str) -> object:
    if not isinstance(text, str):  # Decision: str only (TypeError otherwise)
        raise TypeError(f"decode_json takes a str, not {type(text).__name__}")
    return decoding(deep, lambda: j_value(json.loads(text, object_pairs_hook=Pairs, parse_constant=reject_constant), 0))
