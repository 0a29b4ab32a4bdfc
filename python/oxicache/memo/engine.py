"""``memoize``: picks the wrapper for a callable once, at decoration time.

Two *engines* turn a call into "the stored value, or a pending miss to complete":

- the native ``Memoizer`` on backends with a native store (``InMemCache``): binding, key building and
  lookup in one call into Rust. For plain functions the Memoizer itself is the wrapper;
- ``PythonMemo`` over the five backend primitives, for every other backend.

The wrappers for each kind of function (plain, coroutine, generator, async generator) are written once
over that interface, in ``wrappers.py``; batch functions in ``batch.py``.
"""

from __future__ import annotations

import functools
import sys
import threading
import types
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from oxicache.memo import code_version, custom_key, freshness, revalidate, tags
from oxicache.memo import wrappers as _wrappers
from oxicache.memo.result_types import allow_result_types
from oxicache._core import Binder, CacheEntry, Memoizer, install_vectorcall
from oxicache.memo.signature import (
    CO_ASYNC_GENERATOR,
    CO_COROUTINE,
    CO_GENERATOR,
    VAR_KEYWORD,
    ClosureIdentity,
    ParamSpec,
    memo_identity,
    param_specs,
    plain_function,
    validate_exclude,
)
from oxicache.controls import BYPASS, MAX_AGE, NORMAL, REFRESH, current_mode
from oxicache.durations import TTL, parse_ttl, resolve_ttl
from oxicache.errors import CacheWarning, IdentityWarning, KeyEncodingError, ValueDecodingError, ValueEncodingError
from oxicache.callsite import to_thread, warn
from oxicache.failures import backend_failed
from oxicache.switch import unless_disabled
from oxicache.info import CacheInfo

#: Debug events of memoized calls on the Python engine (every backend but InMemCache's native wrapper):
#: hit, miss, stored, backend error. Off unless DEBUG is enabled for "oxicache.memo" (or "oxicache"):
#: a hit or a miss asks isEnabledFor once (a cached dict lookup in logging), a store or a failure once more.


class _MemoLog:
    """The "oxicache.memo" logger once anything has imported ``logging``; until then no level or handler
    can have been set that would show a debug event, so none is, and the engine does not import logging
    itself (4 ms of a short script's start)."""

    def isEnabledFor(self, level: int) -> bool:  # noqa: N802 - logging's name
        logging = sys.modules.get("logging")
        if logging is None:
            return False
        global log
        log = logging.getLogger("oxicache.memo")
        return bool(log.isEnabledFor(level))


log: Any = _MemoLog()
_DEBUG = 10  # logging.DEBUG

if TYPE_CHECKING:
    from dataclasses import dataclass

    from oxicache.backends.tiered import FrontTier
    from oxicache.memo.tags import TagsOption
    from oxicache.base import BaseCache, EngineView
else:
    from oxicache._light import dataclass  # a frozen dataclass without importing inspect (_light.py)

__all__ = ["Options", "decorate", "make_engine", "make_memoized"]

T = TypeVar("T")


@dataclass(frozen=True)
class Options:
    """The decorator's options, as given."""

    name: str | None = None
    exclude: Iterable[str] | None = None
    annotation: Mapping[str, Any] | None = None
    ttl: TTL | Callable[[Any], Any] = None
    version: str | int | None = None
    cache_if: Callable[[Any], Any] | None = None
    wait_timeout: TTL = None
    shared_flight: bool | None = None
    # Freshness (docs/memoize.md): a key function, a TTL spread, a fallback window on errors, ages kept.
    # (``ttl`` may also be a callable on the result.)
    key: Callable[..., Any] | None = None
    jitter: float | str | Any = None
    stale_if_error: TTL = None
    track_age: bool = False
    stale: TTL = None
    tags: TagsOption = None  # labels for cache.invalidate(tags=...) (tags.py)
    # Classes decoding may revive for this function, on top of its return annotation's (result_types.py).
    types: Iterable[type] | None = None


def function_kind(func: Callable[..., Any]) -> str:
    """"asyncgen", "async", "gen" or "sync", decided once at decoration."""
    if plain_function(func):  # what inspect would read, without importing it (signature.py)
        flags = func.__code__.co_flags
        return ("asyncgen" if flags & CO_ASYNC_GENERATOR else "async" if flags & CO_COROUTINE
                else "gen" if flags & CO_GENERATOR else "sync")
    import inspect

    if inspect.isasyncgenfunction(func):
        return "asyncgen"
    if inspect.iscoroutinefunction(func):
        return "async"
    if inspect.isgeneratorfunction(func):
        return "gen"
    return "sync"


