"""Persistent backends: memoize hit and miss beside diskcache, bare file I/O and the raw database drivers, in one run.

Every row memoizes the same trivial function ``f(x) -> x * 2`` (counted, so each test checks that its timed
calls were all hits, or all misses). Each row gets its own new folder under pytest's temporary directory
(the same file system for every row), opened before timing.

Groups (compare rows within a group; the target ratios printed at the end come from the medians of this run):

* ``persistent hit f(1)``: the memoized function called directly by pytest-benchmark's loop (``f(1)``, no
  lambda), the key stored before the first round, so every timed call is a hit of an already-cached key.
  Rows: ``diskcache.Cache(folder).memoize()``, ``oxicache.DiskCache(folder)``,
  ``oxicache.DatabaseCache(provider="sqlite", database=folder/cache.db)``, ``oxicache.JsonCache(folder)``;
* ``persistent miss f(new int) x100``: ``pedantic``, each round feeds the row's memoized function 100 ints
  it has never seen (the range is made in the untimed setup), so every timed call is a miss: the function
  runs and its result is stored. One cache per row for the whole test, so it grows by 100 entries a round
  (about 6,300 in all). The round time divided by 100 is the cost of one call; the summary prints µs per
  call. Beside the backends: a bare atomic small-file write, the floor for JsonCache's miss
  (``tempfile.mkstemp`` in the destination folder + ``os.write`` of a real JsonCache record + ``os.close`` +
  ``os.replace`` onto a new name), through the same harness, 100 new files a round;
* ``postgresql hit f(1)`` and ``mysql hit f(1)`` (skipped when ``OXICACHE_PG_URL`` /
  ``OXICACHE_MYSQL_URL`` is unset; ``eval "$(bash scripts/db-servers.sh)"`` exports them): the server on
  loopback. ``oxicache.DatabaseCache(url=..., table=<unique>)`` memoize hit, against the driver's own
  ``SELECT v FROM <table> WHERE k = %s`` on a small table (100 rows, ``k VARCHAR(32) PRIMARY KEY``, ``v``
  a short JSON text), one connection in autocommit reused for every call, one cursor, ``fetchone()``. With
  psycopg the statement is prepared on the server (``execute(..., prepare=True)``); PyMySQL has no
  server-side prepared statements, so it interpolates the parameter client-side. Both tables get unique
  names and are dropped at the end of the test.

* ``redis hit f(1)`` and ``redis miss f(new int) x100`` (skipped when ``OXICACHE_REDIS_URL`` is unset): a
  Redis server on loopback. ``oxicache.RedisCache(url, prefix=<unique>)`` memoize hit against redis-py's
  own ``GET`` of the very record the cache stored for ``f(1)`` plus the codec's ``decode_binary`` of it
  (the least a cache that keeps entries as codec records can do); the miss against ``GET`` (a miss) +
  ``encode_binary`` of a record + ``SET``, with the same client settings, 100 new keys a round.

A row that raises (for example while ``DatabaseCache`` is under construction) fails its test; its error is
also printed in the summary, in place of its ratio.
"""

from __future__ import annotations

import itertools
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import oxicache

diskcache = pytest.importorskip("diskcache")

MISS_BATCH = 100
MISS_ROUNDS = 60
MISS_WARMUP = 3

G_HIT = "persistent hit f(1)"
G_MISS = f"persistent miss f(new int) x{MISS_BATCH}"
G_SERVER = {"postgresql": "postgresql hit f(1)", "mysql": "mysql hit f(1)"}

DISKCACHE = "diskcache.Cache.memoize"
DISK = "oxicache.DiskCache"
DB_SQLITE = "oxicache.DatabaseCache(sqlite)"
JSON = "oxicache.JsonCache"
BARE_WRITE = "bare atomic write (mkstemp+write+close+os.replace)"
DB_SERVER = "oxicache.DatabaseCache"
DRIVER = {"postgresql": "psycopg SELECT by primary key", "mysql": "pymysql SELECT by primary key"}
SERVER_ENV = {"postgresql": "OXICACHE_PG_URL", "mysql": "OXICACHE_MYSQL_URL"}
G_REDIS_HIT = "redis hit f(1)"
G_REDIS_MISS = f"redis miss f(new int) x{MISS_BATCH}"
REDIS = "oxicache.RedisCache"
REDIS_GET = "redis-py GET + decode_binary"
REDIS_GET_SET = "redis-py GET + encode_binary + SET"

