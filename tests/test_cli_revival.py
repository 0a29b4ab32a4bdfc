"""The CLI on stores holding dataclass values (issue 16, item 1): ``ls``/``stats`` print one summary line for
all the records whose classes the CLI does not revive (with the ``--allow`` that reads them), not a warning
per record; ``--allow`` reads classes of importable modules and explains why a ``__main__`` class cannot be
imported. Stores are written by a separate process (a user's script), then read by ``python -m oxicache``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SHAPES = '''
import dataclasses

@dataclasses.dataclass
class Point:
    x: int
'''

SCRIPT = '''
import dataclasses, sys
import oxicache, shapes

@dataclasses.dataclass
class Local:
    y: int

kind, path = sys.argv[1], sys.argv[2]
cache = {{"disk": lambda: oxicache.DiskCache(path), "json": lambda: oxicache.JsonCache(path),
          "sqlite": lambda: oxicache.DatabaseCache("sqlite", path)}}[kind]()

@cache.memoize(name="points")
def points(n) -> shapes.Point:
    return shapes.Point(n)

@cache.memoize(name="locals")
def local(n) -> Local:
    return Local(n)

for n in range({n}):
    points(n)
local(0)
'''


def cli(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-m", "oxicache", *args], capture_output=True, text=True, timeout=180,
                          cwd=tmp, env=env)


@pytest.fixture(params=["disk", "json", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, str]:
    (tmp_path / "shapes.py").write_text(SHAPES)
    (tmp_path / "script.py").write_text(SCRIPT.format(n=4))
    path = tmp_path / ("store.db" if request.param == "sqlite" else "store")
    done = subprocess.run([sys.executable, "script.py", request.param, str(path)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    return tmp_path, f"{request.param}:{path}"


@pytest.mark.parametrize("command", ["ls", "stats"])
def test_unreadable_records_are_summarised_in_one_line(store: tuple[Path, str], command: str) -> None:
    tmp, spec = store
    result = cli(tmp, command, spec)
    assert result.returncode == 0, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert "5 records could not be read" in line
    assert "shapes:Point (4)" in line and "__main__:Local (1)" in line
    assert "--allow shapes:Point" in line and "a __main__ class cannot be imported by the CLI" in line
    assert "damaged" not in line


def test_allow_reads_a_class_of_an_importable_module(store: tuple[Path, str]) -> None:
    tmp, spec = store
    result = cli(tmp, "ls", spec, "--allow", "shapes:Point", "--func", "points")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("Point(x=") == 4
    [line] = result.stderr.strip().splitlines()  # only the __main__ record is left unread
    assert "1 record could not be read" in line and "__main__:Local (1)" in line


def test_allow_explains_main_classes(store: tuple[Path, str]) -> None:
    tmp, spec = store
    result = cli(tmp, "ls", spec, "--allow", "__main__:Local")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert "__main__" in line and "cannot be imported by the CLI" in line and "move Local into a module" in line


def test_export_of_one_function_is_not_blocked_by_records_of_others(store: tuple[Path, str]) -> None:
    """The __main__ class of `locals` cannot be read by the CLI; exporting `points` (with --allow) still works,
    and exporting everything, or `locals`, refuses and writes nothing."""
    tmp, spec = store
    out = tmp / "points.jsonl"
    result = cli(tmp, "export", spec, "--func", "points", "--allow", "shapes:Point", "-o", str(out))
    assert result.returncode == 0, result.stderr
    lines = out.read_text().splitlines()
    assert len(lines) == 4 and all('"$dataclass":"shapes:Point"' in line for line in lines)

    for args in ([], ["--func", "locals"]):
        refused = cli(tmp, "export", spec, *args, "--allow", "shapes:Point", "-o", str(tmp / "all.jsonl"))
        assert refused.returncode == 2 and "Traceback" not in refused.stderr
        [line] = refused.stderr.strip().splitlines()
        assert "(__main__:Local)" in line and "nothing was written" in line
        assert "a __main__ class cannot be imported by the CLI" in line
        assert not (tmp / "all.jsonl").exists()


def test_export_names_the_allow_it_needs(store: tuple[Path, str]) -> None:
    tmp, spec = store
    refused = cli(tmp, "export", spec, "--func", "points")
    assert refused.returncode == 2
    assert "(shapes:Point); nothing was written; read them with --allow shapes:Point" in refused.stderr