def versioned(identity: str, version: str | int | None) -> str:
    """The identity with the decorator's ``version``: part of every key, so a new version never reads
    entries of an old one."""
    if version is None:
        return identity
    if isinstance(version, bool) or not isinstance(version, (str, int)) or version == "":
        msg = f"version must be a non-empty str or an int, got {version!r}"
        raise TypeError(msg)
    return f"{identity}@{version}"


def make_engine(cache: BaseCache, func: Callable[..., Any], options: Options,
                view: EngineView | None = None, keyed: Callable[..., Any] | None = None) -> Memoizer | PythonMemo:
    """The engine for ``func`` on ``cache`` (through ``view``, by default the cache's own): validates the
    options and builds a native ``Memoizer`` or a ``PythonMemo``. Both offer ``lookup(args, kwargs)`` and
    the ``cache_*`` helpers. ``keyed``: under ``key=``, the stand-in to key and call instead of ``func``
    (``custom_key.py``)."""
    if view is None:
        view = cache.engine_view()
    allow_result_types(func, options.types)  # once here, so a read in a new process revives them
    # A store other processes read (not InMemCache's, not NoCache's nothing) needs identities that do not
    # depend on decoration order: local functions and lambdas are then named by code and closure values.
    shared = view.capabilities.shared
    base_identity, private = memo_identity(func, options.name, shared=shared)
    if isinstance(base_identity, ClosureIdentity):
        _say_how_a_closure_is_named(base_identity.base, type(cache).__name__)
    identity: str | Callable[[], str]
    # version="auto": a fingerprint of the code the function depends on in its module (code_version.py)
    version = code_version.code_version(func) if options.version == code_version.AUTO else options.version
    if isinstance(base_identity, ClosureIdentity):
        closure = base_identity
        versioned(closure.base, version)  # validates the version now
        identity = lambda: versioned(closure.current(), version)  # noqa: E731 - looked at on every call
    else:
        identity = versioned(base_identity, version)
    called = func if keyed is None else keyed
    specs = param_specs(called)
    own_exclude = validate_exclude(options.exclude)
    has_var_kw = any(kind == VAR_KEYWORD for _, kind, _, _ in specs)
    unknown = sorted(own_exclude - {n for n, *_ in specs})
    if unknown and not has_var_kw:
        msg = f"exclude names {unknown} that are not parameters of {identity if isinstance(identity, str) else closure.base}; parameters: {[n for n, *_ in specs]}"
        raise ValueError(msg)
    annotation = options.annotation
    if annotation is not None and not isinstance(annotation, Mapping):
        msg = f"annotation must be a dict, got {type(annotation).__name__}"
        raise TypeError(msg)
    if options.cache_if is not None and not callable(options.cache_if):
        msg = f"cache_if must be a function taking the result and returning True to store it, got {options.cache_if!r}"
        raise TypeError(msg)
    metadata: dict[str, Any] | None = {"annotation": dict(annotation)} if annotation else None
    fixed_tags, tagger = tags.resolve(options.tags)
    if fixed_tags:
        metadata = {**(metadata or {}), "tags": fixed_tags}
    seconds = resolve_ttl(None if callable(options.ttl) else options.ttl, annotation)
    func_kind = function_kind(func)  # decided once: three settings below depend on it
    fresh = freshness.make_freshness(options.ttl, cache.ttl if seconds is None else seconds, options.jitter,
                                     options.stale_if_error, options.track_age, func_kind, options.stale)
    # Under key= only the key function's value is keyed; the arguments (`call`) never are.
    exclude = own_exclude | cache.exclude if keyed is None else frozenset({custom_key.CALL})
    wait = parse_ttl(options.wait_timeout, what="wait_timeout") or cache.wait_timeout
    lease = _lease_seconds(cache, view, options.shared_flight, func_kind)
    # The native store keeps no ages, and stores fixed metadata only: those functions take the Python engine.
    store = view.native_store if fresh is None and tagger is None else None
    if store is not None:
        assert isinstance(identity, str)  # closures get a ClosureIdentity on shared stores only
        return _ready(Memoizer(called, store, identity, specs, sorted(exclude), seconds, metadata, options.cache_if,
                               wait, private))
    memo = PythonMemo(view, called, identity, specs, exclude, seconds, metadata, options.cache_if, wait, shared,
                      lease)
    memo.freshness = fresh
    memo.tagger = tagger
    if fresh is not None and fresh.stale is not None:
        memo.revalidator = revalidate.Revalidator(memo, fresh.stale, func_kind)
    return memo


_NAMED_CLOSURES: set[str] = set()  # qualnames already explained (once per function per process)