TARGETS: list[tuple[str, str, str, str, float]] = [
    # (what, group, row, reference row, the most the ratio may be)
    ("DiskCache hit vs diskcache", G_HIT, DISK, DISKCACHE, 1.15),
    ("DiskCache miss vs diskcache", G_MISS, DISK, DISKCACHE, 1.3),
    ("DatabaseCache(sqlite) hit vs DiskCache", G_HIT, DB_SQLITE, DISK, 1.5),
    ("DatabaseCache(sqlite) miss vs DiskCache", G_MISS, DB_SQLITE, DISK, 2.0),
    ("JsonCache hit vs DiskCache", G_HIT, JSON, DISK, 1.5),
    ("JsonCache miss vs bare atomic write", G_MISS, JSON, BARE_WRITE, 1.5),
    ("DatabaseCache(postgresql) hit vs psycopg SELECT", G_SERVER["postgresql"], DB_SERVER, DRIVER["postgresql"], 2.0),
    ("DatabaseCache(mysql) hit vs pymysql SELECT", G_SERVER["mysql"], DB_SERVER, DRIVER["mysql"], 2.0),
    ("RedisCache hit vs GET + decode", G_REDIS_HIT, REDIS, REDIS_GET, 1.3),
    ("RedisCache miss vs GET + encode + SET", G_REDIS_MISS, REDIS, REDIS_GET_SET, 1.5),
]

Closer = Callable[[], None]


def _diskcache(folder: str, fn: Callable[..., Any]) -> tuple[Any, Closer]:
    cache = diskcache.Cache(folder)
    return cache.memoize()(fn), cache.close


def _ox_disk(folder: str, fn: Callable[..., Any]) -> tuple[Any, Closer]:
    cache = oxicache.DiskCache(folder)
    return cache.memoize(fn), cache.close


def _ox_db_sqlite(folder: str, fn: Callable[..., Any]) -> tuple[Any, Closer]:
    cache = oxicache.DatabaseCache(provider="sqlite", database=os.path.join(folder, "cache.db"))
    return cache.memoize(fn), cache.close


def _ox_json(folder: str, fn: Callable[..., Any]) -> tuple[Any, Closer]:
    cache = oxicache.JsonCache(folder)
    return cache.memoize(fn), getattr(cache, "close", lambda: None)


LOCAL: dict[str, Callable[[str, Callable[..., Any]], tuple[Any, Closer]]] = {
    DISKCACHE: _diskcache,
    DISK: _ox_disk,
    DB_SQLITE: _ox_db_sqlite,
    JSON: _ox_json,
}
local_ids = list(LOCAL)


class Counted:
    """``f(x) -> x * 2`` that counts its runs (a plain function, so every backend can name it)."""

    def __init__(self) -> None:
        self.calls = 0

        def f(x: int) -> int:
            self.calls += 1
            return x * 2

        self.f = f


# --- summary --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def results(bench_summary: list[tuple[str, str]]) -> Iterator[dict[str, dict[str, Any]]]:
    """group -> row -> median µs per call, or the error string of a row that raised; printed at module end."""
    found: dict[str, dict[str, Any]] = {}
    yield found
    for group, rows in found.items():
        for row, value in rows.items():
            text = f"{value:10.2f} µs per call" if isinstance(value, float) else f"FAILED: {value}"
            bench_summary.append((group, f"{row:<52} {text}"))
    for what, group, row, ref_row, limit in TARGETS:
        rows = found.get(group, {})
        value, ref = rows.get(row), rows.get(ref_row)
        head = f"{what:<50} target <= {limit:.2f}x:"
        if isinstance(value, float) and isinstance(ref, float):
            ratio = value / ref
            verdict = "met" if ratio <= limit else "NOT MET"
            bench_summary.append(("persistent targets", f"{head} {ratio:5.2f}x ({value:.2f} vs {ref:.2f} µs) -> {verdict}"))
        elif isinstance(value, str) or isinstance(ref, str):
            err = value if isinstance(value, str) else ref
            bench_summary.append(("persistent targets", f"{head} NOT MET: a row failed: {err}"))
        else:
            bench_summary.append(("persistent targets", f"{head} not measured in this run (row skipped or missing)"))


