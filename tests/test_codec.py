"""The native value codec (`oxicache.codec`, docs/value-codec.md) against the golden file and the reference.

- native encodings equal tests/data/golden_codec.json; decoding the golden encodings gives the values back,
  of the same types all the way down (`codec_values.same`);
- hypothesis: native round trips in both encodings, native encodings equal the reference's;
- the allow-list: a type that is not allowed does not decode (named in the error), encoding allows it,
  `allow()` allows it, decoding never imports a module;
- refusals: unsupported values raise ValueEncodingError naming the type; truncated, garbage and invalid
  input raises ValueDecodingError (random input too: never another exception, never a crash).

Skipped as a whole until the native codec is built.
"""

import dataclasses
import datetime
import enum
import math
import os
import sys
import typing

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

codec = pytest.importorskip("oxicache.codec", reason="native codec not built yet")

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
if TESTS_DIR not in sys.path:
    sys.path.insert(0, TESTS_DIR)

import codec_reference as ref  # noqa: E402
import codec_values as cv  # noqa: E402  (always as top-level `codec_values`: its type names are in the encodings)
from codec_values import same  # noqa: E402

GOLDEN = cv.load_golden()
CASES = GOLDEN["cases"]
CASE_IDS = [c["name"] for c in CASES]
ENCODINGS = ["binary", "json"]


def case_value(case):
    if case["name"] not in cv.CATALOGUE:
        pytest.skip(f"{case['name']} needs numpy or pydantic")
    return cv.CATALOGUE[case["name"]]


def golden_bytes(case) -> bytes:
    if "binary" in case:
        return bytes.fromhex(case["binary"])
    data = ref.encode_binary(case_value(case))
    assert cv.matches_golden(case, "binary", data)
    return data


def golden_text(case) -> str:
    if "json" in case:
        return case["json"]
    text = ref.encode_json(case_value(case))
    assert cv.matches_golden(case, "json", text)
    return text


def first_difference(got: bytes, want: bytes) -> str:
    i = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
    return (f"bytes differ at offset {i} (len got {len(got)}, want {len(want)}):\n"
            f"  got  ...{got[max(0, i - 8):i + 24].hex()}\n  want ...{want[max(0, i - 8):i + 24].hex()}")


def encoder(name):
    return codec.encode_binary if name == "binary" else codec.encode_json


def decoder(name):
    return codec.decode_binary if name == "binary" else codec.decode_json


def allow_catalogue_types():
    codec.allow(cv.Color, cv.Level, cv.Mode, cv.Perm, cv.Point, cv.Segment, cv.Box, cv.Outer.Inner, cv.Pair, cv.Span)
    if cv.pydantic is not None:
        codec.allow(cv.Config, cv.Job, cv.Holder)


def decodes_or_refuses(decode, data):
    """decode(data): a value, or ValueDecodingError; nothing else (an exception of another type fails)."""
    try:
        return True, decode(data)
    except codec.ValueDecodingError:
        return False, None


# ---------------------------------------------------------------- API


def test_errors_and_functions():
    assert issubclass(codec.ValueEncodingError, TypeError)
    assert issubclass(codec.ValueDecodingError, ValueError)
    assert not issubclass(codec.ValueEncodingError, ValueError)
    assert not issubclass(codec.ValueDecodingError, TypeError)
    assert type(codec.encode_binary([1])) is bytes
    assert type(codec.encode_json([1])) is str
    assert type(codec.encode_json_bytes([1])) is bytes
    with pytest.raises(codec.ValueEncodingError, match="object"):  # the same refusal as encode_json's
        codec.encode_json_bytes(object())
    data = codec.encode_binary({"a": (1, 2.5)})
    for form in (data, bytearray(data), memoryview(data)):  # any bytes-like input
        assert same(codec.decode_binary(form), {"a": (1, 2.5)})


# ---------------------------------------------------------------- golden file


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_native_encodes_golden(case):
    value = case_value(case)
    got = codec.encode_binary(value)
    want = golden_bytes(case)
    assert got == want, first_difference(got, want)
    text = codec.encode_json(value)
    assert text == golden_text(case)
    assert codec.encode_json_bytes(value) == golden_text(case).encode("utf-8")


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_native_decodes_golden(case):
    value = case_value(case)
    allow_catalogue_types()
    got = codec.decode_binary(golden_bytes(case))
    assert same(got, value), f"{got!r} is not {value!r}"
    got = codec.decode_json(golden_text(case))
    assert same(got, value), f"{got!r} is not {value!r}"


