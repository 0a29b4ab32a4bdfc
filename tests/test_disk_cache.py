"""DiskCache specifics: what goes on disk, data it did not write, size_limit, serializers, fork, errors.

The public surface, every function kind, TTL and cross-process behaviour run in the shared suites
(tests/backends.py lists DiskCache among the persistent backends).
"""

from __future__ import annotations

import os
import pickle
import sqlite3

import diskcache
import pytest

from oxicache import CacheEntry, CacheWarning, DiskCache


@pytest.fixture
def cache(tmp_path):
    return DiskCache(tmp_path / "cache")


def test_values_are_codec_blobs_not_pickles(cache):
    cache.set("f", output=(1, {2}), x=1)
    raw = diskcache.Cache(cache.path)
    (key,) = list(raw.iterkeys())
    blob = raw.get(key)
    assert isinstance(key, bytes) and len(key) == 16
    assert isinstance(blob, bytes) and blob.startswith(b"\xc1m")  # the codec envelope
    assert b"pickle" not in blob and not blob[2:].startswith(b"\x80")  # no pickle protocol header


class Boom:
    ran = False

    def __reduce__(self):
        return (Boom._explode, ())

    @staticmethod
    def _explode():
        Boom.ran = True
        return "exploded"


def test_a_planted_pickle_is_never_unpickled(cache, tmp_path):
    entry = CacheEntry("f", {"x": 1}, "good")
    # Plant pickled values (diskcache's own default format) under the entry's key and under a pickled key.
    raw = diskcache.Cache(cache.path)
    raw.set(entry.key.to_bytes(16, "big"), Boom())
    raw.set(("a", "pickled", "key"), Boom())
    raw.close()
    Boom.ran = False
    with pytest.warns(CacheWarning, match="never unpickled"):
        assert cache.get("f", x=1) is ...
    with pytest.warns(CacheWarning, match="never unpickled"):
        assert list(cache) == []  # the pickled key is skipped silently, the pickled value warns
    assert not Boom.ran
    cache.add(entry)  # overwritten by the next store
    assert cache.get("f", x=1) == "good"


