"""``DiskCache``: entries in a local folder through the ``diskcache`` library (SQLite plus files).

Values are stored as oxicache codec blobs (``oxicache.codec``), not as diskcache's pickles, and the store
is opened with a ``diskcache.Disk`` that refuses to unpickle anything: a planted pickle in the folder is
never executed, and a planted file name never reads or deletes outside the folder.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import sqlite3
import threading
import time
from typing import Any, Callable, Iterable, Iterator

from oxicache._core import KEY_SCHEME_VERSION, CacheEntry, entry_of_record
from oxicache.backends._fork import in_child_of
from oxicache.backends._forkgate import SQLITE_GATE
from oxicache.backends._fs import (
    STALE_TEMP_AGE,
    check_writable_file,
    hold_sqlite_file,
    prepare_folder,
    warn_if_risky_filesystem,
)
from oxicache.backends._leases import FILE_LOCKS, FileLeases, LockLeasedCache, lease_options
from oxicache.backends._records import record_of, ref_key
from oxicache.backends._reserve import Reserve, is_full, reserve_path
from oxicache.base import Capabilities, Ref
from oxicache.codec import Serializer
from oxicache.durations import TTL
from oxicache.errors import CorruptStoreError, ValueDecodingError, ValueEncodingError

__all__ = ["DiskCache"]

# diskcache's own default: 1 GiB (ahvn used 32e9 bytes).
DEFAULT_SIZE_LIMIT = 2**30


def _safe_disk_class() -> type:
    import diskcache  # type: ignore[import-untyped]

    class SafeDisk(diskcache.Disk):  # type: ignore[misc]
        """diskcache's storage layer, minus everything that could run code or touch files outside the folder."""

        def get(self, key: Any, raw: bool) -> Any:
            if not raw:
                return _FOREIGN  # a pickled key: not ours, and never unpickled
            return super().get(key, raw)

        def fetch(self, mode: int, filename: str | None, value: Any, read: bool) -> Any:
            if mode == diskcache.core.MODE_PICKLE:
                msg = "a pickled value (not written by oxicache's codec) is never unpickled"
                raise ValueDecodingError(msg)
            if mode not in _MODES:
                msg = f"the item's storage mode {mode!r} is not one diskcache writes"
                raise ValueDecodingError(msg)
            if filename is not None:
                self._inside(filename)
            try:
                return super().fetch(mode, filename, value, read)
            except OSError:
                raise  # a value file removed meanwhile: diskcache reads it as a miss
            except Exception as err:  # a damaged row: no file name, a text file that is not UTF-8, ...
                msg = f"the stored value cannot be read ({type(err).__name__}: {err})"
                raise ValueDecodingError(msg) from err

        def remove(self, file_path: str) -> bool:
            self._inside(file_path)
            return super().remove(file_path)  # type: ignore[no-any-return]

        #: Value files named by the current thread's write in progress (``DiskCache._write``), so a failed
        #: write can remove the ones no row refers to.
        created = threading.local()

        def filename(self, key: Any = diskcache.core.UNKNOWN, value: Any = diskcache.core.UNKNOWN) -> Any:
            name, full_path = super().filename(key, value)
            names = getattr(SafeDisk.created, "names", None)
            if names is not None:
                names.append(name)
            return name, full_path

        def _inside(self, name: str) -> None:
            folder = os.path.realpath(self._directory)
            full = os.path.realpath(os.path.join(folder, name))
            if os.path.commonpath([folder, full]) != folder:
                msg = f"a stored file name points outside the cache folder: {name!r}"
                raise ValueDecodingError(msg)

    return SafeDisk


#: The volume the last store of this thread found when diskcache culled after it (None: it did not look).
_CULL_SAW = threading.local()


# How long opening retries while other openers hold the file (diskcache's own bound for its statements).
OPEN_RETRY_SECONDS = 60.0


def _opened_while_locked(open_store: Callable[[], Any]) -> Any:
    """``open_store()``, again while SQLite answers "database is locked". Setting a new folder's schema up
    takes write locks that SQLite may refuse at once, without waiting out its busy timeout (a lock upgrade
    that would deadlock another opener's), and not every statement of diskcache's set-up retries: a CI run
    of R20 (50 threads opening one new folder) saw it once. Every step of the set-up is idempotent, so
    opening again is safe."""
    deadline = time.monotonic() + OPEN_RETRY_SECONDS
    while True:
        try:
            return open_store()
        except sqlite3.OperationalError as err:
            if str(err) != "database is locked" or time.monotonic() > deadline:
                raise
        time.sleep(0.002)


@functools.cache
def _measured_cache_class() -> type:
    """diskcache's ``Cache``, noting what ``volume()`` returns on this thread. A store's cull measures
    the folder after writing the row; when it found the folder under ``size_limit`` it evicted nothing,
    and the store needs no measurement of its own (``DiskCache._set``: two statements fewer per store)."""
    import diskcache

    class MeasuredCache(diskcache.Cache):  # type: ignore[misc]
        def volume(self) -> int:
            size: int = super().volume()
            _CULL_SAW.volume = size
            return size

    return MeasuredCache


