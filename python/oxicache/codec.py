"""oxicache's value codec: how persistent backends store values (docs/value-codec.md).

Two encodings of one value model, both native: ``encode_binary`` (MessagePack with extension types) and
``encode_json`` (tagged JSON, readable and queryable; ``encode_json_bytes`` gives its UTF-8 bytes without
building the str, for files and sockets). Both round-trip exactly: tuples stay tuples, sets
sets, dict keys keep their types, datetimes keep their time zones, and so on.

Decoding never imports anything named by the data: Enum, dataclass, pydantic and named tuple instances
are revived for classes in this process's allow-list, and for plain-data classes of modules this process
has already imported (``revive_imported``). A class joins the allow-list when this process encodes one
of its instances, with ``allow(cls)``, or when memoize sees it in a return annotation or ``types=``.

``Serializer`` adds the 2-byte envelope backends store, and the opt-in pickle forms.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable, Iterator

from oxicache._core import allow_type, decode_binary, decode_json, encode_binary, encode_json, encode_json_bytes
from oxicache._core import revive_imported as _revive_imported
from oxicache._core import unrevived_factory
from oxicache.errors import ValueDecodingError, ValueEncodingError, ValueNotAllowedError

TYPE_CHECKING = False  # not typing's: `import oxicache` does not load typing (oxicache/_light.py)
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "Serializer",
    "ValueDecodingError",
    "ValueEncodingError",
    "ValueNotAllowedError",
    "Unrevived",
    "allow",
    "allow_types",
    "is_plain_data_class",
    "revive_imported",
    "decode_binary",
    "decode_json",
    "encode_binary",
    "encode_json",
    "encode_json_bytes",
]

MARK = b"\xc1"  # a byte MessagePack never uses: codec data can't be mistaken for plain MessagePack
CODEC, PICKLE, SIGNED = MARK + b"m", MARK + b"p", MARK + b"s"


def allow(*classes: type) -> None:
    """Lets decoding revive instances of these Enum, dataclass, pydantic model or named tuple classes
    (needed in a process that reads values of a class before it has stored any, when the class is not
    already imported or defines ``__del__``)."""
    for cls in classes:
        allow_type(cls)


def revive_imported(enabled: bool) -> bool:
    """Whether stored values may name plain-data classes (dataclass, NamedTuple, Enum, pydantic model) of
    modules this process has already imported without them being allowed (on by default; the threat
    model is in docs/value-codec.md). Turn it off for a store others can write to, and list the classes
    you read with ``allow``/``types=``. Set it at start-up: a class already revived this way stays on the
    allow-list. Returns the previous setting."""
    if not isinstance(enabled, bool):
        msg = f"revive_imported() takes True or False, got {enabled!r}"
        raise TypeError(msg)
    return _revive_imported(enabled)


class Unrevived:
    """Stands for a value of a class this process does not revive, inside ``unrevived_placeholders()``:
    ``type_name`` (``module:qualname``) and the stored ``data`` (fields, items or Enum value)."""

    __slots__ = ("data", "type_name")

    def __init__(self, type_name: str, data: Any) -> None:
        self.type_name, self.data = type_name, data

    def __repr__(self) -> str:
        return f"<{self.type_name} not revived>"

    def __cache_key__(self) -> tuple[str, str]:
        # Never the key of the real value: a record keyed on such an argument reads as not matching its key.
        return ("oxicache.codec.Unrevived", self.type_name)


@contextlib.contextmanager
def unrevived_placeholders() -> Iterator[list[str]]:
    """For tools that inspect a store (the CLI's export), never around a cache's reads: in this thread,
    decoding gives an ``Unrevived`` for a value of a class this process does not revive, instead of
    raising ``ValueNotAllowedError``, so the rest of the record (its function, its inputs) can be read.
    Yields the list of type names of the placeholders made, in order."""
    made: list[str] = []

    def factory(type_name: str, data: Any) -> Unrevived:
        made.append(type_name)
        return Unrevived(type_name, data)

    previous = unrevived_factory(factory)
    try:
        yield made
    finally:
        unrevived_factory(previous)


def is_plain_data_class(cls: object) -> bool:
    """Whether ``cls`` is a dataclass, NamedTuple, Enum or pydantic model class (the classes the codec
    revives)."""
    if not isinstance(cls, type):
        return False
    # (As dataclasses.is_dataclass does; an Enum class exists only once enum is imported. Neither module
    # is imported here: `import oxicache` stays light.)
    if hasattr(cls, "__dataclass_fields__"):
        return True
    enum = sys.modules.get("enum")
    if enum is not None and issubclass(cls, enum.Enum):
        return True
    if issubclass(cls, tuple) and hasattr(cls, "_fields"):
        return True
    pydantic = sys.modules.get("pydantic")  # a pydantic model's module imported pydantic already
    return pydantic is not None and issubclass(cls, pydantic.BaseModel)


def allow_types(classes: Iterable[type] | None, option: str = "types") -> tuple[type, ...]:
    """Validates and allows the classes of a ``types=[...]`` option: each must be a dataclass, NamedTuple,
    Enum or pydantic model class (``TypeError`` naming it otherwise)."""
    if classes is None:
        return ()
    if isinstance(classes, type) or not isinstance(classes, Iterable):
        msg = f"{option}= takes a list of classes, got {classes!r}; write {option}=[{getattr(classes, '__name__', 'C')}]"
        raise TypeError(msg)
    found = tuple(classes)
    for cls in found:
        if not is_plain_data_class(cls):
            shown = cls.__qualname__ if isinstance(cls, type) else repr(cls)
            msg = (f"{option}= takes dataclass, NamedTuple, Enum or pydantic model classes; {shown} is none of "
                   f"these (the codec stores other types only as builtin values: return those instead)")
            raise TypeError(msg)
    for cls in found:
        allow_type(cls)
    return found


class Serializer:
    """Turns values into the bytes a backend stores, and back.

    ``Serializer()`` uses the binary codec. ``Serializer("pickle")`` pickles instead (any picklable
    value; only for stores no one else can write, since unpickling runs code the data chooses), and
    ``Serializer("pickle", key=b"...")`` signs each pickle with HMAC-SHA256, so a value whose signature
    does not match is refused before it is unpickled.
    """

    def __init__(self, kind: str = "codec", key: bytes | None = None) -> None:
        if kind not in ("codec", "pickle"):
            msg = f'serializer must be "codec" (the default) or "pickle", got {kind!r}'
            raise ValueError(msg)
        if key is not None and kind != "pickle":
            msg = "a signing key only applies to serializer='pickle'"
            raise ValueError(msg)
        if key is not None and (not isinstance(key, bytes) or len(key) < 16):
            msg = "the signing key must be bytes of at least 16 bytes (e.g. os.urandom(32))"
            raise ValueError(msg)
        self.kind, self._key = kind, key

    def dumps(self, value: Any) -> bytes:
        if self.kind == "codec":
            return CODEC + encode_binary(value)
        # serializer="pickle" only: `import oxicache` loads none of these
        import hashlib
        import hmac
        import pickle

        data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        if self._key is None:
            return PICKLE + data
        return SIGNED + hmac.new(self._key, data, hashlib.sha256).digest() + data

    def loads(self, blob: bytes) -> Any:
        """The value of ``blob``; ``ValueDecodingError`` when it is damaged, unsigned where a signature is
        required, or in a form this serializer does not read (pickle is never read unless asked for)."""
        head, body = bytes(blob[:2]), bytes(blob[2:])
        if head == CODEC:
            return decode_binary(body)
        if self.kind != "pickle":
            msg = "the stored value is a pickle, and this cache reads only the safe codec (pass serializer='pickle' to read it)"
            raise ValueDecodingError(msg)
        import hashlib
        import hmac
        import pickle

        if head == SIGNED and self._key is not None:
            signature, data = bytes(body[:32]), bytes(body[32:])
            if not hmac.compare_digest(signature, hmac.new(self._key, data, hashlib.sha256).digest()):
                msg = "the stored pickle's signature does not match the signing key; it was not unpickled"
                raise ValueDecodingError(msg)
            return pickle.loads(data)  # noqa: S301 - signed with the user's key
        if head == PICKLE and self._key is None:
            return pickle.loads(body)  # noqa: S301 - the user chose unsigned pickle
        if head in (PICKLE, SIGNED):
            msg = "the stored pickle is unsigned but a signing key is set (or signed but no key is set); it was not unpickled"
            raise ValueDecodingError(msg)
        msg = f"the stored value does not start with an oxicache envelope (got {head!r})"
        raise ValueDecodingError(msg)
