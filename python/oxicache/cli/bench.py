"""``oxicache bench``: times the memoized-call hot path of every backend against ``functools.lru_cache``
measured in the same process and the same run, plus key-hashing throughput against the stdlib ``json`` +
``md5`` recipe. Every number is the median of several repeats taken after a warm-up; the loops that call
the oxicache wrappers and the ``lru_cache`` wrappers are the same functions, so the loop overhead (included
in every number) is the same on both sides of a ratio.

``bench --chart out.png`` also draws the table as a bar chart (needs matplotlib: ``pip install
'oxicache[chart]'``).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import functools
import hashlib
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter_ns
from typing import Any, Callable

from oxicache.cli.bench_keys import cmd_bench_keys
from oxicache.cli.stores import CliError
from oxicache.cli.width import ljust, width
from oxicache.cli.timing import measure

__all__ = ["add_bench"]


# --------------------------------------------------------------------------------------------------
# bench: what is measured
# --------------------------------------------------------------------------------------------------

def _backends() -> list[tuple[str, Callable[[Path], Any]]]:
    """(label, factory) for every backend to measure. A factory gets a fresh empty directory it may use
    (persistent backends) and returns an empty cache. A new backend is one more line here."""
    import oxicache
    from oxicache import InMemCache, NoCache

    def diskcache_memoize(tmp: Path) -> Any:
        """diskcache's own Cache.memoize, the peer of DiskCache (same folder layout, pickle values)."""
        import diskcache  # type: ignore[import-untyped]

        cache = diskcache.Cache(str(tmp))

        class Peer:
            def memoize(self, fn: Callable[..., Any]) -> Any:
                return cache.memoize()(fn)

        return Peer()

    return [
        ("InMemCache()", lambda tmp: InMemCache()),
        ("NoCache()", lambda tmp: NoCache()),
        ("DiskCache(tmp)", lambda tmp: oxicache.DiskCache(tmp)),
        ("diskcache.Cache(tmp).memoize (peer)", diskcache_memoize),
        ("JsonCache(tmp)", lambda tmp: oxicache.JsonCache(tmp)),
        ('DatabaseCache("sqlite", tmp/cache.db)', lambda tmp: oxicache.DatabaseCache("sqlite", str(tmp / "cache.db"))),
    ]


def _f(x: int) -> int:
    return x * 2


def _g(a: int, b: Any, scale: float = 1.0) -> float:
    return a * scale


DICT_ARG = {"k": 1, "tags": ["a", "b"]}
MISS_BATCH = 1000  # a miss sample feeds this many new ints to a freshly created, empty cache
LRU = "lru_cache"
JSON_MD5 = "json.dumps + md5 (stdlib)"
NOTE = (
    "Medians of {repeats} repeats after a warm-up, timed with time.perf_counter_ns loops (GC off during each "
    "loop) on a shared machine: expect run-to-run noise of 10-20%. Ratios are against functools.lru_cache "
    "(and json+md5 for keys) measured in this same run; the plain for-loop overhead is included on both sides."
)


# The timed loops. One function per call shape, used for every implementation alike, so that oxicache
# and lru_cache pay exactly the same loop and call overhead.

def _loop_empty(fn: Any, n: int) -> int:
    rng = range(n)
    t0 = perf_counter_ns()
    for _ in rng:
        pass
    return perf_counter_ns() - t0


def _loop_f1(fn: Callable[[int], Any], n: int) -> int:
    rng = range(n)
    t0 = perf_counter_ns()
    for _ in rng:
        fn(1)
    return perf_counter_ns() - t0


def _loop_g_dict(fn: Callable[..., Any], n: int) -> int:
    rng = range(n)
    d = DICT_ARG
    t0 = perf_counter_ns()
    for _ in rng:
        fn(1, d, scale=2.0)
    return perf_counter_ns() - t0


def _loop_g_str(fn: Callable[..., Any], n: int) -> int:
    rng = range(n)
    t0 = perf_counter_ns()
    for _ in rng:
        fn(1, "abc", scale=2.0)
    return perf_counter_ns() - t0


