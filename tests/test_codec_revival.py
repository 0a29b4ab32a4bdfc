"""Stored dataclass (NamedTuple, Enum) results revive in a new process (issue 16, item 1): through the
return annotation, through ``types=``, or because the class is already imported; a record of a class the
reader does not revive is reported as not allowed (with the fix), never as damage, and nothing it names is
imported. Every scenario writes with one process and reads with a fresh one, on DiskCache, JsonCache and
DatabaseCache (SQLite)."""

from __future__ import annotations

import dataclasses
import enum
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Annotated, NamedTuple, Optional, Union

import pytest

import oxicache
from oxicache.codec import ValueNotAllowedError
from oxicache.errors import ValueDecodingError
from oxicache.memo.result_types import annotated_classes

SHAPES = '''
import dataclasses, enum
from typing import NamedTuple

class Color(enum.Enum):
    RED = "red"

@dataclasses.dataclass
class Inner:
    color: Color

@dataclasses.dataclass
class Point:
    x: int
    inner: Inner

class Pair(NamedTuple):
    a: int
    b: int

@dataclasses.dataclass
class Handle:
    fd: int
    def __del__(self):
        pass

def make(n):
    return Point(n, Inner(Color.RED))
'''

# The reader's program: a cache, a memoized function made of DECORATED (its decorator line and def), then
# one call; prints how many times the function ran, the value's repr and the warnings, as JSON.
READER = '''
import json, sys, warnings
warnings.simplefilter("always")
import oxicache, oxicache.codec
{setup}
cache = {cache}
ran = []
{decorated}
    ran.append(n)
    return {compute}
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    try:
        value = f(1)
        error = None
    except Exception as err:
        value, error = None, f"{{type(err).__name__}}: {{err}}"
print(json.dumps({{"ran": len(ran), "value": repr(value), "error": error, "modules": sorted(m for m in sys.modules if m == "shapes"),
                  "warnings": [str(w.message) for w in caught]}}))
'''

BACKENDS = {
    "disk": "oxicache.DiskCache({path!r}{extra})",
    "json": "oxicache.JsonCache({path!r}{extra})",
    "sqlite": "oxicache.DatabaseCache('sqlite', {path!r}{extra})",
}


@pytest.fixture(params=sorted(BACKENDS))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Path]:
    (tmp_path / "shapes.py").write_text(SHAPES)
    name = "store.db" if request.param == "sqlite" else "store"
    return request.param, tmp_path / name


