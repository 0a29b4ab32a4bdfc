"""Parsing of time-to-live values: seconds, ``timedelta`` or strings such as ``"90s"``, ``"1h30m"``."""

from __future__ import annotations

import datetime
import re
from typing import Mapping, Union

__all__ = ["TTL", "parse_ttl", "resolve_ttl"]

TTL = Union[int, float, str, datetime.timedelta, None]

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def resolve_ttl(ttl: TTL, annotation: object) -> float | None:
    """An explicit ``ttl``, else the ``"ttl"`` of an annotation dict, in seconds; None when neither is set."""
    if ttl is not None:
        return parse_ttl(ttl)
    if isinstance(annotation, Mapping) and annotation.get("ttl") is not None:
        return parse_ttl(annotation["ttl"], what="annotation ttl")
    return None


def parse_ttl(ttl: TTL, *, what: str = "ttl") -> float | None:
    """Seconds (a positive float) from a TTL value, or None for "no expiry".

    Raises:
        ValueError: the value is not positive or not a duration; the message lists the accepted forms.
    """
    if ttl is None:
        return None
    if isinstance(ttl, datetime.timedelta):
        seconds = ttl.total_seconds()
    elif isinstance(ttl, (int, float)) and not isinstance(ttl, bool):
        seconds = float(ttl)
    elif isinstance(ttl, str):
        text = ttl.strip().lower().replace(" ", "")
        parts = _PART.findall(text)
        if not text or "".join(n + u for n, u in parts) != text:
            msg = f"{what}={ttl!r} is not a duration; use seconds (3600), a timedelta, or a string like '90s', '15m', '1h30m', '2d'"
            raise ValueError(msg)
        seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    else:
        msg = f"{what} must be seconds, a timedelta or a string like '1h', got {type(ttl).__name__}"
        raise ValueError(msg)
    if not seconds > 0 or seconds == float("inf"):
        msg = f"{what}={ttl!r} must be a positive, finite duration"
        raise ValueError(msg)
    return seconds
