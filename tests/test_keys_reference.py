"""The key scheme (docs/key-scheme.md) against its pure-Python reference and the golden keys.

- the reference (tests/key_reference.py) reproduces tests/data/golden_keys.json: runs without the native module;
- the native encoder reproduces every golden key and canonical byte string;
- hypothesis: native bytes and keys equal the reference's on generated values, plus invariants;
- keys do not depend on PYTHONHASHSEED (subprocesses with different seeds).
"""

import json
import math
import os
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
GOLDEN_PATH = os.path.join(TESTS_DIR, "data", "golden_keys.json")
if TESTS_DIR not in sys.path:
    sys.path.insert(0, TESTS_DIR)

import golden_types  # noqa: E402  (always as top-level `golden_types`: its classes' identities are in the keys)
import key_reference  # noqa: E402

with open(GOLDEN_PATH, encoding="utf-8") as _fh:
    GOLDEN = json.load(_fh)
CASES = GOLDEN["cases"]
CASE_IDS = [c["name"] for c in CASES]


def case_value(case):
    """The `(func, inputs)` pair of a golden case, evaluated in the golden namespace."""
    return eval(case["expr"], golden_types.namespace())


def first_difference(got: bytes, want: bytes) -> str:
    i = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
    return (
        f"bytes differ at offset {i} (len got {len(got)}, want {len(want)}):\n"
        f"  got  ...{got[max(0, i - 8):i + 24].hex()}\n  want ...{want[max(0, i - 8):i + 24].hex()}"
    )


def native():
    """The native package (scripts/test.sh always builds it first, so these tests never skip)."""
    import oxicache
    import oxicache.keys

    return oxicache


# ---------------------------------------------------------------- 1. reference vs golden file


def test_golden_file_shape():
    assert GOLDEN["scheme_version"] == 2  # bumped for issue 11: path flavours, process-local classes
    assert len(CASES) >= 60
    assert len(set(CASE_IDS)) == len(CASE_IDS)
    for case in CASES:
        assert len(case["key"]) == 32 and int(case["key"], 16) < 2**128


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_reference_reproduces_golden(case):
    func, inputs = case_value(case)
    kb = key_reference.key_bytes(func, inputs)
    assert kb == bytes.fromhex(case["key_bytes"]), first_difference(kb, bytes.fromhex(case["key_bytes"]))
    assert key_reference.key(func, inputs) == int(case["key"], 16)


def test_golden_cases_cover_every_tag(monkeypatch):
    """Every tag of the spec appears in some golden case, bar `X` (the registry, tested below) and `L` (a
    process-local class identity, different in every process: tests/test_wrong_values.py)."""
    seen = set()
    original = key_reference._encode

    def recording(value, depth, registry):
        out = original(value, depth, registry)
        seen.add(out[:1].decode())
        return out

    monkeypatch.setattr(key_reference, "_encode", recording)
    for case in CASES:
        key_reference.key_bytes(*case_value(case))
    assert seen == set("NFTifcsbBetldSZKnyAgOPMYHRmupW")


def test_reference_digest_spot_check():
    from blake3 import blake3

    kb = key_reference.key_bytes("add", {"x": 5, "y": 10})
    assert kb == bytes.fromhex("7402" "7303616464" "6402" "7301786901" "05" "7301796901" "0a")
    assert key_reference.key("add", {"x": 5, "y": 10}) == int.from_bytes(
        blake3(b"oxicache-key-v1\x00" + kb).digest()[:16], "big"
    )


# ---------------------------------------------------------------- 2. native vs golden file


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_native_reproduces_golden(case):
    oxicache = native()
    func, inputs = case_value(case)
    want_bytes, want_key = bytes.fromhex(case["key_bytes"]), int(case["key"], 16)
    got_bytes = oxicache.keys.canonical_bytes((func, inputs))
    assert got_bytes == want_bytes, first_difference(got_bytes, want_bytes)
    assert oxicache.CacheEntry(func=func, inputs=inputs).key == want_key
    assert oxicache.keys.key_of(func, inputs) == want_key


# ---------------------------------------------------------------- 3. properties (hypothesis)

