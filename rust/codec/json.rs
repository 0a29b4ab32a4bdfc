//! The JSON encoding: plain JSON where JSON can say it, tagged objects (`{"$tuple": [...]}`) where it
//! cannot (docs/value-codec.md). Written as Python's `json.dumps(..., separators=(",", ":"),
//! ensure_ascii=False)` would write it; read with serde_json straight into Python objects.

use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyFrozenSet, PyList, PySet, PyString, PyTuple};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::{decode_error, EncodeResult, Kind, MAX_DEPTH};

// ---- writing ---------------------------------------------------------------------------------------

/// Bytes that need an escape in a JSON string: control characters, `"` and `\\`.
static NEEDS_ESCAPE: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        table[i] = true;
        i += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    if !bytes.iter().any(|&b| NEEDS_ESCAPE[b as usize]) {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !NEEDS_ESCAPE[b as usize] {
            continue;
        }
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            _ => b"",
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            out.extend_from_slice(format!("\\u{:04x}", b).as_bytes());
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Python's `repr(float)` for a finite value: the shortest digits that round-trip (from ryu), laid out
/// by Python's rules (exponent form when the decimal point is more than 16 places right or 4 left of
/// the first digit: `1e+16`, `1e-05`, `0.0001`, `123.0`).
fn write_f64(out: &mut Vec<u8>, v: f64) {
    let mut buffer = ryu::Buffer::new();
    let text = buffer.format_finite(v);
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match text.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (text, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    // value = 0.DIGITS x 10^decpt, DIGITS without leading or trailing zeros (at most 17 + padding)
    let mut all = [0u8; 40];
    let total = int_part.len() + frac_part.len();
    all[..int_part.len()].copy_from_slice(int_part.as_bytes());
    all[int_part.len()..total].copy_from_slice(frac_part.as_bytes());
    let leading = all[..total].iter().take_while(|&&d| d == b'0').count();
    let trailing = all[leading..total].iter().rev().take_while(|&&d| d == b'0').count();
    let digits = &all[leading..total - trailing];
    let decpt = int_part.len() as i32 + exponent - leading as i32;
    if negative {
        out.push(b'-');
    }
    if digits.is_empty() {
        out.extend_from_slice(b"0.0");
        return;
    }
    let n = digits.len() as i32;
    if decpt <= -4 || decpt > 16 {
        out.push(digits[0]);
        if n > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..]);
        }
        let e = decpt - 1;
        out.extend_from_slice(if e < 0 { b"e-" } else { b"e+" });
        if e.abs() < 10 {
            out.push(b'0');
        }
        out.extend_from_slice(itoa::Buffer::new().format(e.abs()).as_bytes());
    } else if decpt <= 0 {
        out.extend_from_slice(b"0.");
        out.extend(std::iter::repeat_n(b'0', (-decpt) as usize));
        out.extend_from_slice(digits);
    } else if decpt >= n {
        out.extend_from_slice(digits);
        out.extend(std::iter::repeat_n(b'0', (decpt - n) as usize));
        out.extend_from_slice(b".0");
    } else {
        out.extend_from_slice(&digits[..decpt as usize]);
        out.push(b'.');
        out.extend_from_slice(&digits[decpt as usize..]);
    }
}

/// A float: its repr, or a `$float` tag for NaN and the infinities (JSON has no literal for them).
fn write_float(out: &mut Vec<u8>, v: f64) {
    if v.is_finite() {
        write_f64(out, v);
    } else {
        open_tag(out, "float");
        write_str(
            out,
            if v.is_nan() {
                "nan"
            } else if v > 0.0 {
                "inf"
            } else {
                "-inf"
            },
        );
        out.push(b'}');
    }
}

/// A str value: a JSON string, or `{"$str16": [UTF-16 code units]}` when it holds lone surrogates.
fn write_str_value(out: &mut Vec<u8>, s: &Bound<'_, PyString>) -> EncodeResult {
    match s.to_str() {
        Ok(text) => write_str(out, text),
        Err(_) => {
            let units: Vec<u8> = s.call_method1("encode", ("utf-16-le", "surrogatepass"))?.extract()?;
            open_tag(out, "str16");
            out.push(b'[');
            for (i, pair) in units.chunks_exact(2).enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                let unit = u16::from_le_bytes([pair[0], pair[1]]);
                out.extend_from_slice(itoa::Buffer::new().format(unit).as_bytes());
            }
            out.extend_from_slice(b"]}");
        }
    }
    Ok(())
}

