//! Failures of the native core, converted to Python exceptions in one place.
//!
//! The exception classes live in `oxicache/errors.py` (so `KeyEncodingError` can be both a `CacheError`
//! and a `TypeError`); Rust looks them up once and raises them.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

use crate::limits::MAX_DEPTH;

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
        let nested: String = match &self {
            CoreError::Unsupported { path, .. } | CoreError::TooDeep { path, .. } | CoreError::Changed { path, .. } => {
                render_path(path)
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

/// A failure's place inside a nested value (`[0]['a']`), from segments pushed innermost first on the way
/// back up. A path through a cycle is long, so only its ends are kept.
fn render_path(path: &[String]) -> String {
    if path.len() > 8 {
        let outer: String = path.iter().rev().take(4).cloned().collect();
        let inner: String = path.iter().take(2).rev().cloned().collect();
        format!("{outer}...{inner}")
    } else {
        path.iter().rev().cloned().collect()
    }
}

// ---- the value codec's encoding failures ---------------------------------------------------------

/// An encoding failure: a message and the path to the value inside the whole (innermost first).
pub struct EncodeError {
    message: String,
    path: Vec<String>,
    /// For nesting beyond the limit: the innermost container on the way back up (its type names the
    /// problem), and whether it was met again further up (a reference cycle).
    too_deep: Option<TooDeep>,
}

/// See `EncodeError::too_deep`.
struct TooDeep {
    container: Option<(usize, String)>,
    cyclic: bool,
}

pub type EncodeResult = Result<(), EncodeError>;

impl EncodeError {
    pub fn new(message: impl Into<String>) -> Self {
        EncodeError {
            message: message.into(),
            path: Vec::new(),
            too_deep: None,
        }
    }

    /// Called by each container on the way back up from a failure: the first records itself, and
    /// meeting the same container again higher up proves a cycle.
    pub fn through(mut self, container: &Bound<'_, PyAny>) -> Self {
        if let Some(deep) = &mut self.too_deep {
            let addr = container.as_ptr() as usize;
            match &deep.container {
                None => {
                    let name = container
                        .get_type()
                        .qualname()
                        .map(|n| n.to_string())
                        .unwrap_or_default();
                    deep.container = Some((addr, name));
                }
                Some((first, _)) if *first == addr => deep.cyclic = true,
                Some(_) => {}
            }
        }
        self
    }

    /// Records that the failure happened inside `segment` of the enclosing container.
    pub fn inside(mut self, segment: impl FnOnce() -> String) -> Self {
        if self.path.len() < 64 {
            self.path.push(segment());
        }
        self
    }

    /// A container that changed while its items were encoded (Python code run by an item changed it): its
    /// record would hold neither the state before nor the one after.
    pub fn changed(container: &Bound<'_, PyAny>) -> Self {
        let name = container
            .get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "container".into());
        EncodeError::new(format!(
            "the {name} changed while it was being encoded (by code that encoding one of its items ran, or by \
             another thread meanwhile); store a value nobody changes during the call"
        ))
    }

    /// Nesting beyond the limit (a cycle always ends here); the containers on the way up complete it.
    pub fn too_deep() -> Self {
        let mut err = EncodeError::new(String::new());
        err.too_deep = Some(TooDeep {
            container: None,
            cyclic: false,
        });
        err
    }

    pub fn into_pyerr(mut self, py: Python<'_>) -> PyErr {
        if let Some(deep) = &self.too_deep {
            let name = deep.container.as_ref().map(|(_, n)| n.as_str()).unwrap_or("value");
            self.message = if deep.cyclic {
                format!("a '{name}' that contains itself (a reference cycle) cannot be stored; store an acyclic value")
            } else {
                format!("a '{name}' nested deeper than {MAX_DEPTH} levels cannot be stored; store a flatter value")
            };
        }
        let path = render_path(&self.path);
        let at = if path.is_empty() {
            String::new()
        } else {
            format!(" at value{path}")
        };
        codec_error(
            py,
            "ValueEncodingError",
            format!("cannot store the value{at}: {}", self.message),
        )
    }
}

impl From<PyErr> for EncodeError {
    fn from(err: PyErr) -> Self {
        Python::attach(|py| EncodeError::new(format!("{}", err.value(py))))
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
