"""Turning a decorated callable into what key building needs: its identity and its parameters."""

from __future__ import annotations

import itertools
import os
import types
from typing import Any, Callable

from oxicache.errors import KeyEncodingError
from oxicache.keys import canonical_bytes, function_identity
from oxicache.memo.exclude import validate_exclude  # (re-exported: its home before memo/exclude.py)

__all__ = ["ParamSpec", "memo_identity", "param_specs", "validate_exclude"]

# (name, kind as int, has_default, default): the form the native Memoizer takes.
ParamSpec = tuple[str, int, bool, Any]

_local_counter = itertools.count(1)


def memo_identity(func: Callable[..., Any], name: str | None, *, shared: bool = False) -> tuple[str | ClosureIdentity, bool]:
    """The function identity stored in ``CacheEntry.func``, and whether it is this decoration's alone
    (a local function's ``#n`` on a process-private store: its entries die with the memoized function).
    On a shared store a local function's identity is a ``ClosureIdentity``: the values it closes over can
    change after decoration, so its identity is recomputed from them at each call.

    ``name`` wins when given. Otherwise ``module.qualname``. Functions defined inside another function
    (``<locals>``) and lambdas can share a qualname while computing different things (two closures from
    one factory), so they get a suffix:

    - ``shared=False`` (a store private to this process, ``InMemCache``): ``#n``, unique per decoration;
    - ``shared=True`` (a store other processes read: the persistent backends, callbacks): ``#`` and a
      fingerprint of the function's code and of the values it closes over (``_fingerprint``), so the same
      closure decorated in another process or a later run finds its entries, and a closure over other
      values never does. A per-decoration counter would depend on decoration order, and another
      process's ``make(3)`` could read the entries of this one's ``make(2)``. When a closed-over value has
      no canonical key (a lock, a client object, a class only this process can name), there is no
      fingerprint: the suffix is then ``#n.`` and a token of this process, so its entries are never found
      by another process (correct, but not shared; ``name=`` shares them).
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
    return ClosureIdentity(func, identity), False


class ClosureIdentity:
    """The identity of a local function on a shared store, looked at on every call (``current()``),
    since cells can be filled or reassigned after decoration (a variable assigned after the nested
    ``def``):

    - when every value it closes over is immutable data (numbers, strings, tuples of them, enum members,
      dates, module-level functions and classes, modules), ``qualname#fingerprint`` of its code and of
      those values: the same closure in another process or a later run finds its entries, a closure over
      other values never does;
    - otherwise (a list, a dict, an object, a lock: something that can change while it stays the same
      object, or that has no key) nothing says whether two such closures compute the same thing, so the
      identity is this decoration's own (``#n.`` and a token of this process): its entries are never
      shared with another closure or process (``name=`` shares them, at the caller's word).

    The decision is reused while every cell holds the same objects as at the last call (the values it
    rests on cannot change without a cell changing, except inside a closed-over local function, whose
    cells are looked at again every time)."""

    def __init__(self, func: Callable[..., Any], base: str) -> None:
        self.func, self.base = func, base
        self.fallback = f"{base}#{next(_local_counter)}.{_process_token()}"  # when there is no fingerprint
        self._seen: tuple[Any, ...] | None = None
        self._name = ""

    def current(self) -> str:
        contents = tuple(_cell_value(c) for c in getattr(self.func, "__closure__", None) or ())
        seen = self._seen
        if seen is not None and len(seen) == len(contents) and all(a is b for a, b in zip(seen, contents)):
            return self._name
        try:
            name = f"{self.base}#{_fingerprint(self.func)}"
        except KeyEncodingError:
            name = self.fallback
        self._seen = None if any(_is_local_function(v) for v in contents) else contents
        self._name = name
        return name


_EMPTY_CELL: Any = object()


def _cell_value(cell: Any) -> Any:
    try:
        return cell.cell_contents
    except ValueError:  # an empty cell (a variable not assigned yet)
        return _EMPTY_CELL


def _is_local_function(value: Any) -> bool:
    return isinstance(value, types.FunctionType) and ("<locals>" in value.__qualname__ or "<lambda>" in value.__qualname__)


_SCALARS = (int, float, str, bytes, bool, complex, type(None), type(...))


def _immutable_data(value: Any) -> bool:
    """True for values that cannot change while they stay the same object, and have a key: what a
    closure's fingerprint may rest on (a class is a name here, like a module-level function)."""
    if type(value) in _SCALARS or isinstance(value, type):
        return True
    if type(value) in (tuple, frozenset):
        return all(_immutable_data(v) for v in value)
    return isinstance(value, _immutable_types())


def _immutable_types() -> tuple[type, ...]:
    import datetime
    import decimal
    import enum
    import pathlib
    import uuid

    return (enum.Enum, datetime.date, datetime.time, datetime.timedelta, decimal.Decimal, uuid.UUID, pathlib.PurePath)


_token: tuple[int, str] = (0, "")


def _process_token() -> str:
    """A random token of this process (renewed in a forked child, whose decorations are its own)."""
    global _token
    if _token[0] != os.getpid():
        import secrets  # here: most programs never key a closure (secrets brings hmac and OpenSSL)

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
    blob = canonical_bytes((_code_parts(code), tuple(cells)), shared=True)
    import hashlib  # here, as secrets above

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
        if "<locals>" not in stable and "<lambda>" not in stable:
            return ("memoized", stable)
        wrapped = getattr(value, "__wrapped__", None)  # a process-private name: look at the function itself
        if isinstance(wrapped, types.FunctionType):
            return _closed_over(name, wrapped, seen)
        msg = f"closed-over {name!r} is a memoized local function without a shareable identity"
        raise KeyEncodingError(msg)
    if not _immutable_data(value):
        msg = f"closed-over {name!r} of type {type(value).__qualname__} can change (or has no key)"
        raise KeyEncodingError(msg)
    try:
        canonical_bytes(value, shared=True)  # a class only this process can name has no fingerprint
    except KeyEncodingError as err:
        msg = f"closed-over {name!r} of type {type(value).__qualname__} has no key"
        raise KeyEncodingError(msg) from err
    return ("value", value)


# inspect.Parameter's kinds, as ints (the native binder's form).
POSITIONAL_ONLY, POSITIONAL_OR_KEYWORD, VAR_POSITIONAL, KEYWORD_ONLY, VAR_KEYWORD = range(5)
# Code flags (inspect.CO_*; the same values in every CPython this supports).
CO_VARARGS, CO_VARKEYWORDS, CO_GENERATOR, CO_COROUTINE, CO_ASYNC_GENERATOR = 0x4, 0x8, 0x20, 0x80, 0x200


def plain_function(func: object) -> bool:
    """Whether ``func`` is a function whose code object alone gives its signature and kind: what
    ``inspect`` would read from it, with nothing that makes inspect look elsewhere (a ``__wrapped__`` chain,
    a ``__signature__``, a text signature, a partial method, a coroutine mark). For those, ``param_specs``
    and ``function_kind`` need not import inspect (about 10 ms of a short script's start, with the ast, dis
    and tokenize it imports). Annotations play no part in either, and are not read."""
    if type(func) is not types.FunctionType:
        return False
    own = func.__dict__
    return not (own and any(name in own for name in _INSPECT_LOOKS_AT))


_INSPECT_LOOKS_AT = ("__wrapped__", "__signature__", "__text_signature__", "_partialmethod", "__partialmethod__",
                     "_is_coroutine_marker")


def param_specs(func: Callable[..., Any]) -> list[ParamSpec]:
    """``(name, kind, has_default, default)`` of each parameter, as ``inspect.signature`` gives them."""
    if plain_function(func):
        return _code_specs(func)  # type: ignore[arg-type]
    import inspect

    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError) as err:
        msg = f"cannot memoize {func!r}: its signature is not introspectable ({err}); wrap it in a def"
        raise TypeError(msg) from err
    return [
        (p.name, int(p.kind), p.default is not inspect.Parameter.empty, None if p.default is inspect.Parameter.empty else p.default)
        for p in sig.parameters.values()
    ]


