//! Canonical key encoding: Python values -> canonical bytes -> 128-bit key.

pub mod class_identity;
pub mod decode;
pub mod digest;
pub mod encode;
pub mod keybytes;
pub mod known_types;

use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// `oxicache.keys.canonical_bytes(value, shared=False)`: the canonical encoding of any supported value.
/// With `shared`, a value holding a class that no other process can name is refused (its bytes would
/// mean nothing elsewhere, see class_identity.rs).
#[pyfunction]
#[pyo3(signature = (value, shared=false))]
pub fn canonical_bytes<'py>(py: Python<'py>, value: &Bound<'py, PyAny>, shared: bool) -> PyResult<Bound<'py, PyBytes>> {
    let mut out = Vec::with_capacity(64);
    let mut enc = encode::Encoder::new(&mut out);
    enc.encode(value, 0).map_err(|e| e.into_pyerr(py, None, None))?;
    if let (true, Some(class)) = (shared, enc.process_local.take()) {
        return Err(crate::errors::key_encoding_error(
            py,
            format!("cannot build a key other processes can use from a value that involves the class {class}, which its module cannot name (made inside a function, by a factory or by type())"),
        ));
    }
    Ok(PyBytes::new(py, &out))
}

/// `oxicache.keys.key_of(func, inputs)`: the 128-bit key of `(func, inputs)`, as `CacheEntry.key`.
#[pyfunction]
pub fn key_of(py: Python<'_>, func: &str, inputs: &Bound<'_, pyo3::types::PyDict>) -> PyResult<u128> {
    entry_key_of(py, func, inputs, false)
}