_FOREIGN: Any = object()
#: The folder of the lease lock files, inside the cache's folder (not diskcache's: its check() lists it).
LEASES = "leases"
_MODES = (1, 2, 3)  # diskcache's MODE_RAW, MODE_BINARY, MODE_TEXT (MODE_PICKLE, 4, is refused above)
#: diskcache's value files: ``<2 hex>/<2 hex>/<28 hex>.val`` (``Disk.filename``).
_VALUE_DIR = re.compile(r"[0-9a-f]{2}")
_VALUE_FILE = re.compile(r"[0-9a-f]{28}\.val")


def _is_value_file(path: str, folder: str) -> bool:
    """``path`` is shaped like one of diskcache's value files in ``folder``."""
    parts = os.path.relpath(path, folder).split(os.sep)
    return (len(parts) == 3 and bool(_VALUE_DIR.fullmatch(parts[0])) and bool(_VALUE_DIR.fullmatch(parts[1]))
            and bool(_VALUE_FILE.fullmatch(parts[2])))


#: Rows a delete transaction takes at most (as diskcache's own clear()).
_BATCH = 100
#: One batch of a delete (DiskCache._delete): ``pick(sql, position, n)`` selects at most ``n`` rows to delete,
#: ``(rowid, filename, ...)``, from ``position`` on, inside the batch's transaction; it returns them with
#: the position after them, or None when there is nothing left to pick.
Pick = Callable[[Any, Any, int], tuple[list[Any], Any] | None]


def _pick_rows(files_only: bool) -> Pick:
    """Every row (or every row with a value file), highest rowid first: the latest rows' pages sit at the
    end of the file, so with diskcache's ``auto_vacuum=FULL`` deleting them frees pages SQLite truncates
    rather than fills by moving others (measured: 100 rows of 30 KB values, 10 WAL frames from the end,
    761 from the start)."""
    where = " AND filename IS NOT NULL" if files_only else ""
    first = f"SELECT rowid, filename FROM Cache WHERE 1{where} ORDER BY rowid DESC LIMIT ?"
    then = f"SELECT rowid, filename FROM Cache WHERE rowid < ?{where} ORDER BY rowid DESC LIMIT ?"

    def pick(sql: Any, position: Any, n: int) -> tuple[list[Any], Any] | None:
        rows = (sql(first, (n,)) if position is None else sql(then, (position, n))).fetchall()
        return (rows, rows[-1][0]) if rows else None

    return pick


def _pick_tag(tag: str) -> Pick:
    """Every row of one function (``_tag``), expired ones too, highest rowid first (as ``_pick_rows``),
    through diskcache's tag index: ``(rowid, filename, expire_time)``."""
    first = "SELECT rowid, filename, expire_time FROM Cache WHERE tag = ? ORDER BY rowid DESC LIMIT ?"
    then = "SELECT rowid, filename, expire_time FROM Cache WHERE tag = ? AND rowid < ? ORDER BY rowid DESC LIMIT ?"

    def pick(sql: Any, position: Any, n: int) -> tuple[list[Any], Any] | None:
        rows = (sql(first, (tag, n)) if position is None else sql(then, (tag, position, n))).fetchall()
        return (rows, rows[-1][0]) if rows else None

    return pick


def _tag(func: str) -> str:
    """The diskcache tag of an entry: its function, under this key scheme (so a row another scheme wrote
    for the same function is never counted as one of this version's entries)."""
    return f"oxicache:{KEY_SCHEME_VERSION}:{func}"


#: The tag of a row no function of this version claims (a key oxicache did not write, a damaged value,
#: another key scheme's record): set once, so the migration (``_tag_untagged``) reads such a row once.
_NO_FUNC = "oxicache:none"

#: The tag index (``memoize(tags=...)``, ``invalidate``): a table of ours in diskcache's database, one row
#: per (tag, key). diskcache keeps one tag per row, which the per-function index uses.
_TAGS_TABLE = ("CREATE TABLE IF NOT EXISTS oxicache_tags (tag TEXT NOT NULL, key BLOB NOT NULL,"
               " PRIMARY KEY (tag, key)) WITHOUT ROWID")


def _tags(entry: CacheEntry) -> list[str]:
    """The entry's tags (``memoize(tags=...)`` stores them in ``metadata["tags"]``)."""
    tags = entry.metadata.get("tags")
    return sorted({t for t in tags if isinstance(t, str)}) if isinstance(tags, list) else []


def _pick_keys(keys: list[bytes]) -> Pick:
    """The live rows of these keys (as ``Cache.delete``: an expired row is no entry), ``(rowid, filename,
    key)``."""
    def pick(sql: Any, position: Any, n: int) -> tuple[list[Any], Any] | None:
        start = position or 0
        if start >= len(keys):
            return None
        chunk = keys[start:start + n]
        select = ("SELECT rowid, filename, key FROM Cache WHERE raw = 1 AND key IN (%s)"
                  " AND (expire_time IS NULL OR expire_time > ?)" % ",".join("?" * len(chunk)))
        return sql(select, (*chunk, time.time())).fetchall(), start + len(chunk)

    return pick


