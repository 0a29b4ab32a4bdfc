"""R18 of the reliability matrix: file-backend path safety, on JsonCache and DiskCache.

Hostile strings (``../``, ``..\\``, absolute POSIX and Windows paths, NUL, 300-byte names, ``CON``/``NUL``,
``.``/``..``, Unicode NFC vs NFD, case-only differences, ...) are used as function names (``name=`` of
memoize and the ``func`` of ``cache.set``), as input names and values, as metadata keys and values, and as
outputs and expected values. Checked: every path the cache creates realpaths inside its folder (the tree
is walked before and after, plus the parent folder), nothing raises, distinct (func, inputs) never collide
(one entry each, NFC and NFD are different keys, so are case-only variants), lookups are stable (twice,
and from a second instance opened on the same folder), and values and metadata round-trip exactly.

The matrix row's "namespaces" do not exist in oxicache (the function identity is the namespace), so
they are the function names here.
"""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from backends import SPECS, make
from reliability_support import expected_value

import oxicache
from oxicache import CacheEntry

CAFE_NFC = unicodedata.normalize("NFC", "café")
CAFE_NFD = unicodedata.normalize("NFD", "café")
HOSTILE = [
    "../escape", "../../../../../../tmp/oxicache-r18", "..\\escape", "..\\..\\windows", "/etc/passwd",
    "/tmp/oxicache-r18-abs", "C:\\Windows\\system32", "\\\\server\\share\\x", "a\x00b", "\x00", "n" * 300,
    "é" * 150, "CON", "NUL", "con", "nul.json", "COM1", "LPT1.txt", "AUX", ".", "..", "...", " ", "./.", "~",
    "$HOME", "a/b/c", "a\\b\\c", CAFE_NFC, CAFE_NFD, "Straße", "STRASSE", "strasse", "ABC", "abc", "Abc",
    "x\ny", "tab\there", "*?<>|\"':", "\u202eevil", "🐍/🐍",
]
assert CAFE_NFC != CAFE_NFD and len(set(HOSTILE)) == len(HOSTILE)


@pytest.fixture(params=["json", "disk"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


def tree(root: Path) -> set[str]:
    found = set()
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            found.add(os.path.join(folder, name))
    return found


def inside(path: str, root: str) -> bool:
    real = os.path.realpath(path)
    return real == root or real.startswith(root + os.sep)


def folder_of(cache: Any) -> Path:
    return Path(SPECS[id(cache)][1][0])


def reopen(cache: Any) -> Any:
    cls_name, args, kwargs = SPECS[id(cache)]
    return getattr(oxicache, cls_name)(*args, **kwargs)


def value_for(func: str, inputs: dict[str, Any]) -> list[Any]:
    """The value stored for (func, inputs): the hostile strings themselves plus the oracle's bytes (40 KB
    for hostile function names, so DiskCache writes value files too)."""
    size = 40_000 if inputs == {"x": 1} else 40
    return [func, sorted(inputs.items()), expected_value((func, sorted(inputs.items())), size)]


def calls() -> list[tuple[str, dict[str, Any]]]:
    """(func, inputs) pairs: each hostile string as a function name, an input value and an input name."""
    pairs = [(h, {"x": 1}) for h in HOSTILE]
    pairs += [("r18.f", {"x": h}) for h in HOSTILE]
    pairs += [("r18.g", {h: 1}) for h in HOSTILE]
    return pairs


def test_hostile_names_inputs_and_metadata(backend: str, tmp_path: Path) -> None:
    cache = make(backend)
    root = folder_of(cache)
    real_root = os.path.realpath(root)
    parent_before = set(os.listdir(root.parent))
    before = tree(root)
    pairs = calls()
    for func, inputs in pairs:
        metadata = {"note": func, "inputs": list(inputs), **{k: list(inputs.values()) for k in inputs}}
        cache.set(func, inputs, output=value_for(func, inputs), expected=func, metadata=metadata)

    created = tree(root) - before
    assert created, "nothing was written"
    escaped = sorted(p for p in created if not inside(p, real_root))
    assert not escaped, f"paths outside the cache folder: {escaped}"
    assert set(os.listdir(root.parent)) == parent_before, "files appeared beside the cache folder"
    assert not any(Path("/tmp").glob("oxicache-r18*")), "an absolute path name reached the file system"

    keys = {CacheEntry(func, inputs).key for func, inputs in pairs}
    assert len(keys) == len(pairs), "two distinct calls share a key"
    assert len(cache) == len(pairs)
    if backend == "json":
        entry_files = [p for p in created if p.endswith(".json")]
        assert len(entry_files) == len(pairs)
        names = [os.path.basename(p) for p in entry_files]
        assert len({n.lower() for n in names}) == len(names), "file names differ only by case"

    second = reopen(cache)
    for c in (cache, cache, second):  # twice, then from another instance on the same folder
        for func, inputs in pairs:
            entry = c.retrieve(func, inputs)
            assert entry is not ..., (func, inputs)
            assert entry.output == value_for(func, inputs), (func, inputs)
            assert entry.expected == func and entry.func == func and entry.inputs == inputs
            assert entry.metadata == {"note": func, "inputs": list(inputs), **{k: list(inputs.values()) for k in inputs}}
    out = {(f, repr(i)): second.retrieve(f, i).output for f, i in pairs}
    assert out[(CAFE_NFC, repr({"x": 1}))] != out[(CAFE_NFD, repr({"x": 1}))]
    assert out[("r18.f", repr({"x": "ABC"}))] != out[("r18.f", repr({"x": "abc"}))]
    assert second.verify() == []
    second.close()
    cache.close()
    assert all(inside(p, real_root) for p in tree(root) - before), "a path outside the folder after reopening"


def test_hostile_memoized_names(backend: str) -> None:
    cache = make(backend)
    root = os.path.realpath(folder_of(cache))
    before = tree(Path(root))
    runs: list[tuple[str, str]] = []
    for name in HOSTILE:
        fn = cache.memoize(name=name)(lambda x, _name=name: runs.append((_name, x)) or [_name, x])
        for x in (CAFE_NFC, CAFE_NFD, "../x", "ABC", "abc"):
            assert fn(x) == [name, x]
            assert fn(x) == [name, x]
    assert len(runs) == len(HOSTILE) * 5, "a hostile name or input collided with another"
    assert all(inside(p, root) for p in tree(Path(root)) - before)
    cache.close()
