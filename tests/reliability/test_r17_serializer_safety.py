"""Matrix row R17: serializer safety and unserialisable outputs, on every persistent backend.

Planted data (written into the store directly, under the key of a real call): pickles and
``__reduce__`` payloads, and tagged JSON naming callables (``$pickle``, ``$type``, and the codec's own
``$namedtuple``/``$dataclass``/``$pydantic``/``$enum`` tags with ``builtins:open`` or ``os:system``),
each of which would create a sentinel file if anything ran it. The payloads are checked to be live
(unpickling one does create a file). Every read is a miss with one ``CacheWarning``, the sentinel is
never created, and the next store overwrites the entry. JSON that merely *looks* like a reduce recipe
(jsonpickle's ``py/reduce``, no ``$`` tag) is plain data: it reads back as that dict, inert.

DiskCache(serializer="pickle", signing_key=...): one flipped byte, in the signature or in the pickle,
is a miss with a warning; so is an exploit pickle signed with another key, or unsigned.

Unserialisable results (a lock, an open file) on every persistent backend, and on the pickle
serializer: the caller gets its value, one ``CacheWarning`` names the type, and nothing is stored
(no entry, no file, no row). A pydantic model of a class defined in a local scope is the same case for
the codec (issue 11: two local classes can share a name, so reviving one by name could give the other):
returned, one warning naming the type and the fix, nothing stored; under ``serializer="pickle"`` the
local class cannot be pickled either. A module-level model is stored and hits in this process; a process
that never encoded that class reads it as a miss with a warning naming the type (checked in a
subprocess).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import pickle
import subprocess
import sys
import threading
import warnings
from pathlib import Path
from typing import Any

import diskcache
import pydantic
import pytest
from backends import make
from codec_reference import b_array, b_ext, b_head, b_str, MAP

from oxicache import CacheEntry, CacheWarning
from oxicache.codec import decode_binary

SQL = ["sqlite", "postgresql", "mysql"]
SIGNING_KEY = b"k" * 32


class OpensAFile:
    """Unpickling an instance of this calls ``open(path, "w")``: it creates the file."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> Any:
        return (open, (self.path, "w"))


def exploit_pickle(sentinel: Path) -> bytes:
    return pickle.dumps(OpensAFile(str(sentinel)), protocol=pickle.HIGHEST_PROTOCOL)


def test_the_pickle_payload_is_live(tmp_path: Path) -> None:
    control = tmp_path / "control"
    pickle.loads(exploit_pickle(control)).close()  # noqa: S301 - the control: it must create the file
    assert control.exists()


def json_payloads(sentinel: Path) -> dict[str, Any]:
    s = str(sentinel)
    return {
        "pickle-tag": {"$pickle": base64.b64encode(exploit_pickle(sentinel)).decode()},
        "type-tag": {"$type": "os.system", "args": [f"touch {s}"]},
        "reduce-tag": {"$reduce": ["builtins:open", [s, "w"]]},
        "namedtuple-open": {"$namedtuple": "builtins:open", "items": [s, "w"]},
        "dataclass-system": {"$dataclass": "os:system", "fields": {"command": f"touch {s}"}},
        "pydantic-open": {"$pydantic": "builtins:open", "fields": {"file": s, "mode": "w"}},
        "enum-system": {"$enum": "os:system", "value": f"touch {s}"},
    }


def plant_json_output(name: str, cache: Any, entry: CacheEntry, output: Any) -> None:
    """Replace the stored output of ``entry`` (already stored) with ``output``, as raw JSON."""
    text = json.dumps(output)
    if name == "json":
        path = Path(cache.path) / f"{entry.key:032x}.json"
        record = json.loads(path.read_text())
        record["output"] = output
        path.write_text(json.dumps(record))
        return
    import sqlalchemy

    value = "CAST(:v AS json)" if cache.engine.dialect.name == "postgresql" else ":v"
    with cache.engine.begin() as conn:
        done = conn.execute(
            sqlalchemy.text(f"UPDATE {cache.table.name} SET output = {value} WHERE {_q(cache, 'key')} = :k"),
            {"v": text, "k": f"{entry.key:032x}"},
        )
        assert done.rowcount == 1


def _q(cache: Any, column: str) -> str:
    return str(cache.engine.dialect.identifier_preparer.quote(column))


def stored_things(name: str, cache: Any) -> int:
    """Entries, value files and temp files physically in the store."""
    if name == "json":
        return len(os.listdir(cache.path))
    if name.startswith("disk"):
        with diskcache.Cache(cache.path) as raw:
            items = len(raw)
        files = sum(len(fs) for d, _, fs in os.walk(cache.path) if d != cache.path)
        return items + files
    import sqlalchemy

    with cache.engine.connect() as conn:
        return int(conn.execute(sqlalchemy.select(sqlalchemy.func.count()).select_from(cache.table)).scalar_one())


