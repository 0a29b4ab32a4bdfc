"""keys.key_of_many (many keys in one call, the GIL released for large digests) and `oxicache bench keys`."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from typing import Callable

import pytest

from oxicache import CacheEntry
from oxicache.keys import key_of, key_of_many

INPUTS = [{"x": i, "y": "abc"} for i in range(50)] + [
    {"messages": [{"role": "user", "content": "héllo 世界"}], "t": 0.5},
    {},
    {"b": b"\x00" * 10, "nested": {"k": (1, 2, frozenset({3}))}},
]


def test_equals_key_of_for_each_inputs_in_order() -> None:
    assert key_of_many("f", INPUTS) == [key_of("f", d) for d in INPUTS]
    assert key_of_many("f", INPUTS)[51] == CacheEntry(func="f", inputs={}).key


def test_takes_any_iterable_and_an_empty_one() -> None:
    assert key_of_many("g", (d for d in INPUTS)) == [key_of("g", d) for d in INPUTS]
    assert key_of_many("g", []) == []


def test_a_non_dict_item_is_named_by_its_index() -> None:
    with pytest.raises(TypeError, match=r"item 1 is list, not a dict of inputs"):
        key_of_many("f", [{"x": 1}, [("x", 1)]])


def test_a_non_iterable_is_a_type_error_naming_its_type() -> None:
    with pytest.raises(TypeError, match="iterable of inputs dicts, got int"):
        key_of_many("f", 5)  # type: ignore[arg-type]


def test_an_unkeyable_input_is_named_as_by_key_of() -> None:
    with pytest.raises(TypeError) as many:
        key_of_many("f", [{"x": 1}, {"fn": object()}])
    with pytest.raises(TypeError) as one:
        key_of("f", {"fn": object()})
    assert str(many.value) == str(one.value) and "'fn'" in str(many.value)


def test_an_exception_from_the_iterable_propagates() -> None:
    def items() -> object:
        yield {"x": 1}
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        key_of_many("f", items())  # type: ignore[arg-type]


def loop_iterations_during(work: Callable[[], object], interval: float) -> int:
    """How many times another thread's loop ran during ``work()``. The switch interval is set far above
    the work's time (wall time, on a loaded machine too), so the other thread only runs while ``work`` has
    released the GIL.

    The interval is set before the other thread starts waiting for the GIL: a thread already waiting
    keeps the interval it began its wait with, and would ask for the GIL after the old one (5 ms), in the
    middle of ``work`` (CI saw the other thread run 60 s, all the rest of the interval). So it starts,
    blocks on an event (giving the GIL back), and is woken just before ``work``: its wait for the GIL
    begins under the new interval."""
    counter = [0]
    stop = threading.Event()
    started = threading.Event()
    go = threading.Event()

    def count() -> None:
        started.set()
        go.wait()
        while not stop.is_set():
            counter[0] += 1

    old = sys.getswitchinterval()
    worker = threading.Thread(target=count)
    try:
        sys.setswitchinterval(interval)
        worker.start()
        started.wait()
        go.set()
        before = counter[0]
        work()
        return counter[0] - before
    finally:
        sys.setswitchinterval(old)
        stop.set()
        go.set()
        worker.join()


def test_large_encodings_are_digested_without_the_gil() -> None:
    """While the main thread digests a 256 MB argument, another thread runs Python code."""
    big = {"blob": b"\x01" * (256 << 20)}
    keys: list[int] = []
    # 0.5 s: once the digest is done, the main thread waits out the other's interval to get the GIL back
    during = loop_iterations_during(lambda: keys.append(key_of("f", big)), 0.5)
    assert keys == key_of_many("f", [big])
    assert during > 1000, f"the other thread ran {during} loop iterations during the digest"


def test_small_encodings_keep_the_gil() -> None:
    """The other side of the threshold: small keys are computed without giving the GIL away, so no other
    thread runs in between (releasing it for every small key would cost more than the digest)."""
    inputs = [{"x": i} for i in range(20000)]
    # 60 s: far above the call's wall time even on a loaded machine, so only a release lets it run
    assert loop_iterations_during(lambda: key_of_many("f", inputs), 60.0) == 0


def test_bench_keys_reports_every_workload_against_the_baseline() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "oxicache", "bench", "keys", "--quick", "--repeats", "1", "--json"],
        capture_output=True, text=True, timeout=300, check=True,
    ).stdout
    report = json.loads(out)
    workloads = set(report["payload_bytes"])
    assert any("small entry" in w for w in workloads) and any("LLM chat" in w for w in workloads)
    assert 5000 < next(v for w, v in report["payload_bytes"].items() if "LLM chat" in w) < 8000
    rows = {(r["workload"], r["impl"]): r for r in report["results"]}
    baseline = report["meta"]["baseline"]
    for workload in workloads:
        ours = rows[(workload, "oxicache keys.key_of")]
        base = rows[(workload, baseline)]
        assert ours["median_ns"] > 0 and base["ratio_to_baseline"] == 1.0
        assert ours["ratio_to_baseline"] == pytest.approx(base["median_ns"] / ours["median_ns"])
        assert ours["mb_per_second"] == pytest.approx(report["payload_bytes"][workload] * 1e3 / ours["median_ns"])


def test_bench_keys_table_and_a_chart_refused() -> None:
    table = subprocess.run(
        [sys.executable, "-m", "oxicache", "bench", "keys", "--quick", "--repeats", "1"],
        capture_output=True, text=True, timeout=300, check=True,
    ).stdout
    assert "bytes hashed per key" in table and "oxicache keys.key_of_many (per key)" in table
    refused = subprocess.run(
        [sys.executable, "-m", "oxicache", "bench", "keys", "--chart", "x.png"], capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == 2 and "--chart draws the calls table" in refused.stderr
