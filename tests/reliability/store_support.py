"""Helpers of the persistent-store rows (R5, R6, R7, R25): reopening a store from its spec, its files, an
integrity check, and running a function as an unprivileged user.

Import as ``from store_support import ...`` (pytest puts this folder on sys.path; spawn children get the
parent's sys.path).
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import sqlite3
import tempfile
import traceback
import warnings
from typing import Any, Callable

import oxicache

Spec = tuple[str, tuple[Any, ...], dict[str, Any]]

NOBODY = 65534  # uid/gid an unprivileged child runs as when the tests run as root


def open_spec(spec: Spec, **options: Any) -> Any:
    """A new cache object on the store described by ``spec`` (``backends.SPECS[id(cache)]``)."""
    name, args, kwargs = spec
    return getattr(oxicache, name)(*args, **kwargs, **options)


def sqlite_file(cache: Any) -> str | None:
    """The SQLite file of a DiskCache or a file-backed DatabaseCache(sqlite); None for other stores."""
    name = type(cache).__name__
    if name == "DiskCache":
        return os.path.join(cache.path, "cache.db")
    if name == "DatabaseCache" and cache.url.startswith("sqlite:///") and not cache.url.endswith(":memory:"):
        return str(cache.engine.url.database)
    return None


def integrity_problems(cache: Any) -> list[str]:
    """The store's problems ([] when sound): ``cache.verify()``, plus SQLite's own integrity check of the
    file underneath where there is one (so the check does not rest on the code under test alone)."""
    problems = list(cache.verify())
    path = sqlite_file(cache)
    if path is not None and os.path.exists(path):
        con = sqlite3.connect(path, timeout=30)
        try:
            rows = [r[0] for r in con.execute("PRAGMA integrity_check").fetchall()]
        finally:
            con.close()
        if rows != ["ok"]:
            problems += [f"PRAGMA integrity_check: {r}" for r in rows]
    return problems


def quiet(fn: Callable[[], Any]) -> tuple[Any, list[str]]:
    """``fn()`` and the warnings it emitted (as text)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn()
    return result, [f"{w.category.__name__}: {w.message}" for w in caught]


# ---- an unprivileged child --------------------------------------------------------------------------


def _unprivileged(conn: Any, warm: Callable[[], Any], func: Callable[..., Any], args: tuple[Any, ...]) -> None:
    try:
        warm()  # imports and lazy loads happen as root: the interpreter's files may be unreadable to nobody
        if os.geteuid() == 0:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
        conn.send((True, func(*args)))
    except BaseException as err:  # reported to the parent
        conn.send((False, f"{type(err).__name__}: {err}\n{traceback.format_exc()}"))


def run_unprivileged(warm: Callable[[], Any], func: Callable[..., Any], *args: Any, timeout: float = 120) -> Any:
    """``func(*args)`` in a spawn child that runs as an ordinary user (``nobody`` when the tests run as
    root, where permission bits do not apply), after ``warm()`` has loaded what it needs. Returns its
    result; its exception fails the caller."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_unprivileged, args=(child, warm, func, args), daemon=True)
    proc.start()
    child.close()
    try:
        if not parent.poll(timeout):
            msg = f"unprivileged child {proc.pid} did not answer within {timeout}s"
            raise AssertionError(msg)
        try:
            ok, value = parent.recv()
        except EOFError:
            proc.join(5)
            msg = f"unprivileged child {proc.pid} died without answering (exit code {proc.exitcode})"
            raise AssertionError(msg) from None
    finally:
        proc.join(5)
        if proc.is_alive():
            proc.kill()
            proc.join()
    if not ok:
        msg = f"unprivileged child failed: {value}"
        raise AssertionError(msg)
    return value


def shared_tempdir() -> str:
    """A new folder every user can enter (``tempfile.mkdtemp`` makes 0700 folders); the caller removes it."""
    folder = tempfile.mkdtemp(prefix="oxicache-rel-")
    os.chmod(folder, 0o777)
    return folder


def warm_backends() -> None:
    """Load everything DiskCache, JsonCache and DatabaseCache(sqlite) import lazily, by using each once."""
    folder = tempfile.mkdtemp(prefix="oxicache-warm-")
    for cache in (oxicache.DiskCache(os.path.join(folder, "d")), oxicache.JsonCache(os.path.join(folder, "j")),
                  oxicache.DatabaseCache(database=os.path.join(folder, "s.db"))):
        cache.set("warm", output=1, x=1)
        assert cache.get("warm", x=1) == 1
        cache.close()
    shutil.rmtree(folder, ignore_errors=True)