def test_a_planted_file_name_never_reads_or_deletes_outside_the_folder(cache, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("do not touch")
    entry = CacheEntry("f", {"x": 1}, "v")
    cache.add(entry)
    con = sqlite3.connect(os.path.join(cache.path, "cache.db"))
    con.execute("UPDATE Cache SET filename = ?, mode = 2, value = NULL", ("../secret.txt",))
    con.commit()
    con.close()
    with pytest.warns(CacheWarning, match="outside the cache folder"):
        assert cache.get("f", x=1) is ...
    with pytest.raises(Exception, match="outside the cache folder"):
        cache.clear()  # diskcache removes value files on clear: refused, not followed
    assert secret.read_text() == "do not touch"


def test_a_record_under_another_key_does_not_answer_for_it(cache):
    a, b = CacheEntry("f", {"x": 1}, "one"), CacheEntry("f", {"x": 2}, "two")
    cache.add(a)
    cache.add(b)
    raw = diskcache.Cache(cache.path)
    raw.set(a.key.to_bytes(16, "big"), raw.get(b.key.to_bytes(16, "big")))  # b's record moved under a's key
    with pytest.warns(CacheWarning, match="do not match the key"):
        assert cache.get("f", x=1) is ...
    assert cache.get("f", x=2) == "two"


@pytest.mark.parametrize("blob", [b"", b"\xc1m", b"\xc1m\x92\x01", b"garbage", b"\xc1m\xc1"])
def test_damaged_blobs_are_a_miss_with_a_warning_then_overwritten(cache, blob):
    entry = CacheEntry("f", {"x": 1}, "v")
    diskcache.Cache(cache.path).set(entry.key.to_bytes(16, "big"), blob)
    with pytest.warns(CacheWarning, match="damaged"):
        assert cache.get("f", x=1) is ...
    cache.add(entry)
    assert cache.get("f", x=1) == "v"


def test_size_limit_is_honoured(tmp_path):
    cache = DiskCache(tmp_path / "small", size_limit=200_000, cull_limit=10)
    for i in range(300):
        cache.set("f", output="x" * 5000, i=i)
    assert cache.volume() <= 260_000  # diskcache culls up to cull_limit entries per set
    assert 10 <= len(cache) < 300
    assert cache.get("f", i=299) == "x" * 5000  # the newest survive


def test_pickle_serializer_only_when_asked_and_signed(tmp_path):
    key = os.urandom(32)
    signed = DiskCache(tmp_path / "p", serializer="pickle", signing_key=key)
    signed.set("f", output=Boom.__new__(Boom).__class__, x=1)  # any picklable value (here a class)
    assert signed.get("f", x=1) is Boom
    # The safe default refuses to read pickles: a miss with a warning, not an unpickle.
    with pytest.warns(CacheWarning, match="pickle"):
        assert DiskCache(tmp_path / "p").get("f", x=1) is ...
    # Another key: the signature does not match, the pickle is not loaded.
    with pytest.warns(CacheWarning, match="signature"):
        assert DiskCache(tmp_path / "p", serializer="pickle", signing_key=os.urandom(32)).get("f", x=1) is ...
    with pytest.raises(ValueError, match="at least 16 bytes"):
        DiskCache(tmp_path / "q", serializer="pickle", signing_key=b"short")
    with pytest.raises(ValueError, match="codec"):
        DiskCache(tmp_path / "q", serializer="marshal")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_uses_its_own_connection(cache):
    cache.set("f", output="parent", x=1)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            cache.set("f", output="child", x=2)
            ok = cache.get("f", x=1) == "parent"
            os.write(w, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(r, 1) == b"1"
    assert cache.get("f", x=2) == "child"


def test_bad_arguments_fail_at_construction(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OSError, match="cannot open a DiskCache"):
        DiskCache(blocker / "cache")
    with pytest.raises(ValueError, match="size_limit"):
        DiskCache(tmp_path / "c", size_limit=0)
    with pytest.raises(TypeError, match="disk"):
        DiskCache(tmp_path / "c", disk=diskcache.Disk)
    with pytest.raises(ValueError, match="duration"):
        DiskCache(tmp_path / "c", ttl="5 parsecs")


def test_pickled_planted_value_in_a_pickled_key_store_does_not_run(tmp_path):
    """A whole diskcache folder written by someone else (pickled keys and values) reads as empty."""
    folder = tmp_path / "foreign"
    raw = diskcache.Cache(str(folder))
    for i in range(3):
        raw.set(i, Boom())
        raw.set(f"k{i}", pickle.dumps(Boom()))
    raw.close()
    Boom.ran = False
    cache = DiskCache(folder)
    assert list(cache) == []
    assert not Boom.ran


# ---- opening while another opener sets the folder up (R20) ------------------------------------------


def _locked_then_real(monkeypatch: pytest.MonkeyPatch, failures: int, message: str = "database is locked") -> list[int]:
    """Makes diskcache's Cache raise ``message`` on its first ``failures`` constructions; returns the
    count of attempts made."""
    from oxicache.backends import disk

    real = disk._measured_cache_class()
    attempts = [0]

    def flaky(*args: object, **kwargs: object) -> object:
        attempts[0] += 1
        if attempts[0] <= failures:
            raise sqlite3.OperationalError(message)
        return real(*args, **kwargs)

    monkeypatch.setattr(disk, "_measured_cache_class", lambda: flaky)
    return attempts


def test_opening_retries_while_sqlite_answers_locked(tmp_path, monkeypatch) -> None:
    attempts = _locked_then_real(monkeypatch, 3)
    cache = DiskCache(str(tmp_path / "c"))
    cache.set("f", output=1, x=1)
    assert cache.get("f", x=1) == 1 and attempts == [4]
    cache.close()


def test_opening_gives_up_on_other_errors_at_once_and_on_locked_after_the_bound(tmp_path, monkeypatch) -> None:
    from oxicache.backends import disk

    attempts = _locked_then_real(monkeypatch, 1000, "disk I/O error")
    with pytest.raises(OSError, match="disk I/O error"):
        DiskCache(str(tmp_path / "c"))
    assert attempts == [1]
    monkeypatch.setattr(disk, "OPEN_RETRY_SECONDS", 0.05)
    attempts = _locked_then_real(monkeypatch, 10**9)
    with pytest.raises(OSError, match="database is locked"):
        DiskCache(str(tmp_path / "d"))
    assert attempts[0] > 1
