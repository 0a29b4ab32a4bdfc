"""Static typing contract (R24): memoized functions keep their signatures for mypy --strict."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent / "typing"


def mypy(path: Path) -> list[str]:
    pytest.importorskip("mypy")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--show-error-codes", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    return result.stdout.splitlines()


def test_signatures_are_preserved():
    source = (HERE / "memoize_pass.py").read_text().splitlines()
    expected = {n: m.group(1) for n, line in enumerate(source, 1) if (m := re.search(r"# revealed: (.*)$", line))}
    lines = mypy(HERE / "memoize_pass.py")
    errors = [line for line in lines if ": error:" in line]
    assert errors == []
    revealed = {
        int(m.group(1)): m.group(2)
        for line in lines
        if (m := re.search(r":(\d+): note: Revealed type is \"(.*)\"$", line))
    }
    assert revealed == expected


def test_wrong_calls_are_flagged():
    source = (HERE / "memoize_fail.py").read_text().splitlines()
    marked = {n for n, line in enumerate(source, 1) if line.rstrip().endswith("# E")}
    flagged = {int(m.group(1)) for line in mypy(HERE / "memoize_fail.py") if (m := re.search(r":(\d+): error:", line))}
    assert flagged == marked


def test_the_package_itself_type_checks():
    """The library's own code passes mypy --strict (its annotations are what users' checkers read)."""
    package = Path(__file__).resolve().parent.parent / "python" / "oxicache"
    errors = [line for line in mypy(package) if ": error:" in line]
    assert errors == []
