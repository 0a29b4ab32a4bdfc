"""The classes a memoized function's results may hold, allowed for decoding once, at decoration.

A new process reading a stored dataclass must revive it before this process has stored one (docs/value-codec.md):
the classes named in the function's return annotation (inside ``list[...]``, ``dict[...]``, ``Optional``,
unions, ``Annotated``, string annotations, and the fields of the classes found) and those of ``types=`` join
the codec's allow-list here. Reading annotations never raises out of memoize: a name that does not resolve is
skipped (its class is then revived only if already imported, or once allowed).
"""

from __future__ import annotations

import enum
import sys
import typing
from collections.abc import Callable, Iterable
from typing import Any

from oxicache._core import allow_type
from oxicache.codec import allow_types, is_plain_data_class

__all__ = ["allow_result_types", "annotated_classes"]

_MAX_SEEN = 500  # annotations are small; a bound keeps a pathological one from slowing decoration


def allow_result_types(func: Callable[..., Any], types: Iterable[type] | None) -> None:
    """Allows ``types`` (validated: ``TypeError`` naming a class that is not plain data) and the classes of
    ``func``'s return annotation (silently skipping any the codec cannot store)."""
    allow_types(types)
    for cls in annotated_classes(func):
        try:
            allow_type(cls)
        except (TypeError, ValueError):
            continue  # e.g. a class made inside a function: not storable, so nothing to revive


def annotated_classes(func: Callable[..., Any]) -> list[type]:
    """The plain-data classes named in ``func``'s return annotation, nested ones and field types included."""
    try:
        target = getattr(func, "__wrapped__", func)
        annotations = _annotations(target)
        if not isinstance(annotations, dict) or "return" not in annotations:
            return []
        namespace = getattr(target, "__globals__", {})
        found: list[type] = []
        _walk(annotations["return"], namespace, found, {})
        return found
    except Exception:  # noqa: BLE001 - an annotation is a hint; memoize must work whatever it holds
        return []


def _annotations(target: Any) -> Any:
    """The function's annotations; on Python 3.14, where they are evaluated lazily and a name defined later
    would raise, unresolved names come back as forward references."""
    try:
        return getattr(target, "__annotations__", None)
    except NameError:
        annotationlib: Any = sys.modules.get("annotationlib") or __import__("annotationlib")
        return annotationlib.get_annotations(target, format=annotationlib.Format.FORWARDREF)


def _resolve(text: str, namespace: dict[str, Any]) -> Any:
    """A string annotation evaluated as typing does (the function's own code, not stored data); None when
    a name does not resolve."""
    try:
        return eval(text, dict(namespace))  # noqa: S307 - the user's own annotation text
    except Exception:  # noqa: BLE001 - unresolved or invalid: skipped
        return None


def _walk(hint: Any, namespace: dict[str, Any], found: list[type], seen: dict[int, Any]) -> None:
    if hint is None or id(hint) in seen or len(seen) > _MAX_SEEN:
        return
    seen[id(hint)] = hint  # kept alive, so a freed temporary's id is never mistaken for it
    if isinstance(hint, str):
        _walk(_resolve(hint, namespace), namespace, found, seen)
        return
    if isinstance(hint, typing.ForwardRef):
        _walk(_resolve(hint.__forward_arg__, namespace), namespace, found, seen)
        return
    if isinstance(hint, enum.Enum):  # Literal[Color.RED]
        _walk(type(hint), namespace, found, seen)
        return
    value = getattr(hint, "__value__", None)  # a `type X = ...` alias (3.12)
    if value is not None and type(hint).__name__ == "TypeAliasType":
        _walk(value, namespace, found, seen)
        return
    if isinstance(hint, type) and is_plain_data_class(hint):
        found.append(hint)
        _walk_fields(hint, found, seen)
        return
    args = typing.get_args(hint)
    if typing.get_origin(hint) is typing.Annotated:
        args = args[:1]
    for arg in args:
        _walk(arg, namespace, found, seen)


def _walk_fields(cls: type, found: list[type], seen: dict[int, Any]) -> None:
    """The annotated fields of a dataclass, NamedTuple or pydantic model, resolved in its own module."""
    module = sys.modules.get(cls.__module__)
    namespace = dict(vars(module)) if module is not None else {}
    for base in reversed(cls.__mro__):
        own = vars(base).get("__annotations__")
        if isinstance(own, dict):
            for hint in own.values():
                _walk(hint, namespace, found, seen)