def read_as_miss(cache: Any, sentinel: Path, x: int = 1, match: str | None = None, what: str = "") -> None:
    """A memoized call on the planted entry recomputes with exactly one warning, then the entry is good."""
    runs: list[int] = []

    @cache.memoize(name="f")
    def f(x: int) -> str:
        runs.append(x)
        return "fresh"

    with pytest.warns(CacheWarning, match=match) as caught:
        assert f(x) == "fresh", what
    assert len(caught) == 1, (what, [str(w.message) for w in caught])
    assert runs == [x], what
    assert not sentinel.exists(), what
    assert f(x) == "fresh" and runs == [x], what  # overwritten by a good entry: a hit now
    assert cache.get("f", x=x) == "fresh", what


# ---- planted JSON: JsonCache and DatabaseCache -------------------------------------------------------


@pytest.mark.parametrize("name", ["json", *SQL])
def test_planted_tagged_json_never_runs(name: str, tmp_path: Path) -> None:
    sentinel = tmp_path / "pwned"
    cache = make(name)
    for x, (what, payload) in enumerate(json_payloads(sentinel).items()):
        entry = CacheEntry("f", {"x": x}, "good")
        cache.add(entry)
        plant_json_output(name, cache, entry, payload)
        with pytest.warns(CacheWarning) as caught:
            assert cache.get("f", x=x) is ..., what
        assert len(caught) == 1, what
        assert not sentinel.exists(), what
        plant_json_output(name, cache, entry, payload)
        read_as_miss(cache, sentinel, x, what=what)


@pytest.mark.parametrize("name", ["json", "sqlite"])
def test_json_that_only_looks_like_a_reduce_recipe_is_inert_data(name: str, tmp_path: Path) -> None:
    sentinel = tmp_path / "pwned"
    recipe = {"py/reduce": [{"py/function": "builtins.open"}, {"py/tuple": [str(sentinel), "w"]}]}
    cache = make(name)
    entry = CacheEntry("f", {"x": 1}, "good")
    cache.add(entry)
    plant_json_output(name, cache, entry, recipe)
    assert cache.get("f", x=1) == recipe  # a dict of strings, nothing more
    assert not sentinel.exists()


# ---- planted blobs: DiskCache --------------------------------------------------------------------------


def _record(output: bytes) -> bytes:
    """The DiskCache blob of CacheEntry("f", {"x": 1}) whose output is the raw MessagePack ``output``."""
    fields = [(b_str("f"), b_str("f")), (b_str("i"), b_head(MAP, 1) + b_str("x") + b"\x01"),
              (b_str("o"), output), (b_str("m"), b_head(MAP, 0)), (b_str("c"), b"\x00")]
    return b"\xc1m" + b_head(MAP, len(fields)) + b"".join(k + v for k, v in fields)


def disk_blobs(sentinel: Path) -> dict[str, Any]:
    s = str(sentinel)
    data = exploit_pickle(sentinel)
    named = lambda kind, name, body: b_ext(kind, b_head((0x90, 16, None, 0xDC, 0xDD), 2) + b_str(name) + body)  # noqa: E731
    return {
        "diskcache-pickle": OpensAFile(s),  # diskcache's own format (MODE_PICKLE)
        "bare-pickle": data,
        "pickle-envelope": b"\xc1p" + data,
        "signed-envelope": b"\xc1s" + hmac.new(b"x" * 32, data, hashlib.sha256).digest() + data,
        "namedtuple-open": _record(named("namedtuple", "builtins:open", b_array(b_str(s), b_str("w")))),
        "dataclass-system": _record(named("dataclass", "os:system", b_head(MAP, 1) + b_str("command") + b_str(f"touch {s}"))),
    }


DISK_BLOBS = list(disk_blobs(Path("x")))


def test_the_codec_record_builder_matches_the_real_encoding() -> None:
    cache = make("disk")
    entry = CacheEntry("f", {"x": 1}, "v")
    cache.add(entry)
    with diskcache.Cache(cache.path) as raw:
        blob = raw.get(entry.key.to_bytes(16, "big"))
    real, built = decode_binary(blob[2:]), decode_binary(_record(b_str("v"))[2:])
    assert blob[:2] == b"\xc1m"
    assert {k: v for k, v in real.items() if k not in ("c", "s")} == {k: v for k, v in built.items() if k != "c"}


