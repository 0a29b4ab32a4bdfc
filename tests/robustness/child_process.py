"""Running a robustness child script with a hard bound (shared by the interrupt tests)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time


def run_child(script: str, args: list[str], timeout: float) -> tuple[int | None, str, str]:
    """Runs ``script`` with ``args``; returns (exit status or None when it overran, stdout, stderr). An
    overrunning child gets SIGUSR1 (its thread stacks go to stderr), then SIGKILL."""
    proc = subprocess.Popen([sys.executable, script, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
        return proc.returncode, out, err
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGUSR1)
        time.sleep(2)
        proc.kill()
        out, err = proc.communicate()
        return None, out, err
