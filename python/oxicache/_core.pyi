"""Type stubs of the native module (rust/). Behaviour is documented on the Python side and in docs/."""

from typing import Any, Callable, Iterable, final

from oxicache.info import CacheInfo

__all__ = [
    "DEFAULT_WAIT_TIMEOUT",
    "KEY_SCHEME_VERSION",
    "MAX_DEPTH",
    "Binder",
    "CacheEntry",
    "ForkGate",
    "KeyBytes",
    "Memoizer",
    "MemoryStore",
    "Monitor",
    "Pending",
    "Replay",
    "SingleFlight",
    "__version__",
    "after_fork_in_child",
    "check_stack",
    "allow_type",
    "revive_imported",
    "unrevived_factory",
    "controls_activated",
    "controls_var",
    "install_vectorcall",
    "canonical_bytes",
    "decode_binary",
    "decode_json",
    "encode_binary",
    "encode_json",
    "encode_json_bytes",
    "entry_of_columns",
    "entry_of_record",
    "key_of",
    "key_of_many",
    "register_key_encoder",
    "set_debug_logging",
]

__version__: str
DEFAULT_WAIT_TIMEOUT: float
KEY_SCHEME_VERSION: int
MAX_DEPTH: int

def check_stack() -> None:
    """Raise RecursionError when the thread's C stack is nearly used up."""

def canonical_bytes(value: Any, shared: bool = False) -> bytes:
    """The canonical encoding of a value (docs/key-scheme.md).

    Raises:
        KeyEncodingError: the value (or something inside it) has no canonical encoding.
    """

def key_of(func: str, inputs: dict[str, Any]) -> int:
    """The 128-bit key of ``(func, inputs)``, equal to ``CacheEntry(func, inputs).key``."""

def key_of_many(func: str, inputs: Iterable[dict[str, Any]]) -> list[int]:
    """``[key_of(func, d) for d in inputs]`` in one call; large encodings are digested without the GIL."""

def set_debug_logging(on: bool, sink: Callable[[str, str, int], None] | None = None) -> None:
    """Turns the native memoizer's debug events on or off (oxicache/_logswitch.py keeps it in step)."""

def register_key_encoder(cls: type, encoder: Callable[[Any], Any] | None) -> None:
    """Key instances of ``cls`` (and subclasses) by ``encoder(obj)``; ``None`` removes the registration."""

def install_vectorcall(memo: Memoizer) -> None: ...
def after_fork_in_child() -> None: ...
def controls_var() -> Any: ...
def allow_type(cls: Any) -> str: ...
def revive_imported(enabled: bool) -> bool: ...
def unrevived_factory(factory: Any) -> Any: ...
def encode_binary(value: Any) -> bytes:
    """The binary (MessagePack) encoding of a value (docs/value-codec.md)."""

def decode_binary(data: bytes) -> Any:
    """The value of a binary encoding."""

def encode_json(value: Any) -> str:
    """The tagged JSON encoding of a value."""

def encode_json_bytes(value: Any) -> bytes:
    """The tagged JSON encoding of a value as UTF-8 bytes, without building the str."""

def decode_json(text: str | bytes) -> Any:
    """The value of a JSON encoding."""

def entry_of_columns(row: tuple[Any, ...], key: int, where: Callable[[], str]) -> CacheEntry:
    """The entry a DatabaseCache row (func, inputs, output, expected, metadata, ...) holds under ``key``;
    ValueDecodingError, naming ``where()``, for damaged or misplaced records."""

def entry_of_record(record: Any, key: int, where: Callable[[], str]) -> CacheEntry | None:
    """The entry a decoded compact record (DiskCache, RedisCache) holds under ``key``; None for a record
    of another key scheme; ValueDecodingError, naming ``where()``, for damaged or misplaced records."""

def controls_activated() -> None: ...

