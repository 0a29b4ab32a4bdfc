"""Exceptions raised by oxicache."""

__all__ = ["BackendError", "CacheError", "CacheWarning", "CorruptStoreError", "IdentityWarning", "DatabaseConnectionError", "KeyEncodingError",
           "ValueDecodingError", "ValueEncodingError", "ValueNotAllowedError"]


class CacheError(Exception):
    """Base class of oxicache's own failures."""


class KeyEncodingError(CacheError, TypeError):
    """An argument has no canonical key encoding.

    The message names the argument, its type and the fixes: exclude it, give the type a
    ``__cache_key__()`` method, or register an encoder with ``oxicache.register_key_encoder``.
    It is a ``TypeError``, like the error ``functools.lru_cache`` raises for unhashable arguments.
    """


class ValueEncodingError(CacheError, TypeError):
    """A value has no encoding in oxicache's value codec (persistent backends store values with it).

    The message names the type, where it sits inside the value, and the fix.
    """


class ValueDecodingError(CacheError, ValueError):
    """Stored bytes or text are not a valid encoding, or name a type this process does not allow."""


class ValueNotAllowedError(ValueDecodingError):
    """A stored value names a class (Enum, dataclass, pydantic model, named tuple) this process does not
    revive: not allowed, and not an already-imported plain-data class (docs/value-codec.md). The record is
    intact, not damaged; the message names the class and the fix (``memoize(types=[C])`` or
    ``oxicache.codec.allow(C)``)."""


class CacheWarning(UserWarning):
    """Something went wrong with the cache, not with the call: a result that could not be stored (the
    caller still got it), or a damaged record that was read as a miss."""


class IdentityWarning(CacheWarning):
    """A function memoized on a store other processes read has an identity that is not its name alone (a
    lambda or a local function): issued once per function, saying how the identity is made and that
    ``memoize(name=...)`` makes it stable."""


class DatabaseConnectionError(CacheError, ConnectionError):
    """The database named by a DatabaseCache's settings cannot be opened or reached (raised when the cache
    is created, naming the URL without its password)."""


class CorruptStoreError(DatabaseConnectionError):
    """A store's SQLite file (DiskCache's ``cache.db``, a DatabaseCache SQLite file) is damaged as a whole: not
    a SQLite database, or a damaged header. Raised when the cache is created, never later; the message names
    the file and the fix (delete it, and its -wal and -shm files, to start an empty cache). Damage to
    single entries is not this error: those read as misses (see ``on_backend_error``)."""


class BackendError(CacheError):
    """The cache's storage failed during a memoized call (disk full, I/O error, lost connection) and the
    cache was created with ``on_backend_error="raise"``; the original exception is ``__cause__``."""
