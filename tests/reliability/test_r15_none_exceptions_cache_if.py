"""Matrix row R15: None, exceptions and ``cache_if``, on every storing backend.

- ``None`` is a value like any other: stored, and a hit afterwards. The miss sentinel of the direct API
  is ``...`` (``cache.get`` returns it on a miss), and an entry's output of ``...`` means "no output"
  (``set()`` without ``output=``, an imported line without one): such an entry answers no memoized call
  (issue 17), so a function returning ``...`` runs each time and nothing is stored for it;
  ``exists()``/``retrieve()`` still tell an entry without output from a miss.
- Exceptions are never cached: the caller gets the very exception object the function raised (same
  type, message and traceback, whose innermost frame is in the function), nothing is stored, and the
  next call runs the function again.
- ``cache_if`` rejecting an empty (LLM-like) output: the output is returned, not stored.
- Adapted: ``cache_exceptions=`` (replaying opted-in exceptions) does not exist in oxicache; the
  decorator rejects the keyword (TypeError) rather than ignoring it, which is asserted.
"""

from __future__ import annotations

import traceback

import pytest
from backends import STORING, make

from oxicache import CacheEntry


class NotFound(LookupError):
    def __init__(self, what: str) -> None:
        super().__init__(f"no such thing: {what}")
        self.what = what


@pytest.mark.parametrize("name", STORING)
def test_none_is_stored_and_hits(name: str) -> None:
    cache = make(name)
    runs: list[int] = []

    @cache.memoize
    def f(x: int) -> None:
        runs.append(x)

    assert f(1) is None
    assert f(1) is None
    assert runs == [1]
    info = f.cache_info()
    assert (info.hits, info.misses, info.currsize) == (1, 1, 1)
    assert cache.exists(f, x=1)
    assert cache.get(f, x=1) is None  # not the miss sentinel
    assert cache.get(f, x=2) is ...


@pytest.mark.parametrize("name", STORING)
def test_ellipsis_means_no_output_and_is_never_a_hit(name: str) -> None:
    cache = make(name)
    runs: list[int] = []

    @cache.memoize
    def f(x: int) -> object:
        runs.append(x)
        return ...

    assert f(1) is ...
    assert f(1) is ...
    assert runs == [1, 1]  # `...` is no output: not stored, so never replayed
    assert not cache.exists(f, x=1)
    cache.set(f, x=1)  # an entry without output: there, but no answer
    assert f(1) is ... and runs == [1, 1, 1]
    assert cache.exists(f, x=1) and not cache.exists(f, x=2)
    entry = cache.retrieve(f, x=1)
    assert isinstance(entry, CacheEntry) and entry.output is ...
    assert cache.retrieve(f, x=2) is ...


@pytest.mark.parametrize("name", STORING)
def test_exceptions_are_not_cached_and_reach_the_caller_unchanged(name: str) -> None:
    cache = make(name)
    raised: list[BaseException] = []
    fail = [True]

    @cache.memoize
    def lookup(x: int) -> str:
        if fail[0]:
            err = NotFound(f"item {x}")
            raised.append(err)
            raise err
        return f"item {x}"

    for attempt in (1, 2):
        with pytest.raises(NotFound) as caught:
            lookup(7)
        assert caught.value is raised[-1]  # the same object: type, message and attributes
        assert type(caught.value) is NotFound and str(caught.value) == "no such thing: item 7"
        assert caught.value.what == "item 7"
        frames = traceback.extract_tb(caught.value.__traceback__)
        assert frames[-1].name == "lookup" and frames[-1].line == "raise err"  # points into the function
        assert len(raised) == attempt  # not cached: the function ran again
        assert not cache.exists(lookup, x=7)
        assert len(cache) == 0
    assert lookup.cache_info().errors == 2
    fail[0] = False
    assert lookup(7) == "item 7"
    assert lookup(7) == "item 7"
    assert lookup.cache_info().currsize == 1


@pytest.mark.parametrize("name", STORING)
def test_cache_if_rejected_output_is_returned_not_stored(name: str) -> None:
    cache = make(name)
    outputs = iter(["", "", "a real answer"])
    runs: list[str] = []

    @cache.memoize(cache_if=lambda text: bool(text.strip()))
    def complete(prompt: str) -> str:
        out = next(outputs)
        runs.append(out)
        return out

    assert complete("hi") == ""
    assert not cache.exists(complete, prompt="hi") and len(cache) == 0
    assert complete("hi") == ""  # asked again: not stored, so computed again
    assert complete("hi") == "a real answer"
    assert complete("hi") == "a real answer"
    assert runs == ["", "", "a real answer"]
    assert cache.get(complete, prompt="hi") == "a real answer"
    assert complete.cache_info().sets == 1


def test_cache_exceptions_is_not_an_option() -> None:
    cache = make("inmem")
    with pytest.raises(TypeError, match="cache_exceptions"):
        cache.memoize(cache_exceptions=(NotFound,))  # type: ignore[call-overload]