def _record(benchmark: Any, results: dict[str, dict[str, Any]], group: str, row: str, per: int = 1) -> None:
    benchmark.extra_info["row"] = row
    if benchmark.stats is not None:  # None under --benchmark-disable
        results.setdefault(group, {})[row] = benchmark.stats.stats.median * 1e6 / per


@contextmanager
def _failure_noted(results: dict[str, dict[str, Any]], group: str, row: str) -> Iterator[None]:
    """A row that raises still fails its test; the summary shows its error instead of a ratio."""
    try:
        yield
    except Exception as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        results.setdefault(group, {})[row] = f"{type(err).__name__}: {first[:160]}"
        raise


@pytest.fixture
def folder(tmp_path: Path) -> str:
    return str(tmp_path)


# --- local backends: hit ---------------------------------------------------------------------------------


@pytest.mark.benchmark(group=G_HIT)
@pytest.mark.parametrize("peer", local_ids)
def test_persistent_hit(benchmark: Any, results: dict[str, dict[str, Any]], folder: str, peer: str) -> None:
    counted = Counted()
    with _failure_noted(results, G_HIT, peer):
        wrapped, close = LOCAL[peer](os.path.join(folder, "cache"), counted.f)
        try:
            assert wrapped(1) == 2  # the miss that stores the key every timed call reads
            assert wrapped(1) == 2 and counted.calls == 1
            benchmark.extra_info["peer"] = peer
            assert benchmark(wrapped, 1) == 2
            assert counted.calls == 1  # every timed call was a hit
        finally:
            close()
    _record(benchmark, results, G_HIT, peer)


# --- local backends: miss -----------------------------------------------------------------------------


def _miss_rounds(benchmark: Any, run: Callable[..., None], setup: Callable[[], tuple[tuple[Any, ...], dict[str, Any]]]) -> None:
    benchmark.extra_info.update(calls_per_round=MISS_BATCH, unit_note=f"round time / {MISS_BATCH} = one call")
    benchmark.pedantic(run, setup=setup, rounds=MISS_ROUNDS, warmup_rounds=MISS_WARMUP, iterations=1)


@pytest.mark.benchmark(group=G_MISS)
@pytest.mark.parametrize("peer", local_ids)
def test_persistent_miss(benchmark: Any, results: dict[str, dict[str, Any]], folder: str, peer: str) -> None:
    counted = Counted()
    fresh = itertools.count(10**6, MISS_BATCH)  # ints never given to this cache before

    def setup() -> tuple[tuple[range], dict[str, Any]]:
        start = next(fresh)
        return (range(start, start + MISS_BATCH),), {}

    with _failure_noted(results, G_MISS, peer):
        wrapped, close = LOCAL[peer](os.path.join(folder, "cache"), counted.f)
        try:
            assert wrapped(1) == 2  # first store: opens files and connections outside the timing
            counted.calls = 0

            def run(ints: range) -> None:
                for i in ints:
                    wrapped(i)

            benchmark.extra_info["peer"] = peer
            _miss_rounds(benchmark, run, setup)
            assert counted.calls == (MISS_ROUNDS + MISS_WARMUP) * MISS_BATCH  # every timed call was a miss
            start = 10**6 + (MISS_ROUNDS + MISS_WARMUP - 1) * MISS_BATCH
            assert wrapped(start) == 2 * start and counted.calls == (MISS_ROUNDS + MISS_WARMUP) * MISS_BATCH  # stored
        finally:
            close()
    _record(benchmark, results, G_MISS, peer, per=MISS_BATCH)


@pytest.mark.benchmark(group=G_MISS)
def test_persistent_miss_bare_atomic_write(benchmark: Any, results: dict[str, dict[str, Any]], folder: str) -> None:
    """The floor for JsonCache's miss: write a real JsonCache record atomically to a new file name."""
    counted = Counted()
    scratch = oxicache.JsonCache(os.path.join(folder, "record"))
    scratch.memoize(counted.f)(10**6)
    (name,) = [n for n in os.listdir(scratch.path) if n.endswith(".json")]
    record = Path(scratch.path, name).read_bytes()  # the bytes a JsonCache miss writes for this function
    bare = os.path.join(folder, "bare")
    os.mkdir(bare)
    names = (os.path.join(bare, f"{n:032x}.json") for n in itertools.count())

    def atomic_write(final: str) -> None:
        fd, tmp = tempfile.mkstemp(dir=bare, suffix=".tmp")
        os.write(fd, record)
        os.close(fd)
        os.replace(tmp, final)

    def setup() -> tuple[tuple[list[str]], dict[str, Any]]:
        return ([next(names) for _ in range(MISS_BATCH)],), {}

    def run(paths: list[str]) -> None:
        for p in paths:
            atomic_write(p)

    benchmark.extra_info.update(peer=BARE_WRITE, record_bytes=len(record))
    _miss_rounds(benchmark, run, setup)
    assert len(os.listdir(bare)) == (MISS_ROUNDS + MISS_WARMUP) * MISS_BATCH  # every write made a new file
    _record(benchmark, results, G_MISS, BARE_WRITE, per=MISS_BATCH)