@final
class CacheEntry:
    """One cached call: func, inputs, output, expected, metadata. ``...`` means unset."""

    output: Any
    expected: Any
    # Defaults shown as ... mean "not given": func "", inputs {}, output/expected unset, metadata {}.
    def __new__(
        cls,
        func: str | Callable[..., Any] = ...,
        inputs: dict[str, Any] | None = ...,
        output: Any = ...,
        expected: Any = ...,
        metadata: dict[str, Any] | None = ...,
    ) -> CacheEntry: ...
    @property
    def func(self) -> str: ...
    @func.setter
    def func(self, value: str | Callable[..., Any]) -> None: ...
    @property
    def inputs(self) -> dict[str, Any]: ...
    @inputs.setter
    def inputs(self, value: dict[str, Any]) -> None: ...
    @property
    def metadata(self) -> dict[str, Any]: ...
    @metadata.setter
    def metadata(self, value: dict[str, Any] | None) -> None: ...
    @property
    def key(self) -> int:
        """The 128-bit key of (func, inputs), recomputed from the current fields."""
    @property
    def shared_key(self) -> int:
        """``key``, refused (KeyEncodingError) when an input holds a class no other process can name."""
    def _pin_key(self, shared: bool) -> int: ...
    def _call_snapshot(self) -> CacheEntry: ...
    @property
    def value(self) -> Any:
        """``expected`` when annotated, otherwise ``output``."""
    @property
    def annotated(self) -> bool: ...
    @classmethod
    def from_args(
        cls,
        func: str | Callable[..., Any] = ...,
        output: Any = ...,
        expected: Any = ...,
        metadata: dict[str, Any] | None = ...,
        exclude: Iterable[str] | None = ...,
        **inputs: Any,
    ) -> CacheEntry: ...
    @classmethod
    def from_dict(cls, data: dict[str, Any], exclude: Iterable[str] | None = None) -> CacheEntry: ...
    def to_dict(self) -> dict[str, Any]: ...
    def clone(
        self,
        *,
        func: str | Callable[..., Any] = ...,
        inputs: dict[str, Any] = ...,
        output: Any = ...,
        expected: Any = ...,
        metadata: dict[str, Any] | None = ...,
        exclude: Iterable[str] | None = ...,
    ) -> CacheEntry: ...
    def annotate(self, expected: Any = ..., metadata: dict[str, Any] | None = ...) -> CacheEntry: ...
    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...

@final
class MemoryStore:
    """Thread-safe in-memory store behind InMemCache (LRU bound, TTL, exact statistics)."""

    def __new__(cls, max_size: int | None = None, ttl: float | None = None) -> MemoryStore: ...
    @property
    def max_size(self) -> int | None: ...
    @property
    def ttl(self) -> float | None: ...
    def get(self, func: str, inputs: dict[str, Any]) -> CacheEntry | None: ...
    def contains(self, func: str, inputs: dict[str, Any]) -> bool: ...
    def set(self, entry: CacheEntry, ttl: float | None = None) -> None: ...
    def remove(self, func: str, inputs: dict[str, Any]) -> bool: ...
    def get_by_key(self, key: int) -> CacheEntry | None: ...
    def remove_by_key(self, key: int) -> bool: ...
    def entries(self) -> list[CacheEntry]: ...
    def clear(self) -> None: ...
    def clear_func(self, func: str) -> int: ...
    def count(self, func: str) -> int: ...
    def expire(self) -> int: ...
    def stats(self) -> dict[str, int | None]: ...
    def _advance_clock(self, seconds: float) -> None: ...
    def __len__(self) -> int: ...

