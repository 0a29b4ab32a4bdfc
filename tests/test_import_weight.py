"""``import oxicache`` stays light: the persistence and serialization stacks load only when a backend
that needs them is used, never at import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HEAVY = ("diskcache", "sqlalchemy", "msgpack")

PROBE = f"""
import json, sys
import oxicache
heavy = {HEAVY!r}
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in heavy)))
"""


def test_import_oxicache_does_not_import_heavy_dependencies() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        check=True, capture_output=True, text=True, timeout=120,
        cwd=Path(__file__).resolve().parent,
    )
    loaded = json.loads(out.stdout)
    assert loaded == [], f"import oxicache pulled in {loaded}"
