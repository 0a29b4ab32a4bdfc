"""Matrix row R22: I/O faults and a full disk, injected below oxicache (the OS calls and the drivers).

Faults, per backend (each switched on only around the calls under test):

- JsonCache: ``os.write`` (ENOSPC, EIO) on its temporary file, ``os.open`` of it (EACCES), ``os.fsync``
  (EIO, ENOSPC; with ``fsync=True``) and the rename, ``os.replace`` (ENOSPC, EACCES).
- DiskCache: the value file diskcache writes for large values (``open`` as diskcache sees it: ENOSPC
  and EIO half-way through the write, EACCES on open); SQLite itself full, for real, through
  ``PRAGMA max_page_count`` on diskcache's connection (``reset("sqlite_max_page_count", ...)``); and a
  COMMIT of a write failing with "disk I/O error" (a ``sqlite3.Connection`` subclass given to
  diskcache's ``sqlite3.connect``), leaving the transaction open as SQLite may.
- DatabaseCache on SQLite: really full (``PRAGMA max_page_count`` on every connection, via a SQLAlchemy
  "connect" listener), and the upsert failing with "disk I/O error" or "attempt to write a readonly
  database" (the driver's connection/cursor factories). Statements run in autocommit mode, so each
  statement is its own commit: a failed commit is a failed statement, covered by those.
- DatabaseCache on PostgreSQL and MySQL: the driver's cursor (``cursor_factory``/``cursorclass``)
  raising the server's disk-full error (``psycopg.errors.DiskFull``, MySQL 1114 "table is full") on the
  upsert.

Adapted: DiskCache's fsync and rename rows do not apply (diskcache neither fsyncs nor renames; SQLite's
own fsyncs are in C, below Python), so its faults are the value-file write, SQLite full and the commit.

Criteria: under the default policy the caller gets the computed value with one ``CacheWarning`` per
call, ``stats()["backend_errors"]`` counts each failure, the previous entry of the key is intact, a key
that had none stays a miss, and nothing partial is left (no temporary or orphan value file, no row);
once the fault is gone the cache stores again (nothing stuck). ``on_backend_error="raise"`` raises
``BackendError`` whose ``__cause__`` is the injected error; ``"ignore"`` emits no warning. ``clear()``
works while writes fail. Calls after a fault run under a hang guard.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

import pytest
from backends import make
from reliability_support import expected_value

import oxicache
from oxicache import BackendError, CacheWarning
from oxicache.backends import _sqlitefile

HANG = 30.0  # seconds: generous, the machine is shared


class Switch:
    on = False


def guarded(fn: Callable[[], Any], what: str = "call") -> Any:
    """``fn()`` in a thread; fails the test (instead of hanging it) if it has not returned in HANG s."""
    box: dict[str, Any] = {}
    context = contextvars.copy_context()  # refresh() and the other per-call controls are context-local

    def run() -> None:
        try:
            box["value"] = context.run(fn)
        except BaseException as err:  # noqa: BLE001 - re-raised in the test's thread
            box["error"] = err

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(HANG)
    assert not t.is_alive(), f"{what} hung for {HANG}s after an injected fault"
    if "error" in box:
        raise box["error"]
    return box.get("value")


def _oserror(code: int) -> OSError:
    return OSError(code, os.strerror(code)) if code != errno.EACCES else PermissionError(code, os.strerror(code))


def _ours(fd: int, folder: str) -> bool:
    try:
        return os.readlink(f"/proc/self/fd/{fd}").startswith(folder)
    except OSError:
        return False


@dataclass
class Fault:
    id: str
    backend: str
    size: int  # value size (times the run number), so the write takes the path the fault is on
    match: str  # in the warning, and in str(__cause__)
    arm: Callable[[Any, pytest.MonkeyPatch, Switch], None]
    cause: type[BaseException] = OSError
    options: dict[str, Any] = field(default_factory=dict)
    code: int | None = None

    def __str__(self) -> str:
        return self.id


# ---- JsonCache ----------------------------------------------------------------------------------------


def json_os(call: str, code: int) -> Callable[[Any, pytest.MonkeyPatch, Switch], None]:
    def arm(cache: Any, mp: pytest.MonkeyPatch, switch: Switch) -> None:
        real = getattr(os, call)

        def faulty(*args: Any, **kwargs: Any) -> Any:
            if switch.on:
                first = args[0]
                mine = _ours(first, cache.path) if isinstance(first, int) else str(first).startswith(cache.path)
                if mine and (call != "open" or args[1] & os.O_CREAT):
                    raise _oserror(code)
            return real(*args, **kwargs)

        mp.setattr(os, call, faulty)

    return arm


# ---- DiskCache ----------------------------------------------------------------------------------------


def disk_value_file(code: int, on_open: bool = False) -> Callable[[Any, pytest.MonkeyPatch, Switch], None]:
    import builtins

    import diskcache

    class HalfWriter:
        def __init__(self, f: Any) -> None:
            self.f = f

        def write(self, data: Any) -> int:
            self.f.write(data[: len(data) // 2])
            self.f.flush()
            raise _oserror(code)

        def __enter__(self) -> HalfWriter:
            return self

        def __exit__(self, *exc: object) -> None:
            self.f.close()

    def arm(cache: Any, mp: pytest.MonkeyPatch, switch: Switch) -> None:
        def faulty_open(path: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
            if switch.on and str(path).startswith(cache.path) and "x" in mode:
                if on_open:
                    raise _oserror(code)
                return HalfWriter(builtins.open(path, mode, *args, **kwargs))
            return builtins.open(path, mode, *args, **kwargs)

        mp.setattr(diskcache.core, "open", faulty_open, raising=False)

    return arm


def disk_sqlite_full(cache: Any, mp: pytest.MonkeyPatch, switch: Switch) -> None:
    dc = cache._dc
    real_set = dc.set

    def set_(*args: Any, **kwargs: Any) -> Any:
        # diskcache's own setting, applied to this thread's connection: pages now in use are all it gets
        ((pages,),) = dc._sql("PRAGMA page_count").fetchall()
        dc.reset("sqlite_max_page_count", pages if switch.on else 1073741823, update=False)
        return real_set(*args, **kwargs)

    mp.setattr(dc, "set", set_)


class _WriteTracking(sqlite3.Connection):
    """A connection whose COMMIT of a transaction that wrote fails while ``switch.on`` (the transaction
    stays open, as SQLite may leave it after an I/O error at commit)."""

    switch: Switch
    wrote = False

    def execute(self, sql: str, *args: Any) -> Any:  # type: ignore[override]
        head = sql.lstrip()[:6].upper()
        if head in ("INSERT", "UPDATE"):
            self.wrote = True
        if head == "COMMIT":
            wrote, self.wrote = self.wrote, False
            if wrote and self.switch.on:
                raise sqlite3.OperationalError("disk I/O error")
        if head in ("BEGIN ", "ROLLBA"):
            self.wrote = False
        return super().execute(sql, *args)


def disk_commit(cache: Any, mp: pytest.MonkeyPatch, switch: Switch) -> None:
    import diskcache

    conn_class = type("FaultyCommit", (_WriteTracking,), {"switch": switch})
    real_connect = sqlite3.connect
    mp.setattr(diskcache.core.sqlite3, "connect", lambda *a, **k: real_connect(*a, factory=conn_class, **k))
    cache.close()  # diskcache reconnects through the patched connect


# ---- DatabaseCache ------------------------------------------------------------------------------------


def sqlite_really_full(cache: Any, mp: pytest.MonkeyPatch, switch: Switch) -> None:
    path = cache.url.removeprefix("sqlite:///")
    limit = {"pages": 1073741823}

    def cap(dbapi_conn: Any, _: Any) -> None:
        dbapi_conn.execute(f"PRAGMA max_page_count = {limit['pages']}")

    # Every connection the cache opens gets the cap: SQLAlchemy's "connect" event, or, on the SQLite
    # file path without SQLAlchemy (backends/_sqlitefile.py), its connect hook.
    connections = cache._engine
    if isinstance(connections, _sqlitefile.Connections):
        setup = connections.on_connect
        mp.setattr(connections, "on_connect", lambda con, record: (setup(con, record), cap(con, record)))
    else:
        import sqlalchemy

        sqlalchemy.event.listen(cache.engine, "connect", cap)

    class Toggle(Switch):
        @property  # type: ignore[override]
        def on(self) -> bool:
            return limit["pages"] != 1073741823

        @on.setter
        def on(self, value: bool) -> None:
            with sqlite3.connect(path) as con:
                limit["pages"] = con.execute("PRAGMA page_count").fetchone()[0] if value else 1073741823
            cache.close()  # reconnect: the listener applies the cap

    switch.__class__ = Toggle


class _FaultyCursor(sqlite3.Cursor):
    switch = Switch()
    message = ""

    def execute(self, sql: str, *args: Any) -> Any:  # type: ignore[override]
        if self.switch.on and sql.lstrip().upper().startswith("INSERT"):
            raise sqlite3.OperationalError(self.message)
        return super().execute(sql, *args)


def sqlite_driver(message: str) -> dict[str, Any]:
    cursor_cls = type("Cursor", (_FaultyCursor,), {"message": message, "switch": Switch()})

    class Connection(sqlite3.Connection):
        def cursor(self, factory: Any = cursor_cls) -> Any:  # type: ignore[override]
            return super().cursor(factory)

    return {"engine_options": {"connect_args": {"factory": Connection}}, "_cursor": cursor_cls}


def driver_arm(cache: Any, mp: pytest.MonkeyPatch, switch: Switch) -> None:
    cache._r22_cursor.switch = switch  # the cursor class this cache's driver connections use


def server_driver(kind: str) -> dict[str, Any]:
    if kind == "postgresql":
        import psycopg

        class PgCursor(psycopg.Cursor):  # type: ignore[type-arg]
            switch = Switch()

            def execute(self, query: Any, *args: Any, **kwargs: Any) -> Any:
                if self.switch.on and str(query).lstrip().upper().startswith("INSERT"):
                    raise psycopg.errors.DiskFull("could not extend file: No space left on device")
                return super().execute(query, *args, **kwargs)

        return {"engine_options": {"connect_args": {"cursor_factory": PgCursor}}, "_cursor": PgCursor}
    import pymysql

    class MyCursor(pymysql.cursors.Cursor):
        switch = Switch()

        def execute(self, query: Any, args: Any = None) -> Any:
            if self.switch.on and str(query).lstrip().upper().startswith("INSERT"):
                raise pymysql.err.OperationalError(1114, "The table is full")
            return super().execute(query, args)

    return {"engine_options": {"connect_args": {"cursorclass": MyCursor}}, "_cursor": MyCursor}


def _sqlite_options(message: str) -> dict[str, Any]:
    return {"_driver": lambda: sqlite_driver(message)}


def _server_options(kind: str) -> dict[str, Any]:
    return {"_driver": lambda: server_driver(kind)}


FAULTS = [
    Fault("json-write-ENOSPC", "json", 100, "No space left", json_os("write", errno.ENOSPC), code=errno.ENOSPC),
    Fault("json-write-EIO", "json", 100, "Input/output error", json_os("write", errno.EIO), code=errno.EIO),
    Fault("json-open-EACCES", "json", 100, "Permission denied", json_os("open", errno.EACCES), code=errno.EACCES),
    Fault("json-fsync-EIO", "json", 100, "Input/output error", json_os("fsync", errno.EIO), options={"fsync": True},
          code=errno.EIO),
    Fault("json-fsync-ENOSPC", "json", 100, "No space left", json_os("fsync", errno.ENOSPC), options={"fsync": True},
          code=errno.ENOSPC),
    Fault("json-rename-ENOSPC", "json", 100, "No space left", json_os("replace", errno.ENOSPC), code=errno.ENOSPC),
    Fault("json-rename-EACCES", "json", 100, "Permission denied", json_os("replace", errno.EACCES), code=errno.EACCES),
    Fault("disk-file-ENOSPC", "disk", 40_000, "No space left", disk_value_file(errno.ENOSPC), code=errno.ENOSPC),
    Fault("disk-file-EIO", "disk", 40_000, "Input/output error", disk_value_file(errno.EIO), code=errno.EIO),
    Fault("disk-file-EACCES", "disk", 40_000, "Permission denied", disk_value_file(errno.EACCES, on_open=True),
          code=errno.EACCES),
    Fault("disk-sqlite-full", "disk", 10_000, "database or disk is full", disk_sqlite_full, sqlite3.OperationalError),
    Fault("disk-commit-EIO", "disk", 100, "disk I/O error", disk_commit, sqlite3.OperationalError),
    Fault("sqlite-full", "sqlite", 20_000, "database or disk is full", sqlite_really_full, sqlite3.OperationalError),
    Fault("sqlite-EIO", "sqlite", 100, "disk I/O error", driver_arm, sqlite3.OperationalError,
          options=_sqlite_options("disk I/O error")),
    Fault("sqlite-readonly", "sqlite", 100, "readonly database", driver_arm, sqlite3.OperationalError,
          options=_sqlite_options("attempt to write a readonly database")),
    Fault("postgresql-disk-full", "postgresql", 100, "No space left", driver_arm, Exception,
          options=_server_options("postgresql")),
    Fault("mysql-table-full", "mysql", 100, "table is full", driver_arm, Exception,
          options=_server_options("mysql")),
]
BY_ID = {f.id: f for f in FAULTS}
# raise/ignore on one fault of each backend
POLICY_FAULTS = ["json-rename-ENOSPC", "disk-file-ENOSPC", "disk-sqlite-full", "sqlite-full", "sqlite-EIO"]


def build(fault: Fault, monkeypatch: pytest.MonkeyPatch, **options: Any) -> tuple[Any, Switch]:
    opts = dict(fault.options)
    driver = opts.pop("_driver", None)
    cursor = None
    if driver is not None:
        made = driver()
        cursor = made.pop("_cursor")
        opts.update(made)
    cache = make(fault.backend, **opts, **options)
    if cursor is not None:
        cache._r22_cursor = cursor  # the test's handle on the driver class it gave the cache
    switch = Switch()
    fault.arm(cache, monkeypatch, switch)
    return cache, switch


def leftovers(name: str, cache: Any) -> list[str]:
    """Files or rows that no live entry accounts for."""
    if name == "json":
        from oxicache.backends.jsonfile import ENTRY_NAME

        found = [n for n in os.listdir(cache.path) if not ENTRY_NAME.fullmatch(n) and n != "index"]
        index = os.path.join(cache.path, "index")  # the per-function index: one marker per entry file
        for folder in os.listdir(index) if os.path.isdir(index) else []:
            for marker in os.listdir(os.path.join(index, folder)) if folder != "complete" else []:
                key, ino, size, mtime = marker.split(".")[:4]
                try:
                    st = os.stat(os.path.join(cache.path, key + ".json"))
                except FileNotFoundError:
                    found.append(f"index/{folder}/{marker}")
                    continue
                if (st.st_ino, st.st_size, st.st_mtime_ns) != (int(ino), int(size), int(mtime)):
                    found.append(f"index/{folder}/{marker}")
        return found
    if name == "disk":
        on_disk = {os.path.relpath(os.path.join(d, n), cache.path) for d, _, ns in os.walk(cache.path)
                   for n in ns if n.endswith(".val")}
        with sqlite3.connect(os.path.join(cache.path, "cache.db")) as con:
            named = {r[0] for r in con.execute("SELECT filename FROM Cache WHERE filename IS NOT NULL")}
        return sorted(on_disk - named)
    return []


def memoized(cache: Any, size: int) -> tuple[Any, list[int]]:
    runs: list[int] = []

    @cache.memoize(name="f")
    def f(x: int) -> bytes:
        runs.append(x)
        return value(x, len(runs), size)

    return f, runs


def value(x: int, run: int, size: int) -> bytes:
    """The n-th run's result; later runs are larger, so a store over an old entry needs new space."""
    return expected_value((x, run), size * run)


