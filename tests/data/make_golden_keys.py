"""Regenerate tests/data/golden_keys.json from tests/key_reference.py.

    python3 tests/data/make_golden_keys.py          # rewrite the file
    python3 tests/data/make_golden_keys.py --check  # exit 1 if the file is out of date

Each case is a name and a Python expression evaluating to `(func, inputs)` in `golden_types.namespace()`.
The golden file pins key scheme version 2: if a key changes, the scheme changed, and KEY_SCHEME_VERSION
must be bumped (do not just regenerate). Adding cases is fine.
"""

import json
import os
import sys

DATA_DIR = os.path.dirname(os.path.abspath(__file__))
TESTS_DIR = os.path.dirname(DATA_DIR)
GOLDEN_PATH = os.path.join(DATA_DIR, "golden_keys.json")
sys.path.insert(0, TESTS_DIR)

import golden_types  # noqa: E402
import key_reference  # noqa: E402

CASES = [
    # --- None, bools, Ellipsis
    ("none", '("f", {"x": None})'),
    ("bools", '("f", {"t": True, "f": False})'),
    ("ellipsis", '("f", {"x": ...})'),
    ("empty_inputs", '("mod.noargs", {})'),
    ("unicode_func_name", '("módulo.函数", {"x": 1})'),
    # --- int: sign handling and byte-count boundaries
    ("int_zero", '("f", {"x": 0})'),
    ("int_small", '("f", {"a": 1, "b": -1, "c": 127, "d": -128})'),
    ("int_byte_boundaries", '("f", {"a": 128, "b": -129, "c": 255, "d": 256, "e": 32767, "f": -32768})'),
    ("int_2_31", '("f", {"x": 2**31, "y": -2**31})'),
    ("int_2_63_minus_1", '("f", {"x": 2**63 - 1})'),
    ("int_2_63", '("f", {"x": 2**63})'),
    ("int_minus_2_63", '("f", {"x": -2**63})'),
    ("int_minus_2_63_minus_1", '("f", {"x": -2**63 - 1})'),
    ("int_2_64", '("f", {"x": 2**64, "y": 2**64 - 1, "z": -2**64})'),
    ("int_huge", '("f", {"x": 10**40, "y": -(10**40), "z": 2**1000 + 12345})'),
    # --- float
    ("float_simple", '("f", {"a": 1.0, "b": -1.5, "c": 0.1})'),
    ("float_zero_and_negative_zero", '("f", {"pos": 0.0, "neg": -0.0})'),
    ("float_extremes", '("f", {"max": 1.7976931348623157e308, "tiny": 5e-324, "eps": 2.220446049250313e-16})'),
    ("float_inf", '("f", {"inf": math.inf, "ninf": -math.inf})'),
    ("float_nan", '("f", {"x": math.nan})'),
    ("float_negative_nan", '("f", {"x": -math.nan})'),
    ("float_nan_payload", '("f", {"x": f64("7ff0000000000001"), "y": f64("fff8000000000abc")})'),
    # --- complex
    ("complex", '("f", {"a": 1 + 2j, "b": 0j, "c": complex(-0.0, -1e300)})'),
    ("complex_nan_inf", '("f", {"x": complex(math.nan, math.inf), "y": complex(-math.nan, 0.0)})'),
    # --- str / bytes / bytearray
    ("str_empty", '("f", {"s": ""})'),
    ("str_ascii", '("f", {"s": "hello world"})'),
    ("str_unicode", '("f", {"s": "ünïcødé 日本語 🐍", "nul": "a\\x00b"})'),
    ("str_lone_surrogates", '("f", {"hi": "\\ud800", "lo": "a\\udfffb"})'),
    ("str_200_chars", '("f", {"s": "x" * 200})'),
    ("bytes", '("f", {"empty": b"", "b": b"\\x00\\xffabc", "all": bytes(range(256))})'),
    ("bytes_16384", '("f", {"b": bytes(16384)})'),
    ("bytearray", '("f", {"empty": bytearray(), "b": bytearray(b"abc")})'),
    ("bytes_vs_bytearray", '("f", {"x": [b"abc", bytearray(b"abc")]})'),
    # --- containers
    ("empty_containers", '("f", {"t": (), "l": [], "d": {}, "s": set(), "z": frozenset()})'),
    ("tuple", '("f", {"x": (1, "a", None)})'),
    ("list_same_items_as_tuple", '("f", {"x": [1, "a", None]})'),
    ("nested", '("f", {"x": [1, [2, (3, {"a": {4, 5}, "b": frozenset({(6, 7)})})], [[[]]]]})'),
    ("dict_int_key", '("f", {"d": {1: "a"}})'),
    ("dict_str_key", '("f", {"d": {"1": "a"}})'),
    ("dict_float_key", '("f", {"d": {1.5: "a"}})'),
    ("dict_mixed_keys", '("f", {"d": {1: "int", "1": "str", 2.5: "float", None: "none", (1, 2): "tuple",'
     ' b"1": "bytes", frozenset({3}): "frozenset", False: "bool"}})'),
    ("dict_order_ab", '("f", {"d": {"a": 1, "b": 2, "c": [3]}})'),
    ("dict_order_cba", '("f", {"d": {"c": [3], "b": 2, "a": 1}})'),
    ("inputs_order_reversed", '("f", {"z": 1, "y": 2, "x": 3})'),
    ("args_and_kwargs", '("mod.f", {"args": (1, 2.0, "three"), "kwargs": {"k": 1, "j": [None]}, "x": 0})'),
    ("set_of_ints", '("f", {"s": {3, 1, 2, -5, 2**70}})'),
    ("set_of_strings", '("f", {"s": {"apple", "banana", "cherry", "date", "elderberry", "fig", "grape",'
     ' "honeydew", "kiwi", "lemon", "mango", "nectarine", "orange", "papaya", "quince", "raspberry"}})'),
    ("frozenset_of_strings", '("f", {"s": frozenset({"alpha", "beta", "gamma", "delta", "epsilon", "zeta",'
     ' "eta", "theta", "iota", "kappa", "lambda", "mu"})})'),
    ("set_vs_frozenset", '("f", {"x": [{"a", "b"}, frozenset({"a", "b"})]})'),
    ("set_mixed", '("f", {"s": {1, "1", 1.5, None, b"x", (2, "y"), frozenset({"p", "q"}), False}})'),
    ("dict_with_string_sets", '("f", {"d": {"k" + str(i): {"v" + str(j) for j in range(i)} for i in range(8)}})'),
    # --- datetime family
    ("datetime_naive", '("f", {"x": dt(2024, 1, 2, 3, 4, 5, 678901)})'),
    ("datetime_naive_no_micro", '("f", {"x": dt(1999, 12, 31, 23, 59, 59)})'),
    ("datetime_utc", '("f", {"x": dt(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)})'),
    ("datetime_offset", '("f", {"x": dt(2024, 6, 1, 12, 0, tzinfo=timezone(timedelta(hours=5, minutes=30)))})'),
    ("date", '("f", {"x": datetime.date(2024, 2, 29)})'),
    ("date_vs_datetime_midnight", '("f", {"x": [datetime.date(2024, 1, 1), dt(2024, 1, 1)]})'),
    ("time", '("f", {"a": datetime.time(13, 45, 30, 123), "b": datetime.time(0, 0),'
     ' "c": datetime.time(1, 2, tzinfo=timezone.utc)})'),
    ("timedelta", '("f", {"x": timedelta(days=1, seconds=2, microseconds=3), "zero": timedelta(0)})'),
    ("timedelta_negative", '("f", {"a": timedelta(days=-1), "b": timedelta(microseconds=-1),'
     ' "c": timedelta(days=-999999999)})'),
    # --- Decimal, UUID, paths
    ("decimal_1_0", '("f", {"x": Decimal("1.0")})'),
    ("decimal_1_00", '("f", {"x": Decimal("1.00")})'),
    ("decimal_special", '("f", {"nan": Decimal("NaN"), "snan": Decimal("sNaN"), "negzero": Decimal("-0"),'
     ' "inf": Decimal("-Infinity"), "exp": Decimal("1E+3"),'
     ' "long": Decimal("3.14159265358979323846264338327950288")})'),
    ("uuid", '("f", {"x": UUID("12345678-1234-5678-1234-567812345678"), "nil": UUID(int=0)})'),
    ("pure_posix_path", '("f", {"p": pathlib.PurePosixPath("/data/in/file.csv")})'),
    ("path", '("f", {"p": pathlib.Path("relative/dir/x.txt")})'),
    ("pure_windows_path", '("f", {"p": pathlib.PureWindowsPath("C:\\\\Users\\\\me\\\\x.txt")})'),
    # --- Enum, classes
    ("enum", '("f", {"a": gt.Color.RED, "b": gt.Color.GREEN})'),
    ("int_enum", '("f", {"x": gt.Level.HIGH})'),
    ("str_enum_like", '("f", {"x": gt.Mode.READ})'),
    ("int_flag_member", '("f", {"x": gt.Perm.W})'),
    ("class_builtin", '("f", {"x": int, "y": type(None)})'),
    ("class_user", '("f", {"x": gt.Point, "y": gt.Outer.Inner, "z": gt.Color, "w": gt.Config})'),
    ("class_with_cache_key_method", '("f", {"x": gt.Versioned})'),
    # --- numpy arrays
    ("ndarray_int64_2d", '("f", {"a": np.arange(6, dtype="<i8").reshape(2, 3)})'),
    ("ndarray_float64_0d", '("f", {"a": np.array(3.5, dtype="<f8")})'),
    ("ndarray_float32_empty", '("f", {"a": np.zeros((0, 3), dtype="<f4")})'),
    ("ndarray_bool", '("f", {"a": np.array([True, False, True])})'),
    ("ndarray_uint8_3d", '("f", {"a": np.arange(24, dtype="u1").reshape(2, 3, 4)})'),
    ("ndarray_big_endian", '("f", {"a": np.array([1, 2, 3], dtype=">i4")})'),
    ("ndarray_fortran_order", '("f", {"a": np.asfortranarray(np.arange(6, dtype="<i8").reshape(2, 3))})'),
    ("ndarray_non_contiguous", '("f", {"a": np.arange(12, dtype="<i2").reshape(3, 4)[:, ::2]})'),
    ("ndarray_complex128", '("f", {"a": np.array([1 + 2j, -0.0j], dtype="<c16")})'),
    ("ndarray_unicode", '("f", {"a": np.array(["ab", "ü"], dtype="<U2")})'),
    ("ndarray_bytes", '("f", {"a": np.array([b"ab", b"c"], dtype="S2")})'),
    ("ndarray_datetime64", '("f", {"a": np.array(["2024-01-01T00:00:00"], dtype="<M8[s]")})'),
    ("ndarray_structured", '("f", {"a": np.array([(1, 2.5), (3, -1.0)], dtype=[("x", "<i4"), ("y", "<f8")])})'),
    ("ndarray_object", '("f", {"a": np.array([1, "a", None, (1, 2), 2.5], dtype=object)})'),
    ("ndarray_object_2d", '("f", {"a": np.array([[1, "x"], [{"k": 1}, gt.Point(1, 2)]], dtype=object)})'),
    ("ndarray_object_0d", '("f", {"a": np.array(None, dtype=object)})'),
    # --- numpy scalars
    ("np_float64", '("f", {"x": np.float64(1.0)})'),
    ("np_scalars", '("f", {"i32": np.int32(-5), "u8": np.uint8(255), "f32": np.float32(0.1), "b": np.bool_(True),'
     ' "c64": np.complex64(1 - 1j), "i64": np.int64(2**62)})'),
    ("np_scalars_subclassing_builtins", '("f", {"f": np.float64(-0.0), "c": np.complex128(1j), "s": np.str_(""),'
     ' "b": np.bytes_(b"")})'),
    ("np_str_and_bytes_scalars", '("f", {"s": np.str_("hé"), "b": np.bytes_(b"ab")})'),
    ("np_datetime64", '("f", {"d": np.datetime64("2024-01-01", "D"), "td": np.timedelta64(-3, "s")})'),
    ("np_structured_scalar", '("f", {"v": np.array([(7, 0.5)], dtype=[("x", "<i4"), ("y", "<f8")])[0]})'),
    # --- dataclasses and pydantic
    ("dataclass", '("f", {"p": gt.Point(1, 2)})'),
    ("dataclass_nested", '("f", {"s": gt.Segment(gt.Point(0, 0), gt.Point(3, 4), "diag", ["a", {"b"}])})'),
    ("pydantic_model", '("f", {"c": gt.Config(name="small", size=3)})'),
    ("pydantic_model_extras", '("f", {"c": gt.Config(name="small", size=3, colour="red", weights=[1.5, 2])})'),
    ("pydantic_nested", '("f", {"j": gt.Job(config=gt.Config(name="n", extra_flag=True), tags=["x", "y"],'
     ' origin=gt.Point(5, 6))})'),
    # --- __cache_key__
    ("cache_key", '("f", {"m": gt.Versioned("model", 3)})'),
    ("cache_key_beats_str_subclass", '("f", {"t": gt.KeyedTag("HeLLo")})'),
    # --- subclasses of builtins
    ("ordered_dict", '("f", {"d": OrderedDict([("b", 1), ("a", 2)])})'),
    ("defaultdict_and_counter", '("f", {"dd": collections.defaultdict(int, {"a": 1}),'
     ' "c": collections.Counter("abracadabra")})'),
    ("namedtuple", '("f", {"p": gt.Pair(1, "two")})'),
    ("str_subclass", '("f", {"s": gt.Tag("hello")})'),
    ("other_builtin_subclasses", '("f", {"i": gt.MyInt(-7), "x": gt.MyFloat(-0.0), "l": gt.MyList([1, 2]),'
     ' "b": gt.MyBytes(b"zz")})'),
]


def build() -> dict:
    cases = []
    names = set()
    for name, expr in CASES:
        assert name not in names, name
        names.add(name)
        func, inputs = eval(expr, golden_types.namespace())
        kb = key_reference.key_bytes(func, inputs)
        cases.append({"name": name, "expr": expr, "key_bytes": kb.hex(), "key": f"{key_reference.digest_key(kb):032x}"})
    return {
        "scheme_version": 2,
        "generator": "tests/data/make_golden_keys.py (from tests/key_reference.py)",
        "cases": cases,
    }


def main() -> int:
    text = json.dumps(build(), indent=1, ensure_ascii=True) + "\n"
    if "--check" in sys.argv:
        with open(GOLDEN_PATH, encoding="utf-8") as fh:
            if fh.read() != text:
                print("golden_keys.json is out of date", file=sys.stderr)
                return 1
        return 0
    with open(GOLDEN_PATH, "w", encoding="utf-8") as fh:
        fh.write(text)
    print(f"wrote {len(CASES)} cases to {GOLDEN_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
