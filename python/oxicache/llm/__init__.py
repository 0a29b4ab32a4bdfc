"""LLM response caching for OpenAI-compatible chat APIs (needs ``pip install 'oxicache[llm]'``).

``LLM(model=..., cache=...)`` gives ``oracle``/``stream`` and their async twins ``aoracle``/``astream``;
``cache_client(client, cache)`` caches an existing ``openai`` client's ``chat.completions.create``.
See docs/llm.md.
"""

from oxicache.llm.caches import default_cache_dir
from oxicache.llm.calls import DEFAULT_NAME
from oxicache.llm.client import LLM, PRESETS, register_preset
from oxicache.llm.errors import NoChoicesError
from oxicache.llm.keys import TRANSPORT, UNKEYED_HEADERS, UNKEYED_QUERY
from oxicache.llm.text import Text
from oxicache.llm.wrap import AsyncChunkStream, ChunkStream, cache_client

__all__ = [
    "DEFAULT_NAME",
    "LLM",
    "NoChoicesError",
    "PRESETS",
    "TRANSPORT",
    "UNKEYED_HEADERS",
    "UNKEYED_QUERY",
    "AsyncChunkStream",
    "ChunkStream",
    "Text",
    "cache_client",
    "default_cache_dir",
    "register_preset",
]
