//! Encoding, written once for both formats: a value is classified (`classify`), taken apart into its
//! parts (`parts`), and each part handed to a `Format`, which only lays bytes out. Containers, nesting,
//! error paths and the changed-while-encoding check live here; `msgpack.rs` and `json.rs` implement
//! `Format` and nothing else of the writing side.

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyList, PyString, PyTuple};

use crate::errors::EncodeError;
use crate::snapshot;

use super::classify::{classify, Kind};
use super::{parts, EncodeResult, MAX_DEPTH};

/// A container written around a nested value: its binary extension code and its JSON tag.
#[derive(Clone, Copy)]
pub struct Wrapper {
    pub code: i8,
    pub tag: &'static str,
    /// The JSON member that holds the nested value after the name (`None`: the tag holds the value).
    pub member: Option<&'static str>,
}

macro_rules! wrapper {
    ($name:ident, $code:ident, $tag:literal) => {
        pub const $name: Wrapper = Wrapper {
            code: crate::codec::ext::$code,
            tag: $tag,
            member: None,
        };
    };
    ($name:ident, $code:ident, $tag:literal, $member:literal) => {
        pub const $name: Wrapper = Wrapper {
            code: crate::codec::ext::$code,
            tag: $tag,
            member: Some($member),
        };
    };
}

pub mod wrap {
    use super::Wrapper;
    wrapper!(TUPLE, TUPLE, "tuple");
    wrapper!(SET, SET, "set");
    wrapper!(FROZENSET, FROZENSET, "frozenset");
    wrapper!(ENUM, ENUM, "enum", "value");
    wrapper!(DATACLASS, DATACLASS, "dataclass", "fields");
    wrapper!(PYDANTIC, PYDANTIC, "pydantic", "fields");
    wrapper!(NAMEDTUPLE, NAMEDTUPLE, "namedtuple", "items");
}

/// Raw bytes of one of three types: bytes, bytearray, or an argument's key bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Blob {
    Bytes,
    ByteArray,
    KeyBytes,
}

