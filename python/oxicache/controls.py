"""Per-call cache controls: ``with oxicache.bypass():`` and ``with oxicache.refresh():``.

They live in a context variable, so they apply to the current thread or asyncio task (and to tasks it
starts inside the block), never to other threads or tasks. Every memoized call made inside the block is
affected, including nested ones: refreshing a recursive function recomputes every call it makes.
Both also work as decorators.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from contextvars import Token
from typing import Any, Callable, TypeVar

from oxicache._core import controls_activated, controls_var

__all__ = ["bypass", "refresh"]

NORMAL, BYPASS, REFRESH = 0, 1, 2

F = TypeVar("F", bound=Callable[..., Any])

_mode: Any = controls_var()


def current_mode() -> int:
    """The mode of the current context: NORMAL, BYPASS or REFRESH."""
    return _mode.get(NORMAL)  # type: ignore[no-any-return]


class _Control(contextlib.ContextDecorator):
    def __init__(self, mode: int) -> None:
        self._mode = mode
        self._token: Token[int] | None = None

    def _recreate_cm(self) -> _Control:
        return _Control(self._mode)  # a fresh token per decorated call (threads, recursion)

    def __call__(self, func: F) -> F:
        """As a decorator: the control covers each call of ``func`` (for a coroutine function, its whole
        run, awaits included)."""
        if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
            msg = (
                f"{self!r} cannot decorate the generator function {func.__qualname__}: a generator runs "
                f"in its consumer's context between items; wrap the iteration in `with {self!r}:` instead"
            )
            raise TypeError(msg)
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def run(*args: Any, **kwargs: Any) -> Any:
                with self._recreate_cm():
                    return await func(*args, **kwargs)

            return run  # type: ignore[return-value]
        return super().__call__(func)

    def __enter__(self) -> _Control:
        if self._token is not None:
            msg = "this control is already entered; call oxicache.bypass() / refresh() again for a new one"
            raise RuntimeError(msg)
        controls_activated()
        self._token = _mode.set(self._mode)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._token is not None
        _mode.reset(self._token)
        self._token = None

    def __repr__(self) -> str:
        return f"oxicache.{'bypass' if self._mode == BYPASS else 'refresh'}()"


def bypass() -> _Control:
    """Memoized calls in this block neither read nor write the cache: the function runs, nothing is
    stored. Counted as misses."""
    return _Control(BYPASS)


def refresh() -> _Control:
    """Memoized calls in this block skip the read, run the function and store the fresh result
    (replacing what was cached). Counted as misses."""
    return _Control(REFRESH)
