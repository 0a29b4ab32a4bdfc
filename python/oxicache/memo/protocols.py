"""The static type of a memoized function: the wrapped signature plus the cache attributes.

Only type checkers use this; at run time a memoized function is a native `Memoizer` (InMemCache) or a
plain Python wrapper. Accessing a memoized method through an instance drops `self` from the call's
signature, as for a function; the `cache_*` helpers of that bound method are the function's own and
still take `self` first (`MemoizedMethod`), as they do at run time.
"""

from __future__ import annotations

from typing import Any, Callable, Concatenate, ParamSpec, Protocol, TypeVar, overload

from oxicache.info import CacheInfo

__all__ = ["BatchMemoized", "Memoized", "MemoizedMethod"]

P = ParamSpec("P")
Q = ParamSpec("Q")
R = TypeVar("R")
S = TypeVar("S")


class Memoized(Protocol[P, R]):
    """A memoized function: callable like the original, with ``cache_*`` helpers."""

    __wrapped__: Callable[P, R]
    cache_name: str

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R: ...
    def cache_info(self) -> CacheInfo: ...
    def cache_clear(self) -> None: ...
    def cache_key(self, *args: P.args, **kwargs: P.kwargs) -> int: ...
    def cache_inputs(self, *args: P.args, **kwargs: P.kwargs) -> dict[str, Any]: ...
    # Through the class: a method stays unbound (first overload), but a classmethod (first parameter
    # ``type[S]`` and ``@classmethod`` on top) is bound to the class, as classmethod binds it at run time.
    # Checkers that do not tell the two apart by the self-type (mypy) take the first overload.
    @overload
    def __get__(self: Memoized[Concatenate[S, Q], R], instance: None, owner: type[S], /) -> Memoized[P, R]: ...
    @overload
    def __get__(
        self: Memoized[Concatenate[type[S], Q], R], instance: None, owner: type[S], /
    ) -> MemoizedMethod[Q, R, Concatenate[type[S], Q]]: ...
    @overload
    def __get__(self, instance: None, owner: type[Any] | None = None, /) -> Memoized[P, R]: ...
    # Through an instance: bound to it; a classmethod through an instance is bound to its class.
    @overload
    def __get__(
        self: Memoized[Concatenate[S, Q], R], instance: S, owner: type[Any] | None = None, /
    ) -> MemoizedMethod[Q, R, Concatenate[S, Q]]: ...
    @overload
    def __get__(
        self: Memoized[Concatenate[type[S], Q], R], instance: S, owner: type[Any] | None = None, /
    ) -> MemoizedMethod[Q, R, Concatenate[type[S], Q]]: ...


class MemoizedMethod(Protocol[Q, R, P]):
    """A memoized function bound to an instance (or a memoized classmethod bound to its class), as
    ``obj.method`` returns it: a bound method. Calls take the parameters after ``self``; the ``cache_*``
    helpers are the function's own, so, as at run time, they take the instance (or class) first:
    ``obj.method.cache_key(obj, x)``, the same as ``Class.method.cache_key(obj, x)``."""

    __wrapped__: Callable[P, R]
    __self__: Any
    cache_name: str

    def __call__(self, *args: Q.args, **kwargs: Q.kwargs) -> R: ...
    def cache_info(self) -> CacheInfo: ...
    def cache_clear(self) -> None: ...
    def cache_key(self, *args: P.args, **kwargs: P.kwargs) -> int: ...
    def cache_inputs(self, *args: P.args, **kwargs: P.kwargs) -> dict[str, Any]: ...


#: A batch-memoized function has the same static shape: the batch function's own signature (its
#: ``cache_key``/``cache_inputs`` take a one-item batch, as each item is keyed).
BatchMemoized = Memoized