def _say_how_a_closure_is_named(base: str, backend: str) -> None:
    if base in _NAMED_CLOSURES:
        return
    _NAMED_CLOSURES.add(base)
    warn(f"oxicache: {base} is a lambda or a local function memoized on {backend}, a store other processes "
         "and later runs read; its identity is its qualified name plus a fingerprint of its code and of the "
         "values it closes over (closing over an object without a key keeps its entries to this process), so "
         "editing it starts new entries. memoize(name='...') gives it a stable identity", IdentityWarning)


def _lease_seconds(cache: BaseCache, view: EngineView, asked: bool | None, kind: str) -> float | None:
    """How long a shared-flight lease lasts for this function, or None when its misses are computed once
    per process (the default): ``memoize(shared_flight=...)``, else the cache's ``shared_flight``."""
    if asked is not None and not isinstance(asked, bool):
        msg = f"shared_flight must be True or False, got {asked!r}"
        raise TypeError(msg)
    shared_flight = cache.shared_flight if asked is None else asked
    if not shared_flight:
        return None
    if not view.capabilities.leases:
        msg = (f"shared_flight=True needs a backend that grants leases across processes (RedisCache, DatabaseCache, "
               f"DiskCache, JsonCache); {type(cache).__name__} computes a miss once per process: drop shared_flight")
        raise ValueError(msg)
    if kind not in ("sync", "async"):
        msg = ("shared_flight=True is for plain and coroutine functions so far; a generator function's misses "
               "are computed once per process (a stream cannot wait on a lease yet): drop shared_flight for "
               "this function")
        raise ValueError(msg)
    return cache.lease_seconds


def bound_parts(func: Callable[..., Any]) -> tuple[Callable[..., Any], Any] | None:
    """``(function, object)`` of a bound method (``obj.method``, ``Class.classmethod``), else None.

    The object a method is bound to is an input of its result as much as any argument: memoizing
    ``prod.url`` and ``test.url`` must not share entries. So a bound method is memoized as its function,
    with the object as its first argument (keyed like any ``self``), and bound again. A builtin method
    bound to an object (``some_dict.get``) cannot be split so: it is refused.
    """
    if isinstance(func, types.MethodType):
        return func.__func__, func.__self__
    owner = getattr(func, "__self__", None)
    if isinstance(func, types.BuiltinMethodType) and owner is not None and not isinstance(owner, types.ModuleType):
        name = getattr(func, "__qualname__", repr(func))
        msg = (f"cannot memoize the builtin method {name} bound to a {type(owner).__name__}: its result depends on "
               f"that object, which is not an argument; memoize a function that takes the object as an argument")
        raise TypeError(msg)
    return None


def make_memoized(cache: BaseCache, func: Callable[..., Any], options: Options) -> Any:
    cache, options = unless_disabled(cache, options)  # OXICACHE_DISABLE, read once per decoration
    if not callable(func):
        msg = f"memoize expects a callable, got {type(func).__name__}; use @cache.memoize or @cache.memoize(name=...)"
        raise TypeError(msg)
    bound = bound_parts(func)
    if bound is not None:
        function, owner = bound
        return types.MethodType(make_memoized(cache, function, options), owner)
    kind = function_kind(func)
    view = cache.engine_view()
    if options.key is not None:
        custom_key.check(options.key, options.exclude, getattr(func, "__qualname__", repr(func)))
        keyed = custom_key.keyed_function(func, kind)
        engine = make_engine(cache, func, options, view, keyed)
        return custom_key.keyed_wrapper(_wrap(engine, keyed, kind, view), engine, func, options.key, kind)
    if kind == "sync" and view.front is not None and not _python_freshness(options):
        fronted = _fronted(cache, func, options, view.front)
        if fronted is not None:
            return fronted
    engine = make_engine(cache, func, options, view)
    if kind == "sync" and isinstance(engine, Memoizer):
        return functools.update_wrapper(engine, func)
    wrapper = decorate(_wrap(engine, func, kind, view), engine, func)
    if view.native_store is not None and (kind == "gen" or kind == "sync" and isinstance(engine, PythonMemo)):
        return _native_fresh_hits(wrapper, engine, func, view.native_store, replay=kind == "gen")
    if kind == "sync" and view.passthrough_counts is not None and isinstance(engine, PythonMemo):
        return _native_passthrough(wrapper, engine, func, view.passthrough_counts)
    return wrapper


def _ready(memo: Memoizer, func: Callable[..., Any] | None = None) -> Memoizer:
    """A native memoizer ready to be called: the vectorcall slot (installed once per process: calls then
    skip the argument tuple), debug events that follow the "oxicache.memo" logger (_logswitch.py), and,
    given ``func``, its ``functools.wraps``."""
    install_vectorcall(memo)
    from oxicache._logswitch import follow_level  # (imports logging: a native memoizer follows its level)

    follow_level()
    if func is not None:
        functools.update_wrapper(memo, func)
    return memo


