"""The backend-failure policy (``on_backend_error``, python/oxicache/failures.py).

Storage that fails during a memoized call: "warn" (default) returns the computed value with one
CacheWarning, "raise" raises BackendError with the original as ``__cause__``, "ignore" is silent; each
failure is counted in ``stats()["backend_errors"]``. A damaged record: a miss with a warning, a
ValueDecodingError, or a silent miss. Failing storage is a real JsonCache with the OS call failing
(os.replace raising ENOSPC) and a DictBackend whose reads fail, for the lookup side.
"""

from __future__ import annotations

import asyncio
import errno
import glob
import os
import warnings

import oxicache
import pytest
from dict_backend import DictBackend
from oxicache import (
    BackendError,
    CacheWarning,
    DiskCache,
    InMemCache,
    JsonCache,
    NoCache,
    ValueDecodingError,
)


class FlakyReads(DictBackend):
    """A backend whose reads fail (a lost connection) while ``down`` is set."""

    down = False

    def _get(self, ref):  # type: ignore[no-untyped-def]
        if self.down:
            raise ConnectionError("server closed the connection")
        return super()._get(ref)


def disk_full(*args: object, **kwargs: object) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("make", [InMemCache, NoCache, DictBackend])
def test_an_unknown_policy_is_refused_naming_it(make) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=r"on_backend_error must be one of 'warn', 'raise', 'ignore', got 'loud'"):
        make(on_backend_error="loud")


def test_every_backend_takes_the_policy(tmp_path) -> None:  # type: ignore[no-untyped-def]
    caches = [InMemCache(on_backend_error="raise"), NoCache(on_backend_error="raise"),
              oxicache.CallbackCache(on_backend_error="raise"), JsonCache(tmp_path / "j", on_backend_error="raise"),
              DiskCache(tmp_path / "d", on_backend_error="raise"),
              oxicache.DatabaseCache(database=str(tmp_path / "c.db"), on_backend_error="raise")]
    assert [c.on_backend_error for c in caches] == ["raise"] * len(caches)
    assert all(c.stats()["backend_errors"] == 0 for c in caches)


def memoized(cache: oxicache.BaseCache) -> tuple[object, list[int]]:
    calls: list[int] = []

    @cache.memoize
    def f(x: int) -> int:
        calls.append(x)
        return x * 10

    return f, calls


def test_a_failed_store_warns_by_default_and_the_caller_gets_its_value(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    cache = JsonCache(tmp_path)
    f, calls = memoized(cache)
    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.warns(CacheWarning, match=r"result of .*f#[\w.]+ was not cached: the backend failed \(OSError: .*No space left") as caught:
        assert f(1) == 10
    assert len(caught) == 1
    assert cache.stats()["backend_errors"] == 1
    monkeypatch.undo()
    # nothing partial: no entry, no temp file, no index marker (only the index's own "complete" flag)
    files = [p for p in glob.glob(str(tmp_path / "**"), recursive=True) if os.path.isfile(p)]
    assert files == [str(tmp_path / "index" / "complete")]
    assert f(1) == 10 and calls == [1, 1]  # not stored, so computed again (and now stored)
    assert f(1) == 10 and calls == [1, 1]


def test_a_failed_store_raises_backend_error_under_raise(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    cache = JsonCache(tmp_path, on_backend_error="raise")
    f, _ = memoized(cache)
    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(BackendError, match=r"result of .*f#[\w.]+ was not cached") as info:
        f(1)
    assert isinstance(info.value.__cause__, OSError) and info.value.__cause__.errno == errno.ENOSPC
    assert isinstance(info.value, oxicache.CacheError)
    assert cache.stats()["backend_errors"] == 1


def test_a_failed_store_is_silent_under_ignore(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    cache = JsonCache(tmp_path, on_backend_error="ignore")
    f, _ = memoized(cache)
    monkeypatch.setattr(os, "replace", disk_full)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert f(1) == 10
    assert cache.stats()["backend_errors"] == 1


def test_a_failed_lookup_runs_the_function_under_each_policy() -> None:
    for policy, expect in (("warn", "warn"), ("ignore", None), ("raise", BackendError)):
        cache = FlakyReads(on_backend_error=policy)
        f, calls = memoized(cache)
        assert f(2) == 20
        cache.down = True
        if expect is BackendError:
            with pytest.raises(BackendError, match="ran without the cache") as info:
                f(2)
            assert isinstance(info.value.__cause__, ConnectionError)
            assert calls == [2]
        elif expect == "warn":
            with pytest.warns(CacheWarning, match=r"ran without the cache: the backend failed \(ConnectionError"):
                assert f(2) == 20
            assert calls == [2, 2]
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                assert f(2) == 20
            assert calls == [2, 2]
        assert cache.stats()["backend_errors"] == 1


def test_a_failed_lookup_in_a_coroutine_function_follows_the_policy() -> None:
    cache = FlakyReads()
    calls: list[int] = []

    @cache.memoize
    async def g(x: int) -> int:
        calls.append(x)
        return x + 1

    cache.down = True
    with pytest.warns(CacheWarning, match="ran without the cache"):
        assert asyncio.run(g(1)) == 2
    assert calls == [1]


def damage(folder: object) -> None:
    (path,) = glob.glob(os.path.join(str(folder), "*.json"))
    with open(path, "wb") as fh:
        fh.write(b'{"truncated')


def test_a_damaged_record_is_a_warned_miss_by_default_then_overwritten(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cache = JsonCache(tmp_path)
    f, calls = memoized(cache)
    f(3)
    damage(tmp_path)
    with pytest.warns(CacheWarning, match="damaged cache record") as caught:
        assert f(3) == 30
    assert len(caught) == 1 and calls == [3, 3]
    assert f(3) == 30 and calls == [3, 3]  # the fresh value replaced the damaged record
    assert cache.stats()["backend_errors"] == 1


def test_a_damaged_record_raises_under_raise_in_memoized_calls_and_the_direct_api(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cache = JsonCache(tmp_path, on_backend_error="raise")
    f, calls = memoized(cache)
    f(3)
    damage(tmp_path)
    with pytest.raises(ValueDecodingError, match=r"damaged cache record \(.*\.json\): invalid cached JSON"):
        f(3)
    with pytest.raises(ValueDecodingError):
        cache.get(f, x=3)
    assert calls == [3]


def test_a_damaged_record_is_a_silent_miss_under_ignore(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cache = JsonCache(tmp_path, on_backend_error="ignore")
    f, calls = memoized(cache)
    f(3)
    damage(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert f(3) == 30
        assert cache.get(f, x=3) == 30
    assert calls == [3, 3]


def test_an_unencodable_result_follows_the_policy(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import threading

    for policy in ("warn", "raise", "ignore"):
        cache = JsonCache(tmp_path / policy, on_backend_error=policy)

        @cache.memoize
        def lock() -> object:
            return threading.Lock()

        if policy == "raise":
            with pytest.raises(oxicache.ValueEncodingError, match="lock"):
                lock()
        elif policy == "warn":
            with pytest.warns(CacheWarning, match="lock"):
                lock()
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                lock()
        assert len(cache) == 0
