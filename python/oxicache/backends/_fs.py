"""File-system checks the persistent backends run when they open a store: the folder, its file system, the SQLite header."""

from __future__ import annotations

import errno
import os
import struct
import threading
import weakref

from oxicache.callsite import warn
from oxicache.errors import CacheWarning, CorruptStoreError

__all__ = [
    "MOUNTINFO",
    "STALE_TEMP_AGE",
    "check_sqlite_header",
    "check_writable_file",
    "filesystem_type",
    "hold_sqlite_file",
    "prepare_folder",
    "risky_filesystem",
    "warn_if_risky_filesystem",
]

#: Where the mount table is read from (Linux); tests point it at a fake file. ``/proc/mounts`` is the
#: fallback when it is missing.
MOUNTINFO = "/proc/self/mountinfo"
_MOUNTS = "/proc/mounts"

#: Temporary files (JsonCache) and unreferenced value files (DiskCache) older than this (seconds) were
#: left by a writer that crashed and are removed when a store is opened. Younger ones may belong to a
#: writer at work in another process (or on another machine), so they are left alone.
STALE_TEMP_AGE = 600.0

# File systems on which SQLite's POSIX locks or WAL's shared-memory index are unreliable: network file
# systems, and FUSE file systems (usually remote: sshfs, s3fs, rclone, gcsfuse, ...).
_NETWORK = frozenset({
    "nfs", "nfs4", "cifs", "smb", "smb2", "smb3", "smbfs", "afs", "ncpfs", "coda", "9p", "ceph",
    "glusterfs", "lustre", "gpfs", "davfs", "beegfs", "orangefs", "pvfs2", "ocfs2", "gfs2",
})
# FUSE types that are local disks, not remote stores.
_LOCAL_FUSE = frozenset({"fuseblk", "fuse.fuse-overlayfs", "fuse.lxcfs", "fusectl"})


def _unescape(field: str) -> str:
    r"""A mount table field with its octal escapes (``\040`` for a space, ...) decoded."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and all(c in "01234567" for c in field[i + 1:i + 4]) and len(field) >= i + 4:
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def _mounts(mountinfo: str) -> list[tuple[str, str]]:
    """(mount point, file system type) of every mount, in mount order; [] when no table can be read."""
    try:
        with open(mountinfo, encoding="utf-8", errors="surrogateescape") as f:
            lines = f.read().splitlines()
    except OSError:
        lines = []
    else:
        found = []
        for line in lines:  # "36 35 98:0 /root /mnt rw,noatime master:1 - ext3 /dev/root rw,errors=continue"
            left, sep, right = line.partition(" - ")
            fields, tail = left.split(), right.split()
            if sep and len(fields) >= 5 and tail:
                found.append((_unescape(fields[4]), tail[0]))
        return found
    if mountinfo != MOUNTINFO:
        return []
    try:
        with open(_MOUNTS, encoding="utf-8", errors="surrogateescape") as f:  # "/dev/sda1 / ext4 rw 0 0"
            return [(_unescape(p[1]), p[2]) for p in (line.split() for line in f) if len(p) >= 3]
    except OSError:
        return []


def filesystem_type(path: str | os.PathLike[str], mountinfo: str | None = None) -> str | None:
    """The type of the file system holding ``path`` as the kernel names it (``"ext4"``, ``"nfs4"``,
    ``"cifs"``, ``"fuse.sshfs"``...), from the mount table; None where there is none (not Linux).

    ``path`` need not exist: its nearest existing ancestor decides. Symbolic links are resolved first.
    """
    table = _mounts(MOUNTINFO if mountinfo is None else mountinfo)
    if not table:
        return None
    target = os.path.realpath(os.fspath(path))
    best, best_type = -1, None
    for point, fstype in table:  # the longest mount point containing the path; a later mount on the same point hides an earlier one
        if target == point or target.startswith(point.rstrip("/") + "/"):
            if len(point) >= best:
                best, best_type = len(point), fstype
    return best_type


def risky_filesystem(fstype: str | None) -> bool:
    """True for file systems where SQLite's locking cannot be trusted (network and remote FUSE ones)."""
    if fstype is None:
        return False
    if fstype in _NETWORK or fstype.split(".", 1)[0] in _NETWORK:
        return True
    return (fstype == "fuse" or fstype.startswith("fuse.")) and fstype not in _LOCAL_FUSE


def warn_if_risky_filesystem(path: str, what: str) -> None:
    """One ``CacheWarning`` when the SQLite file ``path`` (of the backend ``what``) is on a network or FUSE
    file system."""
    fstype = filesystem_type(path)
    if risky_filesystem(fstype):
        warn(
            f"oxicache: {what} keeps its SQLite database {path!r} on a {fstype} file system: SQLite's file "
            "locks and WAL shared memory are not reliable on network and FUSE file systems, so processes "
            "using the cache at once can corrupt it or fail with 'database is locked'; put the cache on a "
            "local disk (or share a cache between machines with DatabaseCache on PostgreSQL or MySQL)",
            CacheWarning,
        )


