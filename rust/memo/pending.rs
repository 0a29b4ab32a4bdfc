//! `Pending`: a missed call of a memoized coroutine or generator function, completed by its Python
//! wrapper once the function has run in full (`oxicache.memo.wrappers`).

use pyo3::prelude::*;
use pyo3::types::PyDict;
use pyo3::{PyTraverseError, PyVisit};

use super::Memoizer;

/// A missed lookup of a memoized coroutine or generator function (`Memoizer.lookup`): the Python
/// wrapper runs the function and hands the complete result to `store`.
#[pyclass(module = "oxicache._core", name = "Pending", frozen)]
pub struct Pending {
    pub(super) memo: Py<Memoizer>,
    pub(super) key: Vec<u8>,
    /// The entry's inputs when they do not decode from the key (`Memoizer::stored_inputs`).
    pub(super) inputs: Option<Py<PyDict>>,
    pub(super) bypass: bool,
    /// Under `oxicache.refresh()`: the stored value is what is being replaced, never an answer.
    pub(super) refresh: bool,
}

#[pymethods]
impl Pending {
    /// The store key of the call (single-flight groups concurrent calls by it).
    #[getter]
    fn key<'py>(&self, py: Python<'py>) -> Bound<'py, pyo3::types::PyBytes> {
        pyo3::types::PyBytes::new(py, &self.key)
    }

    /// True under `oxicache.bypass()`: run the function, store nothing.
    #[getter]
    fn bypass(&self) -> bool {
        self.bypass
    }

    /// Stores the call's complete result (unless bypassed or rejected by `cache_if`).
    fn store(&self, py: Python<'_>, output: Py<PyAny>) -> PyResult<()> {
        if self.bypass {
            return Ok(());
        }
        let inputs = self.inputs.as_ref().map(|i| i.clone_ref(py));
        self.memo.get().store_output(py, &self.key, inputs, &output)
    }

    /// For single-flight: `(True, value)` when a value was stored for this key since the lookup missed
    /// (not counted as a hit), else `(False, None)`.
    fn recheck(&self, py: Python<'_>) -> (bool, Py<PyAny>) {
        if self.bypass || self.refresh {
            return (false, py.None());
        }
        match self.memo.get().store.get().peek_value(py, &self.key) {
            Some(value) => (true, value),
            None => (false, py.None()),
        }
    }

    /// Counts the function's failure (nothing is stored).
    fn failed(&self) {
        self.memo.get().count_error();
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.memo)?;
        if let Some(i) = &self.inputs {
            visit.call(i)?;
        }
        Ok(())
    }
}
