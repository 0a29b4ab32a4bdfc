"""R12 of the reliability matrix: function identity, on every storing backend.

Distinct functions never read each other's entries: same-named functions in two real modules (written
to tmp_path and imported), two closures from one factory, ``A.m``/``B.m``, lambdas; ``functools.partial``
gets a clear error asking for ``name=``. The same function re-imported in a new process hits on every
persistent backend.

The documented rule for local functions and lambdas (docs/memoize.md, "Function identity"): on
``InMemCache`` each decoration gets its own ``#n``; on the backends other processes read, the suffix is a
fingerprint of the code and the closed-over values, so closures are found again by a later process when
(and only when) they close over the same values; a closure over a value without a key (a lock) keeps
process-private entries. Before this rule the suffix was a per-process decoration counter on every
backend: a second process that built ``make(3)`` first got ``#1`` and read ``make(2)``'s entries
(``test_closures_across_processes`` is the regression test).

Adaptation: the new process is a ``subprocess`` interpreter (a fresh import of the module, as a later
run would do) rather than a multiprocessing child, so nothing is inherited from the parent.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from backends import PERSISTENT, SPECS, STORING, make

MODULE_SOURCE = '''
import os
import threading

MARKER = {marker!r}


def mark(what):
    with open(MARKER, "a", encoding="utf-8") as fh:
        fh.write(f"{{os.getpid()}} {{what}}\\n")


def work(x):
    mark(f"work {{x}}")
    return [__name__, x]


def make(k):
    def mul(x):
        mark(f"mul {{k}} {{x}}")
        return k * x

    return mul


def make_locked(k):
    lock = threading.Lock()

    def locked(x):
        with lock:
            mark(f"locked {{k}} {{x}}")
            return k * x

    return locked
'''


def write_module(folder: Path, marker: Path) -> str:
    name = f"r12_mod_{uuid.uuid4().hex[:10]}"
    (folder / f"{name}.py").write_text(MODULE_SOURCE.format(marker=str(marker)), encoding="utf-8")
    return name


def import_from(folder: Path, name: str) -> ModuleType:
    sys.path.insert(0, str(folder))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(folder))


def marks(marker: Path) -> list[tuple[int, str]]:
    if not marker.exists():
        return []
    return [(int(pid), what) for pid, what in (line.split(" ", 1) for line in marker.read_text().splitlines())]


@pytest.fixture(params=STORING)
def cache(request: pytest.FixtureRequest) -> Any:
    c = make(request.param)
    yield c
    c.close()


# ------------------------------------------------------------------------------ within one process


def test_same_named_functions_in_two_modules(cache: Any, tmp_path: Path) -> None:
    marker = tmp_path / "marks.txt"
    mod_a = import_from(tmp_path, write_module(tmp_path, marker))
    mod_b = import_from(tmp_path, write_module(tmp_path, marker))
    work_a, work_b = cache.memoize(mod_a.work), cache.memoize(mod_b.work)
    assert work_a.cache_name == f"{mod_a.__name__}.work" != work_b.cache_name
    assert work_a(1) == [mod_a.__name__, 1]
    assert work_b(1) == [mod_b.__name__, 1]
    assert work_a(1) == [mod_a.__name__, 1] and work_b(1) == [mod_b.__name__, 1]
    assert len(marks(marker)) == 2 and len(cache) == 2


RUNS: list[int] = []  # a global, not a closed-over list: closed-over values are part of the identity


def test_two_closures_from_one_factory(cache: Any) -> None:
    RUNS.clear()
    runs = RUNS

    def make_mul(k: int) -> Any:
        @cache.memoize
        def mul(x: int) -> int:
            RUNS.append(k)
            return k * x

        return mul

    double, triple = make_mul(2), make_mul(3)
    assert double.cache_name != triple.cache_name
    assert (double(5), triple(5), double(5), triple(5)) == (10, 15, 10, 15)
    assert runs == [2, 3]
    again = make_mul(2)  # the same closure decorated again
    assert again(5) == 10
    if getattr(cache, "_native_store", None) is None:
        assert again.cache_name == double.cache_name and runs == [2, 3]  # same code, same values: shared
    else:
        assert again.cache_name != double.cache_name and runs == [2, 3, 2]  # in-process: one per decoration


def test_same_method_name_in_two_classes(cache: Any) -> None:
    class A:
        @cache.memoize(exclude=["self"])
        def m(self, x: int) -> str:
            return f"A{x}"

    class B:
        @cache.memoize(exclude=["self"])
        def m(self, x: int) -> str:
            return f"B{x}"

    assert ".<locals>.A.m#" in A.m.cache_name and ".<locals>.B.m#" in B.m.cache_name
    assert (A().m(1), B().m(1), A().m(1), B().m(1)) == ("A1", "B1", "A1", "B1")
    assert A.m.cache_info().hits == B.m.cache_info().hits == 1


def test_lambdas(cache: Any) -> None:
    square = cache.memoize(lambda x: x * x)
    cube = cache.memoize(lambda x: x * x * x)
    assert "<lambda>#" in square.cache_name and square.cache_name != cube.cache_name
    assert (square(3), cube(3), square(3), cube(3)) == (9, 27, 9, 27)


def test_partial_needs_a_name(cache: Any) -> None:
    def add(a: int, b: int) -> int:
        return a + b

    with pytest.raises(TypeError, match=r"name="):
        cache.memoize(functools.partial(add, 1))
    add_one = cache.memoize(name="r12.add_one")(functools.partial(add, 1))
    add_two = cache.memoize(name="r12.add_two")(functools.partial(add, 2))
    assert (add_one(2), add_two(2), add_one(b=2)) == (3, 4, 3)


# ------------------------------------------------------------------------------ across processes

CHILD = r"""
import importlib, json, sys, warnings
spec, folder, name = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
sys.path.insert(0, folder)
import oxicache
# Closures on a shared store warn once how their identity is made (by design); any other warning fails.
warnings.simplefilter("ignore", oxicache.IdentityWarning)
cls_name, args, kwargs = spec
cache = getattr(oxicache, cls_name)(*args, **kwargs)
mod = importlib.import_module(name)
triple = cache.memoize(mod.make(3))   # the other order than the parent's
double = cache.memoize(mod.make(2))
work = cache.memoize(mod.work)
locked = cache.memoize(mod.make_locked(2))
out = {"work": work(1), "triple": triple(5), "double": double(5), "locked": locked(5),
       "names": [triple.cache_name, double.cache_name, work.cache_name]}
