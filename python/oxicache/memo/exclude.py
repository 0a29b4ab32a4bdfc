"""``exclude=``: the parameter names left out of keys, checked where a cache or a decorator is made (a
module of its own: caches are made at ``import oxicache``, and ``memo.signature`` loads ``inspect``)."""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: `import oxicache` does not load typing (oxicache/_light.py)
if TYPE_CHECKING:
    from typing import Iterable

__all__ = ["validate_exclude"]


def validate_exclude(exclude: Iterable[str] | None, what: str = "exclude") -> frozenset[str]:
    if exclude is None:
        return frozenset()
    if isinstance(exclude, str):
        msg = f"{what} must be a list of parameter names, got the string {exclude!r}; write [{exclude!r}]"
        raise TypeError(msg)
    try:
        names = frozenset(exclude)
    except TypeError:
        msg = f"{what} must be a list of parameter names, got {type(exclude).__name__} {exclude!r}"
        raise TypeError(msg) from None
    bad = [n for n in names if not isinstance(n, str)]
    if bad:
        msg = f"{what} must contain parameter names (str), got {bad[0]!r}"
        raise TypeError(msg)
    return names
