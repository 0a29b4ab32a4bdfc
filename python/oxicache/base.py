"""``BaseCache``: the public cache surface, built on five backend primitives (the storage contract).

A backend implements ``_get``, ``_set``, ``_remove``, ``_iter`` and ``_clear``, may override the
optional ones (``_has``, ``_get_many``, ``_len``, ``_count_func``, ``_clear_func``, ``verify``, ``close``), and declares
its ``capabilities``. ``_get`` and ``_remove`` take a *reference*: either an ``int`` key or a
``CacheEntry`` probe carrying ``func`` and ``inputs`` (its ``.key`` is computed on access, so a backend
that indexes by something else never pays for the digest). Everything else (the several spellings of
get/set/remove, annotation, exclusion, TTL parsing, statistics, memoize) is written once here, and only
this module calls the primitives: the memoize layer goes through ``EngineView``, every other layer
through the public methods. docs/backends/writing-a-backend.md is the contract in prose.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from oxicache._core import DEFAULT_WAIT_TIMEOUT, CacheEntry, MemoryStore, SingleFlight
from oxicache.memo.async_flight import AsyncFlights
from oxicache.memo.exclude import validate_exclude
from oxicache.memo.tags import check_tags
from oxicache.capabilities import Capabilities
from oxicache.durations import parse_ttl, resolve_ttl
from oxicache.codec import allow_types
from oxicache.failures import check_policy, damaged_record

TYPE_CHECKING = False  # not typing's: `import oxicache` does not load typing (oxicache/_light.py)
if TYPE_CHECKING:
    from datetime import timedelta
    from types import EllipsisType
    from typing import Any, Awaitable, Callable, ClassVar, Iterable, Iterator, ParamSpec, TypeVar

    from oxicache.backends.tiered import FrontTier
    from oxicache.durations import TTL
    from oxicache.memo.protocols import BatchMemoized, Memoized
    from oxicache.memo.tags import TagsOption

    P = ParamSpec("P")
    R = TypeVar("R")
if not TYPE_CHECKING:
    from oxicache._light import overload  # the checkers' (and pyflakes') overload is typing's, below
else:
    from typing import overload

__all__ = ["BaseCache", "Capabilities", "EngineView", "Ref"]

Ref = int | CacheEntry

# "Not given" for positional-only parameters whose None is meaningful.
_MISSING: Any = object()


def _as_key(key: Any) -> int:
    if isinstance(key, CacheEntry):
        return key.key
    if isinstance(key, bool):
        msg = f"cache keys are 128-bit ints (CacheEntry.key), got {key!r}"
        raise TypeError(msg)
    if isinstance(key, int):
        return key
    if isinstance(key, str):
        try:
            return int(key)
        except ValueError:
            msg = f"cache keys are 128-bit ints or their decimal strings, got {key!r}; look entries up by name with cache.get(func, **inputs)"
            raise KeyError(msg) from None
    msg = f"cache keys are 128-bit ints (CacheEntry.key) or CacheEntry objects, got {type(key).__name__}"
    raise TypeError(msg)


def _identity(func: Any) -> str:
    """The stored identity (``CacheEntry.func``) of a memoized function or of a name."""
    name = getattr(func, "cache_name", func)
    if not isinstance(name, str):
        msg = f"expected a memoized function or a function identity (a str, as in CacheEntry.func), got {func!r}"
        raise TypeError(msg)
    return name


class _Declared:
    """A capability read as an attribute, on the class as on an instance (``DatabaseCache.blocking_io``)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: BaseCache | None, cls: type[BaseCache]) -> bool:
        # An instance may declare its own (a TieredCache can do what its back can).
        return bool(getattr((cls if obj is None else obj).capabilities, self.name))


