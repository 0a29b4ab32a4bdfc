"""The backend contract suite, for oxicache's backends and yours (run with pytest).

Subclass ``BackendContract`` in a test module, name it ``Test...``, and say how to build an empty cache of
your backend; pytest then runs every behaviour the layers above a backend rely on, selected by the
capabilities the backend declares (``cache.capabilities``)::

    from oxicache.testing import BackendContract
    from mypackage import MyCache

    class TestMyCache(BackendContract):
        def make_cache(self, tmp_path, **options):
            return MyCache(tmp_path / "store", **options)

        def reopen(self, cache, tmp_path):  # optional: a second instance on the same store
            return MyCache(tmp_path / "store")

``options`` are ``BaseCache``'s (``ttl=``, ``exclude=``, ``on_backend_error=``): pass them through to
``BaseCache.__init__``. oxicache runs this suite on every built-in backend and on the example backend of
docs/backends/writing-a-backend.md (tests/contract/).

The module is also a pytest plugin (registered by the ``pytest11`` entry point, so installing oxicache is
enough) with two fixtures for testing code that uses oxicache (docs/testing.md):

- ``oxicache_bypass``: every memoized call the test makes runs the function and stores nothing;
- ``oxicache_isolated``: a fresh ``InMemCache`` and a fresh folder for the test, the LLM cache folder
  (``cache=True``) moved into the test's temporary folder, and ``oxicache.memoize``'s cache emptied before
  and after the test.
"""

from __future__ import annotations

import asyncio
import pathlib
import threading
import time
from typing import Any

import dataclasses
import os
import sys
from typing import Iterator

import pytest

from oxicache import BaseCache, CacheEntry, InMemCache, bypass, default_cache

__all__ = ["BackendContract", "Isolated", "oxicache_bypass", "oxicache_isolated"]


# ---- the pytest plugin's fixtures -------------------------------------------------------------------


@pytest.fixture
def oxicache_bypass() -> Iterator[None]:
    """Memoized calls made by the test (in its thread, and in tasks it starts) run the function and
    store nothing, as inside ``with oxicache.bypass():``. Threads the test starts are not covered (a
    context variable): for those, set ``OXICACHE_DISABLE=1`` before the functions are decorated."""
    with bypass():
        yield


@dataclasses.dataclass(frozen=True)
class Isolated:
    """What ``oxicache_isolated`` gives a test."""

    #: A fresh, empty in-memory cache of the test's own.
    cache: InMemCache
    #: An empty folder of the test's own, for persistent caches (``DiskCache(isolated.folder / "c")``).
    folder: pathlib.Path
    #: The folder ``LLM(cache=True)`` uses during the test (inside the test's temporary folder).
    llm_cache_dir: pathlib.Path


@pytest.fixture
def oxicache_isolated(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Isolated]:
    """An isolated cache and folder for the test; the LLM cache folder and ``oxicache.memoize``'s
    process-wide cache are isolated too (see ``Isolated``)."""
    from oxicache.llm.caches import default_cache_dir

    user_cache = tmp_path / "user-cache"  # what default_cache_dir() reads, on each system
    monkeypatch.setenv("XDG_CACHE_HOME", str(user_cache))
    monkeypatch.setenv("LOCALAPPDATA", str(user_cache))
    if sys.platform == "darwin":
        monkeypatch.setenv("HOME", str(user_cache))
    folder = tmp_path / "oxicache"
    os.makedirs(folder)
    default_cache().clear()
    cache = InMemCache()
    try:
        yield Isolated(cache=cache, folder=folder, llm_cache_dir=default_cache_dir())
    finally:
        cache.clear()
        default_cache().clear()

# Values every backend must give back as they were stored (the codec's common types).
VALUES: list[Any] = [0, -7, 2**70, 1.5, "text", "ünï", b"\x00bytes", None, True, [1, [2, "x"]], (1, "a"),
                     {"a": 1, "b": [1.5, None]}, {"nested": {"t": (1, 2)}}]


