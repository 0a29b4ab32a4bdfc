"""What the ``oxicache`` command prints, run as a real subprocess (``python -m oxicache``) on real stores.

Stored strings (function names, inputs, outputs, metadata, type names) reach the terminal with every
control character escaped (C0, ESC, DEL, C1, bidi overrides), tables stay aligned, and ``--json`` / export
stay exact JSON. Database passwords never appear: not with "/", "@", ":" or percent-escapes in them, not
in URLs SQLAlchemy cannot parse, not in the driver's messages, and not after a successful connection.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any, Callable

import pytest

import oxicache
from servers import MYSQL_URL_ENV, PG_URL_ENV, require_server

TIMEOUT = 180  # generous: the machine is shared

# Characters a terminal acts on: none may reach stdout or stderr raw (a newline ends a line).
UNSAFE = {chr(c) for c in [*range(0x20), *range(0x7F, 0xA0), 0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F),
                           *range(0x2066, 0x206A)]} - {"\n"}

EVIL_FUNC = "fib\x1b[31m\r\x07\u202eevil\x9b"
SHOWN_FUNC = "fib\\x1b[31m\\r\\x07\\u202eevil\\x9b"  # as the command prints it
OTHER_FUNC = "plain\x1b]0;title\x07"


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "oxicache", *args], capture_output=True, timeout=TIMEOUT,
                            input=None if stdin is None else stdin.encode())
    # strict UTF-8: a lone surrogate or a stray byte is a failure too
    return subprocess.CompletedProcess(result.args, result.returncode, result.stdout.decode(), result.stderr.decode())


def assert_terminal_safe(result: subprocess.CompletedProcess[str]) -> None:
    for name, text in (("stdout", result.stdout), ("stderr", result.stderr)):
        raw = sorted({f"U+{ord(c):04X}" for c in text if c in UNSAFE})
        assert not raw, f"raw control characters {raw} on {name}: {text!r}"


def make_store(kind: str, tmp_path: Path) -> tuple[str, Callable[[], Any]]:
    """(STORE argument, function opening the same store in this process)."""
    path = tmp_path / kind
    if kind == "disk":
        return f"disk:{path}", lambda: oxicache.DiskCache(str(path))
    if kind == "json":
        return f"json:{path}", lambda: oxicache.JsonCache(str(path))
    return f"sqlite:{path}.db", lambda: oxicache.DatabaseCache("sqlite", f"{path}.db")


@pytest.fixture(params=["disk", "json", "sqlite"])
def evil_store(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Callable[[], Any]]:
    """A store whose function names, inputs, outputs and metadata hold terminal control characters."""
    spec, open_cache = make_store(str(request.param), tmp_path)
    cache = open_cache()
    cache.set(EVIL_FUNC, {"n": 1}, output=1)
    cache.set(EVIL_FUNC, {"n": 2, "text": "in\x1b[2Jput\u202e"}, output="out\x9b1;1H\x1b[0m",
              metadata={"annotation": {"note\x1b[5m": "meta\r\u2066data"}})
    cache.annotate(EVIL_FUNC, {"n": 1}, expected="exp\x1b[8m\x07")
    cache.set(OTHER_FUNC, {"x": "\x00\x85"}, output=b"\x1b")
    cache.set("plain", {"x": 1}, output=2)
    cache.close()
    return spec, open_cache


def test_stored_control_characters_are_escaped_in_every_command(evil_store: tuple[str, Callable[[], Any]],
                                                                 tmp_path: Path) -> None:
    spec, open_cache = evil_store
    outputs = {}
    for args in (["ls"], ["ls", "--annotated"], ["show"], ["stats"], ["verify"], ["export"],
                 ["export", "-o", str(tmp_path / "out.jsonl")], ["ls", "--json"], ["show", "--json"],
                 ["stats", "--json"], ["show", "--func", EVIL_FUNC], ["show", "0000000000000000"]):
        result = run(args[0], spec, *args[1:])
        assert result.returncode in (0, 1), result.stderr
        assert "Traceback" not in result.stderr
        assert_terminal_safe(result)
        outputs[" ".join(args[:2])] = result.stdout

    # the escaped name is shown, readable, where the raw one used to be
    assert SHOWN_FUNC in outputs["ls"]
    assert f"func      {SHOWN_FUNC}" in outputs["show"]
    assert "'exp\\x1b[8m\\x07'" in outputs["show"]
    assert SHOWN_FUNC in outputs["stats"]
    assert "no problems found" in outputs["verify"]

    # JSON stays exact: the same strings come back
    listed = json.loads(outputs["ls --json"])
    assert {e["func"] for e in listed} == {EVIL_FUNC, OTHER_FUNC, "plain"}
    assert any(e["inputs"].get("text") == "in\x1b[2Jput\u202e" for e in listed)
    assert any(e.get("output") == "out\x9b1;1H\x1b[0m" for e in listed)
    assert {e["func"] for e in json.loads(outputs["show --json"])} == {EVIL_FUNC, OTHER_FUNC, "plain"}
    assert set(json.loads(outputs["stats --json"])["functions"]) == {EVIL_FUNC, OTHER_FUNC, "plain"}

    # an export (to stdout or a file) imports back to the same entries, funcs and values exact
    exported = (tmp_path / "out.jsonl").read_text(encoding="utf-8")
    assert not {c for c in exported if c in UNSAFE}
    assert exported == outputs["export"]
    imported = run("import", f"json:{tmp_path / 'copy'}", str(tmp_path / "out.jsonl"))
    assert imported.returncode == 0, imported.stderr
    copy, source = oxicache.JsonCache(str(tmp_path / "copy")), open_cache()
    try:
        assert sorted(copy, key=lambda e: e.key) == sorted(source, key=lambda e: e.key)
    finally:
        copy.close()
        source.close()


def test_tables_stay_aligned_with_escaped_names(evil_store: tuple[str, Callable[[], Any]]) -> None:
    spec, _ = evil_store
    ls = run("ls", spec).stdout.splitlines()
    head = ls[0]
    inputs_at, output_at = head.index("INPUTS"), head.index("OUTPUT")
    rows = ls[2:-1]
    assert len(rows) == 4
    for row in rows:
        assert row[inputs_at] == "{", row  # every row's inputs start under INPUTS ...
        assert row[inputs_at - 2: inputs_at] == "  "
        assert row[output_at - 2: output_at] == "  " and row[output_at] != " ", row  # ... outputs under OUTPUT
    stats = run("stats", spec).stdout.splitlines()
    table = stats[stats.index(next(line for line in stats if line.startswith("FUNC"))):]
    entries_at = table[0].index("ENTRIES")
    assert [line[entries_at - 2: entries_at + 2] for line in table[2:]] == ["  2 ", "  1 ", "  1 "]  # by raw name


def test_rm_and_clear_print_escaped_names(evil_store: tuple[str, Callable[[], Any]]) -> None:
    spec, _ = evil_store
    removed = run("rm", spec, "--func", OTHER_FUNC)
    assert removed.returncode == 0, removed.stderr
    assert_terminal_safe(removed)
    assert "plain\\x1b]0;title\\x07" in removed.stdout
    cleared = run("clear", spec, "--func", EVIL_FUNC, "--annotated")
    assert cleared.returncode == 0, cleared.stderr
    assert_terminal_safe(cleared)
    assert f"removed 1 entry of {SHOWN_FUNC}" in cleared.stdout


def test_damage_warnings_escape_stored_type_names(tmp_path: Path) -> None:
    """A record naming a class the process does not allow: the warning quotes the stored name."""
    cache = oxicache.JsonCache(str(tmp_path / "j"))
    cache.set("f", {"x": 1}, output=1)
    cache.close()
    record = next((tmp_path / "j").glob("*.json"))
    data = json.loads(record.read_text())
    data["output"] = {"$dataclass": "evil\x1b[2J\u202e:Cls", "fields": {}}
    record.write_text(json.dumps(data))
    for args in (["ls"], ["verify"], ["export"]):
        result = run(args[0], f"json:{tmp_path / 'j'}")
        assert "Traceback" not in result.stderr
        assert_terminal_safe(result)
        assert "evil\\x1b[2J\\u202e" in result.stdout + result.stderr


# ---- passwords -----------------------------------------------------------------------------------

# Pieces of a password with "/", "@", ":" and a percent-escape: none may be printed, in any form.
PASSWORD = "Zq7/Kw9@Vx4:Jm2%41"
PIECES = ["Zq7", "Kw9", "Vx4", "Jm2", "%41", "Jm2A"]
UNREACHABLE = [
    f"postgresql://someone:{PASSWORD}@127.0.0.1:1/db",
    f"mysql://someone:{PASSWORD}@127.0.0.1:1/db",
    "postgresql+psycopg://someone:Zq7%2FKw9%40Vx4@127.0.0.1:1/db",  # percent-encoded, as SQLAlchemy wants
    "mariadb://someone:Zq7:Kw9/Vx4@127.0.0.1:1/db",
    "postgresql://someone:Zq7@Kw9@127.0.0.1:1/db",  # SQLAlchemy takes "Kw9@127.0.0.1" for the host
    "postgresql://someone:Zq7@Kw9:Vx4@127.0.0.1:1/db",  # ... and "Vx4@127.0.0.1:1" for the port
    "postgresql://someone:Zq7/Kw9@[::1/db",  # SQLAlchemy cannot parse it
    "postgresql://127.0.0.1:1/db?user=someone&password=Zq7Kw9",  # a password in the query
    "postgres//someone:Zq7/Kw9@127.0.0.1/db",  # not a URL at all (a missing ":")
    "redis://someone:Zq7@Kw9@127.0.0.1/0",  # a scheme the command does not take
]


@pytest.mark.parametrize("url", UNREACHABLE)
def test_passwords_never_printed(url: str, tmp_path: Path) -> None:
    lines = tmp_path / "x.jsonl"
    lines.write_text('{"func":"f","inputs":{}}\n')
    for args in (["ls", url], ["stats", url, "--json"], ["clear", url], ["rm", url, "--func", "f"],
                 ["export", url], ["verify", url], ["import", url, str(lines)], ["ls", url, "--table", "bad name"]):
        result = run(*args)
        printed = result.stdout + result.stderr
        assert result.returncode == 2, printed
        assert "Traceback" not in printed
        leaked = [p for p in PIECES if p in printed]
        assert not leaked, f"{leaked} printed by {args[0]}: {printed}"
        if "--table" not in args:  # every other message names the store
            assert "***" in printed, printed


@pytest.mark.parametrize("env", [PG_URL_ENV, MYSQL_URL_ENV])
def test_a_successful_run_on_a_server_masks_the_password(env: str) -> None:
    """The real servers (user oxicache, password oxicache): the URL as given, and with the password
    percent-encoded, which SQLAlchemy decodes; every line that names the store shows ***."""
    url = require_server(env)
    table = f"cli_{uuid.uuid4().hex[:12]}"
    import sqlalchemy

    from servers import make_engine

    assert ":oxicache@" in url
    encoded = url.replace(":oxicache@", ":oxi%63ache@")  # %63 is "c": the same password
    cache = oxicache.DatabaseCache(url=url, table=table)
    try:
        cache.set(EVIL_FUNC, {"n": 1}, output=1)
        cache.close()
        for given in (url, encoded):
            for args in (["ls"], ["stats"], ["stats", "--json"], ["verify"], ["export"], ["clear"], ["show", "f" * 32]):
                result = run(args[0], given, "--table", table, *args[1:])
                printed = result.stdout + result.stderr
                assert result.returncode in (0, 1, 2), printed
                assert "Traceback" not in printed
                assert_terminal_safe(result)
                assert ":oxicache@" not in printed
                assert "oxi%63ache" not in printed
                assert "oxicache:***@127.0.0.1" in printed, (args, printed)
            stats = json.loads(run("stats", given, "--table", table, "--json").stdout)
            assert stats["store"].startswith(given.split("://")[0] + "://oxicache:***@127.0.0.1")
            assert stats["functions"] == {EVIL_FUNC: {"entries": 1, "annotated": 0}}
    finally:
        engine = make_engine(url)
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text(f"DROP TABLE IF EXISTS {table}"))
        engine.dispose()
