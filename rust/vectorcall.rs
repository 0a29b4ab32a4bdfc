//! The vectorcall entry point of `Memoizer` (PEP 590).
//!
//! PyO3 gives a pyclass `__call__` only through `tp_call`, for which CPython first packs the arguments
//! into a tuple: about 20 ns of a ~95 ns hit (perf: `_PyTuple_FromArray`, `tupledealloc`, malloc/free).
//! Here the memoizer reads its arguments straight from the caller's stack. The slot is installed on the
//! type once, by `install`, after the first instance exists (its address gives the field's offset).

use std::sync::atomic::{AtomicBool, Ordering};

use pyo3::ffi;
use pyo3::impl_::trampoline;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use smallvec::SmallVec;

use crate::memo::Memoizer;

/// PyO3's fastcall trampoline does what every entry from CPython needs: it registers the thread as
/// attached (so `Py<T>` values dropped during the call are released at once, not queued for later),
/// applies queued releases, and turns panics into Python exceptions. Its signature is vectorcall's, with
/// `nargsf` typed as `Py_ssize_t`.
struct Entry;

impl trampoline::MethodDef<trampoline::fastcall_cfunction_with_keywords::Func> for Entry {
    const METH: trampoline::fastcall_cfunction_with_keywords::Func = entry;
}

