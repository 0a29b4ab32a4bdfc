"""R20, the upsert race: 2 "spawn" processes x 4 threads write the same 10 keys again and again through
``cache.set``; a control run where every write has its own key; and the first-time schema-init race.

Pass: no exception of any kind reaches a caller (no IntegrityError, "database is locked", "table already
exists") and no warning is emitted; the store holds exactly one row (file, item) per key, counted
underneath the cache (SQL ``GROUP BY`` through a separate SQLAlchemy engine, diskcache's SQLite table,
the JSON folder listing); each final value is one of the values written for that key; ``verify()`` and
the store's own check are clean. The control loses no write (one row per write, each with its own
value), and its writes, ordered by the time each ``set`` returned, alternate between the two processes
many times: the two processes really wrote at the same time, so the race run was a race.
Schema-init race: 50 threads construct a cache on the same fresh SQLite file / server table / folder at
once (released together by a barrier), then each stores and reads one entry; none raises.

Backends: sqlite, postgresql, mysql (the matrix's rows), plus disk, json and redis for the race, the
control and the init race (one item, file or key per entry is the same promise there).

Adapted: 200 writes of each key by each of the 8 writers is 16,000 commits per backend, too slow for
the default run on 2 shared cores; the default run writes each key 10 times per writer (800 writes per
backend on 10 keys) and the control 3 rounds (240 distinct keys); the matrix's full counts run under
``@pytest.mark.slow``.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import uuid

import pytest

import backends
import oxicache
from concurrency_support import Workers, store_problems, upsert_child
from oxicache import CacheEntry
from reliability_support import watchdog

BACKENDS = ["sqlite", "postgresql", "mysql", "disk", "json", "redis", "tiered"]
NKEYS = 10


@pytest.fixture(scope="module")
def workers():
    pool = Workers(2)
    yield pool
    pool.close()


def key_hex(k: object) -> str:
    return f"{CacheEntry('r20.f', {'k': k}).key:032x}"


def stored_keys(cache) -> dict[str, int]:
    """key (32 hex digits) -> how many rows/items/files the store holds for it, read underneath the cache."""
    kind = type(cache).__name__
    if kind == "TieredCache":
        return stored_keys(cache.back)
    if kind == "DatabaseCache":
        import sqlalchemy as sa
        from sqlalchemy.pool import NullPool

        engine = sa.create_engine(cache.engine.url, poolclass=NullPool)
        try:
            with engine.connect() as conn:
                t = cache.table
                rows = conn.execute(sa.select(t.c.key, sa.func.count()).group_by(t.c.key)).all()
        finally:
            engine.dispose()
        return {str(k): int(n) for k, n in rows}
    if kind == "DiskCache":
        con = sqlite3.connect(os.path.join(cache.path, "cache.db"), timeout=30)
        try:
            rows = con.execute("SELECT key, COUNT(*) FROM Cache GROUP BY key").fetchall()
        finally:
            con.close()
        return {bytes(k).hex() if isinstance(k, bytes) else repr(k): int(n) for k, n in rows}
    if kind == "RedisCache":
        names = [n.decode().rsplit(":", 1)[1] for n in cache.client.scan_iter(match=f"{cache.prefix}:e:*")]
        return {n: names.count(n) for n in names}
    names = [n for n in os.listdir(cache.path) if not n.startswith(".") and n != "index"]  # not the per-function index
    return {n[:-5] if n.endswith(".json") else n: names.count(n) for n in names}


def check_reports(reports) -> None:
    for i, r in enumerate(reports):
        assert r["failures"] == [], f"process {i}: {len(r['failures'])} failures, first:\n{r['failures'][0]}"
        assert r["warnings"] == [], f"process {i} warned: {r['warnings'][:5]}"


def switches(reports) -> int:
    """How many times the writes, in time order, pass from one process's to the other's."""
    order = sorted((t, i) for i, r in enumerate(reports) for t, _ in r["writes"])
    return sum(a[1] != b[1] for a, b in zip(order, order[1:]))


def same_keys(workers: Workers, name: str, rounds: int) -> None:
    cache = backends.make(name)
    spec = backends.SPECS[id(cache)]
    reports = workers.run(upsert_child, [(spec, True, 4, NKEYS, rounds, 0.0)] * 2, timeout=600, what=f"R20 race on {name}")
    check_reports(reports)
    written = {tag for r in reports for _, tag in r["writes"]}
    assert len(written) == 2 * 4 * NKEYS * rounds  # every write returned
    assert stored_keys(cache) == {key_hex(k): 1 for k in range(NKEYS)}
    for k in range(NKEYS):
        final = cache.get("r20.f", k=k)
        assert final in written and final.endswith(f"k{k}"), f"key {k}: final value {final!r} was never written for it"
    assert store_problems(cache) == []
    cache.close()


def control(workers: Workers, name: str, rounds: int) -> None:
    cache = backends.make(name)
    spec = backends.SPECS[id(cache)]
    # At least `rounds` rounds, and at least 1 s of writing, so the processes overlap even when the
    # machine is loaded.
    job = (spec, False, 4, NKEYS, rounds, 1.0)
    reports = workers.run(upsert_child, [job] * 2, timeout=600, what=f"R20 control on {name}")
    check_reports(reports)
    tags = [tag for r in reports for _, tag in r["writes"]]
    assert len(tags) >= 2 * 4 * NKEYS * rounds and len(set(tags)) == len(tags)
    assert stored_keys(cache) == {key_hex(tag): 1 for tag in tags}  # no write lost, none doubled
    assert {e.inputs["k"]: e.output for e in cache} == {tag: tag for tag in tags}
    n = switches(reports)
    print(f"R20 control {name}: {len(tags)} writes, the writing process changed {n} times")
    assert n >= 2, f"the two processes' writes did not interleave ({n} switches): the race runs proved nothing"
    assert store_problems(cache) == []
    cache.close()


@pytest.mark.parametrize("name", BACKENDS)
def test_r20_same_keys_from_two_processes(workers: Workers, name: str) -> None:
    same_keys(workers, name, rounds=10)


@pytest.mark.parametrize("name", BACKENDS)
def test_r20_control_writes_interleave(workers: Workers, name: str) -> None:
    control(workers, name, rounds=3)


@pytest.mark.slow
@pytest.mark.parametrize("name", BACKENDS)
def test_r20_same_keys_matrix_count(workers: Workers, name: str) -> None:
    same_keys(workers, name, rounds=200)


@pytest.mark.slow
@pytest.mark.parametrize("name", BACKENDS)
def test_r20_control_matrix_count(workers: Workers, name: str) -> None:
    control(workers, name, rounds=50)


# ---- the first-time schema-init race -----------------------------------------------------------------


def fresh_spec(name: str, tmp_path) -> tuple[str, tuple, dict]:
    """A store nobody has created yet: a new SQLite file, server table, folder or Redis prefix."""
    if name == "sqlite":
        return "DatabaseCache", (), {"database": str(tmp_path / "fresh" / "cache.db")}
    if name == "disk":
        return "DiskCache", (str(tmp_path / "fresh-disk"),), {}
    if name == "json":
        return "JsonCache", (str(tmp_path / "fresh-json"),), {}
    if name in ("redis", "tiered"):  # a TieredCache's other processes open its back
        template = backends.make("redis")  # a fresh prefix, registered for deletion at exit
        return "RedisCache", (template.url,), {"prefix": template.prefix}
    template = backends.make(name)  # for the URL only; its own table is another one
    url = template.engine.url.render_as_string(hide_password=False)
    template.close()
    return "DatabaseCache", (), {"url": url, "table": f"r20_{uuid.uuid4().hex[:12]}"}


def drop_table(spec) -> None:
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    engine = sa.create_engine(spec[2]["url"], poolclass=NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {spec[2]['table']}"))
    finally:
        engine.dispose()


@pytest.mark.parametrize("name", BACKENDS)
def test_r20_schema_init_race(name: str, tmp_path) -> None:
    spec = fresh_spec(name, tmp_path)
    n = 50
    barrier = threading.Barrier(n)
    errors: list[str] = []

    def construct(i: int) -> None:
        try:
            barrier.wait(60)
            cache = getattr(oxicache, spec[0])(*spec[1], **spec[2])
            try:
                cache.set("r20.init", output=i, i=i)
                assert cache.get("r20.init", i=i) == i
            finally:
                cache.close()  # servers: the connections go back at once (50 caches x a pool each)
        except BaseException as err:  # noqa: BLE001 - every error is a failure, reported below
            errors.append(f"thread {i}: {type(err).__name__}: {err}")

    threads = [threading.Thread(target=construct, args=(i,), daemon=True) for i in range(n)]
    try:
        with watchdog(240, f"R20 schema-init race on {name}"):
            for t in threads:
                t.start()
            for t in threads:
                t.join(240)
        assert not errors, f"{len(errors)} of {n} constructions failed, first: {errors[0]}"
        cache = getattr(oxicache, spec[0])(*spec[1], **spec[2])
        assert len(cache) == n and store_problems(cache) == []
        cache.close()
    finally:
        if "table" in spec[2]:
            drop_table(spec)