/// `oxicache.keys.key_of_many(func, inputs_iterable)`: the key of `(func, inputs)` for each inputs dict,
/// in order, as a list; one call instead of one per entry (a batch's keys, a bulk import).
#[pyfunction]
pub fn key_of_many(py: Python<'_>, func: &str, inputs: &Bound<'_, PyAny>) -> PyResult<Vec<u128>> {
    let items = inputs.try_iter().map_err(|_| {
        pyo3::exceptions::PyTypeError::new_err(format!(
            "key_of_many() takes an iterable of inputs dicts, got {}",
            type_name(inputs)
        ))
    })?;
    let mut keys = Vec::with_capacity(inputs.len().unwrap_or(0));
    for (index, item) in items.enumerate() {
        let item = item?;
        let dict = item.cast::<pyo3::types::PyDict>().map_err(|_| {
            pyo3::exceptions::PyTypeError::new_err(format!(
                "key_of_many(): item {index} is {}, not a dict of inputs (name -> value)",
                type_name(&item)
            ))
        })?;
        keys.push(entry_key_of(py, func, dict, false)?);
    }
    Ok(keys)
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// Encodings at least this long are digested with the GIL released (BLAKE3 takes ~15 us per 64 KiB
/// here, far more than giving the GIL away and taking it back), so other threads run meanwhile.
const DETACH_DIGEST_AT: usize = 64 * 1024;

/// `digest::key_of_pair`, with the GIL released for a large encoding.
fn digest_pair(py: Python<'_>, pair: &[u8]) -> u128 {
    if pair.len() < DETACH_DIGEST_AT {
        return digest::key_of_pair(pair);
    }
    crate::shutdown::trap_forced_unwind(|| py.detach(|| digest::key_of_pair(pair)))
}

/// The key of `(func, inputs)`, encoding into the per-thread scratch buffer after the digest's head, so
/// the whole pair is hashed in one piece. `shared`: the key is for a store other processes read, so an
/// input holding a class no other process can name is refused (`KeyEncodingError`, see
/// class_identity.rs).
pub fn entry_key_of(
    py: Python<'_>,
    func: &str,
    inputs: &Bound<'_, pyo3::types::PyDict>,
    shared: bool,
) -> PyResult<u128> {
    encode::with_scratch(|buf| {
        digest::write_head(buf, func);
        let head = buf.len();
        let mut enc = encode::Encoder::new(buf);
        let local = match enc.write_dict(inputs, 1) {
            Ok(()) => enc.process_local.take(),
            Err(_) => {
                // Encode again to name the input that failed (or, should it succeed, to use that).
                let (bytes, _, local) = encode_inputs_checked(py, inputs, Some(func))?;
                buf.truncate(head);
                buf.extend_from_slice(&bytes);
                local
            }
        };
        match local {
            Some(class) if shared => Err(local_class_error(py, func, inputs, &class)),
            _ => Ok(digest_pair(py, buf)),
        }
    })
}

/// Canonical bytes of an inputs dict, and whether they decode back to equal values (`decode.rs`); errors
/// name the offending input.
pub fn encode_inputs_flagged(
    py: Python<'_>,
    inputs: &Bound<'_, pyo3::types::PyDict>,
    func: Option<&str>,
) -> PyResult<(Vec<u8>, bool)> {
    encode_inputs_checked(py, inputs, func).map(|(bytes, lossless, _)| (bytes, lossless))
}

/// The inputs' canonical bytes, whether they decode back losslessly, and the first class with a
/// process-local identity they hold.
fn encode_inputs_checked(
    py: Python<'_>,
    inputs: &Bound<'_, pyo3::types::PyDict>,
    func: Option<&str>,
) -> PyResult<(Vec<u8>, bool, Option<String>)> {
    let mut out = Vec::with_capacity(64);
    let mut enc = encode::Encoder::new(&mut out);
    // Depth 1: the inputs dict sits inside the (func, inputs) tuple.
    match enc.write_dict(inputs, 1) {
        Ok(()) => {
            let (lossless, local) = (enc.lossless, enc.process_local.take());
            Ok((out, lossless, local))
        }
        Err(err) => {
            // Re-encode item by item to name the parameter that failed.
            for (name, value) in crate::snapshot::dict_items(inputs) {
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

/// The refusal of a key for a shared store: names the input that holds the process-local class.
pub fn local_class_error(py: Python<'_>, func: &str, inputs: &Bound<'_, pyo3::types::PyDict>, class: &str) -> PyErr {
    let mut holder = None;
    for (name, value) in crate::snapshot::dict_items(inputs) {
        let mut scratch = Vec::new();
        let mut enc = encode::Encoder::new(&mut scratch);
        if enc.encode(&value, 2).is_ok() && enc.process_local.is_some() {
            holder = name.str().ok().map(|s| s.to_string());
            break;
        }
    }
    let subject = match holder {
        Some(name) => format!("argument '{name}' of {func}"),
        None => format!("an argument of {func}"),
    };
    crate::errors::key_encoding_error(
        py,
        format!(
            "cannot key {subject} for a store other processes read: it involves the class {class}, which its \
             module cannot name (made inside a function, by a factory or by type()), so no other process can \
             tell it apart from another class of that name; define the class at module level, or cache the \
             call in process memory (InMemCache)"
        ),
    )
}

/// The key of a call, with what a snapshot of its inputs needs: each input's own canonical bytes (an
/// input the value codec cannot store is kept as those, `stored.rs`), computed once per call so that a
/// `__cache_key__` hook runs once.
pub struct CallKey {
    pub key: u128,
    /// The first class with a process-local identity the inputs hold.
    pub local: Option<String>,
    /// (name, canonical bytes of the value) of each input.
    pub values: Vec<(Py<PyAny>, Vec<u8>)>,
}

/// `entry_key_of(func, inputs)` encoding each input on its own first: the same key, and the inputs'
/// bytes kept (`CallKey`). Errors name the input.
pub fn call_key(py: Python<'_>, func: &str, inputs: &Bound<'_, pyo3::types::PyDict>) -> PyResult<CallKey> {
    let mut items = Vec::new(); // (name's canonical bytes, value's canonical bytes, name)
    let mut local = None;
    for (name, value) in crate::snapshot::dict_items(inputs) {
        let mut name_bytes = Vec::new();
        let mut enc = encode::Encoder::new(&mut name_bytes);
        enc.encode(&name, 2).map_err(|e| e.into_pyerr(py, Some(func), None))?;
        let mut value_bytes = Vec::new();
        let mut enc = encode::Encoder::new(&mut value_bytes);
        if let Err(err) = enc.encode(&value, 2) {
            let name = name.str().map(|s| s.to_string()).unwrap_or_default();
            return Err(err.into_pyerr(py, Some(func), Some(&name)));
        }
        if local.is_none() {
            local = enc.process_local.take();
        }
        items.push((name_bytes, value_bytes, name.unbind()));
    }
    // The dict encoding: items sorted by their bytes; the names are distinct and self-delimiting, so
    // they decide the order alone (as in `Encoder::write_dict`).
    items.sort_by(|a, b| a.0.cmp(&b.0));
    let mut bytes = vec![encode::tag::DICT];
    encode::write_varint(&mut bytes, items.len() as u64);
    for (name_bytes, value_bytes, _) in &items {
        bytes.extend_from_slice(name_bytes);
        bytes.extend_from_slice(value_bytes);
    }
    Ok(CallKey {
        key: digest::entry_key(func, &bytes),
        local,
        values: items
            .into_iter()
            .map(|(_, value_bytes, name)| (name, value_bytes))
            .collect(),
    })
}