@pytest.mark.parametrize("fault", FAULTS, ids=str)
def test_a_failed_store_warns_keeps_the_old_entry_and_leaves_nothing(fault: Fault, monkeypatch: pytest.MonkeyPatch) -> None:
    cache, switch = build(fault, monkeypatch)
    f, runs = memoized(cache, fault.size)
    old = f(1)
    switch.on = True
    try:
        with pytest.warns(CacheWarning, match=fault.match) as caught:
            with oxicache.refresh():
                assert guarded(lambda: f(1), "the refresh") == value(1, 2, fault.size)  # computed, returned
            assert guarded(lambda: f(2), "a new key") == value(2, 3, fault.size)
        assert len(caught) == 2, [str(w.message) for w in caught]
        assert cache.stats()["backend_errors"] == 2
    finally:
        switch.on = False
    assert guarded(lambda: cache.get(f, x=1), "a read") == old  # the previous entry, intact
    assert guarded(lambda: cache.get(f, x=2), "a read") is ...  # no visible entry
    assert leftovers(fault.backend, cache) == []
    assert guarded(lambda: f(2), "a store after the fault") == value(2, 4, fault.size)  # stores again
    assert f(2) == value(2, 4, fault.size) and len(runs) == 4
    assert len(cache) == 2


@pytest.mark.parametrize("fault", [BY_ID[i] for i in POLICY_FAULTS], ids=str)
def test_raise_policy_wraps_the_original(fault: Fault, monkeypatch: pytest.MonkeyPatch) -> None:
    cache, switch = build(fault, monkeypatch, on_backend_error="raise")
    f, _ = memoized(cache, fault.size)
    old = f(1)
    switch.on = True
    try:
        with pytest.raises(BackendError) as caught, oxicache.refresh():
            guarded(lambda: f(1), "the refresh")
    finally:
        switch.on = False
    cause = caught.value.__cause__
    assert isinstance(caught.value, oxicache.CacheError)
    assert isinstance(cause, fault.cause), repr(cause)
    assert re.search(fault.match, str(cause)), str(cause)
    if fault.code is not None:
        assert cause.errno == fault.code  # type: ignore[union-attr]
    assert cache.stats()["backend_errors"] == 1
    assert guarded(lambda: cache.get(f, x=1)) == old
    assert leftovers(fault.backend, cache) == []


