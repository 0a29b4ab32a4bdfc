"""retrieve()'s type (issue 16, item 11): ``CacheEntry | EllipsisType`` (``...`` is the miss at run time,
as for get()), not ``Any``, so mypy and pyright make the caller rule out a miss before ``.output``."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from oxicache import CacheEntry, InMemCache

FILE = Path(__file__).parent / "typing" / "retrieve_types.py"


def marks() -> tuple[dict[int, str], set[int]]:
    lines = FILE.read_text().splitlines()
    revealed = {n: m.group(1) for n, line in enumerate(lines, 1) if (m := re.search(r"# revealed: (.*)$", line))}
    return revealed, {n for n, line in enumerate(lines, 1) if "# E:" in line}


def test_mypy_sees_entry_or_ellipsis_and_flags_an_unchecked_output() -> None:
    pytest.importorskip("mypy")
    out = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(FILE)],
                         capture_output=True, text=True, timeout=300).stdout.splitlines()
    revealed = {int(m.group(1)): m.group(2) for line in out if (m := re.search(r":(\d+): note: Revealed type is \"(.*)\"$", line))}
    errors = {int(m.group(1)) for line in out if (m := re.search(r":(\d+): error: .*\[union-attr\]", line))}
    expected_revealed, expected_errors = marks()
    assert revealed == expected_revealed
    assert errors == expected_errors, out


def test_pyright_agrees() -> None:
    pytest.importorskip("pyright", reason="pyright is not installed (pip install 'pyright[nodejs]')")
    done = subprocess.run([sys.executable, "-m", "pyright", "--outputjson", "--pythonpath", sys.executable, str(FILE)],
                          capture_output=True, text=True, timeout=300)
    report = json.loads(done.stdout)["generalDiagnostics"]
    errors = {d["range"]["start"]["line"] + 1 for d in report if d["severity"] == "error"}
    revealed = {d["range"]["start"]["line"] + 1: d["message"] for d in report if d["severity"] == "information"}
    expected_revealed, expected_errors = marks()
    assert errors == expected_errors, report
    for line, text in expected_revealed.items():
        short = text.replace("oxicache._core.", "").replace("types.", "")
        assert revealed[line].endswith(f'"{short}"'), (line, revealed[line])


def test_at_run_time_a_miss_is_ellipsis_and_a_hit_an_entry() -> None:
    cache = InMemCache()
    assert cache.retrieve("f", x=1) is ...
    cache.set("f", output=2, x=1)
    found = cache.retrieve("f", x=1)
    assert isinstance(found, CacheEntry) and found.output == 2