@pytest.mark.parametrize("blob", DISK_BLOBS)
@pytest.mark.parametrize("serializer", ["codec", "pickle-signed"])
def test_planted_blobs_never_run_in_diskcache(blob: str, serializer: str, tmp_path: Path) -> None:
    sentinel = tmp_path / "pwned"
    options = {"serializer": "pickle", "signing_key": SIGNING_KEY} if serializer == "pickle-signed" else {}
    cache = make("disk", **options)
    entry = CacheEntry("f", {"x": 1}, "good")
    with diskcache.Cache(cache.path) as raw:
        raw.set(entry.key.to_bytes(16, "big"), disk_blobs(sentinel)[blob])
    read_as_miss(cache, sentinel, what=blob)


@pytest.mark.parametrize("where", ["signature", "pickle"])
def test_a_tampered_signed_pickle_is_a_miss_with_a_warning(where: str, tmp_path: Path) -> None:
    cache = make("disk", serializer="pickle", signing_key=SIGNING_KEY)
    entry = CacheEntry("f", {"x": 1}, "good")
    cache.add(entry)
    key = entry.key.to_bytes(16, "big")
    with diskcache.Cache(cache.path) as raw:
        blob = bytearray(raw.get(key))
        assert blob[:2] == b"\xc1s"
        blob[2 + 5 if where == "signature" else 2 + 32 + len(blob[34:]) // 2] ^= 0x01
        raw.set(key, bytes(blob))
    read_as_miss(cache, tmp_path / "pwned", match="signature", what=where)


# ---- unserialisable results -------------------------------------------------------------------------


def _local_model() -> Any:
    class Local(pydantic.BaseModel):
        a: int

    return Local(a=1)


UNSERIALISABLE = {
    "lock": (threading.Lock, "lock"),
    "open-file": (lambda: open(os.devnull), "TextIOWrapper"),  # noqa: SIM115
}
PERSISTENT = ["disk", "disk-pickle", "json", *SQL]


def _make(name: str) -> Any:
    if name == "disk-pickle":
        return make("disk", serializer="pickle", signing_key=SIGNING_KEY)
    return make(name)


def unstorable_is_returned_not_stored(cache: Any, name: str, value: Any, type_name: str) -> None:
    before = stored_things(name, cache)

    @cache.memoize(name=f"f_{type_name}")
    def f(x: int) -> Any:
        return value

    with pytest.warns(CacheWarning, match=type_name) as caught:
        assert f(1) is value  # the caller gets its own object
    assert len(caught) == 1, [str(w.message) for w in caught]
    assert len(cache) == 0 and not cache.exists(f, x=1)
    assert stored_things(name, cache) == before  # no entry, no value file, no temp file, no row
    assert f.cache_info().currsize == 0


@pytest.mark.parametrize("name", PERSISTENT)
def test_unserialisable_result_is_returned_with_one_warning_and_not_stored(name: str) -> None:
    cache = _make(name)
    for build, type_name in UNSERIALISABLE.values():
        value = build()
        try:
            unstorable_is_returned_not_stored(cache, name, value, type_name)
        finally:
            if hasattr(value, "close"):
                value.close()


def test_local_pydantic_model_cannot_be_pickled() -> None:
    unstorable_is_returned_not_stored(_make("disk-pickle"), "disk-pickle", _local_model(), "Local")


@pytest.mark.parametrize("name", ["disk", "json", "sqlite"])
def test_local_pydantic_model_is_returned_not_stored_by_the_codec(name: str) -> None:
    cache = make(name)
    unstorable_is_returned_not_stored(cache, name, _local_model(), "Local")


class ModuleModel(pydantic.BaseModel):
    a: int


@pytest.mark.parametrize("name", ["disk", "json", "sqlite"])
def test_module_level_pydantic_model_is_stored_by_the_codec(name: str) -> None:
    cache = make(name)

    @cache.memoize
    def f(x: int) -> Any:
        return ModuleModel(a=x)

    assert f(1) == f(1)
    assert f.cache_info().hits == 1
    assert type(cache.get(f, x=1)) is ModuleModel


def test_another_process_reads_a_model_it_never_encoded_as_a_miss_naming_the_type() -> None:
    cache = make("json")

    @cache.memoize(name="f")
    def f(x: int) -> Any:
        return ModuleModel(a=1)

    f(1)
    code = (
        "import sys, warnings; from oxicache import JsonCache\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        f"    got = JsonCache({cache.path!r}).get('f', x=1)\n"
        "print(got is ..., len(w), str(w[0].message) if w else '')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    miss, count, message = out.stdout.strip().split(" ", 2)
    assert (miss, count) == ("True", "1")
    assert "ModuleModel" in message
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cache.get("f", x=1).model_dump() == {"a": 1}  # this process encoded it: allowed here
