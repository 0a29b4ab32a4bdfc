"""``memoize``: picks the wrapper for a callable once, at decoration time.

- plain functions on a backend with a native store (``InMemCache``): the native ``Memoizer``, where binding,
  key building and lookup happen in one call into Rust;
- plain functions on other backends: a Python wrapper over the backend primitives;
- coroutine functions, generators and async generators: Python wrappers that store the result only after
  a complete, successful run (a partial stream is never cached) and replay it on hits.
"""

from __future__ import annotations

import functools
import inspect
import threading
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from oxicache._core import CacheEntry, Memoizer, _install_vectorcall
from oxicache._signature import bind_inputs, memo_identity, param_specs, validate_exclude
from oxicache.durations import TTL, resolve_ttl
from oxicache.info import CacheInfo

if TYPE_CHECKING:
    from oxicache.base import BaseCache

__all__ = ["make_memoized"]


def make_memoized(
    cache: BaseCache,
    func: Callable[..., Any],
    *,
    name: str | None,
    exclude: Iterable[str] | None,
    annotation: Mapping[str, Any] | None,
    ttl: TTL,
) -> Any:
    identity = memo_identity(func, name)
    sig, specs = param_specs(func)
    own_exclude = validate_exclude(exclude)
    has_var_kw = any(kind == inspect.Parameter.VAR_KEYWORD for _, kind, _, _ in specs)
    unknown = sorted(own_exclude - {n for n, *_ in specs})
    if unknown and not has_var_kw:
        msg = f"exclude names {unknown} that are not parameters of {identity}; parameters: {[n for n, *_ in specs]}"
        raise ValueError(msg)
    all_exclude = own_exclude | cache.exclude
    if annotation is not None and not isinstance(annotation, Mapping):
        msg = f"annotation must be a dict, got {type(annotation).__name__}"
        raise TypeError(msg)
    metadata = {"annotation": dict(annotation)} if annotation else None
    seconds = resolve_ttl(ttl, annotation)

    store = getattr(cache, "_native_store", None)
    plain = not (inspect.iscoroutinefunction(func) or inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func))
    if store is not None and plain:
        wrapper = Memoizer(func, store, identity, specs, sorted(all_exclude), seconds, metadata)
        _install_vectorcall(wrapper)  # once per process: calls then skip the argument tuple
        return functools.update_wrapper(wrapper, func)
    memo = _PythonMemo(cache, func, identity, sig, all_exclude, seconds, metadata)
    if getattr(cache, "stores_nothing", False) and plain:
        return memo.passthrough()
    return memo.wrapper()


class _PythonMemo:
    """Memoization over the backend primitives (every backend without a native store)."""

    def __init__(self, cache: BaseCache, func: Callable[..., Any], identity: str, sig: inspect.Signature,
                 exclude: frozenset[str], ttl: float | None, metadata: dict[str, Any] | None) -> None:
        self.cache, self.func, self.identity, self.sig = cache, func, identity, sig
        self.exclude, self.ttl, self.metadata = exclude, ttl, metadata
        self.var_kw = next((p.name for p in sig.parameters.values() if p.kind is inspect.Parameter.VAR_KEYWORD), None)
        self.hits = self.misses = 0
        self.counts_lock = threading.Lock()

    def count(self, hit: bool) -> None:
        with self.counts_lock:
            if hit:
                self.hits += 1
            else:
                self.misses += 1

    def probe(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> CacheEntry:
        inputs = bind_inputs(self.sig, args, kwargs, self.exclude)
        if self.var_kw in inputs and self.exclude:
            inputs[self.var_kw] = {k: v for k, v in inputs[self.var_kw].items() if k not in self.exclude}
        return CacheEntry(self.identity, inputs, metadata=self.metadata)

    def lookup(self, probe: CacheEntry) -> CacheEntry | None:
        found = self.cache._lookup(probe)
        self.count(found is not None)
        return found

    def store(self, probe: CacheEntry, output: Any) -> None:
        entry = probe.clone(output=output)
        self.cache._set(entry, self.cache._entry_ttl(entry, self.ttl))
        self.cache._count("sets")

    def cache_info(self) -> CacheInfo:
        size = sum(1 for e in self.cache._iter() if e.func == self.identity)
        return CacheInfo(self.hits, self.misses, getattr(self.cache, "max_size", None), size)

    def cache_clear(self) -> None:
        for entry in list(self.cache._iter()):
            if entry.func == self.identity:
                self.cache._remove(entry)
        with self.counts_lock:
            self.hits = self.misses = 0

    def cache_key(self, *args: Any, **kwargs: Any) -> int:
        return self.probe(args, kwargs).key

    def cache_inputs(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return self.probe(args, kwargs).inputs

    def passthrough(self) -> Any:
        """For backends that store nothing (NoCache): every call runs, counted as a miss."""
        func, count = self.func, self.count

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            count(False)
            return func(*args, **kwargs)

        return self._decorate(wrapper)

    def wrapper(self) -> Any:
        func = self.func
        if inspect.isasyncgenfunction(func):
            wrapper = self._async_gen_wrapper()
        elif inspect.iscoroutinefunction(func):
            wrapper = self._async_wrapper()
        elif inspect.isgeneratorfunction(func):
            wrapper = self._gen_wrapper()
        else:
            wrapper = self._sync_wrapper()
        return self._decorate(wrapper)

    def _decorate(self, wrapper: Any) -> Any:
        functools.update_wrapper(wrapper, self.func)
        wrapper.cache_info = self.cache_info  # type: ignore[attr-defined]
        wrapper.cache_clear = self.cache_clear  # type: ignore[attr-defined]
        wrapper.cache_key = self.cache_key  # type: ignore[attr-defined]
        wrapper.cache_inputs = self.cache_inputs  # type: ignore[attr-defined]
        wrapper.cache_name = self.identity  # type: ignore[attr-defined]
        return wrapper

    def _sync_wrapper(self) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            probe = self.probe(args, kwargs)
            found = self.lookup(probe)
            if found is not None:
                return found.value
            output = self.func(*args, **kwargs)
            self.store(probe, output)
            return output

        return wrapper

    def _async_wrapper(self) -> Callable[..., Any]:
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            probe = self.probe(args, kwargs)
            found = self.lookup(probe)
            if found is not None:
                return found.value

            async def compute() -> Any:
                output = await self.func(*args, **kwargs)
                self.store(probe, output)
                return output

            # Concurrent misses of this key in this loop wait for one computation.
            return await self.cache._async_flights.run(probe.key, compute)

        return wrapper

    def _gen_wrapper(self) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            probe = self.probe(args, kwargs)
            found = self.lookup(probe)
            if found is not None:
                yield from found.value
                return
            items = []
            for item in self.func(*args, **kwargs):
                items.append(item)
                yield item
            self.store(probe, items)  # reached only when the generator ran to completion

        return wrapper

    def _async_gen_wrapper(self) -> Callable[..., Any]:
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            probe = self.probe(args, kwargs)
            found = self.lookup(probe)
            if found is not None:
                for item in found.value:
                    yield item
                return
            items = []
            async for item in self.func(*args, **kwargs):
                items.append(item)
                yield item
            self.store(probe, items)

        return wrapper
