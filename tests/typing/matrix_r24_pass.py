"""R24: type-checks cleanly under mypy --strict and pyright; every reveal_type matches its comments.

``# mypy:`` is what mypy reveals, ``# pyright:`` what pyright reveals (the two spell types differently).
The memoized objects reveal the original parameters (names, kinds, defaults) and return type: the
ParamSpec is preserved for every form of function.
"""

from typing import AsyncIterator, Iterator, reveal_type

from oxicache import DiskCache, InMemCache

cache = InMemCache()
disk = DiskCache("unused-folder")  # never called: only type-checked


@cache.memoize
def area(width: int, height: int = 1) -> float:
    return float(width * height)


@disk.memoize(name="r24.total", exclude=["verbose"], ttl="1h", version=2, cache_if=bool)
def total(values: list[int], *, verbose: bool = False) -> int:
    return sum(values)


@cache.memoize
async def fetch(url: str, timeout: float = 1.0) -> bytes:
    return url.encode()


@cache.memoize
def rows(n: int) -> Iterator[int]:
    yield from range(n)


@cache.memoize(ttl=60)
async def stream(n: int) -> AsyncIterator[str]:
    yield str(n)


class Shop:
    @cache.memoize
    def price(self, sku: str, qty: int = 1) -> float:
        return 1.0 * qty

    @staticmethod
    @cache.memoize(name="r24.tax")
    def tax(amount: float) -> float:
        return amount * 0.2


# The memoized objects: the original signature inside Memoized[...].
reveal_type(area)  # mypy: oxicache.memo.protocols.Memoized[[width: int, height: int =], float] | pyright: Memoized[(width: int, height: int = 1), float]
reveal_type(total)  # mypy: oxicache.memo.protocols.Memoized[[values: list[int], *, verbose: bool =], int] | pyright: Memoized[(values: list[int], *, verbose: bool = False), int]
reveal_type(fetch)  # mypy: oxicache.memo.protocols.Memoized[[url: str, timeout: float =], typing.Coroutine[Any, Any, bytes]] | pyright: Memoized[(url: str, timeout: float = 1), CoroutineType[Any, Any, bytes]]
reveal_type(rows)  # mypy: oxicache.memo.protocols.Memoized[[n: int], typing.Iterator[int]] | pyright: Memoized[(n: int), Iterator[int]]
reveal_type(stream)  # mypy: oxicache.memo.protocols.Memoized[[n: int], typing.AsyncIterator[str]] | pyright: Memoized[(n: int), AsyncIterator[str]]
reveal_type(Shop.price)  # mypy: oxicache.memo.protocols.Memoized[[self: matrix_r24_pass.Shop, sku: str, qty: int =], float] | pyright: Memoized[(self: Shop, sku: str, qty: int = 1), float]
reveal_type(Shop().price)  # mypy: oxicache.memo.protocols.MemoizedMethod[[sku: str, qty: int =], float, [matrix_r24_pass.Shop, sku: str, qty: int =]] | pyright: MemoizedMethod[(sku: str, qty: int = 1), float, (Shop, sku: str, qty: int = 1)]
reveal_type(Shop.tax)  # mypy: oxicache.memo.protocols.Memoized[[amount: float], float] | pyright: Memoized[(amount: float), float]

# Calls return what the original returns.
reveal_type(area(2, height=3))  # mypy: float | pyright: float
reveal_type(total([1], verbose=True))  # mypy: int | pyright: int
pending = reveal_type(fetch("u", timeout=2.0))  # mypy: typing.Coroutine[Any, Any, bytes] | pyright: CoroutineType[Any, Any, bytes]
pending.close()
reveal_type(rows(3))  # mypy: typing.Iterator[int] | pyright: Iterator[int]
reveal_type(stream(3))  # mypy: typing.AsyncIterator[str] | pyright: AsyncIterator[str]
reveal_type(Shop().price("a", qty=2))  # mypy: float | pyright: float
reveal_type(Shop.price(Shop(), "a"))  # mypy: float | pyright: float
reveal_type(Shop.tax(2.0))  # mypy: float | pyright: float


async def consume() -> None:
    reveal_type(await fetch("u"))  # mypy: bytes | pyright: bytes
    async for chunk in stream(2):
        reveal_type(chunk)  # mypy: str | pyright: str


# The wrapper attributes. Through an instance they are the function's own: they take `self` first.
reveal_type(area.cache_info().hits)  # mypy: int | pyright: int
reveal_type(area.cache_info().currsize)  # mypy: int | pyright: int
reveal_type(area.cache_clear())  # mypy: None | pyright: None
reveal_type(area.cache_key(2, height=3))  # mypy: int | pyright: int
reveal_type(fetch.cache_key("u"))  # mypy: int | pyright: int
reveal_type(rows.cache_info().misses)  # mypy: int | pyright: int
reveal_type(Shop().price.cache_key(Shop(), "a"))  # mypy: int | pyright: int
reveal_type(total.cache_inputs([1]))  # mypy: dict[str, Any] | pyright: dict[str, Any]
reveal_type(total.cache_name)  # mypy: str | pyright: str