def _native_passthrough(wrapper: Any, engine: PythonMemo, func: Callable[..., Any], counts: Any) -> Any:
    """A plain function on a backend that stores nothing (NoCache): a native ``Memoizer`` that runs it on
    every call, counting a miss (and an error when it raises) in its own and the cache's native counters:
    about a bare call's cost instead of a Python wrapper's (docs/benchmarks.md)."""
    if not isinstance(engine.identity, str):
        return wrapper
    specs = param_specs(func)
    outer = _ready(Memoizer(func, counts, engine.identity, specs, sorted(engine.exclude), passthrough=True), func)
    outer.cache_key, outer.cache_inputs = engine.cache_key, engine.cache_inputs  # type: ignore[method-assign]
    return outer


def _native_fresh_hits(wrapper: Any, engine: Memoizer | PythonMemo, func: Callable[..., Any], store: Any,
                       replay: bool = False) -> Any:
    """A native ``Memoizer`` in front of a wrapper on InMemCache that answers its fresh hits at the native
    hit's cost and hands every other call to the wrapper (rust/memo/mod.rs ``delegated``): for a plain
    function the Python engine memoizes (freshness options, tags), and for a generator function
    (``replay``: a hit is a ``Replay`` of the stored items, as the wrapper's would be). Fresh: the entry
    outlives now by its stale windows, which the engine keeps it past its TTL (``Freshness.kept_for``),
    so it is fresh by the engine's own stamp too."""
    if isinstance(engine, PythonMemo):
        identity, exclude, fresh = engine.identity, sorted(engine.exclude), engine.freshness
    else:
        identity, exclude, fresh = engine.cache_name, engine.excluded, None
    if not isinstance(identity, str):
        return wrapper
    margin = max([w for w in (fresh.stale_if_error, fresh.stale) if w is not None], default=0.0) if fresh else 0.0
    specs = param_specs(func)
    outer = _ready(Memoizer(wrapper, store, identity, specs, exclude, delegate=margin, replay=replay), func)
    if replay:  # function-like to inspect, as GeneratorFunction is: isgeneratorfunction(), signature()
        for name in ("__code__", "__defaults__", "__kwdefaults__"):
            if hasattr(func, name):
                setattr(outer, name, getattr(func, name))
    own_info, own_clear = outer.cache_info, outer.cache_clear  # the front's: its fresh hits

    def cache_info() -> CacheInfo:
        """The engine's counts, plus the hits the native front answered."""
        info = engine.cache_info()
        return CacheInfo(info.hits + own_info().hits, info.misses, info.maxsize, info.currsize, info.sets, info.errors)

    def cache_clear() -> None:
        own_clear()
        engine.cache_clear()

    outer.cache_info, outer.cache_clear = cache_info, cache_clear  # type: ignore[method-assign]
    outer.cache_key, outer.cache_inputs = engine.cache_key, engine.cache_inputs  # type: ignore[method-assign]
    return outer


def _python_freshness(options: Options) -> bool:
    """Options only the Python engine keeps (entry ages): such a function skips a native front too."""
    return (callable(options.ttl) or options.jitter is not None or options.stale_if_error is not None
            or options.track_age is True or options.stale is not None or callable(options.tags))


def _wrap(engine: Memoizer | PythonMemo, func: Callable[..., Any], kind: str, view: EngineView) -> Any:
    """The wrapper of ``func``'s kind over ``engine`` (the native memoizer is its own sync wrapper)."""
    if kind == "sync" and isinstance(engine, Memoizer):
        return engine
    if view.capabilities.stores_nothing:
        assert isinstance(engine, PythonMemo)  # a store of nothing has no native store
        wrapper = _wrappers.passthrough(engine, func, kind, view)
    elif kind == "sync":
        assert isinstance(engine, PythonMemo)  # the native memoizer is its own sync wrapper (above)
        wrapper = _wrappers.sync_wrapper(engine, func, view)
    else:
        make = {
            "async": _wrappers.async_wrapper,
            "gen": _wrappers.gen_wrapper,
            "asyncgen": _wrappers.async_gen_wrapper,
        }[kind]
        wrapper = make(engine, func, view)
        if kind in ("async", "asyncgen") and isinstance(engine, PythonMemo) and engine.revalidator is not None:
            wrapper = revalidate.loop_bound(wrapper, kind)  # its refreshes are tasks on the caller's loop
    return wrapper


