//! Failures of the native core, converted to Python exceptions in one place.
//!
//! The exception classes live in `oxicache/errors.py` (so `KeyEncodingError` can be both a `CacheError`
//! and a `TypeError`); Rust looks them up once and raises them.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

/// Why an argument could not be turned into canonical key bytes.
#[derive(Debug)]
pub enum CoreError {
    /// No encoding rule applies to a value of this type.
    Unsupported { type_name: String, path: Vec<String> },
    /// Nesting deeper than the limit; `cyclic` when a container on the path contains itself.
    /// `probe` is the address of the innermost container at the limit (0 until one records it): the same
    /// address further up proves a cycle, at no cost to the successful path.
    TooDeep {
        limit: usize,
        cyclic: bool,
        path: Vec<String>,
        probe: usize,
    },
    /// A container changed while its items were being encoded (by a hook, or by another thread while a
    /// hook ran): its key would describe neither the state before nor the one after.
    Changed { container: String, path: Vec<String> },
    /// A Python error raised while encoding (a `__cache_key__` hook, a registered encoder, ...).
    Python(PyErr),
    /// Builtins-only encoding met something that needs Python code (or an error report): redo the
    /// whole call on the full path. Never shown to users.
    NeedsFullPath,
}

impl From<PyErr> for CoreError {
    fn from(err: PyErr) -> Self {
        CoreError::Python(err)
    }
}

impl CoreError {
    /// Record that the failure happened inside `segment` (an index or a dict key) of the enclosing value.
    pub fn inside(mut self, segment: impl FnOnce() -> String) -> Self {
        match &mut self {
            CoreError::Unsupported { path, .. } | CoreError::TooDeep { path, .. } | CoreError::Changed { path, .. } => {
                path.push(segment())
            }
            CoreError::Python(_) | CoreError::NeedsFullPath => {}
        }
        self
    }

    /// Called by each container on the way back up from a depth failure: the innermost container records
    /// its address, and finding that address again higher up proves a reference cycle.
    pub fn cyclic_through(mut self, container: &Bound<'_, PyAny>) -> Self {
        if let CoreError::TooDeep { cyclic, probe, .. } = &mut self {
            let addr = container.as_ptr() as usize;
            if *probe == 0 {
                *probe = addr;
            } else if *probe == addr {
                *cyclic = true;
            }
        }
        self
    }

    /// Turn into a Python exception. `param` names the argument being encoded, `func` the function.
    pub fn into_pyerr(self, py: Python<'_>, func: Option<&str>, param: Option<&str>) -> PyErr {
        // Segments were pushed innermost first; a path through a cycle is long, so keep its ends.
        let nested: String = match &self {
            CoreError::Unsupported { path, .. } | CoreError::TooDeep { path, .. } | CoreError::Changed { path, .. }
                if path.len() > 8 =>
            {
                let outer: String = path.iter().rev().take(4).cloned().collect();
                let inner: String = path.iter().take(2).rev().cloned().collect();
                format!("{outer}...{inner}")
            }
            CoreError::Unsupported { path, .. } | CoreError::TooDeep { path, .. } | CoreError::Changed { path, .. } => {
                path.iter().rev().cloned().collect()
            }
            CoreError::Python(_) | CoreError::NeedsFullPath => String::new(),
        };
        let subject = match (param, func) {
            (Some(p), Some(f)) => format!("argument '{p}{nested}' of {f}"),
            (Some(p), None) => format!("input '{p}{nested}'"),
            (None, _) if nested.is_empty() => "value".to_string(),
            (None, _) => format!("value at {nested}"),
        };
        let exclude_hint = match param {
            Some(p) => format!("exclude it (memoize(exclude=['{p}'])), "),
            None => String::new(),
        };
        match self {
            CoreError::Unsupported { type_name, .. } => key_encoding_error(
                py,
                format!(
                    "cannot build a cache key from {subject}: type '{type_name}' has no canonical encoding; \
                     {exclude_hint}give the type a __cache_key__() method returning encodable data, \
                     or register an encoder with oxicache.register_key_encoder({type_name}, fn)"
                ),
            ),
            CoreError::TooDeep { cyclic: true, .. } => key_encoding_error(
                py,
                format!(
                    "cannot build a cache key from {subject}: the container contains itself (a reference cycle); \
                     {exclude_hint}or pass an acyclic value"
                ),
            ),
            CoreError::TooDeep { limit, cyclic: false, .. } => key_encoding_error(
                py,
                format!("cannot build a cache key from {subject}: nesting exceeds {limit} levels; {exclude_hint}or pass a flatter value"),
            ),
            CoreError::Changed { container, .. } => key_encoding_error(
                py,
                format!(
                    "cannot build a cache key from {subject}: the {container} changed while its key was being \
                     computed (by a __cache_key__ hook or encoder, or by another thread meanwhile); \
                     {exclude_hint}or do not change arguments while the call is being made"
                ),
            ),
            CoreError::Python(err) => err,
            CoreError::NeedsFullPath => pyo3::exceptions::PySystemError::new_err("oxicache: internal fast-path fallback escaped"),
        }
    }
}

static ERRORS_MODULE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn errors_class<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyType>> {
    let module = ERRORS_MODULE.get_or_try_init(py, || py.import("oxicache.errors").map(|m| m.into_any().unbind()))?;
    Ok(module.bind(py).getattr(name)?.cast_into::<PyType>()?)
}

/// A `KeyEncodingError` (subclass of `CacheError` and `TypeError`) with `message`.
pub fn key_encoding_error(py: Python<'_>, message: String) -> PyErr {
    match errors_class(py, "KeyEncodingError") {
        Ok(cls) => PyErr::from_type(cls, message),
        Err(err) => err,
    }
}

/// A `ValueEncodingError` or `ValueDecodingError` (see `oxicache/errors.py`).
pub fn codec_error(py: Python<'_>, class: &str, message: String) -> PyErr {
    match errors_class(py, class) {
        Ok(cls) => PyErr::from_type(cls, message),
        Err(err) => err,
    }
}

/// True when `err` is an instance of the named oxicache exception class.
pub fn is_codec_error(py: Python<'_>, err: &PyErr, class: &str) -> bool {
    errors_class(py, class).is_ok_and(|cls| err.is_instance(py, &cls))
}