any_text = st.text(st.one_of(st.characters(exclude_categories=()), st.characters(categories=["Cs"])))
big_ints = st.one_of(
    st.integers(),
    st.integers(min_value=-(2**300), max_value=2**300),
    st.sampled_from([2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64, -(2**64), 2**64 - 1]),
)
any_floats = st.one_of(st.floats(), st.sampled_from([math.nan, -math.nan, -0.0, 0.0, math.inf, -math.inf]))
hashable_scalars = st.one_of(st.none(), st.booleans(), big_ints, any_floats, any_text, st.binary())
scalars = st.one_of(hashable_scalars, st.complex_numbers(), st.binary().map(bytearray), st.just(...))
hashables = st.recursive(
    hashable_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3).map(tuple), st.frozensets(hashable_scalars, max_size=3)),
    max_leaves=6,
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.lists(inner, max_size=5).map(tuple),
        st.dictionaries(hashables, inner, max_size=5),
        st.sets(hashable_scalars, max_size=5),
        st.frozensets(hashable_scalars, max_size=5),
    ),
    max_leaves=20,
)
ENCODERS = ["reference", "native"]


def encoder(name):
    if name == "reference":
        return key_reference.encode
    return native().keys.canonical_bytes


@given(values)
def test_native_matches_reference(v):
    oxicache = native()
    want = key_reference.encode(v)
    got = oxicache.keys.canonical_bytes(v)
    assert got == want, first_difference(got, want)
    assert oxicache.CacheEntry(func="f", inputs={"a": v}).key == key_reference.key("f", {"a": v})


@pytest.mark.parametrize("name", ENCODERS)
@given(data=st.data(), d=st.dictionaries(hashables, values, max_size=6))
def test_dict_insertion_order_is_irrelevant(name, data, d):
    encode = encoder(name)
    shuffled = dict(data.draw(st.permutations(list(d.items()))))
    assert encode(shuffled) == encode(d)
    assert encode(dict(reversed(list(d.items())))) == encode(d)


@pytest.mark.parametrize("name", ENCODERS)
@given(items=st.lists(values, max_size=6))
def test_list_and_tuple_differ(name, items):
    encode = encoder(name)
    assert encode(items) != encode(tuple(items))


@pytest.mark.parametrize("name", ENCODERS)
@given(items=st.sets(hashable_scalars, max_size=6))
def test_set_and_frozenset_differ(name, items):
    encode = encoder(name)
    assert encode(set(items)) != encode(frozenset(items))


@pytest.mark.parametrize("name", ENCODERS)
def test_equal_but_differently_typed_values_differ(name):
    encode = encoder(name)
    ones = (1, 1.0, True, "1", b"1", bytearray(b"1"))
    for wrap in (lambda x: x, lambda x: [x], lambda x: {"k": x}):
        assert len({encode(wrap(x)) for x in ones}) == len(ones)
    for wrap in (lambda x: {x: None}, lambda x: frozenset({x})):  # bytearray is not hashable
        assert len({encode(wrap(x)) for x in ones[:-1]}) == len(ones) - 1
    assert len({encode(x) for x in (0, 0.0, -0.0, False, None, "", b"", (), [], {})}) == 10


@pytest.mark.parametrize("name", ENCODERS)
def test_unsupported_and_too_deep_values_raise_type_error(name):
    encode = encoder(name)
    with pytest.raises(TypeError):
        encode(object())
    with pytest.raises(TypeError):
        encode({"a": [lambda: None]})
    deep = None
    for _ in range(1000):
        deep = [deep]
    with pytest.raises(TypeError):
        encode(deep)
    shallow = None
    for _ in range(100):
        shallow = (shallow,)
    assert encode(shallow) == b"t\x01" * 100 + b"N"
    cyclic = [1]
    cyclic.append(cyclic)
    with pytest.raises(TypeError):
        encode(cyclic)


def nested_lists(levels):
    value = None
    for _ in range(levels):
        value = [value]
    return value


def test_reference_depth_limit_boundary():
    # 200 nested lists put the innermost None at level 200: allowed; one more list is too deep.
    assert key_reference.encode(nested_lists(200)) == b"l\x01" * 200 + b"N"
    with pytest.raises(TypeError):
        key_reference.encode(nested_lists(201))
    # key_bytes adds two levels (the (func, inputs) tuple and the inputs dict)
    key_reference.key_bytes("f", {"a": nested_lists(198)})
    with pytest.raises(TypeError):
        key_reference.key_bytes("f", {"a": nested_lists(199)})


