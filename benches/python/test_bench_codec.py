"""The value codec on a small cache entry: oxicache's two encodings beside orjson, in one run.

The entry is the dict a persistent backend stores for one call::

    {"func": "app.reports.summary", "inputs": {"x": 5, "y": "abc", "flags": [1, 2, 3]},
     "output": {"total": 12.5, "rows": ["a", "b"]}, "metadata": {"annotation": {"team": "backend"}}}

Groups (compare rows within a group; the ratios printed at the end go against each group's ``orjson`` row):

* ``codec small entry encode+decode``: the target. Each row is a module-level function doing
  ``decode(encode(ENTRY))``, called by pytest-benchmark's loop, so every row pays the same call overhead:
  ``orjson.loads(orjson.dumps(ENTRY))``, ``decode_binary(encode_binary(ENTRY))`` (MessagePack with
  extension types) and ``decode_json(encode_json(ENTRY))`` (tagged JSON);
* ``codec small entry encode`` and ``codec small entry decode``: the two halves, each function called
  directly by the loop with its argument (``orjson.dumps(ENTRY)``, ``encode_binary(ENTRY)``, ...;
  ``orjson.loads(blob)``, ``decode_binary(blob)``, ``decode_json(text)``), where the blob is what the same
  codec produced, built before timing.

The codecs do not do the same job: orjson turns tuples into lists and accepts only str keys, while the
oxicache codec round-trips the value exactly (tuples, sets, non-str keys, datetimes...). On this entry
all three produce an equal dict, which each test checks before timing.

At the end of the run the terminal summary prints each row's median in ns, its ratio to orjson in the
same group, and whether the round-trip target (faster than orjson, ratio < 1) is met, from this run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from oxicache.codec import decode_binary, decode_json, encode_binary, encode_json

orjson = pytest.importorskip("orjson")

ENTRY: dict[str, Any] = {
    "func": "app.reports.summary",
    "inputs": {"x": 5, "y": "abc", "flags": [1, 2, 3]},
    "output": {"total": 12.5, "rows": ["a", "b"]},
    "metadata": {"annotation": {"team": "backend"}},
}

G_RT = "codec small entry encode+decode"
G_ENC = "codec small entry encode"
G_DEC = "codec small entry decode"
REFERENCE = "orjson"
TARGET_ROWS = ("oxicache binary", "oxicache json")  # round trip faster than orjson's


def rt_orjson() -> Any:
    return orjson.loads(orjson.dumps(ENTRY))


def rt_binary() -> Any:
    return decode_binary(encode_binary(ENTRY))


def rt_json() -> Any:
    return decode_json(encode_json(ENTRY))


CODECS: dict[str, tuple[Callable[[Any], Any], Callable[[Any], Any], Callable[[], Any]]] = {
    # row -> (encode, decode, round trip)
    "orjson": (orjson.dumps, orjson.loads, rt_orjson),
    "oxicache binary": (encode_binary, decode_binary, rt_binary),
    "oxicache json": (encode_json, decode_json, rt_json),
}
codec_ids = list(CODECS)


@pytest.fixture(scope="module")
def medians(bench_summary: list[tuple[str, str]]) -> Iterator[dict[str, dict[str, float]]]:
    """group -> row -> median ns per call; ratios to orjson and the target verdicts go to the summary."""
    found: dict[str, dict[str, float]] = {}
    yield found
    for group in (G_RT, G_ENC, G_DEC):
        rows = found.get(group, {})
        ref = rows.get(REFERENCE)
        for row, ns in rows.items():
            ratio = f"{ns / ref:5.2f}x orjson" if ref else "(no orjson row in this run)"
            size = len(CODECS[row][0](ENTRY))
            bench_summary.append((group, f"{row:<18} {ns:9.1f} ns  {ratio}  ({size} bytes encoded)"))
    rows, ref = found.get(G_RT, {}), found.get(G_RT, {}).get(REFERENCE)
    for row in TARGET_ROWS:
        if row in rows and ref:
            times = rows[row] / ref
            verdict = "met" if times < 1.0 else "NOT MET"
            bench_summary.append(("codec targets", f"{row} encode+decode < orjson: {times:.2f}x -> {verdict}"))
        else:
            bench_summary.append(("codec targets", f"{row} encode+decode < orjson: (row or reference missing)"))


def _record(benchmark: Any, medians: dict[str, dict[str, float]], group: str, row: str) -> None:
    benchmark.extra_info["row"] = row
    if benchmark.stats is not None:  # None under --benchmark-disable
        medians.setdefault(group, {})[row] = benchmark.stats.stats.median * 1e9


@pytest.mark.benchmark(group=G_RT)
@pytest.mark.parametrize("codec", codec_ids)
def test_codec_roundtrip(benchmark: Any, medians: dict[str, dict[str, float]], codec: str) -> None:
    roundtrip = CODECS[codec][2]
    assert roundtrip() == ENTRY
    benchmark.extra_info["call"] = f"{roundtrip.__name__}()"
    assert benchmark(roundtrip) == ENTRY
    _record(benchmark, medians, G_RT, codec)


@pytest.mark.benchmark(group=G_ENC)
@pytest.mark.parametrize("codec", codec_ids)
def test_codec_encode(benchmark: Any, medians: dict[str, dict[str, float]], codec: str) -> None:
    encode, decode, _ = CODECS[codec]
    blob = encode(ENTRY)
    assert decode(blob) == ENTRY
    benchmark.extra_info.update(encoded_bytes=len(blob), encoded_type=type(blob).__name__)
    assert benchmark(encode, ENTRY) == blob
    _record(benchmark, medians, G_ENC, codec)


@pytest.mark.benchmark(group=G_DEC)
@pytest.mark.parametrize("codec", codec_ids)
def test_codec_decode(benchmark: Any, medians: dict[str, dict[str, float]], codec: str) -> None:
    encode, decode, _ = CODECS[codec]
    blob = encode(ENTRY)  # what this codec wrote, built before timing
    benchmark.extra_info.update(encoded_bytes=len(blob), encoded_type=type(blob).__name__)
    assert benchmark(decode, blob) == ENTRY
    _record(benchmark, medians, G_DEC, codec)
