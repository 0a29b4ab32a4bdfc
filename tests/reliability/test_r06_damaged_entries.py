"""R6: a damaged entry is a miss, not a crash; a damaged store file is one clear error at open.

Entry damage, per backend, done to the real stored bytes after a memoized call stored the entry:

- JsonCache: the entry file truncated to 0 bytes, truncated halfway, replaced by random bytes, valid JSON
  with the wrong schema (three shapes), invalid UTF-8, a folder in its place, and ``chmod 000`` (as root,
  where permission bits do not apply, that case runs in a child that drops to ``nobody``);
- DatabaseCache (SQLite, PostgreSQL, MySQL): garbage in the row's columns, written with SQL (output,
  inputs, metadata, func; PostgreSQL's json columns only accept valid JSON, so there the garbage is JSON
  of the wrong shape);
- DiskCache: garbage in diskcache's ``Cache`` row (the value blob, its storage mode, its type), and in
  the value file of a large entry (random bytes, truncated).

Pass: the decorated call returns a freshly computed, correct value (the independent oracle) with exactly
one ``CacheWarning``; the next call is a hit with no warning (the entry was overwritten with a good one)
and ``verify()`` is clean. The matrix's ``strict=True`` is oxicache's ``on_backend_error="raise"``: the
call raises ``ValueDecodingError`` and computes nothing.

Store damage: the SQLite header flipped at offset 52 (diskcache's own integrity test), a bad magic
string, a bad page size, a file cut inside the header, for DiskCache's ``cache.db`` and a DatabaseCache
SQLite file. Opening must raise ``oxicache.CorruptStoreError`` (a ``CacheError``) naming the file and the
fix, at construction, in a child process (so a segfault or a hang would show as such, not kill pytest).
oxicache has no ``auto_repair``: the message says to delete the file.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import random
import shutil
import sqlite3
import warnings
from typing import Any, Callable

import pytest
from backends import make
from reliability_support import expected_value, watchdog
from store_support import integrity_problems, run_unprivileged, shared_tempdir

import oxicache
from oxicache import KEY_SCHEME_VERSION, CacheWarning, CorruptStoreError, ValueDecodingError
from oxicache.codec import CODEC, encode_binary

SMALL, LARGE = 100, 64 * 1024  # LARGE is above diskcache's 32 KB inline limit: a value file


def memoized(cache: Any, size: int = SMALL) -> tuple[Callable[[str], bytes], list[str]]:
    calls: list[str] = []

    @cache.memoize(name="r06.f")
    def f(x: str) -> bytes:
        calls.append(x)
        return expected_value(x, size)

    return f, calls


def recovers(cache: Any, f: Callable[[str], bytes], calls: list[str], key: str, size: int = SMALL) -> None:
    """The damaged entry of ``key``: one warned miss with the right value, then a quiet hit."""
    before = len(calls)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert f(key) == expected_value(key, size)
    warned = [str(w.message) for w in caught if issubclass(w.category, CacheWarning)]
    assert len(warned) == 1 and len(caught) == 1, [str(w.message) for w in caught]
    assert len(calls) == before + 1, "the damaged entry must be recomputed"
    assert f(key) == expected_value(key, size)  # filterwarnings=error: a second warning fails here
    assert len(calls) == before + 1, "the recomputed value must have been stored over the damaged entry"
    assert integrity_problems(cache) == []


def strict_raises(cache_raise: Any, key: str, damage: Callable[[], None]) -> None:
    f, calls = memoized(cache_raise)
    f(key)
    damage()
    with pytest.raises(ValueDecodingError):
        f(key)
    assert calls == [key], "under on_backend_error='raise' the damaged entry raises before computing"


# ---- JsonCache ---------------------------------------------------------------------------------------


def _json_file(cache: Any, f: Any, key: str) -> str:
    return os.path.join(cache.path, f"{f.cache_key(key):032x}.json")


def _json_damages(rng: random.Random) -> dict[str, Callable[[str], None]]:
    def write(data: bytes) -> Callable[[str], None]:
        def do(path: str) -> None:
            with open(path, "wb") as out:
                out.write(data)
        return do

    def halfway(path: str) -> None:
        with open(path, "rb") as src:
            data = src.read()
        with open(path, "wb") as out:
            out.write(data[: len(data) // 2])

    def bad_utf8(path: str) -> None:
        with open(path, "rb") as src:
            data = src.read()
        cut = data.index(b'"func"')
        with open(path, "wb") as out:
            out.write(data[:cut] + b'"\xff\xfe\x80": 1, ' + data[cut:])

    def folder(path: str) -> None:
        os.unlink(path)
        os.mkdir(path)

    return {
        "empty": write(b""),
        "halfway": halfway,
        "random_bytes": write(rng.randbytes(300)),
        "wrong_schema_object": write(b'{"hello": "world"}\n'),
        "wrong_schema_array": write(b"[1, 2, 3]\n"),
        "wrong_schema_types": write(b'{"scheme": %d, "func": 1, "inputs": [], "metadata": "x"}\n' % KEY_SCHEME_VERSION),
        # inputs whose names are not all str: no call's inputs
        "inputs_not_names": write(b'{"scheme": %d, "func": "f", "inputs": {"$dict": [[1, 2]]}, "metadata": {}}\n'
                                  % KEY_SCHEME_VERSION),
        "invalid_utf8": bad_utf8,
        "folder": folder,
    }


@pytest.mark.parametrize("damage", sorted(_json_damages(random.Random(0))))
def test_json_damaged_entry_is_a_warned_miss(damage: str, seed: int) -> None:
    cache = make("json")
    f, calls = memoized(cache)
    f("a")
    f("b")
    _json_damages(random.Random(seed))[damage](_json_file(cache, f, "a"))
    recovers(cache, f, calls, "a")
    assert f("b") == expected_value("b", SMALL) and calls.count("b") == 1, "an undamaged neighbour is untouched"


def _chmod_000_case(folder: str) -> list[str]:
    """As an unprivileged user: store, chmod 000 the entry file, call again (a warned miss); the store
    replaces the unreadable file (rename over it needs only the folder's permission)."""
    cache = oxicache.JsonCache(folder)
    f, calls = memoized(cache)
    f("a")
    os.chmod(_json_file(cache, f, "a"), 0o000)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = f("a")
    again = f("a")
    return [str(w.message) for w in caught] + [f"value ok: {value == again == expected_value('a', SMALL)}",
                                                f"calls: {len(calls)}"]


def test_json_unreadable_entry_file_is_a_warned_miss() -> None:
    folder = shared_tempdir()
    try:
        if os.geteuid() == 0:
            out = run_unprivileged(_warm_json, _chmod_000_case, os.path.join(folder, "j"))
        else:
            out = _chmod_000_case(os.path.join(folder, "j"))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert out[-2:] == ["value ok: True", "calls: 2"], out
    assert len(out) == 3 and "Permission denied" in out[0], out


def _warm_json() -> None:
    import tempfile

    folder = tempfile.mkdtemp()
    oxicache.JsonCache(folder).set("warm", output=1, x=1)
    shutil.rmtree(folder)


@pytest.mark.parametrize("damage", ["halfway", "inputs_not_names"])
def test_json_strict_raises(tmp_path: Any, damage: str) -> None:
    cache = oxicache.JsonCache(tmp_path, on_backend_error="raise")
    f, _ = memoized(cache)
    strict_raises(cache, "a", lambda: _json_damages(random.Random(0))[damage](_json_file(cache, f, "a")))


# ---- DatabaseCache -------------------------------------------------------------------------------------


def _db_damages(dialect: str) -> dict[str, dict[str, str]]:
    pg = dialect == "postgresql"  # json columns: only valid JSON gets in
    return {
        "output_garbage": {"output": '{"$bytes": 12}' if pg else '{"$bytes": "AAE'},
        "inputs_garbage": {"inputs": "[1, 2]" if pg else "\x00not json at all"},
        "metadata_wrong_type": {"metadata": '"a string"'},
        "func_of_another_call": {"func": "r06.someone_else"},
        "output_unknown_tag": {"output": '{"$no_such_tag": 1}'},
    }


@pytest.mark.parametrize("damage", sorted(_db_damages("sqlite")))
@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "mysql"])
def test_database_damaged_row_is_a_warned_miss(backend: str, damage: str) -> None:
    import sqlalchemy as sa

    cache = make(backend)
    f, calls = memoized(cache)
    f("a")
    f("b")
    columns = _db_damages(backend)[damage]
    t = cache.table
    with cache.engine.begin() as conn:
        values = {name: (sa.cast(sa.literal(text), t.c[name].type) if backend == "postgresql" and name != "func"
                         else text) for name, text in columns.items()}
        done = conn.execute(sa.update(t).where(t.c.key == f"{f.cache_key('a'):032x}").values(**values))
        assert done.rowcount == 1
    recovers(cache, f, calls, "a")
    assert f("b") == expected_value("b", SMALL) and calls.count("b") == 1
    cache.close()


