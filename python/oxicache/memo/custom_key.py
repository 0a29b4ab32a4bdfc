"""``memoize(key=callable)``: the user's key function names the call instead of its arguments.

The engine keys a stand-in function of two parameters, ``key`` (what ``key(*args, **kwargs)`` returned)
and ``call`` (the arguments, excluded from the key); the stand-in runs the real function on a miss. So
every engine (the native one included), every kind of function and single-flight work unchanged, and
the stored inputs are ``{"key": <the key function's value>}``.
"""

from __future__ import annotations

import functools
from typing import Any, AsyncIterator, Callable, Generator

from oxicache.memo.wrappers import GeneratorFunction

__all__ = ["CALL", "check", "keyed_function", "keyed_wrapper"]

#: The stand-in's parameter holding the call's arguments, left out of the key.
CALL = "call"

Func = Callable[..., Any]


class _Call:
    """The arguments of one call, carried past the engine to the real function."""

    __slots__ = ("args", "kwargs")

    def __init__(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.args, self.kwargs = args, kwargs


def check(key: Any, exclude: Any, name: str) -> None:
    """``key`` must be callable, and leaves ``exclude`` nothing to act on: the arguments are not in the
    key, so naming some to leave out is a contradiction, refused rather than ignored."""
    if not callable(key):
        msg = f"key must be a function of the arguments returning the key (like cachetools' key=), got {key!r}"
        raise TypeError(msg)
    if exclude:
        msg = (f"memoize({name}): key= replaces the arguments in the key, so exclude={list(exclude)!r} has "
               f"nothing to leave out; drop exclude, or leave those arguments out of what key returns")
        raise ValueError(msg)


def keyed_function(func: Func, kind: str) -> Func:
    """The stand-in the engine keys and calls: ``(key, call)``, of the same kind as ``func``."""
    if kind == "async":

        async def run_async(key: Any, call: _Call) -> Any:
            return await func(*call.args, **call.kwargs)

        return run_async
    if kind == "gen":

        def run_gen(key: Any, call: _Call) -> Generator[Any, Any, Any]:
            return (yield from func(*call.args, **call.kwargs))

        return run_gen
    if kind == "asyncgen":

        async def run_asyncgen(key: Any, call: _Call) -> AsyncIterator[Any]:
            agen = func(*call.args, **call.kwargs)
            try:
                item = await agen.__anext__()
                while True:
                    sent = yield item
                    item = await agen.asend(sent)
            except StopAsyncIteration:
                return

        return run_asyncgen

    def run(key: Any, call: _Call) -> Any:
        return func(*call.args, **call.kwargs)

    return run


def keyed_wrapper(wrapper: Func, engine: Any, func: Func, key: Func, kind: str) -> Any:
    """The memoized function: computes the key, then calls ``wrapper`` (over the stand-in); its
    ``cache_key``/``cache_inputs`` take the function's own arguments."""
    if kind == "async":

        async def outer_async(*args: Any, **kwargs: Any) -> Any:
            return await wrapper(key(*args, **kwargs), _Call(args, kwargs))

        outer: Any = outer_async
    elif kind == "asyncgen":

        async def outer_asyncgen(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            async for item in wrapper(key(*args, **kwargs), _Call(args, kwargs)):
                yield item

        outer = outer_asyncgen
    elif kind == "gen":
        outer = GeneratorFunction(lambda *args, **kwargs: wrapper(key(*args, **kwargs), _Call(args, kwargs)), func)
    else:

        def outer_sync(*args: Any, **kwargs: Any) -> Any:
            return wrapper(key(*args, **kwargs), _Call(args, kwargs))

        outer = outer_sync
    functools.update_wrapper(outer, func)
    outer.cache_info = engine.cache_info
    outer.cache_clear = engine.cache_clear
    outer.cache_key = lambda *args, **kwargs: engine.cache_key(key(*args, **kwargs), None)
    outer.cache_inputs = lambda *args, **kwargs: engine.cache_inputs(key(*args, **kwargs), None)
    outer.cache_name = engine.cache_name
    return outer