def _fronted(cache: BaseCache, func: Callable[..., Any], options: Options, front: FrontTier) -> Memoizer | None:
    """A plain function on a cache with a native memory tier in front (TieredCache): the wrapper is a
    ``Memoizer`` on the front's store, so a front hit costs an InMemCache hit. Its misses call the Python
    engine's wrapper over the tiers behind (lookup, single-flight, shared flight, store), and the Memoizer
    keeps the value in the front for the front's ttl (at most the entry's). None for a function whose
    identity changes with its closure's values: it then takes the Python engine, front included."""
    behind = make_engine(cache, func, options, front.back_view)
    assert isinstance(behind, PythonMemo)  # the view behind a front has no native store
    if not isinstance(behind.identity, str):
        return None
    inner = _wrappers.sync_wrapper(behind, func, front.back_view)
    functools.update_wrapper(inner, func)
    entry_ttl = cache.ttl if behind.ttl is None else behind.ttl
    ttl = front.ttl if entry_ttl is None else min(front.ttl, entry_ttl)
    specs = param_specs(func)
    outer = _ready(Memoizer(inner, front.store, behind.identity, specs, sorted(behind.exclude), ttl, behind.metadata,
                            behind.keep, behind.wait, False), func)
    front_info, front_clear = outer.cache_info, outer.cache_clear  # the Memoizer's own, of the front

    def cache_info() -> CacheInfo:
        """Every call counted once, as the front saw it, except that a front miss the back answered is a
        hit; sets and errors as the engine behind the front counted them."""
        front, info = front_info(), behind.cache_info()
        return CacheInfo(front.hits + info.hits, front.misses - info.hits, info.maxsize, info.currsize,
                         info.sets, info.errors)

    def cache_clear() -> None:
        front_clear()
        behind.cache_clear()  # the function's entries in every tier, announced to other processes

    outer.cache_info, outer.cache_clear = cache_info, cache_clear  # type: ignore[method-assign]
    return outer


def decorate(wrapper: Any, engine: Memoizer | PythonMemo, func: Callable[..., Any]) -> Any:
    """``functools.wraps`` plus the ``cache_*`` helpers of the engine."""
    functools.update_wrapper(wrapper, func)
    wrapper.cache_info = engine.cache_info
    wrapper.cache_clear = engine.cache_clear
    wrapper.cache_key = engine.cache_key
    wrapper.cache_inputs = engine.cache_inputs
    wrapper.cache_name = engine.cache_name
    return wrapper


# Raised inside a backend call, but not failures of the storage: a recursion too deep for the thread's
# stack (the caller's recursion, which a plain call would hit too) or memory exhausted.
_NOT_STORAGE_FAILURES = (RecursionError, MemoryError)


