"""R24: a memoized classmethod (``@classmethod`` over ``@cache.memoize``) type-checks; see
tests/reliability/test_r24_typing.py for why this is an expected failure today."""

from typing import reveal_type

from oxicache import InMemCache

cache = InMemCache()


class Shop:
    @classmethod
    @cache.memoize
    def build(cls, n: int) -> "Shop":
        return cls()


class Outlet(Shop):
    pass


reveal_type(Shop.build(3))  # mypy: matrix_r24_classmethod.Shop | pyright: Shop
reveal_type(Shop().build(3))  # mypy: matrix_r24_classmethod.Shop | pyright: Shop
reveal_type(Outlet.build(3))  # mypy: matrix_r24_classmethod.Shop | pyright: Shop
reveal_type(Shop.build.cache_key(Shop, 3))  # mypy: int | pyright: int
