"""The ``oxicache`` command's store subcommands, run as a real subprocess (``python -m oxicache``) on real
stores: DiskCache, JsonCache and SQLite files under tmp_path, and tables on the PostgreSQL and MariaDB
servers of scripts/db-servers.sh (skipped without them, failed under OXICACHE_REQUIRE_SERVERS=1).

Covers ls/show/stats (tables and --json), the --func/--annotated/--annotation filters, rm and clear, export
-> import into another kind of store -> identical entries with their types, verify on sound and damaged
stores, --allow for codec classes, the progress bar on a terminal (a real pty), bench --chart, and bad input
(unparsable store, unreachable server, missing store, files that are not JSON lines): exit status 2, one
line on stderr, no traceback, nothing written.
"""

from __future__ import annotations

import datetime
import decimal
import json
import os
import pty
import select
import socket
import sqlite3
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest

import oxicache
from oxicache import CacheEntry
from oxicache.codec import encode_json
from servers import MYSQL_URL_ENV, PG_URL_ENV, REDIS_URL_ENV, require_server

TESTS = Path(__file__).resolve().parent
KINDS = ["disk", "json", "sqlite", "postgresql", "mysql", "redis"]
TIMEOUT = 180  # generous: the machine is shared


def run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "oxicache", *args], capture_output=True, text=True,
                          timeout=TIMEOUT, cwd=cwd, env=full_env, input=stdin)


def assert_bad_input(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert ": error: " in lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]


@dataclass
class Store:
    kind: str
    args: list[str]  # the STORE argument (plus --table for servers)
    open: Callable[[], Any]  # a Python cache on the same storage
    exists: Callable[[], bool]  # whether the storage exists at all

    @property
    def spec(self) -> str:
        return self.args[0]


def _server_table(url: str, table: str) -> bool:
    import sqlalchemy

    from servers import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return bool(sqlalchemy.inspect(conn).has_table(table))
    finally:
        engine.dispose()