def test_nan_bits_are_kept_in_binary():
    for hex16 in ("7ff8000000000000", "fff8000000000000", "7ff8000000000abc"):
        data = b"\xcb" + bytes.fromhex(hex16)
        assert codec.encode_binary(cv.f64(hex16)) == data
        assert codec.encode_binary(codec.decode_binary(data)) == data


# ---------------------------------------------------------------- hypothesis


@pytest.mark.parametrize("name", ENCODINGS)
@given(v=cv.values())
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_native_round_trips(name, v):
    got = decoder(name)(encoder(name)(v))
    assert same(got, v), f"{got!r} is not {v!r}"


@given(v=cv.values())
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_native_matches_reference(v):
    got, want = codec.encode_binary(v), ref.encode_binary(v)
    assert got == want, first_difference(got, want)
    assert codec.encode_json(v) == ref.encode_json(v)
    assert codec.encode_json_bytes(v) == ref.encode_json(v).encode("utf-8")


@given(v=cv.values())
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_native_and_reference_decode_each_other(v):
    allow_catalogue_types()
    assert same(codec.decode_binary(ref.encode_binary(v)), v)
    assert same(codec.decode_json(ref.encode_json(v)), v)
    assert same(ref.decode_binary(codec.encode_binary(v)), v)
    assert same(ref.decode_json(codec.encode_json(v)), v)


def test_surrogate_pair_code_points():
    """"\\ud83d\\udc0d" (two code points) round-trips in binary; JSON $str16 units read back as one character."""
    s = "\ud83d\udc0d"
    assert codec.decode_binary(codec.encode_binary(s)) == s
    assert codec.encode_json(s) == '{"$str16":[55357,56333]}'
    assert codec.decode_json(codec.encode_json(s)) == "🐍"


def test_a_set_of_two_nans():
    value = {float("nan"), float("nan")}
    for name in ENCODINGS:
        got = decoder(name)(encoder(name)(value))
        assert type(got) is set and len(got) == 2 and all(math.isnan(x) for x in got)


def test_lossy_time_zones_come_back_as_fixed_offsets():
    class Custom(datetime.tzinfo):
        def utcoffset(self, dt):
            return datetime.timedelta(hours=2)

    for tz in (Custom(), datetime.timezone(datetime.timedelta(hours=2), "CEST")):
        value = datetime.datetime(2024, 1, 1, 12, tzinfo=tz)
        assert codec.encode_binary(value) == ref.encode_binary(value)
        assert codec.encode_json(value) == ref.encode_json(value)
        for name in ENCODINGS:
            got = decoder(name)(encoder(name)(value))
            assert type(got.tzinfo) is datetime.timezone and got == value
            assert got.utcoffset() == datetime.timedelta(hours=2)


def test_decoded_values_are_fresh_objects():
    shared = [1, 2]
    value = {"a": shared, "b": shared}
    for name in ENCODINGS:
        got = decoder(name)(encoder(name)(value))
        assert got == value and got["a"] is not got["b"]  # references are not kept: two lists
        if cv.np is not None:
            array = decoder(name)(encoder(name)(cv.np.arange(3)))
            array[0] = 42  # writable: the array owns its data


# ---------------------------------------------------------------- allow-list


@dataclasses.dataclass
class NeverEncoded:
    a: int
    b: list


class NeverEnum(enum.Enum):
    ONE = 1


class NeverPair(typing.NamedTuple):
    x: int
    y: int


@dataclasses.dataclass(frozen=True)
class EncodedLater:
    v: float


if cv.pydantic is not None:
    class NeverModel(cv.pydantic.BaseModel):  # at module level: the codec stores only classes it can name
        n: int = 0


def never_encoded_values():
    out = {"dataclass": NeverEncoded(1, [2]), "enum": NeverEnum.ONE, "namedtuple": NeverPair(1, 2)}
    if cv.pydantic is not None:
        out["pydantic"] = NeverModel(n=3)
    return out


@pytest.fixture
def strict():
    """Only the allow-list revives (already-imported plain-data classes do not, docs/value-codec.md)."""
    before = codec.revive_imported(False)
    yield
    codec.revive_imported(before)


def test_types_not_allowed_are_refused_and_named_until_allowed(strict):
    for kind, value in never_encoded_values().items():
        name = ref.type_name(type(value)).replace(":", ".", 1)
        for encoding, data in (("binary", ref.encode_binary(value)), ("json", ref.encode_json(value))):
            with pytest.raises(codec.ValueNotAllowedError) as info:
                decoder(encoding)(data)
            assert name in str(info.value), (kind, encoding)
        codec.allow(type(value))
        assert same(codec.decode_binary(ref.encode_binary(value)), value)
        assert same(codec.decode_json(ref.encode_json(value)), value)


