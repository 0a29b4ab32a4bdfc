"""What an LLM cache key holds: the model, the messages and every request parameter, minus transport."""

from __future__ import annotations

import json
from typing import Any, Iterable, Mapping
from urllib.parse import urlsplit, urlunsplit

__all__ = ["TRANSPORT", "UNKEYED_HEADERS", "UNKEYED_QUERY", "as_messages", "endpoint_key", "endpoint_of", "key_form",
           "plain", "request_params"]

#: Parameter names never put in the key, because they do not change the reply: where the request goes
#: and how (client settings and per-request transport options), and bookkeeping the provider keeps about
#: it. Everything else a request carries is in the key; ``exclude=`` adds names to this set.
TRANSPORT: frozenset[str] = frozenset({
    # client settings (when passed per call, e.g. through a proxy library)
    "api_key", "base_url", "api_base", "api_version", "organization", "project", "websocket_base_url",
    "default_headers", "default_query", "http_client", "max_retries", "num_retries",
    # per-request transport options of the SDK's create() (extra_headers and extra_query are keyed
    # without their credentials: see key_form)
    "timeout",
    # bookkeeping about the request, not inputs of the model
    "user", "safety_identifier", "metadata", "store",
    "prompt_cache_key", "prompt_cache_retention", "prompt_cache_options",
})


#: Header names (lower case) left out of the key when they are in ``extra_headers``: credentials, tracing
#: and the SDK's own bookkeeping. Every other header is in the key, since a proxy may route on it (to
#: another model or provider), and a header that is not known to be harmless must not share a reply.
UNKEYED_HEADERS: frozenset[str] = frozenset({
    "authorization", "proxy-authorization", "api-key", "x-api-key", "cookie", "openai-organization",
    "openai-project", "user-agent", "idempotency-key", "x-request-id", "x-client-request-id",
    "x-correlation-id", "traceparent", "tracestate", "baggage",
})
#: Query parameter names left out of the key when they are in ``extra_query``: credentials.
UNKEYED_QUERY: frozenset[str] = frozenset({"api-key", "api_key", "key", "access_token", "token"})


def endpoint_of(url: Any) -> str:
    """The endpoint part of the key: the base URL without credentials (``user:password@``), query or
    fragment, with the scheme and host in lower case and no trailing slash."""
    parts = urlsplit(str(url))
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"  # an IPv6 address
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    return urlunsplit((parts.scheme.lower(), netloc, parts.path.rstrip("/"), "", ""))


# headers every SDK client sends by itself, about the message format rather than the model
_FORMAT_HEADERS = frozenset({"accept", "content-type"})


def endpoint_key(url: Any, headers: Any = None, query: Any = None, omitted: tuple[type, ...] = ()) -> Any:
    """The endpoint in the key: ``endpoint_of(url)``, or, when the client sends default headers or query
    parameters that may route (the rules of ``extra_headers``/``extra_query``; e.g. a gateway's provider
    header, Azure's ``api-version``), a dict of the URL and those."""
    # a default set to "omit" is not sent at all
    sent_headers = {k: v for k, v in (headers or {}).items() if not (omitted and isinstance(v, omitted))}
    sent_query = {k: v for k, v in (query or {}).items() if not (omitted and isinstance(v, omitted))}
    keyed_headers = _keyed_names(sent_headers, UNKEYED_HEADERS | _FORMAT_HEADERS, omitted)
    keyed_query = _keyed_names(sent_query, UNKEYED_QUERY, omitted)
    if keyed_headers is None and keyed_query is None:
        return endpoint_of(url)
    out: dict[str, Any] = {"url": endpoint_of(url)}
    if keyed_headers is not None:
        out["headers"] = keyed_headers
    if keyed_query is not None:
        out["query"] = keyed_query
    return out


def _keyed_names(values: Any, unkeyed: frozenset[str], omitted: tuple[type, ...]) -> dict[str, Any] | None:
    if not isinstance(values, Mapping):
        return plain(values)  # type: ignore[no-any-return]
    kept = {str(k).lower(): (None if omitted and isinstance(v, omitted) else plain(v)) for k, v in values.items()}
    kept = {k: v for k, v in sorted(kept.items()) if k not in unkeyed and not k.startswith("x-stainless-")}
    return kept or None


def key_form(params: Mapping[str, Any], omitted: tuple[type, ...] = ()) -> tuple[dict[str, Any], dict[str, Any]]:
    """The request parameters as the key sees them, and the ones to send instead of the keyed form.

    - ``extra_headers`` and ``extra_query`` are keyed without the names in ``UNKEYED_HEADERS`` and
      ``UNKEYED_QUERY`` (header names in lower case); left out when nothing else remains;
    - ``response_format`` is keyed as its JSON text, because dict keys are keyed in any order but a JSON
      schema's property order is the order the model writes the properties in.
    The second dict holds the original values of these parameters, which are the ones sent."""
    keyed = dict(params)
    send: dict[str, Any] = {}
    for name, unkeyed in (("extra_headers", UNKEYED_HEADERS), ("extra_query", UNKEYED_QUERY)):
        if name in keyed:
            send[name] = keyed.pop(name)
            kept = _keyed_names(send[name], unkeyed, omitted)
            if kept is not None:
                keyed[name] = kept
    if "response_format" in keyed:
        send["response_format"] = keyed["response_format"]
        try:
            keyed["response_format"] = json.dumps(plain(keyed["response_format"]), ensure_ascii=False,
                                                  separators=(",", ":"))
        except (TypeError, ValueError):
            pass  # not JSON data (the SDK refuses it anyway): keyed as it is
    return keyed, send


def plain(value: Any) -> Any:
    """``value`` as JSON-like data: pydantic models (e.g. an SDK message put back into the conversation)
    become the dict the SDK would send for them; lists, tuples and dicts are converted recursively."""
    dump = getattr(value, "model_dump", None)
    if dump is not None and not isinstance(value, type):
        return dump(mode="json", exclude_unset=True)
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def as_messages(messages: Any, system: str | None = None) -> list[dict[str, Any]]:
    """The chat messages of a prompt: a string is one user message, a dict one message, a list (or any
    iterable) the messages as given; ``system`` adds a system message in front."""
    if isinstance(messages, str):
        listed: list[Any] = [{"role": "user", "content": messages}]
    elif isinstance(messages, Mapping) or hasattr(messages, "model_dump"):
        listed = [messages]
    elif isinstance(messages, Iterable) and not isinstance(messages, (bytes, bytearray)):
        listed = list(messages)
    else:
        msg = f"messages must be a prompt string, a message dict or a list of message dicts, got {messages!r}"
        raise TypeError(msg)
    if system is not None:
        if not isinstance(system, str):
            msg = f"system must be a str, got {system!r}"
            raise TypeError(msg)
        listed.insert(0, {"role": "system", "content": system})
    out = [plain(m) for m in listed]
    for m in out:
        if not isinstance(m, dict):
            msg = f"each message must be a dict like {{'role': 'user', 'content': '...'}}, got {m!r}"
            raise TypeError(msg)
    return out


def request_params(params: Mapping[str, Any], omitted: tuple[type, ...] = ()) -> dict[str, Any]:
    """The request parameters as plain data, without values that mean "not given" (``openai.NOT_GIVEN``,
    ``openai.omit``: instances of ``omitted``)."""
    return {k: plain(v) for k, v in params.items() if not (omitted and isinstance(v, omitted))}