cache.close()
print(json.dumps(out))
"""


def test_closures_across_processes(tmp_path: Path) -> None:
    """On every persistent backend (children run at once): the re-imported function and the re-built
    closures hit in a new process, whatever the order in which it decorates them; a closure over a lock
    (no key) recomputes there, and nothing reads another function's entry."""
    import oxicache

    marker = tmp_path / "marks.txt"
    name = write_module(tmp_path, marker)
    mod = import_from(tmp_path, name)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(oxicache.__file__).resolve().parent.parent),
                                                        *filter(None, [os.environ.get("PYTHONPATH")])]))
    children, names = {}, None
    try:
        for backend in PERSISTENT:
            cache = make(backend)  # skips (or fails under OXICACHE_REQUIRE_SERVERS=1) without its server
            double, triple = cache.memoize(mod.make(2)), cache.memoize(mod.make(3))
            work, locked = cache.memoize(mod.work), cache.memoize(mod.make_locked(2))
            assert (work(1), double(5), triple(5), locked(5)) == ([name, 1], 10, 15, 10)
            names = [triple.cache_name, double.cache_name, work.cache_name]
            cache.close()
            children[backend] = subprocess.Popen(
                [sys.executable, "-c", CHILD, json.dumps(SPECS[id(cache)]), str(tmp_path), name],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for backend, proc in children.items():
            try:
                out, err = proc.communicate(timeout=120)  # generous: only catches a hang
            except subprocess.TimeoutExpired:
                proc.kill()
                raise
            assert proc.returncode == 0, f"{backend}: {err}"
            assert "Warning" not in err, f"{backend}: {err}"
            got = json.loads(out)
            assert (got["work"], got["triple"], got["double"], got["locked"]) == ([name, 1], 15, 10, 10), backend
            assert got["names"] == names, backend  # identities do not depend on decoration order
    finally:  # children already started when a later backend skips (no server) or an assertion fails
        for proc in children.values():
            if proc.returncode is None:
                proc.kill()
                proc.communicate()
    by_child: dict[int, list[str]] = {}
    for pid, what in marks(marker):
        if pid != os.getpid():
            by_child.setdefault(pid, []).append(what)
    assert sorted(by_child.values()) == [["locked 2 5"]] * len(children), (
        f"the new processes recomputed {by_child} (only the lock closure should)")
