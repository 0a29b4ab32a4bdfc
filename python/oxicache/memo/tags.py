"""``memoize(tags=...)``: labels stored with each entry (``metadata["tags"]``, a sorted list of str), so
``cache.invalidate(tags=[...])`` can remove every entry carrying any of them.

Static tags are part of the function's fixed metadata (the native engine stores them as they are, at
no cost on hits); tags computed from the call's inputs need the Python engine, which adds them to each
entry it stores.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["TagsOption", "check_tags", "resolve"]

TYPE_CHECKING = False  # not typing's: `import oxicache` does not load typing (oxicache/_light.py)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    #: ``tags=``: a list of str, or a function of the call's inputs (a dict) returning one.
    TagsOption = Iterable[str] | Callable[[dict[str, Any]], Iterable[str]] | None


def check_tags(tags: Any, what: str = "tags") -> list[str]:
    """The tags as a sorted list without repeats; a clear error for anything but non-empty strings."""
    if isinstance(tags, (str, bytes)):
        msg = f"{what} must be a list of str, got the string {tags!r}; write [{tags!r}]"
        raise TypeError(msg)
    try:
        items = list(tags)
    except TypeError:
        msg = f"{what} must be a list of str, got {type(tags).__name__} {tags!r}"
        raise TypeError(msg) from None
    bad = [t for t in items if not isinstance(t, str) or not t]
    if bad:
        msg = f"{what} must contain non-empty str, got {bad[0]!r}"
        raise TypeError(msg)
    return sorted(set(items))


def resolve(tags: TagsOption) -> tuple[list[str] | None, Callable[[dict[str, Any]], list[str]] | None]:
    """``(static tags, None)``, ``(None, tagger)`` for a callable, or ``(None, None)``."""
    if tags is None:
        return None, None
    if callable(tags):
        compute = tags
        name = getattr(compute, "__qualname__", repr(compute))
        return None, lambda inputs: check_tags(compute(inputs), what=f"the tags {name} returned")
    return check_tags(tags) or None, None
