"""pytest-benchmark setup for ``python -m pytest benches --benchmark-only``.

The normal test run never collects this directory (``testpaths = ["tests"]`` in pyproject.toml).

Defaults chosen here keep the whole run to about 15 s on the 2-core machine; any of them given on
the command line wins:

* ``--benchmark-min-time=0.0001``: a round lasts at least 100 µs, so the timer's own cost (~50 ns) is noise
  even for a 40 ns ``lru_cache`` hit;
* ``--benchmark-max-time=0.5``: about half a second of rounds per benchmark;
* ``--benchmark-min-rounds=5``;
* ``--benchmark-warmup=on`` with ``--benchmark-warmup-iterations=20000``: warm every benchmark;
* ``--benchmark-disable-gc``: like ``timeit`` and ``oxicache bench``, no collector pauses inside a round.

Benchmark results that are not times (the memory test's bytes per entry) go through the ``bench_summary``
fixture and are printed at the end of the run, besides ``benchmark.extra_info`` (``--benchmark-json``).
"""

from __future__ import annotations

from typing import Any

import pytest

_DEFAULTS: dict[str, tuple[str, Any]] = {
    # dest -> (command-line flag that overrides it, default used here)
    "benchmark_min_time": ("--benchmark-min-time", "0.0001"),
    "benchmark_max_time": ("--benchmark-max-time", "0.5"),
    "benchmark_min_rounds": ("--benchmark-min-rounds", 5),
    "benchmark_warmup": ("--benchmark-warmup", True),
    "benchmark_warmup_iterations": ("--benchmark-warmup-iterations", 20000),
    "benchmark_disable_gc": ("--benchmark-disable-gc", True),
}

# lines printed in the terminal summary: (section, text)
BENCH_SUMMARY: list[tuple[str, str]] = []


def _given(args: list[str], flag: str) -> bool:
    return any(a == flag or a.startswith(flag + "=") for a in args)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "memory: peak-RSS measurement in fresh subprocesses (not a timing benchmark)")
    if not hasattr(config.option, "benchmark_max_time"):  # pytest-benchmark not installed
        return
    args = [str(a) for a in config.invocation_params.args]
    for dest, (flag, value) in _DEFAULTS.items():
        if not _given(args, flag):
            setattr(config.option, dest, value)


@pytest.fixture(scope="session")
def bench_summary() -> list[tuple[str, str]]:
    """Append ``(section, text)`` to have a line printed in the terminal summary."""
    return BENCH_SUMMARY


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not BENCH_SUMMARY:
        return
    terminalreporter.section("oxicache benches: non-timing results")
    for section, text in BENCH_SUMMARY:
        terminalreporter.write_line(f"[{section}] {text}")