/// `{"$tag":` (the caller writes the value and the closing brace).
fn open_tag(out: &mut Vec<u8>, tag: &str) {
    out.extend_from_slice(b"{\"$");
    out.extend_from_slice(tag.as_bytes());
    out.extend_from_slice(b"\":");
}

fn write_b64(out: &mut Vec<u8>, tag: &str, bytes: &[u8]) {
    open_tag(out, tag);
    write_str(out, &BASE64.encode(bytes));
    out.push(b'}');
}

fn write_items<'py>(
    out: &mut Vec<u8>,
    container: &Bound<'py, PyAny>,
    items: impl Iterator<Item = Bound<'py, PyAny>>,
    depth: usize,
) -> EncodeResult {
    out.push(b'[');
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        encode(&item, out, depth + 1).map_err(|e| e.inside(|| format!("[{i}]")).through(container))?;
    }
    out.push(b']');
    Ok(())
}

/// A plain key: an exact str, valid UTF-8, not starting with "$" (so the object can't read as a tag).
fn plain_key<'a>(k: &'a Bound<'_, PyAny>) -> Option<&'a str> {
    if !k.is_exact_instance_of::<PyString>() {
        return None;
    }
    // SAFETY: exact str; the borrowed UTF-8 lives as long as the str.
    let s = unsafe { k.cast_unchecked::<PyString>() }.to_str().ok()?;
    (!s.starts_with('$')).then_some(s)
}

fn write_dict(out: &mut Vec<u8>, dict: &Bound<'_, PyDict>, depth: usize) -> EncodeResult {
    // Written as a plain object in one pass; a key that can't be a plain key rewinds to the tagged form.
    let start = out.len();
    out.push(b'{');
    let mut plain = true;
    for (i, (k, v)) in dict.iter().enumerate() {
        let Some(key) = plain_key(&k) else {
            plain = false;
            break;
        };
        if i > 0 {
            out.push(b',');
        }
        write_str(out, key);
        out.push(b':');
        encode(&v, out, depth + 1).map_err(|e| e.inside(|| format!("[{key:?}]")).through(dict))?;
    }
    if plain {
        out.push(b'}');
        return Ok(());
    }
    out.truncate(start);
    open_tag(out, "dict");
    out.push(b'[');
    for (i, (k, v)) in dict.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'[');
        encode(&k, out, depth + 1).map_err(|e| e.inside(|| " (a dict key)".into()).through(dict))?;
        out.push(b',');
        encode(&v, out, depth + 1).map_err(|e| {
            e.inside(|| format!("[{}]", k.repr().map(|r| r.to_string()).unwrap_or_default()))
                .through(dict)
        })?;
        out.push(b']');
    }
    out.extend_from_slice(b"]}");
    Ok(())
}