def _code_specs(func: types.FunctionType) -> list[ParamSpec]:
    """A plain function's parameters from its code object and defaults, read as inspect's
    ``_signature_from_function`` reads them (tests/test_signature_fast_path.py compares the two)."""
    code = func.__code__
    names, positional, keyword_only = code.co_varnames, code.co_argcount, code.co_kwonlyargcount
    defaults = func.__defaults__ or ()
    kwdefaults = func.__kwdefaults__ or {}
    first_default = positional - len(defaults)
    specs: list[ParamSpec] = []
    for i in range(positional):
        kind = POSITIONAL_ONLY if i < code.co_posonlyargcount else POSITIONAL_OR_KEYWORD
        has = i >= first_default
        specs.append((names[i], kind, has, defaults[i - first_default] if has else None))
    extra = positional + keyword_only  # *args and **kwargs are named after the keyword-only parameters
    if code.co_flags & CO_VARARGS:
        specs.append((names[extra], VAR_POSITIONAL, False, None))
        extra += 1
    for name in names[positional:positional + keyword_only]:
        specs.append((name, KEYWORD_ONLY, name in kwdefaults, kwdefaults.get(name)))
    if code.co_flags & CO_VARKEYWORDS:
        specs.append((names[extra], VAR_KEYWORD, False, None))
    return specs


