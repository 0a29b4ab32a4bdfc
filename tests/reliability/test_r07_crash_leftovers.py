"""R7: crash leftovers and stale "leases": what a crashed process leaves in a store never blocks or fools the next one.

Pre-seeded in real stores, then the store is opened and used:

- stray temporary files: JsonCache's ``.<key hex>.<pid>.<random>.tmp`` and diskcache's value files no
  row refers to (``<2 hex>/<2 hex>/<28 hex>.val``, written before the row that would have referred to
  them was committed) plus the empty value folders a crash leaves. Old ones (past ``STALE_TEMP_AGE``) are
  swept on open; young ones may be a live writer's in another process and are kept; none is ever read as
  an entry.
- an old ``-wal`` file (DiskCache's ``cache.db``, DatabaseCache's SQLite file): one left by a process that
  died with committed but un-checkpointed transactions (its entries must be there), and one that is
  garbage (ignored; the store opens with its own entries).
- an entry written under another key-scheme version (``scheme`` in JsonCache files and DatabaseCache rows,
  ``"s"`` in DiskCache records; absent in DiskCache records written before it existed, which were all
  scheme 1), both under the current key of a call and under a key the current scheme no longer computes.
  It is a miss (no warning: it is not damage, only not this version's), is not listed, counted (except
  by DiskCache's ``len()``, diskcache's item count) or reported by ``verify()``, and the next store
  overwrites it.

Adapted: by default oxicache takes no cross-process lock (two processes missing one key may both compute
it, R4; SQLite's own locks are released by the kernel when a process dies). So the row's "dead lease"
becomes lock-like files owned by a dead PID in the store's folder (``*.lock``, ``*.lease``, a ``.pid``
file), which must not block a call (under a watchdog) and are not the cache's files (left alone, not
counted). Under ``shared_flight=True`` a lease is a lock that goes with its holder, and the lock file a
killed leader leaves (``leases/``) neither blocks the next leader nor stays: tests/test_shared_flight_backends.py
(``test_a_killed_leader_is_taken_over_at_once``, ``test_lock_files_do_not_pile_up``,
``test_a_lock_file_no_one_holds_is_taken_and_removed``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import warnings
from typing import Any, Callable

import pytest
from backends import PERSISTENT, SPECS, make
from reliability_support import expected_value, watchdog
from store_support import integrity_problems, open_spec, sqlite_file

import oxicache
from oxicache import KEY_SCHEME_VERSION
from oxicache.backends._fs import STALE_TEMP_AGE

OLD = time.time() - STALE_TEMP_AGE - 3600


def memoized(cache: Any) -> tuple[Callable[[str], bytes], list[str]]:
    calls: list[str] = []

    @cache.memoize(name="r07.f")
    def f(x: str) -> bytes:
        calls.append(x)
        return expected_value(x, 64)

    return f, calls


def age(path: str) -> None:
    os.utime(path, (OLD, OLD))


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


# ---- stray temporary files ----------------------------------------------------------------------------


def test_json_stray_temp_files_are_ignored_then_swept(tmp_path: Any) -> None:
    cache = oxicache.JsonCache(tmp_path)
    f, calls = memoized(cache)
    f("a")
    hexkey = f"{f.cache_key('a'):032x}"
    stale = tmp_path / f".{hexkey}.{dead_pid()}.0a1b2c3d4e5f.tmp"
    young = tmp_path / f".{'b' * 32}.{dead_pid()}.0a1b2c3d4e60.tmp"
    stale.write_bytes(b'{"key": "' + hexkey.encode() + b'", "func": "r07.f", "inp')  # a write cut short
    young.write_bytes(b"{")
    age(str(stale))
    cache = oxicache.JsonCache(tmp_path)  # the next open
    assert not stale.exists(), "a crashed writer's old temporary file is swept on open"
    assert young.exists(), "a young temporary file may be a live writer's: kept"
    f, calls = memoized(cache)
    assert f("a") == expected_value("a", 64) and calls == [] and len(cache) == 1
    assert integrity_problems(cache) == []


def test_disk_stray_value_files_are_ignored_then_swept(tmp_path: Any) -> None:
    cache = oxicache.DiskCache(tmp_path)
    f, calls = memoized(cache)
    f("a")
    cache.set("r07.big", output=b"x" * 100_000, x=1)  # a real value file, referred to by its row
    cache.close()
    real = [os.path.join(d, n) for d, _, files in os.walk(tmp_path) for n in files if n.endswith(".val")]
    assert len(real) == 1
    age(real[0])
    orphan = tmp_path / "ab" / "cd" / ("0" * 28 + ".val")
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"\xc1m half a value")
    empty = tmp_path / "ef" / "01"
    empty.mkdir(parents=True)
    young = tmp_path / "12" / "34" / ("1" * 28 + ".val")
    young.parent.mkdir(parents=True)
    young.write_bytes(b"being written by a live process")
    not_ours = tmp_path / "notes.val"
    not_ours.write_bytes(b"someone else's file")
    for path in (orphan, orphan.parent, orphan.parent.parent, empty, empty.parent):
        age(str(path))
    cache = oxicache.DiskCache(tmp_path)  # the next open
    assert not orphan.exists() and not (tmp_path / "ab").exists(), "an old unreferenced value file is swept"
    assert not (tmp_path / "ef").exists(), "empty value folders are swept"
    assert young.exists(), "a young value file may be a store in progress: kept"
    assert not_ours.exists(), "files that are not diskcache's value files are left alone"
    assert os.path.exists(real[0]), "a value file a row refers to is never swept, however old"
    f, calls = memoized(cache)
    assert f("a") == expected_value("a", 64) and calls == []
    assert cache.get("r07.big", x=1) == b"x" * 100_000
    young.unlink()
    shutil.rmtree(tmp_path / "12")
    assert integrity_problems(cache) == []
    cache.close()


# ---- an old -wal file ----------------------------------------------------------------------------------


def _sqlite_store(kind: str, folder: str) -> tuple[Any, str, Callable[[], Any]]:
    if kind == "disk":
        cache = oxicache.DiskCache(folder)
        return cache, os.path.join(folder, "cache.db"), lambda: oxicache.DiskCache(folder)
    db = os.path.join(folder, "c.db")
    cache = oxicache.DatabaseCache(database=db)
    return cache, db, lambda: oxicache.DatabaseCache(database=db)


@pytest.mark.parametrize("kind", ["disk", "sqlite"])
def test_a_crash_left_wal_with_committed_entries_is_recovered(kind: str, tmp_path: Any) -> None:
    live, db, _ = _sqlite_store(kind, str(tmp_path / "live"))
    f, _ = memoized(live)
    for k in "abcdef":
        f(k)
    wal = db + "-wal"
    assert os.path.getsize(wal) > 0, "the entries are still in the WAL (not checkpointed)"
    # what a crash leaves: the database, its -wal and -shm, as they are while the writer is still running
    copy = tmp_path / "crashed"
    copy.mkdir()
    names = [os.path.basename(db) + s for s in ("", "-wal", "-shm") if os.path.exists(db + s)]
    for name in names:
        shutil.copy2(os.path.join(os.path.dirname(db), name), copy / name)
    live.close()
    if kind == "disk":
        reopened = oxicache.DiskCache(str(copy))
    else:
        reopened = oxicache.DatabaseCache(database=str(copy / "c.db"))
    f, calls = memoized(reopened)
    assert [f(k) for k in "abcdef"] == [expected_value(k, 64) for k in "abcdef"] and calls == []
    assert integrity_problems(reopened) == []
    reopened.close()


@pytest.mark.parametrize("kind", ["disk", "sqlite"])
def test_a_garbage_wal_is_ignored(kind: str, tmp_path: Any, seed: int) -> None:
    import random

    cache, db, reopen = _sqlite_store(kind, str(tmp_path))
    f, _ = memoized(cache)
    for k in "abc":
        f(k)
    cache.close()  # checkpointed: the entries are in the database file
    assert not os.path.exists(db + "-wal")
    with open(db + "-wal", "wb") as out:
        out.write(random.Random(seed).randbytes(8192))
    cache = reopen()
    f, calls = memoized(cache)
    assert [f(k) for k in "abcd"] == [expected_value(k, 64) for k in "abcd"] and calls == ["d"]
    assert integrity_problems(cache) == []
    cache.close()


# ---- an entry of another key-scheme version -----------------------------------------------------------


def _rewrite_scheme(cache: Any, key: int, scheme: int, new_key: int | None = None) -> None:
    """Rewrite the stored record of ``key`` as written under ``scheme`` (and, with ``new_key``, stored
    under that key, as an older scheme would have keyed the same call)."""
    name = type(cache).__name__
    if name == "TieredCache":  # the back's record; the front's copy as if its ttl had passed
        _rewrite_scheme(cache.back, key, scheme, new_key)
        cache.front.clear()
    elif name == "JsonCache":
        import json

        src = os.path.join(cache.path, f"{key:032x}.json")
        with open(src, encoding="utf-8") as fh:
            record = json.load(fh)
        record["scheme"] = scheme
        dst = src if new_key is None else os.path.join(cache.path, f"{new_key:032x}.json")
        if new_key is not None:
            record["key"] = f"{new_key:032x}"
        with open(dst, "w", encoding="utf-8") as fh:
            json.dump(record, fh)
    elif name == "RedisCache":
        from oxicache.codec import decode_binary, encode_binary

        record = decode_binary(cache.client.get(f"{cache.prefix}:e:{key:032x}"))
        record["s"] = scheme
        cache.client.set(f"{cache.prefix}:e:{(key if new_key is None else new_key):032x}", encode_binary(record))
    elif name == "DatabaseCache":
        import sqlalchemy as sa

        t = cache.table
        with cache.engine.begin() as conn:
            values: dict[str, Any] = {"scheme": scheme}
            if new_key is not None:
                row = conn.execute(sa.select(t).where(t.c.key == f"{key:032x}")).mappings().one()
                conn.execute(sa.insert(t).values({**row, "key": f"{new_key:032x}", "scheme": scheme}))
            else:
                conn.execute(sa.update(t).where(t.c.key == f"{key:032x}").values(**values))
    else:  # DiskCache: the record is a codec blob {"f", "i", "o", "m", "c", "s"}
        from oxicache.codec import Serializer

        ser = Serializer("codec", None)
        dc = cache._dc
        record = ser.loads(dc.get(key.to_bytes(16, "big")))
        record["s"] = scheme
        target = key if new_key is None else new_key
        dc.set(target.to_bytes(16, "big"), ser.dumps(record))


@pytest.mark.parametrize("backend", PERSISTENT)
def test_an_entry_of_another_key_scheme_is_a_quiet_miss(backend: str) -> None:
    cache = make(backend)
    f, calls = memoized(cache)
    f("a")
    f("b")
    f("old")
    key_a, key_old = f.cache_key("a"), f.cache_key("old")
    # "a" as an older scheme wrote it under today's key; "old" under a key today's scheme does not compute
    _rewrite_scheme(cache, key_a, KEY_SCHEME_VERSION - 1)
    _rewrite_scheme(cache, key_old, KEY_SCHEME_VERSION - 1, new_key=key_old ^ 0xFF)
    cache.remove(f, x="old")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a miss, not damage: no warning
        assert sorted(e.inputs["x"] for e in cache) == ["b"]
        if backend != "disk":  # DiskCache's len() is diskcache's item count (O(1), nothing decoded)
            assert len(cache) == 1
        assert cache.get(f, x="a") is ...
        assert integrity_problems(cache) == []
        assert f("a") == expected_value("a", 64) and calls == ["a", "b", "old", "a"]
        assert f("a") == expected_value("a", 64) and calls.count("a") == 2, "the new entry replaced the old one"
        assert sorted(e.inputs["x"] for e in cache) == ["a", "b"]
    cache.close()


def test_a_disk_record_without_scheme_is_of_scheme_1(tmp_path: Any) -> None:
    """DiskCache records written before the scheme field existed are of key scheme 1: under scheme 2
    (issue 11) they are quiet misses, recomputed once and overwritten."""
    from oxicache.codec import Serializer

    cache = oxicache.DiskCache(tmp_path)
    f, calls = memoized(cache)
    f("a")
    ser, raw = Serializer("codec", None), f.cache_key("a").to_bytes(16, "big")
    record = ser.loads(cache._dc.get(raw))
    assert record.pop("s") == KEY_SCHEME_VERSION
    cache._dc.set(raw, ser.dumps(record))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not damage: no warning
        assert f("a") == expected_value("a", 64) and calls == ["a", "a"], "a record of scheme 1 is a miss"
    assert f("a") == expected_value("a", 64) and calls == ["a", "a"], "overwritten under this scheme: a hit"
    cache.close()


# ---- no leases: lock-like files do not block ----------------------------------------------------------


@pytest.mark.parametrize("backend", ["disk", "json", "sqlite"])
def test_lock_like_files_of_a_dead_process_do_not_block(backend: str) -> None:
    cache = make(backend)
    spec = SPECS[id(cache)]
    folder = cache.path if backend != "sqlite" else os.path.dirname(sqlite_file(cache) or "")
    pid = str(dead_pid())
    planted = ["cache.lock", ".lock", "oxicache.lease", "cache.db.lock", f"{'c' * 32}.json.lock", "writer.pid"]
    for name in planted:
        with open(os.path.join(folder, name), "w") as out:
            out.write(pid)
    cache.close()
    with watchdog(60, f"R7 opening and calling through a {backend} store with lock files"):
        cache = open_spec(spec)
        f, calls = memoized(cache)
        assert f("a") == expected_value("a", 64) and f("a") == expected_value("a", 64) and calls == ["a"]
    assert all(os.path.exists(os.path.join(folder, n)) for n in planted), "files that are not the cache's are left alone"
    assert len(cache) == 1 and integrity_problems(cache) == []
    cache.close()

