"""Clearing a SQLite store on a full disk: the error test, and the reserve file.

Used by ``DatabaseCache`` on a SQLite file and by ``DiskCache``. On a full disk SQLite cannot write, and a
DELETE writes too: in WAL mode every page it changes is first appended to the ``-wal`` file. So each of
these stores holds ``RESERVE_BYTES`` of real disk blocks in a file beside its database file
(``<file>-reserve``), and a clear that finds the disk full gives them back to the file system and runs
again (``Reserve.drop``). Afterwards the reserve is made again when there is room (``Reserve.restore``),
or by a later store once there is (``Reserve.after_store``). How each backend deletes on a full disk:
``DatabaseCache._delete_on_full_disk`` and ``DiskCache._delete``.
"""

from __future__ import annotations

import os
import time

__all__ = ["RESERVE_BYTES", "Reserve", "drop_reserve", "is_full", "make_reserve", "reserve_path"]

RESERVE_BYTES = 1 << 20  # what clear() frees on a full disk: the WAL frames of a DELETE of ~1 GB of rows
_SQLITE_FULL, _SQLITE_IOERR_WRITE = 13, 778
_RETRY = 60.0  # seconds between a store's attempts to remake a reserve on a disk that is still full


def is_full(err: BaseException) -> bool:
    """True for SQLite's "database or disk is full" (ENOSPC), or a failed write (SQLITE_IOERR_WRITE:
    a disk quota or a file size limit)."""
    code = getattr(err, "sqlite_errorcode", None)
    return code in (_SQLITE_FULL, _SQLITE_IOERR_WRITE) or "database or disk is full" in str(err)


def reserve_path(database: str) -> str:
    return f"{database}-reserve"


def make_reserve(path: str) -> None:
    """Best effort: hold ``RESERVE_BYTES`` of real disk blocks in ``path`` (allocated, not a sparse
    file), unless it holds them already; on a disk too full for it, leave no partial file."""
    try:
        if os.stat(path).st_size >= RESERVE_BYTES:
            return
    except FileNotFoundError:
        pass
    except OSError:
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    except OSError:
        return
    done = False
    try:
        if hasattr(os, "posix_fallocate"):
            os.posix_fallocate(fd, 0, RESERVE_BYTES)
        else:
            zeros = bytes(65536)
            for _ in range(RESERVE_BYTES // len(zeros)):
                os.write(fd, zeros)
        done = True
    except OSError:
        pass
    finally:
        os.close(fd)
    if not done:
        try:
            os.unlink(path)
        except OSError:
            pass


def drop_reserve(path: str) -> bool:
    """Give the reserve's blocks back to the file system; False when there was none."""
    try:
        os.unlink(path)
    except OSError:
        return False
    return True


class Reserve:
    """The reserve file of one store, made at construction (best effort)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._remake_at = 0.0  # when a store next tries to remake a reserve that a clear used (0: never)
        make_reserve(path)

    def drop(self) -> bool:
        """Give the reserve's blocks back for a clear on a full disk; False when there was none."""
        return drop_reserve(self.path)

    def restore(self) -> None:
        """After a clear on a full disk: remake the reserve now if there is room, else have the next store
        that fits try again."""
        self._remake()
        if self._remake_at:
            self._remake_at = time.monotonic()

    def after_store(self) -> None:
        """After a store that fit: remake a reserve that a clear used (tried at most once a minute)."""
        if self._remake_at and time.monotonic() >= self._remake_at:
            self._remake()

    def _remake(self) -> None:
        make_reserve(self.path)
        self._remake_at = 0.0 if os.path.exists(self.path) else time.monotonic() + _RETRY