# --- PostgreSQL and MySQL on loopback: hit against the driver's own SELECT -------------------------------


def _server_url(dialect: str) -> str:
    url = os.environ.get(SERVER_ENV[dialect])
    if not url:
        pytest.skip(f"{SERVER_ENV[dialect]} is unset (eval \"$(bash scripts/db-servers.sh)\" exports it)")
    return url


def _raw_connect(dialect: str, url: str) -> Any:
    """A bare DBAPI connection in autocommit, from the SQLAlchemy URL the cache gets."""
    from sqlalchemy.engine import make_url

    u = make_url(url)
    if dialect == "postgresql":
        psycopg = pytest.importorskip("psycopg")
        dsn = u.set(drivername="postgresql").render_as_string(hide_password=False)
        return psycopg.connect(dsn, autocommit=True)
    pymysql = pytest.importorskip("pymysql")
    return pymysql.connect(host=u.host, port=u.port or 3306, user=u.username, password=u.password,
                           database=u.database, autocommit=True)


def _table_name() -> str:
    return f"oxibench_{uuid.uuid4().hex[:16]}"


def _drop(conn: Any, table: str) -> None:
    with conn.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {table}")


@pytest.mark.parametrize("dialect", ["postgresql", "mysql"])
def test_server_hit_driver_select(benchmark: Any, results: dict[str, dict[str, Any]], dialect: str) -> None:
    url = _server_url(dialect)
    group, row = G_SERVER[dialect], DRIVER[dialect]
    benchmark.group = group
    conn = _raw_connect(dialect, url)
    table = _table_name()
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE TABLE {table} (k VARCHAR(32) PRIMARY KEY, v TEXT NOT NULL)")
            for i in range(100):
                cur.execute(f"INSERT INTO {table} (k, v) VALUES (%s, %s)", (f"{i:032x}", f'{{"answer":{2 * i}}}'))
        sql, args = f"SELECT v FROM {table} WHERE k = %s", (f"{1:032x}",)
        cur = conn.cursor()
        if dialect == "postgresql":

            def select() -> Any:
                cur.execute(sql, args, prepare=True)  # a server-side prepared statement
                return cur.fetchone()

        else:

            def select() -> Any:
                cur.execute(sql, args)  # PyMySQL: no server-side prepare, parameters interpolated
                return cur.fetchone()

        assert select() == ('{"answer":2}',)
        benchmark.extra_info.update(peer=row, statement=sql, table_rows=100)
        assert benchmark(select) == ('{"answer":2}',)
        cur.close()
    finally:
        _drop(conn, table)
        conn.close()
    _record(benchmark, results, group, row)


@pytest.mark.parametrize("dialect", ["postgresql", "mysql"])
def test_server_hit_database_cache(benchmark: Any, results: dict[str, dict[str, Any]], dialect: str) -> None:
    url = _server_url(dialect)
    group = G_SERVER[dialect]
    benchmark.group = group
    table = _table_name()
    counted = Counted()
    try:
        with _failure_noted(results, group, DB_SERVER):
            cache = oxicache.DatabaseCache(url=url, table=table)
            try:
                wrapped = cache.memoize(counted.f)
                assert wrapped(1) == 2  # the miss that stores the key every timed call reads
                assert wrapped(1) == 2 and counted.calls == 1
                benchmark.extra_info.update(peer=f"{DB_SERVER}({dialect})", table=table)
                assert benchmark(wrapped, 1) == 2
                assert counted.calls == 1  # every timed call was a hit
            finally:
                cache.close()
    finally:
        conn = _raw_connect(dialect, url)
        try:
            _drop(conn, table)
        finally:
            conn.close()
    _record(benchmark, results, group, DB_SERVER)


