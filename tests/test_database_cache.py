"""DatabaseCache on SQLite, PostgreSQL and MySQL/MariaDB (docs/backends/database.md).

Server tests need `eval "$(bash scripts/db-servers.sh)"` (they skip without it, and fail under
OXICACHE_REQUIRE_SERVERS=1, see servers.py). Each test works on its own table, dropped afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid
import warnings

import pytest

import codec_values as cv
import oxicache
from oxicache import CacheEntry, CacheWarning, ValueEncodingError
from servers import MYSQL_URL_ENV, PG_URL_ENV, make_engine, require_server

sa = pytest.importorskip("sqlalchemy")
from oxicache.backends.database import DatabaseCache, DatabaseConnectionError  # noqa: E402

TESTS = os.path.dirname(os.path.abspath(__file__))
DIALECTS = ["sqlite", "postgresql", "mysql"]
SAMPLE = sorted(k for k in cv.CATALOGUE if k != "nested_200")  # too deep to sit inside a record


class Store:
    """Opens DatabaseCaches on one fresh table, runs SQL on it, and drops it at the end."""

    def __init__(self, dialect: str, tmp_path) -> None:
        self.dialect = dialect
        self.table = f"t_{uuid.uuid4().hex[:12]}"
        if dialect == "sqlite":
            self.url = f"sqlite:///{tmp_path / 'cache.db'}"
        else:
            self.url = require_server(PG_URL_ENV if dialect == "postgresql" else MYSQL_URL_ENV)
        self.caches: list[DatabaseCache] = []
        self.engine = make_engine(self.url) if dialect != "sqlite" else sa.create_engine(self.url)

    def open(self, **options) -> DatabaseCache:
        options.setdefault("table", self.table)
        cache = DatabaseCache(url=self.url, **options)
        self.caches.append(cache)
        return cache

    def spec(self) -> dict:
        return {"url": self.url, "table": self.table}

    def sql(self, text: str, **params):
        with self.engine.begin() as conn:
            result = conn.execute(sa.text(text), params)
            return result.all() if result.returns_rows else result.rowcount

    def text(self, column: str) -> str:
        """A JSON column as its stored text (psycopg would parse a PostgreSQL json value)."""
        return f"CAST({column} AS TEXT)" if self.dialect == "postgresql" else column

    def key(self) -> str:
        return "`key`" if self.dialect == "mysql" else '"key"'

    def close(self) -> None:
        for cache in self.caches:
            cache.close()
        if self.dialect != "sqlite":
            for table in {self.table, *(c._table_name for c in self.caches)}:
                self.sql(f"DROP TABLE IF EXISTS {table}")
        self.engine.dispose()


@pytest.fixture(params=DIALECTS)
def store(request, tmp_path):
    s = Store(request.param, tmp_path)
    yield s
    s.close()


@pytest.fixture
def cache(store):
    return store.open()


# ---- values ---------------------------------------------------------------------------------------


def test_every_codec_value_round_trips_through_set_and_get(store, cache):
    for label in SAMPLE:
        cache.set("catalogue", output=cv.CATALOGUE[label], label=label)
    other = store.open()  # a second engine: nothing is kept in process memory
    for label in SAMPLE:
        assert cv.same(other.get("catalogue", label=label), cv.CATALOGUE[label]), label


def test_every_codec_value_round_trips_through_memoize(cache):
    runs = []
    # A result of ``...`` means "no output": never stored, the function runs every call (R15).
    sample = [label for label in SAMPLE if label != "ellipsis"]

    @cache.memoize
    def value_of(label):
        runs.append(label)
        return cv.CATALOGUE[label]

    for label in sample:
        assert cv.same(value_of(label), cv.CATALOGUE[label]), label
    for label in sample:
        assert cv.same(value_of(label), cv.CATALOGUE[label]), label  # hits, decoded from the row
    assert runs == sample
    assert value_of.cache_info().hits == len(sample)


def test_dict_order_and_exact_numbers_survive(cache):
    value = {"b": 1, "a": 2.5, "c": [10**18, -0.0, 1e300], "z": {"y": 1, "x": 2}}
    cache.set("f", output=value, x=1)
    got = cache.get("f", x=1)
    assert list(got) == ["b", "a", "c", "z"] and list(got["z"]) == ["y", "x"]
    assert cv.same(got, value)


def test_entries_read_back_recompute_to_their_key(store, cache):
    inputs = [
        {"t": (1, 2), "s": {3, 4}, "f": frozenset({"a"}), "d": {1: "one", (2, 3): None}},
        {"n": 2**80, "x": -0.0, "when": cv.CATALOGUE.get("datetime_paris_fold1", 0)},
        {"b": b"\x00\xff", "nested": [[(1,)], {"k": [1.5]}]},
    ]
    keys = {}
    for i, args in enumerate(inputs):
        entry = CacheEntry("invariant", args, output=i)
        cache.add(entry)
        keys[entry.key] = i
    for reader in (cache, store.open()):
        read = list(reader)
        assert sorted(keys[e.key] for e in read) == sorted(keys.values())  # e.key recomputed == original
        for e in read:
            assert cv.same(e.inputs, inputs[e.output])
            assert reader[e.key] == e


def test_columns_hold_queryable_json_and_null_for_unset_values(store, cache):
    cache.set("f", output=[1, 2], x=5)
    cache.annotate("g", {"x": 6}, expected=7)
    cache.set(CacheEntry("h", {"x": 7}))  # no output at all
    rows = store.sql(f"SELECT func, {store.key()}, {store.text('output')}, {store.text('expected')}, scheme "
                     f"FROM {store.table} ORDER BY func")
    by_func = {r[0]: r for r in rows}
    assert by_func["f"][2] == "[1,2]" and by_func["f"][3] is None
    assert by_func["g"][2] == "7" and by_func["g"][3] == "7"
    assert by_func["h"][2] is None and by_func["h"][3] is None
    assert by_func["f"][1] == f"{CacheEntry('f', {'x': 5}).key:032x}"
    assert {r[4] for r in rows} == {oxicache.KEY_SCHEME_VERSION}
    assert cache.retrieve("h", x=7).output is ...
    assert cache.retrieve("g", x=6).expected == 7


QUERIES = {  # the examples of docs/backends/database.md
    "sqlite": "SELECT json_extract(inputs, '$.x') FROM {t} WHERE func = 'f' AND json_extract(inputs, '$.x') > 1",
    "postgresql": "SELECT inputs::json->>'x' FROM {t} WHERE func = 'f' AND (inputs::json->>'x')::int > 1",
    "mysql": "SELECT JSON_EXTRACT(inputs, '$.x') FROM {t} WHERE func = 'f' AND JSON_EXTRACT(inputs, '$.x') > 1",
}
ANNOTATION_QUERIES = {
    "sqlite": "SELECT json_extract(metadata, '$.annotation.label') FROM {t} WHERE json_extract(metadata, '$.annotation.label') IS NOT NULL",
    "postgresql": "SELECT metadata::json->'annotation'->>'label' FROM {t} WHERE metadata::json->'annotation'->>'label' IS NOT NULL",
    "mysql": "SELECT JSON_UNQUOTE(JSON_EXTRACT(metadata, '$.annotation.label')) FROM {t} WHERE JSON_EXTRACT(metadata, '$.annotation.label') IS NOT NULL",
}


def test_rows_can_be_queried_with_the_dialects_json_functions(store, cache):
    for x in (1, 2, 3):
        cache.set("f", output=x * x, x=x)

    @cache.memoize(annotation={"label": "golden"})
    def g(x):
        return x

    g(1)
    rows = store.sql(QUERIES[store.dialect].format(t=store.table))
    assert sorted(int(r[0]) for r in rows) == [2, 3]
    assert [r[0] for r in store.sql(ANNOTATION_QUERIES[store.dialect].format(t=store.table))] == ["golden"]


# ---- writes ---------------------------------------------------------------------------------------


def test_a_store_replaces_the_row_of_its_key(store, cache):
    cache.set("f", output="old", x=1)
    cache.set("f", output="new", x=1)
    assert cache.get("f", x=1) == "new"
    assert store.sql(f"SELECT COUNT(*) FROM {store.table}")[0][0] == 1
    assert len(cache) == 1


def test_remove_clear_pop_and_stats(store, cache):
    for x in range(5):
        cache.set("f", output=x, x=x)
    neighbour = store.open(table=f"{store.table}_n")
    neighbour.set("f", output=1, x=1)
    assert cache.remove("f", x=1) is True and cache.remove("f", x=1) is False
    assert "f" not in [e.func for e in cache if e.inputs["x"] == 1]
    popped = cache.pop()
    assert popped is not None and len(cache) == 3
    assert cache.stats()["size"] == 3
    cache.clear()
    assert len(cache) == 0 and list(cache) == []
    assert neighbour.get("f", x=1) == 1  # clear() empties this table only


def test_unencodable_output_warns_returns_the_value_and_keeps_the_old_row(store, cache):
    outputs = iter([{"v": 1}, object()])

    @cache.memoize
    def produce(x):
        return next(outputs)

    assert produce(1) == {"v": 1}
    with oxicache.refresh(), pytest.warns(CacheWarning, match="not cached") as caught:
        result = produce(1)
    assert type(result) is object and len(caught) == 1
    assert cache.get(produce, x=1) == {"v": 1}
    with pytest.raises(ValueEncodingError):
        cache.set(produce, {"x": 1}, output=object())  # a manual set raises; the row survives
    assert cache.get(produce, x=1) == {"v": 1}
    assert store.sql(f"SELECT COUNT(*) FROM {store.table}")[0][0] == 1


def test_too_long_function_name_is_not_stored(cache):
    @cache.memoize(name="n" * 300)
    def f(x):
        return x

    with pytest.warns(CacheWarning, match="longer than 255"):
        assert f(1) == 1
    assert len(cache) == 0


# ---- TTL ------------------------------------------------------------------------------------------


def test_ttl_rows_expire_and_are_deleted(store):
    cache = store.open(ttl=0.3)
    cache.set("f", output=1, x=1)  # the cache's default ttl
    cache.set("f", output=2, x=2, ttl=60)
    cache.set("f", output=3, x=3, ttl=0.3)

    @cache.memoize(annotation={"ttl": 0.3})
    def g(x):
        return x

    g(4)
    assert len(cache) == 4 and cache.get("f", x=1) == 1
    time.sleep(0.45)
    assert cache.get("f", x=1) is ...  # a miss, and the row is deleted on the way
    assert not cache.exists("f", x=3) and 3 not in [e.output for e in cache]
    assert len(cache) == 1 and [e.output for e in cache] == [2]
    assert store.sql(f"SELECT COUNT(*) FROM {store.table}")[0][0] == 3
    assert cache.expire() == 2  # f(x=3) and g(4)
    assert store.sql(f"SELECT COUNT(*) FROM {store.table}")[0][0] == 1
    assert cache.expire() == 0


# ---- damaged rows ---------------------------------------------------------------------------------


def test_damaged_row_is_a_miss_with_a_warning_then_overwritten(store, cache):
    runs = []

    @cache.memoize(name="damage.f")
    def f(x):
        runs.append(x)
        return {"x": x}

    f(1)
    f(2)
    # PostgreSQL's json type refuses text that is not JSON: there the damage is a codec-invalid JSON value.
    bad = '{"$tuple": 5}' if store.dialect == "postgresql" else '{"$tuple": [1, '
    store.sql(f"UPDATE {store.table} SET output = {'CAST(:bad AS json)' if store.dialect == 'postgresql' else ':bad'} "
              "WHERE func = 'damage.f'", bad=bad)
    with pytest.warns(CacheWarning, match="damaged"):
        assert cache.get(f, x=1) is ...
    with pytest.warns(CacheWarning, match="damaged"):
        assert f(1) == {"x": 1}  # recomputed and stored over the damaged row
    assert runs == [1, 2, 1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert f(1) == {"x": 1} and runs == [1, 2, 1]
    with pytest.warns(CacheWarning, match="damaged"):
        assert [e.output for e in cache] == [{"x": 1}]  # f(2) is still damaged: skipped


def test_row_stored_under_another_key_is_not_returned(store, cache):
    cache.set("f", output="one", x=1)
    cache.set("f", output="two", x=2)
    store.sql(f"DELETE FROM {store.table} WHERE {store.key()} = :k", k=f"{CacheEntry('f', {'x': 2}).key:032x}")
    store.sql(f"UPDATE {store.table} SET {store.key()} = :k", k=f"{CacheEntry('f', {'x': 2}).key:032x}")
    with pytest.warns(CacheWarning, match="do not match"):
        assert cache.get("f", x=2) is ...


# ---- construction errors --------------------------------------------------------------------------


@pytest.mark.parametrize("table", ["", "1abc", "a-b", "a b", "t;DROP TABLE x", 'q"', "é", "a" * 64, None, 5])
def test_table_name_must_be_a_plain_identifier(table, tmp_path):
    with pytest.raises(ValueError, match="plain SQL identifier"):
        DatabaseCache(database=str(tmp_path / "c.db"), table=table)
    assert not (tmp_path / "c.db").exists()  # refused before anything is opened


@pytest.mark.parametrize("provider", ["oracle", "duckdb", "", "sqlite3", None])
def test_unknown_provider_is_named(provider):
    with pytest.raises(ValueError, match="unknown DatabaseCache provider") as info:
        DatabaseCache(provider)
    assert repr(provider) in str(info.value) and "'pg'" in str(info.value)


def test_url_and_settings_are_exclusive(tmp_path):
    with pytest.raises(TypeError, match="either url= or"):
        DatabaseCache(url=f"sqlite:///{tmp_path}/c.db", database="x")
    with pytest.raises(TypeError, match="do not apply"):
        DatabaseCache("sqlite", str(tmp_path / "c.db"), host="localhost")
    with pytest.raises(TypeError, match="not both"):
        DatabaseCache("pg", "db", user="a", username="b")
    with pytest.raises(ValueError, match="does not match"):
        DatabaseCache("mysql", url=f"sqlite:///{tmp_path}/c.db")
    with pytest.raises(ValueError, match="supports SQLite, PostgreSQL and MySQL"):
        DatabaseCache(url="mssql+pyodbc://u:secret@host/db")


@pytest.mark.parametrize("provider", ["postgresql", "pg", "mysql"])
def test_unreachable_server_raises_at_construction_without_the_password(provider):
    started = time.monotonic()
    with pytest.raises(DatabaseConnectionError, match="cannot open") as info:
        DatabaseCache(provider, "db", host="127.0.0.1", port=1, user="someone", password="s3cret")
    assert "127.0.0.1:1" in str(info.value) and "s3cret" not in str(info.value)
    assert isinstance(info.value, ConnectionError) and isinstance(info.value, oxicache.CacheError)
    assert time.monotonic() - started < 15


def test_unwritable_sqlite_folder_raises_at_construction(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OSError, match="cannot create the folder") as info:
        DatabaseCache(database=str(blocker / "sub" / "cache.db"))
    assert str(blocker) in str(info.value)
    not_a_db = tmp_path / "junk.db"
    not_a_db.write_bytes(b"this is not a database" * 100)
    with pytest.raises(DatabaseConnectionError, match="junk.db"):
        DatabaseCache(database=str(not_a_db))


def test_table_of_another_shape_is_refused(store):
    store.sql(f"CREATE TABLE {store.table} (id INTEGER PRIMARY KEY)")
    with pytest.raises(ValueError, match="not an oxicache table"):
        store.open()


def test_missing_libraries_name_the_pip_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(ImportError, match=r"oxicache\[postgresql\]"):
        DatabaseCache("pg", "db", host="127.0.0.1", port=1)
    monkeypatch.setitem(sys.modules, "pymysql", None)
    with pytest.raises(ImportError, match=r"oxicache\[mysql\]"):
        DatabaseCache(url="mysql://u@127.0.0.1:1/db")
    monkeypatch.setitem(sys.modules, "sqlalchemy", None)
    with pytest.raises(ImportError, match=r"oxicache\[sqlite\]"):
        DatabaseCache(database=str(tmp_path / "c.db"), table="mine")  # only the default table runs without it
    # A SQLite file with the default table runs on sqlite3 alone; what needs SQLAlchemy names the extra.
    cache = DatabaseCache(database=str(tmp_path / "c.db"))
    cache.set("f", output=1, x=1)
    assert cache.get("f", x=1) == 1 and len(cache) == 1
    with pytest.raises(ImportError, match=r"oxicache\[sqlite\]"):
        cache.engine
    cache.close()


# ---- providers and settings -----------------------------------------------------------------------


def test_sqlite_default_path_pragmas_and_memory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cache = DatabaseCache()
    try:
        assert (tmp_path / ".oxicache" / "cache.db").exists()
        assert repr(cache) == f"DatabaseCache(url='sqlite:///{tmp_path}/.oxicache/cache.db', table='oxicache_entries')"
        with cache.engine.connect() as conn:
            pragma = {name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                      for name in ("journal_mode", "synchronous", "busy_timeout")}
        assert pragma == {"journal_mode": "wal", "synchronous": 1, "busy_timeout": 30000}
    finally:
        cache.close()
    one, two = DatabaseCache(database=":memory:"), DatabaseCache(database=":memory:")
    one.set("f", output=1, x=1)
    assert one.get("f", x=1) == 1 and two.get("f", x=1) is ...  # each instance has its own database
    one.close()
    assert one.get("f", x=1) == 1  # close() releases the connection, the database stays with the cache


@pytest.mark.parametrize("provider", ["postgresql", "pg", "mysql"])
def test_provider_names_and_settings(provider):
    url = sa.engine.make_url(require_server(MYSQL_URL_ENV if provider == "mysql" else PG_URL_ENV))
    table = f"t_{uuid.uuid4().hex[:12]}"
    user = {"user": url.username} if provider != "pg" else {"username": url.username}  # ahvn's spelling
    cache = DatabaseCache(provider, url.database, host=url.host, port=url.port, password=url.password,
                          table=table, **user)
    try:
        cache.set("f", output=1, x=1)
        assert cache.get("f", x=1) == 1
        assert f":{url.password}@" not in repr(cache) and ":***@" in repr(cache)
    finally:
        cache.table.drop(cache.engine)
        cache.close()


def test_long_table_names_get_short_index_names(store):
    cache = store.open(table="t" + uuid.uuid4().hex + "x" * 30)  # 63 characters
    assert len(cache._table_name) == 63
    names = {i["name"] for i in sa.inspect(cache.engine).get_indexes(cache._table_name)}
    assert len(names) == 2 and all(len(n) <= 63 and n.startswith(cache._table_name[:40]) for n in names)
    cache.set("f", output=1, x=1)
    assert cache.get("f", x=1) == 1


def test_close_then_reuse_and_engine_options(store):
    cache = store.open(engine_options={"pool_pre_ping": True, "connect_args": {}})
    cache.set("f", output=1, x=1)
    cache.close()
    assert len(cache._pool.idle) == 0
    assert cache.get("f", x=1) == 1  # reconnects
    cache.close()
    unpooled = store.open(engine_options={"poolclass": sa.pool.NullPool})
    assert unpooled.get("f", x=1) == 1


def test_schema(store, cache):
    inspector = sa.inspect(cache.engine)
    columns = {c["name"]: c for c in inspector.get_columns(store.table)}
    assert list(columns) == ["key", "func", "inputs", "output", "expected", "metadata", "scheme", "created_at",
                             "expires_at"]
    assert inspector.get_pk_constraint(store.table)["constrained_columns"] == ["key"]
    indexes = {i["name"]: i["column_names"] for i in inspector.get_indexes(store.table)}
    assert indexes[f"{store.table}_func"] == ["func"] and indexes[f"{store.table}_expires_at"] == ["expires_at"]
    json_type = {"sqlite": "TEXT", "postgresql": "JSON", "mysql": "LONGTEXT"}[store.dialect]
    assert {str(columns[n]["type"]) for n in ("inputs", "output", "expected", "metadata")} == {json_type}
    assert columns["output"]["nullable"] and not columns["inputs"]["nullable"]


# ---- concurrency ----------------------------------------------------------------------------------


def test_threads_share_the_cache_and_reuse_connections(store, cache):
    def work(i):
        for x in range(20):
            cache.set("f", output=[i, x], x=x, i=i)
            assert cache.get("f", x=x, i=i) == [i, x]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(cache) == 160
    opened = len(cache._pool.members)
    for i in range(30):  # threads one after another: they reuse the idle connections
        t = threading.Thread(target=cache.get, args=("f",), kwargs={"x": 1, "i": 1})
        t.start()
        t.join()
    assert len(cache._pool.members) == opened <= 8


def test_memory_database_is_shared_by_threads():
    cache = DatabaseCache(database=":memory:")
    errors = []

    def work(i):
        try:
            for x in range(50):
                cache.set("f", output=x, x=x, i=i)
                assert cache.get("f", x=x, i=i) == x
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(cache) == 400
    cache.close()


def test_fifty_threads_creating_one_table_at_once(store):
    barrier = threading.Barrier(50)
    errors, caches = [], []

    def create():
        try:
            barrier.wait()
            cache = DatabaseCache(url=store.url, table=store.table)
            caches.append(cache)
            cache.set("f", output=1, x=1)
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=create) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for cache in caches:
        cache.close()
    assert errors == []
    assert len(caches) == 50
    assert store.open().get("f", x=1) == 1


WRITER = textwrap.dedent(
    """
    import json, sys, time
    sys.path.insert(0, {tests!r})
    from oxicache.backends.database import DatabaseCache
    spec = json.loads(sys.argv[1])
    while time.time() < spec["start"]:
        time.sleep(0.001)
    cache = DatabaseCache(url=spec["url"], table=spec["table"])  # both processes create the table
    runs = []

    @cache.memoize(name="shared.square")
    def square(x):
        runs.append(x)
        return {{"x": x, "square": x * x, "by": spec["tag"]}}

    for x in spec["keys"]:
        square(x)
    for x in spec["overwrite"]:
        cache.set("shared.overwrite", output=[spec["tag"], x], x=x)
    hits = [x for x in spec.get("check", []) if cache.get("shared.square", x=x) is not ...]
    print(json.dumps({{"runs": runs, "hits": hits}}))
    cache.close()
    """
)


def run_writers(store, specs):
    code = WRITER.format(tests=TESTS)
    start = time.time() + 1.0
    results = [None] * len(specs)

    def run(i):
        spec = {**store.spec(), "keys": [], "overwrite": [], "start": start, **specs[i]}
        results[i] = subprocess.run([sys.executable, "-c", code, json.dumps(spec)], capture_output=True,
                                    text=True, timeout=120)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(specs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        assert r.returncode == 0, r.stderr
    return [json.loads(r.stdout) for r in results]


def test_two_processes_writing_the_same_keys_leave_one_intact_row_each(store):
    keys = list(range(100))
    run_writers(store, [
        {"tag": "a", "keys": keys, "overwrite": keys},
        {"tag": "b", "keys": keys[::-1], "overwrite": keys[::-1]},
    ])
    assert store.sql(f"SELECT COUNT(*) FROM {store.table}")[0][0] == 200
    cache = store.open()
    entries = list(cache)
    squares = sorted((e for e in entries if e.func == "shared.square"), key=lambda e: e.inputs["x"])
    assert [e.inputs["x"] for e in squares] == keys
    assert all(e.output["square"] == e.inputs["x"] ** 2 and e.output["by"] in "ab" for e in squares)
    overwrites = [e for e in entries if e.func == "shared.overwrite"]
    assert sorted(e.inputs["x"] for e in overwrites) == keys
    assert all(e.output[0] in "ab" and e.output[1] == e.inputs["x"] for e in overwrites)
    [third] = run_writers(store, [{"tag": "c", "keys": [1, 2, 1000], "check": keys}])
    assert third == {"runs": [1000], "hits": keys}  # written by the others: hits here


def test_entries_written_here_are_hits_in_another_process(store, cache):
    @cache.memoize(name="shared.square")
    def square(x):
        return {"x": x, "square": x * x, "by": "parent"}

    square(7)
    [child] = run_writers(store, [{"tag": "child", "keys": [7, 8], "check": [7, 8]}])
    assert child == {"runs": [8], "hits": [7, 8]}
    assert square(8) == {"x": 8, "square": 64, "by": "child"}


SESSION = {"sqlite": None, "postgresql": "SELECT pg_backend_pid()", "mysql": "SELECT CONNECTION_ID()"}


def session_id(cache, dialect):
    query = SESSION[dialect]
    if query is None:
        return None
    holder = cache._pool.take()
    try:
        holder.cursor.execute(query)
        return holder.cursor.fetchone()[0]
    finally:
        cache._pool.give(holder)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_uses_its_own_connection(store, cache):
    cache.set("f", output="parent", x=1)
    parent_session = session_id(cache, store.dialect)
    read, write = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (Python 3.12+)
        pid = os.fork()
    if pid == 0:  # the child: report, then leave without running pytest's cleanup
        status = 1
        try:
            os.close(read)
            seen = cache.get("f", x=1)
            cache.set("f", output="child", x=2)
            report = {"seen": seen, "session": session_id(cache, store.dialect)}
            os.write(write, json.dumps(report).encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write)
    with os.fdopen(read) as pipe:
        report = json.loads(pipe.read() or "null")
    _, status = os.waitpid(pid, 0)
    assert status == 0 and report is not None
    assert report["seen"] == "parent"
    if parent_session is not None:
        assert report["session"] != parent_session  # a fresh connection, not the parent's
        assert session_id(cache, store.dialect) == parent_session  # the parent's is untouched
    assert cache.get("f", x=2) == "child" and cache.get("f", x=1) == "parent"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_gets_a_copy_of_a_memory_database():
    cache = DatabaseCache(database=":memory:")
    cache.set("f", output="parent", x=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:
        ok = False
        try:
            ok = cache.get("f", x=1) == "parent"
            cache.set("f", output="child", x=2)
            ok = ok and cache.get("f", x=2) == "child"
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert status == 0
    assert cache.get("f", x=1) == "parent" and cache.get("f", x=2) is ...  # the child's copy was its own
    cache.close()


@pytest.mark.parametrize("store", ["postgresql", "mysql"], indirect=True)
def test_a_dropped_connection_is_replaced(store, cache):
    cache.set("f", output=1, x=1)
    session = session_id(cache, store.dialect)
    kill = "SELECT pg_terminate_backend(:s)" if store.dialect == "postgresql" else "KILL :s"
    store.sql(kill, s=session)
    time.sleep(0.1)
    assert cache.get("f", x=1) == 1  # reconnected and ran again
    assert session_id(cache, store.dialect) != session


def test_async_memoize_offloads_io(cache):
    import asyncio

    @cache.memoize
    async def double(x):
        await asyncio.sleep(0)
        return 2 * x

    async def main():
        return await asyncio.gather(*(double(i % 5) for i in range(20)))

    assert DatabaseCache.blocking_io is True
    assert asyncio.run(main()) == [2 * (i % 5) for i in range(20)]
    assert asyncio.run(main()) == [2 * (i % 5) for i in range(20)]
    assert double.cache_info().sets == 5


def test_a_connection_whose_checkout_is_dropped_is_never_reused(store, cache):
    """An interrupt can land anywhere in the driver, even in the cache's own clean-up: a checkout dropped on
    the floor may hold a connection out of step with its server (PyMySQL stopped between sending a query and
    reading its reply reads that reply as its next statement's). Such a connection is closed with its
    checkout, never handed out again. (SQLAlchemy's pool took it back after a rollback and handed it to the
    next checkout: CI's interrupt storm on MariaDB then read one key's record for another.) A temporary
    table marks the dropped connection: temporary tables belong to one connection."""
    import gc

    temporary = "TEMPORARY" if store.dialect == "mysql" else "TEMP"
    cache.set("f", output=1, x=1)
    cache.set("f", output=2, x=2)
    holder = cache._pool.take()
    holder.cursor.execute(f"CREATE {temporary} TABLE dropped_marker (x INTEGER)")
    if store.dialect == "mysql":
        from pymysql.constants import COMMAND

        # Sent, its OK never read: a rollback on this connection would take that OK for its own and leave
        # its own to be read by the next statement, which leaves its rows to the one after, and so on.
        holder.dbapi._execute_command(COMMAND.COM_QUERY, "SET @oxicache_unread = 1")
    del holder
    gc.collect()
    for _ in range(3):
        assert cache.get("f", x=2) == 2
        assert cache.get("f", x=1) == 1
    holders = [cache._pool.take() for _ in range(3)]  # the idle one and new ones, from the engine
    try:
        for h in holders:
            with pytest.raises(Exception, match="(?i)dropped_marker"):
                h.cursor.execute("SELECT COUNT(*) FROM dropped_marker")
    finally:
        for h in holders:
            cache._pool.discard(h, RuntimeError("its statement failed"), lost=False)