def _redis_keys(url: str, prefix: str) -> bool:
    """Whether any key of the prefix exists (a Redis store has no existence of its own)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        return any(True for _ in client.scan_iter(match=f"{prefix}:*"))
    finally:
        client.close()


def _drop(url: str, table: str) -> None:
    import sqlalchemy

    from servers import make_engine

    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text(f"DROP TABLE IF EXISTS {table}"))
    finally:
        engine.dispose()


@pytest.fixture
def new_store(tmp_path: Path, request: pytest.FixtureRequest) -> Callable[[str], Store]:
    """new_store(kind) -> an empty store of that kind that does not exist yet (nothing created)."""
    serial = iter(range(1000))

    def make(kind: str) -> Store:
        n = next(serial)
        if kind in ("disk", "json"):
            path = tmp_path / f"{kind}{n}"
            cls = oxicache.DiskCache if kind == "disk" else oxicache.JsonCache
            return Store(kind, [f"{kind}:{path}"], lambda: cls(str(path)), path.exists)
        if kind == "sqlite":
            path = tmp_path / f"db{n}.sqlite"
            return Store(kind, [f"sqlite:{path}"], lambda: oxicache.DatabaseCache("sqlite", str(path)), path.exists)
        if kind == "redis":
            url = require_server(REDIS_URL_ENV)
            prefix = f"cli{uuid.uuid4().hex[:12]}"
            request.addfinalizer(lambda: oxicache.RedisCache(url, prefix=prefix).clear())
            return Store(kind, [url, "--prefix", prefix], lambda: oxicache.RedisCache(url, prefix=prefix),
                         lambda: _redis_keys(url, prefix))
        url = require_server(PG_URL_ENV if kind == "postgresql" else MYSQL_URL_ENV)
        table = f"cli_{uuid.uuid4().hex[:12]}"
        request.addfinalizer(lambda: _drop(url, table))
        return Store(kind, [url, "--table", table], lambda: oxicache.DatabaseCache(url=url, table=table),
                     lambda: _server_table(url, table))

    return make


def seed(store: Store) -> list[CacheEntry]:
    """Memoized and hand-made entries with values of many types; returns them as stored."""
    cache = store.open()

    @cache.memoize(name="fib", annotation={"split": "train", "n": 1})
    def fib(n: int) -> int:
        return n if n < 2 else fib(n - 1) + fib(n - 2)

    fib(6)  # 7 entries: n = 0..6
    cache.set("classify", {"text": "win money now", "model": ("m", 2)}, output="spam")
    cache.annotate("classify", {"text": "win money now", "model": ("m", 2)}, expected="spam",
                   metadata={"annotation": {"split": "test", "reviewer": "ana"}})
    cache.set("classify", {"text": "hello", "model": ("m", 2)}, output="ham",
              metadata={"annotation": {"split": "test", "n": "1"}})
    cache.set("types", {"when": datetime.datetime(2024, 5, 1, 12, 30, tzinfo=datetime.timezone.utc)},
              output={"set": {1, 2}, "bytes": b"\x00\xff", "dec": decimal.Decimal("1.10"), (1, 2): [None, 2**80],
                      "s": frozenset({"a"}), "u": uuid.UUID(int=5), "line": "a\u2028b\nc"})
    entries = sorted(cache, key=lambda e: e.key)
    cache.close()
    assert len(entries) == 10
    return entries


def stored(store: Store) -> list[CacheEntry]:
    cache = store.open()
    try:
        return sorted(cache, key=lambda e: e.key)
    finally:
        cache.close()


def same_entries(a: list[CacheEntry], b: list[CacheEntry]) -> None:
    """Equal, key for key, and equal in their exact typed JSON form (1 vs 1.0 vs True, tuple vs list)."""
    assert [e.key for e in a] == [e.key for e in b]
    assert a == b
    assert [encode_json(e.to_dict()) for e in a] == [encode_json(e.to_dict()) for e in b]


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# ---- ls / show / stats ---------------------------------------------------------------------------

def test_ls_show_stats(kind: str, new_store: Callable[[str], Store]) -> None:
    store = new_store(kind)
    entries = seed(store)
    result = run("ls", *store.args)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["KEY", "FUNC", "INPUTS", "OUTPUT", "EXPECTED"]
    assert lines[-1].startswith("10 entries in ")
    assert sum(1 for line in lines if " fib " in line) == 7

    listed = json.loads(run("ls", *store.args, "--json").stdout)
    assert sorted(int(e["key"], 16) for e in listed) == [e.key for e in entries]
    assert {e["func"] for e in listed} == {"fib", "classify", "types"}
    assert "$tuple" in json.dumps(listed)  # values in the codec's tagged JSON

    limited = run("ls", *store.args, "--limit", "3")
    assert limited.stdout.splitlines()[-1].startswith("3 entries shown (--limit 3, in the store's order); ")
    assert len(limited.stdout.splitlines()) == 2 + 3 + 1
    assert "10 entries in " in run("ls", *store.args, "--limit", "10").stdout  # all of them: no "more"

    annotated = next(e for e in entries if e.annotated)
    key = f"{annotated.key:032x}"
    shown = run("show", *store.args, key[:8])
    assert shown.returncode == 0, shown.stderr
    assert f"key       {key}" in shown.stdout
    assert "expected  'spam'" in shown.stdout
    assert "'reviewer': 'ana'" in shown.stdout
    shown_json = json.loads(run("show", *store.args, key, "--json").stdout)
    assert shown_json == [{"key": key, **json.loads(encode_json(annotated.to_dict()))}]
    assert json.loads(run("show", *store.args, str(annotated.key), "--json").stdout) == shown_json  # decimal

    stats = json.loads(run("stats", *store.args, "--json").stdout)
    assert stats["entries"] == 10
    assert stats["annotated"] == 1
    assert stats["functions"] == {"classify": {"entries": 2, "annotated": 1}, "fib": {"entries": 7, "annotated": 0},
                                  "types": {"entries": 1, "annotated": 0}}
    assert stats["backend"] == {"disk": "DiskCache", "json": "JsonCache", "redis": "RedisCache"}.get(kind, "DatabaseCache")
    if kind in ("disk", "json", "sqlite"):
        assert stats["bytes"] > 0
    text = run("stats", *store.args).stdout
    assert "entries     10" in text
    assert "annotated   1" in text


def test_show_reports_missing_keys(new_store: Callable[[str], Store]) -> None:
    store = new_store("sqlite")
    seed(store)
    result = run("show", *store.args, "f" * 32)
    assert result.returncode == 1
    assert f"no entry with key {'f' * 32}" in result.stderr
    assert_bad_input(run("show", *store.args, "xyz!"), "not a key: 'xyz!'")


def test_filters(kind: str, new_store: Callable[[str], Store]) -> None:
    store = new_store(kind)
    seed(store)

    def funcs(*args: str) -> list[str]:
        result = run("ls", *store.args, "--json", *args)
        assert result.returncode == 0, result.stderr
        return sorted(e["func"] for e in json.loads(result.stdout))

    assert funcs("--func", "fib") == ["fib"] * 7
    assert funcs("--func", "fib", "--func", "types") == ["fib"] * 7 + ["types"]
    assert funcs("--annotated") == ["classify"]
    assert funcs("--annotation", "split=test") == ["classify", "classify"]
    assert funcs("--annotation", "split=test", "--annotated") == ["classify"]
    assert funcs("--annotation", "reviewer") == ["classify"]  # KEY alone: has the key
    assert funcs("--annotation", "n=1") == ["classify"] + ["fib"] * 7  # the int 1 and the str "1"
    assert funcs("--annotation", "split=nope") == []
    assert funcs("--func", "nope") == []
    assert_bad_input(run("ls", *store.args, "--annotation", "=x"), "--annotation takes KEY=VALUE")


# ---- rm / clear ----------------------------------------------------------------------------------

def test_rm_by_key_and_by_filter(kind: str, new_store: Callable[[str], Store]) -> None:
    store = new_store(kind)
    entries = seed(store)
    victim = next(e for e in entries if e.func == "types")
    result = run("rm", *store.args, f"{victim.key:032x}")
    assert result.returncode == 0, result.stderr
    assert f"removed {victim.key:032x}"[:20] in result.stdout
    assert "removed 1 entry from" in result.stdout
    assert [e.key for e in stored(store)] == [e.key for e in entries if e is not victim]

    again = run("rm", *store.args, f"{victim.key:032x}")
    assert again.returncode == 1
    assert "no entry with key" in again.stderr

    by_filter = run("rm", *store.args, "--annotation", "split=test")
    assert by_filter.returncode == 0, by_filter.stderr
    assert by_filter.stdout.count("removed ") == 3  # two lines and the total
    assert "removed 2 entries from" in by_filter.stdout
    assert {e.func for e in stored(store)} == {"fib"}

    assert_bad_input(run("rm", *store.args), "rm needs keys or a filter")
    assert len(stored(store)) == 7


def test_clear(kind: str, new_store: Callable[[str], Store]) -> None:
    store = new_store(kind)
    seed(store)
    refused = run("clear", *store.args)
    assert_bad_input(refused, "pass --yes")
    assert len(stored(store)) == 10  # nothing removed

    by_func = run("clear", *store.args, "--func", "fib")
    assert by_func.returncode == 0, by_func.stderr
    assert "removed 7 entries of fib" in by_func.stdout
    assert len(stored(store)) == 3

    annotated = run("clear", *store.args, "--annotated")
    assert "removed 1 entry of classify" in annotated.stdout
    assert len(stored(store)) == 2

    everything = run("clear", *store.args, "--yes")
    assert everything.returncode == 0, everything.stderr
    assert "removed 2 entries from" in everything.stdout
    assert stored(store) == []


# ---- export / import -----------------------------------------------------------------------------

ROUND_TRIPS = [("disk", "sqlite"), ("json", "disk"), ("sqlite", "json"), ("postgresql", "mysql"), ("mysql", "postgresql"),
               ("sqlite", "postgresql"), ("redis", "json"), ("disk", "redis")]


@pytest.mark.parametrize(("source_kind", "target_kind"), ROUND_TRIPS, ids=[f"{a}-to-{b}" for a, b in ROUND_TRIPS])
def test_export_then_import_gives_identical_entries(source_kind: str, target_kind: str, new_store: Callable[[str], Store],
                                                    tmp_path: Path) -> None:
    source, target = new_store(source_kind), new_store(target_kind)
    entries = seed(source)
    out = tmp_path / "export.jsonl"
    exported = run("export", *source.args, "-o", str(out))
    assert exported.returncode == 0, exported.stderr
    assert "exported 10 entries" in exported.stderr
    lines = out.read_text(encoding="utf-8").split("\n")
    assert lines[-1] == ""
    assert sorted(lines[:-1]) == sorted(encode_json(e.to_dict()) for e in entries)  # one entry per line

    imported = run("import", *target.args, str(out))
    assert imported.returncode == 0, imported.stderr
    assert "imported 10 entries" in imported.stderr
    same_entries(stored(target), entries)

    # and the target exports the same lines (to stdout this time)
    again = run("export", *target.args)
    assert sorted(again.stdout.split("\n")[:-1]) == sorted(lines[:-1])


def test_import_replaces_existing_entries_and_keeps_others(new_store: Callable[[str], Store], tmp_path: Path) -> None:
    source, target = new_store("sqlite"), new_store("disk")
    seed(source)
    cache = target.open()
    cache.set("fib", {"n": 3}, output=-1)  # will be replaced by the import
    cache.set("other", {"x": 1}, output=1)  # stays
    cache.close()
    out = tmp_path / "e.jsonl"
    run("export", *source.args, "-o", str(out))
    assert run("import", *target.args, str(out)).returncode == 0
    after = {(e.func, tuple(e.inputs.items())): e.output for e in stored(target)}
    assert len(after) == 11
    assert after[("fib", (("n", 3),))] == 2
    assert after[("other", (("x", 1),))] == 1


def test_annotated_export_is_an_evaluation_data_set(new_store: Callable[[str], Store]) -> None:
    store = new_store("json")
    seed(store)
    result = run("export", *store.args, "--annotation", "split=test")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(r["inputs"]["text"] for r in rows) == ["hello", "win money now"]
    assert [r.get("expected") for r in rows if r["inputs"]["text"] == "win money now"] == ["spam"]
    assert "exported 2 entries" in result.stderr


def test_classes_need_allow_and_an_incomplete_export_writes_nothing(new_store: Callable[[str], Store], tmp_path: Path) -> None:
    """KLStore objects (a dataclass, a pydantic model) in a store: a fresh process reads them only with
    --allow module:Class; without it, export refuses instead of leaving entries out."""
    store, target = new_store("disk"), new_store("sqlite")
    script = (f"import sys; sys.path.insert(0, {str(TESTS)!r})\n"
              "import oxicache\nfrom oxicache.klstore import CacheKLStore\nfrom kl_objects import Doc, Fact\n"
              f"c = oxicache.DiskCache({store.spec.split(':', 1)[1]!r}, eviction_policy='none')\n"
              "s = CacheKLStore(c, name='kb')\n"
              "s.store_many([Fact(1, 'one', frozenset({'t'})), Doc(id='d', title='T', sections=[('a', 1)])])\n"
              "c.set('plain', output=1, x=1)\nc.close()\n")
    subprocess.run([sys.executable, "-c", script], check=True, timeout=TIMEOUT)
    out = tmp_path / "kb.jsonl"
    out.write_text("previous contents\n")

    refused = run("export", *store.args, "-o", str(out))
    assert refused.returncode == 2
    assert "Traceback" not in refused.stderr
    assert "kl_objects:Fact" in refused.stderr
    assert "nothing was written" in refused.stderr
    assert out.read_text() == "previous contents\n"  # untouched
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".oxicache-export-")]  # no temp file left

    ls = run("ls", *store.args)
    assert ls.returncode == 0
    assert "1 entry in" in ls.stdout
    [summary] = ls.stderr.strip().splitlines()  # one line for every unreadable record (issue 16)
    assert "2 records could not be read" in summary and "--allow kl_objects:Fact" in summary

    allow = ["--allow", "kl_objects:Fact", "--allow", "kl_objects:Doc"]
    env = {"PYTHONPATH": str(TESTS)}
    assert run("export", *store.args, "-o", str(out), *allow, env=env).returncode == 0
    assert '"$dataclass":"kl_objects:Fact"' in out.read_text()
    bad = run("import", *target.args, str(out))
    assert_bad_input(bad, "line", "kl_objects:", "--allow module:Class")
    assert not target.exists()
    imported = run("import", *target.args, str(out), *allow, env=env)
    assert imported.returncode == 0, imported.stderr
    shown = run("ls", *target.args, *allow, env=env)
    assert "Fact(id=1, text='one'" in shown.stdout
    assert "Doc(id='d', title='T'" in shown.stdout
    assert_bad_input(run("ls", *target.args, "--allow", "no_such_module:X"), "--allow no_such_module:X")
    assert_bad_input(run("ls", *target.args, "--allow", "kl_objects"), "module:QualName")


# ---- verify --------------------------------------------------------------------------------------

def test_verify_sound_and_damaged(kind: str, new_store: Callable[[str], Store]) -> None:
    store = new_store(kind)
    entries = seed(store)
    sound = run("verify", *store.args)
    assert sound.returncode == 0, sound.stdout + sound.stderr
    assert "10 entries, no problems found" in sound.stdout

    victim = next(e for e in entries if e.func == "types")
    key = f"{victim.key:032x}"
    if kind == "json":
        path = Path(store.spec.split(":", 1)[1]) / f"{key}.json"
        path.write_text('{"not": "an entry"')
    elif kind == "disk":
        import diskcache

        dc = diskcache.Cache(store.spec.split(":", 1)[1])
        dc.set(victim.key.to_bytes(16, "big"), b"\xc1mgarbage", read=False)
        dc.close()
    elif kind == "sqlite":
        with sqlite3.connect(store.spec.split(":", 1)[1]) as conn:
            conn.execute("UPDATE oxicache_entries SET output = '{broken' WHERE key = ?", (key,))
        conn.close()
    elif kind == "redis":
        import redis

        client = redis.Redis.from_url(store.spec)
        client.set(f"{store.args[2]}:e:{key}", b"\xc1 not a record")
        client.close()
    else:
        import sqlalchemy

        from servers import make_engine

        engine = make_engine(store.args[0])
        with engine.begin() as conn:
            t = sqlalchemy.table(store.args[2], sqlalchemy.column("key"), sqlalchemy.column("func"))
            conn.execute(sqlalchemy.update(t).where(t.c.key == key).values(func="renamed"))  # quoted: key is reserved in MySQL
        engine.dispose()
    damaged = run("verify", *store.args)
    assert damaged.returncode == 1, damaged.stdout + damaged.stderr
    assert "Traceback" not in damaged.stderr
    problems = [line for line in damaged.stdout.splitlines() if line.startswith("problem: ")]
    assert problems
    assert any(key in p for p in problems), problems
    assert "1 problem" in damaged.stdout.splitlines()[-1] or "problems" in damaged.stdout.splitlines()[-1]


# ---- progress bar --------------------------------------------------------------------------------

def _run_with_tty_stderr(args: list[str], cwd: Path) -> tuple[int, str]:
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "oxicache", *args], stdout=subprocess.DEVNULL, stderr=slave, cwd=cwd)
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], TIMEOUT)
        if not ready:
            proc.kill()
            pytest.fail("the command produced no output for a long time")
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed its end
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(timeout=TIMEOUT), b"".join(chunks).decode()


def test_progress_bar_on_a_terminal_only(new_store: Callable[[str], Store], tmp_path: Path) -> None:
    store = new_store("sqlite")
    cache = store.open()
    for i in range(300):
        cache.set("f", {"i": i}, output=i)
    cache.close()
    code, err = _run_with_tty_stderr(["export", *store.args, "-o", str(tmp_path / "out.jsonl")], tmp_path)
    assert code == 0, err
    assert "\rexporting [" in err
    assert "300/300 100%" in err
    code, err = _run_with_tty_stderr(["import", "json:" + str(tmp_path / "copy"), str(tmp_path / "out.jsonl")], tmp_path)
    assert code == 0, err
    assert "\rimporting [" in err
    code, err = _run_with_tty_stderr(["verify", "json:" + str(tmp_path / "copy")], tmp_path)
    assert code == 0, err
    assert "\rverifying 300 entries" in err

    piped = run("export", *store.args, "-o", str(tmp_path / "again.jsonl"))
    assert piped.returncode == 0
    assert "\r" not in piped.stderr  # not a terminal: no control characters
    assert piped.stderr == f"exported 300 entries from {store.spec} to {tmp_path / 'again.jsonl'}\n"


# ---- bad input: one line on stderr, exit 2, nothing written --------------------------------------

@pytest.mark.parametrize("spec", ["cache.db", "foo:bar", "disk:", "memcached://localhost/0", "C:\\cache"])
def test_unparsable_store(spec: str, tmp_path: Path) -> None:
    result = run("ls", spec, cwd=tmp_path)
    assert_bad_input(result, "disk:PATH, json:PATH, sqlite:PATH, a database URL", "a Redis URL (redis://HOST:PORT/DB)")
    assert list(tmp_path.iterdir()) == []


def test_redis_store_errors(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert_bad_input(run("ls", f"redis://:pw{port}@127.0.0.1:{port}/0"), "cannot connect to redis://:***@127.0.0.1")
    assert f"pw{port}" not in run("ls", f"redis://:pw{port}@127.0.0.1:{port}/0").stderr
    assert_bad_input(run("ls", f"redis://127.0.0.1:{port}/0", "--table", "t"), "a Redis store takes --prefix")
    assert_bad_input(run("ls", f"disk:{tmp_path / 'd'}", "--prefix", "p"), "--prefix applies to Redis stores")


def test_reads_never_create_a_store(tmp_path: Path) -> None:
    for command in (["ls"], ["show"], ["stats"], ["rm", "--func", "f"], ["clear", "--yes"], ["export"], ["verify"]):
        for spec, needle in ((f"disk:{tmp_path / 'd'}", "no DiskCache at"), (f"json:{tmp_path / 'j'}", "no JsonCache folder"),
                             (f"sqlite:{tmp_path / 's.db'}", "no SQLite file"),
                             (f"sqlite:///{tmp_path / 's2.db'}", "no SQLite file")):
            assert_bad_input(run(command[0], spec, *command[1:]), needle)
    assert list(tmp_path.iterdir()) == []


def test_sqlite_file_without_the_table_or_not_sqlite(new_store: Callable[[str], Store], tmp_path: Path) -> None:
    store = new_store("sqlite")
    seed(store)
    assert_bad_input(run("ls", *store.args, "--table", "other"), "has no table 'other'")
    assert_bad_input(run("ls", *store.args, "--table", "bad name"), "plain SQL identifier")
    assert_bad_input(run("ls", "json:" + str(tmp_path), "--table", "t"), "--table applies to SQLite")
    text = tmp_path / "notes.txt"
    text.write_text("hello\n" * 100)
    assert_bad_input(run("ls", f"sqlite:{text}"), "not a readable SQLite database")
    assert text.read_text() == "hello\n" * 100


@pytest.mark.parametrize("url", ["postgresql://someone:secret@127.0.0.1:1/db", "mysql://someone:secret@127.0.0.1:1/db"])
def test_unreachable_server(url: str, tmp_path: Path) -> None:
    for args in (["ls", url], ["stats", url], ["import", url, str(tmp_path / "x.jsonl")]):
        if args[0] == "import":
            (tmp_path / "x.jsonl").write_text('{"func":"f","inputs":{}}\n')
        result = run(*args)
        assert_bad_input(result, "127.0.0.1:1")
        assert "secret" not in result.stderr  # the password is hidden


NOT_JSON_LINES = [
    ("garbage line", b'{"func":"f","inputs":{"x":1},"output":1}\n{"func":"f","inputs":{"x":2},"output":2}\nnot json\n', "line 3"),
    ("a JSON array", b'[{"func":"f","inputs":{}}]\n', "line 1 is not an entry: expected a JSON object, got list"),
    ("no func", b'{"inputs":{"x":1}}\n', 'needs "func"'),
    ("unknown field", b'{"func":"f","inputs":{},"outptu":1}\n', "unknown field(s) outptu"),
    ("inputs not an object", b'{"func":"f","inputs":[1]}\n', '"inputs" (an object)'),
    ("metadata not an object", b'{"func":"f","inputs":{},"metadata":3}\n', '"metadata" must be an object'),
    ("a bad tag", b'{"func":"f","inputs":{"x":{"$tuple":3}}}\n', "line 1"),
    ("not UTF-8", b'{"func":"f","inputs":{"x":"\xff"}}\n', "not UTF-8"),
    ("a whole JSON document", b'{\n  "func": "f",\n  "inputs": {}\n}\n', "line 1"),
]


@pytest.mark.parametrize(("content", "needle"), [(c, n) for _, c, n in NOT_JSON_LINES], ids=[i for i, _, _ in NOT_JSON_LINES])
def test_import_of_a_file_that_is_not_json_lines_writes_nothing(content: bytes, needle: str, new_store: Callable[[str], Store],
                                                                 tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(content)
    fresh = new_store("sqlite")
    assert_bad_input(run("import", *fresh.args, str(bad)), "bad.jsonl", needle)
    assert not fresh.exists()  # not even created

    existing = new_store("json")
    before = seed(existing)
    assert_bad_input(run("import", *existing.args, str(bad)), needle)
    same_entries(stored(existing), before)  # the valid lines before the bad one were not written either


def test_import_from_stdin_and_missing_file(new_store: Callable[[str], Store], tmp_path: Path) -> None:
    store = new_store("json")
    result = run("import", *store.args, "-", stdin='{"func":"f","inputs":{"x":1},"output":[1,2]}\n\n')
    assert result.returncode == 0, result.stderr
    assert [e.to_dict() for e in stored(store)] == [{"func": "f", "inputs": {"x": 1}, "output": [1, 2], "metadata": {}}]
    assert_bad_input(run("import", *store.args, str(tmp_path / "nope.jsonl")), "cannot read", "nope.jsonl")


def test_export_to_a_missing_folder(new_store: Callable[[str], Store], tmp_path: Path) -> None:
    store = new_store("json")
    seed(store)
    assert_bad_input(run("export", *store.args, "-o", str(tmp_path / "no" / "out.jsonl")), "no folder")


def test_bench_still_listed_and_help_names_every_command() -> None:
    result = run("--help")
    assert result.returncode == 0
    for name in ("bench", "ls", "show", "stats", "rm", "clear", "export", "import", "verify"):
        assert name in result.stdout


# ---- bench --chart -------------------------------------------------------------------------------

def test_bench_chart_without_matplotlib_names_the_install(tmp_path: Path) -> None:
    """matplotlib is optional: hidden here by a module that fails to import, as when it is not installed.
    The error comes before the benchmark runs."""
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "matplotlib.py").write_text("raise ModuleNotFoundError(\"No module named 'matplotlib'\", name='matplotlib')\n")
    result = run("bench", "--quick", "--chart", str(tmp_path / "chart.png"), env={"PYTHONPATH": str(shadow)})
    assert_bad_input(result, "pip install matplotlib", "oxicache[chart]")
    assert result.stdout == ""
    assert not (tmp_path / "chart.png").exists()


def test_chart_drawing_writes_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from oxicache.cli.bench import Result, _write_chart

    results = [Result("reference", "empty loop", median_ns=18.0),
               Result("hit f(1)", "lru_cache", median_ns=150.0),
               Result("hit f(1)", "InMemCache()", median_ns=240.0, ratio=1.6, ratio_to="lru_cache"),
               Result("hit f(1)", "DiskCache(tmp)", median_ns=70000.0, ratio=466.0, ratio_to="lru_cache"),
               Result("hit f(1)", "Broken()", error="TypeError"),
               Result("key hashing", "json+md5", unit="ns/key", median_ns=10000.0),
               Result("key hashing", "key_of", unit="ns/key", median_ns=600.0, ratio=16.7, ratio_to="json+md5")]
    path = tmp_path / "chart.png"
    _write_chart(results, {"oxicache": "0", "python": "3", "date": "today"}, str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 10_000


@pytest.mark.slow
def test_bench_chart_end_to_end(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    chart = tmp_path / "bench.png"
    result = run("bench", "--quick", "--repeats", "1", "--json", "--chart", str(chart))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["results"]
    assert chart.read_bytes()[:4] == b"\x89PNG"
    assert f"wrote the chart {chart}" in result.stderr


def test_import_refuses_a_func_too_long_for_a_sql_store_before_writing(new_store: Callable[[str], Store], tmp_path: Path) -> None:
    lines = tmp_path / "long.jsonl"
    lines.write_text(json.dumps({"func": "ok", "inputs": {}}) + "\n" + json.dumps({"func": "f" * 300, "inputs": {}}) + "\n")
    target = new_store("sqlite")
    assert_bad_input(run("import", *target.args, str(lines)), "entry 2", "longer than the 255 characters")
    assert not target.exists()
    folder = new_store("json")  # no such limit in a JSON folder
    assert run("import", *folder.args, str(lines)).returncode == 0
    assert sorted(len(e.func) for e in stored(folder)) == [2, 300]


# ---- issue 17: ls --limit streams; import validates first; long ints; export -o's file ------------

def test_ls_with_a_limit_reads_only_what_it_shows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """In-process, so the store's record decodes can be counted: a limit stops reading after one entry
    past it (to tell whether there are more), instead of reading and sorting the whole store."""
    from oxicache.backends.disk import DiskCache
    from oxicache.cli import main

    cache = DiskCache(str(tmp_path / "big"))
    for i in range(3000):
        cache.set("f", {"i": i}, output=i)
    cache.close()
    decodes = []
    real = DiskCache._decode
    monkeypatch.setattr(DiskCache, "_decode", lambda self, blob, key: decodes.append(key) or real(self, blob, key))

    assert main(["ls", f"disk:{tmp_path / 'big'}", "--limit", "5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 + 5 + 1 and "5 entries shown (--limit 5" in lines[-1]
    assert len(decodes) == 6
    decodes.clear()
    assert main(["ls", f"disk:{tmp_path / 'big'}", "--limit", "5", "--func", "g"]) == 0  # matches nothing
    assert capsys.readouterr().out.splitlines()[-1].startswith("0 entries in ")
    assert len(decodes) == 3000  # a filter that matches nothing reads on to the end, as it must
    decodes.clear()
    assert main(["ls", f"disk:{tmp_path / 'big'}", "--json", "--limit", "2"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 2 and len(decodes) == 3


def test_ls_limit_must_not_be_negative(new_store: Callable[[str], Store]) -> None:
    store = new_store("disk")
    seed(store)
    assert_bad_input(run("ls", *store.args, "--limit", "-1"), "--limit", "-1")
    zero = run("ls", *store.args, "--limit", "0")
    assert zero.returncode == 0 and zero.stdout.startswith("0 entries shown (--limit 0")


@pytest.mark.parametrize("target_kind", ["disk", "json"])
def test_import_with_a_bad_annotation_ttl_writes_nothing(target_kind: str, new_store: Callable[[str], Store],
                                                         tmp_path: Path) -> None:
    lines = tmp_path / "ttl.jsonl"
    lines.write_text(json.dumps({"func": "f", "inputs": {"x": 1}, "output": 1}) + "\n"
                     + json.dumps({"func": "f", "inputs": {"x": 2}, "output": 2,
                                   "metadata": {"annotation": {"ttl": "5 parsecs"}}}) + "\n")
    fresh = new_store(target_kind)
    assert_bad_input(run("import", *fresh.args, str(lines)), "entry 2", "ttl", "5 parsecs")
    assert not fresh.exists()
    existing = new_store(target_kind)
    before = seed(existing)
    assert_bad_input(run("import", *existing.args, str(lines)), "entry 2")
    same_entries(stored(existing), before)  # entry 1 was not written either


def test_ints_past_pythons_str_limit_are_listed_shown_exported(new_store: Callable[[str], Store], tmp_path: Path) -> None:
    """A DiskCache keeps ints of any length (binary records); Python refuses to turn one of more than
    4300 digits into text unless asked. The command prints them and verify agrees the store is sound."""
    store = new_store("disk")
    child = ("import sys, oxicache; c = oxicache.DiskCache(sys.argv[1]); "
             "c.set('f', {'x': 10**5000 + 7}, output=[-(10**6000), 1]); c.set('g', {'x': 1}, output=2); c.close()")
    big = "1" + "0" * 4999 + "7"  # the digits of 10**5000 + 7, written without str(int)
    subprocess.run([sys.executable, "-c", child, store.args[0][5:]], check=True, timeout=TIMEOUT)

    listed = run("ls", *store.args)
    assert listed.returncode == 0, listed.stderr
    assert "{'x': <int of 5,001 digits>}" in listed.stdout and "[<int of 6,001 digits>, 1]" in listed.stdout
    shown = run("show", *store.args, "--func", "f")
    assert shown.returncode == 0, shown.stderr
    assert big in shown.stdout.replace("\n", "").replace(" ", "")
    as_json = run("ls", *store.args, "--json", "--func", "f")
    assert as_json.returncode == 0, as_json.stderr
    assert big in as_json.stdout
    out = tmp_path / "big.jsonl"
    exported = run("export", *store.args, "-o", str(out))
    assert exported.returncode == 0, exported.stderr
    copy = new_store("disk")
    imported = run("import", *copy.args, str(out))
    assert imported.returncode == 0, imported.stderr
    assert run("verify", *store.args).returncode == 0
    assert run("verify", *copy.args).returncode == 0
    sys.set_int_max_str_digits(0)
    try:
        same_entries(stored(copy), stored(store))
    finally:
        sys.set_int_max_str_digits(4300)


def export_lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").rstrip("\n").split("\n"))  # not splitlines: U+2028 is in a value


def test_export_file_mode_follows_the_umask_or_the_file_it_replaces(new_store: Callable[[str], Store], tmp_path: Path) -> None:
    store = new_store("json")
    seed(store)
    umask = "import os, sys, runpy; os.umask(0o027); sys.argv[0] = 'oxicache'; runpy.run_module('oxicache', run_name='__main__')"
    new = tmp_path / "new.jsonl"
    result = subprocess.run([sys.executable, "-c", umask, "export", *store.args, "-o", str(new)],
                            capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr
    assert oct(new.stat().st_mode & 0o777) == oct(0o640)  # 0666 & ~027, as `>` gives
    old = tmp_path / "old.jsonl"
    old.write_text("")
    old.chmod(0o604)
    assert run("export", *store.args, "-o", str(old)).returncode == 0
    assert oct(old.stat().st_mode & 0o777) == oct(0o604) and export_lines(old) == 10


def test_export_to_a_symlink_writes_the_file_it_points_to(new_store: Callable[[str], Store], tmp_path: Path) -> None:
    store = new_store("json")
    seed(store)
    (tmp_path / "data").mkdir()
    target = tmp_path / "data" / "real.jsonl"
    target.write_text("old\n")
    link = tmp_path / "latest.jsonl"
    link.symlink_to(target)
    result = run("export", *store.args, "-o", str(link))
    assert result.returncode == 0, result.stderr
    assert link.is_symlink() and os.readlink(link) == str(target)  # the link is kept ...
    assert export_lines(target) == 10  # ... and the file it names was replaced
    dangling = tmp_path / "dangling.jsonl"
    dangling.symlink_to(tmp_path / "data" / "fresh.jsonl")
    assert run("export", *store.args, "-o", str(dangling)).returncode == 0
    assert export_lines(tmp_path / "data" / "fresh.jsonl") == 10
    to_folder = tmp_path / "folder-link"
    to_folder.symlink_to(tmp_path / "data")
    assert_bad_input(run("export", *store.args, "-o", str(to_folder)), "folder-link", "is a folder")


def test_tag_filter_lists_and_removes_tagged_entries(kind: str, new_store: Callable[[str], Store]) -> None:
    """--tag matches entries carrying any given tag (memoize(tags=...)); clear --tag removes them through
    cache.invalidate (the store's tag index where it has one) and leaves the rest."""
    store = new_store(kind)
    cache = store.open()

    @cache.memoize(name="report", tags=["reports", "daily"])
    def report(day: int) -> str:
        return f"report {day}"

    @cache.memoize(name="price", tags=lambda inputs: [f"sku:{inputs['sku']}"])
    def price(sku: str) -> int:
        return len(sku)

    @cache.memoize(name="plain")
    def plain(x: int) -> int:
        return x

    for day in range(3):
        report(day)
    price("a1"), price("b22"), plain(1)
    cache.close()

    listed = run("ls", *store.args, "--json", "--tag", "daily", "--tag", "sku:a1")
    assert listed.returncode == 0, listed.stderr
    assert sorted(e["func"] for e in json.loads(listed.stdout)) == ["price", "report", "report", "report"]
    assert_bad_input(run("ls", *store.args, "--tag", ""), "--tag takes a non-empty tag name")

    cleared = run("clear", *store.args, "--tag", "reports", "--tag", "sku:b22")
    assert cleared.returncode == 0, cleared.stderr
    assert "removed 4 entries from" in cleared.stdout
    assert sorted((e.func, tuple(e.inputs.values())) for e in stored(store)) == [("plain", (1,)), ("price", ("a1",))]
