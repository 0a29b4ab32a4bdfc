"""Pure-Python reference of the canonical key scheme, version 2 (docs/key-scheme.md).

Written to be read next to the spec; used only by the tests, which compare it with the native
encoder and with tests/data/golden_keys.json. Not optimised and not part of the package.
"""

import dataclasses
import datetime
import decimal
import enum
import math
import pathlib
import struct
import sys
import uuid

from blake3 import blake3

KEY_PREFIX = b"oxicache-key-v1\x00"
# "nesting deeper than 200 levels raises KeyEncodingError": the value passed to encode() is level 0 and
# every nested encode() (an item, a dict key or value, the fields dict of rules 7-8, the value of rules 1-2,
# an object-array element) is one level deeper; a value at a level above 200 raises.
MAX_DEPTH = 200


def varint(n: int) -> bytes:
    """Unsigned LEB128: 7 bits per byte, low bits first, high bit set on all but the last byte."""
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        if not n:
            out.append(low)
            return bytes(out)
        out.append(low | 0x80)


# Payload helpers. They call the builtin type's own methods (int.bit_length(x), str.encode(x, ...),
# dict.items(x), ...) so that a subclass (rule 16) is encoded from its builtin value, never through
# methods the subclass overrides.


def _int(x) -> bytes:
    n = (int.bit_length(x) + 8) // 8
    return b"i" + varint(n) + int.to_bytes(x, n, "little", signed=True)


def _f64(x) -> bytes:
    return bytes.fromhex("7ff8000000000000") if math.isnan(x) else struct.pack(">d", x)


def _str(s) -> bytes:
    b = str.encode(s, "utf-8", "surrogatepass")
    return b"s" + varint(len(b)) + b


def _identity(cls) -> bytes:
    """`str(module.qualname)` of a class its module names (or a static type). (A class no other process
    can name has a process-local identity, `L` + token + serial: not reproducible here, and not in the
    golden vectors.)"""
    if not _importable(cls):
        raise TypeError(f"{cls!r} has a process-local identity; the reference covers importable classes only")
    return _str(cls.__module__ + "." + cls.__qualname__)


def _importable(cls) -> bool:
    import sys

    if not (cls.__flags__ & (1 << 9)):  # Py_TPFLAGS_HEAPTYPE unset: a static type
        return True
    found = sys.modules.get(cls.__module__)
    for part in cls.__qualname__.split("."):
        found = getattr(found, part, None)
    return found is cls


def _items(tag, items, enc) -> bytes:
    items = list(items)
    return tag + varint(len(items)) + b"".join(enc(v) for v in items)


def _sorted(tag, encodings) -> bytes:
    encodings = sorted(encodings)
    return tag + varint(len(encodings)) + b"".join(encodings)


# The first table, in its order: exact type -> payload(value, encode_child).
BUILTINS = {
    type(None): lambda v, enc: b"N",
    bool: lambda v, enc: b"T" if v else b"F",
    int: lambda v, enc: _int(v),
    float: lambda v, enc: b"f" + _f64(v),
    complex: lambda v, enc: b"c" + _f64(v.real) + _f64(v.imag),
    str: lambda v, enc: _str(v),
    bytes: lambda v, enc: b"b" + varint(bytes.__len__(v)) + bytes(memoryview(v)),
    bytearray: lambda v, enc: b"B" + varint(bytearray.__len__(v)) + bytes(memoryview(v)),
    type(Ellipsis): lambda v, enc: b"e",
    tuple: lambda v, enc: _items(b"t", tuple.__iter__(v), enc),
    list: lambda v, enc: _items(b"l", list.__iter__(v), enc),
    dict: lambda v, enc: _sorted(b"d", (enc(k) + enc(x) for k, x in dict.items(v))),
    set: lambda v, enc: _sorted(b"S", (enc(x) for x in set.__iter__(v))),
    frozenset: lambda v, enc: _sorted(b"Z", (enc(x) for x in frozenset.__iter__(v))),
}
# Rule 16 candidates: the builtins that can be subclassed (bool, NoneType and ellipsis cannot).
SUBCLASSABLE = [t for t in BUILTINS if t not in (type(None), bool, type(Ellipsis))]


def _dtype_str(dtype) -> str:
    return repr(dtype.descr) if dtype.names is not None else dtype.str


