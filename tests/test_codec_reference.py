"""The value codec's pure-Python reference (tests/codec_reference.py) against the spec and the golden file.

Runs without the native module: the reference reproduces tests/data/golden_codec.json, decodes what it
encodes (catalogue and hypothesis values), refuses what the spec refuses, and its binary output is
valid MessagePack (checked with the `msgpack` package when it is installed; it is not a dependency).
"""

import os
import struct
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
if TESTS_DIR not in sys.path:
    sys.path.insert(0, TESTS_DIR)

import codec_reference as ref  # noqa: E402
import codec_values as cv  # noqa: E402  (always as top-level `codec_values`: its type names are in the encodings)
from codec_values import same  # noqa: E402

GOLDEN = cv.load_golden()
CASES = GOLDEN["cases"]
CASE_IDS = [c["name"] for c in CASES]


def case_value(case):
    if case["name"] not in cv.CATALOGUE:
        pytest.skip(f"{case['name']} needs numpy or pydantic")
    return cv.CATALOGUE[case["name"]]


def golden_bytes(case) -> bytes:
    return bytes.fromhex(case["binary"]) if "binary" in case else ref.encode_binary(case_value(case))


def golden_text(case) -> str:
    return case["json"] if "json" in case else ref.encode_json(case_value(case))


# ---------------------------------------------------------------- the golden file


def test_golden_file_shape():
    assert GOLDEN["codec_version"] == 1
    assert len(CASE_IDS) == len(set(CASE_IDS)) >= 150
    assert set(cv.CATALOGUE) <= set(CASE_IDS), "catalogue values missing from the golden file: regenerate it"


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_reference_reproduces_golden(case):
    value = case_value(case)
    assert cv.matches_golden(case, "binary", ref.encode_binary(value))
    assert cv.matches_golden(case, "json", ref.encode_json(value))


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_reference_decodes_golden(case):
    value = case_value(case)
    assert same(ref.decode_binary(golden_bytes(case)), value)
    assert same(ref.decode_json(golden_text(case)), value)


def test_golden_covers_every_extension_and_tag(monkeypatch):
    exts, tags = set(), set()
    original = ref.b_ext_value

    def recording(code, payload, depth):
        exts.add(code)
        return original(code, payload, depth)

    monkeypatch.setattr(ref, "b_ext_value", recording)
    for case in CASES:
        if case["name"] in cv.CATALOGUE:
            ref.decode_binary(golden_bytes(case))
            tags.update(t for t in ref.TAG_KEYS if f'"{t}"' in golden_text(case))
    assert exts == set(ref.EXT.values())
    assert tags == set(ref.TAG_KEYS)


