//! Canonical key encoding: Python values -> canonical bytes -> 128-bit key.

pub mod decode;
pub mod digest;
pub mod encode;
pub mod keybytes;
pub mod known_types;

use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// `oxicache.keys.canonical_bytes(value)`: the canonical encoding of any supported value.
#[pyfunction]
pub fn canonical_bytes<'py>(py: Python<'py>, value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    let (bytes, _) = encode::encode_value(value).map_err(|e| e.into_pyerr(py, None, None))?;
    Ok(PyBytes::new(py, &bytes))
}

/// `oxicache.keys.key_of(func, inputs)`: the 128-bit key of `(func, inputs)`, as `CacheEntry.key`.
#[pyfunction]
pub fn key_of(py: Python<'_>, func: &str, inputs: &Bound<'_, pyo3::types::PyDict>) -> PyResult<u128> {
    entry_key_of(py, func, inputs)
}

/// The key of `(func, inputs)`, encoding into the per-thread scratch buffer.
pub fn entry_key_of(py: Python<'_>, func: &str, inputs: &Bound<'_, pyo3::types::PyDict>) -> PyResult<u128> {
    encode::with_scratch(|buf| {
        let mut enc = encode::Encoder::new(buf);
        match enc.write_dict(inputs, 1) {
            Ok(()) => Ok(digest::entry_key(func, buf)),
            Err(_) => encode_inputs(py, inputs, Some(func)).map(|bytes| digest::entry_key(func, &bytes)),
        }
    })
}

/// Canonical bytes of an inputs dict; errors name the offending input.
pub fn encode_inputs(py: Python<'_>, inputs: &Bound<'_, pyo3::types::PyDict>, func: Option<&str>) -> PyResult<Vec<u8>> {
    encode_inputs_flagged(py, inputs, func).map(|(bytes, _)| bytes)
}

/// As `encode_inputs`, also telling whether the bytes decode back to equal values (`decode.rs`).
pub fn encode_inputs_flagged(
    py: Python<'_>,
    inputs: &Bound<'_, pyo3::types::PyDict>,
    func: Option<&str>,
) -> PyResult<(Vec<u8>, bool)> {
    let mut out = Vec::with_capacity(64);
    let mut enc = encode::Encoder::new(&mut out);
    // Depth 1: the inputs dict sits inside the (func, inputs) tuple.
    match enc.write_dict(inputs, 1) {
        Ok(()) => {
            let lossless = enc.lossless;
            Ok((out, lossless))
        }
        Err(err) => {
            // Re-encode item by item to name the parameter that failed.
            for (name, value) in inputs.iter() {
                let mut scratch = Vec::new();
                if let Err(item_err) = encode::Encoder::new(&mut scratch).encode(&value, 2) {
                    let name = name.str().map(|s| s.to_string()).unwrap_or_default();
                    return Err(item_err.into_pyerr(py, func, Some(&name)));
                }
            }
            Err(err.into_pyerr(py, func, None))
        }
    }
}
