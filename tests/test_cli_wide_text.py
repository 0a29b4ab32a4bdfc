"""The command line's tables line up in a terminal whatever the text (issue 16, item 9): a CJK or other
wide character takes two columns, a combining mark none; a backend bench cannot create keeps its row in
the columns."""

from __future__ import annotations

import unicodedata

import pytest

from oxicache import JsonCache
from oxicache.cli import main
from oxicache.cli.bench import Result, _render
from oxicache.cli.width import cut, ljust, width


def columns(text: str) -> int:
    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


@pytest.mark.parametrize(("text", "cols"), [("price", 5), ("価格", 4), ("café", 4), ("cafe\u0301", 4), ("ｶﾀｶﾅ", 4), ("가격x", 5), ("", 0)])
def test_width_counts_terminal_columns(text, cols) -> None:
    assert width(text) == cols
    assert width(ljust(text, 8)) == 8


def test_cut_never_exceeds_the_columns_nor_splits_a_wide_character() -> None:
    assert cut("価格計算の関数", 7) == "価格計…" and width(cut("価格計算の関数", 7)) == 7
    assert cut("価格計算の関数", 8) == "価格計…"  # a wide character does not fit in the last column
    assert cut("short", 10) == "short"


def test_ls_aligns_rows_with_wide_function_names(tmp_path, capsys) -> None:
    cache = JsonCache(tmp_path / "store")
    cache.set("価格計算", output="円", x=1)
    cache.set("plain_function", output="ok", x=2)
    cache.set("naïve", output="é", x=3)
    assert main(["ls", f"json:{tmp_path / 'store'}"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    header, rule, *rows = lines[:5]
    starts = []
    for line in [header, *rows]:
        cut_at = line.index("INPUTS") if line is header else line.index("{'x'")
        starts.append(columns(line[:cut_at]))  # the column where INPUTS starts, in terminal columns
    assert len(set(starts)) == 1, lines


def test_a_backend_bench_could_not_create_keeps_the_table_aligned() -> None:
    results = [
        Result("hit f(1)", "lru_cache", median_ns=40.0, samples_ns=[40.0, 41.0, 39.0]),
        Result("hit f(1)", "InMemCache()", median_ns=30.0, samples_ns=[30.0, 31.0, 29.0], ratio=0.75, ratio_to="lru_cache"),
        Result("hit f(1)", 'DatabaseCache("postgresql")', error="ModuleNotFoundError",
               note="could not create the backend: No module named 'psycopg'"),
        Result("hit f(1)", "キャッシュ()", median_ns=50.0, samples_ns=[50.0, 51.0, 49.0], ratio=1.25, ratio_to="lru_cache"),
    ]
    meta = {"oxicache": "0", "date": "d", "python": "3", "cpus": 2, "elapsed_s": 1.0, "note": "n"}
    text = _render(results, meta)
    table = text[text.index("hit f(1)"):].split("\n\n")[0].splitlines()
    head, rule, *rows = table
    # the value, ratio and IQR columns end in the same terminal column on every row
    value_end = columns(head[: head.index("ns/call") + len("ns/call")])
    for row in rows:
        impl = next(r.impl for r in results if row.strip().startswith(r.impl))
        after = row[row.index(impl) + len(impl):]
        value = after.split()[0]
        assert columns(row[: row.index(impl) + len(impl)] + after[: after.index(value) + len(value)]) == value_end, row
    assert "n/a" in rows[2] and "ModuleNotFoundError: could not create the backend" in rows[2]
