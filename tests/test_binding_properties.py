"""Property tests: however a call is spelled, the native memoizer binds it like inspect.Signature.bind
with defaults applied, so equivalent calls share one entry and the key is CacheEntry's key (R10)."""

import inspect

from hypothesis import given
from hypothesis import strategies as st

from oxicache import CacheEntry, InMemCache

P = inspect.Parameter

# Signatures: (name, kind, default or P.empty), in a valid order.
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=5))
values = st.one_of(scalars, st.lists(scalars, max_size=3), st.dictionaries(st.text(max_size=3), scalars, max_size=3))


@st.composite
def signatures(draw):
    names = iter(f"p{i}" for i in range(20))
    params = []
    has_default = False
    for kind in (P.POSITIONAL_ONLY, P.POSITIONAL_OR_KEYWORD):
        for _ in range(draw(st.integers(0, 2))):
            has_default = has_default or draw(st.booleans())
            default = draw(values) if has_default else P.empty
            params.append(P(next(names), kind, default=default))
    if draw(st.booleans()):
        params.append(P("args", P.VAR_POSITIONAL))
    for _ in range(draw(st.integers(0, 2))):
        default = draw(values) if draw(st.booleans()) else P.empty
        params.append(P(next(names), P.KEYWORD_ONLY, default=default))
    if draw(st.booleans()):
        params.append(P("kwargs", P.VAR_KEYWORD))
    return inspect.Signature(params)


@st.composite
def calls(draw, sig):
    """Some valid spelling of a call: positional where allowed, keywords otherwise, defaults omitted."""
    args, kwargs = [], {}
    params = list(sig.parameters.values())
    positional_run = True
    for p in params:
        if p.kind is P.VAR_POSITIONAL:
            if positional_run:
                args.extend(draw(st.lists(values, max_size=2)))
            continue
        if p.kind is P.VAR_KEYWORD:
            for extra in draw(st.lists(st.sampled_from(["x1", "x2", "x3"]), unique=True, max_size=2)):
                kwargs[extra] = draw(values)
            continue
        skip = p.default is not P.empty and draw(st.booleans())
        if skip:
            positional_run = False
            continue
        value = draw(values)
        if p.kind is P.POSITIONAL_ONLY or (p.kind is P.POSITIONAL_OR_KEYWORD and positional_run and draw(st.booleans())):
            if not positional_run:
                return draw(calls(sig))  # cannot pass positionally after a gap; try another spelling
            args.append(value)
        else:
            positional_run = False
            kwargs[p.name] = value
    return tuple(args), kwargs


def make_function(sig):
    def f(*args, **kwargs):
        bound = sig.bind(*args, **kwargs)
        bound.apply_defaults()
        return dict(bound.arguments)

    f.__signature__ = sig
    f.__qualname__ = "f"
    return f


@given(st.data())
def test_memoizer_binds_like_inspect(data):
    sig = data.draw(signatures())
    args, kwargs = data.draw(calls(sig))
    cache = InMemCache()
    wrapped = cache.memoize(name="prop.f")(make_function(sig))

    bound = sig.bind(*args, **kwargs)
    bound.apply_defaults()
    inputs = dict(bound.arguments)

    assert wrapped(*args, **kwargs) == inputs
    assert wrapped.cache_key(*args, **kwargs) == CacheEntry("prop.f", inputs).key
    # The same call through tp_call (the general binder) and the explicit-everything spelling both hit.
    assert wrapped.__call__(*args, **kwargs) == inputs
    explicit_args = [inputs[p.name] for p in sig.parameters.values() if p.kind is P.POSITIONAL_ONLY]
    explicit_kwargs = {
        p.name: inputs[p.name] for p in sig.parameters.values() if p.kind in (P.POSITIONAL_OR_KEYWORD, P.KEYWORD_ONLY)
    }
    has_var = any(p.kind in (P.VAR_POSITIONAL, P.VAR_KEYWORD) for p in sig.parameters.values())
    if not has_var:
        assert wrapped(*explicit_args, **explicit_kwargs) == inputs
    info = wrapped.cache_info()
    assert info.misses == 1 and info.currsize == 1
    (entry,) = list(cache)
    assert entry.inputs == inputs and entry.key == CacheEntry("prop.f", inputs).key