def _loop_key_oxicache(fn: Any, n: int) -> int:
    from oxicache import CacheEntry

    from_args = CacheEntry.from_args
    rng = range(n)
    t0 = perf_counter_ns()
    for _ in rng:
        from_args(func="f", x=1, y="abc").key
    return perf_counter_ns() - t0


def _loop_key_of(fn: Any, n: int) -> int:
    from oxicache.keys import key_of

    inputs = {"x": 1, "y": "abc"}
    rng = range(n)
    t0 = perf_counter_ns()
    for _ in rng:
        key_of("f", inputs)
    return perf_counter_ns() - t0


def _loop_key_json_md5(fn: Any, n: int) -> int:
    dumps, md5 = json.dumps, hashlib.md5
    rng = range(n)
    t0 = perf_counter_ns()
    for _ in rng:
        int(md5(dumps({"func": "f", "inputs": {"x": 1, "y": "abc"}}, sort_keys=True).encode()).hexdigest(), 16)
    return perf_counter_ns() - t0


class _Miss:
    """A miss sample: ``caches`` fresh empty memoized functions, each fed MISS_BATCH ints never seen
    before; only the calls are timed (creating the caches is not)."""

    next_int = 10**6  # above the small-int cache, so every argument is a new int object

    @classmethod
    def loop(cls, make: Callable[[], Any], caches: int) -> int:
        total = 0
        for _ in range(caches):
            fn = make()
            rng = range(cls.next_int, cls.next_int + MISS_BATCH)
            cls.next_int += MISS_BATCH
            t0 = perf_counter_ns()
            for i in rng:
                fn(i)
            total += perf_counter_ns() - t0
            del fn
        return total