fn write_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => write_str(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

/// Appends the JSON encoding of `obj` to `out`.
pub fn encode(obj: &Bound<'_, PyAny>, out: &mut Vec<u8>, depth: usize) -> EncodeResult {
    if depth > MAX_DEPTH {
        return Err(super::too_deep());
    }
    match super::classify(obj)? {
        Kind::None => out.extend_from_slice(b"null"),
        Kind::Bool => out.extend_from_slice(if obj.is_truthy()? { b"true" } else { b"false" }),
        Kind::Int => {
            if let Ok(v) = obj.extract::<i64>() {
                out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
            } else if let Ok(v) = obj.extract::<u64>() {
                out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
            } else {
                open_tag(out, "int");
                write_str(out, &obj.str()?.to_string());
                out.push(b'}');
            }
        }
        Kind::Float => write_float(out, unsafe { ffi::PyFloat_AS_DOUBLE(obj.as_ptr()) }),
        Kind::Str => write_str_value(out, unsafe { obj.cast_unchecked::<PyString>() })?,
        Kind::Bytes => write_b64(out, "bytes", unsafe { obj.cast_unchecked::<PyBytes>() }.as_bytes()),
        Kind::ByteArray => write_b64(
            out,
            "bytearray",
            &unsafe { obj.cast_unchecked::<PyByteArray>() }.to_vec(),
        ),
        Kind::List => write_items(out, obj, unsafe { obj.cast_unchecked::<PyList>() }.iter(), depth)?,
        Kind::Dict => write_dict(out, unsafe { obj.cast_unchecked::<PyDict>() }, depth)?,
        Kind::Tuple => {
            open_tag(out, "tuple");
            write_items(out, obj, unsafe { obj.cast_unchecked::<PyTuple>() }.iter(), depth)?;
            out.push(b'}');
        }
        Kind::Set => {
            open_tag(out, "set");
            write_items(out, obj, unsafe { obj.cast_unchecked::<PySet>() }.iter(), depth)?;
            out.push(b'}');
        }
        Kind::FrozenSet => {
            open_tag(out, "frozenset");
            write_items(out, obj, unsafe { obj.cast_unchecked::<PyFrozenSet>() }.iter(), depth)?;
            out.push(b'}');
        }
        Kind::Ellipsis => out.extend_from_slice(b"{\"$ellipsis\":null}"),
        Kind::Complex => {
            // SAFETY: exact complex.
            let (re, im) = unsafe {
                (
                    ffi::PyComplex_RealAsDouble(obj.as_ptr()),
                    ffi::PyComplex_ImagAsDouble(obj.as_ptr()),
                )
            };
            open_tag(out, "complex");
            out.push(b'[');
            write_float(out, re);
            out.push(b',');
            write_float(out, im);
            out.extend_from_slice(b"]}");
        }
        kind @ (Kind::DateTime | Kind::Time) => {
            let parts = super::time_parts(obj)?;
            open_tag(out, if kind == Kind::DateTime { "datetime" } else { "time" });
            write_str(out, &parts.iso);
            out.extend_from_slice(b",\"zone\":");
            write_opt_str(out, parts.zone.as_deref());
            out.extend_from_slice(b",\"fold\":");
            out.push(b'0' + parts.fold);
            out.push(b'}');
        }
        Kind::Date => {
            open_tag(out, "date");
            write_str(out, &obj.call_method0("isoformat")?.extract::<String>()?);
            out.push(b'}');
        }
        Kind::TimeDelta => {
            let (d, s, us) = super::timedelta_parts(obj)?;
            open_tag(out, "timedelta");
            out.extend_from_slice(format!("[{d},{s},{us}]}}").as_bytes());
        }
        Kind::Decimal => {
            open_tag(out, "decimal");
            write_str(out, &obj.str()?.to_string());
            out.push(b'}');
        }
        Kind::Uuid => {
            open_tag(out, "uuid");
            write_str(out, &obj.str()?.to_string());
            out.push(b'}');
        }
        Kind::Path => {
            open_tag(out, "path");
            write_str_value(out, &obj.str()?)?;
            out.extend_from_slice(b",\"class\":");
            write_str(out, &obj.get_type().name()?.to_string());
            out.push(b'}');
        }
        Kind::Enum => {
            let name = super::allow_and_name(obj)?;
            open_tag(out, "enum");
            write_str(out, &name);
            out.extend_from_slice(b",\"value\":");
            encode(&obj.getattr("value")?, out, depth + 1).map_err(|e| e.inside(|| ".value".into()))?;
            out.push(b'}');
        }
        kind @ (Kind::Dataclass | Kind::Pydantic) => {
            let name = super::allow_and_name(obj)?;
            let fields = if kind == Kind::Dataclass {
                open_tag(out, "dataclass");
                super::dataclass_fields(obj)?
            } else {
                open_tag(out, "pydantic");
                super::pydantic_fields(obj)?
            };
            write_str(out, &name);
            out.extend_from_slice(b",\"fields\":");
            write_dict(out, &fields, depth)?;
            out.push(b'}');
        }
        Kind::NamedTuple => {
            let name = super::allow_and_name(obj)?;
            open_tag(out, "namedtuple");
            write_str(out, &name);
            out.extend_from_slice(b",\"items\":");
            write_items(out, obj, obj.cast::<PyTuple>().map_err(PyErr::from)?.iter(), depth)?;
            out.push(b'}');
        }
        Kind::NdArray => {
            let (dtype, shape, bytes) = super::ndarray_parts(obj)?;
            open_tag(out, "ndarray");
            write_str(out, &dtype);
            out.extend_from_slice(b",\"shape\":[");
            for (i, d) in shape.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(itoa::Buffer::new().format(*d).as_bytes());
            }
            out.extend_from_slice(b"],\"data\":");
            write_str(out, &BASE64.encode(&bytes));
            out.push(b'}');
        }
        Kind::KeyBytes => write_b64(out, "keybytes", &super::keybytes_of(obj)),
        Kind::NpScalar => {
            let (dtype, bytes) = super::npscalar_parts(obj)?;
            open_tag(out, "npscalar");
            write_str(out, &dtype);
            out.extend_from_slice(b",\"data\":");
            write_str(out, &BASE64.encode(&bytes));
            out.push(b'}');
        }
    }
    Ok(())
}

