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

use super::{decode_error, EncodeError, EncodeResult, Kind, MAX_DEPTH};

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

fn write_items<'py>(out: &mut Vec<u8>, items: impl Iterator<Item = Bound<'py, PyAny>>, depth: usize) -> EncodeResult {
    out.push(b'[');
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        encode(&item, out, depth + 1).map_err(|e| e.inside(|| format!("[{i}]")))?;
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
        encode(&v, out, depth + 1).map_err(|e| e.inside(|| format!("[{key:?}]")))?;
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
        encode(&k, out, depth + 2).map_err(|e| e.inside(|| " (a dict key)".into()))?;
        out.push(b',');
        encode(&v, out, depth + 2)
            .map_err(|e| e.inside(|| format!("[{}]", k.repr().map(|r| r.to_string()).unwrap_or_default())))?;
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
        return Err(EncodeError::new(format!(
            "nesting exceeds {MAX_DEPTH} levels (or the value contains itself); store a flatter value"
        )));
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
        Kind::Float => {
            let v = unsafe { ffi::PyFloat_AS_DOUBLE(obj.as_ptr()) };
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
        Kind::Str => {
            let s = unsafe { obj.cast_unchecked::<PyString>() };
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
        }
        Kind::Bytes => write_b64(out, "bytes", unsafe { obj.cast_unchecked::<PyBytes>() }.as_bytes()),
        Kind::ByteArray => write_b64(
            out,
            "bytearray",
            &unsafe { obj.cast_unchecked::<PyByteArray>() }.to_vec(),
        ),
        Kind::List => write_items(out, unsafe { obj.cast_unchecked::<PyList>() }.iter(), depth)?,
        Kind::Dict => write_dict(out, unsafe { obj.cast_unchecked::<PyDict>() }, depth)?,
        Kind::Tuple => {
            open_tag(out, "tuple");
            write_items(out, unsafe { obj.cast_unchecked::<PyTuple>() }.iter(), depth)?;
            out.push(b'}');
        }
        Kind::Set => {
            open_tag(out, "set");
            write_items(out, unsafe { obj.cast_unchecked::<PySet>() }.iter(), depth)?;
            out.push(b'}');
        }
        Kind::FrozenSet => {
            open_tag(out, "frozenset");
            write_items(out, unsafe { obj.cast_unchecked::<PyFrozenSet>() }.iter(), depth)?;
            out.push(b'}');
        }
        Kind::Ellipsis => out.extend_from_slice(b"{\"$ellipsis\":null}"),
        Kind::Complex => {
            let (re, im) = unsafe {
                (
                    ffi::PyComplex_RealAsDouble(obj.as_ptr()),
                    ffi::PyComplex_ImagAsDouble(obj.as_ptr()),
                )
            };
            open_tag(out, "complex");
            out.push(b'[');
            for (i, part) in [re, im].into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                let Ok(float) = part.into_pyobject(obj.py());
                encode(float.as_any(), out, depth + 1)?;
            }
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
            write_str(out, &obj.str()?.to_string());
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
            write_items(out, obj.cast::<PyTuple>().map_err(PyErr::from)?.iter(), depth)?;
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

struct ValueSeed<'py> {
    py: Python<'py>,
    depth: usize,
}

impl<'de, 'py> DeserializeSeed<'de> for ValueSeed<'py> {
    type Value = Bound<'py, PyAny>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        if self.depth > MAX_DEPTH * 2 + 4 {
            return Err(de::Error::custom("nested too deeply"));
        }
        deserializer.deserialize_any(self)
    }
}

/// A map key: the name of a tag, or a plain key.
enum Key {
    Tag(String),
    Plain(Py<PyAny>),
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
            None => Key::Plain(super::key_str(self.0, v.as_bytes()).map_err(py_err)?),
        })
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

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let py = self.py;
        let inner = ValueSeed {
            py,
            depth: self.depth + 1,
        };
        let dict = PyDict::new(py);
        match map.next_key_seed(KeySeed(py))? {
            None => return Ok(dict.into_any()),
            Some(Key::Tag(tag)) => {
                let value = map.next_value_seed(inner)?;
                // The other members of a tagged object, decoded generically.
                let rest = PyDict::new(py);
                while let Some(key) = map.next_key_seed(KeySeed(py))? {
                    let v = map.next_value_seed(ValueSeed {
                        py,
                        depth: self.depth + 1,
                    })?;
                    match key {
                        Key::Plain(k) => rest.set_item(k, v).map_err(py_err)?,
                        Key::Tag(t) => return Err(de::Error::custom(format!("a second tag '${t}' in one object"))),
                    }
                }
                return untag(py, &tag, value, &rest).map_err(py_err);
            }
            Some(Key::Plain(k)) => {
                let v = map.next_value_seed(inner)?;
                dict.set_item(k, v).map_err(py_err)?;
            }
        }
        while let Some(key) = map.next_key_seed(KeySeed(py))? {
            let v = map.next_value_seed(ValueSeed {
                py,
                depth: self.depth + 1,
            })?;
            let k = match key {
                Key::Plain(k) => k,
                Key::Tag(t) => PyString::new(py, &format!("${t}")).into_any().unbind(),
            };
            dict.set_item(k, v).map_err(py_err)?;
        }
        Ok(dict.into_any())
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