class PythonMemo:
    """The engine over the backend primitives (every backend without a native store)."""

    #: The type of ``lookup``'s misses (set below, once ``PythonPending`` exists).
    pending_type: ClassVar[type[PythonPending]]

    def __init__(self, view: EngineView, func: Callable[..., Any], identity: str | Callable[[], str],
                 specs: list[ParamSpec], exclude: frozenset[str], ttl: float | None,
                 metadata: dict[str, Any] | None, cache_if: Callable[[Any], Any] | None, wait: float,
                 shared: bool = True, lease: float | None = None) -> None:
        self.view, self.cache = view, view.cache
        self.func, self.identity = func, identity
        self.shared = shared  # other processes read the store: a key only this process can name is refused
        self.exclude, self.ttl, self.metadata, self.keep = exclude, ttl, metadata, cache_if
        self.wait = wait  # seconds a call waits for another computing its key (wait_timeout)
        self.lease = lease  # seconds of a shared-flight lease, or None: misses computed once per process
        # The native memoizer's binder: every backend binds arguments (defaults, keywords, variadics,
        # exclude) the same way.
        self.binder = Binder(specs, sorted(exclude))
        self.counts = dict.fromkeys(("hits", "misses", "sets", "errors"), 0)
        self.counts_lock = threading.Lock()
        #: Jitter, computed TTLs, stale_if_error, ages (freshness.py); None: the function uses none.
        self.freshness: freshness.Freshness | None = None
        #: Stale-while-revalidate (``stale=``, revalidate.py), or None.
        self.revalidator: revalidate.Revalidator | None = None
        #: Tags computed from each call's inputs (``tags=callable``, tags.py), or None.
        self.tagger: Callable[[dict[str, Any]], list[str]] | None = None

    @property
    def cache_name(self) -> str:
        """The function identity of calls made now (a closure's follows the values it closes over)."""
        return self.identity() if callable(self.identity) else self.identity

    def count(self, name: str) -> None:
        with self.counts_lock:
            self.counts[name] += 1

    def probe(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> CacheEntry:
        """The call as an entry without output, its key computed now (once: hooks run once per call); on a
        store other processes read, a key holding a class only this process can name is refused. Arguments
        that do not fit the signature raise the function's own TypeError, as a plain call would."""
        inputs = self.binder.inputs(args, kwargs)
        if inputs is None:
            self.raise_misfit(args, kwargs)
            import inspect

            inspect.signature(self.func).bind(*args, **kwargs)  # inspect's TypeError, for other callables
            msg = f"arguments do not match the signature of {self.cache_name}"
            raise TypeError(msg)
        probe = CacheEntry(self.cache_name, inputs, metadata=self.metadata)
        probe._pin_key(self.shared)
        return probe

    def raise_misfit(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Arguments that do not fit the signature: raises the function's own TypeError. Only for Python
        functions (coroutine and generator functions included), whose argument errors are raised before
        any of their code runs; for other callables inspect's error stands."""
        # (A decorated function's signature is its inner function's; calling the outer one could run code.)
        if isinstance(self.func, types.FunctionType) and not hasattr(self.func, "__wrapped__"):
            try:
                made = self.func(*args, **kwargs)
            except TypeError as err:
                raise err.with_traceback(None) from None
            close = getattr(made, "close", None)  # a coroutine or generator made anyway: never run it
            if callable(close):
                close()

    def lookup(self, args: tuple[Any, ...], kwargs: dict[str, Any] | None = None) -> Any:
        """The stored value of the call, or a ``PythonPending`` to complete."""
        probe, mode, before = self.begin(args, kwargs)
        if mode != NORMAL and mode != MAX_AGE:
            return self.skip(probe, mode, before)
        failures: list[BaseException] = []
        try:  # read(), without a closure per call: this is every hit's path
            found = self.view.lookup(probe, self.func)
        except Exception as err:
            self.read_failed(err, None, failures)
            found = None
        return self.answer(probe, mode, before, found, failures, args, kwargs)

    def lookup_many(self, calls: list[tuple[tuple[Any, ...], dict[str, Any]]]) -> list[Any]:
        """``lookup`` of each call (a batch of ``batch_memoize``): the stored values read in one
        ``lookup_many`` of the cache (one round trip where the store can), a storage failure reported
        once and every looked-up call then a miss."""
        begun = [self.begin(args, kwargs) for args, kwargs in calls]
        looked = [i for i, (_, mode, _) in enumerate(begun) if mode in (NORMAL, MAX_AGE)]  # as lookup
        failures: list[BaseException] = []
        found: list[CacheEntry | None] | None = []
        if looked:
            probes = [begun[i][0] for i in looked]
            found = self.read(lambda: self.view.lookup_many(probes, self.func), None, failures)
        entries = dict(zip(looked, found or [None] * len(looked)))
        return [self.answer(probe, mode, before, entries[i], failures, *calls[i]) if i in entries
                else self.skip(probe, mode, before) for i, (probe, mode, before) in enumerate(begun)]

    async def alookup(self, args: tuple[Any, ...], kwargs: dict[str, Any] | None = None) -> Any:
        """``lookup`` through the backend's coroutine primitives (``capabilities.async_io``)."""
        probe, mode, before = self.begin(args, kwargs)
        if mode != NORMAL and mode != MAX_AGE:
            return self.skip(probe, mode, before)
        failures: list[BaseException] = []
        found = await self.aread(lambda: self.view.alookup(probe), None, failures)
        return self.answer(probe, mode, before, found, failures, args, kwargs)

    @property
    def without_cache(self) -> str:
        return f"{self.cache_name} ran without the cache"

    def begin(self, args: tuple[Any, ...], kwargs: dict[str, Any] | None) -> tuple[CacheEntry, int, int]:
        """A lookup's start: the probe, the per-call mode, the flights' finished count."""
        return self.probe(args, kwargs or {}), current_mode(), self.view.flights.finished_count()

    def skip(self, probe: CacheEntry, mode: int, before: int) -> PythonPending:
        """A call under bypass() or refresh(): a miss without looking."""
        self.view.tally("misses")
        self.count("misses")
        if mode == BYPASS:
            return PythonPending(self, probe, before, mode)
        return PythonPending(self, probe._call_snapshot(), before, mode)

    def answer(self, probe: CacheEntry, mode: int, before: int, found: CacheEntry | None,
               failures: list[BaseException], args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None) -> Any:
        """A lookup's end: the stored value, or the miss to complete."""
        stale = None
        if found is not None and found.value is ...:
            found = None  # an entry without output (set() without output=, an import) answers no call
        if found is not None and not self.acceptable(found, mode):
            swr = self.revalidator
            if swr is not None and mode == NORMAL and swr.serve(found, probe, probe._call_snapshot, args, kwargs or {}):
                self.count("hits")  # within the stale window: answered now, refreshed in the background
                return found.value
            stale, found = found, None  # past its TTL (kept for stale_if_error) or older than max_age()
        if found is not None:
            self.count("hits")
            if log.isEnabledFor(_DEBUG):
                log.debug("hit %s key=%032x on %s", self.cache_name, probe.key, type(self.cache).__name__)
            return found.value
        self.count("misses")
        if log.isEnabledFor(_DEBUG):
            log.debug("miss %s key=%032x on %s", self.cache_name, probe.key, type(self.cache).__name__)
        # The entry to store is the call as it is now, before the function runs (which may change its
        # arguments, as may the caller afterwards): copies of the arguments, the key already computed.
        pending = PythonPending(self, probe._call_snapshot(), before, mode, warned=bool(failures))
        pending.stale = stale
        return pending

    def acceptable(self, found: CacheEntry, mode: int) -> bool:
        """A found entry may answer the call: one with a value (not an entry without output), fresh enough
        when the function keeps ages or max_age() is on."""
        if found.value is ...:
            return False
        if self.freshness is None and mode != MAX_AGE:
            return True
        return freshness.acceptable(found, mode)

    def store(self, probe: CacheEntry, output: Any, warned: bool = False, token: str | None = None) -> bool:
        """Stores the call's result; False when nothing was stored. ``warned``: the call's lookup already
        reported the backend failing (one warning per call: a store failing for the same reason is
        counted, not warned again). ``token``: the shared-flight lease the call holds; the store then
        also releases it, and stores nothing if the lease was lost meanwhile."""
        entry, ttl = self.kept(probe, output)
        if entry is None:
            return False
        try:
            if token is None:
                self.view.store(entry, ttl)  # counts the cache's set
            elif not self.view.store_leased(entry, ttl, token):
                return False  # another process leads this key now: what it stores stands
        except _NOT_STORAGE_FAILURES:
            raise
        except Exception as err:
            return self.not_stored(err, warned)
        self.count("sets")
        if log.isEnabledFor(_DEBUG):
            log.debug("stored %s key=%032x on %s", self.cache_name, entry.key, type(self.cache).__name__)
        return True

    async def astore(self, probe: CacheEntry, output: Any, warned: bool = False) -> bool:
        """``store`` through the backend's coroutine primitives (no lease: shared flight is for plain
        functions)."""
        entry, ttl = self.kept(probe, output)
        if entry is None:
            return False
        try:
            await self.view.astore(entry, ttl)
        except _NOT_STORAGE_FAILURES:
            raise
        except Exception as err:
            return self.not_stored(err, warned)
        self.count("sets")
        if log.isEnabledFor(_DEBUG):
            log.debug("stored %s key=%032x on %s", self.cache_name, entry.key, type(self.cache).__name__)
        return True

    def kept(self, probe: CacheEntry, output: Any) -> tuple[CacheEntry | None, float | None]:
        """The entry to store and how long the backend keeps it, or None when nothing is stored (a
        store of nothing, ``cache_if`` said no, a computed TTL already over)."""
        if self.view.capabilities.stores_nothing or output is ... or (self.keep is not None and not self.keep(output)):
            return None, None  # (`...` is "no output": an entry of it would answer no call)
        fresh, metadata = self.freshness, self.metadata
        if self.tagger is not None:
            metadata = {**(metadata or {}), "tags": self.tagger(probe.inputs)}
        if fresh is None:
            if metadata is self.metadata:
                return probe.clone(output=output), self.ttl
            return probe.clone(output=output, metadata=metadata), self.ttl
        ttl = fresh.ttl_for(output)
        if ttl == freshness.SKIP:
            return None, None
        return probe.clone(output=output, metadata=fresh.stamp(metadata or {}, ttl)), fresh.kept_for(ttl)

    def not_stored(self, err: Exception, warned: bool) -> bool:
        """A store that failed: the caller still gets its value; nothing was written, so any previous
        entry survives. Returns False."""
        if isinstance(err, ValueEncodingError):
            self.view.tally("backend_errors")
            if self.cache.on_backend_error == "raise":
                raise err
            if self.cache.on_backend_error == "warn":
                warn(f"oxicache: the result of {self.cache_name} was not cached: {err}", CacheWarning)
            return False
        # The backend failed (disk full, permissions, a lost connection): the computed value is still
        # right, so by default the caller gets it, with a warning, rather than losing it to storage.
        self.backend_failed(err, f"the result of {self.cache_name} was not cached", quiet=warned)
        return False

    def failed(self) -> None:
        self.view.tally("errors")
        self.count("errors")

    def read(self, lookup: Callable[[], T], what: str | None = None,
             failures: list[BaseException] | None = None) -> T | None:
        """``lookup()``, with a storage failure handled by the cache's ``on_backend_error`` as a miss
        (``read_failed``). ``what``: the warning's words (default: the function ran without the cache)."""
        try:
            return lookup()
        except Exception as err:
            self.read_failed(err, what, failures)
            return None

    async def aread(self, lookup: Callable[[], Awaitable[T]], what: str | None = None,
                    failures: list[BaseException] | None = None) -> T | None:
        """``read`` of a coroutine lookup."""
        try:
            return await lookup()
        except Exception as err:
            self.read_failed(err, what, failures)
            return None

    def read_failed(self, err: Exception, what: str | None, failures: list[BaseException] | None) -> None:
        """A lookup raised ``err``: a storage failure is reported (``on_backend_error``) and added to
        ``failures``; the caller reads it as a miss. A damaged record under the "raise" policy (a
        ValueDecodingError) propagates as it is, and so does an argument without a key (KeyEncodingError,
        raised while the key is built): that is the caller's error, not the backend's, and the function
        must not run."""
        if isinstance(err, (ValueDecodingError, KeyEncodingError, *_NOT_STORAGE_FAILURES)):
            raise err
        self.backend_failed(err, self.without_cache if what is None else what)
        if failures is not None:
            failures.append(err)

    def backend_failed(self, err: Exception, what: str, quiet: bool = False) -> None:
        self.view.tally("backend_errors")
        if log.isEnabledFor(_DEBUG):
            log.debug("backend error on %s: %s", type(self.cache).__name__, what, exc_info=err)
        policy = self.cache.on_backend_error
        backend_failed("ignore" if quiet and policy == "warn" else policy, what, err)

    def cache_info(self) -> CacheInfo:
        size = self.view.count_func(self.cache_name)
        with self.counts_lock:
            c = dict(self.counts)
        return CacheInfo(c["hits"], c["misses"], self.cache.max_size, size, c["sets"], c["errors"])

    def cache_clear(self) -> None:
        self.view.clear_func(self.cache_name)
        with self.counts_lock:
            self.counts = dict.fromkeys(self.counts, 0)

    def cache_key(self, *args: Any, **kwargs: Any) -> int:
        return self.probe(args, kwargs).key

    def cache_inputs(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return self.probe(args, kwargs).inputs


class PythonPending:
    """A missed lookup of ``PythonMemo``: the wrapper runs the function, then calls ``store``."""

    __slots__ = ("before", "memo", "mode", "probe", "stale", "token", "warned")

    def __init__(self, memo: PythonMemo, probe: CacheEntry, before: int, mode: int, warned: bool = False) -> None:
        self.memo, self.probe, self.before, self.mode = memo, probe, before, mode
        self.warned = warned  # the lookup already reported the backend failing
        self.token: str | None = None  # the shared-flight lease this call holds (memo/shared_flight.py)
        self.stale: CacheEntry | None = None  # the entry found but refused as too old (stale_if_error)

    def fallback(self, err: Exception) -> Any:
        """A failing call's answer: the stale entry's value under ``stale_if_error``, else ``err``."""
        fresh = self.memo.freshness
        if fresh is None:
            raise err
        return fresh.fallback(self.stale, err, self.memo.cache_name)

    def acceptable(self, found: CacheEntry) -> bool:
        return self.memo.acceptable(found, self.mode)

    @property
    def bypass(self) -> bool:
        return self.mode == BYPASS

    @property
    def refresh(self) -> bool:
        return self.mode == REFRESH

    @property
    def key(self) -> bytes:
        return self.probe.key.to_bytes(16, "big")

    def store(self, output: Any) -> None:
        if self.bypass:
            return
        token, self.token = self.token, None
        stored = self.memo.store(self.probe, output, self.warned, token)
        if token is not None and not stored:
            self.token = token  # not released by a store: the leader gives it up itself

    async def astore(self, output: Any) -> None:
        if self.bypass:
            return
        if self.token is not None:  # a shared-flight leader's store also releases its lease: one blocking step
            await to_thread(self.store, output)
            return
        await self.memo.astore(self.probe, output, self.warned)

    def failed(self) -> None:
        self.memo.failed()

    async def arecheck(self) -> tuple[bool, Any]:
        """``recheck`` through the backend's coroutine primitives."""
        if self.mode == REFRESH:
            return (False, None)
        found = await self.memo.aread(lambda: self.memo.view.apeek(self.probe))
        return (False, None) if found is None or not self.acceptable(found) else (True, found.value)

    def recheck(self) -> tuple[bool, Any]:
        """For single-flight: a value stored since the lookup missed (not counted). Under refresh() the
        stored value is what is being replaced, so there is none to take."""
        if self.mode == REFRESH:
            return (False, None)
        found = self.memo.read(lambda: self.memo.view.peek(self.probe))
        return (False, None) if found is None or not self.acceptable(found) else (True, found.value)


PythonMemo.pending_type = PythonPending
