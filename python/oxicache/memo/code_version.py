"""``memoize(version="auto")``: a version made from the function's code, so editing the function starts
fresh entries while unrelated edits to its module keep them.

Covered (docs/memoize.md, "Freshness"): the function's bytecode, constants (nested functions, lambdas
and comprehensions included) and the names it uses; and, recursively, the same for every function it
refers to by a global name that is defined in the same module (a memoized one through ``__wrapped__``),
and for functions it closes over. Each function counts once, so recursion and cycles end.

Not covered: line numbers and comments (editing them keeps the version), default values (they are in
every key already), the values of module globals other than functions, classes and their methods,
functions of other modules (a library upgrade keeps the version), methods called on objects
(``self.helper()``), and anything reached through ``getattr`` or dynamic dispatch. A new Python version
may compile the same source to other bytecode: the version then changes (misses, never wrong values).
"""

from __future__ import annotations

import types
from typing import Any, Callable

from oxicache.keys import canonical_bytes

__all__ = ["AUTO", "code_version"]

#: The ``version=`` value that asks for a code version.
AUTO = "auto"


def code_version(func: Callable[..., Any]) -> str:
    """``"code-"`` and 16 hex digits of BLAKE2b over the code ``func`` depends on in its module."""
    import inspect  # (version="auto" only)

    root = inspect.unwrap(func)
    if not isinstance(root, types.FunctionType):
        msg = (f"version='auto' fingerprints a Python function's code; {func!r} is a "
               f"{type(root).__name__}: give version= a str or int instead")
        raise TypeError(msg)
    parts: list[Any] = []
    _visit(root, root.__globals__, set(), parts)
    import hashlib  # here: only version="auto" needs it (it brings OpenSSL's module)

    digest = hashlib.blake2b(canonical_bytes(tuple(parts), shared=True), digest_size=8).hexdigest()
    return f"code-{digest}"


def _visit(func: types.FunctionType, module: dict[str, Any], seen: set[int], parts: list[Any]) -> None:
    """Appends ``func``'s code and, once each, that of the same-module functions it refers to."""
    seen.add(id(func))
    parts.append((func.__qualname__, _code_parts(func.__code__)))
    for name in _global_names(func.__code__):
        target = _same_module_function(module.get(name), module)
        if target is not None and id(target) not in seen:
            _visit(target, module, seen, parts)
    for cell in func.__closure__ or ():
        try:
            value = cell.cell_contents
        except ValueError:  # an empty cell (the function's own name while it is being defined)
            continue
        target = _same_module_function(value, module)
        if target is not None and id(target) not in seen:
            _visit(target, module, seen, parts)


def _same_module_function(value: Any, module: dict[str, Any]) -> types.FunctionType | None:
    """The Python function behind ``value`` (a memoized one unwrapped) if it belongs to ``module``."""
    if value is None or isinstance(value, type):
        return None
    import inspect  # (version="auto" only; imported by code_version() already)

    try:
        inner = inspect.unwrap(value) if callable(value) else None
    except ValueError:  # a __wrapped__ cycle
        return None
    if isinstance(inner, types.FunctionType) and inner.__globals__ is module:
        return inner
    return None


def _global_names(code: types.CodeType) -> list[str]:
    """The names ``code`` (and code nested in it) may load as globals, in order."""
    names = list(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names.extend(_global_names(const))
    return names


def _code_parts(code: types.CodeType) -> tuple[Any, ...]:
    """Bytecode, constants (nested code recursively), names and variable names; no line numbers."""
    consts = tuple(_code_parts(c) if isinstance(c, types.CodeType) else c for c in code.co_consts)
    return (code.co_code, consts, code.co_names, code.co_varnames, code.co_freevars)
