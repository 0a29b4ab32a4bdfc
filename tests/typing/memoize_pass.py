"""Type-checks cleanly under mypy --strict; each reveal_type is compared with its `# revealed:` comment."""

from typing import AsyncIterator, Iterator, reveal_type

import oxicache
from oxicache import CallbackCache, InMemCache, NoCache, bypass, refresh

cache = InMemCache()


@cache.memoize
def area(width: int, height: int = 1) -> float:
    return float(width * height)


@cache.memoize(name="reports.total", exclude=["verbose"], ttl="1h")
def total(values: list[int], verbose: bool = False) -> int:
    return sum(values)


@cache.memoize
async def fetch(url: str) -> bytes:
    return url.encode()


@oxicache.memoize(ttl=60, stale=30, tags=["reports"], key=lambda region, day: region)
def latest(region: str, day: int) -> dict[str, int]:
    return {region: day}


@cache.memoize(version=2, cache_if=lambda rows: bool(rows))
def rows(n: int) -> Iterator[int]:
    yield from range(n)


@NoCache().memoize
async def stream(n: int) -> AsyncIterator[str]:
    yield str(n)


@CallbackCache().batch_memoize
def embed(texts: list[str], model: str = "small") -> list[float]:
    return [float(len(t)) for t in texts]


@cache.batch_memoize(ttl=60)
async def embed_async(texts: list[str]) -> list[float]:
    return [0.0 for _ in texts]


class Prices:
    def __cache_key__(self) -> str:
        return "prices"

    @cache.memoize
    def price(self, sku: str, qty: int = 1) -> float:
        return 1.0 * qty


reveal_type(area(2, height=3))  # revealed: float
reveal_type(total([1, 2]))  # revealed: int
pending = reveal_type(fetch("x"))  # revealed: typing.Coroutine[Any, Any, bytes]
pending.close()
reveal_type(Prices().price("a", qty=2))  # revealed: float
reveal_type(Prices.price(Prices(), "a"))  # revealed: float
reveal_type(area.cache_info().hits)  # revealed: int
reveal_type(area.cache_key(2))  # revealed: int
reveal_type(area.cache_inputs(2))  # revealed: dict[str, Any]
reveal_type(area.__wrapped__)  # revealed: def (width: int, height: int =) -> float
area.cache_clear()
reveal_type(latest("eu", 3))  # revealed: dict[str, int]
reveal_type(rows(3))  # revealed: typing.Iterator[int]
reveal_type(stream(3))  # revealed: typing.AsyncIterator[str]
reveal_type(embed(["a"], model="large"))  # revealed: list[float]
reveal_type(embed.cache_info().errors)  # revealed: int
embed_pending = reveal_type(embed_async(["a"]))  # revealed: typing.Coroutine[Any, Any, list[float]]
embed_pending.close()
with bypass(), refresh():
    area(1)