@pytest.mark.parametrize("fault", [BY_ID[i] for i in POLICY_FAULTS], ids=str)
def test_ignore_policy_is_silent(fault: Fault, monkeypatch: pytest.MonkeyPatch) -> None:
    cache, switch = build(fault, monkeypatch, on_backend_error="ignore")
    f, _ = memoized(cache, fault.size)
    old = f(1)
    switch.on = True
    try:  # filterwarnings=error: any warning fails the test
        with oxicache.refresh():
            assert guarded(lambda: f(1)) == value(1, 2, fault.size)
    finally:
        switch.on = False
    assert cache.stats()["backend_errors"] == 1
    assert guarded(lambda: cache.get(f, x=1)) == old
    assert leftovers(fault.backend, cache) == []


@pytest.mark.parametrize("fault", FAULTS, ids=str)
def test_clear_works_while_writes_fail(fault: Fault, monkeypatch: pytest.MonkeyPatch) -> None:
    cache, switch = build(fault, monkeypatch)
    f, _ = memoized(cache, fault.size)
    f(1)
    f(2)
    switch.on = True
    try:
        guarded(cache.clear, "clear()")
        assert guarded(lambda: len(cache)) == 0
    finally:
        switch.on = False
    assert leftovers(fault.backend, cache) == []
    f(3)
    assert len(cache) == 1


