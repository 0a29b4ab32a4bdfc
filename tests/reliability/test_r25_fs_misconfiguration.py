"""R25: network file systems and misconfigured cache folders are reported when the cache is created.

- Network / FUSE file system: the matrix fakes ``statfs``; on Linux the file system type of a path comes
  from the mount table, so ``oxicache.backends._fs.filesystem_type(path)`` parses ``/proc/self/mountinfo`` (the
  longest mount point holding the resolved path; a later mount on the same point hides an earlier one;
  octal escapes in mount points), and the tests point ``oxicache.backends._fs.MOUNTINFO`` at a fake mount table
  that mounts the cache folder as NFS, SMB/CIFS or a FUSE file system. The SQLite-based backends
  (DiskCache, DatabaseCache on SQLite) then warn once at construction with a ``CacheWarning`` naming the
  file system and the risk (SQLite's locks and WAL shared memory over a network file system); they do not
  refuse, since one process on NFS works. JsonCache (atomic renames, no locks) does not warn, nor do local
  file systems (ext4, tmpfs, local FUSE such as fuse-overlayfs). The parser is also checked against the
  real mount table.
- A read-only folder (an empty one, and one holding a store made read-only afterwards), a folder that
  cannot be created under a read-only parent, and a read-only SQLite file in a writable folder: a ``PermissionError`` naming the folder at construction, not
  on the first call, for disk, json and sqlite. Permission bits do not bind root, so when the tests run as
  root the cases run in a child that drops to ``nobody``.
- A cache folder (or SQLite file) on a path through a loop of symbolic links: an ``OSError`` with errno
  ``ELOOP`` saying so, at construction (``os.makedirs`` alone reports some loops as "File exists").
"""

from __future__ import annotations

import errno
import functools
import os
import shutil
from typing import Any, Callable

import pytest
from reliability_support import watchdog
from store_support import run_unprivileged, shared_tempdir, warm_backends

import oxicache
from oxicache import CacheWarning
from oxicache.backends import _fs

BUILD: dict[str, Callable[[str], Any]] = {
    "disk": lambda folder: oxicache.DiskCache(folder),
    "json": lambda folder: oxicache.JsonCache(folder),
    "sqlite": lambda folder: oxicache.DatabaseCache(database=os.path.join(folder, "cache.db")),
}


def fake_mounts(tmp_path: Any, mounts: list[tuple[str, str]]) -> str:
    """A mountinfo file with ``/`` on ext4 and each (mount point, type) after it, in that order."""
    lines = ["22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw"]
    for n, (point, fstype) in enumerate(mounts):
        escaped = point.replace("\\", "\\134").replace(" ", "\\040")
        lines.append(f"{30 + n} 22 0:{50 + n} / {escaped} rw,relatime shared:{2 + n} - {fstype} server:/export rw")
    path = tmp_path / "mountinfo"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


# ---- the mount table parser ------------------------------------------------------------------------------


def test_filesystem_type_reads_the_mount_table(tmp_path: Any) -> None:
    table = fake_mounts(tmp_path, [("/mnt/nfs", "nfs4"), ("/mnt/nfs/inner", "tmpfs"), ("/mnt/my share", "cifs"),
                                   ("/mnt/ssh", "ext4"), ("/mnt/ssh", "fuse.sshfs")])
    assert _fs.filesystem_type("/home/x", table) == "ext4"
    assert _fs.filesystem_type("/mnt/nfs", table) == "nfs4"
    assert _fs.filesystem_type("/mnt/nfs/a/b/not-yet-created.db", table) == "nfs4"
    assert _fs.filesystem_type("/mnt/nfs/inner/c.db", table) == "tmpfs", "the longest mount point wins"
    assert _fs.filesystem_type("/mnt/nfsx/c.db", table) == "ext4", "a prefix that is not a path component"
    assert _fs.filesystem_type("/mnt/my share/cache", table) == "cifs", "octal escapes in mount points"
    assert _fs.filesystem_type("/mnt/ssh/c", table) == "fuse.sshfs", "a later mount on the same point hides one"
    link = tmp_path / "link"
    link.symlink_to("/mnt/nfs/deep")
    assert _fs.filesystem_type(str(link / "c.db"), table) == "nfs4", "symbolic links are resolved"
    assert _fs.filesystem_type("/x", str(tmp_path / "no-such-table")) is None


@pytest.mark.skipif(not os.path.exists("/proc/self/mountinfo"), reason="needs Linux /proc")
def test_filesystem_type_on_the_real_mount_table(tmp_path: Any) -> None:
    assert _fs.filesystem_type("/proc/self") == "proc"
    # an independent reading of /proc/mounts: the last, longest mount point holding the folder
    real = os.path.realpath(tmp_path)
    best = ("", "")
    with open("/proc/mounts") as fh:
        for line in fh:
            _src, point, fstype = line.split()[:3]
            point = point.replace("\\040", " ")
            if (real == point or real.startswith(point.rstrip("/") + "/")) and len(point) >= len(best[0]):
                best = (point, fstype)
    assert _fs.filesystem_type(str(tmp_path)) == best[1]


# ---- network and FUSE file systems ---------------------------------------------------------------------


