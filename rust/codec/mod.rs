//! The value codec of persistent backends (docs/value-codec.md): one value model, two encodings
//! (MessagePack with extension types in `msgpack.rs`, tagged JSON in `json.rs`).
//!
//! This module holds what both share: how a Python value is classified, the parts of the non-builtin
//! types, the allow-list of revivable classes, and how decoded parts become Python values again.
//! Decoding never imports a module named by the data: classes come only from the allow-list.
pub mod allow;
pub mod classify;
pub mod encode;
pub mod json;
pub mod json_read;
pub mod msgpack;
pub mod parts;
pub mod revive;

use std::hash::BuildHasher;

use pyo3::exceptions::PyTypeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

use crate::errors::codec_error;
pub use crate::errors::{EncodeError, EncodeResult};
use crate::key::encode::with_scratch;

pub use crate::limits::MAX_DEPTH;
pub use allow::{allow_and_name, allow_type, revive_imported};

/// Extension type codes of the binary encoding (and the order of JSON tags).
pub mod ext {
    pub const BIGINT: i8 = 1;
    pub const TUPLE: i8 = 2;
    pub const SET: i8 = 3;
    pub const FROZENSET: i8 = 4;
    pub const ELLIPSIS: i8 = 5;
    pub const BYTEARRAY: i8 = 6;
    pub const COMPLEX: i8 = 7;
    pub const DATETIME: i8 = 8;
    pub const DATE: i8 = 9;
    pub const TIME: i8 = 10;
    pub const TIMEDELTA: i8 = 11;
    pub const DECIMAL: i8 = 12;
    pub const UUID: i8 = 13;
    pub const PATH: i8 = 14;
    pub const ENUM: i8 = 15;
    pub const DATACLASS: i8 = 16;
    pub const PYDANTIC: i8 = 17;
    pub const NDARRAY: i8 = 18;
    pub const NPSCALAR: i8 = 19;
    pub const NAMEDTUPLE: i8 = 20;
    pub const SURROGATE_STR: i8 = 21;
    pub const KEYBYTES: i8 = 22;
}

pub fn decode_error(py: Python<'_>, message: impl Into<String>) -> PyErr {
    codec_error(py, "ValueDecodingError", message.into())
}

// ---- Python entry points -------------------------------------------------------------------------

/// The binary (MessagePack) encoding of `value`.
#[pyfunction]
pub fn encode_binary<'py>(py: Python<'py>, value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    with_scratch(|out| {
        msgpack::encode(value, out, 0).map_err(|e| e.into_pyerr(py))?;
        Ok(PyBytes::new(py, out))
    })
}

/// Any failure while decoding is a `ValueDecodingError` (a class constructor or `fromisoformat` raising
/// on damaged data raises its own type otherwise).
fn as_decoding_error(py: Python<'_>, err: PyErr) -> PyErr {
    if crate::errors::is_codec_error(py, &err, "ValueDecodingError") {
        return err;
    }
    decode_error(
        py,
        format!(
            "the stored value could not be rebuilt: {}: {}",
            err.get_type(py).name().map(|n| n.to_string()).unwrap_or_default(),
            err.value(py)
        ),
    )
}

/// The value of a binary encoding (bytes or any bytes-like object).
#[pyfunction]
pub fn decode_binary(py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    let result = if let Ok(b) = data.cast::<PyBytes>() {
        msgpack::decode(py, b.as_bytes())
    } else if data.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(
            "decode_binary expects bytes, got str (use decode_json for JSON text)",
        ));
    } else {
        let copied: Vec<u8> = py.get_type::<PyBytes>().call1((data,))?.extract()?;
        msgpack::decode(py, &copied)
    };
    result.map_err(|e| as_decoding_error(py, e))
}

/// The tagged JSON encoding of `value`.
#[pyfunction]
pub fn encode_json<'py>(py: Python<'py>, value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyString>> {
    with_scratch(|out| {
        json::encode(value, out, 0).map_err(|e| e.into_pyerr(py))?;
        // SAFETY: the writer emits UTF-8 only (str contents are copied from valid UTF-8, the rest is ASCII).
        Ok(new_str(py, out)?.into_bound(py).cast_into::<PyString>()?)
    })
}

