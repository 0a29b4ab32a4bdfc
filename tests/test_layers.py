"""The layers talk through public names (the backend contract, docs/backends/writing-a-backend.md).

Read from the package's source (no import): a module never imports another module's private name, and
never touches a private member (``obj._name``) that the module itself does not define. A backend's
primitives (``_get``, ``_set``, ...) are called only by ``base.py``, which defines them; the memoize layer
reaches them through ``EngineView``, klstore and the CLI through the public methods. Each exception below is
named with its reason; a new one needs a reason too.
"""

from __future__ import annotations

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "python" / "oxicache"

# (module, attribute): why it may be read there though the module does not define it.
ALLOWED = {
    ("callsite.py", "_getframe"): "the standard library's sys._getframe",
    # DiskCache runs its statements inside diskcache's own transaction and SQLite connection, which diskcache
    # exposes only as these members (pinned by the diskcache version range in pyproject.toml).
    ("backends/disk.py", "_sql"): "diskcache.Cache's statement runner",
    ("backends/disk.py", "_con"): "diskcache.Cache's SQLite connection",
    ("backends/disk.py", "_disk"): "diskcache.Cache's Disk (value encoding)",
    ("backends/disk.py", "_transact"): "diskcache.Cache's transaction",
    # CacheEntry's hooks for the engines (rust/entry.rs): not part of CacheEntry's user-facing API.
    ("memo/engine.py", "_pin_key"): "CacheEntry's key pinned for a store's sharing rule",
    ("memo/engine.py", "_call_snapshot"): "CacheEntry's copy of a call's arguments taken before it runs",
}


def modules() -> list[tuple[str, ast.Module]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        found.append((path.relative_to(PACKAGE).as_posix(), ast.parse(path.read_text(encoding="utf-8"))))
    assert len(found) > 20, PACKAGE
    return found


def private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def defined_here(tree: ast.Module) -> set[str]:
    """Private names the module defines: functions, classes, methods, class attributes and ``self._x``."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.isidentifier():
            names.add(node.value)  # __slots__ entries
    return {n for n in names if private(n)}


def submodule(package: str, name: str) -> bool:
    base = PACKAGE.joinpath(*package.split(".")[1:])
    return (base / f"{name}.py").exists() or (base / name).is_dir()


def test_no_module_imports_another_modules_private_name() -> None:
    offences = []
    for rel, tree in modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    if private(alias.name) and not submodule(node.module, alias.name):
                        offences.append(f"{rel}:{node.lineno}: from {node.module} import {alias.name}")
    assert not offences, "private names imported across modules:\n" + "\n".join(offences)


def member_offences(rel: str, tree: ast.Module, used: set[tuple[str, str]]) -> list[str]:
    """``obj._name`` reads in one module where the module does not define ``_name`` (``used`` collects the
    ``ALLOWED`` exceptions met)."""
    own = defined_here(tree)
    offences = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Attribute) and private(node.attr)):
            continue
        owner = node.value
        if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
            continue
        if isinstance(owner, ast.Call) and isinstance(owner.func, ast.Name) and owner.func.id == "super":
            continue
        if node.attr in own:
            continue
        if (rel, node.attr) in ALLOWED:
            used.add((rel, node.attr))
            continue
        offences.append(f"{rel}:{node.lineno}: {ast.unparse(owner)}.{node.attr}")
    return offences


def test_no_module_touches_a_private_member_it_does_not_define() -> None:
    offences: list[str] = []
    used: set[tuple[str, str]] = set()
    for rel, tree in modules():
        offences += member_offences(rel, tree, used)
    assert not offences, "private members used outside the module that defines them:\n" + "\n".join(offences)
    assert used == set(ALLOWED), f"exceptions no longer needed (remove them): {sorted(set(ALLOWED) - used)}"


def test_the_check_finds_a_private_member_of_another_layer() -> None:
    """The rule itself: klstore calling a cache's primitive, as it did before the contract, is an offence;
    a class using its own private members is not."""
    outside = ast.parse("def lookup(cache, probe):\n    return cache._get(probe)\n")
    assert member_offences("klstore.py", outside, set()) == ["klstore.py:2: cache._get"]
    inside = ast.parse("class C:\n    def _get(self):\n        return 1\n\ndef f(c):\n    return c._get()\n")
    assert member_offences("c.py", inside, set()) == []
