"""The memoize engine reads a plain function's parameters and kind from its code object, without
importing inspect (memo/signature.py: ``plain_function``, ``param_specs``; memo/engine.py:
``function_kind``). A wrong parameter kind or default would bind calls to wrong keys, so the fast path is
checked against inspect itself: over generated signatures of every shape, and on the callables it must
leave to inspect."""

from __future__ import annotations

import functools
import inspect
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oxicache.memo import signature
from oxicache.memo.engine import function_kind


def by_inspect(func: Any) -> list[tuple[str, int, bool, Any]]:
    empty = inspect.Parameter.empty
    return [(p.name, int(p.kind), p.default is not empty, None if p.default is empty else p.default)
            for p in inspect.signature(func).parameters.values()]


def kind_by_inspect(func: Any) -> str:
    if inspect.isasyncgenfunction(func):
        return "asyncgen"
    if inspect.iscoroutinefunction(func):
        return "async"
    return "gen" if inspect.isgeneratorfunction(func) else "sync"


def test_the_flag_and_kind_constants_are_inspects() -> None:
    assert (signature.CO_VARARGS, signature.CO_VARKEYWORDS, signature.CO_GENERATOR, signature.CO_COROUTINE,
            signature.CO_ASYNC_GENERATOR) == (inspect.CO_VARARGS, inspect.CO_VARKEYWORDS, inspect.CO_GENERATOR,
                                              inspect.CO_COROUTINE, inspect.CO_ASYNC_GENERATOR)
    assert [signature.POSITIONAL_ONLY, signature.POSITIONAL_OR_KEYWORD, signature.VAR_POSITIONAL,
            signature.KEYWORD_ONLY, signature.VAR_KEYWORD] == [
        int(inspect.Parameter.POSITIONAL_ONLY), int(inspect.Parameter.POSITIONAL_OR_KEYWORD),
        int(inspect.Parameter.VAR_POSITIONAL), int(inspect.Parameter.KEYWORD_ONLY), int(inspect.Parameter.VAR_KEYWORD)]


NAMES = st.lists(st.sampled_from(["a", "b", "c", "d", "e", "x", "y", "self", "args", "kw"]), unique=True,
                 max_size=7)
DEFAULTS: Any = st.one_of(st.none(), st.integers(-3, 3), st.text(max_size=2), st.just((1, 2)), st.just(frozenset()))


@st.composite
def function_source(draw: Any) -> tuple[str, list[Any]]:
    """A def with a random parameter list: positional-only, ordinary, *args, keyword-only, **kwargs, and
    defaults where Python allows them; the body's kind (return, yield, async, async yield) too."""
    names = draw(NAMES)
    cut = sorted(draw(st.lists(st.integers(0, len(names)), min_size=2, max_size=2)))
    posonly, ordinary, kwonly = names[:cut[0]], names[cut[0]:cut[1]], names[cut[1]:]
    star = draw(st.booleans())
    starstar = draw(st.booleans())
    values: list[Any] = []
    parts: list[str] = []
    positional = posonly + ordinary
    first_default = draw(st.integers(0, len(positional)))

    def param(name: str, defaulted: bool) -> str:
        if not defaulted:
            return name
        values.append(draw(DEFAULTS))
        return f"{name}=_d[{len(values) - 1}]"

    for i, name in enumerate(posonly):
        parts.append(param(name, i >= first_default))
    if posonly:
        parts.append("/")
    for i, name in enumerate(ordinary, start=len(posonly)):
        parts.append(param(name, i >= first_default))
    if star:
        parts.append("*rest")
    elif kwonly:
        parts.append("*")
    for name in kwonly:
        parts.append(param(name, draw(st.booleans())))
    if starstar:
        parts.append("**more")
    body = draw(st.sampled_from(["def", "gen", "async", "asyncgen"]))
    head = "async def" if body in ("async", "asyncgen") else "def"
    line = {"def": "return 1", "gen": "yield 1", "async": "return 1", "asyncgen": "yield 1"}[body]
    return f"{head} f({', '.join(parts)}):\n    local = 2\n    {line}\n", values


@settings(max_examples=400, deadline=None)
@given(function_source())
def test_parameters_and_kind_match_inspect_for_any_signature(made: tuple[str, list[Any]]) -> None:
    source, values = made
    namespace: dict[str, Any] = {"_d": values}
    exec(source, namespace)  # noqa: S102 - generated above
    func = namespace["f"]
    assert signature.plain_function(func), source
    assert signature.param_specs(func) == by_inspect(func), source
    assert function_kind(func) == kind_by_inspect(func), source


def _decorated(func: Any) -> Any:
    @functools.wraps(func)
    def outer(*args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)
    return outer


def inner(a: int, b: int = 2) -> int:
    return a + b


def with_signature(*args: Any) -> Any:
    return args


with_signature.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    [inspect.Parameter("z", inspect.Parameter.KEYWORD_ONLY, default=5)])


def with_text_signature(a: int) -> int:
    return a


with_text_signature.__text_signature__ = "(a, b=1)"  # type: ignore[attr-defined]


class Methods:
    def method(self, a: int) -> int:
        return a


async def coroutine_inner(a: int) -> int:
    return a


OTHERS = {
    "a functools.wraps wrapper (inspect follows __wrapped__)": _decorated(inner),
    "a __signature__": with_signature,
    "a bound method": Methods().method,
    "a partial": functools.partial(inner, 1),
    "a builtin": abs,
    "a class": Methods,
    "a wrapped coroutine function": _decorated(coroutine_inner),
    "a partial of a coroutine function": functools.partial(coroutine_inner, 1),
}


@pytest.mark.parametrize("what", list(OTHERS))
def test_other_callables_are_left_to_inspect(what: str) -> None:
    func = OTHERS[what]
    assert not signature.plain_function(func)
    assert signature.param_specs(func) == by_inspect(func)
    assert function_kind(func) == kind_by_inspect(func)


def test_a_function_with_unusual_attributes_is_left_to_inspect() -> None:
    assert not signature.plain_function(with_text_signature)  # inspect ignores it on a def: so does the result
    assert signature.param_specs(with_text_signature) == by_inspect(with_text_signature)

    def marked(a: int) -> int:
        return a

    marked.__dict__["_is_coroutine_marker"] = object()  # inspect.markcoroutinefunction's attribute (3.12+)
    assert not signature.plain_function(marked)
    assert function_kind(marked) == kind_by_inspect(marked)


def test_memoizing_a_def_does_not_import_inspect() -> None:
    code = """
import sys
import oxicache
cache = oxicache.JsonCache(__import__("tempfile").mkdtemp())
@cache.memoize
def f(a, /, b=2, *rest, c, d=4, **more):
    return (a, b, rest, c, d, more)
assert f(1, c=3) == f(1, c=3) == (1, 2, (), 3, 4, {}) and f.cache_info().hits == 1
@oxicache.memoize
async def g(x):
    return x
print(sorted(m for m in ("inspect", "dataclasses", "ast", "dis") if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "[]", out.stdout
