"""``batch_memoize``: per-item caching of functions that take a batch (their first parameter) and return
one output per item, in order.

Each item is keyed as if the function had been called with a one-item batch (``f([x], *rest)``), so
``cache.get(f, items=[x])`` finds it. A call looks every item up, runs the function once with the missing
items only (in their original order, each distinct item once), stores one entry per output and returns
the outputs in input order.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Callable

from oxicache.callsite import to_thread
from oxicache.memo.engine import Options, bound_parts, decorate, function_kind, make_engine
from oxicache.memo.wrappers import pending_type
from oxicache.switch import unless_disabled

if TYPE_CHECKING:
    from oxicache.base import BaseCache

__all__ = ["make_batch_memoized"]


def make_batch_memoized(cache: BaseCache, func: Callable[..., Any], options: Options) -> Any:
    cache, options = unless_disabled(cache, options)  # OXICACHE_DISABLE, read once per decoration
    if not callable(func):
        msg = f"batch_memoize expects a callable, got {type(func).__name__}; use @cache.batch_memoize"
        raise TypeError(msg)
    bound = bound_parts(func)  # a bound method: its object is keyed as the method's self
    if bound is not None:
        function, owner = bound
        return types.MethodType(make_batch_memoized(cache, function, options), owner)
    kind = function_kind(func)
    if kind in ("gen", "asyncgen"):
        msg = f"batch_memoize cannot wrap the generator function {func.__qualname__}: a batch function returns a list of outputs; use memoize for generators"
        raise ValueError(msg)  # ValueError, as ahvn raises
    engine = make_engine(cache, func, options)
    offload = cache.engine_view().capabilities.blocking_io  # run the cache I/O of async batches in a thread
    name = engine.cache_name
    params = list(inspect.signature(func).parameters.values())
    # Methods: the batch is the parameter after self/cls.
    at = 1 if params and params[0].name in ("self", "cls") else 0
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if len(params) <= at or params[at].kind not in positional:
        msg = f"batch_memoize needs the batch as the first positional parameter of {name} (after self), e.g. def {func.__name__}(items, ...)"
        raise TypeError(msg)
    batch_param = params[at].name
    sig = inspect.signature(func)
    lookup, pending_cls = engine.lookup, pending_type(engine)
    # The Python engine reads a batch in one round trip where the store can; the native one (memory) per item.
    lookup_many = getattr(engine, "lookup_many", None)

    def split(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Sequence[Any], Callable[[Any], tuple[Any, ...]], dict[str, Any]]:
        """The batch, a function giving the positional arguments with a given batch in its place, and the
        keyword arguments."""
        bound = sig.bind(*args, **kwargs)
        batch = bound.arguments[batch_param]
        if not isinstance(batch, Sequence) or isinstance(batch, (str, bytes, bytearray)):
            msg = f"{name}: the batch argument {batch_param!r} must be a list or tuple of items, got {type(batch).__name__}; pass list(...) of the items"
            raise TypeError(msg)
        lead, rest = bound.args[:at], bound.args[at + 1 :]
        return batch, lambda items: (*lead, items, *rest), bound.kwargs

    def look_up(batch: Sequence[Any], with_batch: Callable[[Any], tuple[Any, ...]], kwargs: dict[str, Any]) -> tuple[list[Any], dict[Any, tuple[Any, list[int]]]]:
        """The outputs found (by position) and the misses: pending miss and positions, by item key."""
        results: list[Any] = [None] * len(batch)
        missing: dict[Any, tuple[Any, list[int]]] = {}
        calls = [(with_batch([item]), kwargs) for item in batch]
        founds = lookup_many(calls) if lookup_many is not None else [lookup(*call) for call in calls]
        for i, found in enumerate(founds):
            if type(found) is not pending_cls:
                results[i] = found
                continue
            slot = i if found.bypass else found.key  # bypassed items are not deduplicated
            if slot in missing:
                missing[slot][1].append(i)
            else:
                missing[slot] = (found, [i])
        return results, missing

    def complete(batch: Sequence[Any], results: list[Any], missing: dict[Any, tuple[Any, list[int]]], outputs: Any) -> list[Any]:
        outputs = _as_outputs(name, outputs, len(missing))
        for (pending, positions), output in zip(missing.values(), outputs):
            pending.store(output)
            for i in positions:
                results[i] = output
        return results

    def fail(missing: dict[Any, tuple[Any, list[int]]]) -> None:
        next(iter(missing.values()))[0].failed()  # one failed call, one error

    if kind == "async":

        async def async_wrapper(*args: Any, **kwargs: Any) -> list[Any]:
            batch, with_batch, kw = split(args, kwargs)
            if not batch:
                return []
            if offload:
                results, missing = await to_thread(look_up, batch, with_batch, kw)
            else:
                results, missing = look_up(batch, with_batch, kw)
            if not missing:
                return results
            todo = [batch[positions[0]] for _, positions in missing.values()]
            try:
                outputs = await func(*with_batch(todo), **kw)
            except Exception:
                fail(missing)
                raise
            if offload:
                return await to_thread(complete, batch, results, missing, outputs)
            return complete(batch, results, missing, outputs)

        return decorate(async_wrapper, engine, func)

    def wrapper(*args: Any, **kwargs: Any) -> list[Any]:
        batch, with_batch, kw = split(args, kwargs)
        if not batch:
            return []
        results, missing = look_up(batch, with_batch, kw)
        if not missing:
            return results
        todo = [batch[positions[0]] for _, positions in missing.values()]
        try:
            outputs = func(*with_batch(todo), **kw)
        except Exception:
            fail(missing)
            raise
        return complete(batch, results, missing, outputs)

    return decorate(wrapper, engine, func)


def _as_outputs(name: str, outputs: Any, expected: int) -> list[Any]:
    """A batch function's outputs as a list, one per missed item. Any sequence is taken: anything with
    ``len()`` and indexing by position (a list, a tuple, a numpy array, whose items are its rows). A str or
    bytes is one value, a mapping is indexed by key and an iterator has no length: those are refused."""
    cls = type(outputs)
    if isinstance(outputs, (str, bytes, bytearray, Mapping)) or not (hasattr(cls, "__len__") and hasattr(cls, "__getitem__")):
        hint = "; return list(...) of the outputs" if hasattr(cls, "__iter__") else ""
        msg = (f"{name} must return a sequence with one output per item (a list, tuple or array), "
               f"got {cls.__name__}{hint} (nothing was cached)")
        raise TypeError(msg)
    try:
        count = len(outputs)
        if count != expected:
            msg = (f"{name} returned {count} outputs for {expected} inputs; a batch function returns one output "
                   "per item, in order (nothing was cached)")
            raise ValueError(msg)
        return [outputs[i] for i in range(count)]
    except (TypeError, IndexError, KeyError) as err:  # a 0-d array has no len(); a labelled index may not take 0..n-1
        msg = (f"{name} must return a sequence with one output per item, indexed 0..n-1; its {cls.__name__} "
               f"cannot be read that way ({type(err).__name__}: {err}) (nothing was cached)")
        raise TypeError(msg) from None
