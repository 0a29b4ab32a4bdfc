"""Helpers shared by the child processes of tests/robustness/ (interrupt_storm_child.py,
shutdown_child.py): the value oracle and building the cache under test from the JSON config the test
passes (a backend name of tests/backends.py and, for stores made by the test, their spec).

The children run as scripts, so this folder is their ``sys.path[0]``; store_support (tests/reliability/)
is added here.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "reliability"))

import oxicache  # noqa: E402
from store_support import open_spec  # noqa: E402

#: Backends the children build themselves (nothing to share with the test process).
BUILT_IN_CHILD = ("inmem", "none", "callback")


def value(tag: str, x: object) -> str:
    """The oracle: what the children's function ``tag`` returns for ``x``, computed without the cache."""
    return f"{tag}|{x}|{hashlib.sha256(f'{tag}|{x}'.encode()).hexdigest()[:24]}"


def pause(seconds: float) -> None:
    """A sleep made of short sleeps, so an asynchronous exception lands inside it too."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.001)


def build_cache(config: dict[str, Any], **options: Any) -> tuple[Any, bool]:
    """The cache under test, and whether a second call of a key is a hit. InMemCache, NoCache and
    CallbackCache are built here; other stores are reopened from ``config["spec"]``."""
    name = config["backend"]
    if name == "inmem":
        return oxicache.InMemCache(**options), True
    if name == "none":
        return oxicache.NoCache(**options), False
    if name == "callback":
        # Callbacks and feeds that keep values in a dict: user hooks run on every call, and the feeds
        # make hits.
        kept: dict[tuple[str, str], Any] = {}

        def keep(key: int, entry: dict[str, Any]) -> None:
            kept[(entry["func"], repr(sorted(entry["inputs"].items())))] = entry["output"]

        def feed(func: Any, **inputs: Any) -> Any:
            name = func if isinstance(func, str) else f"{func.__module__}:{func.__qualname__}"
            return kept.get((NAMES.get(name, name), repr(sorted(inputs.items()))), ...)

        return oxicache.CallbackCache(callbacks=[keep], feeds=[feed], **options), True
    return open_spec(tuple(config["spec"]), **options), True


#: "module:qualname" of a memoized function's original -> its memoize(name=...), for CallbackCache's feed
#: (which gets the original function); filled by ``named``.
NAMES: dict[str, str] = {}


def named(cache: Any, name: str, **options: Any) -> Any:
    """``cache.memoize(name=name, **options)``, recording the name for CallbackCache's feed."""
    memoize = cache.memoize(name=name, **options)

    def decorate(func: Any) -> Any:
        NAMES[f"{func.__module__}:{func.__qualname__}"] = name
        return memoize(func)

    return decorate
