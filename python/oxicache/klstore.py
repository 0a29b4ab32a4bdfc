"""``CacheKLStore``: knowledge objects (anything with an ``id``) kept in any oxicache backend.

Each object is one cache entry: ``func`` is the store's identity ``"oxicache.klstore:<name>"``, ``inputs``
is ``{"id": <the object's id>}`` and ``output`` is the object itself. Persistent backends store the object
with the value codec, so dataclasses, pydantic models, named tuples and plain dicts come back with their
types (docs/klstore.md). ``len``, iteration and ``clear`` see only this store's entries: two stores with
different names share a cache without seeing each other, and the cache's other entries are left alone.

>>> from dataclasses import dataclass
>>> from oxicache import InMemCache
>>> @dataclass
... class Fact:
...     id: int
...     text: str
>>> store = CacheKLStore(InMemCache(), name="facts")
>>> store.store(Fact(1, "water boils at 100 C"))
>>> store.retrieve(1)
Fact(id=1, text='water boils at 100 C')
>>> len(store), 1 in store, store.get(2)
(1, True, None)
>>> Fact(1, "any text") in store  # a knowledge object stands for its id
True
"""

from __future__ import annotations

import reprlib
from collections.abc import Mapping
from contextlib import contextmanager
from typing import Any, Iterable, Iterator

from oxicache._core import CacheEntry
from oxicache.base import BaseCache
from oxicache.errors import KeyEncodingError, ValueNotAllowedError
from oxicache.failures import NOT_ALLOWED_RAISES

__all__ = ["FUNC_PREFIX", "CacheKLStore"]

#: The ``func`` of a store's entries is this prefix followed by the store's name.
FUNC_PREFIX = "oxicache.klstore:"


def object_id(obj: Any) -> Any:
    """The id of a knowledge object: ``obj["id"]`` for a mapping, otherwise ``obj.id``.

    Raises:
        TypeError: the object has no id, or its id is None.
    """
    if isinstance(obj, Mapping):
        if "id" not in obj:
            msg = f'CacheKLStore stores objects with an id: this {type(obj).__name__} has no "id" key (keys: {sorted(map(str, obj))[:8]})'
            raise TypeError(msg)
        kid = obj["id"]
    else:
        try:
            kid = obj.id
        except AttributeError:
            msg = (f"CacheKLStore stores objects with an id: {type(obj).__name__} has no `id` attribute; "
                   'give it one (a dataclass or pydantic field) or store a dict with an "id" key')
            raise TypeError(msg) from None
    if kid is None:
        msg = f"CacheKLStore cannot store a {type(obj).__name__} whose id is None"
        raise TypeError(msg)
    return kid


# Exact types that are ids and never knowledge objects: the common ids skip the attribute lookup.
_PLAIN_IDS = frozenset({int, str, bytes, float, bool, tuple, type(None)})


def given_id(value: Any) -> Any:
    """The id ``value`` names where an id is taken: the id of a knowledge object (its ``id`` attribute, or
    a mapping's ``"id"`` key, as ``object_id``), otherwise ``value`` itself (a plain id).

    ahvn's BaseKLStore takes its objects in place of their ids the same way (``kl in store``).
    """
    if type(value) in _PLAIN_IDS or isinstance(value, type):  # a class is a value, even one with `id`
        return value
    if isinstance(value, Mapping):
        return value["id"] if "id" in value else value
    try:
        return value.id
    except AttributeError:
        return value