class BackendContract:
    """The behaviour every backend shows through the public API. Override ``make_cache``; override
    ``reopen`` when another instance (or process) can open the same store."""

    # ---- what a backend's test says --------------------------------------------------------------
    #: False for a backend that accepts entries but never gives them back (CallbackCache without feeds: a
    #: log of calls); such a backend is checked to behave as one that stores nothing.
    reads_back: bool = True
    #: Seconds a change made through another instance may take to be seen through this one (0: at once;
    #: a TieredCache's front hears of it by a message from the back).
    sees_changes_within: float = 0.0

    def make_cache(self, tmp_path: pathlib.Path, **options: Any) -> BaseCache:
        raise NotImplementedError("BackendContract needs make_cache(tmp_path, **options): an empty cache")

    def reopen(self, cache: BaseCache, tmp_path: pathlib.Path) -> BaseCache | None:
        """A second instance on the same store as ``cache``, or None (the default) when there is none."""
        return None

    # ---- fixtures ----------------------------------------------------------------------------------
    @pytest.fixture
    def cache(self, tmp_path: pathlib.Path) -> Any:
        made = self.make_cache(tmp_path)
        yield made
        made.close()

    def stores(self, cache: BaseCache) -> bool:
        return self.reads_back and not cache.capabilities.stores_nothing

    # ---- the manual API ------------------------------------------------------------------------------
    def test_a_stored_value_reads_back_equal_and_a_missing_one_is_ellipsis(self, cache: BaseCache) -> None:
        for i, value in enumerate(VALUES):
            cache.set("f", output=value, i=i)
        for i, value in enumerate(VALUES):
            got = cache.get("f", i=i)
            if self.stores(cache):
                assert got == value and type(got) is type(value), (i, value, got)
            else:
                assert got is ...
        assert cache.get("f", i=len(VALUES)) is ...
        assert cache.get("g", i=0) is ...

    def test_entries_are_found_by_key_counted_listed_and_removed(self, cache: BaseCache) -> None:
        cache.set("f", output=1, x=1)
        cache.set("f", output=2, x=2)
        cache.set("g", output=3, x=1)
        probe = CacheEntry("f", {"x": 1})
        if not self.stores(cache):
            assert len(cache) == 0 and list(cache) == [] and probe not in cache
            return
        assert len(cache) == 3 and probe in cache and probe.key in cache
        assert cache[probe.key].output == 1
        listed = sorted((e.func, e.inputs["x"], e.output) for e in cache)
        assert listed == [("f", 1, 1), ("f", 2, 2), ("g", 1, 3)]
        assert all(e.key == CacheEntry(e.func, e.inputs).key for e in cache.iter_entries())
        assert cache.remove("f", x=1) is True and cache.remove("f", x=1) is False
        assert probe not in cache and len(cache) == 2
        cache.clear()
        assert len(cache) == 0 and list(cache) == []

    def test_a_later_set_replaces_an_entry_and_annotate_keeps_its_output(self, cache: BaseCache) -> None:
        if not self.stores(cache):
            pytest.skip("the backend stores nothing")
        cache.set("f", output=1, x=1)
        cache.set("f", output=2, x=1)
        assert cache.get("f", x=1) == 2 and len(cache) == 1
        entry = cache.annotate("f", x=1, expected=5)
        assert entry.output == 2 and cache.get("f", x=1) == 5  # get returns expected once annotated
        found = cache.retrieve("f", x=1)
        assert found is not ... and found.output == 2

    def test_a_value_the_codec_cannot_store_is_refused_or_kept_never_half_written(self, cache: BaseCache) -> None:
        lock = threading.Lock()  # no codec stores a lock
        try:
            cache.set("f", output=lock, x=1)
        except (TypeError, ValueError):
            assert cache.get("f", x=1) is ...  # refused before anything was written
        else:
            assert cache.get("f", x=1) in (lock, ...)  # kept as the object (in memory), or not at all

    def test_ttl_expires_entries(self, cache: BaseCache) -> None:
        if not (self.stores(cache) and cache.capabilities.ttl):
            pytest.skip("the backend declares no TTL, or stores nothing")
        cache.set("f", output=1, ttl=0.2, x=1)
        cache.set("f", output=2, x=2)
        assert cache.get("f", x=1) == 1
        time.sleep(0.35)
        assert cache.get("f", x=1) is ... and cache.get("f", x=2) == 2
        assert [e.inputs["x"] for e in cache] == [2]

    def test_per_function_count_and_clear(self, cache: BaseCache) -> None:
        for x in range(3):
            cache.set("f", output=x, x=x)
        cache.set("g", output=0, x=0)
        expected = (3, 1) if self.stores(cache) else (0, 0)
        assert (cache.count_function("f"), cache.count_function("g")) == expected
        assert cache.clear_function("f") == expected[0]
        assert cache.count_function("f") == 0 and cache.count_function("g") == expected[1]

    def test_verify_finds_nothing_wrong_with_a_sound_store(self, cache: BaseCache) -> None:
        for x in range(5):
            cache.set("f", output={"x": x}, x=x)
        assert cache.verify() == []

    # ---- memoize ----------------------------------------------------------------------------------
    def test_memoize_runs_a_function_once_per_arguments(self, cache: BaseCache) -> None:
        runs: list[int] = []

        @cache.memoize
        def square(x: int) -> int:
            runs.append(x)
            return x * x

        assert [square(2), square(3), square(2), square(x=3)] == [4, 9, 4, 9]
        assert runs == ([2, 3] if self.stores(cache) else [2, 3, 2, 3])
        info = square.cache_info()
        assert (info.hits, info.misses) == ((2, 2) if self.stores(cache) else (0, 4))
        square.cache_clear()
        square(2)
        assert runs[-1] == 2 and square.cache_info().misses == 1

    def test_memoize_never_stores_an_exception(self, cache: BaseCache) -> None:
        runs: list[int] = []

        @cache.memoize
        def fails_once(x: int) -> int:
            runs.append(x)
            if len(runs) == 1:
                raise ValueError("first call fails")
            return x

        with pytest.raises(ValueError, match="first call fails"):
            fails_once(1)
        assert fails_once(1) == 1 and len(runs) == 2

    def test_memoize_coroutine_functions(self, cache: BaseCache) -> None:
        runs: list[int] = []

        @cache.memoize
        async def double(x: int) -> int:
            runs.append(x)
            await asyncio.sleep(0)
            return 2 * x

        async def main() -> list[int]:
            return [await double(1), await double(2), await double(1)]

        assert asyncio.run(main()) == [2, 4, 2]
        assert runs == ([1, 2] if self.stores(cache) else [1, 2, 1])

    def test_memoize_generators_store_only_a_complete_run(self, cache: BaseCache) -> None:
        runs: list[int] = []

        @cache.memoize
        def count(n: int) -> Any:
            runs.append(n)
            yield from range(n)

        partial = count(3)
        assert next(partial) == 0
        partial.close()  # abandoned: nothing stored
        assert list(count(3)) == [0, 1, 2]
        assert list(count(3)) == [0, 1, 2]
        assert runs == ([3, 3] if self.stores(cache) else [3, 3, 3])

    def test_memoize_async_generators(self, cache: BaseCache) -> None:
        runs: list[int] = []

        @cache.memoize
        async def ticks(n: int) -> Any:
            runs.append(n)
            for i in range(n):
                yield i

        async def main() -> list[list[int]]:
            return [[i async for i in ticks(2)] for _ in range(2)]

        assert asyncio.run(main()) == [[0, 1], [0, 1]]
        assert runs == ([2] if self.stores(cache) else [2, 2])

    def test_batch_memoize_computes_only_the_missing_items(self, cache: BaseCache) -> None:
        batches: list[list[int]] = []

        @cache.batch_memoize
        def squares(xs: list[int]) -> list[int]:
            batches.append(list(xs))
            return [x * x for x in xs]

        assert squares([1, 2]) == [1, 4]
        assert squares([2, 3, 1]) == [4, 9, 1]
        assert batches == ([[1, 2], [3]] if self.stores(cache) else [[1, 2], [2, 3, 1]])

    def test_concurrent_misses_of_one_key_run_the_function_once(self, cache: BaseCache) -> None:
        if not self.stores(cache):
            pytest.skip("the backend stores nothing: every call runs")
        runs: list[int] = []
        started = threading.Barrier(6)

        @cache.memoize
        def slow(x: int) -> int:
            runs.append(x)
            time.sleep(0.2)
            return x

        def call() -> None:
            started.wait(5)
            assert slow(7) == 7

        threads = [threading.Thread(target=call) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert runs == [7]

    # ---- across instances ------------------------------------------------------------------------
    def test_another_instance_on_the_store_sees_the_entries(self, cache: BaseCache, tmp_path: pathlib.Path) -> None:
        other = self.reopen(cache, tmp_path)
        if other is None:
            pytest.skip("no second instance on the same store (reopen() returns None)")
        try:
            cache.set("f", output=[1, "two"], x=1)
            assert other.get("f", x=1) == [1, "two"]
            other.remove("f", x=1)
            deadline = time.monotonic() + self.sees_changes_within
            while cache.get("f", x=1) is not ... and time.monotonic() < deadline:
                time.sleep(0.01)
            assert cache.get("f", x=1) is ...
        finally:
            other.close()