class BaseCache:
    """A cache of function calls. Subclasses provide storage through the five primitives below and
    declare what they do in ``capabilities``."""

    #: What this backend declares about itself (see ``Capabilities``); the layers above read nothing else.
    capabilities: ClassVar[Capabilities] = Capabilities()

    #: A native in-memory store (InMemCache's): memoized functions then run the native engine on it,
    #: binding, keying and looking up in one call into Rust. None: the engine over the primitives.
    _native_store: MemoryStore | None = None

    #: Seconds a memoized call waits for another call computing the same key (single-flight) before it
    #: takes the key over and computes itself; ``memoize(wait_timeout=...)`` overrides it per function.
    #: The default (600 s) outlasts the LLM SDKs' own request timeout, so a slow call still in progress
    #: is not run twice; the bound only matters when a computation is stuck, e.g. in a wait cycle.
    wait_timeout: float = DEFAULT_WAIT_TIMEOUT

    #: Whether memoized functions compute a miss once across processes and hosts (a lease per key on
    #: the store) rather than once per process; ``memoize(shared_flight=...)`` overrides it per function.
    #: Only for backends that declare ``leases`` (RedisCache takes ``shared_flight=`` when constructed).
    shared_flight: bool = False
    #: Seconds a shared-flight lease lasts without renewal: how soon another process takes over the key
    #: from a leader that died (a live leader renews it every third of this).
    lease_seconds: float = 30.0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Backends written before ``capabilities`` declared ``blocking_io = True`` or ``stores_nothing =
        True`` as class attributes: those still count, folded into the class's ``capabilities``."""
        super().__init_subclass__(**kwargs)
        legacy = {name: cls.__dict__[name] for name in ("blocking_io", "stores_nothing")
                  if isinstance(cls.__dict__.get(name), bool)}
        if legacy:
            from dataclasses import replace  # only for such a legacy backend

            for name in legacy:
                delattr(cls, name)
            cls.capabilities = replace(cls.capabilities, **legacy)

    #: Whether the primitives block on I/O (``capabilities.blocking_io``): memoized coroutine functions
    #: then run the cache I/O in a worker thread instead of blocking the event loop.
    blocking_io = _Declared()
    #: Whether the backend keeps nothing (``capabilities.stores_nothing``).
    stores_nothing = _Declared()

    @property
    def max_size(self) -> int | None:
        """The bound on the number of entries (``cache_info().maxsize``), or None."""
        return None

    @property
    def evicts(self) -> bool:
        """True when the store removes live entries on its own to stay under a size bound (``max_size``,
        DiskCache's ``size_limit``): an entry may then be gone before it expires or is removed."""
        return self.max_size is not None

    @property
    def ttl(self) -> float | None:
        """The default time to live of entries, in seconds (``ttl=`` when constructed), or None."""
        return self._ttl

    def __init__(self, exclude: Iterable[str] | None = None, *, ttl: TTL = None, on_backend_error: str = "warn",
                 types: Iterable[type] | None = None) -> None:
        self._exclude = validate_exclude(exclude)
        # Classes any function's stored results may hold: allowed for decoding in this process (value-codec.md).
        self.types = allow_types(types)
        self._ttl = parse_ttl(ttl)
        self.on_backend_error = check_policy(on_backend_error)
        self._counts_lock = threading.Lock()
        self._counts = dict.fromkeys(("hits", "misses", "sets", "errors", "evictions", "backend_errors"), 0)
        self._flights = SingleFlight()
        self._async_flights = AsyncFlights()
        # A backend that stores nothing: its plain functions are native passthroughs, counting their calls
        # in this native store's counters (nothing is ever stored in it); stats() adds them.
        self._passthrough_counts = MemoryStore() if self.capabilities.stores_nothing else None

    # ---- backend primitives -------------------------------------------------------------------
    def _get(self, ref: Ref) -> CacheEntry | None:
        raise NotImplementedError

    def _set(self, entry: CacheEntry, ttl: float | None) -> None:
        raise NotImplementedError

    def _remove(self, ref: Ref) -> bool:
        raise NotImplementedError

    def _iter(self) -> Iterator[CacheEntry]:
        raise NotImplementedError

    def _clear(self) -> None:
        raise NotImplementedError

    # Optional overrides; the defaults are correct for any backend.
    def _has(self, ref: Ref) -> bool:
        return self._get(ref) is not None

    def _len(self) -> int:
        return sum(1 for _ in self._iter())

    def _count_func(self, func: str) -> int:
        """Live entries of one function identity (memoized functions' ``cache_info().currsize``)."""
        return sum(1 for e in self._iter() if e.func == func)

    def _clear_func(self, func: str) -> int:
        """Removes the entries of one function identity (``fn.cache_clear()``); returns how many."""
        return sum(1 for e in list(self._iter()) if e.func == func and self._remove(e))

    def _get_many(self, refs: list[Ref]) -> list[CacheEntry | None]:
        """``_get`` of each reference, in order (duplicates allowed). A store that reads many keys in one
        round trip overrides it (DatabaseCache: SELECT ... IN; RedisCache: MGET): ``batch_memoize`` then
        looks a batch up in one."""
        return [self._get(ref) for ref in refs]

    # Optional: leases on keys, for single-flight across processes and hosts. A backend that implements
    # all five declares ``Capabilities(leases=True)``; nothing calls them otherwise.
    def _lease_acquire(self, key: int, seconds: float) -> str | None:
        """Takes the lease on ``key`` for ``seconds`` if nobody holds it: its token, else None."""
        raise NotImplementedError

    def _lease_take(self, key: int, seconds: float) -> tuple[str | None, CacheEntry | None]:
        """``_lease_acquire`` and ``_get`` of the key: the lease's token (or None) and the entry stored now
        (or None). A store that can do both in one round trip overrides it (RedisCache): shared flight
        then adds one round trip to a miss."""
        token = self._lease_acquire(key, seconds)
        return token, self._get(key)

    def _lease_renew(self, key: int, token: str, seconds: float) -> bool:
        """Extends the lease to ``seconds`` from now if ``token`` still holds it; False if it was lost."""
        raise NotImplementedError

    def _lease_release(self, key: int, token: str) -> None:
        """Gives up the lease if ``token`` still holds it, and wakes the callers waiting on it."""
        raise NotImplementedError

    def _lease_wait(self, key: int, seconds: float) -> None:
        """Returns when the lease on ``key`` may have been released (or was never held), or after
        ``seconds``; must not busy-wait where the store can notify."""
        raise NotImplementedError

    def _set_leased(self, entry: CacheEntry, ttl: float | None, token: str) -> bool:
        """``_set`` and ``_lease_release`` in one step, done only if ``token`` still holds the entry's
        lease: False (nothing stored) when it was lost, so a leader whose lease expired never overwrites
        what a newer leader stored."""
        raise NotImplementedError

    # Optional: coroutine primitives, awaited by memoized coroutine functions on the event loop. A backend
    # that implements both declares ``Capabilities(async_io=True)``.
    async def _aget(self, ref: Ref) -> CacheEntry | None:
        """``_get`` as a coroutine."""
        raise NotImplementedError

    async def _aset(self, entry: CacheEntry, ttl: float | None) -> None:
        """``_set`` as a coroutine."""
        raise NotImplementedError

    # Optional: messages to every process using the store (a TieredCache's invalidations). A backend that
    # implements both declares ``Capabilities(notifies=True)``.
    def _notify(self, message: str) -> None:
        """Sends ``message`` to every ``_listen`` on this store, in this process and in others."""
        raise NotImplementedError

    def _listen(self, deliver: Callable[[str | None], None], stop: threading.Event) -> None:
        """Calls ``deliver(message)`` for each message sent after listening started, until ``stop`` is set
        (then returns within a second). Calls ``deliver(None)`` whenever messages may have been missed: once
        listening starts, and after a lost connection is made again. Must not raise for a failing store:
        it keeps trying to listen until stopped."""
        raise NotImplementedError

    def _count(self, name: str, n: int = 1) -> None:
        """Adds to a ``stats()`` counter (hits, misses, sets, errors, backend_errors)."""
        with self._counts_lock:
            self._counts[name] += n

    def engine_view(self) -> EngineView:
        """What the memoize layer (engines, wrappers, batches) uses of this cache: one per decorated
        function, held by its engine (not kept by the cache: a cache holding its view would be a reference
        cycle, freed only by the garbage collector instead of when its last user lets it go)."""
        return EngineView(self)

    def _damaged(self, where: str, err: BaseException) -> None:
        """A stored record at ``where`` cannot be read: counted, then handled by ``on_backend_error`` (the
        caller treats it as a miss unless the policy raises)."""
        self._count("backend_errors")
        damaged_record(self.on_backend_error, where, err)

    # ---- exclusion ----------------------------------------------------------------------------
    def set_exclude(self, exclude: Iterable[str] | None = None) -> None:
        """Replace the cache-wide excluded parameter names (applies to functions memoized afterwards)."""
        self._exclude = validate_exclude(exclude)

    def add_exclude(self, exclude: Iterable[str] | None = None) -> None:
        """Add cache-wide excluded parameter names (applies to functions memoized afterwards)."""
        self._exclude = self._exclude | validate_exclude(exclude)

    @property
    def exclude(self) -> frozenset[str]:
        return self._exclude

    # ---- building references ------------------------------------------------------------------
    def _probe(self, func: Any, inputs: Any, kwargs: dict[str, Any], what: str) -> CacheEntry:
        """A CacheEntry for ``func`` with ``inputs`` given either as a dict or as keyword arguments.

        ``func`` may also come as the keyword ``func=`` (ahvn's spelling) when not given positionally; then
        an input named ``func`` needs the dict spelling.
        """
        if func is _MISSING:
            if "func" not in kwargs:
                msg = f"{what}() needs the function (a name or a memoized function) as its first argument"
                raise TypeError(msg)
            func = kwargs.pop("func")
        if inputs is _MISSING:
            # A memoized function binds keyword inputs to its signature (defaults applied, exclusions
            # dropped), so cache.get(f, x=1) finds what f(1) stored; a name takes them as stored.
            bind = getattr(func, "cache_inputs", None)
            inputs = bind(**kwargs) if bind is not None else kwargs
        elif kwargs:
            msg = f"{what}() takes the inputs either as a dict or as keyword arguments, not both (got {sorted(kwargs)})"
            raise TypeError(msg)
        elif not isinstance(inputs, Mapping):
            msg = f"{what}() expects the inputs as a dict, got {type(inputs).__name__}; or pass them as keyword arguments"
            raise TypeError(msg)
        # A memoized function stands for its cache identity (name= or module.qualname, with any #n suffix).
        probe = CacheEntry(getattr(func, "cache_name", func), dict(inputs))
        return probe.clone(exclude=self._exclude) if self._exclude else probe

    # ---- reading ------------------------------------------------------------------------------
    def retrieve(self, func: Any = _MISSING, inputs: Any = _MISSING, /, **kwargs: Any) -> CacheEntry | EllipsisType:
        """The stored entry for the call, or ``...`` when there is none: ``retrieve("f", x=5)``,
        ``retrieve("f", {"x": 5})``, or ``retrieve(entry)`` for the call a ``CacheEntry`` describes.
        Type checkers see ``CacheEntry | EllipsisType``: check ``entry is not ...`` before ``entry.output``."""
        if isinstance(func, CacheEntry) and inputs is _MISSING and not kwargs:
            entry = self._lookup(func)
        else:
            entry = self._lookup(self._probe(func, inputs, kwargs, "retrieve"))
        return ... if entry is None else entry

    def get(self, func: Any = _MISSING, inputs: Any = _MISSING, /, **kwargs: Any) -> Any:
        """The cached value (``expected`` if annotated, else ``output``), or ``...`` on a miss.

        ``cache.get("f", {"x": 5})`` and ``cache.get("f", x=5)`` are the same lookup.
        """
        entry = self._lookup(self._probe(func, inputs, kwargs, "get"))
        return ... if entry is None else entry.value

    def _lookup(self, ref: Ref) -> CacheEntry | None:
        entry = self._get(ref)
        self._count("misses" if entry is None else "hits")
        return entry

    async def _alookup(self, ref: Ref) -> CacheEntry | None:
        entry = await self._aget(ref)
        self._count("misses" if entry is None else "hits")
        return entry

    def _memo_lookup(self, probe: CacheEntry, func: Callable[..., Any]) -> CacheEntry | None:
        """A memoized call's lookup (``func`` is the decorated function; CallbackCache passes it to feeds). An
        entry without output (``set()`` without ``output=``, an import) is no answer: a miss."""
        entry = self._get(probe)
        if entry is not None and entry.value is ...:
            entry = None
        self._count("misses" if entry is None else "hits")
        return entry

    def _memo_lookup_many(self, probes: list[CacheEntry], func: Callable[..., Any]) -> list[CacheEntry | None]:
        """``_memo_lookup`` of each probe (a batch of ``batch_memoize``), read with one ``_get_many``; one
        by one where a backend changes what a memoized lookup does (CallbackCache)."""
        if type(self)._memo_lookup is not BaseCache._memo_lookup:
            return [self._memo_lookup(probe, func) for probe in probes]
        # an entry without output is no answer, as in _memo_lookup
        entries = [None if e is None or e.value is ... else e for e in self._get_many(list(probes))]
        hits = sum(entry is not None for entry in entries)
        self._count("hits", hits)
        self._count("misses", len(entries) - hits)
        return entries

    def exists(self, func: Any = _MISSING, inputs: Any = _MISSING, /, **kwargs: Any) -> bool:
        """True when the call has an entry (no statistics are counted)."""
        return self._has(self._probe(func, inputs, kwargs, "exists"))

    def __contains__(self, key: Any) -> bool:
        if isinstance(key, CacheEntry):
            return self._has(key)
        try:
            return self._has(_as_key(key))
        except (KeyError, TypeError):
            return False  # not a key at all, so not in the cache

    def __getitem__(self, key: Any) -> CacheEntry | Any:
        """The entry stored under an int key (or a CacheEntry's key), or ``...`` when there is none."""
        entry = self._get(key if isinstance(key, CacheEntry) else _as_key(key))
        return ... if entry is None else entry

    def __len__(self) -> int:
        return self._len()

    def __iter__(self) -> Iterator[CacheEntry]:
        """The entries, as a snapshot: removing entries while iterating is safe."""
        return iter(list(self._iter()))

    def iter_entries(self) -> Iterator[CacheEntry]:
        """The entries, streamed from the store without a snapshot (for stores too large to list at
        once: export, inspection). Entries stored or removed meanwhile may or may not be seen."""
        return self._iter()

    def count_function(self, func: Any) -> int:
        """How many live entries one function has (a memoized function, or its identity as stored in
        ``CacheEntry.func``)."""
        return self._count_func(_identity(func))

    def clear_function(self, func: Any) -> int:
        """Remove every entry of one function (a memoized function, or its identity as stored in
        ``CacheEntry.func``); returns how many were removed. ``fn.cache_clear()`` does this too and also
        resets ``fn``'s ``cache_info()`` counters."""
        return self._clear_func(_identity(func))

    def tagged(self, tags: Iterable[str]) -> Iterator[CacheEntry]:
        """The entries carrying any of ``tags`` (``memoize(tags=...)``), streamed like ``iter_entries``."""
        wanted = frozenset(check_tags(tags))
        return (entry for entry in self._iter() if wanted.intersection(_tags_of(entry)))

    def invalidate(self, *, tags: Iterable[str]) -> int:
        """Remove every entry carrying any of ``tags`` (``memoize(tags=...)``); returns how many."""
        wanted = frozenset(check_tags(tags))
        if not wanted:
            return 0
        return self._invalidate_tags(wanted)

    def _invalidate_tags(self, tags: frozenset[str]) -> int:
        """``invalidate``'s primitive. By default it reads every entry; a backend with a tag index
        overrides it."""
        return sum(1 for entry in list(self.tagged(tags)) if self._remove(entry))

    # ---- writing ------------------------------------------------------------------------------
    def set(
        self,
        func: Any = _MISSING,
        inputs: Any = _MISSING,
        /,
        *,
        output: Any = ...,
        expected: Any = ...,
        metadata: dict[str, Any] | None = None,
        ttl: TTL = None,
        **kwargs: Any,
    ) -> None:
        """Store an entry. Three spellings:

        - ``cache.set(entry)``: a ``CacheEntry`` (as in the guide);
        - ``cache.set("f", output=25, x=5)``: inputs as keyword arguments (as ahvn);
        - ``cache.set("f", {"x": 5}, output=25)``: inputs as a dict (use this when a parameter is named
          ``output``, ``expected``, ``metadata`` or ``ttl``).
        """
        if isinstance(func, CacheEntry):
            if inputs is not _MISSING or kwargs or output is not ... or expected is not ... or metadata is not None:
                msg = "set(entry) takes no other arguments besides ttl=; use entry.clone(...) to change fields"
                raise TypeError(msg)
            self.add(func, ttl=ttl)
            return
        probe = self._probe(func, inputs, kwargs, "set")
        entry = probe.clone(output=output, expected=expected, metadata=metadata)
        self._store(entry, ttl)

    def add(self, entry: CacheEntry, *, ttl: TTL = None) -> None:
        """Store a ``CacheEntry`` as it is (cache-level ``exclude`` is not applied to it)."""
        if not isinstance(entry, CacheEntry):
            msg = f"add() expects a CacheEntry, got {type(entry).__name__}; use cache.set(func, output=..., **inputs)"
            raise TypeError(msg)
        self._store(entry, ttl)

    def _store(self, entry: CacheEntry, ttl: TTL) -> None:
        self._set(entry, self._entry_ttl(entry, ttl))
        self._count("sets")

    async def _astore(self, entry: CacheEntry, ttl: TTL) -> None:
        await self._aset(entry, self._entry_ttl(entry, ttl))
        self._count("sets")

    def _store_leased(self, entry: CacheEntry, ttl: TTL, token: str) -> bool:
        """``_store`` under a lease (``_set_leased``): False, nothing stored or counted, if it was lost."""
        if not self._set_leased(entry, self._entry_ttl(entry, ttl), token):
            return False
        self._count("sets")
        return True

    def _entry_ttl(self, entry: CacheEntry, ttl: TTL) -> float | None:
        """Explicit ``ttl=``, else ``metadata["annotation"]["ttl"]``, else the cache's default."""
        seconds = resolve_ttl(ttl, entry.metadata.get("annotation"))
        return self._ttl if seconds is None else seconds

    def __setitem__(self, key: Any, value: CacheEntry | Mapping[str, Any]) -> None:
        entry = value if isinstance(value, CacheEntry) else CacheEntry.from_dict(dict(value))
        if _as_key(key) != entry.key:
            msg = f"key {key} does not match the entry's key {entry.key}; use cache.add(entry) to store an entry under its own key"
            raise KeyError(msg)
        self._store(entry, None)

    def annotate(self, func: Any = _MISSING, inputs: Any = _MISSING, /, *, expected: Any = ..., metadata: dict[str, Any] | None = None, **kwargs: Any) -> CacheEntry:
        """Set the expected (ground-truth) value of a call.

        An existing entry keeps its output and gets ``expected`` (its own output when omitted) and
        ``metadata`` merged in. A missing entry needs ``expected``; it is stored with output = expected.
        Returns the stored entry.
        """
        probe = self._probe(func, inputs, kwargs, "annotate")
        current = self._get(probe)
        if current is not None:
            entry = current.annotate(expected, metadata)
        elif expected is ...:
            msg = f"cannot annotate {probe.func}({probe.inputs}): there is no entry; pass expected=... to create one"
            raise ValueError(msg)
        else:
            entry = probe.clone(output=expected, expected=expected, metadata=metadata)
        self._store(entry, None)
        return entry

    # ---- removing -----------------------------------------------------------------------------
    def remove(self, func: Any = _MISSING, inputs: Any = _MISSING, /, **kwargs: Any) -> bool:
        """Remove one entry: ``remove(entry)``, ``remove("f", {"x": 5})`` or ``remove("f", x=5)``.

        Returns True when an entry was removed.
        """
        if isinstance(func, CacheEntry) and inputs is _MISSING and not kwargs:
            return self._remove(func)
        if isinstance(kwargs.get("entry"), CacheEntry) and func is _MISSING and len(kwargs) == 1:
            return self._remove(kwargs["entry"])  # remove(entry=...), as ahvn's parameter name
        return self._remove(self._probe(func, inputs, kwargs, "remove"))

    def unset(self, func: Any = _MISSING, inputs: Any = _MISSING, /, **kwargs: Any) -> bool:
        """Remove the entry of a call (``unset("f", x=5)``); True when one was removed."""
        return self._remove(self._probe(func, inputs, kwargs, "unset"))

    def __delitem__(self, key: Any) -> None:
        """Remove by int key or CacheEntry; a missing key is not an error."""
        self._remove(key if isinstance(key, CacheEntry) else _as_key(key))

    def pop(self) -> CacheEntry | None:
        """Remove and return one entry (the oldest where the backend knows), or None when empty."""
        for entry in self._iter():
            if self._remove(entry):
                return entry
        return None

    def popall(self) -> list[CacheEntry]:
        """Remove and return every entry."""
        return [entry for entry in list(self._iter()) if self._remove(entry)]

    def clear(self) -> None:
        """Remove every entry."""
        self._clear()

    def close(self) -> None:
        """Release the backend's resources. The base class holds none."""

    def flush(self) -> None:
        """Write pending data (backends that buffer override this)."""

    def verify(self) -> list[str]:
        """Check the store, read-only; returns its problems, one human-readable line each ([]: sound).

        Every stored entry must read back, decode, and recompute from its ``func`` and ``inputs`` to the
        key it is stored under (a record under another key's name never answers for that key). A backend
        overrides this to check what its store can show besides (each says what in its own ``verify``:
        file and table integrity, leftovers of crashed writers); this default checks the entries through
        the primitives.

        Nothing is repaired, removed or rewritten, no warning is emitted and no statistic is counted: a
        damaged record is reported here whatever ``on_backend_error`` says. An entry that expires or is
        removed while ``verify()`` runs is skipped, not reported. A store that cannot be reached at all
        (a server down, a folder gone) raises the backend's exception instead of returning a list.

        Meant for a store at rest (tests, ``oxicache verify``, post-mortems): with writers at work a line
        may describe a transient state (diskcache reports a file being written as unknown); run it again
        to confirm. It reads the whole store, so it takes time proportional to its size.
        """
        import warnings

        problems: list[str] = []
        seen: set[int] = set()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for entry in list(self._iter()):
                try:
                    key = entry.key
                except Exception as err:  # noqa: BLE001 - reported, not raised
                    problems.append(f"entry of {entry.func!r}: its key cannot be recomputed ({type(err).__name__}: {err})")
                    continue
                if key in seen:  # the iteration does not say under which key; twice means a wrong one
                    problems.append(f"key {key:032x}: its entry is also stored under another key")
                seen.add(key)
                found = self._get(key)
                if found is not None and found.key != key:
                    problems.append(f"key {key:032x}: holds the entry of another key ({found.key:032x})")
        problems.extend(f"{w.category.__name__}: {w.message}" for w in caught)
        return problems

    def __enter__(self) -> BaseCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stats(self) -> dict[str, Any]:
        """Counters: hits, misses, sets, errors (memoized calls that raised), evictions, backend_errors
        (storage failures and damaged records, see ``on_backend_error``), and size."""
        with self._counts_lock:
            counts = dict(self._counts)
        if self._passthrough_counts is not None:
            native = self._passthrough_counts.stats()
            counts["misses"] += native["misses"] or 0
            counts["errors"] += native["errors"] or 0
        counts["size"] = self._len()
        return counts

    # ---- decorators ---------------------------------------------------------------------------
    @overload
    def memoize(self, func: Callable[P, R]) -> Memoized[P, R]: ...
    @overload
    def memoize(
        self,
        func: None = None,
        *,
        name: str | None = None,
        exclude: Iterable[str] | None = None,
        annotation: Mapping[str, Any] | None = None,
        ttl: TTL | Callable[[Any], Any] = None,
        version: str | int | None = None,
        cache_if: Callable[[Any], Any] | None = None,
        wait_timeout: TTL = None,
        shared_flight: bool | None = None,
        key: Callable[..., Any] | None = None,
        jitter: float | str | timedelta | None = None,
        stale_if_error: TTL = None,
        track_age: bool = False,
        stale: TTL = None,
        tags: TagsOption = None,
        types: Iterable[type] | None = None,
    ) -> Callable[[Callable[P, R]], Memoized[P, R]]: ...
    def memoize(
        self,
        func: Callable[..., Any] | None = None,
        *,
        name: str | None = None,
        exclude: Iterable[str] | None = None,
        annotation: Mapping[str, Any] | None = None,
        ttl: TTL | Callable[[Any], Any] = None,
        version: str | int | None = None,
        cache_if: Callable[[Any], Any] | None = None,
        wait_timeout: TTL = None,
        shared_flight: bool | None = None,
        key: Callable[..., Any] | None = None,
        jitter: float | str | timedelta | None = None,
        stale_if_error: TTL = None,
        track_age: bool = False,
        stale: TTL = None,
        tags: TagsOption = None,
        types: Iterable[type] | None = None,
    ) -> Any:
        """Cache a function's results: ``@cache.memoize`` or ``@cache.memoize(name=..., exclude=[...], ...)``.

        Works on plain functions, coroutine functions, generator and async generator functions (a stream
        is stored only after a complete run, and replayed on hits).

        Args:
            name: the identity stored in ``CacheEntry.func`` (default ``module.qualname``).
            exclude: parameter names left out of the key, on top of the cache's own ``exclude``.
            annotation: stored in each entry's ``metadata["annotation"]``; its ``"ttl"`` sets the time to live.
            ttl: time to live of this function's entries (seconds, timedelta or ``"1h"``).
            version: part of the function identity (``name@version``), so changing it never reads old entries;
                ``"auto"``: a fingerprint of the function's code and of the same-module functions it calls.
            cache_if: ``cache_if(result)`` true to store the result; rejected results are returned, not stored.
            wait_timeout: how long a call waits for another call computing the same key before computing
                itself (default ``cache.wait_timeout``, 600 s; seconds, timedelta or ``"30s"``).
            shared_flight: compute a miss once across every process and host sharing the store, not once
                per process (default ``cache.shared_flight``, off): a lease per key, for plain and coroutine
                functions on a backend that grants leases (RedisCache, DatabaseCache, DiskCache, JsonCache).
                See docs/scale-out.md.
            key: ``key(*args, **kwargs)`` names the call instead of its arguments (any key-able value);
                not with ``exclude``. ``ttl`` may also be a callable on the result (its own expiry).
            jitter: shortens each entry's TTL by a random part: a fraction (0.1) or a duration ("30s").
            stale_if_error: when the function raises and a value stored no longer than its TTL plus this
                window ago exists, return it (with a CacheWarning) instead of the exception.
            track_age: record each entry's age, so ``oxicache.max_age()`` can accept it.
            stale: stale-while-revalidate: for this long after the TTL a call returns the stored value at
                once and one refresh of the key runs in the background. These last five options take the
                Python engine on InMemCache. See docs/memoize.md, "Freshness".
            tags: labels stored with each entry (``metadata["tags"]``): a list of str, or a function of
                the call's inputs (a dict) returning one; ``cache.invalidate(tags=[...])`` removes them.
            types: dataclass, NamedTuple, Enum or pydantic model classes a new process may revive from stored
                results, on top of those the return annotation names (docs/value-codec.md).

        Type checkers see a ``Memoized[P, R]``: the original signature plus the ``cache_*`` helpers.
        """
        # The engine loads at the first decoration, not at `import oxicache` (docs/benchmarks.md, import time).
        from oxicache.memo.engine import Options, make_memoized

        options = Options(name, exclude, annotation, ttl, version, cache_if, wait_timeout,
                          shared_flight, key=key, jitter=jitter, stale_if_error=stale_if_error, track_age=track_age,
                          stale=stale, tags=tags,
                          types=types)
        if func is None:
            return lambda f: make_memoized(self, f, options)
        return make_memoized(self, func, options)

    @overload
    def batch_memoize(self, func: Callable[P, R]) -> BatchMemoized[P, R]: ...
    @overload
    def batch_memoize(
        self,
        func: None = None,
        *,
        name: str | None = None,
        exclude: Iterable[str] | None = None,
        annotation: Mapping[str, Any] | None = None,
        ttl: TTL = None,
        version: str | int | None = None,
        cache_if: Callable[[Any], Any] | None = None,
        wait_timeout: TTL = None,
        types: Iterable[type] | None = None,
    ) -> Callable[[Callable[P, R]], BatchMemoized[P, R]]: ...
    def batch_memoize(
        self,
        func: Callable[..., Any] | None = None,
        *,
        name: str | None = None,
        exclude: Iterable[str] | None = None,
        annotation: Mapping[str, Any] | None = None,
        ttl: TTL = None,
        version: str | int | None = None,
        cache_if: Callable[[Any], Any] | None = None,
        wait_timeout: TTL = None,
        types: Iterable[type] | None = None,
    ) -> Any:
        """Cache a batch function per item: ``f(items, ...)`` returns one output per item, in order.

        A call runs ``f`` once with only the items not cached (each distinct item once, in their original
        order) and returns every output in input order; each item is keyed as the call ``f([item], ...)``.
        Takes the same options as ``memoize`` (``cache_if`` is applied per item). Sync and async functions.
        """
        from oxicache.memo.batch import make_batch_memoized
        from oxicache.memo.engine import Options

        options = Options(name, exclude, annotation, ttl, version, cache_if, wait_timeout, types=types)
        if func is None:
            return lambda f: make_batch_memoized(self, f, options)
        return make_batch_memoized(self, func, options)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class EngineView:
    """What the memoize layer (engines, wrappers, batches) may use of a cache, built by the cache itself
    (``BaseCache.engine_view()``), so that layer never reaches into a backend's members."""

    __slots__ = ("alookup", "apeek", "astore", "async_flights", "cache", "capabilities", "clear_func", "count_func", "flights", "front",
                 "lease_acquire", "lease_release", "lease_renew", "lease_take", "lease_wait", "lookup", "lookup_many", "native_store", "peek", "store",
                 "passthrough_counts", "store_leased", "tally")

    def __init__(self, cache: BaseCache) -> None:
        self.cache = cache  # its public surface: on_backend_error, exclude, wait_timeout, max_size
        self.capabilities = cache.capabilities
        self.native_store = cache._native_store
        #: A store-nothing backend's native counters for its passthrough functions (else None).
        self.passthrough_counts = cache._passthrough_counts
        #: ``lookup(probe, func)``: a memoized call's lookup, counted as a hit or a miss (CallbackCache
        #: hands ``func`` to its feeds).
        self.lookup: Callable[[CacheEntry, Callable[..., Any]], CacheEntry | None] = cache._memo_lookup
        #: ``lookup_many(probes, func)``: ``lookup`` of each probe, in one read where the store can (batches).
        self.lookup_many: Callable[[list[CacheEntry], Callable[..., Any]], list[CacheEntry | None]] = cache._memo_lookup_many
        #: ``peek(ref)``: a lookup not counted (single-flight's recheck).
        self.peek: Callable[[Ref], CacheEntry | None] = cache._get
        #: ``store(entry, ttl)``: stores with the entry's time to live (the function's ``ttl``, else its
        #: annotation's, else the cache's), counted as a set.
        self.store: Callable[[CacheEntry, TTL], None] = cache._store
        #: ``tally(name)``: adds one to a ``stats()`` counter.
        self.tally: Callable[[str], None] = cache._count
        #: ``alookup``, ``apeek``, ``astore``: ``lookup``, ``peek`` and ``store`` as coroutines; called only
        #: when ``capabilities.async_io``.
        self.alookup: Callable[[CacheEntry], Awaitable[CacheEntry | None]] = cache._alookup
        self.apeek: Callable[[Ref], Awaitable[CacheEntry | None]] = cache._aget
        self.astore: Callable[[CacheEntry, TTL], Awaitable[None]] = cache._astore
        #: ``store_leased(entry, ttl, token)``: ``store`` only while the lease is held (shared flight).
        self.store_leased: Callable[[CacheEntry, TTL, str], bool] = cache._store_leased
        #: The lease primitives (shared flight); called only when ``capabilities.leases``.
        self.lease_acquire: Callable[[int, float], str | None] = cache._lease_acquire
        self.lease_take: Callable[[int, float], tuple[str | None, CacheEntry | None]] = cache._lease_take
        self.lease_renew: Callable[[int, str, float], bool] = cache._lease_renew
        self.lease_release: Callable[[int, str], None] = cache._lease_release
        self.lease_wait: Callable[[int, float], None] = cache._lease_wait
        self.count_func: Callable[[str], int] = cache._count_func
        self.clear_func: Callable[[str], int] = cache._clear_func
        self.flights: SingleFlight = cache._flights
        #: A native memory tier in front of the primitives (TieredCache's), or None.
        self.front: FrontTier | None = None
        self.async_flights: AsyncFlights = cache._async_flights


def _tags_of(entry: CacheEntry) -> list[str]:
    tags = entry.metadata.get("tags")
    return tags if isinstance(tags, list) else []
