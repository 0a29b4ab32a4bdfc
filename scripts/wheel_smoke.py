"""Smoke test of an installed oxicache wheel, run by scripts/wheel-test.sh in a fresh virtualenv.

It must import the installed package (never the source tree), memoize every kind of function on every
embedded backend (in memory, none, callback, disk, json, sqlite), read the entries back from a second
cache object on the same store, and run the `oxicache` command.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import sysconfig
import tempfile

import oxicache
from oxicache import CallbackCache, DatabaseCache, DiskCache, InMemCache, JsonCache, NoCache

site = sysconfig.get_paths()["purelib"]
assert os.path.realpath(oxicache.__file__).startswith(os.path.realpath(site)), (
    f"imported {oxicache.__file__}, not the wheel installed in {site}"
)
print("oxicache", oxicache.__version__, "from", os.path.dirname(oxicache.__file__))

root = tempfile.mkdtemp(prefix="oxicache-wheel-")
stores = {
    "disk": lambda: DiskCache(os.path.join(root, "disk")),
    "json": lambda: JsonCache(os.path.join(root, "json")),
    "sqlite": lambda: DatabaseCache(database=os.path.join(root, "cache.db")),
}
caches = {"inmem": InMemCache, "none": NoCache, "callback": CallbackCache, **stores}


def exercise(name: str, cache: oxicache.BaseCache) -> None:
    calls: list[str] = []

    @cache.memoize(name="smoke.square")
    def square(x: int) -> int:
        calls.append("sync")
        return x * x

    @cache.memoize(name="smoke.asquare")
    async def asquare(x: int) -> int:
        calls.append("async")
        return x * x

    @cache.memoize(name="smoke.count")
    def count(n: int):  # type: ignore[no-untyped-def]
        calls.append("gen")
        yield from range(n)

    for _ in range(2):
        assert square(7) == 49
        assert asyncio.run(asquare(7)) == 49
        assert list(count(3)) == [0, 1, 2]
    stores_values = name not in ("none", "callback")
    expected = ["sync", "async", "gen"] if stores_values else ["sync", "async", "gen"] * 2
    assert calls == expected, (name, calls)
    print(f"  {name:8} memoize sync/async/generator ok")


for name, make in caches.items():
    exercise(name, make())
for name, make in stores.items():  # a second cache object on the same store sees the entries
    assert make().get("smoke.square", x=7) == 49, name
    print(f"  {name:8} entries read back from a new cache object")

command = os.path.join(os.path.dirname(sys.executable), "oxicache")
out = subprocess.run([command, "ls", f"sqlite:{os.path.join(root, 'cache.db')}"], check=True, capture_output=True, text=True).stdout
assert "smoke.square" in out, out
out = subprocess.run([command, "bench", "--quick"], check=True, capture_output=True, text=True).stdout
assert "oxicache" in out and "lru_cache" in out, out
print(out)
print("wheel smoke test passed")