unsafe fn entry(
    py: Python<'_>,
    callable: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargsf: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> PyResult<*mut ffi::PyObject> {
    unsafe { dispatch(py, callable, args, nargsf as usize, kwnames) }.map(Py::into_ptr)
}

/// The function stored in each `Memoizer` for CPython to find through `tp_vectorcall_offset`.
pub fn memoizer_vectorcall() -> ffi::vectorcallfunc {
    vectorcall_entry
}

/// Tries the hit path first: positional arguments that are exact builtins, a live entry. It runs no
/// Python code and drops no Python object, so it needs none of the trampoline's bookkeeping (which costs
/// about a tenth of a hit). Everything else goes through the trampoline.
unsafe extern "C" fn vectorcall_entry(
    callable: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargsf: usize,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    let hit = std::panic::catch_unwind(|| unsafe { fast_hit(callable, args, nargsf, kwnames) });
    if let Ok(Some(value)) = hit {
        return value.into_ptr();
    }
    // SAFETY: CPython calls with the thread attached; the trampoline's nargs is this nargsf, read back
    // as unsigned by `entry`.
    unsafe { trampoline::fastcall_cfunction_with_keywords::<Entry>(callable, args, nargsf as ffi::Py_ssize_t, kwnames) }
}

/// How the caller's argument array binds to the parameters.
enum StackBinding {
    /// Parameter i is `args[i]` below `nargs`, its default above (the common, allocation-free case).
    Positional(usize),
    /// Slot i is an index into the array, or `usize::MAX` for the parameter's default.
    Slots(SmallVec<[usize; 8]>),
}

/// The binding of a vectorcall, or None when only the general binder can tell (variadic parameters,
/// unknown or repeated names, a missing argument without default).
///
/// # Safety
/// `kwnames` is NULL or a tuple of str.
unsafe fn stack_binding(memo: &Memoizer, nargs: usize, kwnames: *mut ffi::PyObject) -> Option<StackBinding> {
    let nkw = if kwnames.is_null() {
        0
    } else {
        (unsafe { ffi::PyTuple_GET_SIZE(kwnames) }) as usize
    };
    if nkw == 0 && memo.sig().binds_positionally(nargs) {
        return Some(StackBinding::Positional(nargs));
    }
    // SAFETY: kwnames holds `nkw` items, alive as long as the tuple.
    let names: SmallVec<[*mut ffi::PyObject; 8]> = (0..nkw)
        .map(|k| unsafe { ffi::PyTuple_GET_ITEM(kwnames, k as ffi::Py_ssize_t) })
        .collect();
    memo.sig().keyword_slots(nargs, &names).map(StackBinding::Slots)
}

impl StackBinding {
    /// Parameter i's value.
    ///
    /// # Safety
    /// `args` holds every index this binding refers to, alive for the duration of the call.
    #[inline]
    unsafe fn value<'a, 'py>(
        &self,
        py: Python<'py>,
        memo: &'a Memoizer,
        args: *const *mut ffi::PyObject,
        i: usize,
    ) -> Borrowed<'a, 'py, PyAny> {
        let j = match self {
            StackBinding::Positional(nargs) => (i < *nargs).then_some(i),
            StackBinding::Slots(slots) => (slots[i] != usize::MAX).then_some(slots[i]),
        };
        match j {
            Some(j) => unsafe { Borrowed::from_ptr(py, *args.add(j)) },
            None => memo.sig().default_of(py, i),
        }
    }
}

unsafe fn fast_hit(
    callable: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargsf: usize,
    kwnames: *mut ffi::PyObject,
) -> Option<Py<PyAny>> {
    // SAFETY: CPython calls vectorcall functions with the thread attached.
    let py = unsafe { Python::assume_attached() };
    let memo: &Memoizer = unsafe { Borrowed::from_ptr(py, callable).cast_unchecked::<Memoizer>() }.get();
    if memo.is_passthrough() {
        return None; // nothing to look up: straight to the call
    }
    let nargs = unsafe { ffi::PyVectorcall_NARGS(nargsf) } as usize;
    let binding = unsafe { stack_binding(memo, nargs, kwnames) }?;
    memo.fast_hit(py, |i| unsafe { binding.value(py, memo, args, i) })
}

/// # Safety
/// Called with the thread attached, `callable` a live `Memoizer`, `args` holding `nargs` positional
/// arguments followed by one value per name in `kwnames` (a tuple or NULL).
unsafe fn dispatch(
    py: Python<'_>,
    callable: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargsf: usize,
    kwnames: *mut ffi::PyObject,
) -> PyResult<Py<PyAny>> {
    let memo_obj = unsafe { Bound::from_borrowed_ptr(py, callable) };
    let memo: &Memoizer = unsafe { memo_obj.cast_unchecked::<Memoizer>() }.get();
    if memo.is_passthrough() {
        // No key: the call goes through as it came.
        return memo.run_through(|| unsafe {
            crate::shutdown::vectorcall(py, memo.func().as_ptr(), args, nargsf, kwnames).map(Bound::unbind)
        });
    }
    let nargs = unsafe { ffi::PyVectorcall_NARGS(nargsf) } as usize;
    if let Some(binding) = unsafe { stack_binding(memo, nargs, kwnames) } {
        // Bound straight from the caller's array; a miss forwards the call as it came.
        return memo.call_with(
            py,
            |i| unsafe { binding.value(py, memo, args, i) },
            || unsafe {
                crate::shutdown::vectorcall(py, memo.func().as_ptr(), args, nargsf, kwnames).map(Bound::unbind)
            },
        );
    }
    // Variadics or an unusual spelling: rebuild (args, kwargs) and take the general binder.
    let nkw = if kwnames.is_null() {
        0
    } else {
        (unsafe { ffi::PyTuple_GET_SIZE(kwnames) }) as usize
    };
    // SAFETY: the caller keeps `nargs + nkw` arguments alive for the duration of the call.
    let stack: &[*mut ffi::PyObject] = if nargs + nkw == 0 {
        &[]
    } else {
        unsafe { std::slice::from_raw_parts(args, nargs + nkw) }
    };
    let positional = PyTuple::new(py, stack[..nargs].iter().map(|&p| unsafe { Borrowed::from_ptr(py, p) }))?;
    let kwargs = if nkw == 0 {
        None
    } else {
        let names = unsafe { Bound::from_borrowed_ptr(py, kwnames).cast_into_unchecked::<PyTuple>() };
        let dict = PyDict::new(py);
        for (name, &value) in names.iter().zip(&stack[nargs..]) {
            dict.set_item(name, unsafe { Borrowed::from_ptr(py, value) })?;
        }
        Some(dict)
    };
    memo.call_general(py, &positional, kwargs.as_ref())
}

static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Makes the `Memoizer` type vectorcall-capable. Idempotent; `memo` is any instance (all share a layout).
#[pyfunction]
pub fn install_vectorcall(memo: &Bound<'_, Memoizer>) {
    if INSTALLED.load(Ordering::Acquire) {
        return;
    }
    let object = memo.as_ptr() as usize;
    let field = std::ptr::addr_of!(memo.get().vectorcall) as usize;
    // SAFETY: the type object is live; the offset points at a `vectorcallfunc` inside every instance, set
    // by the constructor. Under the GIL nobody else is mutating the type.
    unsafe {
        let tp = ffi::Py_TYPE(memo.as_ptr());
        (*tp).tp_vectorcall_offset = (field - object) as ffi::Py_ssize_t;
        (*tp).tp_flags |= ffi::Py_TPFLAGS_HAVE_VECTORCALL;
        ffi::PyType_Modified(tp);
    }
    INSTALLED.store(true, Ordering::Release);
}
