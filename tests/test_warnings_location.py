"""Warnings point at the user's line (issue 16, item 6): the memoized call or the decoration in this file,
never oxicache's wrappers, engine or backends, whichever path (plain, coroutine, generator, batch) the
call took. A failing store, a damaged record and an unencodable result are real (files on disk)."""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import threading
import warnings

import pytest

from oxicache import CacheWarning, DiskCache, IdentityWarning, JsonCache


def recorded(call):  # type: ignore[no-untyped-def]
    """The warnings ``call()`` issues, with every filter set to show them."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    return caught


def assert_here(caught, category, match):  # type: ignore[no-untyped-def]
    mine = [w for w in caught if issubclass(w.category, category) and match in str(w.message)]
    assert mine, [str(w.message) for w in caught]
    for w in mine:
        assert w.filename == __file__, (w.filename, w.lineno, str(w.message))


def test_an_unencodable_result_warns_at_the_call_in_every_kind_of_function(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cache = JsonCache(tmp_path)

    @cache.memoize
    def plain(x: int) -> object:
        return threading.Lock()

    @cache.memoize
    async def coroutine(x: int) -> object:
        return threading.Lock()

    @cache.memoize
    def generator(x: int):  # type: ignore[no-untyped-def]
        yield threading.Lock()

    @cache.batch_memoize
    def batch(xs: list[int]) -> list[object]:
        return [threading.Lock() for _ in xs]

    assert_here(recorded(lambda: plain(1)), CacheWarning, "was not cached")
    async def main() -> object:
        return await coroutine(2)

    assert_here(recorded(lambda: asyncio.run(main())), CacheWarning, "was not cached")
    assert_here(recorded(lambda: asyncio.run(coroutine(1))), CacheWarning, "was not cached")  # the task itself
    assert_here(recorded(lambda: list(generator(1))), CacheWarning, "was not cached")
    assert_here(recorded(lambda: batch([1, 2])), CacheWarning, "not cached")


def test_a_damaged_record_warns_at_the_call(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cache = JsonCache(tmp_path)

    @cache.memoize
    def f(x: int) -> int:
        return x * 10

    f(3)
    (path,) = glob.glob(os.path.join(str(tmp_path), "*.json"))
    with open(path, "wb") as fh:
        fh.write(b'{"truncated')
    assert_here(recorded(lambda: f(3)), CacheWarning, "damaged cache record")


def test_a_failing_store_warns_at_the_call(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cache = DiskCache(tmp_path / "store")

    @cache.memoize
    def f(x: int) -> int:
        return x + 1

    cache.close()
    shutil.rmtree(tmp_path / "store")
    (tmp_path / "store").write_text("not a folder any more")  # the backend cannot reopen its database
    caught = recorded(lambda: f(1))
    assert_here(caught, CacheWarning, "the backend failed")


def test_a_closure_on_a_persistent_store_is_explained_once_at_its_decoration(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cache = JsonCache(tmp_path)

    def make(n: int):  # type: ignore[no-untyped-def]
        return cache.memoize(lambda x: x + n)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        add1 = make(1)
        add2 = make(2)  # the same lambda again: said once per process
        named = cache.memoize(name="tests.add")(lambda x: x)  # a stable identity: nothing to say
    said = [w for w in caught if issubclass(w.category, IdentityWarning)]
    assert len(said) == 1, [str(w.message) for w in caught]
    message = str(said[0].message)
    assert "<lambda>" in message and "fingerprint" in message and "name=" in message
    assert said[0].filename == __file__
    assert (add1(1), add2(1), named(5)) == (2, 3, 5)


def test_a_closure_in_memory_is_not_warned_about() -> None:
    from oxicache import InMemCache

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        f = InMemCache().memoize(lambda x: x)  # identity per decoration: nothing to explain
    assert f(1) == 1


@pytest.mark.filterwarnings("error")
def test_identity_warning_is_a_cache_warning_users_can_filter() -> None:
    assert issubclass(IdentityWarning, CacheWarning)
