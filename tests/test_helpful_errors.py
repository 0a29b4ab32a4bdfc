"""Mistakes a new user makes get an error that says what to write instead (issue 16, item 5)."""

from __future__ import annotations

import pytest

from oxicache import DiskCache, InMemCache


def test_a_size_as_first_positional_argument_points_at_max_size():
    with pytest.raises(TypeError, match=r"InMemCache\(max_size=10\)"):
        InMemCache(10)
    with pytest.raises(TypeError, match=r"exclude must be a list of parameter names, got float 1\.5"):
        InMemCache(1.5)  # type: ignore[arg-type]
    assert InMemCache(max_size=10).max_size == 10


@pytest.mark.parametrize("ttl", [True, False])
def test_a_boolean_ttl_is_a_type_error(ttl):
    with pytest.raises(TypeError, match=f"ttl={ttl}"):
        InMemCache(ttl=ttl)


@pytest.mark.parametrize("ttl", ["1M", "1h1h"])
def test_ambiguous_ttl_strings_are_refused_by_caches_and_decorators(ttl):
    with pytest.raises(ValueError, match=repr(ttl)):
        InMemCache(ttl=ttl)
    with pytest.raises(ValueError, match=repr(ttl)):
        InMemCache().memoize(ttl=ttl)(lambda x: x)


def test_disk_cache_accepts_diskcache_s_directory_spelling(tmp_path):
    cache = DiskCache(directory=tmp_path / "store")
    try:
        cache.set("f", output=1, x=1)
        assert cache.path == str(tmp_path / "store") and cache.get("f", x=1) == 1
    finally:
        cache.close()
    with pytest.raises(TypeError, match="both path and directory"):
        DiskCache(tmp_path / "a", directory=tmp_path / "b")
    with pytest.raises(TypeError, match=r"DiskCache\('path/to/folder'\)"):
        DiskCache()