# ---- DatabaseCache on SQLite: clear() on a file system that is really full ----------------------------


def _full_file_system_worker(folder: str) -> None:
    """Runs in a private 8 MiB tmpfs mounted at ``folder`` (test_clear_works_on_a_really_full_file_system):
    per case, fills it with entries until a store fails, takes the last free bytes with another file,
    clears, then makes room and stores; prints what it saw as one JSON object."""
    import json

    from oxicache import DatabaseCache

    seen: dict[str, Any] = {}
    for case in ("cache_clear", "clear"):
        for name in os.listdir(folder):
            os.remove(os.path.join(folder, name))
        subprocess.run(["mount", "-o", "remount,size=8m", folder], check=True)
        path = os.path.join(folder, "cache.db")
        cache = DatabaseCache(database=path, on_backend_error="raise")
        reserve = os.path.exists(f"{path}-reserve")

        def make(name: str) -> Any:
            @cache.memoize(name=name)
            def fn(x: int) -> bytes:
                return expected_value((name, x), 20_000)

            return fn

        f, g = make("f"), make("g")
        stored, full = 0, ""
        try:
            while stored < 10_000:  # the file system holds a few hundred
                (f if stored % 2 else g)(stored)
                stored += 1
        except BackendError as err:
            full = str(err.__cause__)
        fd = os.open(os.path.join(folder, "filler"), os.O_WRONLY | os.O_CREAT)  # the last free bytes
        try:
            for size in (65536, 4096, 512, 1):
                with contextlib.suppress(OSError):
                    while os.write(fd, b"\0" * size):
                        pass
        finally:
            os.close(fd)
        try:
            cache.set("h", output=1, x=1)
            still_stores = True
        except sqlite3.OperationalError:
            still_stores = False
        error = None
        try:
            if case == "clear":
                cache.clear()
            else:
                g.cache_clear()
        except Exception as err:  # noqa: BLE001 - reported to the test
            error = f"{type(err).__name__}: {err}"
        with contextlib.closing(sqlite3.connect(path)) as con:
            integrity = con.execute("PRAGMA integrity_check").fetchall()
            tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        left = {"f": f.cache_info().currsize, "g": g.cache_info().currsize}
        verify = cache.verify()
        os.remove(os.path.join(folder, "filler"))  # space again: the file system grows to 16 MiB
        subprocess.run(["mount", "-o", "remount,size=16m", folder], check=True)
        f(10**6)
        seen[case] = {
            "reserve": reserve, "stored": stored, "full": full, "still_stores": still_stores, "error": error,
            "integrity": integrity, "tables": tables, "left": left, "verify": verify,
            "after": [cache.get(f, x=10**6) == expected_value(("f", 10**6), 20_000), f.cache_info().currsize],
            "reserve_after": os.path.getsize(f"{path}-reserve") if os.path.exists(f"{path}-reserve") else None,
        }
        cache.close()
    print(json.dumps(seen))


