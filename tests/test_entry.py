"""CacheEntry: the record of one cached call (seed guide section 4)."""

from __future__ import annotations

import copy
import pickle

import pytest

from oxicache import CacheEntry


def add(x, y, z=10):
    return x + y + z


class Holder:
    @staticmethod
    def method(a):
        return a


# ---- constructor ----------------------------------------------------------------------------------


def test_constructor_positional_and_keyword_agree():
    pos = CacheEntry("f", {"x": 5}, 25, 26, {"v": 1})
    kw = CacheEntry(func="f", inputs={"x": 5}, output=25, expected=26, metadata={"v": 1})
    assert pos == kw
    assert (pos.func, pos.inputs, pos.output, pos.expected, pos.metadata) == ("f", {"x": 5}, 25, 26, {"v": 1})


def test_constructor_defaults():
    e = CacheEntry()
    assert e.func == ""
    assert e.inputs == {}
    assert e.output is ...
    assert e.expected is ...
    assert e.metadata == {}
    assert e.annotated is False


def test_constructor_rejects_a_sixth_positional_field():
    with pytest.raises(TypeError):
        CacheEntry("f", {}, 1, 2, {}, 12345)  # ahvn's _key field is gone


def test_ellipsis_means_unset():
    e = CacheEntry("f", {"x": 1}, output=..., expected=...)
    assert e.output is ...
    assert e.expected is ...
    assert e.annotated is False
    assert e.value is ...


def test_none_is_a_value_not_unset():
    e = CacheEntry("f", {"x": 1}, output=None)
    assert e.output is None
    assert e.value is None
    assert e != CacheEntry("f", {"x": 1})  # output unset
    assert "output" in e.to_dict()
    assert "output" not in CacheEntry("f", {"x": 1}).to_dict()


def test_none_expected_is_an_annotation():
    e = CacheEntry("f", {"x": 1}, output=3, expected=None)
    assert e.annotated is True
    assert e.value is None


def test_inputs_none_and_metadata_none_mean_empty():
    e = CacheEntry("f", None, 1, ..., None)
    assert e.inputs == {}
    assert e.metadata == {}


# ---- key ------------------------------------------------------------------------------------------


def test_key_is_a_128_bit_int():
    k = CacheEntry("add", {"x": 5, "y": 10}).key
    assert isinstance(k, int)
    assert 0 <= k < 2**128


def test_key_is_independent_of_input_order():
    a = CacheEntry("add", {"x": 5, "y": 10})
    b = CacheEntry("add", {"y": 10, "x": 5})
    assert a.key == b.key
    assert CacheEntry.from_args(func="add", output=15, x=5, y=10).key == CacheEntry.from_args(func="add", output=15, y=10, x=5).key


def test_key_ignores_output_expected_metadata():
    base = CacheEntry("add", {"x": 5})
    assert CacheEntry("add", {"x": 5}, output=1, expected=2, metadata={"m": 3}).key == base.key


def test_key_changes_with_func_and_inputs():
    base = CacheEntry("add", {"x": 5, "y": 10})
    assert CacheEntry("sub", {"x": 5, "y": 10}).key != base.key
    assert CacheEntry("add", {"x": 5, "y": 11}).key != base.key
    assert CacheEntry("add", {"x": 5}).key != base.key
    assert CacheEntry("add", {"x": 5, "y": 10, "z": 0}).key != base.key
    assert CacheEntry("add", {"x": 5, "y": 10.0}).key != base.key  # 10 and 10.0 are distinct
    assert CacheEntry("add", {"x": 5, "y": "10"}).key != base.key


def test_key_is_recomputed_after_mutating_inputs():
    e = CacheEntry("f", {"x": 1})
    before = e.key
    e.inputs["x"] = 2
    assert e.key != before
    assert e.key == CacheEntry("f", {"x": 2}).key
    e.inputs["x"] = 1
    assert e.key == before


def test_key_is_recomputed_after_assigning_fields():
    e = CacheEntry("f", {"x": 1})
    e.func = "g"
    assert e.key == CacheEntry("g", {"x": 1}).key
    e.inputs = {"y": 2}
    assert e.key == CacheEntry("g", {"y": 2}).key


def test_key_of_unencodable_input_raises_keyencodingerror():
    from oxicache import KeyEncodingError

    class Opaque:
        pass

    e = CacheEntry("f", {"obj": Opaque()})
    with pytest.raises(KeyEncodingError, match="obj"):
        _ = e.key


# ---- value / annotated ----------------------------------------------------------------------------


