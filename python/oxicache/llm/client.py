"""``LLM``: an OpenAI-compatible chat model whose replies are cached."""

from __future__ import annotations

import os
import threading
from typing import Any, AsyncIterator, Iterable, Iterator, Mapping

from oxicache.backends.none import NoCache
from oxicache.llm._openai import omitted_types, require_openai
from oxicache.llm.caches import CacheArg, resolve_cache
from oxicache.llm.calls import DEFAULT_NAME, Call, ChatCalls, NoChoices, Unfinished
from oxicache.llm.errors import NoChoicesError
from oxicache.llm.flights import AsyncStreamFlights, Piece, StreamFlights, ashared, shared
from oxicache.llm.keys import as_messages, endpoint_key, endpoint_of, key_form, request_params
from oxicache.llm.loops import LoopClients
from oxicache.llm.text import Text, blank_chunk, chunk_text, reply_text

__all__ = ["LLM", "PRESETS", "register_preset"]

#: Named settings for ``LLM(preset=...)``; fill it with ``register_preset``.
PRESETS: dict[str, dict[str, Any]] = {}


def register_preset(name: str, **settings: Any) -> None:
    """Name a set of ``LLM`` settings, used as ``LLM(preset=name)``: any keyword of ``LLM`` except
    ``cache`` and ``preset`` (``model``, ``base_url``, ``api_key``, ``system``, ...), and request
    parameters (``temperature=0``, ...). Keywords given to ``LLM`` win over the preset's.

    Raises:
        TypeError: ``cache`` or ``preset`` among the settings, or a name that is not a non-empty str.
    """
    if not isinstance(name, str) or not name:
        msg = f"a preset name must be a non-empty str, got {name!r}"
        raise TypeError(msg)
    bad = sorted({"cache", "preset"} & settings.keys())
    if bad:
        msg = f"a preset cannot set {bad}; pass cache= to LLM() itself"
        raise TypeError(msg)
    PRESETS[name] = dict(settings)


