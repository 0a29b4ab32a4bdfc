"""What the persistent backends store for an entry, and how they read it back.

Every persistent backend stores the same record: the key (32 hex digits of ``CacheEntry.key``), the
function identity, the inputs, the output and expected value (absent when unset), the metadata, and the
creation and expiry times. Values go through oxicache's codec (``oxicache.codec``), never pickle unless
the user asked for it, so reading a store runs no code the store chose, and an entry read back has the
types it was stored with (its key recomputes to the same value).

A record that cannot be decoded is handled by the cache's ``on_backend_error`` policy (by default a miss
plus one ``CacheWarning``, ``BaseCache._damaged``); the next store of that key overwrites it. A value the codec cannot encode is refused before anything is written.
"""

from __future__ import annotations

import time
from typing import Any

from oxicache._core import KEY_SCHEME_VERSION, CacheEntry, KeyBytes, canonical_bytes
from oxicache.codec import decode_json, encode_binary, encode_json, encode_json_bytes
from oxicache.errors import ValueDecodingError, ValueEncodingError

__all__ = [
    "KEY_SCHEME_VERSION",
    "check_key",
    "from_json_record",
    "json_record_bytes",
    "key_hex",
    "of_this_scheme",
    "record_of",
    "ref_key",
    "to_columns",
    "to_json_record",
]

Ref = Any  # int key or CacheEntry probe (see base.py)


def ref_key(ref: Ref) -> int:
    """The int key of a backend reference (``shared_key``: these stores are read by other processes, so
    a key holding a class only this process can name is refused)."""
    return ref.shared_key if isinstance(ref, CacheEntry) else int(ref)


def key_hex(key: int) -> str:
    """The fixed-width form of a key used in file names and key columns: 32 lowercase hex digits."""
    return f"{key:032x}"


def expires_at(ttl: float | None, now: float) -> float | None:
    return None if ttl is None else now + ttl


def storable_inputs(inputs: dict[str, Any]) -> dict[str, Any]:
    """``inputs`` with each argument the codec cannot store (an object keyed through ``__cache_key__``,
    a memoized method's ``self``) replaced by its ``KeyBytes``: the entry then still recomputes to the
    same key, although the object itself is not stored."""
    out = {}
    for name, value in inputs.items():
        try:
            encode_binary(value)
        except ValueEncodingError:
            value = KeyBytes(canonical_bytes(value))
        out[name] = value
    return out


def _stored(encode: Any) -> Any:
    """Runs ``encode(fields)``; when the inputs hold arguments the codec cannot store, retries once with
    ``storable_inputs`` (an unencodable output still raises)."""

    def run(entry: CacheEntry, *args: Any) -> Any:
        fields = _fields(entry)
        try:
            return encode(fields, entry, *args)
        except ValueEncodingError:
            fields["inputs"] = storable_inputs(fields["inputs"])
            return encode(fields, entry, *args)

    return run


def _fields(entry: CacheEntry) -> dict[str, Any]:
    """The entry's parts, with unset output/expected left out (``...`` as a *value* is kept)."""
    d = entry.to_dict()
    return {
        "func": d["func"],
        "inputs": d["inputs"],
        **({"output": d["output"]} if "output" in d else {}),
        **({"expected": d["expected"]} if "expected" in d else {}),
        "metadata": d.get("metadata", {}),
    }


def _entry(func: Any, inputs: Any, output: Any, expected: Any, metadata: Any, where: str) -> CacheEntry:
    if not isinstance(func, str) or not isinstance(inputs, dict) or not isinstance(metadata, dict) or \
            not all(isinstance(name, str) for name in inputs):
        msg = f"{where}: the record's func, inputs or metadata have the wrong type"
        raise ValueDecodingError(msg)
    return CacheEntry(func, inputs, output, expected=expected, metadata=metadata)


# ---- one blob (DiskCache) ------------------------------------------------------------------------


#: The key scheme of records written before records named theirs (DiskCache's ``"s"``): all were scheme 1.
SCHEME_BEFORE_FIELD = 1


def of_this_scheme(record: Any, field: str) -> bool:
    """False for a decoded record written under another key-scheme version than this oxicache's: not
    damage, only not an entry of this version (a miss without a warning, overwritten by the next store;
    an older scheme mostly computed other keys, so its records are mostly never looked up at all)."""
    return not isinstance(record, dict) or record.get(field, SCHEME_BEFORE_FIELD) == KEY_SCHEME_VERSION


