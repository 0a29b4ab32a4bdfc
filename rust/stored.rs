//! What an entry keeps of a call's arguments.
//!
//! An entry's inputs are the arguments as they were when the call was made, taken before the function
//! runs (the function may change its arguments, and the caller may change them afterwards): never the
//! caller's own mutable objects. Each argument is kept as the persistent backends store it, so every
//! backend's entry looks the same:
//! - immutable builtins (`int`, `str`, `bytes`, `None`, ...) and classes as they are;
//! - anything the value codec can encode as a copy through the codec (lists, dicts, dataclasses, numpy
//!   arrays, datetimes, ...);
//! - anything else (an object keyed through `__cache_key__` or a registered encoder, a method's `self`) as
//!   its `KeyBytes`: the entry still recomputes to the same key, without keeping the object alive.

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyType;

use crate::codec;
use crate::key::encode::encode_value;
use crate::key::keybytes::KeyBytes;

/// True for values that cannot change: they are kept as they are.
fn immutable_scalar(value: &Bound<'_, PyAny>) -> bool {
    let ptr = value.as_ptr();
    // SAFETY: type-pointer comparisons against live type objects.
    unsafe {
        let ty = ffi::Py_TYPE(ptr);
        ptr == ffi::Py_None()
            || ptr == ffi::Py_Ellipsis()
            || std::ptr::eq(ty, std::ptr::addr_of_mut!(ffi::PyLong_Type))
            || std::ptr::eq(ty, std::ptr::addr_of_mut!(ffi::PyUnicode_Type))
            || std::ptr::eq(ty, std::ptr::addr_of_mut!(ffi::PyBool_Type))
            || std::ptr::eq(ty, std::ptr::addr_of_mut!(ffi::PyFloat_Type))
            || std::ptr::eq(ty, std::ptr::addr_of_mut!(ffi::PyBytes_Type))
            || std::ptr::eq(ty, std::ptr::addr_of_mut!(ffi::PyComplex_Type))
    }
}

/// The argument as an entry keeps it (see the module docs). `canonical`: its key bytes when already
/// computed for this call (so a `__cache_key__` hook does not run again).
pub fn kept_argument<'py>(value: &Bound<'py, PyAny>, canonical: Option<&[u8]>) -> PyResult<Bound<'py, PyAny>> {
    let py = value.py();
    if immutable_scalar(value) || value.is_instance_of::<PyType>() || value.is_exact_instance_of::<KeyBytes>() {
        return Ok(value.clone());
    }
    let mut encoded = Vec::new();
    if codec::msgpack::encode(value, &mut encoded, 0).is_ok() {
        if let Ok(copy) = codec::msgpack::decode(py, &encoded) {
            return Ok(copy.into_bound(py));
        }
    }
    let bytes = match canonical {
        Some(bytes) => bytes.to_vec(),
        None => encode_value(value).map_err(|e| e.into_pyerr(py, None, None))?.0,
    };
    Ok(Bound::new(py, KeyBytes { bytes })?.into_any())
}