/// How one encoding lays out each part. Every method appends to `out`; none calls back into Python
/// except where it takes a Python object (a big int, a str, a uuid), whose form differs by format.
pub trait Format {
    fn none(out: &mut Vec<u8>);
    fn boolean(out: &mut Vec<u8>, v: bool);
    fn int(out: &mut Vec<u8>, v: i64);
    fn uint(out: &mut Vec<u8>, v: u64);
    /// An int beyond 64 bits.
    fn bigint(out: &mut Vec<u8>, obj: &Bound<'_, PyAny>) -> EncodeResult;
    fn float(out: &mut Vec<u8>, v: f64);
    fn str(out: &mut Vec<u8>, s: &Bound<'_, PyString>) -> EncodeResult;
    fn blob(out: &mut Vec<u8>, kind: Blob, bytes: &[u8]);
    fn ellipsis(out: &mut Vec<u8>);
    fn complex(out: &mut Vec<u8>, re: f64, im: f64);
    fn time(out: &mut Vec<u8>, datetime: bool, parts: &parts::TimeParts);
    fn date(out: &mut Vec<u8>, iso: &str);
    fn timedelta(out: &mut Vec<u8>, days: i64, seconds: i64, micros: i64);
    fn decimal(out: &mut Vec<u8>, text: &str);
    fn uuid(out: &mut Vec<u8>, obj: &Bound<'_, PyAny>) -> EncodeResult;
    fn path(out: &mut Vec<u8>, class: &str, text: &Bound<'_, PyString>) -> EncodeResult;
    fn ndarray(out: &mut Vec<u8>, dtype: &str, shape: &[usize], data: &[u8]);
    fn npscalar(out: &mut Vec<u8>, dtype: &str, data: &[u8]);

    /// Opens a wrapper (with the class name for named ones); returns what `close` needs.
    fn open(out: &mut Vec<u8>, wrapper: Wrapper, name: Option<&str>) -> usize;
    fn close(out: &mut Vec<u8>, mark: usize);

    fn array_start(out: &mut Vec<u8>, len: usize);
    fn array_next(out: &mut Vec<u8>, index: usize);
    fn array_end(out: &mut Vec<u8>);

    /// A dict's pairs (a snapshot); `pair` encodes one key or value with its error context.
    fn dict(out: &mut Vec<u8>, dict: &Bound<'_, PyDict>, items: &snapshot::Pairs<'_>, depth: usize) -> EncodeResult;
}

/// Appends the encoding of `obj` in format `F`.
pub fn encode<F: Format>(obj: &Bound<'_, PyAny>, out: &mut Vec<u8>, depth: usize) -> EncodeResult {
    if depth > MAX_DEPTH {
        return Err(EncodeError::too_deep());
    }
    // SAFETY (the unchecked casts below): `classify` matched the exact type.
    match classify(obj)? {
        Kind::None => F::none(out),
        Kind::Bool => F::boolean(out, obj.is_truthy()?),
        Kind::Int => {
            if let Some(v) = parts::small_int(obj) {
                F::int(out, v);
            } else if let Ok(v) = obj.extract::<u64>() {
                F::uint(out, v);
            } else {
                F::bigint(out, obj)?;
            }
        }
        Kind::Float => F::float(out, unsafe { ffi::PyFloat_AS_DOUBLE(obj.as_ptr()) }),
        Kind::Str => F::str(out, unsafe { obj.cast_unchecked::<PyString>() })?,
        Kind::Bytes => F::blob(out, Blob::Bytes, unsafe { obj.cast_unchecked::<PyBytes>() }.as_bytes()),
        Kind::ByteArray => F::blob(
            out,
            Blob::ByteArray,
            &unsafe { obj.cast_unchecked::<PyByteArray>() }.to_vec(),
        ),
        Kind::KeyBytes => F::blob(out, Blob::KeyBytes, &parts::keybytes_of(obj)),
        Kind::List => {
            let list = unsafe { obj.cast_unchecked::<PyList>() };
            parts::list_with(list, |items| write_items::<F>(out, obj, items, depth))?;
        }
        Kind::Dict => write_dict::<F>(out, unsafe { obj.cast_unchecked::<PyDict>() }, depth)?,
        Kind::Tuple => {
            let items = unsafe { obj.cast_unchecked::<PyTuple>() }.as_slice();
            wrapped::<F>(out, wrap::TUPLE, None, |o| write_items::<F>(o, obj, items, depth))?;
        }
        kind @ (Kind::Set | Kind::FrozenSet) => {
            let wrapper = if kind == Kind::Set { wrap::SET } else { wrap::FROZENSET };
            wrapped::<F>(out, wrapper, None, |o| {
                parts::set_with(obj, |items| write_items::<F>(o, obj, items, depth))
            })?;
        }
        Kind::Ellipsis => F::ellipsis(out),
        Kind::Complex => {
            let (re, im) = unsafe {
                (
                    ffi::PyComplex_RealAsDouble(obj.as_ptr()),
                    ffi::PyComplex_ImagAsDouble(obj.as_ptr()),
                )
            };
            F::complex(out, re, im);
        }
        kind @ (Kind::DateTime | Kind::Time) => F::time(out, kind == Kind::DateTime, &parts::time_parts(obj)?),
        Kind::Date => F::date(out, &obj.call_method0("isoformat")?.extract::<String>()?),
        Kind::TimeDelta => {
            let (d, s, us) = parts::timedelta_parts(obj)?;
            F::timedelta(out, d, s, us);
        }
        Kind::Decimal => F::decimal(out, &obj.str()?.to_string()),
        Kind::Uuid => F::uuid(out, obj)?,
        Kind::Path => F::path(out, &obj.get_type().name()?.to_string(), &obj.str()?)?,
        Kind::Enum => {
            let name = super::allow_and_name(obj)?;
            let value = obj.getattr("value")?;
            wrapped::<F>(out, wrap::ENUM, Some(&name), |o| {
                encode::<F>(&value, o, depth + 1).map_err(|e| e.inside(|| ".value".into()))
            })?;
        }
        kind @ (Kind::Dataclass | Kind::Pydantic) => {
            let name = super::allow_and_name(obj)?;
            let (wrapper, fields) = if kind == Kind::Dataclass {
                (wrap::DATACLASS, parts::dataclass_fields(obj)?)
            } else {
                (wrap::PYDANTIC, parts::pydantic_fields(obj)?)
            };
            wrapped::<F>(out, wrapper, Some(&name), |o| write_dict::<F>(o, &fields, depth))?;
        }
        Kind::NamedTuple => {
            let name = super::allow_and_name(obj)?;
            let items = obj.cast::<PyTuple>().map_err(PyErr::from)?.as_slice();
            wrapped::<F>(out, wrap::NAMEDTUPLE, Some(&name), |o| {
                write_items::<F>(o, obj, items, depth)
            })?;
        }
        Kind::NdArray => {
            let (dtype, shape, data) = parts::ndarray_parts(obj)?;
            F::ndarray(out, &dtype, &shape, &data);
        }
        Kind::NpScalar => {
            let (dtype, data) = parts::npscalar_parts(obj)?;
            F::npscalar(out, &dtype, &data);
        }
    }
    Ok(())
}

fn wrapped<F: Format>(
    out: &mut Vec<u8>,
    wrapper: Wrapper,
    name: Option<&str>,
    body: impl FnOnce(&mut Vec<u8>) -> EncodeResult,
) -> EncodeResult {
    let mark = F::open(out, wrapper, name);
    body(out)?;
    F::close(out, mark);
    Ok(())
}

/// An array of `items`: a snapshot of `container` (`crate::snapshot`), so its length and its items agree
/// even if encoding an item changes the container.
fn write_items<'py, F: Format>(
    out: &mut Vec<u8>,
    container: &Bound<'py, PyAny>,
    items: &[Bound<'py, PyAny>],
    depth: usize,
) -> EncodeResult {
    F::array_start(out, items.len());
    for (i, item) in items.iter().enumerate() {
        F::array_next(out, i);
        encode::<F>(item, out, depth + 1).map_err(|e| e.inside(|| format!("[{i}]")).through(container))?;
    }
    F::array_end(out);
    Ok(())
}

fn write_dict<F: Format>(out: &mut Vec<u8>, dict: &Bound<'_, PyDict>, depth: usize) -> EncodeResult {
    parts::dict_with(dict, |items| F::dict(out, dict, items, depth))
}

/// A dict's key, for `Format::dict`.
pub fn dict_key<F: Format>(
    out: &mut Vec<u8>,
    dict: &Bound<'_, PyDict>,
    key: &Bound<'_, PyAny>,
    depth: usize,
) -> EncodeResult {
    encode::<F>(key, out, depth + 1).map_err(|e| e.inside(|| " (a dict key)".into()).through(dict))
}

/// A dict's value under `key`, for `Format::dict`; `label` names the key in an error's path.
pub fn dict_value<F: Format>(
    out: &mut Vec<u8>,
    dict: &Bound<'_, PyDict>,
    value: &Bound<'_, PyAny>,
    depth: usize,
    label: impl FnOnce() -> String,
) -> EncodeResult {
    encode::<F>(value, out, depth + 1).map_err(|e| e.inside(|| format!("[{}]", label())).through(dict))
}

/// How an error path names a dict key: its repr.
pub fn key_repr(key: &Bound<'_, PyAny>) -> String {
    key.repr().map(|r| r.to_string()).unwrap_or_default()
}
