"""The backend contract suite (``oxicache.testing.BackendContract``) on every backend of tests/backends.py,
on the example backend of docs/backends/writing-a-backend.md (examples/dbm_backend.py), and on the dict
test backend the engine tests use (tests/dict_backend.py: five primitives and nothing else)."""

from __future__ import annotations

import pathlib
import sys
from typing import Any

import backends

from dict_backend import DictBackend
from oxicache import BaseCache, InMemCache, TieredCache
from oxicache.testing import BackendContract

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "examples"))
from dbm_backend import DbmCache  # noqa: E402


class TestDbmCache(BackendContract):
    def make_cache(self, tmp_path: pathlib.Path, **options: Any) -> BaseCache:
        return DbmCache(tmp_path / "store", **options)


class TestDictBackend(BackendContract):
    def make_cache(self, tmp_path: pathlib.Path, **options: Any) -> BaseCache:
        return DictBackend(**options)


def _registry_case(name: str) -> type[BackendContract]:
    def make_cache(self: BackendContract, tmp_path: pathlib.Path, **options: Any) -> BaseCache:
        return backends.make(name, **options)

    def reopen(self: BackendContract, cache: BaseCache, tmp_path: pathlib.Path) -> BaseCache | None:
        if not backends.BACKENDS[name].persistent:
            return None
        cls_name, args, kwargs = backends.SPECS[id(cache)]
        other = getattr(sys.modules["oxicache"], cls_name)(*args, **kwargs)
        if isinstance(cache, TieredCache):  # another process's tiered cache, over the same back
            return TieredCache(InMemCache(ttl=cache.front.ttl), other)
        return other

    attributes = {"make_cache": make_cache, "reopen": reopen, "reads_back": backends.BACKENDS[name].stores,
                  "sees_changes_within": 5.0 if name == "tiered" else 0.0}
    return type(f"TestContract_{name}", (BackendContract,), attributes)


for _name in backends.BACKENDS:
    _case = _registry_case(_name)
    globals()[_case.__name__] = _case


def test_every_registered_backend_runs_the_contract() -> None:
    cases = {n for n in globals() if n.startswith("TestContract_")}
    assert cases == {f"TestContract_{n}" for n in backends.BACKENDS}


def test_the_guide_shows_the_example_backend_as_tested() -> None:
    """docs/backends/writing-a-backend.md shows examples/dbm_backend.py verbatim: the code a reader copies
    is the code this suite runs."""
    root = pathlib.Path(__file__).resolve().parents[2]
    guide = (root / "docs" / "backends" / "writing-a-backend.md").read_text(encoding="utf-8")
    example = (root / "examples" / "dbm_backend.py").read_text(encoding="utf-8")
    assert f"```python\n{example}```" in guide
