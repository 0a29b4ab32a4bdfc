"""DatabaseCache on a SQLite file without SQLAlchemy (backends/_sqlitefile.py).

The direct path must be the engine's path without the import: the same statements (text and bind order),
the same schema, the same connection settings, files either path reads and writes, and SQLAlchemy
imported only by what needs it."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from oxicache import DatabaseCache
from oxicache.backends import _sqlitefile


def _engine_path(path: str) -> DatabaseCache:
    """A cache on ``path`` that goes through SQLAlchemy (a url= always does)."""
    return DatabaseCache(url=f"sqlite:///{path}")


def _schema(path: str) -> list[Any]:
    con = sqlite3.connect(path)
    try:
        return sorted(con.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall())
    finally:
        con.close()


def test_the_direct_path_is_taken_only_for_a_file_with_the_default_table(tmp_path: Any) -> None:
    path = str(tmp_path / "c.db")
    caches = {
        "direct": DatabaseCache(database=path),
        "url": _engine_path(path),
        "table": DatabaseCache(database=path, table="other"),
        "options": DatabaseCache(database=path, engine_options={"pool_pre_ping": True}),
        "memory": DatabaseCache(database=":memory:"),
    }
    try:
        direct = {name: isinstance(c._engine, _sqlitefile.Connections) for name, c in caches.items()}
        assert direct == {"direct": True, "url": False, "table": False, "options": False, "memory": False}
    finally:
        for c in caches.values():
            c.close()


def test_statements_are_what_sqlalchemy_compiles(tmp_path: Any) -> None:
    direct, engine = DatabaseCache(database=str(tmp_path / "a.db")), _engine_path(str(tmp_path / "b.db"))
    try:
        assert _sqlitefile.STATEMENTS  # every precompiled statement, compared one by one
        for name in _sqlitefile.STATEMENTS:
            ours, theirs = getattr(direct, f"_q_{name}"), getattr(engine, f"_q_{name}")
            assert (ours.sql, ours.names, ours.defaults) == (theirs.sql, theirs.names, theirs.defaults), name
        # ... and the engine's path has no statement the direct path lacks
        compiled = {n[3:] for n in vars(engine) if n.startswith("_q_") and hasattr(getattr(engine, n), "sql")}
        assert compiled == set(_sqlitefile.STATEMENTS)
        # The statements whose size varies: a batch's lookup, invalidate's two.
        for n in (1, 2, 3, 64, 512):
            pairs = [(direct._compile_get_many(n), engine._compile_get_many(n)),
                     *zip(direct._compile_invalidate(n), engine._compile_invalidate(n))]
            for ours, theirs in pairs:
                assert (ours.sql, ours.names, ours.defaults) == (theirs.sql, theirs.names, theirs.defaults), n
    finally:
        direct.close()
        engine.close()


def test_both_paths_make_the_same_schema_and_read_each_other(tmp_path: Any) -> None:
    a, b = str(tmp_path / "a.db"), str(tmp_path / "b.db")
    DatabaseCache(database=a).close()
    _engine_path(b).close()
    assert [row[:3] + (row[3].replace("b.db", "a.db") if row[3] else None,) for row in _schema(b)] == _schema(a)
    # One file, both paths at once: each reads what the other wrote, tags and counts included.
    direct, engine = DatabaseCache(database=a), _engine_path(a)
    try:
        direct.set("f", output=1, x=1, metadata={"tags": ["t"]})
        engine.set("f", output=2, x=2, metadata={"tags": ["t"]})
        assert engine.get("f", x=1) == 1 and direct.get("f", x=2) == 2
        assert len(direct) == len(engine) == 2
        assert engine.invalidate(tags=["t"]) == 2 and len(direct) == 0
    finally:
        direct.close()
        engine.close()


@pytest.mark.parametrize("name", ["c.db", "a b.db", "q?x=1#h.db", "p%20c.db", "u@v:w.db", "é.db"])
def test_the_url_is_written_as_sqlalchemy_writes_it(tmp_path: Any, name: str) -> None:
    direct, engine = DatabaseCache(database=str(tmp_path / name)), _engine_path(str(tmp_path / "x.db"))
    try:
        assert direct.url == engine.engine.url.set(database=str(tmp_path / name)).render_as_string()
        assert repr(direct) == f"DatabaseCache(url={direct.url!r}, table='oxicache_entries')"
        assert os.path.exists(tmp_path / name)  # the file is the path as given, not the URL's escaped form
    finally:
        direct.close()
        engine.close()


def test_the_direct_connections_have_the_engines_settings(tmp_path: Any) -> None:
    cache = DatabaseCache(database=str(tmp_path / "c.db"), timeout=7)
    try:
        holder = cache._pool.take()
        try:
            pragma = {name: holder.dbapi.execute(f"PRAGMA {name}").fetchone()[0]
                      for name in ("journal_mode", "synchronous", "busy_timeout")}
            assert holder.dbapi.isolation_level is None  # autocommit: each statement its own transaction
        finally:
            cache._pool.give(holder)
        assert pragma == {"journal_mode": "wal", "synchronous": 1, "busy_timeout": 7000}
    finally:
        cache.close()


def test_a_table_of_another_shape_is_refused_on_the_direct_path(tmp_path: Any) -> None:
    path = str(tmp_path / "c.db")
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE oxicache_entries (id INTEGER PRIMARY KEY, note TEXT)")
    con.commit()
    con.close()
    with pytest.raises(ValueError, match=r"exists but is not an oxicache table \(no column created_at, "):
        DatabaseCache(database=path)


def test_a_file_that_cannot_be_opened_is_one_clear_error(tmp_path: Any) -> None:
    folder = tmp_path / "a-folder.db"
    folder.mkdir()
    with pytest.raises(Exception, match="a-folder.db"):
        DatabaseCache(database=str(folder))


def test_sqlalchemy_is_imported_only_by_what_needs_it(tmp_path: Any) -> None:
    code = textwrap.dedent(f"""
        import sys
        import oxicache
        cache = oxicache.DatabaseCache(database={str(tmp_path / "c.db")!r}, ttl=60)
        f = cache.memoize(name="f", tags=["t"])(lambda x: x * 2)
        assert [f(1), f(1), f(2)] == [2, 2, 4] and f.cache_info().hits == 1
        assert len(cache) == 2 and sorted(e.output for e in cache) == [2, 4]
        assert cache.get("f", x=1) == 2 and cache.exists("f", x=2) and cache.remove("f", x=2)
        assert cache.expire() == 0 and cache.pop().output == 2
        f.cache_clear()
        cache.clear()
        assert "sqlalchemy" not in sys.modules, "the direct path imported SQLAlchemy"
        cache.set("g", output=1, x=1, metadata={{"tags": ["t"]}})
        calls = []

        @cache.batch_memoize(name="b")
        def double(items):
            calls.append(list(items))
            return [i * 2 for i in items]

        assert double([1, 2]) == [2, 4] and double([1, 2, 3]) == [2, 4, 6] and calls == [[1, 2], [3]]
        assert cache.invalidate(tags=["t"]) == 1 and len(cache) == 3  # the batch's three entries are left
        assert "sqlalchemy" not in sys.modules, "the direct path imported SQLAlchemy"
        cache.set("g", output=1, x=1)
        assert cache.verify() == [] and "sqlalchemy" in sys.modules  # verify() compiles its own statements
        assert cache.table.name == "oxicache_entries"
        cache.close()
    """)
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONWARNINGS": "error"})
