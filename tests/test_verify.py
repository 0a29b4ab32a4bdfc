"""``cache.verify()``: a read-only integrity check returning one human-readable line per problem.

A sound store gives [] on every backend (with large values, expired entries and foreign files where the
backend allows them). Planted damage is reported, naming the place: per backend the ways a record can
go bad (garbage, a record moved under another key, a file or row the store lost, a damaged SQLite page),
and verify() itself never repairs, warns or counts (the damage is still there afterwards, byte for byte).
"""

from __future__ import annotations

import os
import sqlite3
import time

import pytest

import backends
from oxicache import CacheEntry, InMemCache, NoCache
from dict_backend import DictBackend

ALL = ["inmem", "none", "callback", "disk", "json", "sqlite", "postgresql", "mysql"]
SQL = ["sqlite", "postgresql", "mysql"]


def fill(cache, n=6):
    """n entries of one function, some with values large enough for diskcache's value files."""

    @cache.memoize(name="verify.f")
    def f(x):
        return {"x": x, "blob": b"\x01" * (x * 15_000)}

    for x in range(n):
        f(x)
    return [CacheEntry("verify.f", {"x": x}) for x in range(n)]


@pytest.mark.parametrize("name", ALL)
def test_a_sound_store_has_no_problems(name):
    cache = backends.make(name)
    fill(cache)
    cache.set("verify.g", output="short-lived", ttl=0.01, x=1)
    time.sleep(0.02)  # an expired entry is not a problem
    before = cache.stats()
    assert cache.verify() == []
    assert cache.stats() == before  # nothing counted
    cache.clear()
    assert cache.verify() == []


def test_the_default_check_reports_an_entry_under_another_key():
    cache = DictBackend()
    a, b = CacheEntry("f", {"x": 1}, "one"), CacheEntry("f", {"x": 2}, "two")
    cache.add(a)
    cache.add(b)
    assert cache.verify() == []
    cache.data[a.key] = cache.data[b.key]  # b's entry answers for a's key
    (problem,) = cache.verify()
    assert f"{b.key:032x}" in problem and "another key" in problem


def test_in_memory_and_no_cache_use_the_default_check():
    cache = InMemCache()
    fill(cache)
    assert cache.verify() == [] and NoCache().verify() == []


# ---- DiskCache ------------------------------------------------------------------------------------


def disk_db(cache):
    return sqlite3.connect(os.path.join(cache.path, "cache.db"))


def test_disk_reports_garbage_a_moved_record_a_pickle_and_a_lost_value_file():
    diskcache = pytest.importorskip("diskcache")
    cache = backends.make("disk")
    entries = fill(cache)
    raw = diskcache.Cache(cache.path)
    k = [e.key.to_bytes(16, "big") for e in entries]
    raw.set(k[0], b"\xc1mgarbage")  # not a codec blob
    raw.set(k[1], raw.get(k[2]))  # entry 2's record under entry 1's key
    diskcache.Cache(cache.path).set(k[3], {"a pickle": 1})  # diskcache's own (pickled) format
    (filename,) = disk_db(cache).execute("SELECT filename FROM Cache WHERE key = ?", (k[5],)).fetchone()
    os.unlink(os.path.join(cache.path, filename))  # the value file of entry 5 is lost
    raw.set("someone else's", 1)
    problems = cache.verify()
    text = "\n".join(problems)
    assert k[0].hex() in text and k[1].hex() in text and "do not match the key" in text
    assert k[3].hex() in text and "pickle" in text
    assert k[5].hex() in text and "file not found" in text  # diskcache's check(), and our own read
    assert "did not write" in text  # the foreign key
    assert k[2].hex() not in text and k[4].hex() not in text
    assert cache.verify() == problems  # read-only: the same damage is still there
    assert os.path.exists(os.path.join(cache.path, "cache.db"))


def test_disk_reports_a_damaged_sqlite_file():
    cache = backends.make("disk")
    fill(cache, 60)
    cache.close()
    damage_an_index(os.path.join(cache.path, "cache.db"), "Cache_expire_time")
    (problem,) = cache.verify()
    assert "malformed" in problem and cache.path in problem


# ---- DatabaseCache --------------------------------------------------------------------------------


def table_of(cache):
    return cache.table.name


def run_sql(cache, sql, **params):
    import sqlalchemy

    with cache.engine.begin() as conn:
        return conn.execute(sqlalchemy.text(sql), params)


