"""Key derivation: oxicache's native 128-bit key against the stdlib json + md5 recipe, in one run.

Both sides are plain module-level functions called by pytest-benchmark's loop, so they pay the same
call overhead.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

import oxicache.keys
from oxicache import CacheEntry

NESTED = {
    "a": 1,
    "opts": {"depth": 3, "tags": ["x", "y", "z"], "flags": {"fast": True, "safe": False}},
    "scale": 2.0,
    "name": "pkg.module.fn",
    "items": [1, 2.5, "three", None, [4, 5]],
}


def key_oxicache() -> int:
    return CacheEntry.from_args(func="f", x=1, y="abc").key


def key_json_md5() -> int:
    return int(hashlib.md5(json.dumps({"func": "f", "inputs": {"x": 1, "y": "abc"}}, sort_keys=True).encode()).hexdigest(), 16)


@pytest.mark.benchmark(group="key")
def test_key_oxicache_from_args(benchmark: Any) -> None:
    benchmark.extra_info["call"] = 'CacheEntry.from_args(func="f", x=1, y="abc").key'
    key = benchmark(key_oxicache)
    assert 0 <= key < 1 << 128
    assert key == key_oxicache()  # deterministic


@pytest.mark.benchmark(group="key")
def test_key_of_prebuilt_inputs(benchmark: Any) -> None:
    """The key computation alone: no CacheEntry object, inputs dict built once."""
    inputs = {"x": 1, "y": "abc"}
    key = benchmark(oxicache.keys.key_of, "f", inputs)
    assert key == key_oxicache()


@pytest.mark.benchmark(group="key")
def test_key_json_md5_baseline(benchmark: Any) -> None:
    benchmark.extra_info["call"] = 'int(md5(json.dumps({"func": "f", "inputs": {...}}, sort_keys=True).encode()).hexdigest(), 16)'
    key = benchmark(key_json_md5)
    assert 0 <= key < 1 << 128


@pytest.mark.benchmark(group="canonical bytes, nested dict")
def test_canonical_bytes_nested(benchmark: Any) -> None:
    out = benchmark(oxicache.keys.canonical_bytes, NESTED)
    benchmark.extra_info["bytes"] = len(out)
    assert isinstance(out, bytes) and out == oxicache.keys.canonical_bytes(dict(reversed(list(NESTED.items()))))


@pytest.mark.benchmark(group="canonical bytes, nested dict")
def test_json_dumps_sorted_nested_baseline(benchmark: Any) -> None:
    """Reference: the stdlib canonical-ish serialization of the same dict (no digest)."""
    out = benchmark(json.dumps, NESTED, sort_keys=True)
    benchmark.extra_info["bytes"] = len(out)
