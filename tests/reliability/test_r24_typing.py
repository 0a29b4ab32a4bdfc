"""Matrix row R24: the typing contract, under mypy --strict and pyright.

Drives the typing modules in tests/typing/ (each checker runs once over all of them):

- ``matrix_r24_pass.py``: sync, async, generator, async generator, method, staticmethod and
  decorator-with-arguments forms, plus ``cache_info``/``cache_clear``/``cache_key``/``cache_inputs``/
  ``cache_name``. No errors, and every ``reveal_type`` equals its comment: the memoized objects reveal
  the original parameters (names, kinds, defaults) and return type, i.e. the ParamSpec is preserved;
- ``matrix_r24_fail.py``: wrong argument types and counts, wrong result types, wrong helper calls; each
  line marked ``# E`` is flagged and nothing else is. Among them ``obj.method.cache_key(x)``: at run time a
  memoized method through an instance is a plain bound method, whose helpers are the function's own and
  take ``self`` first. The protocol used to type them as bound (so the checkers passed a call that raises
  TypeError); ``MemoizedMethod`` now types them as they are (regression: the run-time test below);
- ``matrix_r24_classmethod.py``: ``@classmethod`` over ``@cache.memoize``. pyright checks it cleanly
  (``Memoized.__get__`` binds a classmethod to the class; regression test for that fix). mypy does not:
  it binds neither ``self`` nor ``cls`` through a callable Protocol's ``__call__`` the way it does for a
  plain ``Callable`` (python/mypy#21599), and takes the first matching ``__get__`` overload whatever the
  self-type, so ``Shop.build(3)`` reports a missing argument (access through an instance works). That
  part is a strict xfail naming the defect.

tests/test_typing.py keeps its own mypy pass/fail modules (the earlier, narrower contract); this row adds
pyright and the forms the matrix lists. pyright comes from PyPI (``pyright[nodejs]``, which bundles
pyright's JavaScript and a Node.js binary, so it runs offline); without it the pyright tests skip.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent.parent / "typing"
FILES = ["matrix_r24_pass.py", "matrix_r24_fail.py", "matrix_r24_classmethod.py"]
EXPECTED = re.compile(r"# mypy: (.*) \| pyright: (.*)$")


def expected_reveals(name: str, checker: int) -> dict[int, str]:
    lines = (HERE / name).read_text().splitlines()
    return {n: m.group(checker) for n, line in enumerate(lines, 1) if (m := EXPECTED.search(line))}


def marked_errors(name: str) -> set[int]:
    lines = (HERE / name).read_text().splitlines()
    return {n for n, line in enumerate(lines, 1) if line.rstrip().endswith("# E")}


class Report:
    """Per file: the revealed types and the error lines (with messages) of one checker run."""

    def __init__(self) -> None:
        self.revealed: dict[str, dict[int, str]] = {f: {} for f in FILES}
        self.errors: dict[str, dict[int, list[str]]] = {f: {} for f in FILES}

    def error_lines(self, name: str) -> set[int]:
        return set(self.errors[name])


@pytest.fixture(scope="module")
def mypy_report() -> Report:
    pytest.importorskip("mypy")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--show-error-codes", *FILES],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=HERE,
    )
    assert "error: " in result.stdout or result.returncode == 0, result.stdout + result.stderr
    report = Report()
    for line in result.stdout.splitlines():
        if m := re.match(r"(\S+\.py):(\d+): note: Revealed type is \"(.*)\"$", line):
            report.revealed[m.group(1)][int(m.group(2))] = m.group(3)
        elif m := re.match(r"(\S+\.py):(\d+): error: (.*)$", line):
            report.errors[m.group(1)].setdefault(int(m.group(2)), []).append(m.group(3))
    return report


@pytest.fixture(scope="module")
def pyright_report() -> Report:
    pytest.importorskip("pyright", reason="pyright is not installed (pip install 'pyright[nodejs]')")
    result = subprocess.run(
        [sys.executable, "-m", "pyright", "--outputjson", "--pythonpath", sys.executable, *FILES],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=HERE,
        env={**os.environ, "PYRIGHT_PYTHON_IGNORE_WARNINGS": "1"},  # no "newer version?" query to PyPI
    )
    try:
        output: dict[str, Any] = json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"pyright did not run: {result.stdout[-2000:]}{result.stderr[-2000:]}")
    report = Report()
    for diag in output["generalDiagnostics"]:
        name, line = Path(diag["file"]).name, diag["range"]["start"]["line"] + 1
        if diag["severity"] == "information" and (m := re.match(r'Type of ".*" is "(.*)"$', diag["message"], re.S)):
            report.revealed[name][line] = m.group(1)
        elif diag["severity"] == "error":
            report.errors[name].setdefault(line, []).append(diag["message"])
    return report


@pytest.fixture(params=["mypy", "pyright"])
def checker(request: pytest.FixtureRequest) -> tuple[Report, int]:
    return request.getfixturevalue(f"{request.param}_report"), 1 if request.param == "mypy" else 2


def test_signatures_and_helpers_type_check(checker: tuple[Report, int]) -> None:
    report, column = checker
    assert report.errors["matrix_r24_pass.py"] == {}
    assert report.revealed["matrix_r24_pass.py"] == expected_reveals("matrix_r24_pass.py", column)


def test_wrong_calls_are_flagged(checker: tuple[Report, int]) -> None:
    report, _ = checker
    assert report.error_lines("matrix_r24_fail.py") == marked_errors("matrix_r24_fail.py")


def test_memoized_classmethod_pyright(pyright_report: Report) -> None:
    assert pyright_report.errors["matrix_r24_classmethod.py"] == {}
    assert pyright_report.revealed["matrix_r24_classmethod.py"] == expected_reveals("matrix_r24_classmethod.py", 2)


@pytest.mark.xfail(
    strict=True,
    reason="mypy binds no cls through a callable Protocol on class access (python/mypy#21599): "
    "Shop.build(3) on a memoized classmethod reports a missing argument",
)
def test_memoized_classmethod_mypy(mypy_report: Report) -> None:
    assert mypy_report.errors["matrix_r24_classmethod.py"] == {}
    assert mypy_report.revealed["matrix_r24_classmethod.py"] == expected_reveals("matrix_r24_classmethod.py", 1)


class Shop:
    """At module level: a store other processes read keys a class (a classmethod's ``cls``) only when its
    module can name it."""

    def __cache_key__(self) -> str:
        return "shop"


class Outlet(Shop):
    pass


@pytest.mark.parametrize("name", ["inmem", "json"])
def test_memoized_methods_run_as_typed(name: str) -> None:
    """What the method and classmethod typing promises holds at run time, on both engines: calls bind
    the instance or class (through the class, an instance and a subclass), and the ``cache_*`` helpers
    of a bound method take it first (``MemoizedMethod``), so ``obj.m.cache_key(x)`` is an error for the
    checkers because it is one at run time."""
    from backends import make

    cache = make(name)
    runs: list[tuple[str, int]] = []

    @cache.memoize(name=f"r24.price.{name}")
    def price(self: Shop, sku: str) -> float:
        return 1.0

    @cache.memoize(name=f"r24.build.{name}")
    def build(cls: type[Shop], n: int) -> str:
        runs.append((cls.__name__, n))
        return f"{cls.__name__}:{n}"

    Shop.price = price  # type: ignore[attr-defined]
    Shop.build = classmethod(build)  # type: ignore[attr-defined]

    assert [Shop.build(3), Shop().build(3), Outlet.build(3)] == ["Shop:3", "Shop:3", "Outlet:3"]
    assert runs == [("Shop", 3), ("Outlet", 3)]
    assert Shop.build.cache_key(Shop, 3) != Outlet.build.cache_key(Outlet, 3)
    shop = Shop()
    assert shop.price.cache_key(shop, "a") == Shop.price.cache_key(shop, "a")
    assert shop.price.cache_inputs(shop, "a")["sku"] == "a"
    with pytest.raises(TypeError, match="missing (a|1) required (positional )?argument"):  # the native or the function's own
        shop.price.cache_key("a")
