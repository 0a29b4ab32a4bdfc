"""The guide's first example: a memoized recursive Fibonacci on the in-memory cache."""

import time

from oxicache import InMemCache

cache = InMemCache()


@cache.memoize
def fibonacci(n: int) -> int:
    if n <= 1:
        return n
    return fibonacci(n - 2) + fibonacci(n - 1)


start = time.perf_counter()
print("fibonacci(300) =", fibonacci(300), f"(computed in {1e3 * (time.perf_counter() - start):.2f} ms)")
start = time.perf_counter()
print("fibonacci(300) =", fibonacci(300), f"(cached, {1e6 * (time.perf_counter() - start):.1f} us)")
print(fibonacci.cache_info())
entry = next(iter(cache))
print("first entry:", entry, "key:", hex(entry.key))
print("stats:", cache.stats())