# --- Redis on loopback: hit and miss against redis-py's own commands -----------------------------------


def _redis_url() -> str:
    url = os.environ.get("OXICACHE_REDIS_URL")
    if not url:
        pytest.skip('OXICACHE_REDIS_URL is unset (eval "$(bash scripts/db-servers.sh)" exports it)')
    pytest.importorskip("redis")
    return url


@pytest.fixture
def redis_cache() -> Iterator[Any]:
    cache = oxicache.RedisCache(_redis_url(), prefix=f"oxibench{uuid.uuid4().hex[:12]}")
    yield cache
    cache.clear()
    cache.close()


@pytest.mark.benchmark(group=G_REDIS_HIT)
def test_redis_hit(benchmark: Any, results: dict[str, dict[str, Any]], redis_cache: Any) -> None:
    counted = Counted()
    with _failure_noted(results, G_REDIS_HIT, REDIS):
        wrapped = redis_cache.memoize(counted.f)
        assert wrapped(1) == 2 and wrapped(1) == 2 and counted.calls == 1
        benchmark.extra_info["peer"] = REDIS
        assert benchmark(wrapped, 1) == 2
        assert counted.calls == 1  # every timed call was a hit
    _record(benchmark, results, G_REDIS_HIT, REDIS)


@pytest.mark.benchmark(group=G_REDIS_HIT)
def test_redis_hit_get_and_decode(benchmark: Any, results: dict[str, dict[str, Any]], redis_cache: Any) -> None:
    counted = Counted()
    wrapped = redis_cache.memoize(counted.f)
    wrapped(1)
    client = redis_cache.client
    (name,) = list(client.scan_iter(match=f"{redis_cache.prefix}:e:*"))  # the record f(1) is stored as

    def get_and_decode() -> Any:
        return oxicache.codec.decode_binary(client.get(name))["o"]

    benchmark.extra_info.update(peer=REDIS_GET, record_bytes=len(client.get(name)))
    assert benchmark(get_and_decode) == 2
    _record(benchmark, results, G_REDIS_HIT, REDIS_GET)


@pytest.mark.benchmark(group=G_REDIS_MISS)
def test_redis_miss(benchmark: Any, results: dict[str, dict[str, Any]], redis_cache: Any) -> None:
    counted = Counted()
    fresh = itertools.count(10**6, MISS_BATCH)

    def setup() -> tuple[tuple[range], dict[str, Any]]:
        start = next(fresh)
        return (range(start, start + MISS_BATCH),), {}

    with _failure_noted(results, G_REDIS_MISS, REDIS):
        wrapped = redis_cache.memoize(counted.f)
        assert wrapped(1) == 2
        counted.calls = 0

        def run(ints: range) -> None:
            for i in ints:
                wrapped(i)

        benchmark.extra_info["peer"] = REDIS
        _miss_rounds(benchmark, run, setup)
        assert counted.calls == (MISS_ROUNDS + MISS_WARMUP) * MISS_BATCH  # every timed call was a miss
    _record(benchmark, results, G_REDIS_MISS, REDIS, per=MISS_BATCH)


@pytest.mark.benchmark(group=G_REDIS_MISS)
def test_redis_miss_get_encode_set(benchmark: Any, results: dict[str, dict[str, Any]], redis_cache: Any) -> None:
    client = redis_cache.client
    prefix = f"{redis_cache.prefix}:e:"
    record = {"f": "f", "i": {"x": 0}, "o": 0, "m": {}, "c": 0.0, "s": 2}  # an entry record's shape
    fresh = itertools.count(10**6, MISS_BATCH)

    def setup() -> tuple[tuple[range], dict[str, Any]]:
        start = next(fresh)
        return (range(start, start + MISS_BATCH),), {}

    def run(ints: range) -> None:
        for i in ints:
            name = f"{prefix}{i:032x}"
            assert client.get(name) is None
            record["i"]["x"], record["o"] = i, 2 * i
            client.set(name, oxicache.codec.encode_binary(record))

    benchmark.extra_info["peer"] = REDIS_GET_SET
    _miss_rounds(benchmark, run, setup)
    _record(benchmark, results, G_REDIS_MISS, REDIS_GET_SET, per=MISS_BATCH)
