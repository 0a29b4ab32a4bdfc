"""Records for backends: how an entry is written to a store outside the process and read back.

A backend of your own that stores entries as text or bytes (a key-value store, object storage, a table)
uses these, as JsonCache does, and gets what the built-in backends guarantee: values go through
oxicache's codec, so reading a store runs no code the store chose; a record found under another key's
name is refused instead of answering for that key; a record written under another key scheme is
skipped. docs/backends/writing-a-backend.md walks through a complete backend built on them.
"""

from __future__ import annotations

import time
from typing import Union

from oxicache._core import CacheEntry
from oxicache.backends._records import check_key, from_json_record, key_hex, ref_key, to_json_record

__all__ = ["Ref", "dump_record", "is_expired", "key_hex", "load_record", "record_key"]

Ref = Union[int, CacheEntry]


def record_key(ref: Ref) -> int:
    """The key to store or find a primitive's reference under: an ``int`` key as it is, a ``CacheEntry``'s
    key (a key only this process could name, such as one holding a local class, raises ``TypeError``:
    another process would read it as another call)."""
    return ref_key(ref)


def dump_record(entry: CacheEntry, ttl: float | None, now: float | None = None) -> str:
    """The entry as one JSON document (with its key, key scheme, creation and expiry time). A value the
    codec cannot store raises ``ValueEncodingError`` before the backend writes anything."""
    return to_json_record(entry, ttl, now)


def load_record(text: str | bytes, key: int, where: str) -> tuple[CacheEntry, float | None] | None:
    """The entry of a record read for ``key``, and its expiry time (seconds since the epoch, or None);
    None for a record of another key scheme (not an entry of this version: a miss, not damage). A record
    that does not decode, or whose func and inputs do not recompute to ``key``, raises
    ``ValueDecodingError`` naming ``where``: pass it to ``self._damaged(where, err)``, which applies the
    cache's ``on_backend_error`` policy, and treat the record as missing."""
    found = from_json_record(text, where)
    if found is None:
        return None
    entry, expires_at = found
    return check_key(entry, key, where), expires_at


def is_expired(expires_at: float | None, now: float | None = None) -> bool:
    """Whether a record with this expiry time (from ``load_record``) is past it."""
    return expires_at is not None and expires_at <= (time.time() if now is None else now)