@final
class Binder:
    """The argument binder shared by both memoize engines: a call's inputs by parameter name."""

    def __new__(cls, params: list[tuple[str, int, bool, Any]], exclude: list[str]) -> Binder: ...
    def inputs(self, args: tuple[Any, ...], kwargs: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """Signature order, defaults applied, excluded names left out (also from ``**kwargs``); None
        when the arguments do not fit the signature."""

@final
class Memoizer:
    """A memoized function on a MemoryStore (built by ``InMemCache.memoize``)."""

    cache_name: str
    def __new__(
        cls,
        func: Callable[..., Any],
        store: MemoryStore,
        name: str,
        params: list[tuple[str, int, bool, Any]],
        exclude: list[str],
        ttl: float | None = None,
        metadata: dict[str, Any] | None = None,
        cache_if: Callable[[Any], Any] | None = None,
        wait_timeout: float | None = None,
        private: bool = False,
        *,
        delegate: float | None = None,
        passthrough: bool = False,
        replay: bool = False,
    ) -> Memoizer: ...
    @property
    def wait(self) -> float:
        """Seconds a call waits for another computing its key before taking over."""
    @property
    def excluded(self) -> list[str]:
        """The parameter names left out of its keys (``exclude``), sorted."""
    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...
    def lookup(self, args: tuple[Any, ...], kwargs: dict[str, Any] | None = None) -> Any:
        """The stored value of the call, or a ``Pending`` miss."""
    def __get__(self, obj: Any, owner: type | None = None, /) -> Any: ...
    def __copy__(self) -> Memoizer: ...
    def __deepcopy__(self, memo: Any, /) -> Memoizer: ...
    def cache_key(self, *args: Any, **kwargs: Any) -> int: ...
    def cache_inputs(self, *args: Any, **kwargs: Any) -> dict[str, Any]: ...
    def cache_info(self) -> CacheInfo: ...
    def cache_clear(self) -> None: ...


@final
class Pending:
    """A missed lookup of a memoized coroutine or generator function; completed by ``store``."""

    @property
    def key(self) -> bytes: ...
    @property
    def bypass(self) -> bool: ...
    def store(self, output: Any) -> None: ...
    def recheck(self) -> tuple[bool, Any]: ...
    def failed(self) -> None: ...

@final
class Replay:
    """Replays a cached generator's items (generator protocol, list-iterator speed)."""

    def __new__(cls, items: Iterable[Any]) -> Replay: ...
    def __iter__(self) -> Replay: ...
    def __next__(self) -> Any: ...
    def send(self, _value: Any) -> Any: ...
    def throw(self, typ: Any, val: Any = None, _tb: Any = None) -> Any: ...
    def close(self) -> None: ...
    def __length_hint__(self) -> int: ...

@final
class SingleFlight:
    """Per-key single-flight for Python wrappers (threads)."""

    def __new__(cls) -> SingleFlight: ...
    def finished_count(self) -> int: ...
    def run(
        self,
        key: bytes,
        before: int,
        compute: Callable[[], Any],
        recheck: Callable[[], tuple[bool, Any]],
        wait: float | None = None,
    ) -> Any: ...

@final
class Monitor:
    """A lock with a condition whose enter and exit no interrupt can split (rust/monitor.rs)."""

    def __new__(cls) -> Monitor: ...
    def __enter__(self) -> None: ...
    def __exit__(self, *exc: object) -> None: ...
    def wait(self, timeout: float | None = None) -> bool: ...
    def notify(self) -> None: ...
    def notify_all(self) -> None: ...
    @property
    def locked(self) -> bool: ...

@final
class ForkGate:
    """The process-wide SQLite fork gate (every instance is the same gate)."""

    def __new__(cls) -> ForkGate: ...
    def __enter__(self) -> None: ...
    def __exit__(self, *exc: object) -> None: ...
    def before_fork(self) -> None: ...
    def after_fork_in_parent(self) -> None: ...
    def after_fork_in_child(self) -> None: ...
    @property
    def inside(self) -> int: ...
    @property
    def forking(self) -> bool: ...

@final
class KeyBytes:
    """A stored argument's canonical key bytes (for arguments the value codec cannot store)."""

    def __new__(cls, canonical: bytes) -> KeyBytes: ...
    @property
    def canonical(self) -> bytes: ...
    def __eq__(self, value: object, /) -> bool: ...
    def __hash__(self) -> int: ...
    def __reduce__(self) -> tuple[Any, tuple[bytes]]: ...
