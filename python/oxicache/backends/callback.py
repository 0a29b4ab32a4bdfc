"""``CallbackCache``: stores nothing; runs *callbacks* on every set and *feeds* on every get.

- A callback is called as ``callback(key, value)`` for each stored entry: ``key`` is ``CacheEntry.key``
  and ``value`` is ``entry.to_dict()`` (func, inputs without excluded names, output, metadata).
- A feed is called as ``feed(func, **inputs)`` for each lookup, in order; the first result that is not
  ``...`` is the value (``None`` is a value). ``func`` is the original (undecorated) function for memoized calls and
  the name string for ``cache.get("name", ...)``.
- A callback or feed that raises is logged (logger ``"oxicache.backends.callback"``) and skipped; the others still run.

A memoized call returns a feed's value without running the function; otherwise it runs the function and
fires the callbacks. Nothing is stored, so the next call asks the feeds again.
"""

from __future__ import annotations

from oxicache._core import CacheEntry
from oxicache.backends.none import NoStorage
from oxicache.base import Capabilities, Ref

TYPE_CHECKING = False  # not typing's: `import oxicache` does not load typing (oxicache/_light.py)
if TYPE_CHECKING:
    from typing import Any, Callable, Iterable

    from oxicache.durations import TTL

    Callback = Callable[[int, dict[str, Any]], Any]
    Feed = Callable[..., Any]

__all__ = ["CallbackCache"]



def _logger() -> Any:
    """"oxicache.backends.callback", under "oxicache" (logging loads when a callback or feed fails, not at
    ``import oxicache``)."""
    import logging

    return logging.getLogger(__name__)



def _checked(fn: Any, what: str, probe_args: tuple[Any, ...], shape: str, partial: bool) -> Any:
    """``fn`` if it accepts ``probe_args`` positionally (and, unless ``partial``, nothing else required);
    a TypeError naming it otherwise."""
    if not callable(fn):
        msg = f"each {what} must be a function {shape}, got {fn!r}"
        raise TypeError(msg)
    import inspect  # at construction: `import oxicache` does not load inspect

    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return fn  # builtins without a signature: trust them
    try:
        (sig.bind_partial if partial else sig.bind)(*probe_args)
    except TypeError:
        msg = f"{what} {getattr(fn, '__qualname__', fn)!r} must accept {shape}; its signature is {sig}"
        raise TypeError(msg) from None
    return fn


class CallbackCache(NoStorage):
    """Event-driven cache without storage (guide 3.6).

    Args:
        callbacks: functions called as ``callback(key: int, value: dict)`` on every set, in order.
        feeds: functions called as ``feed(func, **inputs)`` on every get, in order; the first result that is
            not ``...`` wins.
        exclude: parameter names left out of every key (and of the inputs callbacks and feeds see).
        ttl: accepted for symmetry with the other backends (nothing is stored).
    """

    # Stores nothing, so no TTL; its callbacks may hand entries to other processes, so keys are portable.
    capabilities = Capabilities(ttl=False)

    def __init__(
        self,
        callbacks: Iterable[Callback] | None = None,
        feeds: Iterable[Feed] | None = None,
        exclude: Iterable[str] | None = None,
        *,
        ttl: TTL = None,
        on_backend_error: str = "warn",
    ) -> None:
        super().__init__(exclude, ttl=ttl, on_backend_error=on_backend_error)
        for what, given in (("callbacks", callbacks), ("feeds", feeds)):
            if callable(given) or isinstance(given, (str, bytes)):
                name = getattr(given, "__qualname__", None) or repr(given)
                msg = f"{what} must be a list of functions, got {name} itself; write {what}=[{name}]"
                raise TypeError(msg)
        # Tuples: a one-shot iterable would be used up by the first event.
        self.callbacks: tuple[Callback, ...] = tuple(
            _checked(cb, "callback", (0, {}), "(key, value)", partial=False) for cb in callbacks or ()
        )
        self.feeds: tuple[Feed, ...] = tuple(_checked(fd, "feed", (None,), "(func, **inputs)", partial=True) for fd in feeds or ())

    def _feed(self, func: Any, inputs: dict[str, Any]) -> Any:
        """The first feed result that is not ``...``, or ``...``."""
        for feed in self.feeds:
            try:
                value = feed(func, **inputs)
            except Exception:
                _logger().exception("oxicache: feed %r failed for %s; skipped", feed, getattr(func, "__qualname__", func))
                continue
            if value is not ...:
                return value
        return ...

    # ---- primitives ---------------------------------------------------------------------------------
    def _get(self, ref: Ref) -> CacheEntry | None:
        if not isinstance(ref, CacheEntry):
            return None  # a bare key names no function or inputs to feed
        value = self._feed(ref.func, ref.inputs)
        return None if value is ... else ref.clone(output=value)

    def _memo_lookup(self, probe: CacheEntry, func: Callable[..., Any]) -> CacheEntry | None:
        value = self._feed(func, probe.inputs)
        self._count("misses" if value is ... else "hits")
        return None if value is ... else probe.clone(output=value)

    def _set(self, entry: CacheEntry, ttl: float | None) -> None:
        key = entry.shared_key  # the callbacks may keep it where other processes read it
        for callback in self.callbacks:
            try:
                callback(key, entry.to_dict())  # a copy each: one callback's changes never reach the next
            except Exception:
                _logger().exception("oxicache: callback %r failed for key %s; skipped", callback, key)

    def __repr__(self) -> str:
        return f"CallbackCache(callbacks={len(self.callbacks)}, feeds={len(self.feeds)})"
