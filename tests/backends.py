"""Every backend the contract tests run on, with what each can do.

`make(name, **options)` builds a fresh, empty cache of that backend: its own temporary folder, SQLite
file or database table (server tables are dropped at the end of the session). A backend that is not
built yet, or whose server is unreachable, skips (fails under OXICACHE_REQUIRE_SERVERS=1, see servers.py).

Import as top-level `backends` (tests/ is on sys.path).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from typing import Any, Callable

import pytest

import oxicache
from oxicache import BaseCache, CallbackCache, InMemCache, NoCache
from servers import MYSQL_URL_ENV, PG_URL_ENV, REDIS_URL_ENV, require_server

_ROOT = tempfile.mkdtemp(prefix="oxicache-backends-")
atexit.register(shutil.rmtree, _ROOT, ignore_errors=True)
_tables: list[tuple[str, str]] = []  # (url, table) to drop at exit
_prefixes: list[tuple[str, str]] = []  # (Redis url, key prefix) to delete at exit
# id(cache) -> (class name, args, kwargs) that open the same store, for tests that use it from another
# process
SPECS: dict[int, tuple[str, tuple[Any, ...], dict[str, Any]]] = {}


def _built(cls_name: str, args: tuple[Any, ...], kwargs: dict[str, Any], options: dict[str, Any]) -> BaseCache:
    cache: BaseCache = _needs(cls_name)(*args, **kwargs, **options)
    SPECS[id(cache)] = (cls_name, args, kwargs)
    return cache


@dataclass(frozen=True)
class Backend:
    name: str
    build: Callable[..., BaseCache]
    stores: bool = True  # a stored entry can be read back
    persistent: bool = False  # survives the process (another process sees it)
    max_size: bool = False  # takes max_size= (InMemCache) ...
    size_limit: bool = False  # ... or size_limit= in bytes (DiskCache)


def _folder() -> str:
    return tempfile.mkdtemp(dir=_ROOT)


def _needs(name: str) -> Any:
    cls = getattr(oxicache, name, None)
    if cls is None:
        pytest.skip(f"{name} not built yet")
    return cls


def _disk(**options: Any) -> BaseCache:
    return _built("DiskCache", (_folder(),), {}, options)


def _json(**options: Any) -> BaseCache:
    return _built("JsonCache", (_folder(),), {}, options)


def _sqlite(**options: Any) -> BaseCache:
    return _built("DatabaseCache", (), {"provider": "sqlite", "database": f"{_folder()}/cache.db"}, options)


def _server(env: str) -> Callable[..., BaseCache]:
    def build(**options: Any) -> BaseCache:
        _needs("DatabaseCache")
        url = require_server(env)
        table = f"t_{uuid.uuid4().hex[:12]}"
        _tables.append((url, table))
        return _built("DatabaseCache", (), {"url": url, "table": table}, options)

    return build


def _redis(**options: Any) -> BaseCache:
    _needs("RedisCache")
    url = require_server(REDIS_URL_ENV)
    prefix = f"t{uuid.uuid4().hex[:12]}"
    _prefixes.append((url, prefix))
    return _built("RedisCache", (url,), {"prefix": prefix}, options)


def _tiered(**options: Any) -> BaseCache:
    """A memory tier over a RedisCache; another process opens the back (what the front holds is this
    process's own)."""
    back = _redis()
    cache: BaseCache = _needs("TieredCache")(InMemCache(max_size=10_000, ttl="30s"), back, **options)
    SPECS[id(cache)] = SPECS[id(back)]
    return cache


BACKENDS: dict[str, Backend] = {
    b.name: b
    for b in [
        Backend("inmem", lambda **o: InMemCache(**o), max_size=True),
        Backend("none", lambda **o: NoCache(**o), stores=False),
        Backend("callback", lambda **o: CallbackCache(**o), stores=False),
        Backend("disk", _disk, persistent=True, size_limit=True),
        Backend("json", _json, persistent=True),
        Backend("sqlite", _sqlite, persistent=True),
        Backend("postgresql", _server(PG_URL_ENV), persistent=True),
        Backend("mysql", _server(MYSQL_URL_ENV), persistent=True),
        Backend("redis", _redis, persistent=True),
        Backend("tiered", _tiered, persistent=True),
    ]
}
STORING = [n for n, b in BACKENDS.items() if b.stores]
PERSISTENT = [n for n, b in BACKENDS.items() if b.persistent]


def make(name: str, **options: Any) -> BaseCache:
    return BACKENDS[name].build(**options)


def is_persistent(cache: BaseCache) -> bool:
    """True for backends that store values outside the process, through the codec (a hit returns a copy,
    not the object): what their declared capabilities say (blocking I/O to a store that keeps entries)."""
    declared = cache.capabilities
    return declared.blocking_io and not declared.stores_nothing


@atexit.register
def _delete_prefixes() -> None:
    if not _prefixes:
        return
    import redis

    for url, prefix in _prefixes:
        try:
            client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=10)
            names = list(client.scan_iter(match=f"{prefix}:*", count=1000))
            for start in range(0, len(names), 1000):
                client.delete(*names[start:start + 1000])
            client.close()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


@atexit.register
def _drop_tables() -> None:
    if not _tables:
        return
    try:
        import sqlalchemy
    except ImportError:
        return
    for url, table in _tables:
        try:
            engine = sqlalchemy.create_engine(url)
            with engine.begin() as conn:
                conn.execute(sqlalchemy.text(f'DROP TABLE IF EXISTS {table}'))
                conn.execute(sqlalchemy.text(f'DROP TABLE IF EXISTS {table}_tags'))  # the tag index
            engine.dispose()
        except Exception:  # best effort: the server may be gone already
            pass