def _private_tmpfs(folder: str, size: str, command: list[str]) -> subprocess.CompletedProcess[str]:
    """``command`` in its own user and mount namespace, with a tmpfs of ``size`` mounted at ``folder``
    (no privileges needed where unprivileged user namespaces are allowed; the mount is gone with it)."""
    script = 'mount -t tmpfs -o "size=$1" oxicache-r22 "$2" && shift 2 && exec "$@"'
    return subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script, "sh", size, folder,
                           *command], capture_output=True, text=True, timeout=120)


def _on_a_full_tmpfs(tmp_path: Any, worker: str) -> dict[str, Any]:
    """What ``worker`` (a function of this module) prints as JSON, run in a child on an 8 MiB private
    tmpfs at ``tmp_path/full``; skips where no such mount can be made."""
    folder = tmp_path / "full"
    folder.mkdir()
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare(1) to mount a small tmpfs")
    probe = _private_tmpfs(str(folder), "1m", ["true"])
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a private tmpfs here (user namespaces): {probe.stderr.strip()}")
    here = os.path.dirname(os.path.abspath(__file__))
    code = (f"import sys; sys.path[:0] = {[here, os.path.dirname(here)]!r}; "
            f"from test_r22_io_faults import {worker} as w; w(sys.argv[1])")
    run = _private_tmpfs(str(folder), "8m", [sys.executable, "-c", code, str(folder)])
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.timeout(300)
def test_clear_works_on_a_really_full_file_system(tmp_path: Any) -> None:
    """A SQLite DatabaseCache on a file system with no free byte (a real tmpfs, filled by the cache's own
    stores, then by another file): ``cache_clear()`` of one function and ``clear()`` work, the table and
    the file stay sound, and the cache stores again once there is space. ``max_page_count`` (the
    sqlite-full fault above) cannot show this: it caps the database file, not the -wal file a DELETE
    writes to, so there clearing always had room."""
    seen = _on_a_full_tmpfs(tmp_path, "_full_file_system_worker")
    for case, got in seen.items():
        assert got["reserve"], case  # the cache holds its reserve from the start
        assert got["stored"] > 30 and "database or disk is full" in got["full"], (case, got)
        assert not got["still_stores"], (case, got)  # really full: no store fits
        assert got["error"] is None, (case, got["error"])
        assert got["integrity"] == [["ok"]] and "oxicache_entries" in got["tables"], (case, got)
        assert got["verify"] == [], (case, got["verify"])
        assert got["after"] == [True, 1 if case == "clear" else got["left"]["f"] + 1], (case, got)
        assert got["reserve_after"] == 1 << 20, (case, got)  # remade once there was room
    assert seen["cache_clear"]["left"]["g"] == 0 and seen["cache_clear"]["left"]["f"] > 15, seen["cache_clear"]
    assert seen["clear"]["left"] == {"f": 0, "g": 0}, seen["clear"]