@pytest.mark.parametrize("fstype", ["nfs", "nfs4", "cifs", "smb3", "fuse.sshfs", "fuse.s3fs", "fuse", "9p"])
@pytest.mark.parametrize("backend", ["disk", "sqlite"])
def test_sqlite_backends_warn_on_a_network_filesystem(backend: str, fstype: str, tmp_path: Any,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "cache"
    monkeypatch.setattr(_fs, "MOUNTINFO", fake_mounts(tmp_path, [(str(folder), fstype)]))
    with pytest.warns(CacheWarning) as caught:
        cache = BUILD[backend](str(folder))
    assert len(caught) == 1
    message = str(caught[0].message)
    assert f"on a {fstype} file system" in message and "SQLite" in message and "local disk" in message
    assert os.path.join(str(folder), "cache.db") in message
    assert caught[0].filename == __file__, "the warning points at the line that created the cache"
    cache.set("f", output=1, x=1)  # a warning, not a refusal
    assert cache.get("f", x=1) == 1
    cache.close()


@pytest.mark.parametrize("fstype", ["ext4", "xfs", "btrfs", "tmpfs", "overlay", "fuse.fuse-overlayfs", "fuseblk"])
@pytest.mark.parametrize("backend", ["disk", "sqlite"])
def test_sqlite_backends_are_quiet_on_local_filesystems(backend: str, fstype: str, tmp_path: Any,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "cache"
    monkeypatch.setattr(_fs, "MOUNTINFO", fake_mounts(tmp_path, [(str(folder), fstype)]))
    BUILD[backend](str(folder)).close()  # filterwarnings=error: any warning fails


def test_json_cache_does_not_warn_on_nfs(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """JsonCache takes no locks: each write is a new file renamed into place, which NFS does atomically."""
    folder = tmp_path / "cache"
    monkeypatch.setattr(_fs, "MOUNTINFO", fake_mounts(tmp_path, [(str(folder), "nfs4")]))
    oxicache.JsonCache(str(folder)).set("f", output=1, x=1)


# ---- read-only folders ---------------------------------------------------------------------------------


READ_ONLY_CASES = ("empty_read_only", "store_made_read_only", "under_read_only_parent", "database_file_read_only")


def _cases(backend: str) -> tuple[str, ...]:
    # JsonCache replaces entry files by renaming over them: read-only files in a writable folder are fine
    return READ_ONLY_CASES[:3] if backend == "json" else READ_ONLY_CASES


def _read_only_cases(root: str) -> list[tuple[str, str, str, str]]:
    """As an unprivileged user: construct each backend on read-only folders; (case, exception, message, folder)."""
    out = []
    for backend, build in BUILD.items():
        for case in _cases(backend):
            folder = os.path.join(root, backend, case)
            target = os.path.join(folder, "sub") if case == "under_read_only_parent" else folder
            try:
                cache = build(target)
            except OSError as err:
                out.append((f"{backend}/{case}", type(err).__name__, str(err), target))
            else:
                cache.close()
                out.append((f"{backend}/{case}", "constructed", "", target))
    return out


def _warm_and_prepare(root: str) -> None:
    """As root, before dropping privileges: the folders, one holding a store, then made read-only."""
    warm_backends()
    for backend, build in BUILD.items():
        for case in _cases(backend):
            folder = os.path.join(root, backend, case)
            os.makedirs(folder)
            if case in ("store_made_read_only", "database_file_read_only"):
                cache = build(folder)
                cache.set("f", output=1, x=1)
                cache.close()
                for name in os.listdir(folder):
                    os.chmod(os.path.join(folder, name), 0o444)
            os.chmod(folder, 0o777 if case == "database_file_read_only" else 0o555)
        os.chmod(os.path.join(root, backend), 0o755)


def test_a_read_only_folder_fails_at_construction() -> None:
    root = shared_tempdir()
    try:
        with watchdog(120, "R25 read-only folders in an unprivileged child"):
            got = run_unprivileged(functools.partial(_warm_and_prepare, root), _read_only_cases, root)
    finally:
        for folder, dirs, _ in os.walk(root):
            for d in dirs:
                os.chmod(os.path.join(folder, d), 0o755)
        shutil.rmtree(root, ignore_errors=True)
    assert len(got) == 11
    for case, kind, message, target in got:
        assert kind == "PermissionError", (case, kind, message)
        assert target in message or os.path.dirname(target) in message, (case, message)
        assert "read-only" in message or "Permission denied" in message, (case, message)


# ---- symbolic link loops -------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", sorted(BUILD))
@pytest.mark.parametrize("where", ["the_folder", "a_parent"])
def test_a_symlink_loop_fails_at_construction_saying_so(backend: str, where: str, tmp_path: Any) -> None:
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    folder = tmp_path / "a" if where == "the_folder" else tmp_path / "a" / "cache"
    with pytest.raises(OSError, match="loop of symbolic links") as info:
        BUILD[backend](str(folder))
    assert info.value.errno == errno.ELOOP
    assert str(tmp_path / "a") in str(info.value)


def test_a_sqlite_file_that_is_a_symlink_loop_fails_at_construction(tmp_path: Any) -> None:
    (tmp_path / "c.db").symlink_to(tmp_path / "d.db")
    (tmp_path / "d.db").symlink_to(tmp_path / "c.db")
    with pytest.raises(OSError, match="loop of symbolic links") as info:
        oxicache.DatabaseCache(database=str(tmp_path / "c.db"))
    assert info.value.errno == errno.ELOOP
