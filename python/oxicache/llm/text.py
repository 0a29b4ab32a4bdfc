"""``Text``: what ``LLM`` returns, a ``str`` that also says whether it came from the cache."""

from __future__ import annotations

from typing import Any

__all__ = ["Text", "blank_chunk", "chunk_text", "reply_text"]


class Text(str):
    """A reply, or one streamed piece of a reply. It is a ``str`` (compare, print and store it as one),
    with two more attributes:

    - ``cached``: True when it was served from the cache, False when this call sent a request;
    - ``raw``: the response it comes from, as JSON data: the ``ChatCompletion`` (``oracle``) or the
      ``ChatCompletionChunk`` (``stream``), with tool calls, usage and every other field. It may be the
      cached object itself: read it, do not modify it.
    """

    cached: bool
    raw: dict[str, Any]

    def __new__(cls, text: str, *, cached: bool, raw: dict[str, Any]) -> Text:
        self = super().__new__(cls, text)
        self.cached = cached
        self.raw = raw
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (str(self), self.cached, self.raw))


def _rebuild(text: str, cached: bool, raw: dict[str, Any]) -> Text:
    return Text(text, cached=cached, raw=raw)


def _first_choice(response: dict[str, Any]) -> dict[str, Any]:
    for choice in response.get("choices") or ():
        if choice.get("index", 0) == 0:
            return choice  # type: ignore[no-any-return]
    return {}


def reply_text(completion: dict[str, Any]) -> str:
    """The text of the first choice of a ``ChatCompletion`` dump ("" when it holds only tool calls)."""
    return (_first_choice(completion).get("message") or {}).get("content") or ""


def chunk_text(chunk: dict[str, Any]) -> str:
    """The text a ``ChatCompletionChunk`` dump adds to the first choice ("" for role, finish or usage chunks)."""
    return (_first_choice(chunk).get("delta") or {}).get("content") or ""


def blank_chunk(chunk: dict[str, Any]) -> bool:
    """Whether a ``ChatCompletionChunk`` dump carries nothing a reader needs: no text, tool call, refusal,
    finish_reason, logprobs, usage or choice other than the first (the opening role-only chunk)."""
    if chunk.get("usage"):
        return False
    for choice in chunk.get("choices") or ():
        if choice.get("index", 0) != 0 or choice.get("finish_reason") or choice.get("logprobs"):
            return False
        if any(value for name, value in (choice.get("delta") or {}).items() if name != "role"):
            return False
    return True
