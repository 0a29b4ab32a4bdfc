"""Every line marked `# E` must be reported by mypy --strict, and nothing else."""

from oxicache import InMemCache

cache = InMemCache()


@cache.memoize
def area(width: int, height: int = 1) -> float:
    return float(width * height)


@cache.memoize
async def fetch(url: str) -> bytes:
    return url.encode()


@cache.batch_memoize
def embed(texts: list[str]) -> list[float]:
    return [0.0 for _ in texts]


class Prices:
    @cache.memoize(exclude=["self"])
    def price(self, sku: str) -> float:
        return 1.0


area("wide")  # E
area(1, depth=2)  # E
name: str = area(1)  # E
Prices().price(3)  # E
Prices().price("a", "b")  # E
area.cache_key("x")  # E
area.no_such_helper()  # E
fetch(b"x")  # E
text: bytes = fetch("x")  # E
embed("abc")  # E
embed(["a"], 2)  # E
cache.memoize(version=1.5)  # E
cache.memoize(cache_if=3)  # E
