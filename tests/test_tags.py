"""``memoize(tags=...)`` and ``cache.invalidate(tags=...)`` (issue 14, item 5), on every storing backend."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pathlib import Path
from backends import STORING, make

from oxicache import InMemCache


@pytest.fixture(params=STORING)
def cache(request: pytest.FixtureRequest) -> Any:
    return make(request.param)


def test_static_tags_are_stored_and_invalidated(cache: Any) -> None:
    runs: list[str] = []

    @cache.memoize(tags=["users", "profiles"])
    def profile(uid: int) -> str:
        runs.append(f"p{uid}")
        return f"profile {uid}"

    @cache.memoize(tags=["orders"])
    def orders(uid: int) -> list[int]:
        runs.append(f"o{uid}")
        return [uid]

    profile(1), profile(2), orders(1)
    assert sorted(e.metadata["tags"] for e in cache) == [["orders"], ["profiles", "users"], ["profiles", "users"]]
    assert sorted(e.inputs["uid"] for e in cache.tagged(["users"])) == [1, 2]
    assert cache.invalidate(tags=["users", "nothing"]) == 2
    assert len(cache) == 1
    profile(1), orders(1)
    assert runs == ["p1", "p2", "o1", "p1"]  # the invalidated entry recomputed, the other one a hit
    assert cache.invalidate(tags=["nothing"]) == 0


def test_tags_computed_from_the_inputs(cache: Any) -> None:
    runs: list[int] = []

    @cache.memoize(tags=lambda inputs: [f"user:{inputs['uid']}", "feed"])
    def feed(uid: int, page: int = 0) -> str:
        runs.append(uid)
        return f"feed {uid}/{page}"

    feed(1), feed(1, 1), feed(2)
    assert cache.invalidate(tags=["user:1"]) == 2
    feed(1), feed(2)
    assert runs == [1, 1, 2, 1]
    assert cache.invalidate(tags=["feed"]) == 2
    assert len(cache) == 0


def test_tags_on_coroutine_functions(cache: Any) -> None:
    runs: list[int] = []

    @cache.memoize(tags=lambda inputs: [f"item:{inputs['item']}"])
    async def price(item: int) -> int:
        runs.append(item)
        return item * 10

    async def main() -> None:
        assert await price(1) == 10
        assert await price(1) == 10
        cache.invalidate(tags=["item:1"])
        assert await price(1) == 10

    asyncio.run(main())
    assert runs == [1, 1]


def test_static_tags_keep_the_native_engine() -> None:
    cache = InMemCache()

    @cache.memoize(tags=["a"])
    def f(x: int) -> int:
        return x

    assert type(f).__name__ == "Memoizer"
    f(1)
    assert cache.invalidate(tags=["a"]) == 1


def test_bad_tags() -> None:
    cache = InMemCache()
    with pytest.raises(TypeError, match="tags must be a list of str, got the string 'users'; write \\['users'\\]"):
        cache.memoize(tags="users")(lambda x: x)
    with pytest.raises(TypeError, match="tags must contain non-empty str, got 3"):
        cache.memoize(tags=["a", 3])(lambda x: x)

    @cache.memoize(tags=lambda inputs: [inputs["x"]])
    def f(x: Any) -> Any:
        return x

    with pytest.raises(TypeError, match="the tags .* returned must contain non-empty str, got 5"):
        f(5)
    with pytest.raises(TypeError, match="tags must be a list of str"):
        cache.invalidate(tags="a")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "mysql", "redis", "json", "disk"])
def test_invalidate_goes_through_a_tag_index(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = make(backend)

    @cache.memoize(tags=lambda inputs: [f"user:{inputs['uid']}"])
    def f(uid: int) -> int:
        return uid

    for uid in range(20):
        f(uid)

    def no_scan() -> Any:
        raise AssertionError("invalidate read every entry")

    monkeypatch.setattr(cache, "_iter", no_scan)
    assert cache.invalidate(tags=["user:3", "user:7", "user:99"]) == 2
    monkeypatch.undo()  # len() reads entries on Redis
    assert len(cache) == 18
    assert sorted(e.inputs["uid"] for e in cache if e.inputs["uid"] in (2, 3, 7, 8)) == [2, 8]
    cache.clear()
    f(3)
    assert cache.invalidate(tags=["user:3"]) == 1


def test_a_store_made_before_tags_gets_its_index(tmp_path: Any) -> None:
    import sqlite3

    from oxicache import DatabaseCache

    path = str(tmp_path / "old.db")
    old = DatabaseCache(provider="sqlite", database=path)
    old.set("f", output=1, x=1)
    old.close()
    with sqlite3.connect(path) as conn:  # as an oxicache without tags left it
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for name in tables:
            if name.endswith("_tags"):
                conn.execute(f"DROP TABLE {name}")
    cache = DatabaseCache(provider="sqlite", database=path)
    assert cache.get("f", x=1) == 1

    @cache.memoize(tags=["t"])
    def g(x: int) -> int:
        return x

    g(1)
    assert cache.invalidate(tags=["t"]) == 1
    assert cache.get("f", x=1) == 1


def _tag_index_rows(backend: str, cache: Any) -> int:
    """What the backend's tag index holds: marker files (JsonCache) or rows (DiskCache)."""
    import glob
    import sqlite3

    if backend == "json":
        return len(glob.glob(str(Path(cache.path) / "index" / "tags" / "*" / "*")))
    with sqlite3.connect(Path(cache.path) / "cache.db") as con:
        return int(con.execute("SELECT COUNT(*) FROM oxicache_tags").fetchone()[0])


