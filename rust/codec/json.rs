//! The JSON encoding, writing side: plain JSON where JSON can say it, tagged objects
//! (`{"$tuple": [...]}`) where it cannot (docs/value-codec.md), written as Python's
//! `json.dumps(..., separators=(",", ":"), ensure_ascii=False)` would write it. Reading is in
//! `json_read.rs`.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyList, PyString, PyTuple};

use crate::snapshot;

use super::{EncodeResult, Kind, MAX_DEPTH};

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

/// A JSON array of `items`: a snapshot of the container (`crate::snapshot`).
fn write_items<'py>(
    out: &mut Vec<u8>,
    container: &Bound<'py, PyAny>,
    items: &[Bound<'py, PyAny>],
    depth: usize,
) -> EncodeResult {
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        encode(item, out, depth + 1).map_err(|e| e.inside(|| format!("[{i}]")).through(container))?;
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
    super::write_dict_with(dict, |items| write_dict_items(out, dict, items, depth))
}

fn write_dict_items(
    out: &mut Vec<u8>,
    dict: &Bound<'_, PyDict>,
    items: &snapshot::Pairs<'_>,
    depth: usize,
) -> EncodeResult {
    // Written as a plain object in one pass; a key that can't be a plain key rewinds to the tagged form.
    /// Why the plain pass stopped: a key that needs the tagged form, or an encoding error.
    enum Stop {
        NotPlain,
        Failed(super::EncodeError),
    }
    let start = out.len();
    out.push(b'{');
    let plain = items.iter().enumerate().try_for_each(|(i, (k, v))| {
        let Some(key) = plain_key(k) else {
            return Err(Stop::NotPlain);
        };
        if i > 0 {
            out.push(b',');
        }
        write_str(out, key);
        out.push(b':');
        encode(v, out, depth + 1).map_err(|e| Stop::Failed(e.inside(|| format!("[{key:?}]")).through(dict)))
    });
    match plain {
        Ok(()) => {
            out.push(b'}');
            return Ok(());
        }
        Err(Stop::Failed(e)) => return Err(e),
        Err(Stop::NotPlain) => {}
    }
    out.truncate(start);
    open_tag(out, "dict");
    out.push(b'[');
    for (i, (k, v)) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'[');
        encode(k, out, depth + 1).map_err(|e| e.inside(|| " (a dict key)".into()).through(dict))?;
        out.push(b',');
        encode(v, out, depth + 1).map_err(|e| {
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
            if let Some(v) = super::small_int(obj) {
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
        Kind::List => {
            let list = unsafe { obj.cast_unchecked::<PyList>() };
            super::write_list_with(list, |items| write_items(out, obj, items, depth))?;
        }
        Kind::Dict => write_dict(out, unsafe { obj.cast_unchecked::<PyDict>() }, depth)?,
        Kind::Tuple => {
            open_tag(out, "tuple");
            write_items(out, obj, unsafe { obj.cast_unchecked::<PyTuple>() }.as_slice(), depth)?;
            out.push(b'}');
        }
        kind @ (Kind::Set | Kind::FrozenSet) => {
            open_tag(out, if kind == Kind::Set { "set" } else { "frozenset" });
            super::write_set_with(obj, |items| write_items(out, obj, items, depth))?;
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
            write_items(out, obj, obj.cast::<PyTuple>().map_err(PyErr::from)?.as_slice(), depth)?;
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