// ---- reading ---------------------------------------------------------------------------------------

/// A Python error met while building values, carried through serde as a message.
fn py_err<E: de::Error>(err: PyErr) -> E {
    Python::attach(|py| E::custom(format!("{}", err.value(py))))
}

/// The key under which serde_json (feature `arbitrary_precision`) hands over a number's literal text.
const NUMBER_TOKEN: &str = "serde_json::private::Number";

/// The value of a JSON number literal: ints stay ints (outside the int64/uint64 range they are refused,
/// as this codec never writes them), anything with a fraction or exponent is a correctly rounded float.
fn number<'py>(py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyAny>> {
    if text.contains(['.', 'e', 'E']) {
        let v: f64 = text
            .parse()
            .map_err(|_| decode_error(py, format!("bad number {text}")))?;
        let Ok(v) = v.into_pyobject(py);
        return Ok(v.into_any());
    }
    if let Ok(v) = text.parse::<i64>() {
        let Ok(v) = v.into_pyobject(py);
        return Ok(v.into_any());
    }
    if let Ok(v) = text.parse::<u64>() {
        let Ok(v) = v.into_pyobject(py);
        return Ok(v.into_any());
    }
    Err(decode_error(
        py,
        format!("the integer {text} is outside the 64-bit range (this codec writes such ints as $int)"),
    ))
}

/// Parses a value at `depth` (the top value is level 0; items, keys, values and fields are one deeper).
struct ValueSeed<'py> {
    py: Python<'py>,
    depth: usize,
}

impl<'de, 'py> DeserializeSeed<'de> for ValueSeed<'py> {
    type Value = Bound<'py, PyAny>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        if self.depth > MAX_DEPTH {
            return Err(de::Error::custom(format!("nested deeper than {MAX_DEPTH} levels")));
        }
        deserializer.deserialize_any(self)
    }
}

/// A map key: the name of a tag, or a plain key with the level its value has when it is a member of a
/// tagged object.
enum Key {
    Tag(String),
    Plain(Py<PyAny>, MemberLevel),
}

/// Levels count values, not the parts of a tagged form: `fields` and `items` hold the tagged value's own
/// contents (their entries are one level deeper, like a container's), an enum's `value` is one level
/// deeper, and the other members (`zone`, `fold`, `class`, `shape`, `data`) are parts.
#[derive(Clone, Copy)]
enum MemberLevel {
    Contents,
    Deeper,
    Part,
}

struct KeySeed<'py>(Python<'py>);

impl<'de, 'py> DeserializeSeed<'de> for KeySeed<'py> {
    type Value = Key;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de, 'py> Visitor<'de> for KeySeed<'py> {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(match v.strip_prefix('$') {
            Some(tag) => Key::Tag(tag.to_string()),
            None => Key::Plain(
                super::key_str(self.0, v.as_bytes()).map_err(py_err)?,
                match v {
                    "fields" | "items" => MemberLevel::Contents,
                    "value" => MemberLevel::Deeper,
                    _ => MemberLevel::Part,
                },
            ),
        })
    }
}

/// The value of a `$dict` tag: `[[key, value], ...]`, keys and values one level deeper.
struct PairsSeed<'py> {
    py: Python<'py>,
    depth: usize,
}

impl<'de, 'py> DeserializeSeed<'de> for PairsSeed<'py> {
    type Value = Bound<'py, PyAny>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, 'py> Visitor<'de> for PairsSeed<'py> {
    type Value = Bound<'py, PyAny>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of [key, value] pairs")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let dict = PyDict::new(self.py);
        while let Some((k, v)) = seq.next_element_seed(PairSeed {
            py: self.py,
            depth: self.depth,
        })? {
            dict.set_item(k, v).map_err(py_err)?;
        }
        Ok(dict.into_any())
    }
}

struct PairSeed<'py> {
    py: Python<'py>,
    depth: usize,
}

