"""The chat-completion request as memoized functions: one per kind (plain, streamed; sync, async).

The four functions share one identity (``name=``, default ``"oxicache.llm"``), so a request has one key
whichever of them makes it: ``oracle`` and ``aoracle`` share entries, and so do ``stream`` and
``astream``. Their parameters are the request: ``model``, ``messages``, ``stream`` and ``**params``;
the names in ``TRANSPORT`` (plus ``exclude=``) are left out of the key by ``memoize``'s ``exclude``,
but still sent. What is stored is the SDK's response as JSON (``model_dump``): the ``ChatCompletion``,
or the list of ``ChatCompletionChunk`` of a stream, recorded while it streams and stored only once it
has ended (a stream that fails or is abandoned stores nothing).

Each call passes a fresh ``Call`` marker, excluded from the key: the function body (which runs only on
a miss) sets ``call.sent``, which is how a caller tells a hit from a miss.
"""

from __future__ import annotations

from typing import Any, AsyncIterator, Callable, Iterable, Iterator

from oxicache.memo.signature import validate_exclude
from oxicache.base import BaseCache
from oxicache.llm.keys import TRANSPORT

__all__ = ["DEFAULT_NAME", "Call", "ChatCalls"]

DEFAULT_NAME = "oxicache.llm"

#: Returns the SDK's ``chat.completions.create`` to call (looked up at the call, so clients are lazy).
CreateSource = Callable[[], Callable[..., Any]]


class Call:
    """One call's marker: ``sent`` becomes True when the call sent a request (a miss)."""

    __slots__ = ("response", "sent")

    def __init__(self) -> None:
        self.sent = False
        self.response: Any = None  # the SDK object of a non-streamed miss


def _dump(obj: Any) -> dict[str, Any]:
    # exclude_unset: exactly the fields the server sent, so model_validate rebuilds the same object
    dumped: dict[str, Any] = obj.model_dump(mode="json", exclude_unset=True)
    return dumped


class ChatCalls:
    """The memoized chat-completion functions for one cache."""

    def __init__(self, cache: BaseCache, create: CreateSource, acreate: CreateSource, *,
                 name: str = DEFAULT_NAME, exclude: Iterable[str] | None = None) -> None:
        self.cache = cache
        self.name = name
        self.exclude = TRANSPORT | validate_exclude(exclude)
        memoize = cache.memoize(name=name, exclude=sorted(self.exclude | {"_call"}))

        def complete(model: Any, messages: Any, stream: bool = False, _call: Any = None,
                     **params: Any) -> dict[str, Any]:
            _call.sent = True
            _call.response = create()(model=model, messages=messages, stream=stream, **params)
            return _dump(_call.response)

        def complete_stream(model: Any, messages: Any, stream: bool = True, _call: Any = None,
                            **params: Any) -> Iterator[dict[str, Any]]:
            _call.sent = True
            with create()(model=model, messages=messages, stream=stream, **params) as chunks:
                for chunk in chunks:
                    yield _dump(chunk)

        async def acomplete(model: Any, messages: Any, stream: bool = False, _call: Any = None,
                            **params: Any) -> dict[str, Any]:
            _call.sent = True
            _call.response = await acreate()(model=model, messages=messages, stream=stream, **params)
            return _dump(_call.response)

        async def acomplete_stream(model: Any, messages: Any, stream: bool = True, _call: Any = None,
                                   **params: Any) -> AsyncIterator[dict[str, Any]]:
            _call.sent = True
            chunks = await acreate()(model=model, messages=messages, stream=stream, **params)
            async with chunks:
                async for chunk in chunks:
                    yield _dump(chunk)

        self.complete: Callable[..., dict[str, Any]] = memoize(complete)
        self.complete_stream: Callable[..., Iterator[dict[str, Any]]] = memoize(complete_stream)
        self.acomplete: Callable[..., Any] = memoize(acomplete)
        self.acomplete_stream: Callable[..., AsyncIterator[dict[str, Any]]] = memoize(acomplete_stream)
        self._inputs: Callable[..., dict[str, Any]] = self.complete.cache_inputs
        self._key: Callable[..., int] = self.complete.cache_key

    def key_inputs(self, model: Any, messages: Any, stream: bool, params: dict[str, Any]) -> dict[str, Any]:
        """The dict that is hashed into the key of this request (what the cache entry's ``inputs`` hold)."""
        return self._inputs(model, messages, stream, None, **params)

    def cache_key(self, model: Any, messages: Any, stream: bool, params: dict[str, Any]) -> int:
        """The key of this request (``CacheEntry.key``)."""
        return self._key(model, messages, stream, None, **params)