class LLM:
    """A chat model behind an OpenAI-compatible API, with cached replies.

    Args:
        model: The model name sent with each request (a call's ``model=`` overrides it).
        preset: The name of settings registered with ``register_preset``; explicit arguments win.
        base_url: The API's URL (``openai``'s default: ``$OPENAI_BASE_URL`` or OpenAI's). In the key,
            without credentials, unless ``key_endpoint=False``.
        api_key: The API key (default ``$OPENAI_API_KEY``). Not in the key.
        cache: A cache instance (any backend), a folder path (a ``DiskCache`` there), ``True`` (a
            ``DiskCache`` in the user's cache folder, ``default_cache_dir()``) or ``None``/``False`` (no
            caching).
        exclude: More request parameter names to leave out of the key, added to ``TRANSPORT``.
        key_endpoint: False leaves the endpoint out of the key, so that LLMs on different servers
            share entries (and entries made before the endpoint was keyed are found again).
        name: The function identity of the entries (``CacheEntry.func``); LLMs with the same name on
            the same cache share entries.
        system: A system message put in front of every conversation (a call's ``system=`` overrides it).
        timeout: Request timeout in seconds (the SDK's default when None). Not in the key.
        max_retries: How often the SDK retries a failed request (its default when None). Not in the key.
        client_options: More keyword arguments for ``openai.OpenAI`` / ``openai.AsyncOpenAI``.
        **params: Default request parameters (``temperature=0``, ``max_tokens=200``, ...); in the key.

    The API clients are created at the first request that misses, so replaying from the cache needs
    no API key.

    Raises:
        ImportError: The ``openai`` package is not installed (``pip install 'oxicache[llm]'``).
        TypeError: ``cache`` is none of the accepted kinds, or no model is given.
        ValueError: An unknown preset.
    """

    def __init__(self, model: str | None = None, *, preset: str | None = None, base_url: str | None = None,
                 api_key: str | None = None, cache: CacheArg = True, exclude: Iterable[str] | None = None,
                 name: str | None = None, system: str | None = None, timeout: float | None = None,
                 max_retries: int | None = None, client_options: Mapping[str, Any] | None = None,
                 key_endpoint: bool = True, **params: Any) -> None:
        self._openai = require_openai("oxicache.llm.LLM")
        given = {"model": model, "base_url": base_url, "api_key": api_key, "system": system, "timeout": timeout,
                 "max_retries": max_retries, "client_options": client_options, "exclude": exclude, "name": name}
        options = dict(_preset(preset))
        options.update({k: v for k, v in given.items() if v is not None})
        options.update(params)
        if not isinstance(options.get("model"), str) or not options["model"]:
            msg = f"LLM() needs a model name: LLM(model='...') or a preset that sets one, got {options.get('model')!r}"
            raise TypeError(msg)
        self.model: str = options.pop("model")
        self.system: str | None = options.pop("system", None)
        self.base_url: str | None = options.pop("base_url", None)
        self._api_key: str | None = options.pop("api_key", None)
        self._client_options: dict[str, Any] = {k: options.pop(k) for k in ("timeout", "max_retries") if k in options}
        self._client_options.update(options.pop("client_options", None) or {})
        exclude_names = options.pop("exclude", None)
        self.name: str = options.pop("name", None) or DEFAULT_NAME
        #: Default request parameters, merged under each call's.
        self.params: dict[str, Any] = options
        self.cache = resolve_cache(cache)
        #: The endpoint: the base URL without credentials (the SDK's default when not given).
        self.endpoint: str = endpoint_of(self.base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1")
        # what the key holds of it: the endpoint, with the client's routing default headers and query if any
        self._endpoint_key = endpoint_key(self.endpoint, self._client_options.get("default_headers"),
                                          self._client_options.get("default_query"), omitted_types(self._openai))
        self._calls = ChatCalls(self.cache, self._sync_create, self._async_create, name=self.name,
                                exclude=exclude_names, key_endpoint=key_endpoint)
        # identical concurrent streams share one upstream stream (not without a cache: every call is sent)
        self._flights = None if isinstance(self.cache, NoCache) else StreamFlights()
        self._aflights = None if isinstance(self.cache, NoCache) else AsyncStreamFlights()
        #: Every parameter name left out of the key (``TRANSPORT`` plus ``exclude=``).
        self.exclude: frozenset[str] = self._calls.exclude
        self._lock = threading.Lock()
        self._client: Any = None
        self._async_clients = LoopClients(lambda: self._new_client(self._openai.AsyncOpenAI))

    def __repr__(self) -> str:
        return f"LLM(model={self.model!r}, base_url={self.base_url!r}, cache={type(self.cache).__name__})"

    # ---- clients ------------------------------------------------------------------------------------
    def _new_client(self, cls: Any) -> Any:
        return cls(api_key=self._api_key, base_url=self.base_url, **self._client_options)

    def _sync_create(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._new_client(self._openai.OpenAI)
            return self._client.chat.completions.create

    def _async_create(self) -> Any:
        # An async client's connections belong to the event loop that opened them: one client per loop
        return self._async_clients.get().chat.completions.create

    def close(self) -> None:
        """Close the synchronous API client, if one was created (the cache stays open)."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        """Close the asynchronous API client of the running event loop, if one was created (the cache
        stays open). A loop run by ``asyncio.run`` closes its client when it ends, without this."""
        await self._async_clients.aclose()

    # ---- the request --------------------------------------------------------------------------------
    def _request(self, messages: Any, system: str | None, params: dict[str, Any],
                 what: str) -> tuple[str, list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
        """The model, messages, keyed request parameters and the values to send instead (``key_form``)."""
        for name in ("stream", "endpoint"):
            if name in params:
                msg = (f"{what}() does not take {name}=; use oracle()/aoracle() for a whole reply and "
                       f"stream()/astream() for pieces" if name == "stream" else
                       f"{what}() does not take endpoint=; the endpoint is LLM(base_url=...)")
                raise TypeError(msg)
        merged = {**self.params, **params}
        model = merged.pop("model", self.model)
        msgs = as_messages(messages, self.system if system is None else system)
        omitted = omitted_types(self._openai)
        keyed, send = key_form(request_params(merged, omitted), omitted)
        return model, msgs, keyed, send

    def key_inputs(self, messages: Any, *, system: str | None = None, stream: bool = False, **params: Any) -> dict[str, Any]:
        """The dict hashed into the key of this call (``stream=True`` for ``stream()``/``astream()``):
        ``model``, ``messages``, ``stream`` and the request parameters in ``params``, without the
        excluded names. It is what the cache entry's ``inputs`` hold."""
        model, msgs, req, _ = self._request(messages, system, params, "key_inputs")
        return self._calls.key_inputs(model, msgs, bool(stream), self._endpoint_key, req)

    def cache_key(self, messages: Any, *, system: str | None = None, stream: bool = False, **params: Any) -> int:
        """The key of this call (``CacheEntry.key``): ``del llm.cache[llm.cache_key(...)]`` forgets it."""
        model, msgs, req, _ = self._request(messages, system, params, "cache_key")
        return self._calls.cache_key(model, msgs, bool(stream), self._endpoint_key, req)

    def oracle(self, messages: Any, *, system: str | None = None, **params: Any) -> Text:
        """The reply's text (first choice). ``messages`` is a prompt string (one user message), a message
        dict or a list of them; ``params`` are request parameters (``temperature``, ``tools``, ...)."""
        model, msgs, req, send = self._request(messages, system, params, "oracle")
        call = Call(send)
        try:
            raw = self._calls.complete(model, msgs, False, self._endpoint_key, call, **req)
        except NoChoices as err:
            raise NoChoicesError(err.body) from None
        return Text(reply_text(raw), cached=not call.sent, raw=raw)

    async def aoracle(self, messages: Any, *, system: str | None = None, **params: Any) -> Text:
        """``oracle`` for asyncio; it shares entries with ``oracle``."""
        model, msgs, req, send = self._request(messages, system, params, "aoracle")
        call = Call(send)
        try:
            raw = await self._calls.acomplete(model, msgs, False, self._endpoint_key, call, **req)
        except NoChoices as err:
            raise NoChoicesError(err.body) from None
        return Text(reply_text(raw), cached=not call.sent, raw=raw)

    def stream(self, messages: Any, *, system: str | None = None, **params: Any) -> Iterator[Text]:
        """The reply in pieces, as they arrive: one ``Text`` per chunk that carries anything (text, a
        tool-call delta, a finish_reason, usage, another choice); its text is the first choice's (maybe
        empty) and ``.raw`` is the chunk. A stream is stored once it has ended with a finish_reason; a hit
        replays its pieces. A stream that fails or is not consumed to its end stores nothing. Identical
        streams started while one is in progress share its request."""
        model, msgs, req, send = self._request(messages, system, params, "stream")

        def open_() -> tuple[Iterator[dict[str, Any]], Call]:
            call = Call(send)
            return self._calls.complete_stream(model, msgs, True, self._endpoint_key, call, **req), call

        key = lambda: self._calls.cache_key(model, msgs, True, self._endpoint_key, req)  # noqa: E731
        return _pieces(shared(self._flights, key, open_))

    def astream(self, messages: Any, *, system: str | None = None, **params: Any) -> AsyncIterator[Text]:
        """``stream`` for asyncio (``async for piece in llm.astream(...)``); it shares entries with ``stream``."""
        model, msgs, req, send = self._request(messages, system, params, "astream")

        def open_() -> tuple[AsyncIterator[dict[str, Any]], Call]:
            call = Call(send)
            return self._calls.acomplete_stream(model, msgs, True, self._endpoint_key, call, **req), call

        key = lambda: self._calls.cache_key(model, msgs, True, self._endpoint_key, req)  # noqa: E731
        return _apieces(ashared(self._aflights, key, open_))


def _preset(name: str | None) -> dict[str, Any]:
    if name is None:
        return {}
    if name not in PRESETS:
        msg = (f"unknown LLM preset {name!r}; registered: {sorted(PRESETS)}; register it with "
               f"oxicache.llm.register_preset({name!r}, model=..., base_url=...)")
        raise ValueError(msg)
    return PRESETS[name]


def _pieces(chunks: Iterator[Piece]) -> Iterator[Text]:
    try:
        for chunk, cached, _ in chunks:
            text = chunk_text(chunk)
            if text or not blank_chunk(chunk):
                yield Text(text, cached=cached, raw=chunk)
    except Unfinished:
        return  # the stream ended without a finish_reason: what came is all there is, and it is not stored
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


async def _apieces(chunks: AsyncIterator[Piece]) -> AsyncIterator[Text]:
    try:
        async for chunk, cached, _ in chunks:
            text = chunk_text(chunk)
            if text or not blank_chunk(chunk):
                yield Text(text, cached=cached, raw=chunk)
    except Unfinished:
        return
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
