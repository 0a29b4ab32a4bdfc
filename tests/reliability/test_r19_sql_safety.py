"""R19 of the reliability matrix: SQL injection and identifier safety, on DatabaseCache with SQLite,
PostgreSQL and MySQL/MariaDB (the servers run when their URLs are set; OXICACHE_REQUIRE_SERVERS=1 makes a
missing server a failure).

Hostile strings (``'; DROP TABLE <sentinel>; --``, quotes, backticks, ``%s``, ``%(x)s``, ``?``, ``:name``,
``$1``, backslashes, Unicode, trailing spaces, a 10 KB string) are used as function names (within the
255-character func column; a longer name is refused with ValueEncodingError before any SQL), input names
and values, metadata keys and values, outputs and expected values; through ``cache.set`` and memoize.
Checked: exact round-trip (from a second instance on the same table too), a sentinel table created
beforehand is intact afterwards, one row per distinct call, per-function counts and ``cache_clear()``
exact (MySQL/MariaDB compare strings PAD SPACE: ``"f"`` matched ``"f "`` until the count and clear
statements also compared lengths; ``test_per_function_count_and_clear_are_exact`` is the regression
test), the database's JSON functions read the hostile inputs back as written, invalid table names are
refused by validation with a clear ValueError (before any connection), and SQL reserved words and
mixed case work as table names.

The matrix row's "namespaces" do not exist in oxicache (the function identity is the namespace); they
are the function names here.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from backends import SPECS, make

import oxicache
from oxicache import DatabaseCache, ValueEncodingError

DIALECTS = ["sqlite", "postgresql", "mysql"]
SENTINEL = f"r19_sentinel_{uuid.uuid4().hex[:8]}"


def hostile() -> list[str]:
    return [
        f"'; DROP TABLE {SENTINEL}; --", f'"; DROP TABLE {SENTINEL}; --', f"`; DROP TABLE {SENTINEL}; --",
        "' OR '1'='1", "'", "''", '"', "`", "\\", "\\'", "%s", "%%s", "%(x)s", "%(func)s", "?", "??", ":name",
        ":func", "$1", "{0}", "日本語 🐍 ñ", "e\u0301", "f ", " f", "f  ", "\t\n", "x" * 200,
        "'" * 255, "a;b", "/* c */", "-- c",
    ]


BIG = "'; DROP TABLE x; -- %s ? :n `b` \"q\" é🐍 " * 256  # ~10 KB


@pytest.fixture(params=DIALECTS)
def cache(request: pytest.FixtureRequest) -> Any:
    import sqlalchemy as sa

    c = make(request.param)
    with c.engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {SENTINEL} (v VARCHAR(20))"))
        conn.execute(sa.text(f"INSERT INTO {SENTINEL} (v) VALUES ('intact')"))
    yield c
    with c.engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {SENTINEL}"))
    c.close()


def sentinel_rows(cache: Any) -> list[tuple[Any, ...]]:
    import sqlalchemy as sa

    with cache.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(f"SELECT v FROM {SENTINEL}"))]


def reopen(cache: Any) -> Any:
    cls_name, args, kwargs = SPECS[id(cache)]
    return getattr(oxicache, cls_name)(*args, **kwargs)


def calls() -> list[tuple[str, dict[str, Any]]]:
    pairs = [(h, {"q": "plain"}) for h in hostile()]
    pairs += [("r19.f", {"q": h}) for h in [*hostile(), BIG]]
    pairs += [("r19.g", {h: 1}) for h in hostile()]
    pairs += [("r19.h", {"q": [BIG, {BIG: BIG}]})]
    return pairs


def stored(func: str, inputs: dict[str, Any]) -> dict[str, Any]:
    return {"output": [func, inputs, BIG], "expected": {func: inputs}, "metadata": {"note": func, func: list(inputs)}}


def test_hostile_strings_round_trip_and_tables_stay_intact(cache: Any) -> None:
    pairs = calls()
    for func, inputs in pairs:
        cache.set(func, inputs, **stored(func, inputs))
    assert sentinel_rows(cache) == [("intact",)]
    assert len(cache) == len(pairs)
    other = reopen(cache)
    for c in (cache, other):
        for func, inputs in pairs:
            entry = c.retrieve(func, inputs)
            assert entry is not ..., (func, inputs)
            want = stored(func, inputs)
            assert (entry.func, entry.inputs, entry.output, entry.expected, entry.metadata) == (
                func, inputs, want["output"], want["expected"], want["metadata"]), (func, inputs)
    assert other.verify() == []
    for func, inputs in pairs[:5]:
        assert other.remove(func, inputs)
    assert len(other) == len(pairs) - 5 and sentinel_rows(cache) == [("intact",)]
    other.close()


def test_hostile_memoized_names_and_arguments(cache: Any) -> None:
    runs: list[tuple[str, str]] = []
    fns = {}
    for name in hostile():
        fns[name] = cache.memoize(name=name)(lambda q, _n=name: runs.append((_n, q)) or [_n, q])
    for _ in range(2):
        for name, fn in fns.items():
            for q in ("%s", "'; --", "f", "f "):
                assert fn(q) == [name, q]
    assert len(runs) == len(fns) * 4, "hostile names or arguments collided"
    assert sentinel_rows(cache) == [("intact",)]


def test_per_function_count_and_clear_are_exact(cache: Any) -> None:
    """Function names differing only by trailing spaces or case are different functions everywhere,
    including cache_info().currsize and cache_clear() (one indexed COUNT/DELETE by func)."""
    names = ["r19.f", "r19.f ", "r19.f  ", "R19.F", "r19.f\t"]
    fns = [cache.memoize(name=n)(lambda x: x) for n in names]
    for i, fn in enumerate(fns):
        for x in range(i + 1):
            fn(x)
    assert [fn.cache_info().currsize for fn in fns] == [1, 2, 3, 4, 5]
    fns[0].cache_clear()
    assert [fn.cache_info().currsize for fn in fns] == [0, 2, 3, 4, 5]
    assert len(cache) == 14


def test_json_functions_read_hostile_inputs(cache: Any) -> None:
    import sqlalchemy as sa

    values = [h for h in hostile() if h != "\t\n"][:12] + [BIG]
    for i, v in enumerate(values):
        cache.set("r19.json", {"q": v, "i": i}, output=i)
    t = cache.table
    dialect = cache.engine.dialect.name
    if dialect == "postgresql":
        stmt = sa.text(f"SELECT inputs::json->>'q', output FROM {t.name} WHERE func = :f")
    elif dialect in ("mysql", "mariadb"):
        stmt = sa.text(f"SELECT JSON_UNQUOTE(JSON_EXTRACT(inputs, '$.q')), output FROM {t.name} WHERE func = :f")
    else:
        stmt = sa.text(f"SELECT json_extract(inputs, '$.q'), output FROM {t.name} WHERE func = :f")
    with cache.engine.connect() as conn:
        rows = conn.execute(stmt, {"f": "r19.json"}).all()
    got = {int(str(out)): text for text, out in rows}
    assert got == dict(enumerate(values))


def test_too_long_function_name_is_refused_before_sql(cache: Any) -> None:
    with pytest.raises(ValueEncodingError, match="longer than 255"):
        cache.set(BIG, {"q": 1}, output=1)
    assert len(cache) == 0 and sentinel_rows(cache) == [("intact",)]


INVALID_TABLES = [f"x; DROP TABLE {SENTINEL}", "a-b", "1abc", "", "a" * 64, "tbl'", 'tbl"', "tbl`", "ta ble",
                  "é", "x\x00", "x.y", "%s", "?", None, 5]


@pytest.mark.parametrize("table", INVALID_TABLES, ids=repr)
def test_invalid_table_names_are_refused_by_validation(table: Any) -> None:
    # an unreachable server: validation must answer before any connection is attempted
    for kwargs in ({"provider": "sqlite", "database": ":memory:"},
                   {"url": "postgresql://nobody@127.0.0.1:1/none"}, {"url": "mysql://nobody@127.0.0.1:1/none"}):
        with pytest.raises(ValueError, match="table must be a plain SQL identifier"):
            DatabaseCache(table=table, **kwargs)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_reserved_words_and_mixed_case_table_names(dialect: str) -> None:
    import sqlalchemy as sa

    base = make(dialect)
    cls_name, args, kwargs = SPECS[id(base)]
    base.close()
    for table in ("order", f"Mixed_Case_{uuid.uuid4().hex[:6]}"):
        cache = getattr(oxicache, cls_name)(*args, **{**kwargs, "table": table})
        try:
            cache.set("r19.t", {"q": "'; --"}, output=table)
            assert cache.get("r19.t", q="'; --") == table and len(cache) == 1
        finally:
            with cache.engine.begin() as conn:
                conn.execute(sa.text(f"DROP TABLE IF EXISTS {cache.engine.dialect.identifier_preparer.quote(table)}"))
            cache.close()
