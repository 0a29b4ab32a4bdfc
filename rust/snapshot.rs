//! Containers read in one step, before any of their items is encoded.
//!
//! Encoding an item can run Python code (a `__cache_key__` hook, a registered encoder, a dataclass
//! property), and that code, or another thread while it runs, can change the container being encoded.
//! PyO3's iterators panic when a dict or set changes size under them (a `PanicException`, which
//! `except Exception` does not catch), and a list read item by item could be written with one count in
//! its header and another in its body (a record no reader can decode). Reading every item first, without
//! running any Python code in between (so with the GIL held throughout, nothing else can run), gives one
//! consistent state of the container: the count and the items always agree.

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use smallvec::SmallVec;

pub type Items<'py> = SmallVec<[Bound<'py, PyAny>; 8]>;
pub type Pairs<'py> = SmallVec<[(Bound<'py, PyAny>, Bound<'py, PyAny>); 8]>;

/// The (key, value) pairs of a dict (or dict subclass's own storage), in order.
pub fn dict_items<'py>(dict: &Bound<'py, PyDict>) -> Pairs<'py> {
    let py = dict.py();
    let mut items = Pairs::new();
    let mut pos: ffi::Py_ssize_t = 0;
    let mut k: *mut ffi::PyObject = std::ptr::null_mut();
    let mut v: *mut ffi::PyObject = std::ptr::null_mut();
    // SAFETY: PyDict_Next runs no Python code and hands out borrowed references, each turned into an
    // owned one at once.
    while unsafe { ffi::PyDict_Next(dict.as_ptr(), &mut pos, &mut k, &mut v) } != 0 {
        items.push(unsafe { (Bound::from_borrowed_ptr(py, k), Bound::from_borrowed_ptr(py, v)) });
    }
    items
}

/// The items of a list (or list subclass's own storage).
pub fn list_items<'py>(list: &Bound<'py, PyList>) -> Items<'py> {
    let py = list.py();
    // SAFETY: the size and items are read without running Python code, so the list cannot change
    // between the reads; each borrowed item becomes an owned reference at once.
    unsafe {
        let n = ffi::PyList_GET_SIZE(list.as_ptr());
        (0..n)
            .map(|i| Bound::from_borrowed_ptr(py, ffi::PyList_GET_ITEM(list.as_ptr(), i)))
            .collect()
    }
}

/// The items of a set or frozenset (or of a subclass's own storage: the builtin set iterator is used,
/// not an overridden `__iter__`).
pub fn set_items<'py>(set: &Bound<'py, PyAny>) -> PyResult<Items<'py>> {
    let py = set.py();
    let mut items = Items::new();
    // SAFETY: `set` is a set or frozenset (checked by the callers); set and frozenset share the builtin
    // iterator, which runs no Python code; the iterator is owned and released here.
    unsafe {
        let set_iter = (*std::ptr::addr_of_mut!(ffi::PySet_Type))
            .tp_iter
            .ok_or_else(|| pyo3::exceptions::PyTypeError::new_err("set is not iterable"))?;
        let iterator = Bound::from_owned_ptr_or_err(py, set_iter(set.as_ptr()))?;
        loop {
            let item = ffi::PyIter_Next(iterator.as_ptr());
            if item.is_null() {
                break;
            }
            items.push(Bound::from_owned_ptr(py, item));
        }
    }
    match PyErr::take(py) {
        Some(err) => Err(err),
        None => Ok(items),
    }
}

thread_local! {
    /// Counts the values whose encoding may have run Python code (anything but the builtin containers and
    /// scalars). A container whose items were encoded without it moving cannot have changed meanwhile.
    static PYTHON_MAY_HAVE_RUN: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Called by the encoders before encoding a value that may run Python code.
#[inline]
pub fn note_python() {
    PYTHON_MAY_HAVE_RUN.with(|c| c.set(c.get().wrapping_add(1)));
}

/// A mark to pass to `python_ran_since` after encoding a container's items.
#[inline]
pub fn mark() -> u64 {
    PYTHON_MAY_HAVE_RUN.with(std::cell::Cell::get)
}

/// True when some value encoded since `mark` may have run Python code (which could change containers).
#[inline]
pub fn python_ran_since(mark: u64) -> bool {
    PYTHON_MAY_HAVE_RUN.with(|c| c.get() != mark)
}

/// True when `dict` still holds exactly `pairs` (the same key and value objects, in the same order).
pub fn dict_unchanged(dict: &Bound<'_, PyDict>, pairs: &Pairs<'_>) -> bool {
    let now = dict_items(dict);
    now.len() == pairs.len() && now.iter().zip(pairs).all(|((k, v), (k0, v0))| k.is(k0) && v.is(v0))
}

/// True when `list` still holds exactly `items`.
pub fn list_unchanged(list: &Bound<'_, PyList>, items: &Items<'_>) -> bool {
    let now = list_items(list);
    now.len() == items.len() && now.iter().zip(items).all(|(a, b)| a.is(b))
}

/// True when `set` still holds exactly `items`.
pub fn set_unchanged(set: &Bound<'_, PyAny>, items: &Items<'_>) -> PyResult<bool> {
    let now = set_items(set)?;
    Ok(now.len() == items.len() && now.iter().zip(items).all(|(a, b)| a.is(b)))
}