/// The tagged JSON encoding of `value` as UTF-8 bytes: `encode_json(value).encode()` without building the
/// str (for a file or a socket; most of `encode_json`'s time on long non-ASCII text is that str).
#[pyfunction]
pub fn encode_json_bytes<'py>(py: Python<'py>, value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    with_scratch(|out| {
        json::encode(value, out, 0).map_err(|e| e.into_pyerr(py))?;
        Ok(PyBytes::new(py, out))
    })
}

/// The value of a JSON encoding (str or UTF-8 bytes).
#[pyfunction]
pub fn decode_json(py: Python<'_>, text: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    if let Ok(s) = text.cast::<PyString>() {
        let s = s
            .to_str()
            .map_err(|_| decode_error(py, "JSON text with lone surrogates"))?;
        return json_read::decode(py, s.as_bytes()).map_err(|e| as_decoding_error(py, e));
    }
    if let Ok(b) = text.cast::<PyBytes>() {
        return json_read::decode(py, b.as_bytes()).map_err(|e| as_decoding_error(py, e));
    }
    Err(PyTypeError::new_err(format!(
        "decode_json expects str or bytes, got {}",
        text.get_type().name()?
    )))
}

// ---- building strings fast (decoding) ------------------------------------------------------------

/// A new str from UTF-8 `bytes`: ASCII is copied straight into a new compact str (no decoding pass);
/// anything else goes through CPython's UTF-8 decoder, which also validates it.
pub fn new_str(py: Python<'_>, bytes: &[u8]) -> PyResult<Py<PyAny>> {
    // SAFETY: PyUnicode_New(len, 127) makes a compact ASCII str whose data area holds `len` bytes (plus
    // the NUL it already wrote); we fill it before anyone sees the object.
    unsafe {
        if bytes.is_ascii() {
            let s = ffi::PyUnicode_New(bytes.len() as ffi::Py_ssize_t, 127);
            if s.is_null() {
                return Err(PyErr::fetch(py));
            }
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), ffi::PyUnicode_DATA(s) as *mut u8, bytes.len());
            return Ok(Bound::from_owned_ptr(py, s).unbind());
        }
        let s = ffi::PyUnicode_DecodeUTF8(
            bytes.as_ptr().cast(),
            bytes.len() as ffi::Py_ssize_t,
            c"strict".as_ptr(),
        );
        if s.is_null() {
            let _ = PyErr::fetch(py);
            return Err(decode_error(py, "a stored string is not valid UTF-8"));
        }
        Ok(Bound::from_owned_ptr(py, s).unbind())
    }
}

const KEY_CACHE_SLOTS: usize = 512;

const KEY_CACHE_MAX_LEN: usize = 48;

/// A key cache slot: the key's bytes and its str.
type KeySlot = Option<(Box<[u8]>, Py<PyAny>)>;

thread_local! {
    /// Recently decoded dict keys (short ASCII strs), so each key is allocated and hashed once instead of
    /// once per row. A slot is `(the key's bytes, the str)`; a miss replaces the slot.
    static KEY_CACHE: std::cell::RefCell<Vec<KeySlot>> =
        std::cell::RefCell::new((0..KEY_CACHE_SLOTS).map(|_| None).collect());
}

/// A str for a dict key: the cached object when this key was decoded recently.
pub fn key_str(py: Python<'_>, bytes: &[u8]) -> PyResult<Py<PyAny>> {
    if bytes.len() > KEY_CACHE_MAX_LEN || !bytes.is_ascii() {
        return new_str(py, bytes);
    }
    let slot = (foldhash::quality::FixedState::with_seed(0x6f78_6963).hash_one(bytes) as usize) % KEY_CACHE_SLOTS;
    KEY_CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some((cached, s)) = &cache[slot] {
            if **cached == *bytes {
                return Ok(s.clone_ref(py));
            }
        }
        let s = new_str(py, bytes)?;
        // Hash it now: the dict insertion needs the hash, and later hits reuse it.
        s.bind(py).hash()?;
        cache[slot] = Some((bytes.into(), s.clone_ref(py)));
        Ok(s)
    })
}
