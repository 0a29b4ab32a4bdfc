"""The per-function index of DiskCache (diskcache tags) and JsonCache (marker files): ``cache_info()`` and
``cache_clear()`` of one function never read another function's entries, ``len()`` of a JsonCache reads no
entry file, and a folder written before the index existed is migrated once, on its first count or clear.

"Never read" is checked with real damage: the other function's stored values are overwritten with bytes
that cannot decode, under ``on_backend_error="raise"``, so any read of them raises."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import warnings

import pytest

from oxicache import CacheWarning, DiskCache, JsonCache

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


# ---- JsonCache ----------------------------------------------------------------------------------------
@pytest.fixture
def opened(monkeypatch):
    """The entry files (``*.json``) opened while the test runs, by path."""
    seen: list[str] = []
    real_open = os.open

    def counting(path, *args, **kwargs):
        if str(path).endswith(".json"):
            seen.append(str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", counting)
    return seen


def test_json_count_clear_and_len_read_no_entry_file(tmp_path, opened):
    cache = JsonCache(tmp_path / "c", on_backend_error="raise")
    f, g = _filled(cache)
    cache.set("f", output=1, x="expiring", ttl=3600)
    # g's entries cannot be read now (damaged in place): reading one raises
    damaged = [os.path.join(cache.path, f"{cache_key(g, i):032x}.json") for i in range(N)]
    for path in damaged:
        with open(path, "r+b") as file:
            file.write(b"\x00")
    opened.clear()
    assert f.cache_info().currsize == N + 1  # f(0..N-1) and the expiring one
    assert cache.count_function("f") == N + 1
    assert opened == []
    assert len(cache) == 2 * N + 1 - N  # g's damaged files read (their stamps changed) and not counted
    assert set(opened) == set(damaged)
    opened.clear()
    f.cache_clear()
    assert opened == [] and f.cache_info().currsize == 0
    assert sorted(n for n in os.listdir(cache.path) if n.endswith(".json")) == sorted(os.path.basename(p) for p in damaged)


def cache_key(fn, x):
    return fn.cache_key(x)


def test_json_expired_entries_are_told_by_their_markers(tmp_path, opened):
    cache = JsonCache(tmp_path / "c")
    for i in range(10):
        cache.set("f", output=i, x=i, ttl=10 if i % 2 else None)
    opened.clear()
    assert cache.count_function("f") == 10 and len(cache) == 10
    assert opened == []
    cache._clock = lambda: __import__("time").time() + 60  # the five with a ttl have expired
    assert cache.count_function("f") == 5
    assert len(opened) == 5  # each expired one read once, to remove it (as a lookup does)
    assert len(cache) == 5 and cache.clear_function("f") == 5


def test_json_folder_written_before_the_index_is_migrated_once(tmp_path, opened):
    path = tmp_path / "c"
    first = JsonCache(path)
    _filled(first)
    first.set("f", output=1, x="gone", ttl=0.001)
    shutil.rmtree(path / "index")  # the folder as oxicache wrote it before the index
    cache = JsonCache(path)
    f, g = _memoized(cache, "f"), _memoized(cache, "g")
    opened.clear()
    assert len(cache) == 2 * N  # no marker: every entry read (the expired one removed)
    opened.clear()
    assert f.cache_info().currsize == N  # the migration: every entry read once, markers written
    assert len(opened) == 2 * N and (path / "index" / "complete").exists()
    opened.clear()
    assert g.cache_info().currsize == N and len(cache) == 2 * N
    f.cache_clear()
    assert opened == [] and cache.count_function("f") == 0 and len(cache) == N
    assert [g(i) for i in range(N)] == [i * 2 for i in range(N)] and g.cache_info().hits == N


def test_json_markers_that_disagree_with_their_entry_are_not_trusted(tmp_path):
    cache = JsonCache(tmp_path / "c")
    f, _ = _filled(cache)
    entry = os.path.join(cache.path, f"{f.cache_key(0):032x}.json")
    # an older oxicache overwrites f(0) with an expired record: a new file, with no marker of its own
    with open(entry, "rb") as file:
        record = json.loads(file.read())
    record["expires_at"] = 1.0
    tmp = entry + ".old"
    with open(tmp, "w") as file:
        json.dump(record, file)
    os.replace(tmp, entry)
    assert f.cache_info().currsize == N - 1 and not os.path.exists(entry)  # read, expired, removed
    # a store that crashed between its marker and its rename: a marker without an entry
    folder = os.path.dirname(next(iter(cache_markers(cache, "f"))))
    open(os.path.join(folder, f"{'ab' * 16}.1.2.3"), "wb").close()
    assert f.cache_info().currsize == N - 1 and len(cache) == 2 * N - 1
    assert f(0) == 0 and f.cache_info().currsize == N  # stored again, with its marker


def cache_markers(cache, func):
    root = os.path.join(cache.path, "index")
    return [os.path.join(root, d, m) for d in os.listdir(root) if len(d) == 32
            for m in os.listdir(os.path.join(root, d))]


_WRITER = """
import sys
from oxicache import JsonCache
cache = JsonCache(sys.argv[1])
for round in range(3):
    for i in range(100):
        cache.set("f", output=i, x=i, ttl=None if (i + round) % 2 else 3600)
"""


def test_json_two_processes_storing_the_same_keys_leave_an_exact_index(tmp_path):
    path = str(tmp_path / "c")
    JsonCache(path)
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, path]) for _ in range(2)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    cache = JsonCache(path)
    assert cache.count_function("f") == 100 and len(cache) == 100
    assert cache.clear_function("f") == 100 and len(cache) == 0


@pytest.mark.parametrize("clear", ["cache_clear", "clear", "invalidate"])
def test_json_a_clear_between_a_stores_marker_and_its_rename_leaves_it_indexed(tmp_path, monkeypatch, clear):
    """A clear that lists a store's new markers after they are written and removes them (and the entry
    file there, the old one) before the store renames its file into place: the store's entry is then the
    function's, so it must have its markers again, or counts and later clears by marker would never see
    it (found by lru_cache's threaded clear test on a loaded CI machine: currsize 0, len(cache) 1)."""
    cache = JsonCache(tmp_path / "c")

    @cache.memoize(name="f", tags=["t"])
    def f(x):
        return x * 2

    f(1)
    real_replace, cleared = os.replace, []

    def replace_after_a_clear(src, dst):
        if dst.endswith(".json") and not cleared:
            cleared.append(dst)
            if clear == "cache_clear":
                f.cache_clear()
            elif clear == "clear":
                cache.clear()
            else:
                cache.invalidate(tags=["t"])
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_after_a_clear)
    assert f(2) == 4 and cleared
    monkeypatch.setattr(os, "replace", real_replace)
    assert f.cache_info().currsize == len(cache) == 1  # f(2), stored after the clear, and counted
    assert cache.invalidate(tags=["t"]) == 1 and len(cache) == 0  # its tag marker is back too
    assert f(2) == 4 and f.cache_clear() is None and len(cache) == 0 and f.cache_info().currsize == 0