def run(store: tuple[str, Path], decorated: str, compute: str, setup: str = "", extra: str = "") -> dict:
    kind, path = store
    program = READER.format(setup=setup, cache=BACKENDS[kind].format(path=str(path), extra=extra),
                            decorated=textwrap.dedent(decorated).strip(), compute=compute)
    done = subprocess.run([sys.executable, "-c", program], cwd=path.parent, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(path.parent), "PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def write(store: tuple[str, Path], compute: str = "shapes.make(n)") -> None:
    """The writer: a first process stores f(1) (its own class use allows it there)."""
    result = run(store, '@cache.memoize(name="app.f")\ndef f(n):', compute, setup="import shapes")
    assert result["ran"] == 1 and result["error"] is None and result["warnings"] == [], result


POINT = "Point(x=1, inner=Inner(color=<Color.RED: 'red'>))"


def test_already_imported_class_is_revived(store: tuple[str, Path]) -> None:
    write(store)
    result = run(store, '@cache.memoize(name="app.f")\ndef f(n):', "shapes.make(n)", setup="import shapes")
    assert result == {"ran": 0, "value": POINT, "error": None, "modules": ["shapes"], "warnings": []}


def test_return_annotation_allows_its_classes(store: tuple[str, Path]) -> None:
    """Imported-class revival off: only the annotation (nested, as a string, inside list/Optional) allows
    Point, and Point's field types (Inner, Color) come with it."""
    write(store, "[shapes.make(n), None]")
    result = run(store, '@cache.memoize(name="app.f")\ndef f(n) -> "list[Optional[shapes.Point]]":', "[shapes.make(n), None]",
                 setup="import shapes\nfrom typing import Optional\noxicache.codec.revive_imported(False)")
    assert result == {"ran": 0, "value": f"[{POINT}, None]", "error": None, "modules": ["shapes"], "warnings": []}


def test_types_option_on_the_decorator(store: tuple[str, Path]) -> None:
    write(store, "shapes.Pair(n, 2)")
    result = run(store, '@cache.memoize(name="app.f", types=[shapes.Pair])\ndef f(n):', "shapes.Pair(n, 2)",
                 setup="import shapes\noxicache.codec.revive_imported(False)")
    assert result == {"ran": 0, "value": "Pair(a=1, b=2)", "error": None, "modules": ["shapes"], "warnings": []}


def test_types_option_on_the_cache(store: tuple[str, Path]) -> None:
    write(store, "shapes.Pair(n, 2)")
    result = run(store, '@cache.memoize(name="app.f")\ndef f(n):', "shapes.Pair(n, 2)", extra=", types=[shapes.Pair]",
                 setup="import shapes\noxicache.codec.revive_imported(False)")
    assert result == {"ran": 0, "value": "Pair(a=1, b=2)", "error": None, "modules": ["shapes"], "warnings": []}


def test_not_allowed_is_reported_with_the_fix_not_as_damage(store: tuple[str, Path]) -> None:
    write(store, "shapes.Pair(n, 2)")
    result = run(store, '@cache.memoize(name="app.f")\ndef f(n):', "shapes.Pair(n, 2)",
                 setup="import shapes\noxicache.codec.revive_imported(False)")
    assert result["ran"] == 1 and result["error"] is None
    [warning] = result["warnings"]
    assert "value of class shapes.Pair is not allowed; fix: memoize(types=[Pair]) or oxicache.codec.allow(Pair)" in warning
    assert "damaged" not in warning


def test_not_allowed_raises_its_own_error_under_raise(store: tuple[str, Path]) -> None:
    write(store, "shapes.Pair(n, 2)")
    result = run(store, '@cache.memoize(name="app.f")\ndef f(n):', "shapes.Pair(n, 2)", extra=", on_backend_error='raise'",
                 setup="import shapes\noxicache.codec.revive_imported(False)")
    assert result["error"].startswith("ValueNotAllowedError: value of class shapes.Pair is not allowed; fix:")


def test_a_module_the_reader_has_not_imported_is_never_imported(store: tuple[str, Path]) -> None:
    write(store)
    result = run(store, '@cache.memoize(name="app.f")\ndef f(n):', "{'x': n}")
    assert result["ran"] == 1 and result["modules"] == [] and result["value"] == "{'x': 1}"
    [warning] = result["warnings"]
    assert "value of class shapes." in warning and "is not allowed; fix:" in warning and "its module shapes is not imported" in warning


def test_a_class_with_a_finalizer_needs_allowing(store: tuple[str, Path]) -> None:
    """A revived object's __del__ would run on fields the record chose: such a class is not revived just
    because it is imported; the annotation allows it."""
    write(store, "shapes.Handle(7)")
    result = run(store, '@cache.memoize(name="app.f")\ndef f(n):', "shapes.Handle(7)", setup="import shapes")
    assert result["ran"] == 1 and "defines __del__" in result["warnings"][0]
    result = run(store, '@cache.memoize(name="app.f")\ndef f(n) -> shapes.Handle:', "shapes.Handle(7)", setup="import shapes")
    assert result["ran"] == 0 and result["warnings"] == []


# ---- in one process: validation and the annotation walk --------------------------------------------

class Shade(enum.Enum):
    DARK = 1


@dataclasses.dataclass
class Leaf:
    shade: Shade


class Row(NamedTuple):
    leaf: Leaf


@dataclasses.dataclass
class Box:
    rows: "list[Row]"


def test_annotation_walk_finds_nested_classes() -> None:
    def f() -> dict[str, tuple[Optional[Box], ...]]: ...
    def g() -> Annotated[Union[Leaf, int], "meta"]: ...
    def h() -> Leaf | None: ...
    assert set(annotated_classes(f)) == {Box, Row, Leaf, Shade}
    assert set(annotated_classes(g)) == {Leaf, Shade}
    assert set(annotated_classes(h)) == {Leaf, Shade}


def test_unresolved_annotations_never_raise_out_of_memoize(tmp_path: Path) -> None:
    cache = oxicache.JsonCache(tmp_path / "c")

    def plain(n: int):  # noqa: ANN202 - its return annotation is set below, where no checker resolves it
        return Leaf(Shade.DARK)

    plain.__annotations__["return"] = "list[NoSuchName] | Leaf"
    f = cache.memoize(plain)
    assert annotated_classes(plain) == []  # the whole string does not resolve: skipped
    assert f(1) == Leaf(Shade.DARK)


@pytest.mark.parametrize("bad", [int, "Leaf", Leaf(Shade.DARK)])
def test_types_must_be_plain_data_classes(tmp_path: Path, bad: object) -> None:
    cache = oxicache.JsonCache(tmp_path / "c")
    with pytest.raises(TypeError, match="types= takes dataclass, NamedTuple, Enum or pydantic model classes"):
        cache.memoize(types=[bad])(lambda n: n)
    with pytest.raises(TypeError, match="types= takes"):
        oxicache.JsonCache(tmp_path / "d", types=[bad])


def test_types_must_be_a_list(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"write types=\[Leaf\]"):
        oxicache.DiskCache(tmp_path / "c", types=Leaf)  # type: ignore[arg-type]


def test_not_allowed_error_keeps_the_decoding_error_family() -> None:
    assert issubclass(ValueNotAllowedError, ValueDecodingError)
    assert oxicache.codec.ValueNotAllowedError is ValueNotAllowedError


def test_placeholders_are_for_this_thread_and_this_block_only() -> None:
    """The CLI's export reads records of classes it does not revive as placeholders, to learn their
    function; no other thread, and nothing after the block, ever gets one."""
    import threading

    from oxicache import codec

    text = '[{"$namedtuple": "oxicache_no_such_module:Thing", "items": [1]}]'
    elsewhere: list[BaseException] = []

    def other_thread() -> None:
        try:
            codec.decode_json(text)
        except ValueNotAllowedError as err:
            elsewhere.append(err)

    with codec.unrevived_placeholders() as made:
        [value] = codec.decode_json(text)
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
    assert isinstance(value, codec.Unrevived) and value.type_name == "oxicache_no_such_module:Thing" and value.data == [1]
    assert made == ["oxicache_no_such_module:Thing"] and len(elsewhere) == 1
    with pytest.raises(ValueNotAllowedError):
        codec.decode_json(text)


def test_every_persistent_backend_and_batch_memoize_take_types(tmp_path: Path) -> None:
    makers = [lambda t: oxicache.DiskCache(tmp_path / "d", types=t), lambda t: oxicache.JsonCache(tmp_path / "j", types=t),
              lambda t: oxicache.DatabaseCache("sqlite", str(tmp_path / "s.db"), types=t),
              lambda t: oxicache.TieredCache(oxicache.InMemCache(ttl=5), oxicache.JsonCache(tmp_path / "b"), types=t)]
    for make in makers:
        with pytest.raises(TypeError, match="types= takes dataclass, NamedTuple, Enum or pydantic model classes; int"):
            make([int])
        cache = make([Row])
        assert cache.types == (Row,)
        with pytest.raises(TypeError, match="Widget is none of these"):
            cache.batch_memoize(types=[Widget])(lambda items: items)
        cache.close()


class Widget:
    pass
