"""The wrapper of each kind of function, written once over an engine (see ``engine.py``).

An engine's ``lookup(args, kwargs)`` returns the stored value, or a *pending* miss: the wrapper runs the
function and hands the complete result to ``pending.store`` (or reports ``pending.failed()``). A partial
stream is never stored: generators store their items only after running to the end.

On backends with blocking I/O (``capabilities.blocking_io``), coroutine wrappers do the cache I/O in a worker
thread so the event loop keeps running.
"""

from __future__ import annotations

import functools
import types
from typing import TYPE_CHECKING, Any, AsyncIterator, Awaitable, Callable, Generator, Iterator, Protocol, cast

from oxicache._core import Memoizer, Pending, Replay, check_stack, decode_binary, encode_binary
from oxicache.callsite import to_thread
from oxicache.errors import ValueEncodingError
from oxicache.memo import shared_flight

if TYPE_CHECKING:
    from oxicache.base import EngineView
    from oxicache.memo.engine import PythonPending

__all__ = ["async_gen_wrapper", "async_wrapper", "gen_wrapper", "passthrough", "pending_type", "sync_wrapper"]

Func = Callable[..., Any]


class Miss(Protocol):
    """A missed lookup to complete: the native ``Pending`` or ``engine.PythonPending``."""

    @property
    def key(self) -> bytes: ...
    @property
    def bypass(self) -> bool: ...
    def store(self, output: Any) -> None: ...
    def recheck(self) -> tuple[bool, Any]: ...
    def failed(self) -> None: ...


class PythonMiss(Miss, Protocol):
    """``PythonPending``: also carries the flights' finished count read before its lookup."""

    @property
    def before(self) -> int: ...
    async def astore(self, output: Any) -> None: ...
    async def arecheck(self) -> tuple[bool, Any]: ...


class Engine(Protocol):
    """What the wrappers use of an engine: the native ``Memoizer`` or ``engine.PythonMemo``.
    ``lookup`` returns the stored value (any object) or a ``Miss`` (of type ``pending_type(engine)``)."""

    @property
    def wait(self) -> float: ...
    def lookup(self, args: tuple[Any, ...], kwargs: dict[str, Any] | None = None) -> Any: ...


class CountingEngine(Engine, Protocol):
    """An engine whose wrapper counts calls itself (``passthrough``: the Python engine)."""

    def count(self, name: str) -> None: ...
    def failed(self) -> None: ...


class PythonEngine(CountingEngine, Protocol):
    """``engine.PythonMemo`` (imported by name only: it imports this module)."""

    #: Seconds of a shared-flight lease, or None: misses computed once per process.
    lease: float | None

    async def alookup(self, args: tuple[Any, ...], kwargs: dict[str, Any] | None = None) -> Any: ...

    @property
    def pending_type(self) -> type[PythonMiss]: ...


def pending_type(engine: Engine) -> type[Miss]:
    """The type of ``engine.lookup``'s misses (no stored value is ever of this type)."""
    return Pending if isinstance(engine, Memoizer) else cast("PythonEngine", engine).pending_type