def record_of(entry: CacheEntry, now: float | None = None) -> dict[str, Any]:
    """The entry as one compact record ``{"f", "i", "o"?, "e"?, "m", "c", "s"}`` for a serializer (inputs
    the codec cannot store are kept as their ``KeyBytes``; ``s`` is the key scheme version)."""
    f = _fields(entry)
    try:
        encode_binary(f["inputs"])
    except ValueEncodingError:
        f["inputs"] = storable_inputs(f["inputs"])
    record: dict[str, Any] = {"f": f["func"], "i": f["inputs"]}
    if "output" in f:
        record["o"] = f["output"]
    if "expected" in f:
        record["e"] = f["expected"]
    record["m"] = f["metadata"]
    record["c"] = time.time() if now is None else now
    record["s"] = KEY_SCHEME_VERSION
    return record


def check_key(entry: CacheEntry, key: int, where: str) -> CacheEntry:
    """``entry`` if it is the entry of ``key``: a record moved under another key (by hand, or by a hostile
    writer) must not answer for it."""
    if entry.key != key:
        msg = f"{where}: the record's func and inputs do not match the key it is stored under"
        raise ValueDecodingError(msg)
    return entry


# ---- one JSON document (JsonCache) --------------------------------------------------------------


@_stored
def _json_record(fields: dict[str, Any], entry: CacheEntry, ttl: float | None, now: float) -> bytes:
    record: dict[str, Any] = {"key": key_hex(entry.shared_key), "scheme": KEY_SCHEME_VERSION}
    record.update(fields)
    record["created_at"] = now
    record["expires_at"] = expires_at(ttl, now)
    return encode_json_bytes(record)


def json_record_bytes(entry: CacheEntry, ttl: float | None, now: float | None = None) -> bytes:
    """The entry as one readable JSON document (the codec's tagged JSON), in UTF-8: what a file holds."""
    return _json_record(entry, ttl, time.time() if now is None else now)  # type: ignore[no-any-return]


def to_json_record(entry: CacheEntry, ttl: float | None, now: float | None = None) -> str:
    """``json_record_bytes`` as text."""
    return json_record_bytes(entry, ttl, now).decode("utf-8")


def from_json_record(text: str | bytes, where: str) -> tuple[CacheEntry, float | None] | None:
    """The entry and its expiry time (seconds since the epoch, or None); None for a record written under
    another key scheme (``of_this_scheme``)."""
    record = decode_json(text)
    if not isinstance(record, dict) or "func" not in record or "inputs" not in record:
        msg = f"{where}: not an oxicache record"
        raise ValueDecodingError(msg)
    if not of_this_scheme(record, "scheme"):
        return None
    expiry = record.get("expires_at")
    if expiry is not None and not isinstance(expiry, (int, float)):
        msg = f"{where}: bad expires_at"
        raise ValueDecodingError(msg)
    entry = _entry(record["func"], record["inputs"], record.get("output", ...), record.get("expected", ...),
                   record.get("metadata", {}), where)
    return entry, expiry


# ---- columns (DatabaseCache) ----------------------------------------------------------------------


def to_columns(entry: CacheEntry, ttl: float | None, now: float | None = None) -> dict[str, Any]:
    """The entry as table columns: key, func, inputs, output, expected, metadata (codec JSON text, or
    None for an unset output/expected), scheme, created_at, expires_at."""
    return _columns(entry, ttl, time.time() if now is None else now)  # type: ignore[no-any-return]


@_stored
def _columns(f: dict[str, Any], entry: CacheEntry, ttl: float | None, now: float) -> dict[str, Any]:
    return {
        "key": key_hex(entry.shared_key),
        "func": f["func"],
        "inputs": encode_json(f["inputs"]),
        "output": encode_json(f["output"]) if "output" in f else None,
        "expected": encode_json(f["expected"]) if "expected" in f else None,
        "metadata": encode_json(f["metadata"]),
        "scheme": KEY_SCHEME_VERSION,
        "created_at": now,
        "expires_at": expires_at(ttl, now),
    }

