"""Parsing of time-to-live values: seconds, ``timedelta`` or strings such as ``"90s"``, ``"1h30m"``."""

from __future__ import annotations

import sys
from collections.abc import Mapping

__all__ = ["TTL", "is_timedelta", "parse_ttl", "resolve_ttl"]

TYPE_CHECKING = False
if TYPE_CHECKING:
    import datetime
    from typing import Any, TypeGuard, Union

    TTL = Union[int, float, str, datetime.timedelta, None]
else:
    def __getattr__(name: str) -> Any:
        # TTL at run time (an annotation alias: modules here import it for checkers only) is made on first
        # use, so that `import oxicache` loads neither typing nor datetime.
        if name != "TTL":
            msg = f"module {__name__!r} has no attribute {name!r}"
            raise AttributeError(msg)
        import datetime
        from typing import Union

        globals()["TTL"] = alias = Union[int, float, str, datetime.timedelta, None]
        return alias

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART_PATTERN = r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)"  # compiled (with re) on the first string parsed


def is_timedelta(value: object) -> TypeGuard[datetime.timedelta]:
    """``isinstance(value, datetime.timedelta)`` without importing datetime: a timedelta exists only once
    something imported it."""
    datetime = sys.modules.get("datetime")
    return datetime is not None and isinstance(value, datetime.timedelta)


def resolve_ttl(ttl: TTL, annotation: object) -> float | None:
    """An explicit ``ttl``, else the ``"ttl"`` of an annotation dict, in seconds; None when neither is set."""
    if ttl is not None:
        return parse_ttl(ttl)
    if isinstance(annotation, Mapping) and annotation.get("ttl") is not None:
        return parse_ttl(annotation["ttl"], what="annotation ttl")
    return None


_FORMS = "use seconds (3600), a timedelta, or a string like '90s', '15m', '1h30m', '2d'"


def parse_ttl(ttl: TTL, *, what: str = "ttl") -> float | None:
    """Seconds (a positive float) from a TTL value, or None for "no expiry".

    A string is numbers with lowercase units, each unit at most once: ``ms``, ``s``, ``m`` (minutes), ``h``,
    ``d``, ``w``. Upper case is refused rather than folded: ``"1M"`` could mean a month.

    Raises:
        TypeError: not a number, timedelta, string or None (``True`` included).
        ValueError: the value is not positive or not a duration; the message lists the accepted forms.
    """
    if ttl is None:
        return None
    if is_timedelta(ttl):
        seconds = ttl.total_seconds()
    elif isinstance(ttl, (int, float)) and not isinstance(ttl, bool):
        seconds = float(ttl)
    elif isinstance(ttl, str):
        seconds = _parse_text(ttl, what)
    else:
        hint = "; None means no expiry" if isinstance(ttl, bool) and "ttl" in what else ""
        msg = f"{what}={ttl!r}: {what} must be seconds, a timedelta or a string like '1h', got {type(ttl).__name__}{hint}"
        raise TypeError(msg)
    if not seconds > 0 or seconds == float("inf"):
        msg = f"{what}={ttl!r} must be a positive, finite duration"
        raise ValueError(msg)
    return seconds


def _parse_text(ttl: str, what: str) -> float:
    text = ttl.strip().replace(" ", "")
    if text != text.lower():
        msg = (f"{what}={ttl!r}: units are lowercase ('M' could mean a month); write {text.lower()!r} if "
               f"that is the duration you mean; {_FORMS}")
        raise ValueError(msg)
    import re  # cached by re after the first call

    parts = re.findall(_PART_PATTERN, text)
    if not text or "".join(n + u for n, u in parts) != text:
        msg = f"{what}={ttl!r} is not a duration; {_FORMS}"
        raise ValueError(msg)
    units = [u for _, u in parts]
    repeated = sorted({u for u in units if units.count(u) > 1})
    if repeated:
        msg = f"{what}={ttl!r} gives the unit {repeated[0]!r} more than once; write each unit once, e.g. '1h30m'"
        raise ValueError(msg)
    return sum(float(n) * _UNITS[u] for n, u in parts)
