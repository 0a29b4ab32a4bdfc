//! Per-call cache controls (`oxicache.bypass()`, `oxicache.refresh()`), kept in a context variable so
//! they apply to the current thread or asyncio task only, never process-wide.
//!
//! Reading a context variable costs about a fifth of a memoized hit, so the hot path first checks a
//! process-wide flag that is set the first time any control is entered and never cleared: a task that
//! copied its context inside `with bypass():` can outlive the block, so "no control is active right now"
//! is not something a counter could tell.

use std::sync::atomic::{AtomicBool, Ordering};

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

static USED: AtomicBool = AtomicBool::new(false);
static VAR: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// How memoized calls in the current context treat the cache.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    /// Read, and store misses.
    Normal = 0,
    /// Neither read nor store: the function runs.
    Bypass = 1,
    /// Don't read; run the function and store the fresh result.
    Refresh = 2,
}

fn var(py: Python<'_>) -> PyResult<&Py<PyAny>> {
    VAR.get_or_try_init(py, || {
        // SAFETY: the name is a NUL-terminated literal; a NULL default means "unset" reads give NULL.
        let var = unsafe { ffi::PyContextVar_New(c"oxicache_mode".as_ptr(), std::ptr::null_mut()) };
        Ok(unsafe { Bound::from_owned_ptr_or_err(py, var) }?.unbind())
    })
}

/// True once any control has been entered in this process (see the module comment).
#[inline]
pub fn maybe_active() -> bool {
    USED.load(Ordering::Relaxed)
}

/// The current context's mode.
pub fn mode(py: Python<'_>) -> PyResult<Mode> {
    if !maybe_active() {
        return Ok(Mode::Normal);
    }
    let var = var(py)?;
    let mut value: *mut ffi::PyObject = std::ptr::null_mut();
    // SAFETY: `var` is a ContextVar; on success `value` is a new reference or NULL when unset.
    if unsafe { ffi::PyContextVar_Get(var.as_ptr(), std::ptr::null_mut(), &mut value) } < 0 {
        return Err(PyErr::fetch(py));
    }
    if value.is_null() {
        return Ok(Mode::Normal);
    }
    let value = unsafe { Bound::from_owned_ptr(py, value) };
    Ok(match value.extract::<u8>()? {
        1 => Mode::Bypass,
        // 3: `max_age()` is active. The native store keeps no entry's age, so no stored value is known
        // to be young enough: the call recomputes and stores, as under refresh() (docs/memoize.md).
        2 | 3 => Mode::Refresh,
        _ => Mode::Normal,
    })
}

/// The context variable the Python context managers set (0 normal, 1 bypass, 2 refresh, 3 max_age).
#[pyfunction]
pub fn controls_var(py: Python<'_>) -> PyResult<Py<PyAny>> {
    Ok(var(py)?.clone_ref(py))
}

/// Called by the context managers before they first set the variable.
#[pyfunction]
pub fn controls_activated() {
    USED.store(true, Ordering::Relaxed);
}