impl<'de, 'py> DeserializeSeed<'de> for PairSeed<'py> {
    type Value = (Bound<'py, PyAny>, Bound<'py, PyAny>);

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, 'py> Visitor<'de> for PairSeed<'py> {
    type Value = (Bound<'py, PyAny>, Bound<'py, PyAny>);

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a [key, value] pair")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let (py, depth) = (self.py, self.depth + 1);
        let k = seq.next_element_seed(ValueSeed { py, depth })?;
        let v = seq.next_element_seed(ValueSeed { py, depth })?;
        let (Some(k), Some(v)) = (k, v) else {
            return Err(de::Error::custom("a $dict pair must have two items"));
        };
        if seq.next_element::<de::IgnoredAny>()?.is_some() {
            return Err(de::Error::custom("a $dict pair must have two items"));
        }
        Ok((k, v))
    }
}

impl<'de, 'py> Visitor<'de> for ValueSeed<'py> {
    type Value = Bound<'py, PyAny>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(self.py.None().into_bound(self.py))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(pyo3::types::PyBool::new(self.py, v).to_owned().into_any())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        let Ok(obj) = v.into_pyobject(self.py);
        Ok(obj.into_any())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        let Ok(obj) = v.into_pyobject(self.py);
        Ok(obj.into_any())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        let Ok(obj) = v.into_pyobject(self.py);
        Ok(obj.into_any())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(super::new_str(self.py, v.as_bytes())
            .map_err(py_err)?
            .into_bound(self.py))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let list = PyList::empty(self.py);
        while let Some(item) = seq.next_element_seed(ValueSeed {
            py: self.py,
            depth: self.depth + 1,
        })? {
            list.append(item).map_err(py_err)?;
        }
        Ok(list.into_any())
    }

    /// A plain object, a tagged value (`{"$tuple": [...]}`, the tag key anywhere in the object), or a
    /// number's literal (serde_json's arbitrary-precision form).
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let py = self.py;
        let members = PyDict::new(py);
        let mut tagged: Option<(String, Bound<'py, PyAny>)> = None;
        while let Some(key) = map.next_key_seed(KeySeed(py))? {
            match key {
                Key::Tag(tag) if tag == NUMBER_TOKEN => {
                    let text: String = map.next_value()?;
                    return number(py, &text).map_err(py_err);
                }
                Key::Tag(tag) => {
                    if let Some((first, _)) = &tagged {
                        return Err(de::Error::custom(format!("two tags (${first}, ${tag}) in one object")));
                    }
                    // The tag's value is the tagged value's own contents (a tuple's items sit one level
                    // deeper), or its parts (a complex's two floats), which are no levels at all.
                    let depth = if matches!(tag.as_str(), "complex" | "timedelta" | "str16") {
                        0
                    } else {
                        self.depth
                    };
                    let value = if tag == "dict" {
                        map.next_value_seed(PairsSeed { py, depth })?
                    } else {
                        map.next_value_seed(ValueSeed { py, depth })?
                    };
                    tagged = Some((tag, value));
                }
                Key::Plain(k, level) => {
                    let depth = match (tagged.is_some(), level) {
                        (false, _) | (true, MemberLevel::Deeper) => self.depth + 1,
                        (true, MemberLevel::Contents) => self.depth,
                        (true, MemberLevel::Part) => 0,
                    };
                    let v = map.next_value_seed(ValueSeed { py, depth })?;
                    members.set_item(k, v).map_err(py_err)?;
                }
            }
        }
        match tagged {
            Some((tag, value)) => untag(py, &tag, value, &members).map_err(py_err),
            None => Ok(members.into_any()),
        }
    }
}

fn bad(py: Python<'_>, tag: &str, what: &str) -> PyErr {
    decode_error(py, format!("invalid \"${tag}\" object in cached JSON: {what}"))
}

fn member<'py>(py: Python<'py>, tag: &str, rest: &Bound<'py, PyDict>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    rest.get_item(name)?
        .ok_or_else(|| bad(py, tag, &format!("missing \"{name}\"")))
}

fn text(py: Python<'_>, tag: &str, v: &Bound<'_, PyAny>) -> PyResult<String> {
    v.extract::<String>().map_err(|_| bad(py, tag, "expected a string"))
}

fn b64(py: Python<'_>, tag: &str, v: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    BASE64
        .decode(text(py, tag, v)?)
        .map_err(|_| bad(py, tag, "invalid base64"))
}