def test_value_is_output_unless_annotated():
    e = CacheEntry.from_args(func="compute", output=100, n=10)
    assert e.value == 100
    assert e.annotated is False
    a = e.annotate(expected=99)
    assert a.value == 99
    assert a.annotated is True


def test_expected_without_output():
    e = CacheEntry.from_args(func="add", expected=15, x=5, y=10)
    assert e.output is ...
    assert e.value == 15
    assert e.annotated is True


# ---- from_args ------------------------------------------------------------------------------------


def test_from_args_with_callable_uses_module_qualname():
    e = CacheEntry.from_args(func=add, output=25, x=5, y=10, z=10)
    assert e.func == f"{__name__}.add"
    assert e.inputs == {"x": 5, "y": 10, "z": 10}
    assert e.output == 25


def test_from_args_with_method_qualname():
    e = CacheEntry.from_args(func=Holder.method, a=1)
    assert e.func == f"{__name__}.Holder.method"


def test_from_args_exclude():
    e = CacheEntry.from_args(func=add, output=25, x=5, y=10, z=10, exclude=["z"])
    assert e.inputs == {"x": 5, "y": 10}
    assert e.key == CacheEntry(f"{__name__}.add", {"x": 5, "y": 10}).key


def test_from_args_exclude_must_be_a_list_not_a_string():
    with pytest.raises(TypeError, match="'z'"):
        CacheEntry.from_args(func="f", x=1, z=2, exclude="z")


def test_from_args_reserved_names_are_its_own_parameters():
    e = CacheEntry.from_args(func="f", output=1, expected=2, metadata={"m": 3}, exclude=["y"], x=0, y=9)
    assert e.func == "f"
    assert e.inputs == {"x": 0}
    assert e.output == 1
    assert e.expected == 2
    assert e.metadata == {"m": 3}
    # inputs with those names need the constructor
    e2 = CacheEntry("f", {"func": 1, "output": 2, "expected": 3, "metadata": 4, "exclude": 5})
    assert set(e2.inputs) == {"func", "output", "expected", "metadata", "exclude"}
    assert e2.output is ...


def test_from_args_defaults():
    e = CacheEntry.from_args()
    assert e == CacheEntry()


def test_from_args_none_output_is_a_value():
    e = CacheEntry.from_args(func="f", output=None, x=1)
    assert e.output is None
    assert e.to_dict()["output"] is None


# ---- from_dict / to_dict --------------------------------------------------------------------------


def test_to_dict_shape_matches_the_guide():
    e = CacheEntry.from_args(func="add", output=15, x=5, y=10)
    assert e.to_dict() == {"func": "add", "inputs": {"x": 5, "y": 10}, "output": 15, "metadata": {}}


def test_to_dict_leaves_out_unset_output_and_expected():
    d = CacheEntry("f", {"x": 1}).to_dict()
    assert d == {"func": "f", "inputs": {"x": 1}, "metadata": {}}
    d = CacheEntry("f", {"x": 1}, expected=3).to_dict()
    assert "output" not in d
    assert d["expected"] == 3


def test_from_dict_round_trip():
    data = {"func": "compute", "inputs": {"n": 100}, "output": 5050, "expected": 5050, "metadata": {"cached_at": "2025-10-21"}}
    e = CacheEntry.from_dict(data)
    assert e.func == "compute"
    assert e.inputs == {"n": 100}
    assert e.output == 5050
    assert e.expected == 5050
    assert e.metadata == {"cached_at": "2025-10-21"}
    assert e.to_dict() == data
    assert CacheEntry.from_dict(e.to_dict()) == e


def test_from_dict_missing_fields_are_unset():
    e = CacheEntry.from_dict({"func": "f", "inputs": {"x": 1}})
    assert e.output is ...
    assert e.expected is ...
    assert e.metadata == {}
    assert CacheEntry.from_dict(e.to_dict()) == e


def test_from_dict_exclude():
    e = CacheEntry.from_dict({"func": "f", "inputs": {"x": 1, "debug": True}}, exclude=["debug"])
    assert e.inputs == {"x": 1}


def test_from_dict_rejects_non_mapping():
    with pytest.raises(TypeError, match="list"):
        CacheEntry.from_dict([("func", "f")])


def test_to_dict_returns_copies():
    e = CacheEntry("f", {"x": 1}, 2, metadata={"m": 1})
    d = e.to_dict()
    assert d["inputs"] is not e.inputs
    assert d["metadata"] is not e.metadata
    d["inputs"]["x"] = 99
    d["metadata"]["m"] = 99
    assert e.inputs == {"x": 1}
    assert e.metadata == {"m": 1}