# A column that is not JSON, and inputs that decode to a dict whose names are not all str (no call's
# inputs): both are damage, a ValueDecodingError under "raise", not some other error of the decoding.
@pytest.mark.parametrize("update", ["SET output = 'garbage'", """SET inputs = '{"$dict":[[1,2]]}'"""])
def test_database_strict_raises(tmp_path: Any, update: str) -> None:
    cache = oxicache.DatabaseCache(database=str(tmp_path / "c.db"), on_backend_error="raise")

    def damage() -> None:
        con = sqlite3.connect(str(tmp_path / "c.db"))
        with con:
            con.execute(f"UPDATE oxicache_entries {update}")
        con.close()

    strict_raises(cache, "a", damage)
    cache.close()


# ---- DiskCache -----------------------------------------------------------------------------------------


def _disk_sql(cache: Any, sql: str, *args: Any) -> list[Any]:
    con = sqlite3.connect(os.path.join(cache.path, "cache.db"), timeout=30)
    try:
        with con:
            return con.execute(sql, args).fetchall()
    finally:
        con.close()


def _disk_row_damages(rng: random.Random) -> dict[str, Callable[[Any], None]]:
    def sql(statement: str, *args: Any) -> Callable[[Any], None]:
        return lambda cache: _disk_sql(cache, statement, *args)

    def text_mode_bad_utf8(cache: Any) -> None:  # a "text file" value holding bytes that are not UTF-8
        name = "ab/cd/0123456789abcdef0123456789ab.val"
        os.makedirs(os.path.join(cache.path, "ab", "cd"), exist_ok=True)
        with open(os.path.join(cache.path, name), "wb") as out:
            out.write(b"\xff\xfe\x00garbage")
        _disk_sql(cache, "UPDATE Cache SET mode = 3, filename = ?, value = NULL", name)

    return {
        "value_random_bytes": sql("UPDATE Cache SET value = ?", rng.randbytes(200)),
        "value_truncated": sql("UPDATE Cache SET value = substr(value, 1, length(value) / 2)"),
        "value_is_text": sql("UPDATE Cache SET value = 'hello'"),
        "value_is_int": sql("UPDATE Cache SET value = 42"),
        "mode_unknown": sql("UPDATE Cache SET mode = 99"),
        "mode_file_without_file": sql("UPDATE Cache SET mode = 2, filename = NULL"),
        "text_mode_bad_utf8": text_mode_bad_utf8,
    }


