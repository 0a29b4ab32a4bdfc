"""``oxicache bench keys``: key-hashing throughput, oxicache's native key against the pipelines people
build by hand, in one run, on three entries: a small call, an LLM chat request (6 messages, ~6 KB) and
a 1 MB numpy array (when numpy is installed).

The peers (each when installed): ``json.dumps(sort_keys=True)`` + md5 (the stdlib recipe),
``orjson.dumps(OPT_SORT_KEYS)`` + xxh3_128 (the fastest non-canonical pipeline) and ``pickle`` + blake3.
None of them is canonical the way oxicache's bytes are (docs/key-scheme.md): json and orjson turn
tuples into lists and dict keys into strings, pickle depends on insertion order, xxh3 is not a
cryptographic digest. So they bound the speed a key can have, not the quality.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import pickle
import platform
import sys
from dataclasses import dataclass, field
from time import perf_counter_ns
from typing import Any, Callable

from oxicache.cli.timing import measure

__all__ = ["run_keys_bench"]

BASELINE = "orjson + xxh3_128"
FALLBACK_BASELINE = "json + md5 (stdlib)"


@dataclass
class Workload:
    name: str
    func: str
    inputs: dict[str, Any]
    batch: int  # entries per key_of_many call

    def payload(self) -> int:
        """Bytes hashed per key: the length of oxicache's canonical bytes of (func, inputs)."""
        from oxicache.keys import canonical_bytes

        return len(canonical_bytes((self.func, self.inputs)))


@dataclass
class Row:
    workload: str
    impl: str
    median_ns: float | None = None
    samples_ns: list[float] = field(default_factory=list)
    ratio: float | None = None  # baseline time / this row's time: above 1 is faster than the baseline
    note: str | None = None


def _chat_messages() -> list[dict[str, str]]:
    """Six chat messages, ~6 KB, with the non-ASCII text real conversations carry."""
    text = ("Summarise the quarterly report: revenue grew 12% (€4.2M), churn fell — see §3. "
            "要点：成本下降，用户增长。Prüfen Sie die Zahlen. ") * 6
    roles = ["system", "user", "assistant", "user", "assistant", "user"]
    return [{"role": role, "content": f"{i}: {text}"} for i, role in enumerate(roles)]


def workloads() -> list[Workload]:
    loads = [
        Workload("small entry f(x=1, y='abc')", "f", {"x": 1, "y": "abc"}, batch=1000),
        Workload(
            "LLM chat entry (6 messages)",
            "oxicache.llm.chat",
            {"model": "gpt-4o-mini", "messages": _chat_messages(), "temperature": 0.2, "max_tokens": 512},
            batch=100,
        ),
    ]
    try:
        import numpy
    except ImportError:
        return loads
    array = numpy.arange(1 << 17, dtype=numpy.float64)  # 1 MiB
    loads.append(Workload("1 MB numpy array", "embed", {"a": array}, batch=8))
    return loads


