"""``JsonCache``: one readable JSON file per entry, written atomically (temporary file, then rename)."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
import time
from typing import Callable, Iterable, Iterator

from oxicache._core import CacheEntry
from oxicache.backends import _fs
from oxicache.backends._jsonindex import FOLDER as INDEX
from oxicache.backends._jsonindex import FuncIndex, Marker, Stamp, stamp, stamp_name
from oxicache.backends._leases import FILE_LOCKS, FileLeases, LockLeasedCache, lease_options
from oxicache.backends._records import check_key, expires_at, from_json_record, json_record_bytes, key_hex, ref_key
from oxicache.base import Capabilities, Ref
from oxicache.durations import TTL
from oxicache.errors import ValueDecodingError

__all__ = ["JsonCache"]

#: The name of an entry file: the entry's key as 32 lowercase hex digits. Nothing else is ours to read,
#: count or delete.
ENTRY_NAME = re.compile(r"[0-9a-f]{32}\.json")
#: A write in progress: ``.<key hex>.<pid>.<random hex>.tmp``, renamed over the entry file when complete.
TEMP_NAME = re.compile(r"\.[0-9a-f]{32}\.[0-9]+\.[0-9a-f]+\.tmp")
#: Temporary files older than this (seconds) are left over by a crashed writer and are removed on open
#: (younger ones may be writes in progress in another process).
STALE_TEMP_AGE = _fs.STALE_TEMP_AGE
#: The folder of the lease lock files (``shared_flight``), inside the cache's folder.
LEASES = "leases"

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_BINARY = getattr(os, "O_BINARY", 0)  # Windows: no newline translation
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | _O_CLOEXEC | _O_BINARY  # a FIFO must not block
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_CLOEXEC | _O_BINARY


class JsonCache(LockLeasedCache):  # leases: file locks in leases/ (backends/_leases.py)
    """Entries as JSON files in one folder: ``<path>/<key hex>.json``, one file per entry.

    Args:
        path: the folder (created if missing; ``~`` is expanded). Only files named like entries are read,
            counted or removed, so the folder may hold other files.
        exclude: parameter names left out of every key.
        ttl: default time to live of entries (seconds, timedelta or ``"1h"``; default: no expiry).
        on_backend_error: "warn" (default), "raise" or "ignore": what a memoized call does when storage
            fails or a record is damaged (see docs/guarantees.md).
        fsync: flush each write to the disk (the file, then the folder) before it counts as done; slower,
            and only needed to survive a power loss or an OS crash, not a process crash.
        shared_flight: memoized plain and coroutine functions compute a miss once across every process using this
            folder, rather than once per process (``memoize(shared_flight=...)`` overrides it per
            function). Off by default. A lease is a file lock in ``<path>/leases/``, which the system lets
            go of when its holder dies: one host only. See docs/scale-out.md.
        lease: how often a leader checks that it still holds its key's lock (every third of it; default
            30 s). A lock lasts as long as its holder: nothing expires.

    Raises:
        OSError: the folder cannot be created or a file cannot be written in it.

    Values are stored with the codec's tagged JSON, so tuples, sets, datetimes and the other supported
    types come back with their types. There is no size bound: entries stay until they expire (``ttl``,
    ``expire()``) or are removed. See docs/backends/json.md.
    """

    capabilities = Capabilities(blocking_io=True, leases=FILE_LOCKS)  # flock

    #: Wall-clock time used for ``created_at``/``expires_at`` (tests replace it on an instance).
    _clock: Callable[[], float] = staticmethod(time.time)

    def __init__(self, path: str | os.PathLike[str], exclude: Iterable[str] | None = None, *, ttl: TTL = None,
                 fsync: bool = False, on_backend_error: str = "warn", shared_flight: bool = False,
                 lease: TTL = 30.0, types: Iterable[type] | None = None) -> None:
        super().__init__(exclude, ttl=ttl, on_backend_error=on_backend_error, types=types)
        self.shared_flight, self.lease_seconds = lease_options("JsonCache", shared_flight, lease)
        folder = os.fspath(path)
        if not isinstance(folder, str):
            msg = f"JsonCache path must be a str or a pathlib.Path, got {type(folder).__name__}"
            raise TypeError(msg)
        self._dir = os.path.abspath(os.path.expanduser(folder))
        self._prefix = os.path.join(self._dir, "")  # the folder and a separator: entry paths by concatenation
        self._fsync = bool(fsync)
        # A symbolic link loop or a read-only folder fails here with a clear message, not on the first call.
        _fs.prepare_folder(self._dir, f"JsonCache cannot use the folder {self._dir!r}")
        try:
            self._unlink(self._write_temp("0" * 32, b""))  # can we create files here (e.g. not /proc/self)?
        except OSError as err:
            msg = f"JsonCache cannot use the folder {self._dir!r}: {err.strerror or err}; pass a path where a folder can be created and written"
            raise type(err)(err.errno, msg) from err
        self._sweep_temp()
        # per-function marker files (cache_info, cache_clear, len); a folder without entries needs no migration
        fresh = not os.path.isdir(os.path.join(self._dir, INDEX)) and not self._entry_files(first=True)
        self._index = FuncIndex(self._dir, fresh)
        self._leases: FileLeases = FileLeases(os.path.join(self._dir, LEASES))  # removes the lock files of dead leaders

    @property
    def path(self) -> str:
        """The absolute path of the cache folder."""
        return self._dir

    @property
    def fsync(self) -> bool:
        return self._fsync

    def _file(self, key: int) -> str:
        return os.path.join(self._dir, key_hex(key) + ".json")

    # ---- writing --------------------------------------------------------------------------------
    def _write_temp(self, name: str, data: bytes) -> str:
        """A new temporary file in the folder holding ``data`` (fsync'd with ``fsync=True``); its path."""
        for _ in range(8):
            tmp = os.path.join(self._dir, f".{name}.{os.getpid()}.{secrets.token_hex(6)}.tmp")
            try:
                fd = os.open(tmp, _WRITE_FLAGS, 0o666)
            except FileExistsError:  # pragma: no cover - 48 random bits collided
                continue
            break
        else:  # pragma: no cover
            msg = f"could not create a temporary file in {self._dir}"
            raise FileExistsError(msg)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                if self._fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
        except BaseException:
            self._unlink(tmp)
            raise
        return tmp

    def _set(self, entry: CacheEntry, ttl: float | None) -> None:
        # Encoding comes first: a value the codec refuses raises ValueEncodingError before any file exists.
        now = self._clock()
        data = json_record_bytes(entry, ttl, now) + b"\n"
        name = key_hex(entry.shared_key)
        tmp = self._write_temp(name, data)
        final = os.path.join(self._dir, name + ".json")
        tag_folders = [self._index.tag_folder(tag) for tag in _tags(entry)]
        written: Stamp | None = None
        try:
            # The marker before the rename: every entry file a completed store leaves has one; the replaced
            # file's marker goes after it (_jsonindex.py).
            written, replaced = stamp(os.stat(tmp)), _stamp(final)
            self._index.mark(entry.func, name, expires_at(ttl, now), written, self._fsync)
            for folder in tag_folders:
                self._index.mark_in(folder, name, expires_at(ttl, now), written, self._fsync)
            try:
                os.replace(tmp, final)
            except OSError:
                # A folder where the entry file should be (damaged): remove it if it is empty, then retry.
                if not os.path.isdir(final):
                    raise
                os.rmdir(final)
                os.replace(tmp, final)
        except BaseException:
            self._unlink(tmp)
            if written is not None:  # the markers (if made) of a file that never became the entry
                with contextlib.suppress(OSError):
                    self._index.unmark(entry.func, name, written)
                    for folder in tag_folders:
                        self._index.unmark_in(folder, name, written)
            raise
        if replaced is not None and replaced != written:
            self._index.unmark(entry.func, name, replaced)
            for folder in tag_folders:  # the replaced file's markers of tags the new one keeps
                self._index.unmark_in(folder, name, replaced)
        # A clear that listed our markers before the rename removed them (then the file we replaced):
        # our file is an entry now, so it gets them back, or counts and clears by marker would miss it.
        for folder in [self._index.folder(entry.func), *tag_folders]:
            self._index.remark_in(folder, name, expires_at(ttl, now), written, self._fsync)
        if self._fsync:
            self._fsync_dir()

    def _fsync_dir(self) -> None:
        if os.name == "nt":  # pragma: no cover - Windows cannot open a folder; its renames are metadata-journaled
            return
        fd = os.open(self._dir, os.O_RDONLY | _O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    # ---- reading --------------------------------------------------------------------------------
    @staticmethod
    def _read(path: str, key: int) -> tuple[CacheEntry, float | None, os.stat_result] | None:
        """The entry in ``path``, its expiry and the file's stat; None when there is no file, or a record
        written under another key scheme (no entry of this version: it reads as a miss and is overwritten).

        Raises:
            OSError: the file exists but cannot be read (a folder, no permission, ...).
            ValueDecodingError: the file is not a valid record for ``key``.
        """
        if not os.access(path, os.F_OK):
            return None  # the usual miss, without the ~5 us of a raised FileNotFoundError
        try:
            fd = os.open(path, _READ_FLAGS)
        except FileNotFoundError:  # removed since the check
            return None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                msg = "not a regular file"
                raise IsADirectoryError(msg) if stat.S_ISDIR(st.st_mode) else OSError(msg)
            data = os.read(fd, st.st_size + 1)
            if len(data) != st.st_size:  # a short read, or a file edited in place since fstat: read to the end
                chunks = [data]
                while chunks[-1]:
                    chunks.append(os.read(fd, 65536))
                data = b"".join(chunks)
        finally:
            os.close(fd)
        where = os.path.basename(path)
        found = from_json_record(data, where)
        if found is None:
            return None  # written under another key scheme: not an entry of this version (no warning)
        entry, expires_at = found
        return check_key(entry, key, where), expires_at, st

    def _expired(self, expires_at: float | None, now: float | None = None) -> bool:
        return expires_at is not None and expires_at < (self._clock() if now is None else now)

    def _drop_expired(self, path: str, st: os.stat_result) -> bool:
        """Remove an expired entry file, unless a writer has replaced it since it was read; True if removed."""
        try:
            now = os.stat(path)
        except FileNotFoundError:
            return False
        if (now.st_ino, now.st_dev, now.st_mtime_ns) != (st.st_ino, st.st_dev, st.st_mtime_ns):
            return False  # a store replaced it: that entry is new
        return self._unlink(path)

    def _load(self, path: str, key: int, warn: bool = True) -> CacheEntry | None:
        """The live entry in ``path``: None when missing, expired (the file is removed) or damaged (with a
        warning when ``warn``)."""
        try:
            found = self._read(path, key)
        except (OSError, ValueDecodingError) as err:
            if warn:
                self._damaged(path, err)
            return None
        if found is None:
            return None
        entry, expires_at, st = found
        if self._expired(expires_at):
            self._drop_expired(path, st)
            return None
        return entry

    def _get(self, ref: Ref) -> CacheEntry | None:
        key = ref_key(ref)
        return self._load(self._file(key), key)

    # ---- listing --------------------------------------------------------------------------------
    def _entry_files(self, first: bool = False) -> list[tuple[str, int]]:
        """(path, key) of every file named like an entry, sorted by name (a snapshot of the listing); with
        ``first``, of the first one listed only (or none)."""
        with os.scandir(self._dir) as it:
            found = (d.name for d in it if ENTRY_NAME.fullmatch(d.name))
            names = [n for n, _ in zip(found, range(1))] if first else list(found)
            names.sort()
        return [(os.path.join(self._dir, n), int(n[:32], 16)) for n in names]

    def _iter(self) -> Iterator[CacheEntry]:
        for path, key in self._entry_files():
            entry = self._load(path, key)
            if entry is not None:
                yield entry

    def _len(self) -> int:
        # Exact and quiet (list(cache) calls len() before iterating: a damaged file should warn once, not
        # twice). Entries are told live by their markers (listings only, plus the expiry of expiring ones);
        # an entry without one marker that agrees with it (written by an older oxicache, racing) is read.
        with os.scandir(self._dir) as it:
            names = [d.name[:32] for d in it if ENTRY_NAME.fullmatch(d.name)]
        markers, now = self._index.all_markers(), self._clock()
        return sum(self._live(key, markers.get(key, []), now) for key in names)

    def _count_func(self, func: str) -> int:
        """The function's live entries, from its markers: a stat per marker, no entry read unless its
        marker disagrees with it."""
        self._migrate()
        now = self._clock()
        return sum(self._live(key, found, now) for key, found in self._index.markers(func).items())

    def _clear_func(self, func: str) -> int:
        """Removes the function's entries by its markers; returns how many were live. The markers go
        before the entry file: a store of the key meanwhile then leaves its entry with its marker, or
        neither (never an entry without a marker, which the function's count would miss)."""
        self._migrate()
        now, removed = self._clock(), 0
        for key, found in self._index.markers(func).items():
            live = self._live(key, found, now)
            for marker in found:
                self._unlink(os.path.join(marker.folder, f"{key}.{marker.name}"))
            if self._unlink(self._file(int(key, 16))):
                removed += live
        return removed

    def _live(self, key: str, markers: list[Marker], now: float) -> bool:
        """The entry of ``key`` (hex) exists and has not expired, told by the one marker naming its file's
        stamp (one stat); read when no single marker does (or an expiring one is unreadable), and when it
        has expired (``_load`` removes it)."""
        path = self._prefix + key + ".json"
        try:
            st = os.stat(path)
        except OSError:
            return False  # removed: its markers stay until the function is cleared
        name = stamp_name(st)
        agree = [m for m in markers if m.name == name or m.name == name + ".t"] \
            if st.st_ino and stat.S_ISREG(st.st_mode) else []
        if len(agree) == 1:
            if not agree[0].expires:
                return True
            expiry = self._index.expiry(key, agree[0])
            if expiry is not None and not self._expired(expiry, now):
                return True
        return self._load(path, int(key, 16), warn=False) is not None

    def _migrate(self) -> None:
        """Once per folder written before the index: a marker for every entry file (each read once)."""
        if self._index.complete:
            return
        for path, key in self._entry_files():
            try:
                found = self._read(path, key)
            except (OSError, ValueDecodingError):
                continue  # damaged: no entry to count; the next store of its key writes its marker
            if found is not None:
                entry, expiry, st = found
                self._index.mark(entry.func, key_hex(key), expiry, stamp(st), self._fsync)
                for tag in _tags(entry):
                    self._index.mark_in(self._index.tag_folder(tag), key_hex(key), expiry, stamp(st), self._fsync)
        self._index.set_complete()

    def _invalidate_tags(self, tags: frozenset[str]) -> int:
        """Removes the entries the tags' marker folders name (no entry read unless an expiring one's marker
        cannot be read); markers whose stamp names no current entry file are stale and go too. Returns how
        many live entries were removed."""
        self._migrate()
        now, removed = self._clock(), set()
        for tag in sorted(tags):
            for key, found in self._index.markers_in(self._index.tag_folder(tag)).items():
                path = self._prefix + key + ".json"
                try:
                    current = stamp_name(os.stat(path))
                except OSError:
                    current = None
                tagged = current is not None and any(m.name in (current, current + ".t") for m in found)
                # A live entry: its marker (one stat) or, for an expiring one, the expiry it holds.
                live = tagged and key not in removed and self._live(key, found, now)
                for marker in found:
                    self._unlink(os.path.join(marker.folder, f"{key}.{marker.name}"))
                if tagged and self._unlink(path) and live:
                    removed.add(key)
        return len(removed)

    # ---- removing -------------------------------------------------------------------------------
    @staticmethod
    def _unlink(path: str) -> bool:
        """Remove a file; False when it is already gone (or is a folder, which is left alone)."""
        try:
            os.unlink(path)
        except FileNotFoundError:
            return False
        except OSError:
            if os.path.isdir(path):
                return False
            raise
        return True

    def _remove(self, ref: Ref) -> bool:
        key = ref_key(ref)
        path = self._file(key)
        live = self._load(path, key, warn=False) is not None
        return self._unlink(path) and live

    def _clear(self) -> None:
        for key, found in self._index.all_markers().items():  # markers first, as _clear_func
            for marker in found:
                self._unlink(os.path.join(marker.folder, f"{key}.{marker.name}"))
        for folder in self._index.tag_folders():
            for key, found in self._index.markers_in(folder).items():
                for marker in found:
                    self._unlink(os.path.join(marker.folder, f"{key}.{marker.name}"))
        for path, _ in self._entry_files():
            self._unlink(path)
        self._sweep_temp()

    def expire(self) -> int:
        """Remove the files of expired entries now (they are also removed when read); returns how many."""
        removed = 0
        now = self._clock()
        for path, key in self._entry_files():
            try:
                found = self._read(path, key)
            except (OSError, ValueDecodingError):
                continue  # damaged, not expired: the next store of its key overwrites it
            if found is not None and self._expired(found[1], now) and self._drop_expired(path, found[2]):
                removed += 1
        return removed

    def verify(self) -> list[str]:
        """The folder's problems, read-only (the contract is ``BaseCache.verify``): every entry file,
        expired ones included, must be a regular file (not a link) that parses as a record whose func and
        inputs recompute to its file name; a temporary file older than ``STALE_TEMP_AGE`` is a dead
        writer's leftover; a name shaped like the cache's own but not exactly one (``.JSON``, upper-case
        hex, a misplaced dot) is a stray. Other files are the folder's business, not reported."""
        problems: list[str] = []
        cutoff = time.time() - STALE_TEMP_AGE
        own_shaped = re.compile(r"(?i)\.?[0-9a-f]{32}(\.json|\.[0-9]+\.[0-9a-f]+\.tmp)")  # any case, any dot
        with os.scandir(self._dir) as it:
            names = sorted(d.name for d in it)
        for name in names:
            path = os.path.join(self._dir, name)
            if ENTRY_NAME.fullmatch(name):
                if os.path.islink(path):
                    problems.append(f"{path}: a symbolic link where an entry file should be")
                    continue
                try:
                    self._read(path, int(name[:32], 16))  # None when removed meanwhile
                except (OSError, ValueDecodingError) as err:
                    if os.path.lexists(path):
                        text = str(err) or type(err).__name__
                        problems.append(text if text.startswith(name) else f"{path}: {text}")
            elif TEMP_NAME.fullmatch(name):
                try:
                    if os.lstat(path).st_mtime < cutoff:
                        problems.append(f"{path}: a temporary file left by a writer that died (swept when a "
                                        "JsonCache next opens the folder)")
                except FileNotFoundError:
                    continue
            elif own_shaped.fullmatch(name):
                problems.append(f"{path}: named like the cache's own files, but neither an entry nor a "
                                "temporary file (never read)")
        return problems

    def _sweep_temp(self) -> None:
        """Remove temporary files left by writers that crashed (older than ``STALE_TEMP_AGE``)."""
        cutoff = time.time() - STALE_TEMP_AGE
        with os.scandir(self._dir) as it:
            for d in it:
                if not TEMP_NAME.fullmatch(d.name):
                    continue
                try:
                    if d.is_file(follow_symlinks=False) and d.stat(follow_symlinks=False).st_mtime < cutoff:
                        os.unlink(d.path)
                except OSError:
                    continue  # gone already, or not ours to remove

    def _set_leased(self, entry: CacheEntry, ttl: float | None, token: str) -> bool:
        return self._leases.store_then_release(entry.shared_key, token, lambda: self._set(entry, ttl))

    def __repr__(self) -> str:
        return f"JsonCache({self._dir!r}{', fsync=True' if self._fsync else ''})"


def _tags(entry: CacheEntry) -> list[str]:
    """The entry's tags (``memoize(tags=...)`` stores them in ``metadata["tags"]``)."""
    tags = entry.metadata.get("tags")
    return sorted({t for t in tags if isinstance(t, str)}) if isinstance(tags, list) else []


def _stamp(path: str) -> Stamp | None:
    """The stamp of the file at ``path`` (_jsonindex.stamp), or None when there is none."""
    try:
        return stamp(os.stat(path))
    except OSError:
        return None