@pytest.mark.parametrize("damage", sorted(_disk_row_damages(random.Random(0))))
def test_disk_damaged_row_is_a_warned_miss(damage: str, seed: int) -> None:
    cache = make("disk")
    f, calls = memoized(cache)
    f("a")
    _disk_row_damages(random.Random(seed))[damage](cache)
    recovers(cache, f, calls, "a")


@pytest.mark.parametrize("damage", ["random_bytes", "truncated"])
def test_disk_damaged_value_file_is_a_warned_miss(damage: str, seed: int) -> None:
    cache = make("disk")
    f, calls = memoized(cache, LARGE)
    f("a")
    (name,) = [r[0] for r in _disk_sql(cache, "SELECT filename FROM Cache WHERE filename IS NOT NULL")]
    path = os.path.join(cache.path, name)
    size = os.path.getsize(path)
    with open(path, "r+b") as out:
        if damage == "truncated":
            out.truncate(size // 2)
        else:
            out.write(random.Random(seed).randbytes(size))
    recovers(cache, f, calls, "a", LARGE)


# Not the codec's bytes; and a sound record whose inputs' names are not all str (no call's inputs).
_NOT_NAMES = CODEC + encode_binary({"f": "f", "i": {1: 2}, "m": {}, "c": 0.0, "s": KEY_SCHEME_VERSION})


@pytest.mark.parametrize("value", [b"\x00\xff\x00\xff", _NOT_NAMES], ids=["garbage", "inputs_not_names"])
def test_disk_strict_raises(tmp_path: Any, value: bytes) -> None:
    cache = oxicache.DiskCache(tmp_path, on_backend_error="raise")
    strict_raises(cache, "a", lambda: _disk_sql(cache, "UPDATE Cache SET value = ?", value))
    cache.close()


# ---- a damaged store file -------------------------------------------------------------------------------


def _flip(offset: int, data: bytes) -> Callable[[str], None]:
    def do(path: str) -> None:
        with open(path, "r+b") as out:
            out.seek(offset)
            out.write(data)
    return do


def _cut(path: str) -> None:
    with open(path, "r+b") as out:
        out.truncate(60)


HEADER_DAMAGE = {
    "offset_52": _flip(52, b"\x00\x01"),  # diskcache's test_integrity_check
    "offset_52_all_ones": _flip(52, b"\xff\xff\xff\xff"),
    "magic": _flip(0, b"SQLite format 2\x00"),
    "page_size": _flip(16, b"\x03\x00"),
    "cut_in_header": _cut,
}


def _open_damaged(folder: str) -> list[tuple[str, str, str, str]]:
    """In a child: build each store, damage its file, reopen; (case, exception type, message, db path)."""
    out = []
    for backend in ("disk", "sqlite"):
        for case, damage in HEADER_DAMAGE.items():
            where = os.path.join(folder, f"{backend}-{case}")
            if backend == "disk":
                cache = oxicache.DiskCache(where)
                db = os.path.join(where, "cache.db")
                reopen: Callable[[], Any] = lambda where=where: oxicache.DiskCache(where)  # noqa: E731
            else:
                db = os.path.join(where, "c.db")
                cache = oxicache.DatabaseCache(database=db)
                reopen = lambda db=db: oxicache.DatabaseCache(database=db)  # noqa: E731
            for i in range(200):
                cache.set("r06.g", output=expected_value(i, 50), x=i)
            cache.close()
            # Dropped, not only closed: the header is read when the first cache of the process opens the
            # file; while one lives, a read (open()/close()) would drop SQLite's locks (hold_sqlite_file)
            del cache
            gc.collect()
            damage(db)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("error")
                    reopen()
                out.append((f"{backend}/{case}", "opened", "", db))
            except Exception as err:  # noqa: BLE001 - reported to the parent
                out.append((f"{backend}/{case}", type(err).__name__, str(err), db))
    return out


def _open_damaged_child(conn: Any, folder: str) -> None:
    conn.send(_open_damaged(folder))


def test_damaged_sqlite_header_is_one_clear_error_at_open(tmp_path: Any) -> None:
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_open_damaged_child, args=(child, str(tmp_path)), daemon=True)
    with watchdog(120, "R6 opening damaged SQLite files"):
        proc.start()
        child.close()
        try:
            got = parent.recv() if parent.poll(110) else None
        except EOFError:  # the child died
            got = None
        proc.join(10)
    assert got is not None, f"the child hung or died (exit code {proc.exitcode}; -11 is a segfault)"
    assert issubclass(CorruptStoreError, oxicache.CacheError)
    for case, kind, message, db in got:
        assert kind == "CorruptStoreError", (case, kind, message)
        assert db in message and "delete" in message, (case, message)