def test_from_dict_does_not_alias_the_source_dicts():
    data = {"func": "f", "inputs": {"x": 1}, "output": 2, "metadata": {"m": 1}}
    e = CacheEntry.from_dict(data)
    assert e.inputs is not data["inputs"]
    assert e.metadata is not data["metadata"]
    data["inputs"]["x"] = 99
    data["metadata"]["m"] = 99
    assert e.inputs == {"x": 1}
    assert e.metadata == {"m": 1}


# ---- clone ----------------------------------------------------------------------------------------


def test_clone_with_updates_leaves_original_unchanged():
    original = CacheEntry.from_args(func="compute", output=100, n=10)
    modified = original.clone(output=200, metadata={"v": 2})
    assert original.output == 100
    assert original.metadata == {}
    assert modified.output == 200
    assert modified.metadata == {"v": 2}
    assert modified.func == "compute"
    assert modified.inputs == {"n": 10}
    assert modified.key == original.key


def test_clone_without_arguments_is_equal_but_independent():
    original = CacheEntry("f", {"x": [1]}, 1, metadata={"m": 1})
    c = original.clone()
    assert c == original
    assert c is not original
    assert c.inputs is not original.inputs
    assert c.metadata is not original.metadata
    c.inputs["y"] = 2
    c.metadata["n"] = 2
    assert original.inputs == {"x": [1]}
    assert original.metadata == {"m": 1}


def test_clone_every_field():
    e = CacheEntry("f", {"x": 1}, 1)
    c = e.clone(func="g", inputs={"y": 2}, output=3, expected=4, metadata={"z": 5})
    assert c == CacheEntry("g", {"y": 2}, 3, 4, {"z": 5})


def test_clone_can_set_none_and_unset():
    e = CacheEntry("f", {"x": 1}, output=1, expected=2)
    assert e.clone(output=None).output is None
    unset = e.clone(expected=...)
    assert unset.expected is ...
    assert unset.annotated is False


def test_clone_exclude():
    e = CacheEntry("f", {"x": 1, "debug": True})
    c = e.clone(exclude=["debug"])
    assert c.inputs == {"x": 1}
    assert e.inputs == {"x": 1, "debug": True}
    assert c.key == CacheEntry("f", {"x": 1}).key


def test_clone_unknown_field_is_a_type_error():
    e = CacheEntry("f", {"x": 1}, 1)
    with pytest.raises(TypeError, match="outptu"):
        e.clone(outptu=2)


# ---- annotate -------------------------------------------------------------------------------------


def test_annotate_defaults_expected_to_output():
    entry = CacheEntry.from_args(func="fibonacci", output=55, n=10)
    auto = entry.annotate()
    assert auto.expected == 55
    assert auto.annotated is True
    assert entry.annotated is False
    assert entry.expected is ...


def test_annotate_with_expected_and_metadata_merges():
    entry = CacheEntry("fibonacci", {"n": 10}, 54, metadata={"run": 1, "source": "model"})
    annotated = entry.annotate(expected=55, metadata={"source": "ground_truth"})
    assert annotated.expected == 55
    assert annotated.output == 54
    assert annotated.value == 55
    assert annotated.metadata == {"run": 1, "source": "ground_truth"}
    # original unchanged
    assert entry.metadata == {"run": 1, "source": "model"}
    assert entry.expected is ...
    assert annotated.key == entry.key


def test_annotate_with_none_expected():
    e = CacheEntry("f", {"x": 1}, 5).annotate(expected=None)
    assert e.annotated is True
    assert e.expected is None
    assert e.value is None


def test_annotate_result_is_independent_of_original():
    entry = CacheEntry("f", {"x": 1}, 5, metadata={"m": 1})
    annotated = entry.annotate()
    annotated.inputs["x"] = 2
    annotated.metadata["m"] = 2
    assert entry.inputs == {"x": 1}
    assert entry.metadata == {"m": 1}


def test_annotate_rejects_non_dict_metadata():
    with pytest.raises(TypeError, match="list"):
        CacheEntry("f", {}, 1).annotate(metadata=[1])


# ---- equality, hashing, repr, pickle --------------------------------------------------------------