fn list<'py>(py: Python<'py>, tag: &str, v: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyList>> {
    v.cast::<PyList>()
        .cloned()
        .map_err(|_| bad(py, tag, "expected an array"))
}

/// The members a tag takes besides its own key.
fn members_of(tag: &str) -> Option<&'static [&'static str]> {
    Some(match tag {
        "tuple" | "set" | "frozenset" | "dict" | "int" | "float" | "str16" | "bytes" | "bytearray" | "keybytes" | "ellipsis"
        | "complex" | "date" | "timedelta" | "decimal" | "uuid" => &[],
        "datetime" | "time" => &["zone", "fold"],
        "path" => &["class"],
        "enum" => &["value"],
        "dataclass" | "pydantic" => &["fields"],
        "namedtuple" => &["items"],
        "ndarray" => &["shape", "data"],
        "npscalar" => &["data"],
        _ => return None,
    })
}

fn exact_float(py: Python<'_>, tag: &str, v: &Bound<'_, PyAny>) -> PyResult<f64> {
    if !v.is_exact_instance_of::<pyo3::types::PyFloat>() {
        return Err(bad(py, tag, "expected floats"));
    }
    v.extract()
}

fn exact_ints(py: Python<'_>, tag: &str, v: &Bound<'_, PyAny>, n: Option<usize>) -> PyResult<Vec<i64>> {
    let items = list(py, tag, v)?;
    if n.is_some_and(|n| n != items.len()) {
        return Err(bad(py, tag, "wrong number of parts"));
    }
    items
        .iter()
        .map(|i| {
            if !i.is_exact_instance_of::<pyo3::types::PyInt>() {
                return Err(bad(py, tag, "expected ints"));
            }
            i.extract::<i64>().map_err(|_| bad(py, tag, "an int part out of range"))
        })
        .collect()
}