def test_encoding_an_instance_allows_its_class(strict):
    value = EncodedLater(0.5)
    data, text = ref.encode_binary(value), ref.encode_json(value)
    with pytest.raises(codec.ValueDecodingError, match="EncodedLater"):
        codec.decode_binary(data)
    with pytest.raises(codec.ValueDecodingError, match="EncodedLater"):
        codec.decode_json(text)
    assert codec.encode_binary([value]) == ref.encode_binary([value])  # nested: still allows the class
    assert same(codec.decode_binary(data), value)
    assert same(codec.decode_json(text), value)


def test_allow_refuses_other_classes():
    for cls in (int, object, cv.Tag):
        with pytest.raises(TypeError):
            codec.allow(cls)


def test_a_name_of_the_wrong_kind_is_refused():
    codec.allow(cv.Level)
    with pytest.raises(codec.ValueDecodingError, match="codec_values:Level"):
        codec.decode_binary(cv.INVALID_BINARY["ext_dataclass_names_an_enum"])
    with pytest.raises(codec.ValueDecodingError):
        codec.decode_json('{"$namedtuple": "codec_values:Level", "items": [1]}')


NEVER_IMPORTED = ["xml.dom.minidom:Document", "this:Thing", "json.decoder:JSONDecoder", "pydoc:Helper",
                  "oxicache_no_such_module:Thing", "os:PathLike", "subprocess:Popen", "antigravity:Gravity"]


def test_decoding_never_imports():
    before = set(sys.modules)
    for name in NEVER_IMPORTED:
        module = name.partition(":")[0]
        for kind, code, body in (("enum", 15, b"\x01"), ("dataclass", 16, b"\x80"), ("pydantic", 17, b"\x80"),
                                 ("namedtuple", 20, b"\x90")):
            with pytest.raises(codec.ValueNotAllowedError) as info:
                codec.decode_binary(cv._named(code, name, body))
            assert name.replace(":", ".", 1) in str(info.value)
            text = {"enum": f'{{"$enum": "{name}", "value": 1}}', "namedtuple": f'{{"$namedtuple": "{name}", "items": []}}',
                    }.get(kind, f'{{"${kind}": "{name}", "fields": {{}}}}')
            with pytest.raises(codec.ValueNotAllowedError) as info:
                codec.decode_json(text)
            assert name.replace(":", ".", 1) in str(info.value)
        assert module in before or module not in sys.modules, f"decoding imported {module}"
    assert set(sys.modules) == before


# ---------------------------------------------------------------- refusals: encoding

UNSUPPORTED = cv.unsupported_values()


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("name", sorted(UNSUPPORTED))
def test_unsupported_values_raise_value_encoding_error(name, encoding):
    value, type_words = UNSUPPORTED[name]
    with pytest.raises(codec.ValueEncodingError) as info:
        encoder(encoding)(value)
    assert any(word in str(info.value) for word in type_words), f"none of {type_words} in: {info.value}"


def test_depth_limit_boundary():
    for name in ENCODINGS:
        encode, decode = encoder(name), decoder(name)
        assert decode(encode(cv.nested_lists(200))) == cv.nested_lists(200)
        for too_deep in (cv.nested_lists(201), {"a": cv.Box(cv.nested_lists(199))}, cv.nested_lists(100_000)):
            with pytest.raises(codec.ValueEncodingError):
                encode(too_deep)
        encode({"a": cv.Box(cv.nested_lists(198))})
    assert codec.decode_binary(b"\x91" * 200 + b"\xc0") == cv.nested_lists(200)
    assert codec.decode_json("[" * 200 + "null" + "]" * 200) == cv.nested_lists(200)
    for levels in (201, 100_000):
        with pytest.raises(codec.ValueDecodingError):
            codec.decode_binary(b"\x91" * levels + b"\xc0")
        with pytest.raises(codec.ValueDecodingError):
            codec.decode_json("[" * levels + "null" + "]" * levels)
        with pytest.raises(codec.ValueDecodingError):
            codec.decode_binary(b"\xc9\x00\x00\x00\x02\x02\x91" * levels + b"\xc0")  # tuples: ext in ext


def test_parts_of_a_tagged_form_are_not_levels():
    deepest = cv.nested_lists(199)
    inner = deepest
    while inner[0] is not None:
        inner = inner[0]
    inner[0] = (datetime.datetime(2024, 1, 1, tzinfo=cv.PARIS), 1 + 2j, "\ud800", datetime.timedelta(1))
    for name in ENCODINGS:
        assert encoder(name)(deepest) == (ref.encode_binary if name == "binary" else ref.encode_json)(deepest)
        assert same(decoder(name)(encoder(name)(deepest)), deepest)