def test_native_depth_limit_matches_reference():
    oxicache = native()
    for levels in (199, 200):
        assert oxicache.keys.canonical_bytes(nested_lists(levels)) == key_reference.encode(nested_lists(levels))
    assert oxicache.keys.key_of("f", {"a": nested_lists(198)}) == key_reference.key("f", {"a": nested_lists(198)})
    with pytest.raises(TypeError):
        oxicache.keys.canonical_bytes(nested_lists(201))
    # key_of and CacheEntry.key count levels as encode((func, inputs)) does.
    with pytest.raises(TypeError):
        oxicache.keys.key_of("f", {"a": nested_lists(199)})
    with pytest.raises(TypeError):
        oxicache.CacheEntry(func="f", inputs={"a": nested_lists(199)}).key
    with pytest.raises(TypeError):
        oxicache.keys.key_of("f", {"a": nested_lists(1000)})
    with pytest.raises(TypeError):
        oxicache.CacheEntry(func="f", inputs={"a": nested_lists(1000)}).key


class RegBase:
    def __init__(self, v):
        self.v = v


class RegChild(RegBase):
    def __cache_key__(self):  # the registry (rule 1) wins over __cache_key__ (rule 2)
        return "not used"


class RegFloat(float):  # the registry wins over "subclass of a builtin" (rule 16)
    pass


def test_registered_encoders_match_reference():
    oxicache = native()
    registry = {RegBase: lambda obj: ("base", obj.v), RegFloat: lambda obj: round(float(obj), 1)}
    for cls, fn in registry.items():
        oxicache.register_key_encoder(cls, fn)
    try:
        for value in (RegBase(1), RegChild([2, 3]), RegFloat(2.25), {"x": [RegChild(None), RegFloat(-1.0)]}):
            want = key_reference.encode(value, registry)
            assert oxicache.keys.canonical_bytes(value) == want
            assert oxicache.keys.key_of("f", {"v": value}) == key_reference.key("f", {"v": value}, registry)
    finally:
        for cls in registry:
            oxicache.register_key_encoder(cls, None)
    assert oxicache.keys.canonical_bytes(RegFloat(2.25)) == key_reference.encode(2.25)  # rule 16 again
    assert key_reference.encode(RegChild(0), registry).startswith(b"X" + key_reference._str(
        f"{RegBase.__module__}.{RegBase.__qualname__}"))


# ---------------------------------------------------------------- 4. independent of PYTHONHASHSEED

SUBPROCESS_SCRIPT = r"""
import json, sys
tests_dir, mode, golden_path = sys.argv[1:4]
sys.path.insert(0, tests_dir)
import golden_types, key_reference
if mode == "native":
    import oxicache.keys
    from oxicache import CacheEntry
with open(golden_path, encoding="utf-8") as fh:
    cases = json.load(fh)["cases"]
keys = {}
for case in cases:
    func, inputs = eval(case["expr"], golden_types.namespace())
    if mode == "native":
        keys[case["name"]] = [f"{CacheEntry(func=func, inputs=inputs).key:032x}",
                              oxicache.keys.canonical_bytes((func, inputs)).hex()]
    else:
        keys[case["name"]] = [f"{key_reference.key(func, inputs):032x}", key_reference.key_bytes(func, inputs).hex()]
print(json.dumps({"hash_probe": hash("oxicache hash probe"), "keys": keys}))
"""
HASH_SEEDS = ["0", "1", "12345", "random"]


def run_under_hash_seeds(mode, extra_path=()):
    procs = []
    for seed in HASH_SEEDS:
        env = dict(os.environ, PYTHONHASHSEED=seed)
        env["PYTHONPATH"] = os.pathsep.join([*extra_path, TESTS_DIR, *filter(None, [os.environ.get("PYTHONPATH")])])
        procs.append(subprocess.Popen(
            [sys.executable, "-c", SUBPROCESS_SCRIPT, TESTS_DIR, mode, GOLDEN_PATH],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        ))
    results = {}
    for seed, proc in zip(HASH_SEEDS, procs):
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, f"PYTHONHASHSEED={seed} failed:\n{err}"
        results[seed] = json.loads(out)
    # the seeds really changed str hashing (so set iteration order), else this test proves nothing
    assert len({r["hash_probe"] for r in results.values()}) > 1
    want = {c["name"]: [c["key"], c["key_bytes"]] for c in CASES}
    for seed, result in results.items():
        bad = sorted(name for name in want if result["keys"].get(name) != want[name])
        assert not bad, f"{mode} keys under PYTHONHASHSEED={seed} differ from the golden file for: {bad}"


def test_reference_keys_ignore_hash_seed():
    run_under_hash_seeds("reference")


def test_native_keys_ignore_hash_seed():
    oxicache = native()
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(oxicache.__file__)))
    run_under_hash_seeds("native", extra_path=[package_parent])