def test_golden_is_independent_of_hash_seed():
    """Set iteration order is in the encodings: the catalogue's sets must not depend on PYTHONHASHSEED."""
    script = os.path.join(TESTS_DIR, "data", "make_golden_codec.py")
    for seed in ("0", "1", "4242"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        proc = subprocess.run([sys.executable, script, "--check"], env=env, capture_output=True, text=True, timeout=240)
        assert proc.returncode == 0, f"PYTHONHASHSEED={seed}: {proc.stderr}"


def test_exact_forms_spot_checks():
    assert ref.encode_binary(None) + ref.encode_binary(True) + ref.encode_binary(False) == b"\xc0\xc3\xc2"
    assert ref.encode_binary(-2**63) == b"\xd3\x80" + b"\x00" * 7
    assert ref.encode_binary(2**64) == b"\xc9\x00\x00\x00\x09\x01\x01" + b"\x00" * 8
    assert ref.encode_binary(-(2**71)) == b"\xc9\x00\x00\x00\x09\x01\x80" + b"\x00" * 8  # minimal: 9 bytes
    assert ref.encode_binary(...) == b"\xc9\x00\x00\x00\x00\x05"
    assert ref.encode_binary((1,)) == b"\xc9\x00\x00\x00\x02\x02\x91\x01"
    assert ref.encode_binary("\ud800") == b"\xc9\x00\x00\x00\x03\x15\xed\xa0\x80"
    assert ref.encode_binary(1.5) == b"\xcb" + struct.pack(">d", 1.5)
    assert ref.encode_json({"a": [1, 2.0, None], "b": "é\n"}) == '{"a":[1,2.0,null],"b":"é\\n"}'
    assert ref.encode_json([1e300, 1e-7, -0.0, 1e16]) == "[1e+300,1e-07,-0.0,1e+16]"
    assert ref.encode_json({"$x": 1}) == '{"$dict":[["$x",1]]}'
    assert ref.encode_json(2**64) == '{"$int":"18446744073709551616"}'
    assert ref.encode_json(-(2**63)) == "-9223372036854775808"


# ---------------------------------------------------------------- round trips


@given(cv.values())
def test_reference_round_trips(v):
    assert same(ref.decode_binary(ref.encode_binary(v)), v)
    assert same(ref.decode_json(ref.encode_json(v)), v)
    ref.encode_json(v).encode("utf-8")  # never a lone surrogate in the text


def test_surrogate_pair_code_points():
    """"\\ud83d\\udc0d" (two code points) round-trips in binary; JSON $str16 units read back as one character."""
    s = "\ud83d\udc0d"
    assert ref.decode_binary(ref.encode_binary(s)) == s
    assert ref.encode_json(s) == '{"$str16":[55357,56333]}'
    assert ref.decode_json(ref.encode_json(s)) == "🐍"


def test_lossy_time_zones_come_back_as_fixed_offsets():
    import datetime

    class Custom(datetime.tzinfo):
        def utcoffset(self, dt):
            return datetime.timedelta(hours=2)

    for tz in (Custom(), datetime.timezone(datetime.timedelta(hours=2), "CEST")):
        value = datetime.datetime(2024, 1, 1, 12, tzinfo=tz)
        for got in (ref.decode_binary(ref.encode_binary(value)), ref.decode_json(ref.encode_json(value))):
            assert type(got.tzinfo) is datetime.timezone and got == value
            assert got.utcoffset() == datetime.timedelta(hours=2) and got.tzinfo.tzname(None) == "UTC+02:00"


def test_depth_limit_boundary():
    for encode, decode in ((ref.encode_binary, ref.decode_binary), (ref.encode_json, ref.decode_json)):
        assert decode(encode(cv.nested_lists(200))) == cv.nested_lists(200)
        with pytest.raises(TypeError, match="200"):
            encode(cv.nested_lists(201))
        with pytest.raises(TypeError):
            encode({"a": cv.Box(cv.nested_lists(199))})  # a field is a level, the dict value another
        encode({"a": cv.Box(cv.nested_lists(198))})
    assert ref.decode_binary(b"\x91" * 200 + b"\xc0") == cv.nested_lists(200)
    assert ref.decode_json("[" * 200 + "null" + "]" * 200) == cv.nested_lists(200)


def test_parts_of_a_tagged_form_are_not_levels():
    import datetime

    deepest = cv.nested_lists(199)
    inner = deepest
    while inner[0] is not None:
        inner = inner[0]
    inner[0] = (datetime.datetime(2024, 1, 1, tzinfo=cv.PARIS), 1 + 2j, "\ud800", datetime.timedelta(1))
    for encode, decode in ((ref.encode_binary, ref.decode_binary), (ref.encode_json, ref.decode_json)):
        assert same(decode(encode(deepest)), deepest)


# ---------------------------------------------------------------- refusals


class NotAllowedYet:
    pass


UNSUPPORTED = cv.unsupported_values()


@pytest.mark.parametrize("name", sorted(UNSUPPORTED))
def test_reference_refuses_unsupported_values(name):
    value, type_words = UNSUPPORTED[name]
    for encode in (ref.encode_binary, ref.encode_json):
        with pytest.raises(TypeError) as info:
            encode(value)
        assert type_words[0] in str(info.value)  # the reference names the type itself


@pytest.mark.parametrize("name", sorted(cv.INVALID_BINARY))
def test_reference_refuses_invalid_binary(name):
    ref.allow(cv.Level, cv.Point, cv.Pair)
    with pytest.raises(ValueError):
        ref.decode_binary(cv.INVALID_BINARY[name])


@pytest.mark.parametrize("name", sorted(cv.INVALID_JSON))
def test_reference_refuses_invalid_json(name):
    ref.allow(cv.Level, cv.Point, cv.Pair)
    with pytest.raises(ValueError):
        ref.decode_json(cv.INVALID_JSON[name])


@pytest.mark.parametrize("name", sorted(cv.NONCANONICAL_BINARY))
def test_reference_decodes_other_messagepack_forms(name):
    data, value = cv.NONCANONICAL_BINARY[name]
    assert same(ref.decode_binary(data), value)


@pytest.mark.parametrize("name", sorted(cv.NONCANONICAL_JSON))
def test_reference_decodes_lenient_json(name):
    text, value = cv.NONCANONICAL_JSON[name]
    assert same(ref.decode_json(text), value)


@given(st.binary(max_size=64) | st.text(max_size=64))
def test_reference_decoders_raise_only_value_decoding_error(data):
    decode = ref.decode_binary if isinstance(data, bytes) else ref.decode_json
    try:
        decode(data)
    except ref.ValueDecodingError:
        pass


def test_not_allowed_types_are_named_and_never_imported():
    name = "codec_values_nowhere:Point"
    with pytest.raises(ValueError, match=name):
        ref.decode_binary(cv.INVALID_BINARY["ext_dataclass_not_allowed"])
    with pytest.raises(ValueError, match=name):
        ref.decode_json(cv.INVALID_JSON["dataclass_not_allowed"])
    assert "codec_values_nowhere" not in sys.modules


def test_allow_list():
    import dataclasses

    @dataclasses.dataclass
    class Local:
        a: int

    data = ref.encode_binary(Local(1))  # encoding allows the class...
    del ref.REGISTRY[ref.type_name(Local)]  # ...forget it to see the refusal
    with pytest.raises(ValueError, match=r"test_codec_reference:test_allow_list\.<locals>\.Local"):
        ref.decode_binary(data)
    ref.allow(Local)
    assert ref.decode_binary(data) == Local(1)
    with pytest.raises(TypeError):
        ref.allow(NotAllowedYet)


# ---------------------------------------------------------------- valid MessagePack (optional `msgpack` check)


def test_binary_is_valid_messagepack():
    msgpack = pytest.importorskip("msgpack", reason="the msgpack package is not installed (optional check)")
    payload_exts = {2, 3, 4, 8, 9, 10, 11, 12, 14, 15, 16, 17, 18, 19, 20}  # payloads that are MessagePack too

    def unpack(data):
        return msgpack.unpackb(data, ext_hook=ext_hook, strict_map_key=False, raw=False)

    def ext_hook(code, data):
        assert code in ref.EXT.values()
        if code in payload_exts:
            unpack(data)
        return msgpack.ExtType(code, data)

    def has_ext(obj):
        if isinstance(obj, msgpack.ExtType):
            return True
        if isinstance(obj, dict):
            return any(has_ext(k) or has_ext(v) for k, v in obj.items())
        return isinstance(obj, list) and any(map(has_ext, obj))

    plain = 0
    for case in CASES:
        data = golden_bytes(case)
        obj = unpack(data)
        if not has_ext(obj):  # msgpack writes the same bytes for plain values
            assert msgpack.packb(obj) == data, case["name"]
            plain += 1
    assert plain >= 50
