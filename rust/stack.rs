//! The C stack guard of native entry points that call back into Python.
//!
//! A memoized function that recurses through its native wrapper uses C stack on every level (the
//! wrapper's frames and a fresh interpreter frame), while plain Python recursion on 3.11+ uses none. With a
//! high `sys.setrecursionlimit` the recursion limit alone then lets the C stack overflow: a segfault
//! where `functools.lru_cache` raises `RecursionError`. So each entry checks how much of the thread's
//! stack is left and raises `RecursionError` when less than a reserve remains, before recursing deeper.

use std::cell::Cell;

use pyo3::exceptions::PyRecursionError;
use pyo3::PyResult;

/// Left for whatever the deepest call does after the last check (the function body, C code it calls):
/// a quarter of the stack, at most this much.
const RESERVE: usize = 256 * 1024;

thread_local! {
    /// The lowest stack address a check lets a call go below, or 0 before the first check on this thread.
    static FLOOR: Cell<usize> = const { Cell::new(0) };
}

/// `Err(RecursionError)` when the current thread's C stack is nearly exhausted.
#[inline]
pub fn check() -> PyResult<()> {
    let here = stack_pointer();
    let floor = FLOOR.with(|f| {
        if f.get() == 0 {
            f.set(compute_floor(here));
        }
        f.get()
    });
    if here < floor {
        return Err(PyRecursionError::new_err(
            "maximum recursion depth exceeded while calling a memoized function (the thread's C stack is nearly used up)",
        ));
    }
    Ok(())
}

/// An address in the current stack frame (a local's; `&0u8` would be a promoted static).
#[inline(always)]
fn stack_pointer() -> usize {
    let marker = 0u8;
    std::hint::black_box(&marker) as *const u8 as usize
}

/// The floor for this thread: the stack's low end plus the reserve; 1 (never refuse) where the stack's
/// bounds are unknown.
fn compute_floor(here: usize) -> usize {
    match stack_bounds() {
        Some((low, size)) if low < here => low + (size / 4).min(RESERVE),
        _ => 1,
    }
}

/// (lowest address, size) of the current thread's stack.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn stack_bounds() -> Option<(usize, usize)> {
    // SAFETY: plain libc queries on the calling thread; `attr` is initialised by pthread_getattr_np and
    // destroyed once.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
            return None;
        }
        let mut addr: *mut libc::c_void = std::ptr::null_mut();
        let mut size: libc::size_t = 0;
        let ok = libc::pthread_attr_getstack(&attr, &mut addr, &mut size) == 0;
        libc::pthread_attr_destroy(&mut attr);
        ok.then_some((addr as usize, size))
    }
}

#[cfg(target_os = "macos")]
fn stack_bounds() -> Option<(usize, usize)> {
    // SAFETY: plain libc queries on the calling thread. The address returned is the stack's top.
    unsafe {
        let this = libc::pthread_self();
        let top = libc::pthread_get_stackaddr_np(this) as usize;
        let size = libc::pthread_get_stacksize_np(this);
        Some((top.checked_sub(size)?, size))
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "macos")))]
fn stack_bounds() -> Option<(usize, usize)> {
    None
}

/// `check()` for the Python wrappers that call the function through `f(*args, **kwargs)`, which uses C
/// stack on every level too (NoCache's pass-through).
#[pyo3::pyfunction]
pub fn check_stack() -> PyResult<()> {
    check()
}
