"""The light stand-ins of python/oxicache/_light.py behave as what they stand in for: a class made by its
``dataclass(frozen=True)`` against the same class made by ``dataclasses.dataclass(frozen=True)``, and
``Capabilities`` (made by the stand-in) as the dataclass it was."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import pickle
import typing

import pytest

import oxicache
from oxicache import _light
from oxicache.capabilities import Capabilities


def body() -> dict[str, object]:
    return {"__annotations__": {"flag": "bool", "count": "int", "label": "str"}, "flag": False, "count": 3,
            "label": "x", "__module__": __name__, "__qualname__": "Record"}


Real = dataclasses.dataclass(frozen=True)(type("Record", (), body()))
Light = _light.dataclass(frozen=True)(type("Record", (), body()))

# Pickle finds classes by module and name: one name each for the round trip.
RealRecord = dataclasses.dataclass(frozen=True)(type("RealRecord", (), {**body(), "__qualname__": "RealRecord"}))
LightRecord = _light.dataclass(frozen=True)(type("LightRecord", (), {**body(), "__qualname__": "LightRecord"}))

CALLS = [((), {}), ((True,), {}), ((True, 5), {"label": "y"}), ((), {"count": 0}), ((False, 3, "x"), {})]


@pytest.mark.parametrize(("args", "kwargs"), CALLS)
def test_instances_print_compare_and_hash_alike(args: tuple[object, ...], kwargs: dict[str, object]) -> None:
    real, light = Real(*args, **kwargs), Light(*args, **kwargs)
    assert repr(light) == repr(real)
    assert hash(light) == hash(real)
    for other_args, other_kwargs in CALLS:
        assert (light == Light(*other_args, **other_kwargs)) == (real == Real(*other_args, **other_kwargs))
        assert (light != Light(*other_args, **other_kwargs)) == (real != Real(*other_args, **other_kwargs))
    assert (light == real) is False  # another class, as for two dataclasses
    assert light.__eq__(object()) is NotImplemented


def test_the_constructor_has_the_same_signature_and_errors() -> None:
    assert str(inspect.signature(Light)) == str(inspect.signature(Real))
    assert Light.__init__.__annotations__ == Real.__init__.__annotations__  # type: ignore[misc]
    for name in ("__init__", "__repr__", "__eq__", "__hash__", "__setattr__"):
        light_method, real_method = getattr(Light, name), getattr(Real, name)
        assert (light_method.__qualname__, light_method.__module__) == (real_method.__qualname__, real_method.__module__)
    assert Light.__match_args__ == Real.__match_args__  # type: ignore[attr-defined]
    for args, kwargs in (((1, 2, 3, 4), {}), ((), {"nope": 1}), ((True,), {"flag": False})):
        with pytest.raises(TypeError) as real_error:
            Real(*args, **kwargs)
        with pytest.raises(TypeError) as light_error:
            Light(*args, **kwargs)
        assert str(light_error.value) == str(real_error.value)


def test_instances_are_frozen_as_dataclasses_are() -> None:
    real, light = Real(), Light()
    for action in (lambda r: setattr(r, "count", 4), lambda r: delattr(r, "flag"), lambda r: setattr(r, "new", 1),
                   lambda r: delattr(r, "new")):
        with pytest.raises(dataclasses.FrozenInstanceError) as real_error:
            action(real)
        with pytest.raises(dataclasses.FrozenInstanceError) as light_error:
            action(light)
        assert str(light_error.value) == str(real_error.value)
    assert light == Light()


def test_dataclasses_functions_work_on_the_light_class() -> None:
    light, real = Light(True, 7), Real(True, 7)
    assert dataclasses.is_dataclass(Light) and dataclasses.is_dataclass(light)
    assert [(f.name, f.type, f.default) for f in dataclasses.fields(light)] == [
        (f.name, f.type, f.default) for f in dataclasses.fields(real)]
    assert dataclasses.asdict(light) == dataclasses.asdict(real) == {"flag": True, "count": 7, "label": "x"}
    assert dataclasses.astuple(light) == dataclasses.astuple(real)
    changed = dataclasses.replace(light, label="z")
    assert type(changed) is Light and changed == Light(True, 7, "z")
    assert Light.__dataclass_params__.frozen  # type: ignore[attr-defined]
    assert light.__replace__(count=1) == Light(True, 1)  # type: ignore[attr-defined]  # copy.replace, 3.13


def test_a_dataclass_may_extend_the_light_class() -> None:
    Extended = dataclasses.dataclass(frozen=True)(type("Extended", (Light,), {"__annotations__": {"more": "int"},
                                                                              "more": 0}))
    made = Extended(True, 1, "x", 5)
    assert [f.name for f in dataclasses.fields(made)] == ["flag", "count", "label", "more"]
    assert made == Extended(True, 1, "x", 5) and made != Light(True, 1, "x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.more = 6  # type: ignore[attr-defined]


def test_instances_copy_pickle_and_match() -> None:
    light = LightRecord(True, 2, "p")
    assert pickle.loads(pickle.dumps(light)) == light
    assert copy.copy(light) == light and copy.deepcopy(light) == light
    assert pickle.loads(pickle.dumps(RealRecord(True))) == RealRecord(True)  # the same path, for a dataclass
    match light:
        case LightRecord(flag, count, label):
            assert (flag, count, label) == (True, 2, "p")
        case _:
            pytest.fail("positional match failed")


def test_only_frozen_classes_with_defaults_last_are_made() -> None:
    with pytest.raises(TypeError, match="frozen"):
        _light.dataclass(frozen=False)
    late = {"__annotations__": {"flag": "bool", "count": "int"}, "flag": False}
    with pytest.raises(TypeError) as real_error:
        dataclasses.dataclass(frozen=True)(type("Late", (), dict(late)))
    with pytest.raises(TypeError) as light_error:
        _light.dataclass(frozen=True)(type("Late", (), dict(late)))
    assert str(light_error.value) == str(real_error.value)


def required_body() -> dict[str, object]:
    return {"__annotations__": {"ttl": "float | None", "jitter": "float", "stale": "float | None"}, "stale": None,
            "__module__": __name__, "__qualname__": "Settings"}


def test_fields_without_defaults_are_required_as_in_a_dataclass() -> None:
    real_class = dataclasses.dataclass(frozen=True)(type("Settings", (), required_body()))
    light_class = _light.dataclass(frozen=True)(type("Settings", (), required_body()))
    assert str(inspect.signature(light_class)) == str(inspect.signature(real_class))
    assert repr(light_class(1.0, 0.5)) == repr(real_class(1.0, 0.5))
    for args in ((), (1.0,)):
        with pytest.raises(TypeError) as real_error:
            real_class(*args)
        with pytest.raises(TypeError) as light_error:
            light_class(*args)
        assert str(light_error.value) == str(real_error.value)
    assert [(f.name, f.default) for f in dataclasses.fields(light_class)] == [
        (f.name, f.default) for f in dataclasses.fields(real_class)]
    assert dataclasses.replace(light_class(1.0, 0.5), stale=3.0) == light_class(1.0, 0.5, 3.0)


def test_capabilities_is_still_a_frozen_dataclass() -> None:
    caps = Capabilities(blocking_io=True)
    assert dataclasses.is_dataclass(Capabilities)
    assert [f.name for f in dataclasses.fields(Capabilities)] == list(Capabilities.__match_args__)  # type: ignore[attr-defined]
    assert dataclasses.replace(caps, shared=False) == Capabilities(blocking_io=True, shared=False)
    assert oxicache.InMemCache.capabilities == Capabilities(shared=False, bounded=True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        caps.ttl = False  # type: ignore[misc]
    assert {caps, Capabilities(blocking_io=True)} == {caps}


def test_overload_returns_the_function_itself() -> None:
    def f(x: int) -> int:
        return x

    assert _light.overload(f) is f
    assert typing.get_overloads(oxicache.memoize) == []  # nothing recorded: the implementation is what runs