# ---- DiskCache: clearing on a file system that is really full -----------------------------------------


def _full_disk_cache_worker(folder: str) -> None:
    """Runs in a private 8 MiB tmpfs mounted at ``folder`` (test_disk_cache_clears_on_a_really_full_file_system):
    per case, stores entries of two functions (``f``: 100 KB values, which diskcache keeps in value files;
    ``g``: 3 KB values, kept in cache.db), takes every free byte with another file, then runs the case
    (``g.cache_clear()``, ``clear()``, ``popall()``); then makes room and stores; prints what it saw as one
    JSON object."""
    import json

    from oxicache import DiskCache

    seen: dict[str, Any] = {}
    for case in ("cache_clear", "clear", "popall"):
        for name in os.listdir(folder):
            path = os.path.join(folder, name)
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
        subprocess.run(["mount", "-o", "remount,size=8m", folder], check=True)
        db = os.path.join(folder, "cache.db")
        cache = DiskCache(folder, on_backend_error="raise")
        reserve = os.path.getsize(f"{db}-reserve") if os.path.exists(f"{db}-reserve") else None
        sizes = {"f": 100_000, "g": 3_000}

        def make(name: str) -> Any:
            @cache.memoize(name=name)
            def fn(x: int) -> bytes:
                return expected_value((name, x), sizes[name])

            return fn

        f, g = make("f"), make("g")
        for x in range(24):
            f(x)
            g(x)
            g(100 + x)
        files = sum(n.endswith(".val") for _, _, ns in os.walk(folder) for n in ns)
        fd = os.open(os.path.join(folder, "filler"), os.O_WRONLY | os.O_CREAT)  # every free byte
        try:
            for size in (65536, 4096, 512, 1):
                with contextlib.suppress(OSError):
                    while os.write(fd, b"\0" * size):
                        pass
        finally:
            os.close(fd)
        still_stores = []
        for size in (10, 100_000):  # a row in cache.db; a value file (its folders are removed with it)
            try:
                cache.set("h", output=expected_value("h", size), x=size)
                still_stores.append(True)
            except (sqlite3.OperationalError, OSError):
                still_stores.append(False)
        error, popped = None, None
        try:
            if case == "cache_clear":
                g.cache_clear()
            elif case == "clear":
                cache.clear()
            else:
                popped = sorted(e.output == expected_value((e.func, e.inputs["x"]), sizes[e.func])
                                for e in cache.popall())
        except Exception as err:  # noqa: BLE001 - reported to the test
            error = f"{type(err).__name__}: {err}"
        with contextlib.closing(sqlite3.connect(db)) as con:
            integrity = con.execute("PRAGMA integrity_check").fetchall()
        left = {"f": f.cache_info().currsize, "g": g.cache_info().currsize}
        kept = all(cache.get(f, x=x) == expected_value(("f", x), sizes["f"]) for x in range(left["f"]))
        verify = cache.verify()
        files_left = sum(n.endswith(".val") for _, _, ns in os.walk(folder) for n in ns)
        os.remove(os.path.join(folder, "filler"))  # space again: the file system grows to 16 MiB
        subprocess.run(["mount", "-o", "remount,size=16m", folder], check=True)
        f(10**6)
        g(10**6)
        seen[case] = {
            "reserve": reserve, "files": files, "still_stores": still_stores, "error": error, "popped": popped,
            "integrity": integrity, "left": left, "kept": kept, "verify": verify, "files_left": files_left,
            "after": [cache.get(f, x=10**6) == expected_value(("f", 10**6), sizes["f"]),
                      cache.get(g, x=10**6) == expected_value(("g", 10**6), sizes["g"]),
                      f.cache_info().currsize, g.cache_info().currsize],
            "verify_after": cache.verify(),
            "reserve_after": os.path.getsize(f"{db}-reserve") if os.path.exists(f"{db}-reserve") else None,
        }
        cache.close()
    print(json.dumps(seen))


