"""What a backend declares about itself: ``BaseCache.capabilities``.

The layers above a backend (memoize, batches, the CLI, CacheKLStore, the contract suite) read these
declarations and nothing else to decide how to use it. A backend states them once, on its class::

    class DbmCache(BaseCache):
        capabilities = Capabilities(blocking_io=True, shared=True)

See docs/backends/writing-a-backend.md for the whole storage contract.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dataclasses import dataclass
else:
    from oxicache._light import dataclass  # the same class, without importing inspect

__all__ = ["Capabilities"]


@dataclass(frozen=True)
class Capabilities:
    """A backend's declared behaviour. The defaults describe a store other processes may read that keeps
    what it is given until it is removed or expires."""

    #: The primitives block on I/O (disk, network): memoized coroutine functions and async batches run
    #: them in a worker thread so that the event loop keeps running.
    blocking_io: bool = False
    #: Other processes (or hosts) may read the entries: a key must then mean the same in every process,
    #: so arguments with only a process-local identity (a local class, a lambda's closure over objects)
    #: are refused instead of keyed. False for a store private to the process (InMemCache).
    shared: bool = True
    #: Nothing is ever stored (NoCache): memoized functions run on every call, without single-flight.
    stores_nothing: bool = False
    #: Entries given a time to live (``ttl=``) stop being returned once it has passed.
    ttl: bool = True
    #: The store can be given a size bound and then evicts entries to keep under it.
    bounded: bool = False
    #: The backend grants leases on keys (``_lease_acquire`` and the other lease primitives), so a miss
    #: can be computed once across processes and hosts: ``memoize(shared_flight=True)``.
    leases: bool = False
    #: The backend sends messages to every process using the store (``_notify`` and ``_listen``), so a
    #: ``TieredCache`` in front of it drops entries changed elsewhere at once rather than after its ttl.
    notifies: bool = False
    #: The backend has coroutine primitives (``_aget``, ``_aset``): memoized coroutine functions await
    #: them on the event loop instead of running the blocking primitives in a worker thread.
    async_io: bool = False