@dataclass
class Result:
    group: str
    impl: str
    unit: str = "ns/call"
    median_ns: float | None = None
    samples_ns: list[float] = field(default_factory=list)
    calls_per_sample: int = 0
    error: str | None = None
    ratio: float | None = None
    ratio_to: str | None = None
    note: str | None = None

    def spread(self) -> float | None:
        """Interquartile range of the samples, relative to the median."""
        if self.median_ns is None or len(self.samples_ns) < 3:
            return None
        s = sorted(self.samples_ns)
        q1, q3 = s[len(s) // 4], s[(3 * len(s)) // 4]
        return (q3 - q1) / self.median_ns if self.median_ns else None


def _run_bench(repeats: int, target_ns: float, progress: Callable[[str], None]) -> list[Result]:
    from oxicache import CacheEntry

    results: list[Result] = []

    def timed(group: str, impl: str, loop: Callable[[Any, int], int], arg: Any, *, units_per_n: int = 1, unit: str = "ns/call", note: str | None = None) -> Result:
        progress(f"{group}: {impl}")
        res = Result(group, impl, unit=unit, note=note)
        try:
            res.median_ns, res.samples_ns, res.calls_per_sample = measure(loop, arg, units_per_n=units_per_n, repeats=repeats, target_ns=target_ns)
        except Exception as exc:  # a backend that cannot take a call shape is reported, not fatal
            res.error = type(exc).__name__
            res.note = f"{type(exc).__name__}: {exc}"
        results.append(res)
        return res

    def rejects(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> str | None:
        try:
            fn(*args, **kwargs)
        except Exception as exc:
            return type(exc).__name__
        return None

    def add_error(group: str, impl: str, error: str, note: str) -> Result:
        res = Result(group, impl, error=error, note=note)
        results.append(res)
        return res

    with tempfile.TemporaryDirectory(prefix="oxicache-bench-") as tmpdir:
        serial = iter(range(1 << 62))

        def fresh_dir() -> Path:
            path = Path(tmpdir) / f"c{next(serial)}"
            path.mkdir()
            return path

        # reference rows: the loop itself and an unmemoized call
        timed("reference", "empty for-loop (overhead in every row)", _loop_empty, None)
        timed("reference", "bare call f(1), no cache", _loop_f1, _f)

        # baselines first: functools.lru_cache, in this same run
        lru_f = functools.lru_cache(maxsize=None)(_f)
        lru_hit = timed("hit f(1)", LRU, _loop_f1, lru_f)
        lru_miss = timed("miss+store f(new int)", LRU, _Miss.loop, lambda: functools.lru_cache(maxsize=None)(_f), units_per_n=MISS_BATCH)
        lru_g = functools.lru_cache(maxsize=None)(_g)
        err = rejects(lru_g, 1, DICT_ARG, scale=2.0)
        if err:
            add_error("hit g(1, dict, scale=2.0)", LRU, err, "rejects the dict argument")
        else:
            timed("hit g(1, dict, scale=2.0)", LRU, _loop_g_dict, lru_g)
        lru_g_str = timed("hit g(1, dict, scale=2.0)", 'lru_cache: g(1, "abc", scale=2.0)', _loop_g_str, lru_g)

        for label, factory in _backends():
            try:
                factory(fresh_dir())
            except Exception as exc:
                for group in ("hit f(1)", "miss+store f(new int)", "hit g(1, dict, scale=2.0)"):
                    add_error(group, label, type(exc).__name__, f"could not create the backend: {exc}")
                continue
            hit_f = factory(fresh_dir()).memoize(_f)
            r = timed("hit f(1)", label, _loop_f1, hit_f)
            r.ratio_to = lru_hit.impl
            if hasattr(hit_f, "cache_info"):
                info = hit_f.cache_info()
                if info.misses > 1 and info.hits == 0:
                    r.note = "never stores: every call runs f"
            r2 = timed("miss+store f(new int)", label, _Miss.loop, lambda factory=factory: factory(fresh_dir()).memoize(_f), units_per_n=MISS_BATCH)
            r2.ratio_to = lru_miss.impl
            r3 = timed("hit g(1, dict, scale=2.0)", label, _loop_g_dict, factory(fresh_dir()).memoize(_g))
            r3.ratio_to = lru_g_str.impl

        base = timed("key hashing", JSON_MD5, _loop_key_json_md5, None, unit="ns/key")
        ox = timed("key hashing", 'CacheEntry.from_args(...).key', _loop_key_oxicache, None, unit="ns/key")
        ox.ratio_to = base.impl
        # The key computation alone, without building a CacheEntry object (inputs dict prebuilt).
        raw = timed("key hashing", 'keys.key_of("f", inputs)', _loop_key_of, None, unit="ns/key")
        raw.ratio_to = base.impl
        # sanity: the oxicache key really is a 128-bit int
        assert 0 <= CacheEntry.from_args(func="f", x=1, y="abc").key < 1 << 128

    by_impl = {(r.group, r.impl): r for r in results}
    for r in results:
        if r.ratio_to is None or r.median_ns is None:
            continue
        ref = by_impl.get((r.group, r.ratio_to))
        if ref is None or not ref.median_ns:
            continue
        # calls: how many times slower than lru_cache; keys: how many times faster than json+md5
        r.ratio = ref.median_ns / r.median_ns if r.group == "key hashing" else r.median_ns / ref.median_ns
    return results


def _fmt_ns(ns: float | None) -> str:
    if ns is None:
        return "-"
    return f"{ns:,.0f}" if ns >= 1000 else f"{ns:.1f}"


def _wrap(text: str, width: int = 100) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return lines + ([line] if line else [])


def _render(results: list[Result], meta: dict[str, Any]) -> str:
    lines = [f"oxicache {meta['oxicache']} bench: {meta['date']}, CPython {meta['python']}, "
             f"{meta['cpus']} CPUs, took {meta['elapsed_s']:.1f} s", ""]
    lines += _wrap(meta["note"])
    lines.append("")
    groups: list[str] = []
    for r in results:
        if r.group not in groups:
            groups.append(r.group)
    label_w = max(width(r.impl) for r in results) + 2
    for group in groups:
        is_key = group == "key hashing"
        head = ljust(group, label_w) + (f"{'ns/key':>9}{'keys/s':>12}{'x faster':>10}" if is_key else f"{'ns/call':>9}{'x lru_cache':>12}{'':>10}") + f"{'IQR':>6}"
        lines += [head, "-" * len(head)]
        for r in (r for r in results if r.group == group):
            spread = r.spread()
            iqr = f"{100 * spread:.0f}%" if spread is not None else ""
            value = "n/a" if r.error else _fmt_ns(r.median_ns)  # the error's name goes with the note, not in the column
            per_s = f"{1e9 / r.median_ns:,.0f}" if is_key and r.median_ns else ""
            if r.ratio is not None:
                ratio = f"{r.ratio:.2f}"
            elif r.ratio_to is None and r.median_ns is not None and group != "reference":
                ratio = "(ref)"
            else:
                ratio = ""
            cols = f"{value:>9}{per_s:>12}{ratio:>10}" if is_key else f"{value:>9}{ratio:>12}{'':>10}"
            line = f"  {ljust(r.impl, label_w - 2)}{cols}{iqr:>6}"
            if r.note and r.error is None:
                line += f"  {r.note}"
            elif r.error:
                note = r.note or ""
                line += f"  {note if note.startswith(r.error) else f'{r.error}: {note}'}"
            lines.append(line.rstrip())
        lines.append("")
    lines += _wrap(
        f"lru_cache is functools.lru_cache(maxsize=None). miss+store: fresh empty caches, each fed {MISS_BATCH} new "
        "ints (creating the caches is not timed). hit g: lru_cache rejects the dict argument, so the reference "
        'for that group is lru_cache on the hashable g(1, "abc", scale=2.0). key hashing: "x faster" is against '
        'int(md5(json.dumps({"func": "f", "inputs": {"x": 1, "y": "abc"}}, sort_keys=True).encode()).hexdigest(), 16).'
    )
    return "\n".join(lines)


def _chart_figure() -> Any:
    """matplotlib's ``Figure`` class (no pyplot, so no global backend state), or a CliError naming the
    package to install."""
    import importlib

    try:
        figure = importlib.import_module("matplotlib.figure")
    except ImportError as exc:
        msg = f"--chart needs matplotlib ({exc}): pip install matplotlib (or pip install 'oxicache[chart]')"
        raise CliError(msg) from None
    return figure.Figure


def _write_chart(results: list[Result], meta: dict[str, Any], path: str) -> None:
    """One horizontal bar panel per group of the table: the median time of each row, lower is better."""
    figure_class = _chart_figure()
    groups: list[str] = []
    for r in results:
        if r.group not in groups:
            groups.append(r.group)
    rows = {g: [r for r in results if r.group == g and r.median_ns is not None] for g in groups}
    heights = [max(1, len(rows[g])) * 0.32 + 0.7 for g in groups]
    fig = figure_class(figsize=(10, sum(heights) + 0.8), layout="constrained")
    axes = fig.subplots(len(groups), 1, gridspec_kw={"height_ratios": heights}, squeeze=False)[:, 0]
    for ax, group in zip(axes, groups):
        shown = rows[group]
        labels = [r.impl for r in shown]
        values = [float(r.median_ns or 0.0) for r in shown]
        colors = ["#888888" if r.ratio_to is None else "#d35400" for r in shown]
        bars = ax.barh(range(len(shown)), values, color=colors)
        ax.set_yticks(range(len(shown)), labels, fontsize=8)
        ax.invert_yaxis()
        unit = shown[0].unit if shown else "ns/call"
        ax.set_title(f"{group}: {unit}, lower is better", fontsize=9, loc="left")
        ax.tick_params(axis="x", labelsize=8)
        if values and min(values) > 0 and max(values) / min(values) > 30:
            ax.set_xscale("log")  # lru_cache and a database side by side: a linear axis hides the fast rows
        for bar, r in zip(bars, shown):
            ratio = "" if r.ratio is None else f"  ({r.ratio:.2f}x {'faster' if group == 'key hashing' else 'lru_cache'})"
            label = _fmt_ns(r.median_ns) + ratio
            ax.annotate(label, (bar.get_width(), bar.get_y() + bar.get_height() / 2), xytext=(3, 0),
                        textcoords="offset points", va="center", fontsize=7)
        ax.margins(x=0.25)
    fig.suptitle(f"oxicache {meta['oxicache']} bench, CPython {meta['python']}, {meta['date']}", fontsize=10)
    try:
        fig.savefig(path, format="png", dpi=110)
    except OSError as exc:
        msg = f"cannot write the chart {path!r}: {exc.strerror or exc}"
        raise CliError(msg) from None


def _cmd_bench(args: argparse.Namespace) -> int:
    if args.what == "keys":
        if args.chart:
            raise CliError("--chart draws the calls table; bench keys prints its table only")
        return cmd_bench_keys(args)
    try:
        import oxicache
    except ImportError as exc:  # pragma: no cover - a broken build
        print(f"oxicache bench: cannot import oxicache: {exc}", file=sys.stderr)
        return 1
    if args.chart:
        _chart_figure()  # a missing matplotlib is reported before the benchmark runs, not after
        folder = os.path.dirname(os.path.abspath(args.chart))
        if not os.path.isdir(folder):
            msg = f"cannot write the chart {args.chart!r}: no folder {folder!r}"
            raise CliError(msg)
    repeats = args.repeats or (3 if args.quick else 7)
    # per-sample target time: about 13 timed rows x (repeats + ~1.5 warm-up/calibration) samples each
    target_ns = (0.04 if args.quick else 0.15) * 1e9
    show = (lambda msg: print(f"  … {msg}", file=sys.stderr, flush=True)) if args.verbose else (lambda msg: None)
    start = time.perf_counter()
    results = _run_bench(repeats, target_ns, show)
    elapsed = time.perf_counter() - start
    meta = {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "oxicache": oxicache.__version__,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "repeats": repeats,
        "target_sample_s": target_ns / 1e9,
        "miss_batch": MISS_BATCH,
        "elapsed_s": elapsed,
        "note": NOTE.format(repeats=repeats),
    }
    if args.json:
        out = {"meta": meta, "results": [
            {
                "group": r.group, "impl": r.impl, "unit": r.unit, "median_ns": r.median_ns,
                "per_second": (1e9 / r.median_ns) if r.median_ns else None,
                "ratio": r.ratio, "ratio_to": r.ratio_to,
                "ratio_meaning": None if r.ratio is None else ("times faster" if r.group == "key hashing" else "times slower"),
                "iqr_rel": r.spread(), "samples_ns": r.samples_ns, "calls_per_sample": r.calls_per_sample,
                "error": r.error, "note": r.note,
            }
            for r in results
        ]}
        print(json.dumps(out, indent=2))
    else:
        print(_render(results, meta))
    if args.chart:
        _write_chart(results, meta, args.chart)
        print(f"oxicache bench: wrote the chart {args.chart}", file=sys.stderr)
    return 0


def add_bench(sub: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    sub.add_argument(
        "what", nargs="?", choices=["calls", "keys"], default="calls",
        help="calls (the default): memoized calls of every backend against lru_cache; keys: key-hashing "
        "throughput against json+md5, orjson+xxh3_128 and pickle+blake3",
    )
    sub.add_argument("--quick", action="store_true", help="about 3 s instead of about 20 s (fewer, shorter repeats)")
    sub.add_argument("--json", action="store_true", help="print machine-readable JSON instead of the table")
    sub.add_argument("--repeats", type=int, default=None, metavar="N", help="timed repeats per row (default 7, or 3 with --quick)")
    sub.add_argument("-v", "--verbose", action="store_true", help="show progress on stderr")
    sub.add_argument("--chart", metavar="FILE.png", help="also draw the table as a PNG bar chart (needs matplotlib)")
    return _cmd_bench