def _optional(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


# Each implementation is a loop (workload, n) -> nanoseconds for n keys, written out in full so that no
# row pays a call layer the others do not.

def _loop_key_of(w: Workload, n: int) -> int:
    from oxicache.keys import key_of

    func, inputs = w.func, w.inputs
    rng = range(n)
    t0 = perf_counter_ns()
    for _ in rng:
        key_of(func, inputs)
    return perf_counter_ns() - t0


def _loop_key_of_many(w: Workload, n: int) -> int:
    from oxicache.keys import key_of_many

    func, batch = w.func, [w.inputs] * w.batch
    rng = range(n)
    t0 = perf_counter_ns()
    for _ in rng:
        key_of_many(func, batch)
    return perf_counter_ns() - t0


def _json_default(obj: Any) -> Any:
    return obj.tolist()  # what a json recipe has to do with an array


def _loop_json_md5(w: Workload, n: int) -> int:
    pair, dumps, md5 = (w.func, w.inputs), json.dumps, hashlib.md5
    rng = range(n)
    t0 = perf_counter_ns()
    for _ in rng:
        int(md5(dumps(pair, sort_keys=True, default=_json_default).encode()).hexdigest(), 16)
    return perf_counter_ns() - t0


def _orjson_xxh3() -> Callable[[Workload, int], int] | None:
    orjson, xxhash = _optional("orjson"), _optional("xxhash")
    if orjson is None or xxhash is None:
        return None
    option = orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY

    def loop(w: Workload, n: int) -> int:
        pair, dumps, digest = (w.func, w.inputs), orjson.dumps, xxhash.xxh3_128_intdigest
        rng = range(n)
        t0 = perf_counter_ns()
        for _ in rng:
            digest(dumps(pair, option=option))
        return perf_counter_ns() - t0

    return loop


def _pickle_blake3() -> Callable[[Workload, int], int] | None:
    blake3 = _optional("blake3")
    if blake3 is None:
        return None

    def loop(w: Workload, n: int) -> int:
        pair, dumps, hasher, from_bytes = (w.func, w.inputs), pickle.dumps, blake3.blake3, int.from_bytes
        rng = range(n)
        t0 = perf_counter_ns()
        for _ in rng:
            from_bytes(hasher(dumps(pair, protocol=5)).digest(16), "big")
        return perf_counter_ns() - t0

    return loop


def implementations() -> list[tuple[str, Callable[[Workload, int], int] | None, str]]:
    """(label, loop or None when not installed, the package to install)."""
    return [
        ("oxicache keys.key_of", _loop_key_of, ""),
        ("oxicache keys.key_of_many (per key)", _loop_key_of_many, ""),
        (BASELINE, _orjson_xxh3(), "orjson xxhash"),
        (FALLBACK_BASELINE, _loop_json_md5, ""),
        ("pickle + blake3", _pickle_blake3(), "blake3"),
    ]


def run_keys_bench(repeats: int, target_ns: float, progress: Callable[[str], None]) -> tuple[list[Row], dict[str, int]]:
    rows: list[Row] = []
    payloads: dict[str, int] = {}
    impls = implementations()
    baseline = BASELINE if impls[2][1] is not None else FALLBACK_BASELINE
    for w in workloads():
        payloads[w.name] = w.payload()
        for label, loop, package in impls:
            row = Row(w.name, label)
            rows.append(row)
            if loop is None:
                row.note = f"not installed (pip install {package})"
                continue
            progress(f"{w.name}: {label}")
            per = w.batch if "key_of_many" in label else 1
            try:
                row.median_ns, row.samples_ns, _ = measure(loop, w, units_per_n=per, repeats=repeats, target_ns=target_ns)
            except Exception as exc:  # a peer that cannot hash this entry is reported, not fatal
                row.note = f"{type(exc).__name__}: {exc}"
        base = next((r for r in rows if r.workload == w.name and r.impl == baseline), None)
        for r in rows:
            if r.workload == w.name and r.median_ns and base is not None and base.median_ns:
                r.ratio = base.median_ns / r.median_ns
    return rows, payloads


def _render(rows: list[Row], payloads: dict[str, int], baseline: str) -> str:
    width = max(len(r.impl) for r in rows) + 2
    out: list[str] = []
    for name, size in payloads.items():
        out.append(f"{name}: {size:,} bytes hashed per key")
        out.append(f"  {'':<{width}}{'ns/key':>12}{'keys/s':>13}{'MB/s':>9}{'x ' + baseline:>24}")
        for r in rows:
            if r.workload != name:
                continue
            if r.median_ns is None:
                out.append(f"  {r.impl:<{width}}{'-':>12}  {r.note or ''}")
                continue
            per_s = 1e9 / r.median_ns
            ratio = "" if r.ratio is None else f"{r.ratio:.2f}x"
            out.append(f"  {r.impl:<{width}}{r.median_ns:>12,.0f}{per_s:>13,.0f}{per_s * size / 1e6:>9,.0f}{ratio:>24}")
        out.append("")
    out.append(f"Medians of timed loops in this one run; 'x {baseline}' above 1 is faster than that baseline.")
    out.append("MB/s counts oxicache's canonical bytes for every row, so rows compare work done, not output size.")
    return "\n".join(out)


def cmd_bench_keys(args: argparse.Namespace) -> int:
    repeats = args.repeats or (3 if args.quick else 7)
    target_ns = (0.02 if args.quick else 0.1) * 1e9
    show = (lambda msg: print(f"  … {msg}", file=sys.stderr, flush=True)) if args.verbose else (lambda msg: None)
    rows, payloads = run_keys_bench(repeats, target_ns, show)
    baseline = BASELINE if any(r.impl == BASELINE and r.median_ns for r in rows) else FALLBACK_BASELINE
    if args.json:
        meta = {"python": platform.python_version(), "platform": platform.platform(), "repeats": repeats, "baseline": baseline}
        print(json.dumps({"meta": meta, "payload_bytes": payloads, "results": [
            {"workload": r.workload, "impl": r.impl, "median_ns": r.median_ns,
             "keys_per_second": (1e9 / r.median_ns) if r.median_ns else None,
             "mb_per_second": (payloads[r.workload] * 1e3 / r.median_ns) if r.median_ns else None,
             "ratio_to_baseline": r.ratio, "samples_ns": r.samples_ns, "note": r.note}
            for r in rows
        ]}, indent=2))
    else:
        print(_render(rows, payloads, baseline))
    return 0
