"""The errors of ``oxicache.llm`` that are not the SDK's own."""

from __future__ import annotations

from typing import Any

__all__ = ["NoChoicesError"]


class NoChoicesError(RuntimeError):
    """The server answered with HTTP 200 but without choices, e.g. ``{"error": {...}}`` from a proxy.
    Nothing was stored: the next call sends the request again. ``body`` is the reply as JSON data."""

    def __init__(self, body: dict[str, Any]) -> None:
        shown = repr(body)
        if len(shown) > 500:
            shown = shown[:500] + "..."
        super().__init__(f"the server's reply has no choices, so it was not cached (nothing to answer with): {shown}")
        self.body = body
