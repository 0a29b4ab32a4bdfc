"""The hand-written stub matches the native module, and the command line answers."""

import json
import subprocess
import sys

import pytest


def test_core_stub_matches_the_binary():
    pytest.importorskip("mypy")
    result = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "oxicache._core"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_bench_command_runs_and_reports_every_backend():
    result = subprocess.run(
        [sys.executable, "-m", "oxicache", "bench", "--quick", "--json"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    text = json.dumps(report)
    for label in ("InMemCache", "NoCache", "lru_cache"):
        assert label in text
