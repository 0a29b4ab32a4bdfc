//! `Monitor`: a lock with a condition for Python code that keeps shared state (DatabaseCache's connection
//! pool and statement watchdog), used as `threading.Condition` is: `with monitor:`, `wait(timeout)`,
//! `notify()`, `notify_all()`.
//!
//! `threading.Condition`'s `__enter__`/`__exit__` are Python code, so a `KeyboardInterrupt` (or an
//! asynchronous exception) landing at their first line leaves its lock held, and every thread that
//! needs it later waits forever. Here entering and leaving run no Python bytecode: an interrupt lands
//! before the lock is taken or after it is released, never in between. A wait checks for signals every
//! `SIGNAL_POLL`, and returns (or raises) holding the lock again, as the `with` block expects.
//!
//! Not reentrant: a thread that enters twice gets a RuntimeError instead of deadlocking.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;

use crate::shutdown::trap_forced_unwind;

const SIGNAL_POLL: Duration = Duration::from_millis(50);

static NEXT_THREAD: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// A number for this thread (never 0).
    static THREAD: Cell<u64> = const { Cell::new(0) };
}

fn this_thread() -> u64 {
    THREAD.with(|t| {
        if t.get() == 0 {
            t.set(NEXT_THREAD.fetch_add(1, Ordering::Relaxed));
        }
        t.get()
    })
}

#[pyclass(module = "oxicache._core", name = "Monitor", frozen)]
pub struct Monitor {
    mutex: Mutex<()>,
    cond: Condvar,
    /// The thread holding the lock (`this_thread()`), or 0.
    owner: AtomicU64,
}

impl Monitor {
    fn held_by_me(&self) -> PyResult<u64> {
        let me = this_thread();
        if self.owner.load(Ordering::Acquire) != me {
            return Err(PyRuntimeError::new_err("this thread does not hold the Monitor"));
        }
        Ok(me)
    }
}

#[pymethods]
impl Monitor {
    #[new]
    fn new() -> Self {
        Monitor {
            mutex: Mutex::new(()),
            cond: Condvar::new(),
            owner: AtomicU64::new(0),
        }
    }

    fn __enter__(&self, py: Python<'_>) -> PyResult<()> {
        let me = this_thread();
        if self.owner.load(Ordering::Acquire) == me {
            return Err(PyRuntimeError::new_err(
                "the Monitor is already held by this thread (it is not reentrant)",
            ));
        }
        match self.mutex.try_lock() {
            Some(guard) => std::mem::forget(guard),
            // Wait without the GIL: the holder may need it to finish its block.
            None => trap_forced_unwind(|| py.detach(|| std::mem::forget(self.mutex.lock()))),
        }
        self.owner.store(me, Ordering::Release);
        Ok(())
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, _exc: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<()> {
        self.held_by_me()?;
        self.owner.store(0, Ordering::Release);
        // SAFETY: this thread holds the lock (checked above), taken in `__enter__` or `wait`.
        unsafe { self.mutex.force_unlock() };
        Ok(())
    }

    /// Releases the lock, waits until notified or until `timeout` seconds passed (None: no limit), and
    /// takes the lock again. True when notified. A signal handler's exception (Ctrl-C) ends the wait, and
    /// is raised with the lock held again.
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let me = self.held_by_me()?;
        let deadline = match timeout {
            None => None,
            Some(t) => Some(
                Instant::now()
                    + Duration::try_from_secs_f64(t.max(0.0))
                        .map_err(|_| PyValueError::new_err(format!("timeout must be a number of seconds, got {t}")))?,
            ),
        };
        loop {
            let slice_end = deadline.map_or(Instant::now() + SIGNAL_POLL, |d| d.min(Instant::now() + SIGNAL_POLL));
            self.owner.store(0, Ordering::Release);
            let notified = trap_forced_unwind(|| {
                py.detach(|| {
                    // SAFETY: this thread holds the lock; the guard stands for it during the wait, which
                    // releases and retakes it, and is forgotten after, so the lock stays held.
                    let mut guard = unsafe { self.mutex.make_guard_unchecked() };
                    let timed_out = self.cond.wait_until(&mut guard, slice_end).timed_out();
                    std::mem::forget(guard);
                    !timed_out
                })
            });
            self.owner.store(me, Ordering::Release);
            if notified {
                return Ok(true);
            }
            py.check_signals()?;
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(false);
            }
        }
    }

    /// True while some thread holds the lock (for diagnostics and tests).
    #[getter]
    fn locked(&self) -> bool {
        self.owner.load(Ordering::Acquire) != 0
    }

    /// Wakes one waiting thread.
    fn notify(&self) {
        self.cond.notify_one();
    }

    /// Wakes every waiting thread.
    fn notify_all(&self) {
        self.cond.notify_all();
    }
}
