"""``RedisCache``: entries on a Redis or Valkey server, shared by every process and host that reaches it.

Layout under the cache's ``prefix`` (default ``"oxicache"``), so several caches share one server:

- ``<prefix>:e:<key hex>``: one entry, a binary record (the codec's MessagePack: func, inputs, output,
  expected, metadata, creation time, expiry time, key scheme). An entry with a TTL is written with the
  server's expiry too (``SET ... PX``), so the server frees it on time; a reader also skips a record
  whose expiry time has passed by its own clock (as every other backend does), so no host is served an
  entry past its TTL because the server has not yet dropped it.
- ``<prefix>:f:<function digest>``: the index of one function's entries, a sorted set of key hexes scored
  by expiry time (``+inf`` for none), written in the same transaction as the entry. It makes
  ``cache_info().currsize`` and ``cache_clear()`` cost the function's own entries, never a ``KEYS`` or a
  ``SCAN`` of the whole server. Members of entries that expired more than ``CLOCK_SLACK`` ago are
  trimmed on every write (the slack covers clocks that disagree between hosts), and a count drops
  members whose entries are gone (expired, removed by key, evicted by ``maxmemory``) in one atomic
  step, so the index stays the size of the function's live entries.

- ``<prefix>:t:<tag digest>``: the entries stored with one tag (``memoize(tags=...)``), a set of key
  hexes added after the entry is written, so ``invalidate(tags=...)`` deletes them in one script per tag
  without a ``SCAN``; members of entries gone otherwise stay until that tag is invalidated (deleting a
  missing key is nothing).

- ``<prefix>:l:<key hex>``: the lease of a key being computed under ``shared_flight`` (a random token,
  with the lease's expiry), and ``<prefix>:n:<key hex>``, the channel its release is published on.

Whole-cache operations (iteration, ``len``, ``clear``) ``SCAN`` the prefix: they cost the server's key
count, and never block the server as ``KEYS`` would.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import secrets
import sys
import threading
import time
import weakref
from dataclasses import replace
from typing import Any, AsyncIterator, Callable, Iterator, NamedTuple

from oxicache._core import CacheEntry, decode_binary, encode_binary, entry_of_record
from oxicache.backends._records import expires_at, key_hex, record_of, ref_key
from oxicache.base import BaseCache, Capabilities, Ref
from oxicache.durations import TTL, parse_ttl
from oxicache.errors import ValueDecodingError

try:
    import redis
    import redis.asyncio
except ImportError as err:  # pragma: no cover - exercised only without the extra
    msg = "RedisCache needs the redis package: pip install 'oxicache[redis]'"
    raise ImportError(msg) from err

__all__ = ["RedisCache"]

#: Keys fetched per ``SCAN`` step and deleted per command.
_BATCH = 500
#: Keys per MGET of _get_many (a batch's lookups): one round trip each, replies of bounded size.
_MANY = 1000
#: Seconds past an index member's expiry score before a write trims it: a host whose clock runs ahead of
#: the server's must not drop the member of an entry the server still holds (``cache_clear()`` would
#: then miss it).
CLOCK_SLACK = 300.0

# Counts the live members of an index, dropping those whose entries are gone, atomically: a set that
# writes the entry and its member again meanwhile is never undone. KEYS[1]: the index; ARGV[1]: the
# entry key prefix; ARGV[2...]: members.
_PRUNE = """
local live = 0
for i = 2, #ARGV do
    if redis.call('EXISTS', ARGV[1] .. ARGV[i]) == 1 then
        live = live + 1
    else
        redis.call('ZREM', KEYS[1], ARGV[i])
    end