def _run(pending: Miss, func: Func, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    try:
        output = func(*args, **kwargs)
    except Exception as err:
        pending.failed()
        if getattr(pending, "stale", None) is not None:  # stale_if_error may answer (memo/freshness.py)
            return cast("PythonPending", pending).fallback(err)
        raise
    pending.store(output)
    return output


def passthrough(engine: CountingEngine, func: Func, kind: str, view: EngineView) -> Any:
    """For backends that store nothing (NoCache): every call runs the function (no single-flight, no
    recording), counted as a miss; exceptions count as errors."""
    def miss() -> None:
        check_stack()  # `func(*args, **kwargs)` uses C stack per level: RecursionError, not a segfault
        view.tally("misses")
        engine.count("misses")

    if kind == "async":

        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            miss()
            try:
                return await func(*args, **kwargs)
            except Exception:
                engine.failed()
                raise

        return async_wrapper

    if kind == "asyncgen":

        async def async_gen_wrapper(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            miss()
            try:
                async for item in func(*args, **kwargs):
                    yield item
            except Exception:
                engine.failed()
                raise

        return async_gen_wrapper

    if kind == "gen":

        def gen_wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
            miss()
            try:
                return (yield from func(*args, **kwargs))
            except Exception:
                engine.failed()
                raise

        return gen_wrapper

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        miss()
        try:
            return func(*args, **kwargs)
        except Exception:
            engine.failed()
            raise

    return wrapper


def sync_wrapper(engine: PythonEngine, func: Func, view: EngineView) -> Func:
    """Plain functions on backends without a native store; concurrent misses of a key run it once (in
    this process, or across processes under ``shared_flight``)."""
    lookup, pending_cls, flights, wait, lease = engine.lookup, engine.pending_type, view.flights, engine.wait, engine.lease

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        found: Any = lookup(args, kwargs)
        if type(found) is not pending_cls:
            return found
        if found.bypass:
            return _run(found, func, args, kwargs)
        run = lambda: _run(found, func, args, kwargs)  # noqa: E731
        if lease is not None:  # the process's leader leads for every process sharing the store
            pending = cast("PythonPending", found)
            return flights.run(found.key, found.before, lambda: shared_flight.lead(view, pending, run, wait, lease),
                               found.recheck, wait)
        return flights.run(found.key, found.before, run, found.recheck, wait)

    return wrapper


# How a coroutine wrapper stores a result: in the loop's thread, in a worker thread (a blocking backend),
# or by awaiting the backend's coroutine primitives.
INLINE, OFFLOAD, AWAIT = 0, 1, 2


async def _arun(pending: Miss, func: Func, args: tuple[Any, ...], kwargs: dict[str, Any], how: int) -> Any:
    try:
        output = await func(*args, **kwargs)
    except Exception as err:
        pending.failed()
        if getattr(pending, "stale", None) is not None:  # stale_if_error may answer (memo/freshness.py)
            return cast("PythonPending", pending).fallback(err)
        raise
    if how == OFFLOAD:
        await to_thread(pending.store, output)
    elif how == AWAIT:
        await cast("PythonMiss", pending).astore(output)
    else:
        pending.store(output)
    return output


def async_wrapper(engine: Engine, func: Func, view: EngineView) -> Func:
    """Coroutine functions: the wrapper is a coroutine function; concurrent misses of a key in one event
    loop await one computation; the stored value is the awaited result, never a coroutine."""
    lookup, pending_cls, flights, wait = engine.lookup, pending_type(engine), view.async_flights, engine.wait
    lease: float | None = getattr(engine, "lease", None)  # the Python engine's shared flight

    def leading(found: Any, args: tuple[Any, ...], kwargs: dict[str, Any], how: int) -> Callable[[], Awaitable[Any]]:
        """What a miss runs: the function, under the key's lease across processes when shared."""
        run = lambda: _arun(found, func, args, kwargs, how)  # noqa: E731
        if lease is None:
            return run
        return lambda: shared_flight.alead(view, found, run, wait, lease)

    if not view.capabilities.blocking_io:

        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            before = flights.finished
            found: Any = lookup(args, kwargs)
            if type(found) is not pending_cls:
                return found
            if found.bypass:
                return await _arun(found, func, args, kwargs, INLINE)

            async def recheck() -> tuple[bool, Any]:
                return found.recheck()

            return await flights.run(found.key, lambda: _arun(found, func, args, kwargs, INLINE), before, recheck, wait)

        return wrapper

    if view.capabilities.async_io:  # only the Python engine runs on a view with coroutine primitives
        python_engine = cast("PythonEngine", engine)
        alookup, python_pending = python_engine.alookup, python_engine.pending_type

        async def awaited(*args: Any, **kwargs: Any) -> Any:
            before = flights.finished
            found: Any = await alookup(args, kwargs)
            if type(found) is not python_pending:
                return found
            if found.bypass:
                return await _arun(found, func, args, kwargs, AWAIT)
            return await flights.run(found.key, leading(found, args, kwargs, AWAIT), before, found.arecheck, wait)

        return awaited

    async def offloaded(*args: Any, **kwargs: Any) -> Any:
        before = flights.finished
        found: Any = await to_thread(lookup, args, kwargs)
        if type(found) is not pending_cls:
            return found
        if found.bypass:
            return await _arun(found, func, args, kwargs, OFFLOAD)
        return await flights.run(
            found.key,
            leading(found, args, kwargs, OFFLOAD),
            before,
            lambda: to_thread(found.recheck),
            wait,
        )

    return offloaded


def gen_wrapper(engine: Engine, func: Func, view: EngineView) -> Func:
    """Generator functions. The lookup happens at the call (as argument binding does for a generator
    function). A hit returns a ``Replay`` of the stored items, a generator-like iterator as fast as a
    list's; a miss returns a generator that records what it yields and stores it once it has run to the
    end."""
    lookup, pending_cls = engine.lookup, pending_type(engine)

    def wrapper(*args: Any, **kwargs: Any) -> Iterator[Any]:
        found: Any = lookup(args, kwargs)
        if type(found) is not pending_cls:
            return Replay(found)
        return _record(found, func(*args, **kwargs))

    return GeneratorFunction(wrapper, func)


class GeneratorFunction:
    """A memoized generator function. It returns a generator on a miss and a ``Replay`` on a hit, so it
    cannot be a Python generator function itself; like Cython's compiled functions, it exposes the wrapped
    function's ``__code__``, ``__defaults__`` and ``__kwdefaults__``, so ``inspect.isgeneratorfunction``
    and ``inspect.signature`` see what they would see on the original."""

    def __init__(self, call: Func, func: Func) -> None:
        self._call = call
        functools.update_wrapper(self, func)
        for name in ("__code__", "__defaults__", "__kwdefaults__"):
            if hasattr(func, name):
                setattr(self, name, getattr(func, name))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._call(*args, **kwargs)

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        return self if obj is None else types.MethodType(self, obj)

    def __reduce__(self) -> str:
        return self.__qualname__  # type: ignore[attr-defined,no-any-return]  # by reference, like functions

    def __copy__(self) -> GeneratorFunction:
        return self  # as for functions: the entries live in the cache, there is nothing to copy

    def __deepcopy__(self, memo: Any) -> GeneratorFunction:
        return self

    def __repr__(self) -> str:
        return f"<memoized generator function {self.__qualname__}>"  # type: ignore[attr-defined]


# Items that cannot change after they are yielded: recorded as they are.
_IMMUTABLE = frozenset({int, float, str, bytes, bool, type(None), complex})


class _Items:
    """The items of a generator run as the consumer saw each one when it was yielded: a generator may
    yield one buffer again and again, changing it in between, and a replay must not show its last state
    at every step. Each item is copied through the value codec when yielded (immutable scalars need no
    copy). An item the codec cannot copy is kept as it is, and a run that yielded such an object twice
    cannot be replayed faithfully: it is not stored (``replayable`` is False)."""

    __slots__ = ("items", "kept", "replayable")

    def __init__(self) -> None:
        self.items: list[Any] = []  # immutable items, or the codec bytes of a copy (decoded by `result`)
        self.kept: set[int] = set()  # ids of the items kept as objects
        self.replayable = True

    def add(self, item: Any) -> None:
        if type(item) in _IMMUTABLE:
            self.items.append(item)
            return
        try:
            self.items.append(_Copy(encode_binary(item)))
        except ValueEncodingError:
            if id(item) in self.kept:
                self.replayable = False
            self.kept.add(id(item))
            self.items.append(item)

    def result(self) -> list[Any]:
        return [decode_binary(i.data) if type(i) is _Copy else i for i in self.items]


class _Copy:
    """An item recorded as the codec bytes of its copy."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


def _record(pending: Miss, gen: Generator[Any, Any, Any]) -> Generator[Any, Any, None]:
    """Yields what ``gen`` yields (forwarding ``send`` and ``throw``, like ``yield from``) and stores the
    items after a complete run. A run the consumer steered (a value sent, an exception thrown in) is not
    a function of the inputs alone, so it is not stored."""
    items = _Items()
    steered = throwing = False
    arg: Any = None
    while True:
        try:
            item = gen.throw(arg) if throwing else gen.send(arg)
        except StopIteration:
            break
        except Exception:
            if not steered:
                pending.failed()
            raise
        items.add(item)
        try:
            arg = yield item
            throwing = False
            steered = steered or arg is not None
        except GeneratorExit:
            gen.close()  # break, close() or partial consumption: nothing stored
            raise
        except BaseException as thrown:
            steered = throwing = True
            arg = thrown
    if not steered and items.replayable:
        pending.store(items.result())


def async_gen_wrapper(engine: Engine, func: Func, view: EngineView) -> Func:
    """Async generator functions: the lookup happens at the first step; a hit yields the stored items,
    a miss records and stores after a complete run (as ``_record``)."""
    lookup, pending_cls = engine.lookup, pending_type(engine)
    offload = view.capabilities.blocking_io

    async def in_thread_if(offload: bool, fn: Callable[..., Any], *args: Any) -> Any:
        return await to_thread(fn, *args) if offload else fn(*args)

    async def wrapper(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        found: Any = await in_thread_if(offload, lookup, args, kwargs)
        if type(found) is not pending_cls:
            for item in found:
                yield item
            return
        agen = func(*args, **kwargs)
        items = _Items()
        steered = throwing = False
        arg: Any = None
        while True:
            step: Awaitable[Any] = agen.athrow(arg) if throwing else agen.asend(arg)
            try:
                item = await step
            except StopAsyncIteration:
                break
            except Exception:
                if not steered:
                    found.failed()
                raise
            items.add(item)
            try:
                arg = yield item
                throwing = False
                steered = steered or arg is not None
            except GeneratorExit:
                await agen.aclose()
                raise
            except BaseException as thrown:
                steered = throwing = True
                arg = thrown
        if not steered and items.replayable:
            await in_thread_if(offload, found.store, items.result())

    return wrapper
