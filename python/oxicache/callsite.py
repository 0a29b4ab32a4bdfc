"""Warnings that point at the user's line: the first frame outside oxicache, not a wrapper or a backend.

A fixed ``stacklevel`` is wrong as soon as a call reaches the warning through another path (a coroutine
wrapper, the batch engine, a backend helper), so the level is found by walking the stack, only when a
warning is issued. A coroutine function's blocking store steps run in a worker thread, whose stack holds
no user frame: ``to_thread`` notes the awaiting frame (one context variable set per offloaded step) and a
warning issued in the worker is attributed to the user's frame found then.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import warnings
from contextvars import ContextVar

__all__ = ["to_thread", "warn"]

TYPE_CHECKING = False  # not typing's: `import oxicache` does not load typing (oxicache/_light.py)
if TYPE_CHECKING:
    from types import FrameType
    from typing import Any, Callable, TypeVar

    T = TypeVar("T")

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep
# The standard library's glue between oxicache's frames and the user's: a @contextmanager's __exit__, and
# the event loop under a coroutine function awaited as a task (then the line that runs the loop is the user's)
# (asyncio's folder is the standard library's, beside contextlib: `import oxicache` does not load asyncio)
_GLUE = (os.sep + "contextlib.py", os.path.join(os.path.dirname(contextlib.__file__), "asyncio") + os.sep)
# (the frame awaiting an offloaded step, its thread): set while the step runs in a worker thread
_ORIGIN: ContextVar[tuple[FrameType, int] | None] = ContextVar("oxicache_origin", default=None)


def _inside(frame: FrameType) -> bool:
    filename = frame.f_code.co_filename
    return filename.startswith(_PACKAGE) or filename.endswith(_GLUE[0]) or filename.startswith(_GLUE[1])


def _outside(frame: FrameType) -> FrameType:
    while frame.f_back is not None and _inside(frame):
        frame = frame.f_back
    return frame


def warn(message: str, category: type[Warning]) -> None:
    """``warnings.warn(message, category)`` attributed to the first caller outside oxicache (the last
    frame when there is none, as in a thread oxicache started)."""
    origin = _ORIGIN.get()
    if origin is not None and origin[1] != threading.get_ident():  # in a worker: from the awaiting frame
        frame = origin[0]
        globs = frame.f_globals
        warnings.warn_explicit(message, category, frame.f_code.co_filename, frame.f_lineno,
                               module=globs.get("__name__"), registry=globs.setdefault("__warningregistry__", {}),
                               module_globals=globs)
        return
    here: FrameType | None = sys._getframe(0)
    level = 1
    while here is not None and here.f_back is not None and _inside(here):
        here, level = here.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


async def to_thread(fn: Callable[..., T], /, *args: Any) -> T:
    """``asyncio.to_thread(fn, *args)``, with warnings issued in the worker attributed to the awaiting code."""
    # found now: once the awaiting coroutines are suspended, their frames no longer link to their callers
    import asyncio

    token = _ORIGIN.set((_outside(sys._getframe(1)), threading.get_ident()))
    try:
        return await asyncio.to_thread(fn, *args)
    finally:
        _ORIGIN.reset(token)