def _encode(v, depth: int, registry: dict) -> bytes:
    if depth > MAX_DEPTH:
        raise TypeError(f"key encoding: nesting deeper than {MAX_DEPTH} levels")

    def enc(child):
        return _encode(child, depth + 1, registry)

    t = type(v)
    if t in BUILTINS:  # exact builtin types: the first table directly
        return BUILTINS[t](v, enc)
    for cls in t.__mro__:  # 1. registered encoder, nearest class in the MRO
        if cls in registry:
            return b"X" + _identity(cls) + enc(registry[cls](v))
    if getattr(t, "__cache_key__", None) is not None:  # 2. looked up on the type, like a dunder
        return b"K" + _identity(t) + enc(v.__cache_key__())
    if isinstance(v, enum.Enum):  # 3.
        name = v.name  # None for Flag(0) and, on some Pythons, combined flags: the value identifies those
        return b"n" + _identity(t) + (_str(name) if isinstance(name, str) else enc(v.value))
    if isinstance(v, type):  # 4.
        return b"y" + _identity(v)
    np = sys.modules.get("numpy")
    if np is not None and t is np.ndarray:  # 5. exact type only (a masked array's mask is not in its bytes)
        if v.dtype.hasobject and v.dtype.names is not None:
            raise TypeError("key encoding: structured arrays holding objects are not encodable")
        out = b"A" + _str(_dtype_str(v.dtype)) + varint(v.ndim) + b"".join(varint(d) for d in v.shape)
        if v.dtype.kind == "O":  # object dtype: each element's encoding, in C order
            return out + b"".join(enc(x) for x in v.ravel(order="C").tolist())
        data = np.ascontiguousarray(v).tobytes()
        return out + varint(len(data)) + data
    if np is not None and isinstance(v, np.generic):  # 6.
        if v.dtype.hasobject:
            raise TypeError("key encoding: numpy scalars holding objects are not encodable")
        # "varint(nbytes)" is the length of the bytes written: for np.bytes_(b"") .nbytes is 0 but
        # .tobytes() is b"\x00", and the encoding must stay self-delimiting.
        data = v.tobytes()
        return b"g" + _str(_dtype_str(v.dtype)) + varint(len(data)) + data
    if dataclasses.is_dataclass(v):  # 7. (classes were taken by rule 4)
        return b"O" + _identity(t) + enc({f.name: getattr(v, f.name) for f in dataclasses.fields(v)})
    pydantic = sys.modules.get("pydantic")
    if pydantic is not None and isinstance(v, pydantic.BaseModel):  # 8.
        fields = {name: getattr(v, name) for name in t.model_fields}
        extra = v.__pydantic_extra__
        if isinstance(extra, dict) and extra:
            fields.update(extra)
        return b"P" + _identity(t) + enc(fields)
    if isinstance(v, datetime.datetime):  # 9. before date: datetime is a subclass of date
        return b"M" + _str(v.isoformat())
    if isinstance(v, datetime.date):  # 10.
        return b"Y" + _str(v.isoformat())
    if isinstance(v, datetime.time):  # 11.
        return b"H" + _str(v.isoformat())
    if isinstance(v, datetime.timedelta):  # 12.
        return b"R" + _int(v.days) + _int(v.seconds) + _int(v.microseconds)
    if isinstance(v, decimal.Decimal):  # 13.
        return b"m" + _str(str(v))
    if isinstance(v, uuid.UUID):  # 14.
        return b"u" + v.bytes
    if isinstance(v, pathlib.PurePath):  # 15. the flavour is part of the key
        return (b"W" if isinstance(v, pathlib.PureWindowsPath) else b"p") + _str(v.as_posix())
    for base in SUBCLASSABLE:  # 16. subclass of a builtin: encoded as its base
        if isinstance(v, base):
            return BUILTINS[base](v, enc)
    raise TypeError(f"cannot build a cache key from a {t.__module__}.{t.__qualname__} object")


def encode(value, registry: dict | None = None) -> bytes:
    """Canonical bytes of `value`; `registry` maps a class to an encoder fn (rule 1)."""
    limit = sys.getrecursionlimit()  # ~6 Python frames per level here: make room for 200 levels
    sys.setrecursionlimit(max(limit, 20 * MAX_DEPTH + 1000))
    try:
        return _encode(value, 0, registry or {})
    finally:
        sys.setrecursionlimit(limit)


def key_bytes(func: str, inputs: dict, registry: dict | None = None) -> bytes:
    return encode((func, inputs), registry)


def digest_key(canonical: bytes) -> int:
    return int.from_bytes(blake3(KEY_PREFIX + canonical).digest()[:16], "big")


def key(func: str, inputs: dict, registry: dict | None = None) -> int:
    return digest_key(key_bytes(func, inputs, registry))
