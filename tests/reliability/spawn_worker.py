"""A long-lived "spawn" subprocess that runs module-level functions on request (R4, R23).

Starting a spawn process costs an interpreter start plus imports (a second or more on a loaded 2-core
machine), so the cross-process rows start their workers once per module and send them one job per
parametrised backend. The worker is a fresh interpreter: it shares no memory, no open handles and no
cache objects with the test process; every job reopens the stores it uses.

A job is ``(function, args)``; the function must be importable by reference (a module-level function of
a test module: the child gets the parent's ``sys.path``). The reply is its return value, or the exception
it raised, re-raised in the parent.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import traceback
from typing import Any, Callable


def _serve(conn: Any) -> None:
    while True:
        job = conn.recv()
        if job is None:
            return
        func, args = job
        try:
            conn.send((True, func(*args)))
        except BaseException as err:  # reported to the parent, which fails the test
            conn.send((False, f"{type(err).__name__}: {err}\n{traceback.format_exc()}"))


class SpawnWorker:
    """One spawn subprocess serving jobs; ``call`` runs a job (``timeout`` catches a hang)."""

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(child,), daemon=True)
        self.process.start()
        child.close()

    def submit(self, func: Callable[..., Any], *args: Any) -> None:
        self._conn.send((func, args))

    def result(self, timeout: float = 60) -> Any:
        if not self._conn.poll(timeout):
            self.kill()
            msg = f"spawn worker {self.process.pid} did not answer within {timeout}s (killed)"
            raise AssertionError(msg)
        ok, value = self._conn.recv()
        if not ok:
            msg = f"job failed in spawn worker {self.process.pid}: {value}"
            raise AssertionError(msg)
        return value

    def call(self, func: Callable[..., Any], *args: Any, timeout: float = 60) -> Any:
        self.submit(func, *args)
        return self.result(timeout)

    def kill(self) -> None:
        if self.process.is_alive() and self.process.pid is not None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.join(10)

    def close(self) -> None:
        try:
            if self.process.is_alive():
                self._conn.send(None)
                self.process.join(10)
        except OSError:
            pass
        self.kill()
        self._conn.close()
