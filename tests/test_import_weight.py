"""``import oxicache`` stays light: the persistence and serialization stacks load only when a backend
that needs them is used, never at import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HEAVY = ("diskcache", "sqlalchemy", "msgpack")

PROBE = f"""
import json, sys
import oxicache
heavy = {HEAVY!r}
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in heavy)))
"""


def loaded_by(probe: str) -> list[str]:
    """The module names a probe script prints (as JSON), run in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, "-c", probe],
        check=True, capture_output=True, text=True, timeout=120,
        cwd=Path(__file__).resolve().parent,
    )
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def test_import_oxicache_does_not_import_heavy_dependencies() -> None:
    loaded = loaded_by(PROBE)
    assert loaded == [], f"import oxicache pulled in {loaded}"


# Loaded on first use, not by `import oxicache` (issue 15 item 4): asyncio (and the ssl, socket and
# subprocess modules it imports) when a coroutine function is memoized or awaited, the memoize engine at the
# first decoration.
DEFERRED = ("asyncio", "ssl", "socket", "subprocess", "concurrent", "oxicache.memo.engine", "oxicache.memo.wrappers",
            "oxicache.memo.batch", "oxicache.memo.freshness")

DEFERRED_PROBE = f"""
import json, sys
import oxicache
oxicache.InMemCache().get("f", x=1)  # a cache made and used: still nothing of the engine
deferred = {DEFERRED!r}
print(json.dumps(sorted(m for m in deferred if m in sys.modules)))
"""


def test_import_oxicache_defers_asyncio_and_the_engine() -> None:
    loaded = loaded_by(DEFERRED_PROBE)
    assert loaded == [], f"import oxicache pulled in {loaded}"


def test_memoizing_a_coroutine_function_works_after_a_light_import() -> None:
    code = """
import oxicache
cache = oxicache.InMemCache()

@cache.memoize(ttl=60, stale=30)  # decorated before anything imported asyncio
async def double(x):
    return 2 * x

import asyncio

async def main():
    return [await double(2), await double(2)]

print(asyncio.run(main()), double.cache_info().hits)
"""
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["[4,", "4]", "1"]


# A short script on the default SQLite cache (issue 15's "new process" goal): opening it, memoizing a def
# and calling it load none of these. SQLAlchemy is imported only for cache.engine / cache.table / verify()
# (backends/_sqlitefile.py), the others on first use (leases, closures' fingerprints, servers, debug logs);
# inspect and dataclasses (with ast, dis, tokenize) only for a callable whose signature inspect must work out
# (a builtin, a wrapper, a method: memo/signature.py), and with version="auto".
SCRIPT_DEFERRED = ("sqlalchemy", "asyncio", "ssl", "socket", "secrets", "hashlib", "hmac", "logging", "inspect",
                   "dataclasses", "ast", "dis")

SCRIPT_PROBE = f"""
import json, os, sys, tempfile
import oxicache
cache = oxicache.DatabaseCache(database=os.path.join(tempfile.mkdtemp(), "c.db"))
@cache.memoize
def f(x, *, scale=1):
    return abs(x) * scale
assert [f(-1), f(-1)] == [1, 1] and f.cache_info().hits == 1
deferred = {SCRIPT_DEFERRED!r}
print(json.dumps(sorted(m for m in deferred if m in sys.modules)))
"""


def test_a_short_script_on_a_sqlite_file_loads_only_what_it_uses() -> None:
    loaded = loaded_by(SCRIPT_PROBE)
    assert loaded == [], f"a DatabaseCache script pulled in {loaded}"


# The machinery of annotations and records (issue 15 item 4): typing (with re), dataclasses (with inspect,
# ast, dis and tokenize), datetime and enum are loaded by what needs them (the memoize engine, a TTL string,
# `oxicache.Memoized`), not by `import oxicache`: python/oxicache/_light.py. Only modules the interpreter had
# not loaded already count, as a sitecustomize or .pth file may import any of them first.
ANNOTATION_MACHINERY = ("typing", "re", "dataclasses", "inspect", "ast", "dis", "tokenize", "datetime", "enum")

MACHINERY_PROBE = f"""
import json, sys
before = set(sys.modules)
import oxicache
cache = oxicache.InMemCache(ttl=60)
cache.set("f", output=2, x=1)
assert cache.get("f", x=1) == 2 and oxicache.Capabilities().shared and oxicache.InMemCache.capabilities.bounded
assert oxicache.CacheInfo(1, 2, None, 3) == (1, 2, None, 3)
machinery = {ANNOTATION_MACHINERY!r}
print(json.dumps(sorted(m for m in machinery if m in sys.modules and m not in before)))
"""


def test_import_oxicache_loads_no_typing_dataclasses_or_datetime() -> None:
    loaded = loaded_by(MACHINERY_PROBE)
    assert loaded == [], f"import oxicache pulled in {loaded}"


LAZY_NAMES_PROBE = """
import datetime, sys, typing
import oxicache
from oxicache import BatchMemoized, Memoized, MemoizedMethod
from oxicache.durations import TTL, parse_ttl
assert typing.get_args(TTL) == (int, float, str, datetime.timedelta, type(None)), TTL
assert oxicache.Memoized is Memoized and Memoized.__module__ == "oxicache.memo.protocols"
assert {"BatchMemoized", "Memoized", "MemoizedMethod"} <= set(dir(oxicache))
assert parse_ttl(datetime.timedelta(minutes=2)) == 120.0 and parse_ttl("1h30m") == 5400.0
print("ok")
"""


def test_names_loaded_on_first_use_are_the_same_objects() -> None:
    out = subprocess.run([sys.executable, "-c", LAZY_NAMES_PROBE], check=True, capture_output=True, text=True,
                         timeout=120)
    assert out.stdout.strip() == "ok"
