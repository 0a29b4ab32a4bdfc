"""The ``cache=`` argument of ``LLM`` and ``cache_client``: a cache, a folder, True or None/False."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Union

from oxicache.backends.none import NoCache
from oxicache.base import BaseCache

__all__ = ["CacheArg", "default_cache_dir", "resolve_cache"]

#: What ``cache=`` accepts.
CacheArg = Union[BaseCache, str, "os.PathLike[str]", bool, None]


def default_cache_dir() -> Path:
    """The folder of ``cache=True``: ``oxicache/llm`` in the user's cache folder.

    That folder is, as platformdirs' ``user_cache_dir`` finds it: ``$XDG_CACHE_HOME`` (when set to an
    absolute path) or ``~/.cache`` on Linux and other Unix systems, ``~/Library/Caches`` on macOS,
    ``%LOCALAPPDATA%`` on Windows.
    """
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "oxicache" / "Cache" / "llm"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "oxicache" / "llm"
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base_dir = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base_dir / "oxicache" / "llm"


def resolve_cache(cache: Any) -> BaseCache:
    """The cache for ``cache=``: a cache instance as it is (any backend; it is not modified), a folder
    path as a ``DiskCache`` there, ``True`` as a ``DiskCache`` in ``default_cache_dir()``, ``None`` or
    ``False`` as ``NoCache`` (every call goes to the API)."""
    if isinstance(cache, BaseCache):
        return cache
    if cache is None or cache is False:
        return NoCache()
    if cache is True or isinstance(cache, (str, os.PathLike)):
        path = default_cache_dir() if cache is True else Path(os.fspath(cache))
        if isinstance(cache, str) and not cache:
            msg = "cache='' is not a folder; give a folder path, a cache instance, True or None"
            raise ValueError(msg)
        from oxicache.backends.disk import DiskCache

        return DiskCache(str(path))
    msg = (
        f"cache must be a cache instance (InMemCache(), DiskCache(...), ...), a folder path (str or "
        f"os.PathLike), True (a DiskCache in {default_cache_dir()}) or None/False (no caching), "
        f"got {cache!r} ({type(cache).__name__})"
    )
    raise TypeError(msg)
