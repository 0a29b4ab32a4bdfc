"""``cache_client``: an ``openai`` client whose ``chat.completions.create`` is served from a cache."""

from __future__ import annotations

from types import TracebackType
from typing import Any, AsyncIterator, Callable, Iterable, Iterator, TypeVar

from oxicache.llm._openai import omitted_types, require_openai
from oxicache.llm.caches import CacheArg, resolve_cache
from oxicache.llm.calls import DEFAULT_NAME, Call, ChatCalls
from oxicache.llm.keys import plain, request_params

__all__ = ["AsyncChunkStream", "ChunkStream", "cache_client"]

ClientT = TypeVar("ClientT")


def cache_client(client: ClientT, cache: CacheArg, *, name: str = DEFAULT_NAME, exclude: Iterable[str] | None = None) -> ClientT:
    """A copy of ``client`` (an ``openai.OpenAI`` or ``openai.AsyncOpenAI``) whose
    ``chat.completions.create(...)`` is served from ``cache``, streamed or not, returning the SDK's types:
    a ``ChatCompletion``, or with ``stream=True`` an iterator of ``ChatCompletionChunk`` (an async one
    for ``AsyncOpenAI``). ``client`` itself is not changed. The key is the one of ``LLM`` (same ``name``
    and cache: the same entries); ``exclude`` adds names to ``TRANSPORT``. Other methods are the
    client's own and are not cached.

    Raises:
        ImportError: The ``openai`` package is not installed (``pip install 'oxicache[llm]'``).
        TypeError: ``client`` is not an ``openai`` client, or ``cache`` is none of the accepted kinds.
    """
    openai = require_openai("oxicache.llm.cache_client")
    is_async = isinstance(client, openai.AsyncOpenAI)
    if not is_async and not isinstance(client, openai.OpenAI):
        msg = f"cache_client() wraps an openai.OpenAI or openai.AsyncOpenAI client, got {client!r} ({type(client).__name__})"
        raise TypeError(msg)
    store = resolve_cache(cache)
    copy: Any = client.copy()  # type: ignore[attr-defined]
    completions = copy.chat.completions
    original = completions.create
    omitted = omitted_types(openai)
    types = openai.types.chat

    def unavailable() -> Any:
        msg = "this cached client is " + ("async: await its create()" if is_async else "synchronous")
        raise TypeError(msg)

    source: Callable[[], Any] = lambda: original  # noqa: E731
    calls = ChatCalls(store, unavailable if is_async else source, source if is_async else unavailable,
                      name=name, exclude=exclude)
    create = CachedCreate(calls, omitted, types) if not is_async else AsyncCachedCreate(calls, omitted, types)
    completions.create = create  # the instance attribute shadows the method, on this copy only
    return copy  # type: ignore[no-any-return]


class _Create:
    """What the cached ``create`` shares between sync and async: splitting the keyword arguments."""

    def __init__(self, calls: ChatCalls, omitted: tuple[type, ...], types: Any) -> None:
        self.calls, self._omitted, self._types = calls, omitted, types

    def _split(self, kwargs: dict[str, Any]) -> tuple[Any, list[Any], bool, dict[str, Any]]:
        params = dict(kwargs)
        missing = [k for k in ("model", "messages") if k not in params]
        if missing:
            msg = f"create() missing required keyword argument(s): {', '.join(map(repr, missing))}"
            raise TypeError(msg)
        model, messages = params.pop("model"), params.pop("messages")
        stream = params.pop("stream", False)
        stream = False if stream is None or isinstance(stream, self._omitted) else bool(stream)
        return model, [plain(m) for m in messages], stream, request_params(params, self._omitted)

    def key_inputs(self, **kwargs: Any) -> dict[str, Any]:
        """The dict hashed into the key of ``create(**kwargs)``."""
        model, messages, stream, params = self._split(kwargs)
        return self.calls.key_inputs(model, messages, stream, params)

    def cache_key(self, **kwargs: Any) -> int:
        """The key of ``create(**kwargs)`` (``CacheEntry.key``)."""
        model, messages, stream, params = self._split(kwargs)
        return self.calls.cache_key(model, messages, stream, params)


class CachedCreate(_Create):
    """``chat.completions.create`` of a client wrapped by ``cache_client``."""

    def __call__(self, **kwargs: Any) -> Any:
        model, messages, stream, params = self._split(kwargs)
        call = Call()
        if stream:
            return ChunkStream(self.calls.complete_stream(model, messages, True, call, **params), self._types.ChatCompletionChunk)
        raw = self.calls.complete(model, messages, False, call, **params)
        # a miss returns the SDK's own object; a hit rebuilds it from the stored JSON
        return call.response if call.sent and call.response is not None else self._types.ChatCompletion.model_validate(raw)


class AsyncCachedCreate(_Create):
    """``chat.completions.create`` of an async client wrapped by ``cache_client``."""

    async def __call__(self, **kwargs: Any) -> Any:
        model, messages, stream, params = self._split(kwargs)
        call = Call()
        if stream:
            return AsyncChunkStream(self.calls.acomplete_stream(model, messages, True, call, **params), self._types.ChatCompletionChunk)
        raw = await self.calls.acomplete(model, messages, False, call, **params)
        return call.response if call.sent and call.response is not None else self._types.ChatCompletion.model_validate(raw)


class ChunkStream:
    """The ``stream=True`` result of a cached ``create``: ``ChatCompletionChunk`` objects, live on a miss
    (recorded, stored once the stream has ended) and replayed on a hit. Like the SDK's ``Stream``, it is
    a context manager and has ``close()`` (closing before the end stores nothing)."""

    def __init__(self, items: Iterator[dict[str, Any]], chunk_type: Any) -> None:
        self._items, self._chunk = items, chunk_type

    def __iter__(self) -> ChunkStream:
        return self

    def __next__(self) -> Any:
        return self._chunk.model_validate(next(self._items))

    def close(self) -> None:
        close = getattr(self._items, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> ChunkStream:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class AsyncChunkStream:
    """``ChunkStream`` for ``AsyncOpenAI``: ``async for``, ``async with`` and ``await close()``."""

    def __init__(self, items: AsyncIterator[dict[str, Any]], chunk_type: Any) -> None:
        self._items, self._chunk = items, chunk_type

    def __aiter__(self) -> AsyncChunkStream:
        return self

    async def __anext__(self) -> Any:
        return self._chunk.model_validate(await self._items.__anext__())

    async def close(self) -> None:
        aclose = getattr(self._items, "aclose", None)
        if aclose is not None:
            await aclose()

    async def __aenter__(self) -> AsyncChunkStream:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()
