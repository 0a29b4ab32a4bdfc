//! Debug events of the native memoizer and store (`logging.getLogger("oxicache.memo")`).
//!
//! The hot paths check one flag, `enabled()`, a relaxed atomic load. Python keeps it in step with the
//! logger (python/oxicache/_logswitch.py: every level change in `logging` goes through the manager's
//! cache clearing, which it follows); when it is on, events go to the Python function registered with
//! the flag, which formats them as the Python engine's are.

use std::sync::atomic::{AtomicBool, Ordering};

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyString;

static ENABLED: AtomicBool = AtomicBool::new(false);
static SINK: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Whether debug events are wanted (one relaxed load: free when logging is off).
#[inline(always)]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Turns the native debug events on or off; `sink(event, name, number)` receives them (registered once:
/// the first sink given stays).
#[pyfunction]
#[pyo3(signature = (on, sink=None))]
pub fn set_debug_logging(py: Python<'_>, on: bool, sink: Option<Py<PyAny>>) -> PyResult<()> {
    if let Some(sink) = sink {
        let _ = SINK.get_or_init(py, || sink);
    }
    ENABLED.store(on && SINK.get(py).is_some(), Ordering::Relaxed);
    Ok(())
}

/// Sends `event` (hit, miss, stored: `number` is the key; evicted: the count) for the function `name`.
pub fn event(py: Python<'_>, event: &str, name: &Bound<'_, PyString>, number: u128) -> PyResult<()> {
    let Some(sink) = SINK.get(py) else {
        return Ok(());
    };
    let event = PyString::new(py, event);
    let number = number.into_pyobject(py)?;
    // Through shutdown::call: a handler's I/O may meet a daemon thread's end at exit (rust/shutdown.rs).
    crate::shutdown::call(sink.bind(py), &[event.as_any(), name.as_any(), number.as_any()]).map(drop)
}
