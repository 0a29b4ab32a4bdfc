"""The per-function index of DiskCache (diskcache tags) and JsonCache (marker files): ``cache_info()`` and
``cache_clear()`` of one function never read another function's entries, ``len()`` of a JsonCache reads no
entry file, and a folder written before the index existed is migrated once, on its first count or clear.

"Never read" is checked with real damage: the other function's stored values are overwritten with bytes
that cannot decode, under ``on_backend_error="raise"``, so any read of them raises."""

from __future__ import annotations

import os
import sqlite3
import warnings

import pytest

from oxicache import CacheWarning, DiskCache

N = 50


def _memoized(cache, name):
    @cache.memoize(name=name)
    def f(x):
        return x * 2

    return f


def _filled(cache):
    f, g = _memoized(cache, "f"), _memoized(cache, "g")
    for i in range(N):
        f(i)
        g(i)
    return f, g


def _db(cache):
    return sqlite3.connect(os.path.join(cache.path, "cache.db"), isolation_level=None)


# ---- DiskCache ----------------------------------------------------------------------------------------
def test_disk_count_and_clear_never_read_other_functions(tmp_path):
    cache = DiskCache(tmp_path / "c", on_backend_error="raise")
    f, g = _filled(cache)
    with _db(cache) as db:  # every g value now fails to decode: reading one raises
        db.execute("UPDATE Cache SET value = X'00' WHERE tag LIKE '%:g'")
    assert f.cache_info().currsize == N
    assert cache.count_function("f") == N
    f.cache_clear()
    assert f.cache_info().currsize == 0
    assert len(cache) == N  # g's rows are all still there (damaged, as we left them)
    with pytest.raises(Exception, match="cannot be read|damaged|decode|not an oxicache"):
        g(1)


def test_disk_count_skips_expired_and_clear_returns_the_live_ones(tmp_path):
    cache = DiskCache(tmp_path / "c")
    for i in range(5):
        cache.set("f", output=i, x=i)
    cache.set("f", output=9, x=9, ttl=0.001)
    import time

    time.sleep(0.01)
    assert cache.count_function("f") == 5
    assert cache.clear_function("f") == 5
    with _db(cache) as db:
        assert db.execute("SELECT COUNT(*) FROM Cache").fetchone()[0] == 0  # the expired row went too


def _as_before_the_index(cache):
    """The folder as oxicache wrote it before the index: the same rows without a tag, no tag index."""
    with _db(cache) as db:
        db.execute("UPDATE Cache SET tag = NULL")
        db.execute("DROP INDEX IF EXISTS Cache_tag_rowid")
        db.execute("UPDATE Settings SET value = 0 WHERE key = 'tag_index'")


def test_disk_folder_written_before_the_index_is_migrated_once(tmp_path):
    path = tmp_path / "c"
    first = DiskCache(path)
    _filled(first)
    first.set("f", output=1, x="damaged")
    first.close()
    _as_before_the_index(first)
    with _db(first) as db:  # one damaged untagged row of f: reported once, at the migration
        db.execute("UPDATE Cache SET value = X'00' WHERE rowid = (SELECT MAX(rowid) FROM Cache)")
    cache = DiskCache(path)
    f, g = _memoized(cache, "f"), _memoized(cache, "g")
    with pytest.warns(CacheWarning, match="damaged|cannot be read|not an oxicache"):
        assert f.cache_info().currsize == N  # the damaged row is no entry
    with _db(cache) as db:
        assert db.execute("SELECT COUNT(*) FROM Cache WHERE tag IS NULL").fetchone()[0] == 0
        assert db.execute("SELECT COUNT(*) FROM Cache WHERE tag = 'oxicache:none'").fetchone()[0] == 1
        assert "Cache_tag_rowid" in {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # migrated: the damaged row is not read again
        assert g.cache_info().currsize == N
        f.cache_clear()
        assert f.cache_info().currsize == 0 and g.cache_info().currsize == N
    assert [g(i) for i in range(N)] == [i * 2 for i in range(N)] and g.cache_info().hits == N


def test_disk_rows_an_older_version_writes_later_are_counted(tmp_path):
    cache = DiskCache(tmp_path / "c")
    f, _ = _filled(cache)
    assert f.cache_info().currsize == N
    with _db(cache) as db:  # an older oxicache on the same folder stores (or overwrites) without a tag
        db.execute("UPDATE Cache SET tag = NULL WHERE rowid IN (SELECT rowid FROM Cache WHERE tag LIKE '%:f' LIMIT 7)")
    assert f.cache_info().currsize == N
    f.cache_clear()
    assert cache.count_function("g") == N and len(cache) == N
