"""What an LLM cache key holds: the model, the messages and every request parameter, minus transport."""

from __future__ import annotations

from typing import Any, Iterable, Mapping

__all__ = ["TRANSPORT", "as_messages", "plain", "request_params"]

#: Parameter names never put in the key, because they do not change the reply: where the request goes
#: and how (client settings and per-request transport options), and bookkeeping the provider keeps about
#: it. Everything else a request carries is in the key; ``exclude=`` adds names to this set.
TRANSPORT: frozenset[str] = frozenset({
    # client settings (when passed per call, e.g. through a proxy library)
    "api_key", "base_url", "api_base", "api_version", "organization", "project", "websocket_base_url",
    "default_headers", "default_query", "http_client", "max_retries", "num_retries",
    # per-request transport options of the SDK's create()
    "timeout", "extra_headers", "extra_query",
    # bookkeeping about the request, not inputs of the model
    "user", "safety_identifier", "metadata", "store",
    "prompt_cache_key", "prompt_cache_retention", "prompt_cache_options",
})


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