def _folder_problem(folder: str, err: OSError) -> tuple[int | None, str]:
    """The errno and the words for what is wrong with ``folder``, after ``os.makedirs`` failed with ``err``."""
    probe = folder
    while True:  # a symbolic link loop anywhere on the path (makedirs may report it as "File exists")
        try:
            os.stat(probe)
        except OSError as e:
            if e.errno == errno.ELOOP:
                return errno.ELOOP, (f"the path goes through a loop of symbolic links at {probe!r}; fix or "
                                     "remove the link, or pass another folder")
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if isinstance(err, FileExistsError) and not os.path.isdir(folder):
        return err.errno, "it exists and is not a folder"
    return err.errno, err.strerror or str(err)


def prepare_folder(folder: str, what: str) -> None:
    """Create ``folder`` (and its parents) if missing, and check this process can create files in it, so
    that a bad path fails when the cache is created, not on its first call.

    ``what`` starts the message (e.g. ``"cannot open a DiskCache in '/x'"``); the rest names the folder.

    Raises:
        OSError: naming the folder, what is wrong and the fix (a ``PermissionError`` for a read-only folder,
            errno ``ELOOP`` for a symbolic link loop).
    """
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as err:
        code, problem = _folder_problem(folder, err)
        cls = OSError if code == errno.ELOOP else type(err)
        raise cls(code, f"{what}: cannot create the folder {folder!r}: {problem}") from err
    if not os.access(folder, os.W_OK | os.X_OK):
        msg = (f"{what}: the folder {folder!r} is read-only for this process; pass a folder it can write "
               "(the cache creates and replaces files there)")
        raise PermissionError(errno.EACCES, msg)


def check_writable_file(path: str, what: str) -> None:
    """A ``PermissionError`` when the existing file ``path`` cannot be written (``what`` starts the message)."""
    if os.path.exists(path) and not os.access(path, os.W_OK):
        msg = f"{what}: its database file {path!r} is read-only for this process; make it writable"
        raise PermissionError(errno.EACCES, msg)


_MAGIC = b"SQLite format 3\x00"


def check_sqlite_header(path: str, what: str) -> None:
    """Raise ``CorruptStoreError`` when the SQLite file ``path`` has a damaged header.

    Reads the 100-byte header only (no scan: cheap on any size of file): the magic string, the page size,
    and the largest root page against the page count (the field diskcache's own integrity test damages,
    which SQLite itself only reports in ``PRAGMA integrity_check``). A missing or empty file is a new
    database and passes.
    """
    try:
        with open(path, "rb") as f:
            header = f.read(100)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        return  # a new database, or one SQLite itself refuses with its own message
    except OSError as err:
        if err.errno == errno.ELOOP:
            msg = f"{what} cannot open {path!r}: it is a loop of symbolic links; fix or remove the link"
            raise OSError(errno.ELOOP, msg) from err
        raise
    if not header:
        return
    if len(header) < 100 or header[:16] != _MAGIC:
        raise CorruptStoreError(_corrupt(path, what, "it is not a SQLite database (bad header)"))
    page_size = struct.unpack(">H", header[16:18])[0]
    page_size = 65536 if page_size == 1 else page_size
    if page_size < 512 or page_size & (page_size - 1):
        raise CorruptStoreError(_corrupt(path, what, f"its header names an invalid page size ({page_size})"))
    pages, change, valid_for = struct.unpack(">I", header[28:32])[0], header[24:28], header[92:96]
    largest_root = struct.unpack(">I", header[52:56])[0]
    if pages and change == valid_for and largest_root > pages:
        raise CorruptStoreError(_corrupt(
            path, what, f"its header is damaged (largest root page {largest_root} of {pages} pages)"))


# The SQLite files this process's caches have open: real path -> how many live caches use it.
_HELD: dict[str, int] = {}
_HELD_LOCK = threading.Lock()


def hold_sqlite_file(owner: object, path: str, what: str) -> None:
    """Check the header of the SQLite file ``path`` (``check_sqlite_header``) unless a live cache of this
    process uses that file already, and count ``owner`` as one such cache until it is collected.

    Why not always: POSIX record locks belong to the process, and closing *any* descriptor of a file drops
    all of them. SQLite keeps its own descriptors open until its last lock is released; the header read's
    ``open()``/``close()`` cannot, so reading it while another cache of this process is in a transaction
    would drop that transaction's locks, and another process could write under it (a corrupt file). The
    file was checked when the first cache opened it; later ones skip the read.
    """
    key = os.path.realpath(path)
    with _HELD_LOCK:  # the read happens only while no cache of this process is opening or using the file
        if not _HELD.get(key):
            check_sqlite_header(path, what)
        _HELD[key] = _HELD.get(key, 0) + 1
    weakref.finalize(owner, _release_sqlite_file, key)


def _release_sqlite_file(key: str) -> None:
    with _HELD_LOCK:
        left = _HELD.get(key, 0) - 1
        if left > 0:
            _HELD[key] = left
        else:
            _HELD.pop(key, None)


def _corrupt(path: str, what: str, problem: str) -> str:
    return (f"{what} cannot open its SQLite database {path!r}: {problem}. The cache cannot be read; delete "
            "the file (and its -wal and -shm files) to start an empty cache")
