"""Per-call cache controls: ``with oxicache.bypass():``, ``with oxicache.refresh():`` and
``with oxicache.max_age("10m"):``.

They live in a context variable, so they apply to the current thread or asyncio task (and to tasks it
starts inside the block), never to other threads or tasks. Every memoized call made inside the block is
affected, including nested ones: refreshing a recursive function recomputes every call it makes.
All three also work as decorators.

``max_age`` composes with the others by strictness: inside ``bypass()`` or ``refresh()`` it changes
nothing (they already refuse every stored value); ``bypass()`` or ``refresh()`` inside it win; nested
``max_age`` blocks keep the smallest age.
"""

from __future__ import annotations

import contextlib
import functools
from contextvars import ContextVar, Token

from oxicache._core import controls_activated, controls_var
from oxicache.durations import parse_ttl

TYPE_CHECKING = False  # not typing's: `import oxicache` does not load typing (oxicache/_light.py)
if TYPE_CHECKING:
    from typing import Any, Callable, TypeVar

    from oxicache.durations import TTL

    F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["bypass", "max_age", "refresh"]

# MAX_AGE: a stored value is taken only if its recorded age is below ``current_max_age()``. The native
# engine keeps no ages and reads MAX_AGE as REFRESH (rust/controls.rs).
NORMAL, BYPASS, REFRESH, MAX_AGE = 0, 1, 2, 3

_mode: Any = controls_var()
_max_age: ContextVar[float] = ContextVar("oxicache_max_age", default=float("inf"))


def current_mode() -> int:
    """The mode of the current context: NORMAL, BYPASS or REFRESH."""
    return _mode.get(NORMAL)  # type: ignore[no-any-return]


def current_max_age() -> float:
    """Seconds: the largest age of a stored value calls may take now (``inf`` outside ``max_age``)."""
    return _max_age.get()


class _Control(contextlib.ContextDecorator):
    def __init__(self, mode: int, seconds: float = float("inf")) -> None:
        self._mode, self._seconds = mode, seconds
        self._token: Token[int] | None = None
        self._age_token: Token[float] | None = None

    def _recreate_cm(self) -> _Control:
        return _Control(self._mode, self._seconds)  # a fresh token per decorated call (threads, recursion)

    def __call__(self, func: F) -> F:
        """As a decorator: the control covers each call of ``func`` (for a coroutine function, its whole
        run, awaits included)."""
        import inspect  # at decoration: `import oxicache` does not load inspect

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
        mode = self._mode
        if mode == MAX_AGE:
            outer = current_mode()
            mode = MAX_AGE if outer == NORMAL else outer  # bypass()/refresh() around it are stricter
            self._age_token = _max_age.set(min(self._seconds, _max_age.get()))
        self._token = _mode.set(mode)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._token is not None
        _mode.reset(self._token)
        self._token = None
        if self._age_token is not None:
            _max_age.reset(self._age_token)
            self._age_token = None

    def __repr__(self) -> str:
        if self._mode == MAX_AGE:
            return f"oxicache.max_age({self._seconds!r})"
        return f"oxicache.{'bypass' if self._mode == BYPASS else 'refresh'}()"


def bypass() -> _Control:
    """Memoized calls in this block neither read nor write the cache: the function runs, nothing is
    stored. Counted as misses."""
    return _Control(BYPASS)


def refresh() -> _Control:
    """Memoized calls in this block skip the read, run the function and store the fresh result
    (replacing what was cached). Counted as misses."""
    return _Control(REFRESH)


def max_age(age: TTL) -> _Control:
    """Memoized calls in this block take a stored value only if it was stored less than ``age`` ago
    (seconds, timedelta or ``"10m"``); otherwise the function runs and its result is stored. Only
    entries whose age is recorded can qualify: those of functions memoized with ``track_age=True``,
    ``stale=``, ``stale_if_error=``, ``jitter=`` or a callable ``ttl`` (docs/memoize.md, "Freshness");
    for other functions every call in the block recomputes, as under ``refresh()``. Counted as misses
    when the stored value is refused."""
    seconds = parse_ttl(age, what="max_age")
    if seconds is None:
        msg = "max_age needs a duration (seconds, timedelta or a string like '10m'), got None"
        raise ValueError(msg)
    return _Control(MAX_AGE, seconds)
