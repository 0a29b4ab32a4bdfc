"""The static type of a memoized function: the wrapped signature plus the cache attributes.

Only type checkers use this; at run time a memoized function is a native `Memoizer` (InMemCache) or a
plain Python wrapper. Accessing a memoized method through an instance drops `self` from the signature,
as for a function.
"""

from __future__ import annotations

from typing import Any, Callable, Concatenate, ParamSpec, Protocol, TypeVar, overload

from oxicache.info import CacheInfo

__all__ = ["BatchMemoized", "Memoized"]

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
    @overload
    def __get__(self, instance: None, owner: type[Any] | None = None, /) -> Memoized[P, R]: ...
    @overload
    def __get__(self: Memoized[Concatenate[S, Q], R], instance: S, owner: type[Any] | None = None, /) -> Memoized[Q, R]: ...


#: A batch-memoized function has the same static shape: the batch function's own signature (its
#: ``cache_key``/``cache_inputs`` take a one-item batch, as each item is keyed).
BatchMemoized = Memoized
