"""Turning a decorated callable into what key building needs: its identity and its parameters."""

from __future__ import annotations

import inspect
import itertools
from typing import Any, Callable, Iterable

from oxicache.keys import function_identity

__all__ = ["ParamSpec", "bind_inputs", "memo_identity", "param_specs", "validate_exclude"]

# (name, kind as int, has_default, default): the form the native Memoizer takes.
ParamSpec = tuple[str, int, bool, Any]

_local_counter = itertools.count(1)


def memo_identity(func: Callable[..., Any], name: str | None) -> str:
    """The function identity stored in ``CacheEntry.func``.

    ``name`` wins when given. Otherwise ``module.qualname``; for functions defined inside another function
    (``<locals>``) or lambdas, two definitions can share a qualname while computing different things (two
    closures from one factory), so each decoration gets its own ``#n`` suffix. Give ``name=`` to share or
    persist such a function's entries.
    """
    if name is not None:
        if not isinstance(name, str) or not name:
            msg = f"name must be a non-empty str, got {name!r}"
            raise TypeError(msg)
        return name
    identity = function_identity(func)
    if "<locals>" in identity or "<lambda>" in identity:
        identity = f"{identity}#{next(_local_counter)}"
    return identity


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
