"""Packaging and the developer loop (issue 16, items 3 and 10): the metadata a wheel publishes, the
dependency groups the set-up installs, the release workflow's wheels, and the stamps that let
scripts/setup.sh and scripts/test.sh skip a build or a Rust test run when nothing changed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ImportError:  # Python 3.10
    from pip._vendor import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]


def test_the_license_is_declared_as_an_spdx_expression_and_shipped() -> None:
    assert PROJECT["license"] == "MIT" and PROJECT["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "WITHOUT WARRANTY OF ANY KIND" in text
    assert not any(c.startswith("License ::") for c in PROJECT["classifiers"])  # the expression replaces them


def test_classifiers_name_each_supported_python_typing_and_status() -> None:
    classifiers = set(PROJECT["classifiers"])
    assert {f"Programming Language :: Python :: 3.{minor}" for minor in range(10, 15)} <= classifiers
    assert "Typing :: Typed" in classifiers and any(c.startswith("Development Status ::") for c in classifiers)
    assert PROJECT["requires-python"] == ">=3.10"
    assert (ROOT / "python" / "oxicache" / "py.typed").exists()


def test_published_extras_are_backends_only_and_postgresql_leaves_the_driver_build_to_the_user() -> None:
    extras = PROJECT["optional-dependencies"]
    assert set(extras) == {"disk", "sqlite", "postgresql", "postgresql-binary", "mysql", "redis", "llm", "chart"}
    assert "psycopg>=3" in extras["postgresql"] and not any("binary" in r for r in extras["postgresql"])
    assert "psycopg[binary]>=3" in extras["postgresql-binary"] and "oxicache[postgresql]" in extras["postgresql-binary"]
    published = " ".join(r for reqs in extras.values() for r in reqs)
    for tool in ("pytest", "hypothesis", "mypy", "pyright", "cachetools", "pytest-benchmark"):
        assert tool not in published


def expand(group: str) -> list[str]:
    out: list[str] = []
    for item in PYPROJECT["dependency-groups"][group]:
        out += expand(item["include-group"]) if isinstance(item, dict) else [item]
    return out


def test_the_tools_group_holds_the_test_and_bench_tools_and_maturin() -> None:
    tools = expand("tools")
    for requirement in ("pytest>=8", "hypothesis>=6", "mypy", "pytest-benchmark>=4", "maturin>=1.9.4,<2"):
        assert requirement in tools


def setup_reader() -> str:
    """The inline fallback of scripts/setup.sh that lists the group for a pip without --group."""
    script = (ROOT / "scripts" / "setup.sh").read_text()
    return re.search(r"<<'EOF' > \S+\n(.*?)\nEOF\n", script, re.S).group(1)


def test_setup_s_fallback_for_an_old_pip_installs_the_same_group() -> None:
    listed = subprocess.run([sys.executable, "-c", setup_reader()], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout.splitlines()
    assert listed == expand("tools")


def test_the_release_workflow_builds_python_3_14_and_musllinux_wheels() -> None:
    workflow = (ROOT / ".github" / "workflows" / "ci.yml").read_text()
    assert re.search(r"python-version: \|\n(\s+3\.1\d\n)*\s+3\.14\n", workflow)
    assert workflow.count("manylinux: musllinux_1_2") == 2
    assert "wheels-ubuntu-latest-x86_64-musllinux" in workflow  # and it is smoke-tested (on Alpine)


STAMPS = """
set -euo pipefail
. "{root}/scripts/stamps.sh"
cd "$1"
a=$(fingerprint src); unchanged stamp "$a" && echo first-unchanged || echo first-changed
echo "$a" > stamp
unchanged stamp "$(fingerprint src)" && echo same || echo differs
echo edit >> src/lib.rs
unchanged stamp "$(fingerprint src)" && echo same-after-edit || echo differs-after-edit
echo "$(fingerprint src)" > stamp
OXICACHE_REBUILD=1 unchanged stamp "$(fingerprint src)" && echo rebuild-ignored || echo rebuild-forced
"""


def test_stamps_skip_only_when_no_input_changed(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "lib.rs").write_text("fn main() {}\n")
    out = subprocess.run(["bash", "-c", STAMPS.format(root=ROOT), "stamps", str(tmp_path)], capture_output=True,
                         text=True, check=True, env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}).stdout
    assert out.split() == ["first-changed", "same", "differs-after-edit", "rebuild-forced"]


@pytest.mark.parametrize("script", ["setup.sh", "test.sh"])
def test_the_scripts_use_the_stamps_and_silence_maturin_s_marker_lines(script: str) -> None:
    text = (ROOT / "scripts" / script).read_text()
    assert ". scripts/stamps.sh" in text and "unchanged .venv/.oxicache-" in text
    if script == "setup.sh":
        assert "grep -v '^Ignoring .*: markers '" in text


def test_ci_smoke_tests_the_wheel_on_every_interpreter_found() -> None:
    assert "OXICACHE_WHEEL_PYTHONS=all bash scripts/wheel-test.sh" in (ROOT / ".ci" / "run").read_text()
    script = (ROOT / "scripts" / "wheel-test.sh").read_text()
    finder = re.search(r"^found_pythons\(\) \{.*?^\}$", script, re.S | re.M).group(0)
    out = subprocess.run(["bash", "-c", f"{finder}\nfound_pythons"], capture_output=True, text=True, check=True).stdout
    versions = [subprocess.run([py, "-c", "import sys; print(sys.version_info[1])"], capture_output=True, text=True,
                               check=True).stdout.strip() for py in out.split()]
    assert len(versions) == len(set(versions)) >= 1  # one interpreter per minor version
    assert all(10 <= int(v) <= 14 for v in versions)
