//! `KeyBytes`: what a persistent backend stores for an argument that has a key but no value encoding
//! (an object with `__cache_key__`, a memoized method's `self`). It holds the argument's canonical key
//! bytes, and the key encoder writes those bytes back verbatim, so an entry read back recomputes to the
//! same key although the original object is gone.

use pyo3::prelude::*;
use pyo3::types::PyBytes;

#[pyclass(module = "oxicache._core", name = "KeyBytes", frozen, eq, hash)]
#[derive(PartialEq, Eq, Hash)]
pub struct KeyBytes {
    pub bytes: Vec<u8>,
}

#[pymethods]
impl KeyBytes {
    /// KeyBytes(canonical): `canonical` must be `oxicache.keys.canonical_bytes(value)` of some value.
    #[new]
    fn new(canonical: Vec<u8>) -> Self {
        KeyBytes { bytes: canonical }
    }

    /// The canonical key bytes of the argument this stands for.
    #[getter]
    fn canonical<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.bytes)
    }

    fn __repr__(&self) -> String {
        let hex: String = self.bytes.iter().take(12).map(|b| format!("{b:02x}")).collect();
        let more = if self.bytes.len() > 12 { "..." } else { "" };
        format!("KeyBytes({hex}{more}, {} bytes)", self.bytes.len())
    }

    fn __reduce__(&self, py: Python<'_>) -> PyResult<(Py<PyAny>, (Py<PyBytes>,))> {
        let cls = py.get_type::<KeyBytes>().into_any().unbind();
        Ok((cls, (PyBytes::new(py, &self.bytes).unbind(),)))
    }
}
