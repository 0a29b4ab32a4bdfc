"""Canonical keys: the encoding of (func, inputs) and the 128-bit key (docs/key-scheme.md)."""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: `import oxicache` does not load typing (oxicache/_light.py)
if TYPE_CHECKING:
    from typing import Any, Callable

from oxicache._core import KEY_SCHEME_VERSION, MAX_DEPTH, canonical_bytes, key_of, key_of_many
from oxicache._core import register_key_encoder as _register

__all__ = [
    "KEY_SCHEME_VERSION",
    "MAX_DEPTH",
    "canonical_bytes",
    "function_identity",
    "key_of",
    "key_of_many",
    "register_key_encoder",
]


def register_key_encoder(cls: type, encoder: Callable[[Any], Any] | None) -> None:
    """Teach the key encoder a type: instances of ``cls`` (and subclasses) are keyed by ``encoder(obj)``.

    ``encoder`` returns any encodable value (a tuple of fields, a str, ...); the key also records the
    class's ``module.qualname``. Pass ``None`` to remove the registration. Changing an encoder changes the
    keys of that type, so entries stored under the old encoder stop matching.
    """
    _register(cls, encoder)


def function_identity(func: Callable[..., Any]) -> str:
    """``module.qualname`` of a callable: the default ``CacheEntry.func`` of a memoized function."""
    module = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", None)
    if module is None or qualname is None:
        msg = f"cannot name {func!r}: it has no __module__/__qualname__; pass name='...' to memoize"
        raise TypeError(msg)
    return f"{module}.{qualname}"
