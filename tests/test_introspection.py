"""What help(), inspect.signature() and dir() show a user, and `oxicache --version` (issue 16, item 4)."""

from __future__ import annotations

import inspect
import pydoc
import subprocess
import sys

import pytest

import oxicache
from oxicache import CacheEntry


@pytest.mark.parametrize("name", ["DiskCache", "JsonCache", "DatabaseCache"])
def test_persistent_caches_and_their_methods_show_their_real_signatures(name):
    cls = getattr(oxicache, name)
    assert "*args" not in str(inspect.signature(cls))
    assert "path" in inspect.signature(cls).parameters or "provider" in inspect.signature(cls).parameters
    for method_name, method in inspect.getmembers(cls, inspect.isfunction):
        if method_name.startswith("_") and method_name != "__init__":
            continue
        sig = inspect.signature(method)
        own = inspect.signature(inspect.unwrap(method))
        assert sig == own, (name, method_name)
    # the fork gate's wrappers (DiskCache) keep the name, the docstring and the parameters
    assert str(inspect.signature(oxicache.DiskCache.volume)) == "(self) -> 'int'"
    assert inspect.signature(oxicache.DiskCache.__init__).parameters["size_limit"].default == 1 << 30


def test_cache_entry_has_a_docstring_and_a_signature_with_its_real_defaults():
    assert "One cached call" in (CacheEntry.__doc__ or "")
    params = inspect.signature(CacheEntry).parameters
    assert list(params) == ["func", "inputs", "output", "expected", "metadata"]
    # Ellipsis only where it is the documented "unset" value
    assert {n: p.default for n, p in params.items()} == {
        "func": "", "inputs": None, "output": ..., "expected": ..., "metadata": None}
    assert CacheEntry() == CacheEntry(func="", inputs=None, metadata=None)  # the shown defaults are the real ones
    assert str(inspect.signature(CacheEntry.clone)) == "(self, /, **changes)"
    assert inspect.signature(CacheEntry.annotate).parameters["metadata"].default is None
    assert inspect.signature(CacheEntry.from_args).parameters["exclude"].default is None


def test_cache_entry_has_no_order_methods_that_only_raise():
    for op in ("__lt__", "__le__", "__gt__", "__ge__"):
        assert op not in vars(CacheEntry), op
    text = pydoc.render_doc(CacheEntry, renderer=pydoc.plaintext)
    assert "__lt__" not in text and "__gt__" not in text and "__eq__" in text
    a, b = CacheEntry("f", {"x": 1}), CacheEntry("f", {"x": 1})
    assert a == b and hash(a) == hash(b)
    with pytest.raises(TypeError, match="'<' not supported"):
        a < b  # noqa: B015


def test_dir_lists_the_lazily_imported_backends():
    code = ("import sys, oxicache; names = dir(oxicache); "
            "print(all(n in names for n in oxicache.__all__), 'oxicache.backends.disk' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "False"]  # listed without importing diskcache's backend


@pytest.mark.parametrize("command", [["oxicache"], [sys.executable, "-m", "oxicache"]])
def test_version_flag(command):
    done = subprocess.run([*command, "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"oxicache {oxicache.__version__}"


def test_top_level_memoize_uses_one_process_wide_in_memory_cache():
    runs = []

    @oxicache.memoize
    def double(x: int) -> int:
        runs.append(x)
        return 2 * x

    @oxicache.memoize(ttl="1h", name="tests.introspection.triple")
    def triple(x: int) -> int:
        runs.append(-x)
        return 3 * x

    try:
        assert [double(2), double(2), triple(2), triple(2)] == [4, 4, 6, 6]
        assert runs == [2, -2]
        assert isinstance(oxicache.default_cache(), oxicache.InMemCache)
        assert oxicache.default_cache().count_function("tests.introspection.triple") == 1
        assert double.cache_info().hits == 1
    finally:
        double.cache_clear()
        triple.cache_clear()


def test_help_of_memoize_documents_it_where_the_user_finds_it():
    text = pydoc.render_doc(oxicache.memoize, renderer=pydoc.plaintext)
    assert "InMemCache" in text and "shared by every function memoized this way" in text
    params = inspect.signature(oxicache.memoize).parameters
    assert {"name", "exclude", "ttl", "version", "cache_if"} <= set(params)


def test_top_level_memoize_takes_every_option_of_a_cache_s_memoize():
    """``oxicache.memoize`` is ``default_cache().memoize``: it takes the same options (those a memory store
    can use: not shared_flight, which needs leases)."""
    own = set(inspect.signature(oxicache.memoize).parameters) - {"func"}
    cache_s = set(inspect.signature(oxicache.InMemCache.memoize).parameters) - {"self", "func", "shared_flight"}
    assert own == cache_s
    runs = []

    @oxicache.memoize(tags=["tests.introspection"], key=lambda x, noise: x, ttl=60, stale=30, track_age=True)
    def keyed(x: int, noise: object) -> int:
        runs.append(x)
        return x + 1

    try:
        assert [keyed(1, object()), keyed(1, object())] == [2, 2] and runs == [1]
        assert oxicache.default_cache().invalidate(tags=["tests.introspection"]) == 1
        assert keyed(1, None) == 2 and runs == [1, 1]
    finally:
        keyed.cache_clear()
