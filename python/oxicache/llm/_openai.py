"""The optional ``openai`` dependency: imported only when an LLM or a cached client is built."""

from __future__ import annotations

from types import ModuleType

__all__ = ["omitted_types", "require_openai"]


def require_openai(what: str) -> ModuleType:
    """The ``openai`` module, or an ImportError that names the extra to install."""
    try:
        import openai
    except ImportError as err:
        msg = f"{what} needs the openai package, which is not installed; install it with: pip install 'oxicache[llm]'"
        raise ImportError(msg, name="openai") from err
    return openai


def omitted_types(openai: ModuleType) -> tuple[type, ...]:
    """The SDK's "not given" marker types (``NotGiven``; ``Omit`` in newer versions): a parameter with
    such a value is left out of the request, so it is left out of the key too."""
    return tuple(t for t in (getattr(openai, "NotGiven", None), getattr(openai, "Omit", None)) if isinstance(t, type))
