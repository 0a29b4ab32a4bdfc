"""Turning a decorated callable into what key building needs: its identity and its parameters."""

from __future__ import annotations

import hashlib
import inspect
import itertools
import os
import secrets
import types
from typing import Any, Callable, Iterable

from oxicache.errors import KeyEncodingError
from oxicache.keys import canonical_bytes, function_identity

__all__ = ["ParamSpec", "bind_inputs", "memo_identity", "param_specs", "validate_exclude"]

# (name, kind as int, has_default, default): the form the native Memoizer takes.
ParamSpec = tuple[str, int, bool, Any]

_local_counter = itertools.count(1)


def memo_identity(func: Callable[..., Any], name: str | None, *, shared: bool = False) -> tuple[str, bool]:
    """The function identity stored in ``CacheEntry.func``, and whether it is this decoration's alone
    (a local function's ``#n`` on a process-private store: its entries die with the memoized function).

    ``name`` wins when given. Otherwise ``module.qualname``. Functions defined inside another function
    (``<locals>``) and lambdas can share a qualname while computing different things (two closures from
    one factory), so they get a suffix:

    - ``shared=False`` (a store private to this process, ``InMemCache``): ``#n``, unique per decoration;
    - ``shared=True`` (a store other processes read: the persistent backends, callbacks): ``#`` and a
      fingerprint of the function's code and of the values it closes over (``_fingerprint``), so the same
      closure decorated in another process or a later run finds its entries, and a closure over other
      values never does. A per-decoration counter would depend on decoration order, and another
      process's ``make(3)`` could read the entries of this one's ``make(2)``. When a closed-over value has
      no canonical key (a lock, a client object), there is no fingerprint: the suffix is then ``#n.`` and
      a token of this process, so its entries are never found by another process (correct, but not
      shared; ``name=`` shares them).
    """
    if name is not None:
        if not isinstance(name, str) or not name:
            msg = f"name must be a non-empty str, got {name!r}"
            raise TypeError(msg)
        return name, False
    identity = function_identity(func)
    if "<locals>" not in identity and "<lambda>" not in identity:
        return identity, False
    if not shared:
        return f"{identity}#{next(_local_counter)}", True
    try:
        return f"{identity}#{_fingerprint(func)}", False
    except KeyEncodingError:
        return f"{identity}#{next(_local_counter)}.{_process_token()}", False


_token: tuple[int, str] = (0, "")


def _process_token() -> str:
    """A random token of this process (renewed in a forked child, whose decorations are its own)."""
    global _token
    if _token[0] != os.getpid():
        _token = (os.getpid(), secrets.token_hex(6))
    return _token[1]


def _fingerprint(func: Callable[..., Any], seen: frozenset[int] = frozenset()) -> str:
    """16 hex digits of BLAKE2b over the canonical bytes of the function's code and closure values.

    The code part is the bytecode, constants (nested code objects recursively) and names, not line
    numbers: editing other lines keeps the identity, editing the function changes it (as may a new
    Python version's bytecode; its entries are then misses, never wrong). Defaults are not included:
    they are applied to the inputs, so they are in every key already.
    """
    code = getattr(func, "__code__", None)
    if code is None:
        msg = f"{func!r} has no __code__"
        raise KeyEncodingError(msg)
    seen = seen | {id(func)}
    cells = []
    for index, cell in enumerate(getattr(func, "__closure__", None) or ()):
        try:
            value = cell.cell_contents
        except ValueError:  # an empty cell, e.g. the function's own name while it is being decorated
            cells.append(("<empty>",))
            continue
        cells.append(_closed_over(code.co_freevars[index], value, seen))
    blob = canonical_bytes((_code_parts(code), tuple(cells)))
    return hashlib.blake2b(blob, digest_size=8).hexdigest()


def _code_parts(code: types.CodeType) -> tuple[Any, ...]:
    consts = tuple(_code_parts(c) if isinstance(c, types.CodeType) else c for c in code.co_consts)
    return (code.co_code, consts, code.co_names, code.co_varnames, code.co_freevars)


def _closed_over(name: str, value: Any, seen: frozenset[int]) -> tuple[Any, ...]:
    """A closed-over value as encodable data: its key encoding, or for functions and modules their code
    fingerprint or name (a helper function is part of the computation, not data)."""
    if isinstance(value, types.FunctionType):
        local = "<locals>" in value.__qualname__ or "<lambda>" in value.__qualname__
        inner = _fingerprint(value, seen) if local and id(value) not in seen else ""  # recursion: named once
        return ("function", function_identity(value), inner)
    if isinstance(value, types.ModuleType):
        return ("module", value.__name__)
    if isinstance(value, types.BuiltinFunctionType):
        return ("builtin", f"{getattr(value, '__module__', '')}.{value.__qualname__}")
    stable = getattr(value, "cache_name", None)  # another memoized function: its cache identity
    if isinstance(stable, str) and callable(value):
        return ("memoized", stable)
    try:
        canonical_bytes(value)
    except KeyEncodingError as err:
        msg = f"closed-over {name!r} of type {type(value).__qualname__} has no key"
        raise KeyEncodingError(msg) from err
    return ("value", value)


def param_specs(func: Callable[..., Any]) -> tuple[inspect.Signature, list[ParamSpec]]:
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError) as err:
        msg = f"cannot memoize {func!r}: its signature is not introspectable ({err}); wrap it in a def"
        raise TypeError(msg) from err
    specs = [
        (p.name, int(p.kind), p.default is not inspect.Parameter.empty, None if p.default is inspect.Parameter.empty else p.default)
        for p in sig.parameters.values()
    ]
    return sig, specs


def validate_exclude(exclude: Iterable[str] | None, what: str = "exclude") -> frozenset[str]:
    if exclude is None:
        return frozenset()
    if isinstance(exclude, str):
        msg = f"{what} must be a list of parameter names, got the string {exclude!r}; write [{exclude!r}]"
        raise TypeError(msg)
    names = frozenset(exclude)
    bad = [n for n in names if not isinstance(n, str)]
    if bad:
        msg = f"{what} must contain parameter names (str), got {bad[0]!r}"
        raise TypeError(msg)
    return names


def bind_inputs(sig: inspect.Signature, args: tuple[Any, ...], kwargs: dict[str, Any], exclude: frozenset[str]) -> dict[str, Any]:
    """The call's arguments by parameter name, defaults applied, excluded names removed."""
    bound = sig.bind(*args, **kwargs)
    bound.apply_defaults()
    return {k: v for k, v in bound.arguments.items() if k not in exclude}
