"""Every line marked `# E` must be reported by mypy --strict, and nothing else."""

from oxicache import InMemCache

cache = InMemCache()


@cache.memoize
def area(width: int, height: int = 1) -> float:
    return float(width * height)


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
