"""The chat-completion request as memoized functions: one per kind (plain, streamed; sync, async).

The four functions share one identity (``name=``, default ``"oxicache.llm"``), so a request has one key
whichever of them makes it: ``oracle`` and ``aoracle`` share entries, and so do ``stream`` and
``astream``. Their parameters are the request: ``model``, ``messages``, ``stream`` and ``**params``;
the names in ``TRANSPORT`` (plus ``exclude=``) are left out of the key by ``memoize``'s ``exclude``,
but still sent. What is stored is the SDK's response as JSON (``model_dump``): the ``ChatCompletion``,
or the list of ``ChatCompletionChunk`` of a stream, recorded while it streams and stored only once it
has ended (a stream that fails or is abandoned stores nothing).

Each call passes a fresh ``Call`` marker, excluded from the key: the function body (which runs only on
a miss) sets ``call.sent``, which is how a caller tells a hit from a miss. ``endpoint`` (the base URL
without credentials) is in the key unless ``key_endpoint=False``.

A reply without choices and a stream in which no choice finished raise inside the memoized function
(``NoChoices``, ``Unfinished``), so that memoize stores neither; the callers turn them back into what
the SDK returned, or a clear error.
"""

from __future__ import annotations

from typing import Any, AsyncIterator, Callable, Iterable, Iterator

from oxicache.memo.exclude import validate_exclude
from oxicache.base import BaseCache
from oxicache.llm.keys import TRANSPORT

__all__ = ["DEFAULT_NAME", "Call", "ChatCalls", "NoChoices", "Unfinished"]

DEFAULT_NAME = "oxicache.llm"

#: Returns the SDK's ``chat.completions.create`` to call (looked up at the call, so clients are lazy).
CreateSource = Callable[[], Callable[..., Any]]


class Call:
    """One call's marker: ``sent`` becomes True when the call sent a request (a miss); ``send`` holds the
    parameters to send instead of their keyed form (see ``keys.key_form``)."""

    __slots__ = ("response", "send", "sent")

    def __init__(self, send: dict[str, Any] | None = None) -> None:
        self.sent = False
        self.response: Any = None  # the SDK object of a miss (the latest chunk of a stream)
        self.send: dict[str, Any] = send or {}


class NoChoices(Exception):
    """Raised inside a memoized call for a reply without choices, so that it is not stored: the SDK
    accepts an HTTP 200 whose body is ``{"error": ...}`` (some proxies send one) as a response."""

    def __init__(self, response: Any, body: dict[str, Any]) -> None:
        super().__init__(body)
        self.response, self.body = response, body


class Unfinished(Exception):
    """Raised at the end of a recorded stream in which no choice had a ``finish_reason``: it was cut
    short (a proxy closed it cleanly), so it is not stored."""


def _dump(obj: Any) -> dict[str, Any]:
    # exclude_unset: exactly the fields the server sent, so construct() rebuilds the same object;
    # warnings off: values the SDK accepted without validation (finish_reason "eos") are dumped as they are
    dumped: dict[str, Any] = obj.model_dump(mode="json", exclude_unset=True, warnings=False)
    return dumped


def _reply(response: Any) -> dict[str, Any]:
    dumped = _dump(response)
    if not dumped.get("choices"):
        raise NoChoices(response, dumped)
    return dumped


def _finished(chunk: dict[str, Any]) -> bool:
    return any(c.get("finish_reason") for c in chunk.get("choices") or ())


class ChatCalls:
    """The memoized chat-completion functions for one cache."""

    def __init__(self, cache: BaseCache, create: CreateSource, acreate: CreateSource, *,
                 name: str = DEFAULT_NAME, exclude: Iterable[str] | None = None, key_endpoint: bool = True) -> None:
        self.cache = cache
        self.name = name
        self.exclude = TRANSPORT | validate_exclude(exclude)
        if not isinstance(key_endpoint, bool):
            msg = f"key_endpoint must be True or False, got {key_endpoint!r}"
            raise TypeError(msg)
        # key_endpoint=False: the endpoint is left out, which is the key of entries made before it was keyed
        hidden = {"_call"} | (set() if key_endpoint else {"endpoint"})
        memoize = cache.memoize(name=name, exclude=sorted(self.exclude | hidden))

        def complete(model: Any, messages: Any, stream: bool = False, endpoint: Any = None, _call: Any = None,
                     **params: Any) -> dict[str, Any]:
            _call.sent = True
            _call.response = create()(model=model, messages=messages, stream=stream, **{**params, **_call.send})
            return _reply(_call.response)

        def complete_stream(model: Any, messages: Any, stream: bool = True, endpoint: Any = None, _call: Any = None,
                            **params: Any) -> Iterator[dict[str, Any]]:
            _call.sent = True
            finished = False
            with create()(model=model, messages=messages, stream=stream, **{**params, **_call.send}) as chunks:
                for chunk in chunks:
                    dumped = _dump(chunk)
                    finished = finished or _finished(dumped)
                    _call.response = chunk  # the SDK's object, for cache_client's live stream
                    yield dumped
            if not finished:
                raise Unfinished

        async def acomplete(model: Any, messages: Any, stream: bool = False, endpoint: Any = None, _call: Any = None,
                            **params: Any) -> dict[str, Any]:
            _call.sent = True
            _call.response = await acreate()(model=model, messages=messages, stream=stream, **{**params, **_call.send})
            return _reply(_call.response)

        async def acomplete_stream(model: Any, messages: Any, stream: bool = True, endpoint: Any = None,
                                   _call: Any = None, **params: Any) -> AsyncIterator[dict[str, Any]]:
            _call.sent = True
            finished = False
            chunks = await acreate()(model=model, messages=messages, stream=stream, **{**params, **_call.send})
            async with chunks:
                async for chunk in chunks:
                    dumped = _dump(chunk)
                    finished = finished or _finished(dumped)
                    _call.response = chunk
                    yield dumped
            if not finished:
                raise Unfinished

        self.complete: Callable[..., dict[str, Any]] = memoize(complete)
        self.complete_stream: Callable[..., Iterator[dict[str, Any]]] = memoize(complete_stream)
        self.acomplete: Callable[..., Any] = memoize(acomplete)
        self.acomplete_stream: Callable[..., AsyncIterator[dict[str, Any]]] = memoize(acomplete_stream)
        self._inputs: Callable[..., dict[str, Any]] = self.complete.cache_inputs
        self._key: Callable[..., int] = self.complete.cache_key

    def key_inputs(self, model: Any, messages: Any, stream: bool, endpoint: str, params: dict[str, Any]) -> dict[str, Any]:
        """The dict that is hashed into the key of this request (what the cache entry's ``inputs`` hold)."""
        return self._inputs(model, messages, stream, endpoint, None, **params)

    def cache_key(self, model: Any, messages: Any, stream: bool, endpoint: str, params: dict[str, Any]) -> int:
        """The key of this request (``CacheEntry.key``)."""
        return self._key(model, messages, stream, endpoint, None, **params)