class CacheKLStore:
    """A store of knowledge objects by id, on any cache.

    Args:
        cache: any oxicache cache; persistent backends keep the objects across processes.
        name: the store's name; entries are stored under ``func="oxicache.klstore:<name>"``, so stores
            with different names on one cache are separate.
        types: classes to allow when decoding (``oxicache.codec.allow``): a process that reads objects of a
            dataclass or pydantic model before it has stored one must name the class here. Reading an
            object of a class not allowed raises ``ValueNotAllowedError`` naming it (never a silent miss).
        allow_eviction: a cache that evicts entries to stay under a size bound (``cache.evicts``: a
            default DiskCache, an InMemCache with ``max_size``) is refused, since objects would vanish
            without a word; pass True to accept that.

    ``store(obj)`` (the guide's name) and ``upsert(obj)`` write the object, replacing one with the same id;
    ``insert(obj)`` writes it only when the id is absent. ``retrieve(id)`` and ``store[id]`` raise
    ``KeyError`` for an absent id; ``get(id, default)`` returns the default. Ids are compared by their
    cache key, so ``1`` and ``"1"`` (and ``1.0``, ``True``) are different ids. Every method that takes
    an id also takes a knowledge object (an ``id`` attribute, or a mapping with an ``"id"`` key) and uses
    its id: ``obj in store``, ``store.remove(obj)``.

    The cache's own ``exclude`` does not apply to a store's entries, and the cache's default ``ttl`` does.
    """

    def __init__(self, cache: BaseCache, name: str = "default", *, types: Iterable[type] = (),
                 allow_eviction: bool = False) -> None:
        if not isinstance(cache, BaseCache):
            msg = f"CacheKLStore needs an oxicache cache (InMemCache, DiskCache, ...), got {type(cache).__name__}"
            raise TypeError(msg)
        if not isinstance(name, str) or not name:
            msg = f"CacheKLStore name must be a non-empty str, got {name!r}"
            raise ValueError(msg)
        if cache.evicts and not allow_eviction:
            msg = (f"CacheKLStore would lose objects silently on {cache!r}: it evicts entries to stay under its size "
                   "bound. Give it a cache that keeps everything (DiskCache(path, eviction_policy='none'), "
                   "InMemCache() without max_size, DatabaseCache, JsonCache), or pass allow_eviction=True")
            raise ValueError(msg)
        types = tuple(types)
        if types:
            from oxicache.codec import allow

            allow(*types)
        self.cache = cache
        self.name = name
        self.func = FUNC_PREFIX + name

    # ---- entries --------------------------------------------------------------------------------
    def _probe(self, value: Any) -> CacheEntry:
        """The entry to look up for an id, or for a knowledge object given in place of its id."""
        return self._probe_id(given_id(value), value)

    def _probe_id(self, kid: Any, value: Any) -> CacheEntry:
        """The entry of ``kid``, the id ``value`` names (resolved once: an id may itself have an ``id``)."""
        if kid is None:
            whose = "" if value is None else f" (the id of {type(value).__name__} {reprlib.repr(value)})"
            msg = f"CacheKLStore ids are never None{whose}"
            raise TypeError(msg)
        probe = CacheEntry(self.func, {"id": kid})
        try:
            probe.key  # built now, so a value without a key fails with the store's own message
        except KeyEncodingError as err:
            if kid is value:
                what = f"{type(value).__name__} {reprlib.repr(value)}, which is neither"
            else:
                what = f"{type(value).__name__} {reprlib.repr(value)} whose id {reprlib.repr(kid)} " \
                       f"({type(kid).__name__}) is not a keyable value"
            msg = (f"CacheKLStore takes an id (a keyable value: int, str, bytes, tuple, UUID, date, ...) or an "
                   f'object with an `id` attribute or "id" key (a stored knowledge object); got {what}')
            raise KeyEncodingError(msg) from err
        return probe

    def _entry(self, obj: Any) -> CacheEntry:
        entry = CacheEntry(self.func, {"id": object_id(obj)}, output=obj)
        self._probe_id(entry.inputs["id"], obj)  # an id without a key fails here, before any write
        return entry

    @contextmanager
    def _reading(self) -> Iterator[None]:
        """Reads in which an object of a class this process does not revive raises instead of reading
        as a miss: ``len`` and ``in`` count it (it is there, intact), so ``get`` must not say it is not."""
        token = NOT_ALLOWED_RAISES.set(True)
        try:
            yield
        except ValueNotAllowedError as err:
            msg = (f"CacheKLStore {self.name!r} holds an object this process cannot read: {err}. The object is "
                   f"intact; name its class: CacheKLStore(cache, name={self.name!r}, types=[TheClass])")
            raise ValueNotAllowedError(msg) from err
        finally:
            NOT_ALLOWED_RAISES.reset(token)

    def _has(self, probe: CacheEntry) -> bool:
        try:
            with self._reading():
                return probe in self.cache
        except ValueNotAllowedError:
            return True  # there, and intact: only this process cannot revive it

    def _write_all(self, entries: list[CacheEntry]) -> None:
        """Writes every entry, or none: when a write fails (a value the store cannot encode, a full disk),
        the entries this call wrote are put back as they were (replaced ones restored, new ones removed)
        and the error is raised. Every id was checked before (``_entry``)."""
        with self._reading():
            before = [self.cache[entry] for entry in entries]  # not counted as hits or misses
        for done, entry in enumerate(entries):
            try:
                self.cache.add(entry)
            except BaseException as err:
                for back, old in reversed(list(zip(entries[: done + 1], before))):
                    try:
                        if old is ...:
                            self.cache.remove(back)
                        else:
                            self.cache.add(old)
                    except Exception as undo:  # noqa: BLE001 (the write's own error is the one raised)
                        err.add_note(f"CacheKLStore could not undo the write of id {reprlib.repr(back.inputs['id'])}: {undo!r}")
                raise

    # ---- writing --------------------------------------------------------------------------------
    def upsert(self, obj: Any) -> None:
        """Store ``obj`` under its id, replacing any object stored with that id."""
        self.cache.add(self._entry(obj))

    def store(self, obj: Any) -> None:
        """The guide's name for ``upsert``: store ``obj``, replacing any object with the same id."""
        self.upsert(obj)

    def insert(self, obj: Any) -> bool:
        """Store ``obj`` only when no object with its id is stored; True when it was stored.

        The check and the write are two operations: two writers racing on one id may both store.
        """
        entry = self._entry(obj)
        if self._has(entry):
            return False
        self.cache.add(entry)
        return True

    def upsert_many(self, objs: Iterable[Any]) -> int:
        """``upsert`` each object; returns how many were stored. All or nothing: every object's id is
        checked before anything is written, and when a write fails the objects this call wrote are put
        back as they were before the error is raised (docs/klstore.md)."""
        entries = [self._entry(obj) for obj in objs]
        self._write_all(entries)
        return len(entries)

    def store_many(self, objs: Iterable[Any]) -> int:
        """The guide-style name for ``upsert_many``."""
        return self.upsert_many(objs)

    def insert_many(self, objs: Iterable[Any]) -> int:
        """``insert`` each object; returns how many were stored (absent ids only, the first of repeated
        ones). All or nothing, as ``upsert_many``."""
        entries = [self._entry(obj) for obj in objs]
        fresh = {entry.key: entry for entry in reversed(entries) if not self._has(entry)}
        new = [entry for entry in entries if fresh.get(entry.key) is entry]
        self._write_all(new)
        return len(new)

    # ---- reading --------------------------------------------------------------------------------
    # Every ``kid`` below is an id or a knowledge object standing for its id (``given_id``).
    def get(self, kid: Any, default: Any = None) -> Any:
        """The object stored under ``kid``, or ``default`` when there is none."""
        probe = self._probe(kid)
        with self._reading():
            entry = self.cache.retrieve(probe)
        return default if entry is ... else entry.output

    def retrieve(self, kid: Any) -> Any:
        """The object stored under ``kid``.

        Raises:
            KeyError: no object has this id in this store (the error holds the id).
            TypeError: ``kid`` is neither a keyable id nor an object with an id.
        """
        resolved = given_id(kid)
        probe = self._probe_id(resolved, kid)
        with self._reading():
            entry = self.cache.retrieve(probe)
        if entry is ...:
            raise KeyError(resolved)
        return entry.output

    def __getitem__(self, kid: Any) -> Any:
        return self.retrieve(kid)

    def get_many(self, kids: Iterable[Any], default: Any = None) -> list[Any]:
        """``get`` for each id, in order (``default`` for absent ids)."""
        return [self.get(kid, default) for kid in kids]

    def retrieve_many(self, kids: Iterable[Any]) -> list[Any]:
        """``retrieve`` for each id, in order.

        Raises:
            KeyError: an id is absent (the first one found).
        """
        return [self.retrieve(kid) for kid in kids]

    def exists(self, kid: Any) -> bool:
        """True when an object with this id is stored (also one of a class this process cannot read)."""
        return self._has(self._probe(kid))

    def __contains__(self, kid: object) -> bool:
        resolved = given_id(kid)
        if resolved is None:  # `None in store`, or an object without an id yet
            return False
        return self._has(self._probe_id(resolved, kid))

    # ---- removing -------------------------------------------------------------------------------
    def remove(self, kid: Any) -> bool:
        """Remove the object with this id; True when there was one."""
        return self.cache.remove(self._probe(kid))

    def __delitem__(self, kid: Any) -> None:
        if not self.remove(kid):
            raise KeyError(given_id(kid))

    def remove_many(self, kids: Iterable[Any]) -> int:
        """Remove each id (or object); returns how many objects were removed. Every one is checked before
        anything is removed."""
        probes = [self._probe(kid) for kid in kids]
        return sum(1 for probe in probes if self.cache.remove(probe))

    def clear(self) -> int:
        """Remove every object of this store (and nothing else in the cache); returns how many."""
        return self.cache.clear_function(self.func)

    # ---- the whole store ------------------------------------------------------------------------
    def _entries(self) -> list[CacheEntry]:
        with self._reading():
            return [entry for entry in self.cache.iter_entries() if entry.func == self.func]

    def __iter__(self) -> Iterator[Any]:
        """The stored objects (a snapshot, in the backend's order)."""
        return iter([entry.output for entry in self._entries()])

    def values(self) -> list[Any]:
        """The stored objects."""
        return list(self)

    def ids(self) -> list[Any]:
        """The ids of the stored objects."""
        return [entry.inputs["id"] for entry in self._entries()]

    def items(self) -> list[tuple[Any, Any]]:
        """``(id, object)`` pairs."""
        return [(entry.inputs["id"], entry.output) for entry in self._entries()]

    def __len__(self) -> int:
        """How many objects this store holds (other entries in the cache are not counted)."""
        return self.cache.count_function(self.func)

    # ahvn's BaseKLStore spellings.
    batch_upsert = upsert_many
    batch_insert = insert_many
    batch_get = get_many
    batch_remove = remove_many

    def __repr__(self) -> str:
        return f"CacheKLStore({self.cache!r}, name={self.name!r})"
