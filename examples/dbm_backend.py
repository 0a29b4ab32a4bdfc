"""DbmCache: a complete oxicache backend on the standard library's ``dbm`` (one file, no server).

The worked example of docs/backends/writing-a-backend.md. It implements the five primitives and declares
its capabilities; memoize (every kind of function), batches, async, TTL, the failure policy, ``verify()``,
``cache_info()``/``cache_clear()`` and CacheKLStore come from ``BaseCache``. tests/contract runs oxicache's
contract suite (``oxicache.testing.BackendContract``) on it, as on every built-in backend.
"""

from __future__ import annotations

import dbm
import os
import threading
from typing import Any, Iterator

from oxicache import BaseCache, CacheEntry, Capabilities
from oxicache.errors import ValueDecodingError
from oxicache.records import Ref, dump_record, is_expired, key_hex, load_record, record_key


class DbmCache(BaseCache):
    """Entries in a ``dbm`` file, one record per key. For one process at a time (``dbm`` files take no
    lock), its threads serialized by a lock; the file outlives the process."""

    # Its calls block on file I/O (coroutines then reach it from a worker thread); entries are read back by
    # later processes (keys that only this process can name are refused); TTL is kept in the records.
    capabilities = Capabilities(blocking_io=True, shared=True, ttl=True)

    def __init__(self, path: str | os.PathLike[str], **options: Any) -> None:
        super().__init__(**options)  # exclude=, ttl=, on_backend_error=
        self.path = os.fspath(path)
        self._lock = threading.Lock()
        self._db = dbm.open(self.path, "c")

    # ---- the primitives ---------------------------------------------------------------------------
    def _get(self, ref: Ref) -> CacheEntry | None:
        with self._lock:
            return self._read(key_hex(record_key(ref)))

    def _set(self, entry: CacheEntry, ttl: float | None) -> None:
        record = dump_record(entry, ttl)  # refuses a value the codec cannot store, before writing anything
        with self._lock:
            self._db[key_hex(record_key(entry))] = record

    def _remove(self, ref: Ref) -> bool:
        name = key_hex(record_key(ref))
        with self._lock:
            if self._read(name) is None:
                return False
            del self._db[name]
            return True

    def _iter(self) -> Iterator[CacheEntry]:
        with self._lock:
            names = [name.decode() for name in self._db.keys()]
        for name in names:
            with self._lock:
                entry = self._read(name)
            if entry is not None:
                yield entry

    def _clear(self) -> None:
        with self._lock:
            for name in list(self._db.keys()):
                del self._db[name]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ---- reading one record (the lock held) -----------------------------------------------------
    def _read(self, name: str) -> CacheEntry | None:
        """The live entry stored under ``name``, or None: absent, expired (then removed), written under
        another key scheme, or damaged (then reported through the cache's ``on_backend_error`` policy)."""
        data = self._db.get(name)
        if data is None:
            return None
        where = f"{self.path} key {name}"
        try:
            found = load_record(data, int(name, 16), where)
        except ValueDecodingError as err:
            self._damaged(where, err)
            return None
        if found is None:
            return None
        entry, expires_at = found
        if is_expired(expires_at):
            del self._db[name]
            return None
        return entry