@pytest.mark.parametrize("backend", ["json", "disk"])
def test_the_file_backends_tag_index_follows_the_entry(backend: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The tag index of JsonCache (marker files naming the entry file) and DiskCache (a table beside
    diskcache's): an entry stored again without the tag is not invalidated by it, an entry stored again
    with it is (once), expired entries are removed but not counted, invalidate and clear() leave nothing
    of the tags behind, and no invalidate reads every entry."""
    import os

    from oxicache import DiskCache, JsonCache

    cache = JsonCache(tmp_path) if backend == "json" else DiskCache(tmp_path)
    cache.set("f", output=1, x=1, metadata={"tags": ["a"]})
    cache.set("f", output=2, x=2, metadata={"tags": ["a", "b"]})
    cache.set("f", output=3, x=3, metadata={"tags": ["a"]})
    cache.set("f", output=30, x=3)  # stored again, without the tag: its old marker is stale
    cache.set("f", output=2, x=2, metadata={"tags": ["a", "b"]})  # stored again with both tags
    cache.set("f", output=4, x=4, metadata={"tags": ["b"]}, ttl=1)
    if backend == "json":
        real_time = cache._clock
        monkeypatch.setattr(cache, "_clock", lambda: real_time() + 5)  # x=4 has expired
    else:
        import diskcache
        import time as real

        class Later:
            def __getattr__(self, name: str) -> Any:
                return getattr(real, name)

            @staticmethod
            def time() -> float:
                return real.time() + 5

        from oxicache.backends import disk

        monkeypatch.setattr(diskcache.core, "time", Later())  # x=4 has expired, for diskcache
        monkeypatch.setattr(disk, "time", Later())  # and for DiskCache's own listing

    def no_scan() -> Any:
        raise AssertionError("invalidate read every entry")

    with monkeypatch.context() as scan:
        scan.setattr(cache, "_iter", no_scan)
        assert cache.invalidate(tags=["a", "b"]) == 2  # x=1 and x=2; x=4 expired; x=3 untagged now
    assert [(e.inputs["x"], e.output) for e in cache] == [(3, 30)]
    assert _tag_index_rows(backend, cache) == 0  # every row or marker of the two tags went
    cache.set("f", output=5, x=5, metadata={"tags": ["c"]})
    assert _tag_index_rows(backend, cache) == 1
    cache.clear()
    assert len(cache) == 0 and _tag_index_rows(backend, cache) == 0
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".json")]
    cache.close()