/// The Python value of a tagged object `{"$tag": value, **members}`.
fn untag<'py>(
    py: Python<'py>,
    tag: &str,
    value: Bound<'py, PyAny>,
    rest: &Bound<'py, PyDict>,
) -> PyResult<Bound<'py, PyAny>> {
    let Some(expected) = members_of(tag) else {
        return Err(decode_error(py, format!("unknown tag \"${tag}\" in cached JSON")));
    };
    if rest.len() != expected.len() || expected.iter().any(|m| !rest.contains(m).unwrap_or(false)) {
        return Err(bad(py, tag, &format!("expected exactly the members {expected:?}")));
    }
    let obj: Py<PyAny> = match tag {
        "tuple" => PyTuple::new(py, list(py, tag, &value)?.iter())?.into_any().unbind(),
        "set" => PySet::new(py, list(py, tag, &value)?.iter())?.into_any().unbind(),
        "frozenset" => PyFrozenSet::new(py, list(py, tag, &value)?.iter())?.into_any().unbind(),
        "dict" => value.unbind(), // built by PairsSeed
        "int" => {
            let digits = text(py, tag, &value)?;
            let body = digits.strip_prefix('-').unwrap_or(&digits);
            if body.is_empty() || !body.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad(py, tag, "expected decimal digits"));
            }
            py.get_type::<pyo3::types::PyInt>().call1((digits,))?.unbind()
        }
        "float" => {
            let v = match text(py, tag, &value)?.as_str() {
                "nan" => f64::NAN,
                "inf" => f64::INFINITY,
                "-inf" => f64::NEG_INFINITY,
                other => return Err(bad(py, tag, &format!("unknown float {other:?}"))),
            };
            let Ok(v) = v.into_pyobject(py);
            v.into_any().unbind()
        }
        "str16" => {
            let units = exact_ints(py, tag, &value, None)?;
            if units.iter().any(|u| !(0..=0xffff).contains(u)) {
                return Err(bad(py, tag, "code units must be 0..65535"));
            }
            let bytes: Vec<u8> = units.iter().flat_map(|&u| (u as u16).to_le_bytes()).collect();
            PyBytes::new(py, &bytes)
                .call_method1("decode", ("utf-16-le", "surrogatepass"))?
                .unbind()
        }
        "bytes" => PyBytes::new(py, &b64(py, tag, &value)?).into_any().unbind(),
        "bytearray" => PyByteArray::new(py, &b64(py, tag, &value)?).into_any().unbind(),
        "keybytes" => super::revive_keybytes(py, &b64(py, tag, &value)?)?,
        "ellipsis" if value.is_none() => py.Ellipsis(),
        "ellipsis" => return Err(bad(py, tag, "expected null")),
        "complex" => {
            let parts = list(py, tag, &value)?;
            if parts.len() != 2 {
                return Err(bad(py, tag, "expected [real, imag]"));
            }
            let re = exact_float(py, tag, &parts.get_item(0)?)?;
            let im = exact_float(py, tag, &parts.get_item(1)?)?;
            pyo3::types::PyComplex::from_doubles(py, re, im).into_any().unbind()
        }
        "datetime" | "time" => {
            let zone = member(py, tag, rest, "zone")?;
            let zone: Option<String> = if zone.is_none() {
                None
            } else {
                Some(text(py, tag, &zone)?)
            };
            let fold = member(py, tag, rest, "fold")?;
            if !fold.is_exact_instance_of::<pyo3::types::PyInt>() {
                return Err(bad(py, tag, "fold must be 0 or 1"));
            }
            let fold: u8 = match fold.extract::<i64>() {
                Ok(f @ 0..=1) => f as u8,
                _ => return Err(bad(py, tag, "fold must be 0 or 1")),
            };
            super::revive_time(py, tag == "datetime", &text(py, tag, &value)?, zone.as_deref(), fold)
                .map_err(|e| bad(py, tag, &e.to_string()))?
        }
        "date" => super::revive_date(py, &text(py, tag, &value)?).map_err(|e| bad(py, tag, &e.to_string()))?,
        "timedelta" => {
            let parts = exact_ints(py, tag, &value, Some(3))?;
            super::revive_timedelta(py, parts[0], parts[1], parts[2]).map_err(|e| bad(py, tag, &e.to_string()))?
        }
        "decimal" => super::revive_decimal(py, &text(py, tag, &value)?).map_err(|e| bad(py, tag, &e.to_string()))?,
        "uuid" => super::revive_uuid_str(py, &text(py, tag, &value)?).map_err(|e| bad(py, tag, &e.to_string()))?,
        "path" => {
            let class = text(py, tag, &member(py, tag, rest, "class")?)?;
            super::revive_path(py, &class, &value)?
        }
        "enum" => super::revive_enum(py, &text(py, tag, &value)?, &member(py, tag, rest, "value")?)?,
        "dataclass" | "pydantic" => {
            let fields = member(py, tag, rest, "fields")?;
            let fields = fields
                .cast::<PyDict>()
                .map_err(|_| bad(py, tag, "expected an object of fields"))?;
            let name = text(py, tag, &value)?;
            if tag == "dataclass" {
                super::revive_dataclass(py, &name, fields)?
            } else {
                super::revive_pydantic(py, &name, fields)?
            }
        }
        "namedtuple" => {
            let items = member(py, tag, rest, "items")?;
            super::revive_namedtuple(py, &text(py, tag, &value)?, &list(py, tag, &items)?)?
        }
        "ndarray" => {
            let shape = exact_ints(py, tag, &member(py, tag, rest, "shape")?, None)?;
            if shape.iter().any(|&d| d < 0) {
                return Err(bad(py, tag, "a negative dimension"));
            }
            let shape: Vec<usize> = shape.into_iter().map(|d| d as usize).collect();
            let data = b64(py, tag, &member(py, tag, rest, "data")?)?;
            super::revive_ndarray(py, &text(py, tag, &value)?, &shape, &data)
                .map_err(|e| bad(py, tag, &e.to_string()))?
        }
        "npscalar" => {
            let data = b64(py, tag, &member(py, tag, rest, "data")?)?;
            super::revive_npscalar(py, &text(py, tag, &value)?, &data).map_err(|e| bad(py, tag, &e.to_string()))?
        }
        _ => unreachable!("members_of knows every tag"),
    };
    Ok(obj.into_bound(py))
}

/// The value of a complete JSON encoding.
pub fn decode(py: Python<'_>, data: &[u8]) -> PyResult<Py<PyAny>> {
    let mut deserializer = serde_json::Deserializer::from_slice(data);
    deserializer.disable_recursion_limit();
    let value = ValueSeed { py, depth: 0 }
        .deserialize(&mut deserializer)
        .and_then(|v| deserializer.end().map(|_| v))
        .map_err(|e| decode_error(py, format!("invalid cached JSON: {e}")))?;
    Ok(value.unbind())
}
