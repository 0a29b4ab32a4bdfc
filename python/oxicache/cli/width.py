"""Text width in terminal columns, for the command line's tables: a CJK or other wide character takes two
columns, a combining mark none (``unicodedata.east_asian_width`` and ``combining``), so ``str.ljust``,
which counts characters, would misalign every column after a name like ``価格``."""

from __future__ import annotations

import unicodedata

__all__ = ["cut", "ljust", "rjust", "width"]


def width(text: str) -> int:
    """Columns ``text`` takes in a terminal (control characters are escaped before this is asked)."""
    if text.isascii():
        return len(text)  # the common case, without a lookup per character
    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def ljust(text: str, columns: int) -> str:
    return text + " " * max(0, columns - width(text))


def rjust(text: str, columns: int) -> str:
    return " " * max(0, columns - width(text)) + text


def cut(text: str, columns: int) -> str:
    """``text`` if it fits in ``columns``, else its longest start that fits with a final "…"."""
    if width(text) <= columns:
        return text
    out, used = [], 1  # the ellipsis takes one column
    for c in text:
        w = width(c)
        if used + w > columns:
            break
        out.append(c)
        used += w
    return "".join(out) + "…"
