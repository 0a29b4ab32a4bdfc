"""A small progress bar on stderr for the command's long operations (shown only on a terminal)."""

from __future__ import annotations

import sys
import threading
import time
from typing import Callable, TextIO, TypeVar

__all__ = ["Progress", "run_with_spinner"]

T = TypeVar("T")

_WIDTH = 30  # characters of the bar itself
_INTERVAL = 0.1  # seconds between redraws


class Progress:
    """``label [#######.......]  123/456  27%`` redrawn in place, at most every 0.1 s.

    Args:
        label: what is being done ("exporting").
        total: how many steps make 100%, or None when unknown (then only the count is shown).
        stream: where to draw (default ``sys.stderr``).
        enabled: draw at all; default: only when ``stream`` is a terminal, so pipes and files never
            receive control characters.
    """

    def __init__(self, label: str, total: int | None = None, *, stream: TextIO | None = None,
                 enabled: bool | None = None) -> None:
        self.label, self.total, self.done = label, total, 0
        self._stream = sys.stderr if stream is None else stream
        if enabled is None:
            isatty = getattr(self._stream, "isatty", None)
            enabled = bool(isatty and isatty())
        self.enabled = enabled
        self._drawn = 0.0
        self._width = 0

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self.enabled:
            now = time.monotonic()
            if now - self._drawn >= _INTERVAL:
                self._drawn = now
                self._draw()

    def _line(self) -> str:
        if not self.total:
            return f"{self.label}  {self.done:,}"
        frac = min(1.0, self.done / self.total)
        filled = int(frac * _WIDTH)
        bar = "#" * filled + "." * (_WIDTH - filled)
        return f"{self.label} [{bar}] {self.done:,}/{self.total:,} {frac:4.0%}"

    def _draw(self) -> None:
        line = self._line()
        pad = " " * max(0, self._width - len(line))
        self._width = len(line)
        self._stream.write(f"\r{line}{pad}")
        self._stream.flush()

    def close(self) -> None:
        """Draw the final state and end the line."""
        if self.enabled:
            self._draw()
            self._stream.write("\n")
            self._stream.flush()
            self.enabled = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_with_spinner(label: str, work: Callable[[], T], *, stream: TextIO | None = None) -> T:
    """``work()``, with ``label |  3.2 s`` spinning on a terminal while it runs (for one long call that
    cannot report its own progress). Exceptions from ``work`` propagate."""
    out = sys.stderr if stream is None else stream
    isatty = getattr(out, "isatty", None)
    if not (isatty and isatty()):
        return work()
    result: list[T] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            result.append(work())
        except BaseException as err:
            error.append(err)

    thread = threading.Thread(target=run, name="oxicache-cli-work", daemon=True)
    start = time.monotonic()
    thread.start()
    frames = "|/-\\"
    n = 0
    while thread.is_alive():
        out.write(f"\r{label} {frames[n % 4]} {time.monotonic() - start:5.1f} s")
        out.flush()
        n += 1
        thread.join(_INTERVAL)
    out.write(f"\r{label}   {time.monotonic() - start:5.1f} s\n")
    out.flush()
    if error:
        raise error[0]
    return result[0]