class DiskCache(LockLeasedCache):  # leases: file locks in leases/ (backends/_leases.py)
    """A persistent cache in a local folder, on diskcache.

    Args:
        path: the folder (created if missing); ``directory=`` (diskcache's name) is accepted too.
        size_limit: bound on the folder's size in bytes, as ``volume()`` counts it. After each store,
            entries are evicted (expired ones first, then in diskcache's ``eviction_policy`` order: by
            default the least recently *stored*, so reads do not protect an entry; pass
            ``eviction_policy="least-recently-used"`` for LRU) until the folder is back under it. A value
            larger than the whole limit is not stored: a memoized call returns it with a ``CacheWarning``
            (``set()`` raises ``ValueEncodingError``), and no other entry is evicted for it. Default 1 GiB.
        exclude: parameter names left out of every key.
        ttl: default time to live of entries (seconds, timedelta or ``"1h"``).
        on_backend_error: "warn" (default), "raise" or "ignore": what a memoized call does when storage
            fails or a record is damaged (see docs/guarantees.md).
        serializer: ``"codec"`` (default, safe) or ``"pickle"`` (any picklable value; only for folders no
            one else can write). ``signing_key`` signs pickles with HMAC-SHA256; a bad signature is a miss.
        shared_flight: memoized plain and coroutine functions compute a miss once across every process using this
            folder, rather than once per process (``memoize(shared_flight=...)`` overrides it per
            function). Off by default. A lease is a file lock in ``<path>/leases/``, which the system lets
            go of when its holder dies: one host only. See docs/scale-out.md.
        lease: how often a leader checks that it still holds its key's lock (every third of it; default
            30 s). A lock lasts as long as its holder: nothing expires.
        **diskcache_options: passed to ``diskcache.Cache`` (``eviction_policy``, ``cull_limit``, ...).

    Safe across threads and processes (SQLite in WAL mode underneath). See docs/backends/disk.md.
    """

    capabilities = Capabilities(blocking_io=True, bounded=True, leases=FILE_LOCKS)  # size_limit; flock

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        size_limit: int = DEFAULT_SIZE_LIMIT,
        *,
        exclude: Iterable[str] | None = None,
        ttl: TTL = None,
        serializer: str = "codec",
        signing_key: bytes | None = None,
        on_backend_error: str = "warn",
        types: Iterable[type] | None = None,
        shared_flight: bool = False,
        lease: TTL = 30.0,
        **diskcache_options: Any,
    ) -> None:
        super().__init__(exclude, ttl=ttl, on_backend_error=on_backend_error, types=types)
        self.shared_flight, self.lease_seconds = lease_options("DiskCache", shared_flight, lease)
        try:
            import diskcache  # noqa: F401  (checked here so the error names the extra)
        except ImportError as err:
            msg = "DiskCache needs the diskcache package: pip install 'oxicache[disk]'"
            raise ImportError(msg) from err
        if isinstance(size_limit, bool) or not isinstance(size_limit, int) or size_limit <= 0:
            msg = f"size_limit must be a positive number of bytes, got {size_limit!r}"
            raise ValueError(msg)
        if "directory" in diskcache_options:  # diskcache's own spelling of the folder
            if path is not None:
                msg = "DiskCache got both path and directory (diskcache's name for it); pass the folder once, as path"
                raise TypeError(msg)
            path = diskcache_options.pop("directory")
        if path is None:
            msg = "DiskCache needs the folder to store entries in: DiskCache('path/to/folder') (or path=...)"
            raise TypeError(msg)
        if "disk" in diskcache_options:
            msg = "DiskCache sets diskcache's 'disk' itself (it stores oxicache's records); leave it out"
            raise TypeError(msg)
        self._serializer = Serializer(serializer, signing_key)
        self.path = os.path.abspath(os.fspath(path))
        where = f"cannot open a DiskCache in {self.path!r}"
        db = os.path.join(self.path, "cache.db")
        prepare_folder(self.path, where)  # a read-only folder or a symlink loop fails here, clearly
        check_writable_file(db, where)
        hold_sqlite_file(self, db, "DiskCache")  # the header check, unless a cache of ours has it open
        warn_if_risky_filesystem(db, "DiskCache")
        try:
            self._dc: Any = _opened_while_locked(lambda: _measured_cache_class()(
                self.path, size_limit=size_limit, disk=_safe_disk_class(),
                **{"tag_index": True, **diskcache_options},  # tags index entries by function (_count_func)
            ))
        except OSError as err:
            msg = f"{where}: {err}"
            raise OSError(err.errno, msg) from err
        except sqlite3.OperationalError as err:  # cannot open, read-only, disk I/O error, locked
            msg = f"{where}: SQLite cannot open {db!r}: {err}"
            raise OSError(msg) from err
        except sqlite3.DatabaseError as err:  # "file is not a database", "database disk image is malformed"
            msg = (f"DiskCache cannot open its SQLite database {db!r}: {err}. The cache cannot be read; delete "
                   "the file (and its -wal and -shm files) to start an empty cache")
            raise CorruptStoreError(msg) from err
        self._sweep_leftovers()
        # disk space held beside cache.db that clearing frees on a full disk (_delete); diskcache's own
        # check() leaves files named cache.db* alone
        self._reserve = Reserve(reserve_path(db))
        self._leases: FileLeases = FileLeases(os.path.join(self.path, LEASES))  # removes the lock files of dead leaders
        self._tag_index = False
        with contextlib.suppress(sqlite3.Error):  # a full disk: made by the first tagged store instead
            self._make_tag_index()
        in_child_of(self, DiskCache._reopen_after_fork)

    def _reopen_after_fork(self) -> None:
        if self._dc is not None:
            self._dc.close()  # the parent's SQLite connection must not be used here; reopened on demand

    def _sweep_leftovers(self) -> None:
        """Remove what writers that crashed left behind: value files no item refers to (diskcache writes
        the file, then commits the item) older than ``STALE_TEMP_AGE`` (a younger one may be a store in
        progress in another process), then empty value folders (diskcache's writers retry when the folder
        they just made disappears, as diskcache itself removes emptied folders)."""
        cutoff = time.time() - STALE_TEMP_AGE
        stale: list[str] = []  # relative names of old value files
        folders: list[str] = []  # value folders, deepest first
        try:
            for top in os.scandir(self.path):
                if not (_VALUE_DIR.fullmatch(top.name) and top.is_dir(follow_symlinks=False)):
                    continue
                for sub in os.scandir(top.path):
                    if not (_VALUE_DIR.fullmatch(sub.name) and sub.is_dir(follow_symlinks=False)):
                        continue
                    for f in os.scandir(sub.path):
                        if _VALUE_FILE.fullmatch(f.name) and f.is_file(follow_symlinks=False) and \
                                f.stat(follow_symlinks=False).st_mtime < cutoff:
                            stale.append(f"{top.name}/{sub.name}/{f.name}")
                    folders.append(sub.path)
                folders.append(top.path)
            if stale:
                rows = self._dc._sql("SELECT filename FROM Cache WHERE filename IS NOT NULL").fetchall()
                used = {os.path.normpath(r[0]) for r in rows}
                for name in stale:
                    if os.path.normpath(name) not in used:
                        with contextlib.suppress(OSError):  # another process may be sweeping too
                            os.unlink(os.path.join(self.path, name))
            for folder in folders:
                with contextlib.suppress(OSError):
                    os.rmdir(folder)  # only if empty
        except (OSError, sqlite3.Error):
            pass  # best effort: a folder that cannot be listed or cleaned still works as a cache

    @staticmethod
    def _key_bytes(key: int) -> bytes:
        return key.to_bytes(16, "big")

    def _read(self, key: int) -> CacheEntry | None:
        try:
            blob = self._dc.get(self._key_bytes(key), default=None, retry=True)
        except ValueDecodingError as err:
            self._damaged(f"{self.path}, key {key:032x}", err)
            return None
        if blob is None:
            return None
        return self._decode(blob, key)

    def _decode(self, blob: Any, key: int) -> CacheEntry | None:
        """The entry a stored value holds; None (and a damaged record reported) when it holds none."""
        def where() -> str:  # formatted only for damage
            return f"{self.path}, key {key:032x}"

        try:
            if not isinstance(blob, bytes):
                msg = f"{where()}: not an oxicache blob"
                raise ValueDecodingError(msg)
            # None: written under another key scheme, not an entry of this version (a miss, no warning)
            return entry_of_record(self._serializer.loads(blob), key, where)
        except ValueDecodingError as err:
            self._damaged(where(), err)
            return None

    # ---- primitives ---------------------------------------------------------------------------------
    def _get(self, ref: Ref) -> CacheEntry | None:
        return self._read(ref_key(ref))

    def _set(self, entry: CacheEntry, ttl: float | None) -> None:
        key = self._key_bytes(entry.shared_key)  # an argument without a key raises here, naming it
        blob = self._serializer.dumps(record_of(entry))  # raises before anything is written
        limit = self._dc.size_limit
        if len(blob) > limit:
            # Storing it would evict every other entry, and then itself.
            msg = (f"the entry is {len(blob)} bytes encoded, more than this DiskCache's size_limit of {limit} bytes; "
                   "it was not stored (raise size_limit to cache values this large)")
            raise ValueEncodingError(msg)
        tag = _tag(entry.func)  # the per-function index (cache_info, cache_clear): in the same row, same commit
        tags = _tags(entry)
        if tags:  # before the entry: a crash in between leaves a row naming no such entry, never the reverse
            if not self._tag_index:
                self._make_tag_index()  # a tagged entry is never stored without its rows
            self._index_tags(key, tags)
        _CULL_SAW.volume = None
        self._write(lambda: self._dc.set(key, blob, expire=ttl, tag=tag, retry=True))
        seen = _CULL_SAW.volume  # what the store's cull measured, after writing the row
        if tags:  # and after it: an invalidate that ran meanwhile may have taken the rows away
            self._index_tags(key, tags)
            seen = None  # the tag rows came after that measurement
        self._reserve.after_store()  # remakes a reserve that clearing used, once stores fit again
        # diskcache culls at most cull_limit entries per store: when the oldest entries are small, the
        # folder would outgrow the limit store after store. One volume() check (~20 us) keeps it bounded,
        # unless the store's own cull just found the folder under the limit (it then evicted nothing).
        if (seen is None or seen >= limit) and self._dc.volume() > limit:
            self._write(lambda: self._dc.cull(retry=True))

    def _write(self, write: Callable[[], Any]) -> Any:
        """``write()``, one diskcache write, cleaning up after diskcache when it fails (disk full, I/O
        error): a transaction its failed COMMIT left open is rolled back (diskcache's next ``BEGIN
        IMMEDIATE`` would fail, and with ``retry=True`` loop forever), value files written for it that no
        row refers to are removed (diskcache writes the file before the row, and leaves it behind), and
        the original error is raised when SQLite had rolled back by itself and diskcache's own ROLLBACK
        then failed with "no transaction is active" in its place."""
        created = self._dc._disk.created
        created.names = []
        try:
            return write()
        except BaseException as err:
            original = self._after_failed_write(err, created.names)
            if original is err:
                raise
            raise original from None
        finally:
            created.names = None

    def _after_failed_write(self, err: BaseException, created: list[str]) -> BaseException:
        dc = self._dc
        with contextlib.suppress(sqlite3.Error):
            con = dc._con  # this thread's connection
            if con.in_transaction:
                # diskcache's `_txn_id` names the thread whose transaction is open. Clear it (if it is ours)
                # before the ROLLBACK, while this thread still holds the write lock: after it another
                # thread's BEGIN IMMEDIATE may already have set it to its own id.
                if dc._txn_id == threading.get_ident():
                    dc._txn_id = None
                con.execute("ROLLBACK")
        for name in created:
            with contextlib.suppress(OSError, sqlite3.Error):
                if not dc._sql("SELECT 1 FROM Cache WHERE filename = ?", (name,)).fetchall():
                    dc._disk.remove(name)  # and its value folders, once empty (as diskcache removes files)
        context = err.__context__
        if isinstance(err, sqlite3.OperationalError) and "no transaction is active" in str(err) \
                and isinstance(context, Exception):
            return context
        return err

    def _remove(self, ref: Ref) -> bool:
        return bool(self._delete([_pick_keys([self._key_bytes(ref_key(ref))])]))

    def _iter(self) -> Iterator[CacheEntry]:
        # Streamed a page of rows at a time (not every key listed first): `oxicache ls --limit 5` on a
        # store of millions reads a page. Reading records no access, so listing never promotes an entry.
        for _, entry in self._keyed_entries():
            yield entry

    def _keyed_entries(self) -> Iterator[tuple[bytes, CacheEntry]]:
        """Every live entry, with the key it is stored under, for removing them (_clear_func, popall): read
        straight from diskcache's table, so no access is recorded (an LRU cache's reads write to the
        table, which fails on a full disk). Damaged records are reported as ``_read`` reports them."""
        disk, after = self._dc._disk, -1
        select = ("SELECT rowid, key, raw, mode, filename, value FROM Cache WHERE rowid > ?"
                  " AND (expire_time IS NULL OR expire_time > ?) ORDER BY rowid LIMIT 100")
        while True:
            with SQLITE_GATE:
                rows = self._dc._sql(select, (after, time.time())).fetchall()
            if not rows:
                return
            for rowid, db_key, raw, mode, filename, db_value in rows:
                after = rowid
                key = disk.get(db_key, raw)
                if key is _FOREIGN or not isinstance(key, bytes) or len(key) != 16:
                    continue
                number = int.from_bytes(key, "big")
                try:
                    blob = disk.fetch(mode, filename, db_value, False)
                except OSError:
                    continue  # its value file was removed meanwhile: removed (as diskcache's get reads it)
                except ValueDecodingError as err:
                    self._damaged(f"{self.path}, key {number:032x}", err)
                    continue
                entry = self._decode(blob, number)
                if entry is not None:
                    yield key, entry

    def _clear(self) -> None:
        if self._tag_index:
            with contextlib.suppress(sqlite3.Error), SQLITE_GATE:  # on a full disk they stay: rows naming no entry
                self._write(lambda: self._dc._sql("DELETE FROM oxicache_tags"))
        try:
            with SQLITE_GATE:
                self._write(lambda: self._dc.clear(retry=True))
            return
        except sqlite3.Error as err:
            if not is_full(err):
                raise
        # A full disk: the rows with value files first (small rows, and their files free space), then the rest
        self._delete([_pick_rows(files_only=True), _pick_rows(files_only=False)], full=True)

    def _make_tag_index(self) -> None:
        with SQLITE_GATE:
            self._dc._sql(_TAGS_TABLE)
        self._tag_index = True

    def _index_tags(self, key: bytes, tags: list[str]) -> None:
        insert = "INSERT OR IGNORE INTO oxicache_tags (tag, key) VALUES " + ",".join(["(?, ?)"] * len(tags))
        args = [value for tag in tags for value in (tag, key)]
        with SQLITE_GATE:
            self._write(lambda: self._dc._sql(insert, args))

    def _invalidate_tags(self, tags: frozenset[str]) -> int:
        """The keys the tag index names for ``tags``, each entry read to check it still carries one (a row
        can outlive its entry, or the entry be stored again without the tag) and removed; then the rows.
        Reads only the entries the tags name. Returns how many live entries were removed."""
        if not self._tag_index:
            try:
                self._make_tag_index()
            except sqlite3.Error:  # a full disk: find them by reading every entry
                return super()._invalidate_tags(tags)
        wanted = sorted(tags)
        marks = ",".join("?" * len(wanted))
        with SQLITE_GATE:
            keys = [bytes(k) for (k,) in self._dc._sql(
                f"SELECT DISTINCT key FROM oxicache_tags WHERE tag IN ({marks})", wanted).fetchall()]
        delete = f"DELETE FROM oxicache_tags WHERE key = ? AND tag IN ({marks})"
        removed = 0
        for key in keys:
            # The rows first: a store of this key meanwhile writes them again after its entry.
            args = [key, *wanted]
            with SQLITE_GATE:
                self._write(lambda: self._dc._sql(delete, args))
            number = int.from_bytes(key, "big")
            entry = self._read(number)
            if entry is not None and tags.intersection(_tags(entry)) and self._remove(number):
                removed += 1
        return removed

    def _count_func(self, func: str) -> int:
        """One indexed COUNT of the function's tag (no entry is read), once rows without a tag are tagged."""
        if not self._tag_untagged():
            return super()._count_func(func)  # the tags cannot be written (a full disk): read every entry
        count = "SELECT COUNT(*) FROM Cache WHERE tag = ? AND (expire_time IS NULL OR expire_time > ?)"
        with SQLITE_GATE:
            ((n,),) = self._dc._sql(count, (_tag(func), time.time())).fetchall()
        return int(n)

    def _clear_func(self, func: str) -> int:
        """Deletes the function's rows through the tag index (expired ones too); returns how many were live."""
        if not self._tag_untagged():  # a full disk: find them by reading every entry
            keys = [key for key, entry in self._keyed_entries() if entry.func == func]
            return len(self._delete([_pick_keys(self._newest_first(keys))]))
        now = time.time()
        return sum(1 for row in self._delete([_pick_tag(_tag(func))]) if row[2] is None or row[2] > now)

    def _tag_untagged(self) -> bool:
        """Gives every row without a tag its function's tag (``_tag``): the rows oxicache wrote before it
        tagged them, or that an older oxicache using the same folder writes still. Each is read once, then
        found through the tag index: this is the one-time migration of a folder, and a no-op (one indexed
        look-up) once done. False when the tags cannot be written (a full disk): counting and clearing then
        read every entry, as before the index."""
        select = ("SELECT rowid, key, raw, mode, filename, value FROM Cache WHERE tag IS NULL AND rowid > ?"
                  " ORDER BY rowid LIMIT 100")
        update = "UPDATE Cache SET tag = ? WHERE rowid = ? AND key = ? AND tag IS NULL"
        after = -1
        while True:
            with SQLITE_GATE:
                rows = self._dc._sql(select, (after,)).fetchall()
            if not rows:
                return True
            tags = []
            for rowid, db_key, raw, mode, filename, db_value in rows:
                after = rowid
                tag = self._row_tag(db_key, raw, mode, filename, db_value)
                if tag is not None:
                    tags.append((tag, rowid, db_key))

            def write(tags: list[tuple[str, int, Any]] = tags) -> None:
                with self._dc._transact(retry=True) as (sql, _):
                    for args in tags:
                        sql(update, args)

            try:
                with SQLITE_GATE:
                    self._write(write)
            except sqlite3.Error:
                return False

    def _row_tag(self, db_key: Any, raw: Any, mode: int, filename: str | None, db_value: Any) -> str | None:
        """The tag a row without one gets: its entry's function, else ``_NO_FUNC``; None when its value file
        is gone (removed meanwhile: diskcache reads the row as a miss)."""
        disk = self._dc._disk
        key = disk.get(db_key, raw)
        if key is _FOREIGN or not isinstance(key, bytes) or len(key) != 16:
            return _NO_FUNC
        number = int.from_bytes(key, "big")
        try:
            blob = disk.fetch(mode, filename, db_value, False)
        except OSError:
            return None
        except ValueDecodingError as err:
            self._damaged(f"{self.path}, key {number:032x}", err)
            return _NO_FUNC
        entry = self._decode(blob, number)  # a damaged record is reported here, once
        return _NO_FUNC if entry is None else _tag(entry.func)

    def popall(self) -> list[CacheEntry]:
        """Remove and return every entry."""
        entries = dict(self._keyed_entries())
        gone = {bytes(row[2]) for row in self._delete([_pick_keys(self._newest_first(list(entries)))])}
        return [entry for key, entry in entries.items() if key in gone]

    def _newest_first(self, keys: list[bytes]) -> list[bytes]:
        """``keys`` by descending rowid, the order that deletes cheapest (_pick_rows)."""
        with SQLITE_GATE:
            rowids = {bytes(key): rowid for rowid, key in self._dc._sql("SELECT rowid, key FROM Cache WHERE raw = 1")}
        return sorted(keys, key=lambda key: rowids.get(key, 0), reverse=True)

    def _delete(self, picks: list[Pick], full: bool = False) -> list[tuple[Any, ...]]:
        """Delete the rows each pick chooses, batch after batch until it picks none; returns them.

        Each batch is one diskcache transaction: select at most ``_BATCH`` rows, DELETE them, COMMIT, then
        remove their value files (diskcache's order: a crash in between leaves at worst a value file no
        row refers to, which is never read and is swept later). A failed batch changes nothing.

        On a full disk (``full``, or once a batch fails with "database or disk is full"), this thread's
        connection deletes with ``secure_delete=FAST`` and no automatic checkpoint (_Tight), and a batch
        that fails runs again: as it was, then after the reserve gave its blocks back, then shrunk to a
        quarter each time, down to one row; only a single row that does not fit raises. Before each
        retry and after each committed batch, a checkpoint runs if the free space covers it: the WAL is
        then written again from its start, in blocks it already has, and the pages the deletes freed are
        cut off cache.db (diskcache's ``auto_vacuum=FULL``). So every committed batch frees space: its
        value files and its pages. At the end, a truncating checkpoint gives the WAL's blocks back, and
        the reserve is made again if there is room (else by the next store that fits)."""
        done: list[tuple[Any, ...]] = []
        size, tight = _BATCH, _Tight(self) if full else None
        try:
            for pick in picks:
                position: Any = None
                while True:
                    try:
                        with SQLITE_GATE:
                            found = self._write(lambda: self._delete_batch(pick, position, size))  # noqa: B023
                    except sqlite3.Error as err:
                        if not is_full(err):
                            raise
                        if tight is None:
                            tight = _Tight(self)
                        elif not self._reserve.drop():
                            if size == 1:
                                raise
                            size = max(1, size // 4)
                        tight.checkpoint()
                        continue
                    if found is None:
                        break
                    rows, position = found
                    done += rows
                    if tight is not None:
                        tight.checkpoint()
                        size = min(_BATCH, size * 2)
        finally:
            if tight is not None:
                tight.close()
        return done

    def _delete_batch(self, pick: Pick, position: Any, n: int) -> tuple[list[Any], Any] | None:
        with self._dc._transact(retry=True) as (sql, cleanup):
            found = pick(sql, position, n)
            if found and found[0]:
                sql("DELETE FROM Cache WHERE rowid IN (%s)" % ",".join(str(int(row[0])) for row in found[0]))
                for row in found[0]:
                    cleanup(row[1])  # removed after the COMMIT
            return found

    def _len(self) -> int:
        self._write(lambda: self._dc.expire(retry=True))
        return len(self._dc)

    def _set_leased(self, entry: CacheEntry, ttl: float | None, token: str) -> bool:
        return self._leases.store_then_release(entry.shared_key, token, lambda: self._set(entry, ttl))

    # ---- the rest -----------------------------------------------------------------------------------
    def expire(self) -> int:
        """Remove expired entries now (they are also skipped and culled lazily); returns how many."""
        return int(self._write(lambda: self._dc.expire(retry=True)))

    @property
    def evicts(self) -> bool:
        """True unless opened with ``eviction_policy="none"``: diskcache then never evicts for size (a
        single value larger than ``size_limit`` is still refused, with an error)."""
        return bool(self._dc.eviction_policy != "none")

    def volume(self) -> int:
        """The folder's estimated size in bytes, as diskcache counts it."""
        return int(self._dc.volume())

    def cull(self) -> int:
        """Remove expired entries, then entries in eviction-policy order until ``volume()`` is at most
        ``size_limit``; returns how many were removed. Stores already do this; call it after another
        process lowered the limit, or to reclaim expired entries and space in one pass."""
        return int(self._write(lambda: self._dc.cull(retry=True)))

    def close(self) -> None:
        """Close the SQLite connections (reopened on the next use)."""
        self._dc.close()

    def verify(self) -> list[str]:
        """The store's problems, read-only (the contract is ``BaseCache.verify``): diskcache's own
        ``check()`` findings (SQLite integrity, value files against rows, counters), then every live
        item: its key must be one of ours, its value an oxicache blob that decodes to the entry of that
        key. Items are read straight from diskcache's table, so even an LRU cache records no access. Files
        diskcache does not know are reported only when shaped like its value files (other files in the
        folder are not the store's), and records of another key scheme are skipped (not entries of this
        version, not damage)."""
        import sqlite3
        import time
        import warnings

        problems: list[str] = []
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("always")  # check() records findings as warnings; "error" would raise one
                found = [str(w.message) for w in self._dc.check(fix=False, retry=True)]
        except sqlite3.DatabaseError as err:
            if isinstance(err, sqlite3.OperationalError):  # locked, I/O error: not a verdict on the store
                raise
            return [f"{self.path}: diskcache check: cannot complete ({err})"]  # "database disk image is malformed"
        # diskcache reports every file it does not know; only value-file-shaped ones are the store's (other
        # files in the folder are not its business, as for JsonCache: a user's notes, a lock file)
        found = [line for line in found if not line.startswith("unknown file: ") or _is_value_file(line[14:], self.path)]
        leases = os.path.join(self.path, LEASES)  # the lease lock files' folder is the cache's own, empty or not
        found = [line for line in found if line != f"empty directory: {leases}"]
        problems += [f"{self.path}: diskcache check: {line}" for line in found]
        disk, sql, after = self._dc._disk, self._dc._sql, -1
        select = ("SELECT rowid, key, raw, mode, filename, value FROM Cache WHERE rowid > ?"
                  " AND (expire_time IS NULL OR expire_time > ?) ORDER BY rowid LIMIT 100")
        while rows := sql(select, (after, time.time())).fetchall():
            for rowid, db_key, raw, mode, filename, db_value in rows:
                after = rowid
                key = disk.get(db_key, raw)
                if key is _FOREIGN or not isinstance(key, bytes) or len(key) != 16:
                    problems.append(f"{self.path}: item {rowid} has a key oxicache did not write ({db_key!r:.60})")
                    continue
                where = f"{self.path}, key {key.hex()}"
                try:
                    blob = disk.fetch(mode, filename, db_value, False)
                    if not isinstance(blob, bytes):
                        msg = f"{where}: not an oxicache blob"
                        raise ValueDecodingError(msg)
                    record = self._serializer.loads(blob)
                    # (None for another scheme's record: no entry of this version, and no damage)
                    entry_of_record(record, int.from_bytes(key, "big"), lambda: where)
                except OSError as err:
                    if sql("SELECT 1 FROM Cache WHERE rowid = ?", (rowid,)).fetchall():  # not removed meanwhile
                        problems.append(f"{where}: its value file cannot be read ({err})")
                except Exception as err:  # noqa: BLE001 - ValueDecodingError, or whatever a pickle raises
                    problems.append(str(err) if str(err).startswith(where) else f"{where}: {err}")
        return problems

    def __repr__(self) -> str:
        return f"DiskCache({self.path!r}, size_limit={self._dc.size_limit})"


class _Tight:
    """A delete on a full disk (``DiskCache._delete``), on this thread's connection: ``secure_delete=FAST``
    (SQLite as Debian builds it zeroes and writes every freed page: clearing would need as much free
    space as the rows take; FAST writes only the pages a DELETE changes anyway), and checkpoints only
    when the free space covers them (``wal_autocheckpoint=0``). ``close()`` restores both settings."""

    def __init__(self, cache: DiskCache) -> None:
        self.cache = cache
        self.db = os.path.join(cache.path, "cache.db")
        with SQLITE_GATE:
            con = cache._dc._con
            self.before = [(name, con.execute(f"PRAGMA {name}").fetchone()[0]) for name in _TIGHT]
            for name, value in _TIGHT.items():
                con.execute(f"PRAGMA {name} = {value}")

    def checkpoint(self, mode: str = "PASSIVE") -> None:
        """Copy the WAL into cache.db, then write the WAL from its start again (PASSIVE), or empty it
        (TRUNCATE), which gives back cache.db's pages that deletes freed (``auto_vacuum=FULL``). Skipped
        unless the free space covers the pages it may add to cache.db: a checkpoint that runs out of room
        half-way keeps the blocks it wrote, and the next batch would find no room for its WAL frames."""
        with SQLITE_GATE, contextlib.suppress(sqlite3.Error, OSError):
            con = self.cache._dc._con
            ((pages,),) = con.execute("PRAGMA page_count").fetchall()
            ((page_size,),) = con.execute("PRAGMA page_size").fetchall()
            st = os.stat(self.db)
            held = st.st_blocks * 512 if hasattr(st, "st_blocks") else st.st_size
            if shutil.disk_usage(self.cache.path).free > pages * page_size - held:
                con.execute(f"PRAGMA wal_checkpoint({mode})").fetchall()

    def close(self) -> None:
        con = self.cache._dc._con
        with SQLITE_GATE, contextlib.suppress(sqlite3.Error):
            for name, value in self.before:
                con.execute(f"PRAGMA {name} = {value}")
            # TRUNCATE waits for other connections' readers and writers: at most 1 s, not diskcache's timeout
            timeout = con.execute("PRAGMA busy_timeout").fetchone()[0]
            con.execute("PRAGMA busy_timeout = 1000")
            try:
                self.checkpoint("TRUNCATE")
            finally:
                con.execute(f"PRAGMA busy_timeout = {int(timeout)}")
        self.cache._reserve.restore()


#: The connection settings of a delete on a full disk (_Tight).
_TIGHT = {"secure_delete": "FAST", "wal_autocheckpoint": 0}


def _gated(method: Any) -> Any:
    # functools.wraps sets __wrapped__, so inspect.signature() and help() show the method's own signature
    @functools.wraps(method)
    def run(self: DiskCache, *args: Any, **kwargs: Any) -> Any:
        with SQLITE_GATE:
            return method(self, *args, **kwargs)

    return run


# Every method that runs SQLite statements (diskcache's) runs inside the fork gate: os.fork() waits for
# them, so a forked child never inherits a lock taken mid-statement (see oxicache.backends._forkgate). _iter gates
# its listing itself (a generator must not hold the gate while its consumer runs).
# _remove, _clear, _clear_func and popall gate each of their transactions (_delete).
for _name in ("__init__", "_read", "_set", "_len", "expire", "volume", "cull", "close", "verify"):
    if _name in DiskCache.__dict__:
        setattr(DiskCache, _name, _gated(DiskCache.__dict__[_name]))
