"""JsonCache's per-function index: an empty marker file per entry, ``<folder>/index/<function digest>/<key
hex>.<inode>.<size>.<mtime ns>``, naming the entry file it was written with (its stamp); an entry that
expires has the same name plus ``.t``, and its expiry time inside.

A store writes its marker, renames its entry file into place, then removes the marker of the file it
replaced (whose stamp it read before the rename), and writes its marker again if a clear removed it
between its write and the rename. So every entry file a completed store left has a marker
with its stamp; a marker with another stamp (a crash between the steps, an older oxicache overwriting the
file, a file edited or damaged in place) is not trusted, and a key without a trusted marker is read. A key determines its function, so a
marker in a function's folder never names another function's entry. Counting a function lists its folder
and stats each entry file (reads only markers of expiring entries); ``len()`` lists folders only.

Tags (``memoize(tags=...)``) have marker folders of their own, ``<folder>/index/tags/<tag digest>/``, with the
same marker names: ``invalidate(tags=...)`` lists the tags' folders and removes each entry whose current
file one of them names; a tag marker whose stamp names no current file is stale and is removed then.

Folders written before the index existed have entries without markers: ``COMPLETE`` (a file in the index
folder) says every entry got one; until it exists, counting or clearing a function first gives every entry
its marker, reading each once (the one-time migration).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from typing import NamedTuple

from oxicache._core import KEY_SCHEME_VERSION

__all__ = ["FOLDER", "FuncIndex", "Marker", "Stamp", "stamp", "stamp_name"]

#: The index's folder, inside the cache's folder.
FOLDER = "index"
#: The file saying every entry of the folder has its marker (written once the migration is done).
COMPLETE = "complete"
#: The tags' marker folders, inside the index's folder.
TAGS = "tags"
_MARKERS = re.compile(r"^([0-9a-f]{32})\.([0-9]+\.[0-9]+\.[0-9]+(?:\.t)?)$", re.MULTILINE | re.ASCII)
_FOLDER = re.compile(r"[0-9a-f]{32}")
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_BINARY = getattr(os, "O_BINARY", 0)
_MARK_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _O_CLOEXEC | _O_BINARY


#: What identifies an entry file's content without reading it: (inode, size, mtime in ns).
Stamp = tuple[int, int, int]


def stamp(st: os.stat_result) -> Stamp:
    return st.st_ino, st.st_size, st.st_mtime_ns


class Marker(NamedTuple):
    folder: str
    name: str  # "<inode>.<size>.<mtime ns>", plus ".t" for an entry that expires (its time is inside)

    @property
    def expires(self) -> bool:
        return self.name.endswith(".t")


def stamp_name(st: os.stat_result) -> str:
    """The marker name (without key and ``.t``) of a file with this stat: compared as text, so counting
    builds no tuple per marker."""
    return f"{st.st_ino}.{st.st_size}.{st.st_mtime_ns}"


class FuncIndex:
    """The marker files of one JsonCache folder."""

    def __init__(self, folder: str, fresh: bool) -> None:
        """``fresh``: the folder had no entry and no index when opened, so the index, once its folder is
        made (by the first store: a cache folder holds only entries until then), is ``complete``."""
        self.root = os.path.join(folder, FOLDER)
        self.fresh = fresh

    def folder(self, func: str) -> str:
        """The markers' folder of a function (its identity under this key scheme, digested: any length and
        character makes a valid folder name)."""
        return os.path.join(self.root, _digest(f"{KEY_SCHEME_VERSION}:{func}"))

    def tag_folder(self, tag: str) -> str:
        """The markers' folder of a tag (beside, never among, the functions' folders)."""
        return os.path.join(self.root, TAGS, _digest(tag))

    def mark(self, func: str, name: str, expiry: float | None, of: Stamp, fsync: bool) -> None:
        """Writes the marker of the entry ``name`` (key hex) of ``func`` whose file has the stamp ``of``;
        with ``fsync``, flushed with its folder."""
        self.mark_in(self.folder(func), name, expiry, of, fsync)

    def mark_in(self, folder: str, name: str, expiry: float | None, of: Stamp, fsync: bool) -> None:
        """``mark`` in a given markers' folder (a function's or a tag's)."""
        path = _marker_path(folder, name, expiry, of)
        try:
            fd = os.open(path, _MARK_FLAGS, 0o666)
        except FileNotFoundError:
            if self.fresh and not os.path.isdir(self.root):
                self.set_complete()
            _make_folders(folder)
            fd = os.open(path, _MARK_FLAGS, 0o666)
        try:
            if expiry is not None:
                os.write(fd, repr(float(expiry)).encode("ascii"))  # a reader meanwhile may see it empty: then it reads the entry
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        if fsync and os.name != "nt":  # Windows cannot open a folder; its creates are metadata-journaled
            fd = os.open(folder, os.O_RDONLY | _O_CLOEXEC)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def remark_in(self, folder: str, name: str, expiry: float | None, of: Stamp, fsync: bool) -> None:
        """Writes the marker again unless it exists (one stat): after a store's rename, for a clear that
        removed it in between."""
        try:
            os.stat(_marker_path(folder, name, expiry, of))
        except FileNotFoundError:
            self.mark_in(folder, name, expiry, of, fsync)

    def unmark(self, func: str, name: str, of: Stamp) -> None:
        """Removes the markers of the entry file ``name`` had with the stamp ``of`` (the file a store replaced)."""
        self.unmark_in(self.folder(func), name, of)

    def unmark_in(self, folder: str, name: str, of: Stamp) -> None:
        """``unmark`` in a given markers' folder (a function's or a tag's)."""
        base = os.path.join(folder, _name(name, of))
        for path in (base, base + ".t"):
            try:
                os.unlink(path)
            except OSError:
                pass  # none (the usual case for one of the two), or removed meanwhile

    def markers(self, func: str) -> dict[str, list[Marker]]:
        """The markers of ``func``, by key hex."""
        return self.markers_in(self.folder(func))

    def markers_in(self, folder: str) -> dict[str, list[Marker]]:
        """The markers in a markers' folder (a function's or a tag's), by key hex."""
        found: dict[str, list[Marker]] = {}
        self._list(folder, found)
        return found

    def all_markers(self) -> dict[str, list[Marker]]:
        """The markers of every function, by key hex."""
        found: dict[str, list[Marker]] = {}
        try:
            with os.scandir(self.root) as it:
                folders = [d.path for d in it if _FOLDER.fullmatch(d.name) and d.is_dir(follow_symlinks=False)]
        except FileNotFoundError:
            return found
        for folder in folders:
            self._list(folder, found)
        return found

    def tag_folders(self) -> list[str]:
        """Every tag's markers' folder."""
        root = os.path.join(self.root, TAGS)
        try:
            with os.scandir(root) as it:
                return [d.path for d in it if _FOLDER.fullmatch(d.name) and d.is_dir(follow_symlinks=False)]
        except FileNotFoundError:
            return []

    @staticmethod
    def _list(folder: str, found: dict[str, list[Marker]]) -> None:
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            return
        # One regex pass over the whole listing (C speed): "<key hex>.<inode>.<size>.<mtime ns>[.t]"
        for key, rest in _MARKERS.findall("\n".join(names)):
            found.setdefault(key, []).append(Marker(folder, rest))

    @staticmethod
    def expiry(key: str, marker: Marker) -> float | None:
        """The expiry time an expiring entry's marker holds; None when it cannot be read (being written,
        removed): the entry is then read instead."""
        try:
            with open(os.path.join(marker.folder, f"{key}.{marker.name}"), "rb") as f:
                return float(f.read(64).decode("ascii"))
        except (OSError, ValueError):
            return None

    @property
    def complete(self) -> bool:
        """Every entry of the folder has its marker (a new folder's, or a migrated one's)."""
        return os.path.exists(os.path.join(self.root, COMPLETE))

    def set_complete(self) -> None:
        _make_folders(self.root)
        with open(os.path.join(self.root, COMPLETE), "wb"):
            pass


def _make_folders(folder: str) -> None:
    """``os.makedirs(folder, exist_ok=True)`` without ``os.path``'s helpers: a store must not call
    ``builtins.len``, which a program may have memoized on this very cache (lru_cache's reentrancy test)."""
    try:
        os.mkdir(folder)
    except FileExistsError:
        return
    except FileNotFoundError:
        parent = folder.rpartition(os.sep)[0]
        if not parent or parent == folder:
            raise
        _make_folders(parent)
        with contextlib.suppress(FileExistsError):
            os.mkdir(folder)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _marker_path(folder: str, key: str, expiry: float | None, of: Stamp) -> str:
    """The marker file of the entry ``key`` whose file has the stamp ``of`` (``.t``: it expires)."""
    return os.path.join(folder, _name(key, of) + ("" if expiry is None else ".t"))


def _name(key: str, of: Stamp) -> str:
    return f"{key}.{of[0]}.{of[1]}.{of[2]}"