@pytest.mark.parametrize("name", SQL)
def test_sql_reports_undecodable_moved_and_misnamed_rows(name):
    cache = backends.make(name)
    entries = fill(cache)
    hexes = [f"{e.key:032x}" for e in entries]
    t = cache.table
    import sqlalchemy as sa

    with cache.engine.begin() as conn:
        conn.execute(sa.update(t).where(t.c.key == hexes[0]).values(output=sa.cast(sa.literal('{"$nope": 1}', sa.Text), t.c.output.type)))  # JSON, not a record
        moved = conn.execute(sa.select(t).where(t.c.key == hexes[2])).mappings().one()
        conn.execute(sa.delete(t).where(t.c.key == hexes[1]))
        conn.execute(sa.insert(t).values({**moved, "key": hexes[1]}))  # entry 2's row under entry 1's key
        conn.execute(sa.update(t).where(t.c.key == hexes[3]).values(key="ZZ-not-hex"))
    before = run_sql(cache, f"SELECT COUNT(*) FROM {table_of(cache)}").scalar()
    problems = cache.verify()
    text = "\n".join(problems)
    assert len(problems) == 3, problems
    assert hexes[0] in text and hexes[1] in text and "do not match the key" in text
    assert "ZZ-not-hex" in text and "hex" in text
    assert hexes[2] not in text and hexes[4] not in text
    assert run_sql(cache, f"SELECT COUNT(*) FROM {table_of(cache)}").scalar() == before  # nothing removed
    assert cache.verify() == problems


@pytest.mark.parametrize("name", SQL)
def test_sql_checks_expired_rows_too(name):
    cache = backends.make(name)
    cache.set("verify.g", output="v", ttl=0.01, x=1)
    import sqlalchemy as sa

    with cache.engine.begin() as conn:
        conn.execute(sa.update(cache.table).values(inputs=sa.cast(sa.literal('{"$tuple": 5}', sa.Text), cache.table.c.inputs.type)))
    time.sleep(0.02)
    (problem,) = cache.verify()
    assert f"{CacheEntry('verify.g', {'x': 1}).key:032x}" in problem


def damage_an_index(path, index):
    """Zero the root page of one index of the SQLite file at ``path`` (the table pages stay intact, so
    the file opens and its rows read; only integrity_check notices)."""
    con = sqlite3.connect(path)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    (root,) = con.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (index,)).fetchone()
    (size,) = con.execute("PRAGMA page_size").fetchone()
    con.close()
    with open(path, "r+b") as f:
        f.seek((root - 1) * size)
        f.write(b"\x0d" + b"\xff" * 7 + b"\x00" * (size - 8))  # a leaf page header with nonsense counts


def test_sqlite_reports_integrity_check_failures():
    cache = backends.make("sqlite")
    fill(cache, 3)
    cache.close()
    con = sqlite3.connect(cache.engine.url.database)
    con.execute("PRAGMA writable_schema = ON")  # the func index now claims to index created_at
    con.execute("UPDATE sqlite_master SET sql = replace(sql, '(func)', '(created_at)') WHERE name = ?",
                (f"{table_of(cache)}_func",))
    con.commit()
    con.close()
    problems = cache.verify()
    assert len(problems) == 3 and all("missing from index" in p for p in problems), problems


def test_sqlite_reports_a_file_too_damaged_to_check():
    cache = backends.make("sqlite")
    fill(cache, 60)
    cache.close()
    damage_an_index(cache.engine.url.database, f"{table_of(cache)}_func")
    (problem,) = cache.verify()
    assert "integrity_check cannot complete" in problem and "malformed" in problem


# ---- JsonCache ------------------------------------------------------------------------------------


def test_json_reports_damaged_moved_and_stray_files_but_not_foreign_ones():
    cache = backends.make("json")
    entries = fill(cache)
    files = [os.path.join(cache.path, f"{e.key:032x}.json") for e in entries]
    with open(files[0], "r+b") as f:
        f.truncate(10)  # torn
    os.replace(files[2], files[1])  # entry 2's record under entry 1's name
    os.unlink(files[3])
    os.mkdir(files[3])  # a folder in place of the file
    stale = os.path.join(cache.path, f".{entries[4].key:032x}.{os.getpid()}.abc123.tmp")
    fresh = os.path.join(cache.path, f".{entries[5].key:032x}.{os.getpid()}.def456.tmp")
    for path in (stale, fresh):
        with open(path, "w") as f:
            f.write("{")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    upper = os.path.join(cache.path, f"{entries[4].key:032X}.json")
    with open(upper, "w") as f:
        f.write("{}")
    with open(os.path.join(cache.path, "notes.txt"), "w") as f:
        f.write("not the cache's business")
    os.mkdir(os.path.join(cache.path, "sub"))
    problems = cache.verify()
    text = "\n".join(problems)
    assert len(problems) == 5, problems
    for path in (files[0], files[1], files[3], stale, upper):
        assert os.path.basename(path) in text
    assert "do not match the key" in text
    assert "notes.txt" not in text and "sub" not in text.split(cache.path)[-1] and "def456" not in text
    assert cache.verify() == problems and os.path.exists(stale)  # nothing swept


def test_json_reports_a_symlink_entry(tmp_path):
    cache = backends.make("json")
    (entry, *_) = fill(cache, 1)
    path = os.path.join(cache.path, f"{entry.key:032x}.json")
    target = tmp_path / "elsewhere.json"
    os.replace(path, target)
    os.symlink(target, path)
    (problem,) = cache.verify()
    assert "symbolic link" in problem
