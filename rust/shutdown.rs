//! Daemon threads at interpreter exit.
//!
//! On CPython 3.11 to 3.13 a daemon thread that takes the GIL back after finalization has begun is
//! ended with `pthread_exit` (cpython#87135; 3.14 parks it instead). glibc implements that as a
//! *forced unwind* of the thread's stack. When the unwind reaches PyO3's `catch_unwind`, which wraps every
//! entry point from Python, the exception is caught and dropped, and glibc aborts the whole process with
//! "FATAL: exception not rethrown" (SIGABRT): a program whose daemon threads were waiting on or running a
//! memoized call died at exit about one run in five.
//!
//! `trap_forced_unwind` wraps each place where our native code hands the thread to Python code or
//! releases the GIL (the memoized function, single-flight waits, user hooks). If a forced unwind passes
//! through it, a guard's destructor parks the thread for good instead of letting the unwind reach
//! `catch_unwind`: the thread was being ended anyway, holds no GIL at that point (CPython drops it before
//! `pthread_exit`), and the process exits around it, as CPython 3.14 does with such threads. A Rust
//! panic unwinding through the guard is left alone: it becomes a Python exception as before.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

/// Parks the thread forever when dropped during an unwind that is not a Rust panic.
struct ParkOnForcedUnwind;

impl Drop for ParkOnForcedUnwind {
    #[cold]
    fn drop(&mut self) {
        // Reached only while unwinding (the normal path forgets the guard). `panicking()` is true for a
        // Rust panic; a foreign unwind (pthread_exit) leaves it false.
        if !std::thread::panicking() {
            loop {
                std::thread::park();
            }
        }
    }
}

/// Runs `f`; if the thread is ended by `pthread_exit` inside it, the thread parks here instead of
/// unwinding into PyO3's `catch_unwind` (see the module docs). Free on the normal path.
#[inline(always)]
pub fn trap_forced_unwind<R>(f: impl FnOnce() -> R) -> R {
    let guard = ParkOnForcedUnwind;
    let result = f();
    std::mem::forget(guard);
    result
}

/// CPython's call functions, called as functions that may unwind. pyo3-ffi declares them `extern "C"`,
/// which tells the compiler they never unwind; a call to them then gets no landing pad, and a forced
/// unwind through it aborts before reaching the guard. A second `extern "C-unwind"` declaration does
/// not help (with LTO the two declarations merge and `nounwind` wins), so they are called through
/// pointers the optimiser cannot see through, typed `C-unwind`.
mod unwinding {
    use pyo3::ffi::PyObject;

    pub type Vectorcall =
        unsafe extern "C-unwind" fn(*mut PyObject, *const *mut PyObject, usize, *mut PyObject) -> *mut PyObject;
    pub type Call = unsafe extern "C-unwind" fn(*mut PyObject, *mut PyObject, *mut PyObject) -> *mut PyObject;

    #[cfg(Py_3_11)]
    #[inline(always)]
    pub fn vectorcall() -> Vectorcall {
        let f: unsafe extern "C" fn(*mut PyObject, *const *mut PyObject, usize, *mut PyObject) -> *mut PyObject =
            pyo3::ffi::PyObject_Vectorcall;
        // SAFETY: the same function with the same arguments; only the unwinding assumption differs, and
        // the real function can unwind (forced unwinds) whatever its declaration says.
        unsafe { std::mem::transmute::<_, Vectorcall>(std::hint::black_box(f)) }
    }

    /// Python 3.10 exports no `PyObject_Vectorcall` (a static inline function there, which pyo3-ffi
    /// writes in Rust): a `C-unwind` function around that one, so this call site may unwind; the calls
    /// inside it are still assumed not to, as they were everywhere before this module existed.
    #[cfg(not(Py_3_11))]
    #[inline(always)]
    pub fn vectorcall() -> Vectorcall {
        unsafe extern "C-unwind" fn vectorcall_310(
            callable: *mut PyObject,
            args: *const *mut PyObject,
            nargsf: usize,
            kwnames: *mut PyObject,
        ) -> *mut PyObject {
            // SAFETY: the caller's arguments, passed on as they came
            unsafe { pyo3::ffi::PyObject_Vectorcall(callable, args, nargsf, kwnames) }
        }
        std::hint::black_box(vectorcall_310 as Vectorcall)
    }

    #[inline(always)]
    pub fn call() -> Call {
        let f: unsafe extern "C" fn(*mut PyObject, *mut PyObject, *mut PyObject) -> *mut PyObject =
            pyo3::ffi::PyObject_Call;
        // SAFETY: as in `vectorcall`.
        unsafe { std::mem::transmute::<_, Call>(std::hint::black_box(f)) }
    }
}

/// `callable(*args)`, for user code (the memoized function, hooks, callbacks), which may release the GIL
/// and be ended there by interpreter shutdown (see the module docs).
pub fn call<'py>(callable: &Bound<'py, PyAny>, args: &[&Bound<'py, PyAny>]) -> PyResult<Bound<'py, PyAny>> {
    let ptrs: smallvec::SmallVec<[*mut pyo3::ffi::PyObject; 4]> = args.iter().map(|a| a.as_ptr()).collect();
    // SAFETY: every pointer is a live object borrowed for the call; the result is a new reference or NULL
    // with an exception set.
    trap_forced_unwind(|| unsafe {
        let result = (unwinding::vectorcall())(callable.as_ptr(), ptrs.as_ptr(), ptrs.len(), std::ptr::null_mut());
        Bound::from_owned_ptr_or_err(callable.py(), result)
    })
}

/// `callable(*args, **kwargs)` with the argument tuple and dict as given (see `call`).
pub fn call_with_kwargs<'py>(
    callable: &Bound<'py, PyAny>,
    args: &Bound<'py, PyTuple>,
    kwargs: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    let kwargs = kwargs.map_or(std::ptr::null_mut(), |k| k.as_ptr());
    // SAFETY: as in `call`; a NULL kwargs means none.
    trap_forced_unwind(|| unsafe {
        let result = (unwinding::call())(callable.as_ptr(), args.as_ptr(), kwargs);
        Bound::from_owned_ptr_or_err(callable.py(), result)
    })
}

/// A vectorcall of `callable` with the caller's own argument array (the memoized function's miss path).
///
/// # Safety
/// `args` holds the arguments `nargsf` and `kwnames` describe, alive for the call.
pub unsafe fn vectorcall<'py>(
    py: Python<'py>,
    callable: *mut pyo3::ffi::PyObject,
    args: *const *mut pyo3::ffi::PyObject,
    nargsf: usize,
    kwnames: *mut pyo3::ffi::PyObject,
) -> PyResult<Bound<'py, PyAny>> {
    trap_forced_unwind(|| unsafe {
        let result = (unwinding::vectorcall())(callable, args, nargsf, kwnames);
        Bound::from_owned_ptr_or_err(py, result)
    })
}
