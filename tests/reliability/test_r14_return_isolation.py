"""Matrix row R14: return-value isolation, the same assertions per policy on every storing backend.

oxicache has no configurable copy policy; each backend has one fixed, documented policy
(ARCHITECTURE section 3, the backends' docstrings):

- InMemCache keeps the Python object itself, as ``functools.lru_cache`` does: a hit returns the very
  object the function returned, so a caller's mutation is visible to the next caller (identity policy).
- Persistent backends (DiskCache, JsonCache, DatabaseCache) store an encoding: every hit is a fresh
  decode, so a caller's mutation never reaches the cache or another caller (fresh-copy policy).
- TieredCache answers from its front, an InMemCache, while the front holds the entry: the identity policy
  (its back keeps the encoding, so other processes get the value as it was returned).

The row's DataFrame is replaced by a numpy array (the codec stores numpy arrays; pandas objects are not
in the value model). Mutations are made to the value a memoized call returned, and to the value
``cache.get`` returned.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest
from backends import STORING, is_persistent, make


def as_list() -> list[Any]:
    return [1, [2, 3], {"k": "v"}]


def as_dict() -> dict[str, Any]:
    return {"a": [1, 2], "b": {"c": 3}}


def as_array() -> np.ndarray:
    return np.arange(6, dtype=np.int64).reshape(2, 3)


def mutate_list(v: list[Any]) -> None:
    v.append("junk")
    v[1].append(99)


def mutate_dict(v: dict[str, Any]) -> None:
    v["a"].append(99)
    v["b"]["c"] = "changed"
    v["new"] = 1


def mutate_array(v: np.ndarray) -> None:
    v[0, 0] = 99
    v *= 2


KINDS = {"list": (as_list, mutate_list), "dict": (as_dict, mutate_dict), "ndarray": (as_array, mutate_array)}


def same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape and bool((a == b).all())
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("name", STORING)
def test_a_callers_mutation_follows_the_backends_policy(name: str) -> None:
    cache = make(name)
    for kind, (make_value, mutate) in KINDS.items():
        check(cache, kind, make_value, mutate)


def check(cache: Any, kind: str, make_value: Callable[[], Any], mutate: Callable[[Any], None]) -> None:
    runs = []

    @cache.memoize(name=kind)
    def f(x: int) -> Any:
        runs.append(x)
        return make_value()

    first = f(1)
    mutate(first)
    second = f(1)
    assert len(runs) == 1, kind  # a hit either way
    # A TieredCache's front is an InMemCache: a front hit is the object itself, as there.
    if is_persistent(cache) and type(cache).__name__ != "TieredCache":
        assert same(second, make_value()), kind  # the original, not the caller's mutated copy
        assert second is not first
        mutate(second)
        third = f(1)
        assert same(third, make_value()) and third is not second, kind
        got = cache.get(f, x=1)
        mutate(got)
        assert same(cache.get(f, x=1), make_value()), kind
    else:
        assert second is first, kind  # identity, as functools.lru_cache
        assert cache.get(f, x=1) is first
        expected = make_value()
        mutate(expected)
        assert same(second, expected), kind  # the caller's mutation is what the cache now holds
