"""Light run-time stand-ins for the two pieces of ``typing`` and ``dataclasses`` that the modules loaded by
``import oxicache`` use when they run, so that the import loads neither ``typing`` (with ``re``) nor
``dataclasses`` (with ``inspect``, ``ast``, ``dis`` and ``tokenize``): together about half of the import's
time (issue 15 item 4; docs/benchmarks.md). Type checkers see the real ones, imported under
``if TYPE_CHECKING:`` where these are used.

Modules that must stay light write ``TYPE_CHECKING = False`` rather than import it from ``typing``;
checkers treat any ``TYPE_CHECKING`` as true.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, TypeVar

    C = TypeVar("C", bound=type)

__all__ = ["dataclass", "overload"]


def overload(func: Callable[..., Any]) -> Callable[..., Any]:
    """``typing.overload`` at run time. The overloads matter only to type checkers: each is replaced by
    the implementation defined after it. (Unlike typing's, it records nothing for
    ``typing.get_overloads``.)"""
    return func


def dataclass(*, frozen: bool) -> Callable[[C], C]:
    """``dataclasses.dataclass(frozen=True)`` for a class of plain fields (``Capabilities``, the memoize
    engine's options), built without importing ``dataclasses``: annotated names, each with a plain default
    or none (those first), no ``field()`` and no ``ClassVar``. Only the frozen form exists."""
    if not frozen:
        msg = "oxicache._light.dataclass makes frozen dataclasses only: write dataclass(frozen=True)"
        raise TypeError(msg)
    return _frozen_dataclass


def _frozen_dataclass(cls: C) -> C:
    """Gives ``cls`` what ``dataclasses.dataclass(frozen=True)`` would.

    The class gets what the real decorator gives it: ``__init__`` with the fields as parameters in order
    (the same signature), ``__repr__``, ``__eq__`` and ``__hash__`` over the fields' tuple, assignment and
    deletion refused with ``dataclasses.FrozenInstanceError``, ``__match_args__`` and ``__replace__``. Its
    ``__dataclass_fields__`` and ``__dataclass_params__`` are made by the real decorator when first read,
    so ``dataclasses.fields``, ``replace``, ``asdict`` and ``is_dataclass`` work on it as on a dataclass.
    tests/test_light.py compares the two decorators' classes.
    """
    names = tuple(cls.__dict__.get("__annotations__", {}))
    defaults = {n: cls.__dict__[n] for n in names if n in cls.__dict__}
    required = [n for n in names if n not in defaults]
    if names[:len(required)] != tuple(required):
        late = next(n for n in required if names.index(n) >= len(required))
        msg = f"non-default argument {late!r} follows default argument"  # dataclasses' own words
        raise TypeError(msg)
    record: type = cls
    annotations = dict(cls.__dict__.get("__annotations__", {}))

    # The same __init__ as dataclasses generates: named parameters, so help() and inspect show them.
    params = ", ".join(f"{n}=__default_{n}" if n in defaults else n for n in names)
    body = "".join(f"\n    __setattr(self, {n!r}, {n})" for n in names) or "\n    pass"
    namespace: dict[str, Any] = {f"__default_{n}": v for n, v in defaults.items()}
    namespace["__setattr"] = object.__setattr__
    exec(f"def __init__(self, {params}):{body}", namespace)  # noqa: S102 (our own field names only)
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__annotations__ = {**annotations, "return": None}

    def values(self: Any) -> tuple[Any, ...]:
        return tuple(getattr(self, n) for n in names)

    def __repr__(self: Any) -> str:
        shown = ", ".join(f"{n}={getattr(self, n)!r}" for n in names)
        return f"{self.__class__.__qualname__}({shown})"

    def __eq__(self: Any, other: object) -> bool:
        if other.__class__ is self.__class__:
            return values(self) == values(other)
        return NotImplemented

    def __hash__(self: Any) -> int:
        return hash(values(self))

    def __setattr__(self: Any, name: str, value: object) -> None:
        if type(self) is cls or name in names:
            from dataclasses import FrozenInstanceError

            raise FrozenInstanceError(f"cannot assign to field {name!r}")
        super(record, self).__setattr__(name, value)  # type: ignore[arg-type]

    def __delattr__(self: Any, name: str) -> None:
        if type(self) is cls or name in names:
            from dataclasses import FrozenInstanceError

            raise FrozenInstanceError(f"cannot delete field {name!r}")
        super(record, self).__delattr__(name)  # type: ignore[arg-type]

    def __replace__(self: Any, **changes: Any) -> Any:  # copy.replace (Python 3.13 gives dataclasses one)
        import dataclasses

        return dataclasses.replace(self, **changes)

    for method in (init, __repr__, __eq__, __hash__, __setattr__, __delattr__, __replace__):
        method.__qualname__ = f"{cls.__qualname__}.{method.__name__}"
        method.__module__ = cls.__module__  # as the real decorator's, made in the class's module
        setattr(cls, method.__name__, method)
    setattr(cls, "__match_args__", names)

    class DataclassRecord:
        """Made on first read: the fields and parameters the real decorator gives a copy of the class."""

        def __init__(self, attr: str) -> None:
            self.attr = attr

        def __get__(self, obj: object, owner: type | None = None) -> Any:
            import dataclasses

            body = {**defaults, "__annotations__": annotations, "__module__": cls.__module__,
                    "__qualname__": cls.__qualname__}
            real: Any = dataclasses.dataclass(frozen=True)(type(cls.__name__, (), body))
            for attr in ("__dataclass_fields__", "__dataclass_params__"):
                setattr(cls, attr, getattr(real, attr))  # kept: later reads are plain attributes
            return getattr(cls, self.attr)

    cls.__dataclass_fields__ = DataclassRecord("__dataclass_fields__")  # type: ignore[attr-defined]
    cls.__dataclass_params__ = DataclassRecord("__dataclass_params__")  # type: ignore[attr-defined]
    return cls