end
return live
"""

# Deletes a key only if it still holds the record that was read (an expired one), so that an entry
# another process wrote meanwhile is never lost. KEYS[1]: the entry; ARGV[1]: the record read.
_DELETE_IF_UNCHANGED = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""

# Takes a lease if it is free and reads the entry, in one round trip. KEYS: the lease, the entry; ARGV: the
# token, milliseconds. Returns {1 if taken else 0, the record or nil}.
_TAKE = """
local taken = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])
return {taken and 1 or 0, redis.call('GET', KEYS[2])}
"""

# A lease's holder extends it. KEYS[1]: the lease; ARGV[1]: the token; ARGV[2]: milliseconds.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# A lease's holder gives it up and wakes the waiters. KEYS[1]: the lease; ARGV[1]: the token; ARGV[2]: the
# channel.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    redis.call('DEL', KEYS[1])
    redis.call('PUBLISH', ARGV[2], '1')
    return 1
end
return 0
"""

# Deletes the entries of one tag set and the set, atomically. KEYS[1]: the tag set; ARGV[1]: the entry key
# prefix. Returns how many entries were deleted.
_INVALIDATE_TAG = """
local removed = 0
for _, member in ipairs(redis.call('SMEMBERS', KEYS[1])) do
    removed = removed + redis.call('DEL', ARGV[1] .. member)
end
redis.call('DEL', KEYS[1])
return removed
"""

# Writes an entry and its index member, and trims the index. KEYS: the entry, its function's index; ARGV:
# (a token, for _SET_LEASED), record, milliseconds to live ('' for none), index member, its score, the trim
# bound. A script rather than MULTI/EXEC: one command and one reply (redis-py reads MULTI's five replies
# in Python, which doubled a miss's cost).
_WRITE = """
if ARGV[3] == '' then
    redis.call('SET', KEYS[1], ARGV[2])
else
    redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[6])
"""
_SET = _WRITE + "return 1\n"

# _WRITE and the release of the lease (KEYS[3]; ARGV[7]: the release channel), only while the token
# (ARGV[1]) holds it.
_SET_LEASED = """
if redis.call('GET', KEYS[3]) ~= ARGV[1] then
    return 0
end
""" + _WRITE + """
redis.call('DEL', KEYS[3])
redis.call('PUBLISH', ARGV[7], '1')
return 1
"""

#: How often a caller waiting on a lease checks that it still exists (a leader that died publishes
#: nothing: its lease just expires).
_LEASE_CHECK = 0.5


def _duration(name: str, value: TTL) -> float:
    try:
        seconds = parse_ttl(value, what=name)
    except ValueError:
        seconds = None
    if seconds is None:
        msg = f"RedisCache {name}={value!r} is not a positive, finite duration; give seconds, a timedelta or a string like '5s'"
        raise ValueError(msg)
    return seconds