/// The Python value of a tagged object `{"$tag": value, **rest}`.
fn untag<'py>(
    py: Python<'py>,
    tag: &str,
    value: Bound<'py, PyAny>,
    rest: &Bound<'py, PyDict>,
) -> PyResult<Bound<'py, PyAny>> {
    let obj: Py<PyAny> = match tag {
        "tuple" => PyTuple::new(py, list(py, tag, &value)?.iter())?.into_any().unbind(),
        "set" => PySet::new(py, list(py, tag, &value)?.iter())?.into_any().unbind(),
        "frozenset" => PyFrozenSet::new(py, list(py, tag, &value)?.iter())?.into_any().unbind(),
        "dict" => {
            let dict = PyDict::new(py);
            for pair in list(py, tag, &value)?.iter() {
                let pair = pair
                    .cast::<PyList>()
                    .map_err(|_| bad(py, tag, "expected [key, value] pairs"))?;
                if pair.len() != 2 {
                    return Err(bad(py, tag, "expected [key, value] pairs"));
                }
                dict.set_item(pair.get_item(0)?, pair.get_item(1)?)?;
            }
            dict.into_any().unbind()
        }
        "int" => py
            .get_type::<pyo3::types::PyInt>()
            .call1((text(py, tag, &value)?,))?
            .unbind(),
        "float" => match text(py, tag, &value)?.as_str() {
            "nan" => f64::NAN,
            "inf" => f64::INFINITY,
            "-inf" => f64::NEG_INFINITY,
            other => return Err(bad(py, tag, &format!("unknown float {other:?}"))),
        }
        .into_pyobject(py)?
        .into_any()
        .unbind(),
        "str16" => {
            let units: Vec<u16> = value
                .extract()
                .map_err(|_| bad(py, tag, "expected UTF-16 code units"))?;
            let bytes: Vec<u8> = units.iter().flat_map(|u| u.to_le_bytes()).collect();
            PyBytes::new(py, &bytes)
                .call_method1("decode", ("utf-16-le", "surrogatepass"))?
                .unbind()
        }
        "bytes" => PyBytes::new(py, &b64(py, tag, &value)?).into_any().unbind(),
        "bytearray" => PyByteArray::new(py, &b64(py, tag, &value)?).into_any().unbind(),
        "ellipsis" => py.Ellipsis(),
        "complex" => {
            let parts: Vec<f64> = value.extract().map_err(|_| bad(py, tag, "expected [real, imag]"))?;
            let [re, im] = parts[..] else {
                return Err(bad(py, tag, "expected [real, imag]"));
            };
            pyo3::types::PyComplex::from_doubles(py, re, im).into_any().unbind()
        }
        "datetime" | "time" => {
            let zone: Option<String> = member(py, tag, rest, "zone")?
                .extract()
                .map_err(|_| bad(py, tag, "bad zone"))?;
            let fold: u8 = member(py, tag, rest, "fold")?
                .extract()
                .map_err(|_| bad(py, tag, "bad fold"))?;
            super::revive_time(py, tag == "datetime", &text(py, tag, &value)?, zone.as_deref(), fold)
                .map_err(|e| bad(py, tag, &e.to_string()))?
        }
        "date" => super::revive_date(py, &text(py, tag, &value)?).map_err(|e| bad(py, tag, &e.to_string()))?,
        "timedelta" => {
            let parts: Vec<i64> = value
                .extract()
                .map_err(|_| bad(py, tag, "expected [days, seconds, microseconds]"))?;
            let [d, s, us] = parts[..] else {
                return Err(bad(py, tag, "expected [days, seconds, microseconds]"));
            };
            super::revive_timedelta(py, d, s, us).map_err(|e| bad(py, tag, &e.to_string()))?
        }
        "decimal" => super::revive_decimal(py, &text(py, tag, &value)?).map_err(|e| bad(py, tag, &e.to_string()))?,
        "uuid" => super::revive_uuid_str(py, &text(py, tag, &value)?).map_err(|e| bad(py, tag, &e.to_string()))?,
        "path" => {
            let class = text(py, tag, &member(py, tag, rest, "class")?)?;
            super::revive_path(py, &class, &text(py, tag, &value)?)?
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
            let shape: Vec<usize> = member(py, tag, rest, "shape")?
                .extract()
                .map_err(|_| bad(py, tag, "bad shape"))?;
            let data = b64(py, tag, &member(py, tag, rest, "data")?)?;
            super::revive_ndarray(py, &text(py, tag, &value)?, &shape, &data)
                .map_err(|e| bad(py, tag, &e.to_string()))?
        }
        "npscalar" => {
            let data = b64(py, tag, &member(py, tag, rest, "data")?)?;
            super::revive_npscalar(py, &text(py, tag, &value)?, &data).map_err(|e| bad(py, tag, &e.to_string()))?
        }
        other => return Err(decode_error(py, format!("unknown tag \"${other}\" in cached JSON"))),
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
