"""The child side of R5 (test_r05_kill9.py): a writer that acks each committed write until it is killed,
and the checks a fresh process runs on the store it left.

Kept apart from the test module so a spawn child imports only oxicache and these helpers (not pytest):
a child starts in a fraction of the time on a loaded machine.
"""

from __future__ import annotations

import warnings
from typing import Any

from reliability_support import expected_value
from store_support import Spec, open_spec

FUNC = "r05.writer"
KEYS = [f"k{n}" for n in range(8)]
SIZE = 2**20
Version = tuple[int, int]  # (round, write index)


def payload(key: str, version: Version) -> bytes:
    return expected_value((key, version), SIZE)


def check_entries(cache: Any, expect: dict[str, list[Version | None]]) -> tuple[list[str], dict[str, Version | None]]:
    """What is wrong with the store, given the acceptable versions of each key (None: absent), and the
    version each key holds."""
    problems = []
    seen: dict[str, Version | None] = {}
    for key in KEYS:
        allowed = expect.get(key, [None])
        value = cache.get(FUNC, {"key": key})
        if value is ...:
            seen[key] = None
            if None not in allowed:
                problems.append(f"{key}: missing, expected version {allowed}")
            continue
        match = [v for v in allowed if v is not None and value == payload(key, v)]
        if match:
            seen[key] = match[0]
        else:
            seen[key] = (-1, -1)
            head = value[:8].hex() if isinstance(value, bytes) else type(value).__name__
            size = len(value) if isinstance(value, bytes) else "?"
            problems.append(f"{key}: a value of {size} bytes ({head}...) that is none of versions {allowed}")
    present = sum(v is not None for v in seen.values())
    entries = list(cache)
    stray = [e for e in entries if e.func != FUNC or e.inputs.get("key") not in KEYS]
    if stray:
        problems.append(f"entries that were never written: {stray[:3]}")
    if len(cache) != present or len(entries) != present:
        problems.append(f"len {len(cache)} / {len(entries)} entries listed, {present} readable")
    return problems, seen


def _round(spec: Spec, conn: Any, round_no: int, start: int, expect: dict[str, list[Version | None]]) -> None:
    """The child: reopen, check, then write until killed."""
    warnings.simplefilter("error")  # a warning at open or on a read is a failure
    try:
        cache = open_spec(spec)
        conn.send(("opened", *check_entries(cache, expect)))
    except BaseException as err:  # reported, then the parent fails the test
        conn.send(("opened", [f"{type(err).__name__}: {err}"], {}))
        return
    i = start
    while True:
        key = KEYS[i % len(KEYS)]
        cache.set(FUNC, {"key": key}, output=payload(key, (round_no, i)))
        conn.send(("ack", i))
        i += 1


def _final(spec: Spec, expect: dict[str, list[Version | None]]) -> list[str]:
    warnings.simplefilter("error")
    cache = open_spec(spec)
    try:
        return check_entries(cache, expect)[0]
    finally:
        cache.close()


def _final_child(conn: Any, spec: Spec, expect: dict[str, list[Version | None]]) -> None:
    try:
        conn.send(_final(spec, expect))
    except BaseException as err:
        conn.send([f"{type(err).__name__}: {err}"])
