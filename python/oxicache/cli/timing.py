"""How ``oxicache bench`` times a loop: calibrated samples with the GC off, summarised by their median."""

from __future__ import annotations

import gc
from typing import Any, Callable, Sequence

__all__ = ["measure", "median"]


def median(xs: Sequence[float]) -> float:
    s = sorted(xs)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


def _timed(loop: Callable[[Any, int], int], arg: Any, n: int) -> int:
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        return loop(arg, n)
    finally:
        if enabled:
            gc.enable()


def measure(loop: Callable[[Any, int], int], arg: Any, *, units_per_n: int, repeats: int, target_ns: float) -> tuple[float, list[float], int]:
    """Warm up and calibrate ``n`` so that one sample (``loop(arg, n)``, which returns the nanoseconds it
    timed) takes about ``target_ns``, then take ``repeats`` samples; returns (median ns per unit, samples in
    ns per unit, units per sample)."""
    n = 1
    while True:  # the calibration runs double as the warm-up
        elapsed = _timed(loop, arg, n)
        if elapsed >= target_ns / 8 or n >= 1 << 30:
            break
        n *= 2
    n = max(1, int(n * target_ns / max(elapsed, 1)))
    _timed(loop, arg, max(1, n // 4))  # one more warm-up at the final size
    samples = [_timed(loop, arg, n) / (n * units_per_n) for _ in range(repeats)]
    return median(samples), samples, n * units_per_n