# ---------------------------------------------------------------- refusals and leniency: decoding


@pytest.mark.parametrize("name", sorted(cv.INVALID_BINARY))
def test_invalid_binary_raises_value_decoding_error(name):
    allow_catalogue_types()
    with pytest.raises(codec.ValueDecodingError):
        codec.decode_binary(cv.INVALID_BINARY[name])


@pytest.mark.parametrize("name", sorted(cv.INVALID_JSON))
def test_invalid_json_raises_value_decoding_error(name):
    allow_catalogue_types()
    with pytest.raises(codec.ValueDecodingError):
        codec.decode_json(cv.INVALID_JSON[name])


@pytest.mark.parametrize("name", sorted(cv.NONCANONICAL_BINARY))
def test_other_messagepack_forms_decode(name):
    data, value = cv.NONCANONICAL_BINARY[name]
    assert same(ref.decode_binary(data), value)
    assert same(codec.decode_binary(data), value)


@pytest.mark.parametrize("name", sorted(cv.NONCANONICAL_JSON))
def test_lenient_json_decodes(name):
    text, value = cv.NONCANONICAL_JSON[name]
    assert same(ref.decode_json(text), value)
    assert same(codec.decode_json(text), value)


def test_decode_binary_takes_bytes_like_only():
    with pytest.raises(TypeError):
        codec.decode_binary("\xc0")


SMALL_CASES = [c for c in CASES if "binary" in c and len(c["binary"]) <= 600]


def test_every_truncation_of_golden_binary_is_refused():
    allow_catalogue_types()
    count = 0
    for case in SMALL_CASES:
        data = bytes.fromhex(case["binary"])
        for end in range(len(data)):
            with pytest.raises(codec.ValueDecodingError):
                codec.decode_binary(data[:end])
            count += 1
        with pytest.raises(codec.ValueDecodingError):
            codec.decode_binary(data + b"\xc0")
    assert count > 2000


def test_prefixes_of_golden_json_decode_or_are_refused():
    allow_catalogue_types()
    for case in CASES:
        if "json" not in case or case["name"] not in cv.CATALOGUE:
            continue
        text = case["json"]
        for end in range(0, len(text), max(1, len(text) // 64)):
            ok, value = decodes_or_refuses(codec.decode_json, text[:end])
            if ok:
                ok_ref, value_ref = decodes_or_refuses_ref(ref.decode_json, text[:end])
                assert not ok_ref or same(value, value_ref)
        with pytest.raises(codec.ValueDecodingError):
            codec.decode_json(text + " x")


def decodes_or_refuses_ref(decode, data):
    try:
        return True, decode(data)
    except ref.ValueDecodingError:
        return False, None


def agree_with_reference(name, data):
    """Random input: native decodes it or raises ValueDecodingError; when both decode it, they agree."""
    ok, value = decodes_or_refuses(decoder(name), data)
    if ok:
        ok_ref, value_ref = decodes_or_refuses_ref(ref.decode_binary if name == "binary" else ref.decode_json, data)
        assert not ok_ref or same(value, value_ref), f"native {value!r}, reference {value_ref!r}"


@given(st.binary(max_size=64))
@example(b"\xc9\x00\x00\x00\x00\x10")
@example(b"\xdd\x7f\xff\xff\xff")
def test_random_bytes(data):
    agree_with_reference("binary", data)


GOLDEN_SAMPLES = [c for c in SMALL_CASES if c["name"] in cv.CATALOGUE]


@given(case=st.sampled_from(GOLDEN_SAMPLES), data=st.data())
def test_mutated_binary(case, data):
    allow_catalogue_types()
    raw = bytearray.fromhex(case["binary"])
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    agree_with_reference("binary", bytes(raw[:cut]) + data.draw(st.binary(max_size=4)))


@given(st.text(max_size=64) | st.text("[]{}\",:$0123456789.-eEnultrfa \\", max_size=64))
def test_random_text(text):
    agree_with_reference("json", text)


@given(case=st.sampled_from([c for c in GOLDEN_SAMPLES if "json" in c]), data=st.data())
def test_mutated_json(case, data):
    allow_catalogue_types()
    text = list(case["json"])
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(text) - 1))
        text[i] = data.draw(st.sampled_from('[]{}",:$0123456789.-eEnultrfa \\x'))
    agree_with_reference("json", "".join(text))
