"""R24: every line marked ``# E`` must be reported by mypy --strict and by pyright, and nothing else."""

from typing import AsyncIterator, Iterator

from oxicache import InMemCache

cache = InMemCache()


@cache.memoize
def area(width: int, height: int = 1) -> float:
    return float(width * height)


@cache.memoize(name="r24.total", exclude=["verbose"], ttl="1h")
def total(values: list[int], *, verbose: bool = False) -> int:
    return sum(values)


@cache.memoize
async def fetch(url: str) -> bytes:
    return url.encode()


@cache.memoize
def rows(n: int) -> Iterator[int]:
    yield from range(n)


@cache.memoize
async def stream(n: int) -> AsyncIterator[str]:
    yield str(n)


class Shop:
    @cache.memoize
    def price(self, sku: str) -> float:
        return 1.0


async def misuse() -> None:
    wrong: str = await fetch("u")  # E
    async for chunk in stream("3"):  # E
        print(chunk)


area("wide")  # E
area(1, depth=2)  # E
name: str = area(1)  # E
total([1], True)  # E
total(["a"])  # E
rows("3")  # E
counted: list[str] = list(rows(3))  # E
Shop().price(3)  # E
Shop().price("a", "b")  # E
area.cache_key("x")  # E
Shop().price.cache_key("a")  # E
area.cache_clear(1)  # E
hits: str = area.cache_info().hits  # E
area.no_such_helper()  # E
cache.memoize(version=1.5)  # E
