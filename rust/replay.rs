//! `Replay`: what a memoized generator function returns on a hit. It yields the stored items one by one,
//! like a generator (`send`, `throw`, `close`), at the speed of a list iterator.
//!
//! A Python generator replaying a list costs about 2.7x iterating the list (each item resumes a frame),
//! and PyO3's `__next__` trampoline still about 2x, so `install` points the type's `tp_iternext` at a
//! function that reads the next item straight from the list or tuple: no Python code, no allocation.

use std::sync::atomic::{AtomicUsize, Ordering};

use pyo3::exceptions::{PyStopIteration, PyTypeError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple, PyType};

/// Position after the last item, or after `close()`.
const DONE: usize = usize::MAX;

#[pyclass(module = "oxicache._core", name = "Replay", frozen)]
pub struct Replay {
    /// A list or a tuple.
    items: Py<PyAny>,
    next: AtomicUsize,
}

impl Replay {
    /// The next item, or None at the end. Runs no Python code (it is called as the raw `tp_iternext`).
    #[inline]
    fn step(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        let i = self.next.load(Ordering::Relaxed);
        let seq = self.items.as_ptr();
        // SAFETY: `items` is an exact list or tuple (checked by the constructor) and `i` is bounds-checked
        // against its current length (a list may have been mutated since).
        unsafe {
            let item = if ffi::PyList_CheckExact(seq) != 0 {
                (i < ffi::PyList_GET_SIZE(seq) as usize).then(|| ffi::PyList_GET_ITEM(seq, i as ffi::Py_ssize_t))
            } else {
                (i < ffi::PyTuple_GET_SIZE(seq) as usize).then(|| ffi::PyTuple_GET_ITEM(seq, i as ffi::Py_ssize_t))
            };
            match item {
                Some(item) => {
                    // Plain load and store: every caller holds the GIL (see memo::bump).
                    self.next.store(i + 1, Ordering::Relaxed);
                    Some(Bound::from_borrowed_ptr(py, item).unbind())
                }
                None => {
                    self.next.store(DONE, Ordering::Relaxed);
                    None
                }
            }
        }
    }
}

/// `tp_iternext`: NULL without an exception set is the end of iteration.
unsafe extern "C" fn replay_next(slf: *mut ffi::PyObject) -> *mut ffi::PyObject {
    // SAFETY: CPython calls slots with the thread attached, and only on instances of the type.
    let py = unsafe { Python::assume_attached() };
    let replay = unsafe { Borrowed::from_ptr(py, slf).cast_unchecked::<Replay>() }.get();
    match replay.step(py) {
        Some(item) => item.into_ptr(),
        None => std::ptr::null_mut(),
    }
}

/// Points `Replay`'s `tp_iternext` at `replay_next` (called once, at module init).
pub fn install(tp: &Bound<'_, PyType>) {
    // SAFETY: the type object is live and not yet used; under the GIL nobody else mutates it.
    unsafe {
        let tp = tp.as_type_ptr();
        (*tp).tp_iternext = Some(replay_next);
        ffi::PyType_Modified(tp);
    }
}

#[pymethods]
impl Replay {
    /// Replay(items): iterates `items` (a list or tuple is used as is; any other iterable is copied).
    #[new]
    pub(crate) fn new(items: &Bound<'_, PyAny>) -> PyResult<Self> {
        let items = if items.is_exact_instance_of::<PyList>() || items.is_exact_instance_of::<PyTuple>() {
            items.clone().unbind()
        } else {
            let Ok(iter) = items.try_iter() else {
                let t = items.get_type().name()?;
                return Err(PyTypeError::new_err(format!(
                    "a cached generator's value must be the list of its items, got {t}"
                )));
            };
            PyTuple::new(items.py(), iter.collect::<PyResult<Vec<_>>>()?)?
                .into_any()
                .unbind()
        };
        Ok(Replay {
            items,
            next: AtomicUsize::new(0),
        })
    }

    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    /// Replaced by the raw slot at module init; kept so the type is an iterator to PyO3 as well.
    fn __next__(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.step(py)
    }

    /// Like `next()`: replayed items do not depend on sent values (as on the recording run).
    fn send(&self, py: Python<'_>, _value: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.step(py).ok_or_else(|| PyStopIteration::new_err(()))
    }

    /// Ends the replay and raises the exception, as a generator without a handler does.
    #[pyo3(signature = (typ, val=None, _tb=None))]
    fn throw(
        &self,
        typ: &Bound<'_, PyAny>,
        val: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        self.close();
        if typ.is_instance_of::<pyo3::exceptions::PyBaseException>() {
            return Err(PyErr::from_value(typ.clone()));
        }
        let exc = match val {
            Some(v) if !v.is_none() => typ.call1((v,))?,
            _ => typ.call0()?,
        };
        Err(PyErr::from_value(exc))
    }

    fn close(&self) {
        self.next.store(DONE, Ordering::Relaxed);
    }

    fn __length_hint__(&self, py: Python<'_>) -> usize {
        let i = self.next.load(Ordering::Relaxed);
        let len = self.items.bind(py).len().unwrap_or(0);
        len.saturating_sub(i)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let len = self.items.bind(py).len().unwrap_or(0);
        format!("<oxicache replay of {len} cached items>")
    }

    fn __traverse__(&self, visit: pyo3::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        visit.call(&self.items)
    }
}