def _glob_escape(text: str) -> str:
    """``text`` matched literally by ``SCAN MATCH`` (a prefix may hold ``*``, ``?``, ``[`` or ``\\``)."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def function_digest(func: str) -> str:
    """The short name of a function identity in index keys (identities can be long and hold any text)."""
    return hashlib.blake2b(func.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


class RedisCache(BaseCache):
    """Entries on a Redis (or Valkey) server: one key per entry, TTL kept by the server.

    Args:
        url: ``redis://[user:password@]host[:port][/db]``, ``rediss://`` (TLS) or ``unix:///path?db=0``.
        client: an existing ``redis.Redis`` client instead of a URL (its own timeouts and pool apply; it is
            not closed by ``close()``). It must not decode responses (``decode_responses=False``).
        prefix: the namespace of this cache's keys; caches with other prefixes share the server safely.
        connect_timeout: how long to wait for a connection before the call fails (then the failure policy
            applies to memoized calls): seconds, a timedelta or a string like ``"5s"``.
        timeout: how long to wait for any one reply (the same forms).
        shared_flight: memoized plain and coroutine functions compute a miss once across every process and host using
            this server and prefix, rather than once per process (``memoize(shared_flight=...)`` overrides
            it per function). Off by default: it adds a round trip to every miss.
        lease: how long a shared-flight lease lasts without renewal (default 30 s): a process that dies
            while computing holds the key that long at most before another one takes over.
        exclude, ttl, on_backend_error: as for every cache (see docs/guarantees.md).

    Raises:
        ValueError: neither or both of ``url`` and ``client``; a client that decodes responses; a prefix
            that is empty or holds a space or a newline.
        redis.RedisError: from the direct API (``get``/``set``/...) when the server fails; memoized calls
            apply ``on_backend_error`` instead.

    Every process and host that opens the same server and prefix shares the entries. See
    docs/backends/redis.md.
    """

    capabilities = Capabilities(blocking_io=True, shared=True, ttl=True, leases=True, notifies=True, async_io=True)

    #: Wall-clock time for records' creation and expiry times (tests replace it on an instance).
    _clock: Callable[[], float] = staticmethod(time.time)

    def __init__(
        self,
        url: str | None = None,
        *,
        client: Any = None,
        prefix: str = "oxicache",
        connect_timeout: TTL = 5.0,
        timeout: TTL = 5.0,
        shared_flight: bool = False,
        lease: TTL = 30.0,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        if (url is None) == (client is None):
            msg = "RedisCache needs exactly one of url= (e.g. 'redis://127.0.0.1:6379/0') or client= (a redis.Redis)"
            raise ValueError(msg)
        if not isinstance(prefix, str) or not prefix or any(c.isspace() for c in prefix):
            msg = f"RedisCache prefix must be a non-empty str without whitespace, got {prefix!r}"
            raise ValueError(msg)
        connect_seconds, reply_seconds = _duration("connect_timeout", connect_timeout), _duration("timeout", timeout)
        if not isinstance(shared_flight, bool):
            msg = f"RedisCache shared_flight must be True or False, got {shared_flight!r}"
            raise TypeError(msg)
        self.shared_flight = shared_flight
        self.lease_seconds = _duration("lease", lease)
        # Any: redis-py types replies as unions over its decode modes; this cache's clients return bytes.
        self._client: Any
        self._waiters: Any
        if client is None:
            self._owns_client = True
            timeouts = {"socket_connect_timeout": connect_seconds, "socket_timeout": reply_seconds}
            self._client = redis.Redis(connection_pool=_ThreadConnections.from_url(str(url), **timeouts))
            # Waiting on a lease holds a subscribed connection: from a pool of their own.
            self._waiters = redis.Redis(connection_pool=redis.ConnectionPool.from_url(
                str(url), max_connections=_MAX_WAITERS, **timeouts))
        else:
            if client.get_connection_kwargs().get("decode_responses"):
                msg = "RedisCache needs a client made with decode_responses=False (records are binary)"
                raise ValueError(msg)
            self._owns_client = False
            self._client = self._waiters = client
            # A given client has no asyncio twin: coroutine functions' cache I/O runs in a worker thread.
            self.capabilities = replace(type(self).capabilities, async_io=False)  # type: ignore[misc]
        self._timeouts: dict[str, Any] = {"socket_connect_timeout": connect_seconds, "socket_timeout": reply_seconds}
        self._loop_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClient] = weakref.WeakKeyDictionary()
        self._loop_clients_lock = threading.Lock()
        self.url = url
        self.prefix = prefix
        self._entry_prefix = f"{prefix}:e:"
        self._index_prefix = f"{prefix}:f:"
        self._tag_prefix = f"{prefix}:t:"
        self._lease_prefix = f"{prefix}:l:"
        self._channel_prefix = f"{prefix}:n:"
        self._messages = f"{prefix}:m"  # the channel of _notify (TieredCache invalidations)
        self._prune = self._client.register_script(_PRUNE)
        self._delete_if_unchanged = self._client.register_script(_DELETE_IF_UNCHANGED)
        self._take = self._client.register_script(_TAKE)
        self._renew = self._client.register_script(_RENEW)
        self._release = self._client.register_script(_RELEASE)
        self._set_script = self._client.register_script(_SET)
        self._set_leased_script = self._client.register_script(_SET_LEASED)
        self._invalidate_tag = self._client.register_script(_INVALIDATE_TAG)

    # ---- names ------------------------------------------------------------------------------------
    def _name(self, key: int) -> str:
        return self._entry_prefix + key_hex(key)

    def _index(self, func: str) -> str:
        return self._index_prefix + function_digest(func)

    def _scan(self, prefix: str) -> Iterator[bytes]:
        yield from self._client.scan_iter(match=_glob_escape(prefix) + "*", count=_BATCH)

    # ---- reading one record ---------------------------------------------------------------------------
    def _decode(self, blob: bytes, key: int) -> CacheEntry | None:
        """The live entry a stored record holds; None when it holds none (expired, of another key scheme,
        or damaged: then reported through ``on_backend_error``)."""
        found = self._record(blob, key)
        if found is None:
            return None
        entry, expiry = found
        return None if expiry is not None and expiry <= self._clock() else entry

    def _record(self, blob: bytes, key: int) -> tuple[CacheEntry, float | None] | None:
        """The entry and expiry time of a record, expired or not; None as for ``_decode``."""
        def where() -> str:  # formatted only for damage
            return f"{self!r}, key {key_hex(key)}"

        try:
            record = decode_binary(blob)
            entry = entry_of_record(record, key, where)
            if entry is None:
                return None  # written under another key scheme: not an entry of this version (no warning)
            expiry = record.get("x")
            if expiry is not None and (isinstance(expiry, bool) or not isinstance(expiry, (int, float))):
                msg = f"{where()}: bad expiry time {expiry!r}"
                raise ValueDecodingError(msg)
            return entry, expiry
        except ValueDecodingError as err:
            self._damaged(where(), err)
            return None

    # ---- primitives -----------------------------------------------------------------------------------
    def _get(self, ref: Ref) -> CacheEntry | None:
        key = ref_key(ref)
        blob = self._client.get(self._name(key))
        return None if blob is None else self._decode(blob, key)

    def _get_many(self, refs: list[Ref]) -> list[CacheEntry | None]:
        """One MGET per ``_MANY`` keys (a batch's hits: one round trip, not one per item)."""
        keys = [ref_key(ref) for ref in refs]
        blobs: list[Any] = []
        for start in range(0, len(keys), _MANY):
            blobs += self._client.mget([self._name(key) for key in keys[start:start + _MANY]])
        return [None if blob is None else self._decode(blob, key) for blob, key in zip(blobs, keys)]

    def _set(self, entry: CacheEntry, ttl: float | None) -> None:
        write = self._write_parts(entry, ttl)  # raises before anything is written
        self._set_script(keys=[write.name, write.func_index], args=write.args(""))  # both or neither
        self._index_tags(entry, write.member)

    def _tag_sets(self, entry: CacheEntry) -> list[str]:
        tags = entry.metadata.get("tags")
        return [self._tag_prefix + function_digest(tag) for tag in tags] if tags else []

    def _index_tags(self, entry: CacheEntry, member: str) -> None:
        """Adds a stored entry to the sets of its tags (after the entry: one more round trip, tagged
        entries only)."""
        sets = self._tag_sets(entry)
        if sets:
            pipe = self._client.pipeline(transaction=False)
            for name in sets:
                pipe.sadd(name, member)
            pipe.execute()

    def _invalidate_tags(self, tags: frozenset[str]) -> int:
        """One script per tag: its set's entries and the set deleted together."""
        return sum(int(self._invalidate_tag(keys=[self._tag_prefix + function_digest(tag)], args=[self._entry_prefix]))
                   for tag in sorted(tags))

    def _write_parts(self, entry: CacheEntry, ttl: float | None) -> _Write:
        key = entry.shared_key  # an argument without a key raises here, naming it
        now = self._clock()
        record = record_of(entry, now)
        if ttl is not None:
            record["x"] = expires_at(ttl, now)
        return _Write(
            name=self._name(key),
            blob=encode_binary(record),  # a value the codec cannot store raises here
            milliseconds=None if ttl is None else _milliseconds(ttl),
            func_index=self._index(entry.func),
            member=key_hex(key),
            score=math.inf if ttl is None else now + ttl,
            trim_below=now - CLOCK_SLACK,
        )

    def _remove(self, ref: Ref) -> bool:
        key = ref_key(ref)
        if isinstance(ref, CacheEntry):
            pipe = self._client.pipeline(transaction=True)
            pipe.delete(self._name(key))
            pipe.zrem(self._index(ref.func), key_hex(key))
            return bool(pipe.execute()[0])
        # An int key does not say its function: its index member goes at the function's next count.
        return bool(self._client.delete(self._name(key)))

    def _has(self, ref: Ref) -> bool:
        return self._get(ref) is not None  # a damaged or other-scheme record is not an entry

    def _iter(self) -> Iterator[CacheEntry]:
        for name, key in self._entry_names():
            blob = self._client.get(name)
            if blob is None:
                continue  # expired or removed since the scan listed it
            entry = self._decode(blob, key)
            if entry is not None:
                yield entry

    def _len(self) -> int:
        return sum(1 for _ in self._iter())

    def _clear(self) -> None:
        for prefix in (self._entry_prefix, self._index_prefix, self._tag_prefix):
            batch: list[bytes] = []
            for name in self._scan(prefix):
                batch.append(name)
                if len(batch) >= _BATCH:
                    self._client.delete(*batch)
                    batch.clear()
            if batch:
                self._client.delete(*batch)

    def _count_func(self, func: str) -> int:
        index = self._index(func)
        members: list[bytes] = self._client.zrange(index, 0, -1)
        return sum(
            int(self._prune(keys=[index], args=[self._entry_prefix, *members[start:start + _BATCH]]))
            for start in range(0, len(members), _BATCH)
        )

    def _clear_func(self, func: str) -> int:
        # The members listed now; each batch deletes entries and members in one transaction, so a set of
        # the same key meanwhile is either removed whole or kept whole, and a later one is left alone.
        index = self._index(func)
        members: list[bytes] = self._client.zrange(index, 0, -1)
        removed = 0
        for start in range(0, len(members), _BATCH):
            batch = members[start:start + _BATCH]
            pipe = self._client.pipeline(transaction=True)
            pipe.delete(*(self._entry_prefix + m.decode() for m in batch))
            pipe.zrem(index, *batch)
            removed += int(pipe.execute()[0])
        return removed

    def _entry_names(self) -> Iterator[tuple[bytes, int]]:
        """The names of the entry keys under the prefix, with the key each stands for."""
        for name in self._scan(self._entry_prefix):
            try:
                yield name, int(name[len(self._entry_prefix):], 16)
            except ValueError:
                continue  # not one of ours (a key a user put under our prefix)

    def expire(self) -> int:
        """Delete every entry whose expiry time has passed now (the server also drops them on its own
        clock, and reads skip them); returns how many. An entry rewritten meanwhile is left alone."""
        removed = 0
        for name, key in self._entry_names():
            blob = self._client.get(name)
            if blob is None:
                continue
            found = self._record(blob, key)
            if found is not None and found[1] is not None and found[1] <= self._clock():
                removed += int(self._delete_if_unchanged(keys=[name], args=[blob]))
        return removed

    # ---- coroutine primitives (redis.asyncio, one client per event loop) --------------------------------
    async def _loop_client(self) -> _LoopClient:
        """This event loop's asyncio client (redis.asyncio connections belong to the loop that made them),
        closed when the loop shuts its async generators down (as ``asyncio.run`` does at its end)."""
        loop = asyncio.get_running_loop()
        with self._loop_clients_lock:
            made = self._loop_clients.get(loop)
        if made is not None:
            return made
        assert self.url is not None  # async_io is declared only for a cache made from a URL
        client = redis.asyncio.Redis.from_url(self.url, **self._timeouts)  # owns its pool: aclose() closes it
        made = _LoopClient(client, client.register_script(_SET), _closed_with_loop(client))
        await made.closer.__anext__()  # started: the loop now closes it at shutdown
        with self._loop_clients_lock:
            self._loop_clients.setdefault(loop, made)
            return self._loop_clients[loop]

    async def _aget(self, ref: Ref) -> CacheEntry | None:
        key = ref_key(ref)
        blob = await (await self._loop_client()).client.get(self._name(key))
        return None if blob is None else self._decode(blob, key)

    async def _aset(self, entry: CacheEntry, ttl: float | None) -> None:
        write = self._write_parts(entry, ttl)  # raises before anything is written
        loop_client = await self._loop_client()
        await loop_client.set_script(keys=[write.name, write.func_index], args=write.args(""))
        for name in self._tag_sets(entry):
            await loop_client.client.sadd(name, write.member)

    # ---- leases (shared flight) --------------------------------------------------------------------------
    def _lease_acquire(self, key: int, seconds: float) -> str | None:
        token = secrets.token_hex(16)
        taken = self._client.set(self._lease_prefix + key_hex(key), token, nx=True, px=_milliseconds(seconds))
        return token if taken else None

    def _lease_take(self, key: int, seconds: float) -> tuple[str | None, CacheEntry | None]:
        token = secrets.token_hex(16)
        taken, blob = self._take(keys=[self._lease_prefix + key_hex(key), self._name(key)],
                                 args=[token, _milliseconds(seconds)])
        return (token if taken else None), (None if blob is None else self._decode(blob, key))

    def _lease_renew(self, key: int, token: str, seconds: float) -> bool:
        return bool(self._renew(keys=[self._lease_prefix + key_hex(key)], args=[token, _milliseconds(seconds)]))

    def _lease_release(self, key: int, token: str) -> None:
        self._release(keys=[self._lease_prefix + key_hex(key)], args=[token, self._channel_prefix + key_hex(key)])

    def _lease_wait(self, key: int, seconds: float) -> None:
        # Subscribed before looking: a release published after the look is then not missed.
        lease_name, deadline = self._lease_prefix + key_hex(key), time.monotonic() + seconds
        pubsub = self._waiters.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(self._channel_prefix + key_hex(key))
            while self._client.exists(lease_name):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or pubsub.get_message(timeout=min(remaining, _LEASE_CHECK)) is not None:
                    return
        finally:
            pubsub.close()

    def _set_leased(self, entry: CacheEntry, ttl: float | None, token: str) -> bool:
        write = self._write_parts(entry, ttl)
        keys = [write.name, write.func_index, self._lease_prefix + write.member]
        stored = bool(self._set_leased_script(keys=keys, args=[*write.args(token), self._channel_prefix + write.member]))
        if stored:
            self._index_tags(entry, write.member)
        return stored

    # ---- messages (TieredCache invalidations) ---------------------------------------------------------
    def _notify(self, message: str) -> None:
        self._client.publish(self._messages, message)

    def _listen(self, deliver: Callable[[str | None], None], stop: threading.Event) -> None:
        # Pub/sub delivers to whoever is subscribed when a message is published, at most once: a
        # subscription made again after a lost connection may have missed some, which deliver(None) says.
        while not stop.is_set():
            pubsub = self._waiters.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self._messages)
                pubsub.get_message(timeout=_LEASE_CHECK)  # the subscription's confirmation
                deliver(None)
                while not stop.is_set():
                    message = pubsub.get_message(timeout=_LEASE_CHECK)
                    if message is not None and message.get("type") == "message":
                        deliver(message["data"].decode("utf-8", "replace"))
            except Exception:  # noqa: BLE001 - the server is away, or the cache was closed: try again
                stop.wait(_LEASE_CHECK)
            finally:
                try:
                    pubsub.close()
                except Exception:  # noqa: BLE001 - a connection already gone
                    pass

    # ---- the connection -------------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        """The ``redis.Redis`` client this cache uses."""
        return self._client

    def ping(self) -> bool:
        """True when the server answers (raises ``redis.RedisError`` when it cannot be reached)."""
        return bool(self._client.ping())

    def close(self) -> None:
        """Closes the connections, when the cache made its client from a URL."""
        if self._owns_client:
            self._client.connection_pool.disconnect()
            self._waiters.close()
            self._waiters.connection_pool.disconnect()

    def __repr__(self) -> str:
        where = _redacted(self.url) if self.url is not None else "client=..."
        return f"RedisCache({where!r}, prefix={self.prefix!r})"


