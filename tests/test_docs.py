"""Every ```python block in the README and docs/ runs, and prints exactly what its `# -> ` comments say."""

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BLOCK = re.compile(r"```python\n(.*?)\s*```", re.S)
EXPECTED = re.compile(r"# -> (.*)$", re.M)

CASES = [
    pytest.param(code, id=f"{page.relative_to(ROOT)}#{n}")
    for page in PAGES
    for n, code in enumerate(BLOCK.findall(page.read_text()), 1)
]


@pytest.mark.parametrize("code", CASES)
def test_documented_example_prints_what_it_says(code, tmp_path):
    script = tmp_path / "example.py"
    script.write_text(textwrap.dedent(code))
    # The examples folder is importable, as it is to a reader running a page's example from the repository.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "examples"), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                            env=env)
    assert result.returncode == 0, result.stderr
    expected = [m.group(1).rstrip() for m in EXPECTED.finditer(code)]
    assert result.stdout.splitlines() == expected