@pytest.mark.timeout(300)
def test_disk_cache_clears_on_a_really_full_file_system(tmp_path: Any) -> None:
    """A DiskCache on a file system with no free byte (a real tmpfs, filled by another file after the cache
    stored entries, some of them in value files): a memoized function's ``cache_clear()``, ``clear()`` and
    ``popall()`` work, the other entries and the folder stay sound (``verify()``, SQLite's integrity check,
    no value file without its row), and the cache stores again once there is space. Without help a
    DELETE there fails: it needs room in the -wal file (the disk-sqlite-full fault above caps cache.db
    only, so there clearing always had room)."""
    seen = _on_a_full_tmpfs(tmp_path, "_full_disk_cache_worker")
    for case, got in seen.items():
        assert got["reserve"] == 1 << 20, (case, got)  # the cache holds its reserve from the start
        assert got["files"] == 24 and got["still_stores"] == [False, False], (case, got)  # really full
        assert got["error"] is None, (case, got["error"])
        assert got["integrity"] == [["ok"]], (case, got)
        assert got["verify"] == [] and got["verify_after"] == [], (case, got)
        assert got["files_left"] == got["left"]["f"], (case, got)  # no value file without its row
        assert got["after"] == [True, True, got["left"]["f"] + 1, got["left"]["g"] + 1], (case, got)
        assert got["reserve_after"] == 1 << 20, (case, got)  # remade once there was room
    assert seen["cache_clear"]["left"] == {"f": 24, "g": 0} and seen["cache_clear"]["kept"], seen["cache_clear"]
    assert seen["clear"]["left"] == {"f": 0, "g": 0}, seen["clear"]
    assert seen["popall"]["left"] == {"f": 0, "g": 0} and seen["popall"]["popped"] == [True] * 72, seen["popall"]