def test_equality_compares_every_field():
    base = CacheEntry("f", {"x": 1}, 2, 3, {"m": 4})
    assert base == CacheEntry("f", {"x": 1}, 2, 3, {"m": 4})
    assert base != CacheEntry("g", {"x": 1}, 2, 3, {"m": 4})
    assert base != CacheEntry("f", {"x": 2}, 2, 3, {"m": 4})
    assert base != CacheEntry("f", {"x": 1}, 9, 3, {"m": 4})
    assert base != CacheEntry("f", {"x": 1}, 2, 9, {"m": 4})
    assert base != CacheEntry("f", {"x": 1}, 2, 3, {"m": 9})
    assert base != CacheEntry("f", {"x": 1}, 2, ..., {"m": 4})
    assert base != "not an entry"
    assert (base == 1) is False


def test_equal_entries_hash_equal():
    a = CacheEntry("f", {"x": 1, "y": 2}, 3)
    b = CacheEntry("f", {"y": 2, "x": 1}, 3)
    assert a == b
    assert hash(a) == hash(b)
    assert len({a, b}) == 1


def test_repr_shows_fields():
    r = repr(CacheEntry("f", {"x": 1}, 2, metadata={"m": 3}))
    assert r.startswith("CacheEntry(")
    for part in ("func='f'", "inputs={'x': 1}", "output=2", "metadata={'m': 3}"):
        assert part in r
    assert "expected" not in r
    assert "expected=7" in repr(CacheEntry("f", {"x": 1}, 2, 7))


@pytest.mark.parametrize(
    "entry",
    [
        CacheEntry("f", {"x": 1}, 2, 3, {"m": [4]}),
        CacheEntry("f", {"x": 1}),  # output and expected unset
        CacheEntry("f", {"x": 1}, None),  # None output
        CacheEntry("f", {"x": 1}, None, None),
        CacheEntry("f", {"x": (1, 2.5, "s", b"b", None, frozenset({1}))}, {"a": [1, {2}]}),
    ],
)
def test_pickle_round_trip(entry):
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        back = pickle.loads(pickle.dumps(entry, protocol))
        assert back == entry
        assert back.key == entry.key
        assert back.annotated == entry.annotated
        assert back.output is ... if entry.output is ... else back.output == entry.output
        assert back.expected is ... if entry.expected is ... else back.expected == entry.expected


def test_pickle_keeps_none_distinct_from_unset():
    back = pickle.loads(pickle.dumps(CacheEntry("f", {}, None)))
    assert back.output is None
    back = pickle.loads(pickle.dumps(CacheEntry("f", {})))
    assert back.output is ...


def test_copy_and_deepcopy():
    e = CacheEntry("f", {"x": [1]}, [2], metadata={"m": 1})
    assert copy.copy(e) == e
    d = copy.deepcopy(e)
    assert d == e
    d.inputs["x"].append(3)
    assert e.inputs == {"x": [1]}


# ---- bad input ------------------------------------------------------------------------------------


def test_inputs_must_be_a_dict():
    with pytest.raises(TypeError, match="list"):
        CacheEntry("f", [("x", 1)])
    with pytest.raises(TypeError, match="str"):
        CacheEntry("f", "x=1")


def test_inputs_keys_must_be_str():
    with pytest.raises(TypeError, match=r"1.*int"):
        CacheEntry("f", {1: "a"})
    with pytest.raises(TypeError, match=r"\(1, 2\).*tuple"):
        CacheEntry("f", {(1, 2): "a"})


def test_inputs_keys_checked_on_assignment_and_clone():
    e = CacheEntry("f", {"x": 1})
    with pytest.raises(TypeError, match="int"):
        e.inputs = {5: 1}
    assert e.inputs == {"x": 1}
    with pytest.raises(TypeError, match="int"):
        e.clone(inputs={5: 1})
    with pytest.raises(TypeError, match="int"):
        CacheEntry.from_dict({"func": "f", "inputs": {5: 1}})


def test_metadata_must_be_a_dict():
    with pytest.raises(TypeError, match="list"):
        CacheEntry("f", {}, metadata=[1])
    with pytest.raises(TypeError, match="str"):
        CacheEntry.from_args(func="f", metadata="m")
    e = CacheEntry("f", {})
    with pytest.raises(TypeError, match="int"):
        e.metadata = 3


def test_func_must_be_str_or_callable():
    with pytest.raises(TypeError, match="int"):
        CacheEntry(42, {})
    with pytest.raises(TypeError, match="list"):
        CacheEntry.from_args(func=["f"], x=1)
    e = CacheEntry("f", {})
    with pytest.raises(TypeError, match="float"):
        e.func = 1.5
    assert e.func == "f"