#: Connections for callers waiting on leases at once (redis-py's default pool stops at 100).
_MAX_WAITERS = 10_000


class _ThreadConnections(redis.ConnectionPool):
    """A connection per thread, kept by that thread, in place of redis-py's shared pool.

    redis-py's pool counts the connections it hands out and refuses more than ``max_connections`` (100
    by default): a thread interrupted (Ctrl-C, an asynchronous exception) between taking a connection
    and giving it back loses that slot for good, and enough interrupts leave every call failing with "Too
    many connections" (the interrupt storm of tests/robustness found it). Here nothing is counted or
    handed between threads: each thread reuses its own connection, made on first use and made again in a
    forked child (the parent's socket is never used by the child).

    A command that did not end normally (an exception or an interrupt between sending it and reading
    its reply, or a connection taken and never given back) may have left its reply unread, which the
    next command would take for its own: such a connection is reconnected before its next command.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._mine = threading.local()
        self._made: weakref.WeakSet[Any] = weakref.WeakSet()

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        mine = self._mine
        connection = getattr(mine, "connection", None)
        if connection is None or connection.pid != os.getpid():
            connection = self.connection_class(**self.connection_kwargs)
            mine.connection, mine.clean = connection, True
            mine.closer = _ClosedWithThread(connection)
            self._made.add(connection)
        if not mine.clean or connection.can_read():
            connection.disconnect()
        mine.clean = False  # until the command ends normally (``release`` outside an exception)
        connection.connect()
        return connection

    def release(self, connection: Any) -> None:
        """Kept by its thread; marked clean when the command ended normally (redis-py releases in a
        ``finally``: an exception on its way out means the reply may not have been read)."""
        if sys.exc_info()[1] is None and getattr(self._mine, "connection", None) is connection:
            self._mine.clean = True

    def disconnect(self, inuse_connections: bool = True) -> None:
        for connection in list(self._made):
            connection.disconnect()


class _ClosedWithThread:
    """Held in a thread's locals beside its connection: when the thread ends (a worker of
    ``asyncio.to_thread``, say), its locals go and this closes the connection, rather than leaving the
    socket to the collector."""

    __slots__ = ("connection",)

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    def __del__(self) -> None:
        try:
            if self.connection.pid == os.getpid():  # never the parent's socket, in a forked child
                self.connection.disconnect()
        except Exception:  # noqa: BLE001, S110 - at thread exit there is no one to tell
            pass


class _LoopClient(NamedTuple):
    """One event loop's asyncio client, its write script, and the async generator that closes it."""

    client: Any
    set_script: Any
    closer: AsyncIterator[None]


async def _closed_with_loop(client: Any) -> AsyncIterator[None]:
    """Yields once; its ``finally`` runs when the loop finalizes its async generators (``asyncio.run`` does
    at its end), closing the client's connections there rather than leaving them to the collector."""
    try:
        yield
    finally:
        await client.aclose()


class _Write(NamedTuple):
    """What storing one entry writes: the entry's key and record, and its member in the function index."""

    name: str
    blob: bytes
    milliseconds: int | None
    func_index: str
    member: str
    score: float
    trim_below: float

    def args(self, token: str) -> list[Any]:
        """The arguments of the ``_WRITE`` scripts, after the lease ``token`` ("" for none)."""
        score = "+inf" if self.score == math.inf else repr(self.score)
        return [token, self.blob, "" if self.milliseconds is None else self.milliseconds, self.member, score,
                repr(self.trim_below)]


def _milliseconds(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


def _redacted(url: str) -> str:
    """``url`` without its password (reprs and warnings end up in logs)."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.partition(":")[0]
    return f"{scheme}://{user + ':***' if ':' in credentials else user}@{host}"
