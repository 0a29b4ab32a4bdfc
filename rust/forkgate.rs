//! The process-wide SQLite fork gate (`oxicache._forkgate.SQLITE_GATE`, see its module docs for why it
//! exists): any number of threads inside at once; `os.fork()`, through the at-fork hooks, waits until
//! none is, and keeps new ones out until it returns.
//!
//! It is native so that it is interrupt-safe: entering and leaving run no Python bytecode, so a
//! `KeyboardInterrupt` cannot land half-way and leave the gate counted as occupied (then `os.fork()`
//! would never return) or closed (then every SQLite operation would block). The only wait a thread can
//! be interrupted in is the one at the door during a fork, before it has counted itself in.
//!
//! State is two atomics, not a lock held across the fork, so the child never inherits a lock taken by a
//! thread it does not have: an entering thread counts itself in, then checks that no fork has begun
//! (and backs out if one has); the forking thread marks the fork, then waits for the count to drop. With
//! sequentially consistent operations, one of the two always sees the other.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use pyo3::prelude::*;

use crate::shutdown::trap_forced_unwind;

/// Threads inside the gate (each counted once, however deeply it nests).
static INSIDE: AtomicUsize = AtomicUsize::new(0);
/// A fork is under way: new operations wait at the door.
static FORKING: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// How deeply this thread is inside the gate (a statement inside a gated construction nests).
    static DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// How often waiters look again; forks are rare and short, so polling costs nothing in practice.
const POLL: Duration = Duration::from_micros(200);

fn depth() -> usize {
    DEPTH.with(Cell::get)
}

fn set_depth(n: usize) {
    DEPTH.with(|d| d.set(n));
}

/// `with SQLITE_GATE:` around every SQLite operation of DiskCache and a file-backed DatabaseCache. All
/// instances are the one process-wide gate.
#[pyclass(module = "oxicache._core", name = "ForkGate", frozen)]
pub struct ForkGate;

#[pymethods]
impl ForkGate {
    #[new]
    fn new() -> Self {
        ForkGate
    }

    fn __enter__(&self, py: Python<'_>) -> PyResult<()> {
        let nested = depth();
        if nested > 0 {
            set_depth(nested + 1); // already counted
            return Ok(());
        }
        loop {
            if !FORKING.load(SeqCst) {
                INSIDE.fetch_add(1, SeqCst);
                if !FORKING.load(SeqCst) {
                    set_depth(1);
                    return Ok(());
                }
                INSIDE.fetch_sub(1, SeqCst); // a fork began meanwhile: back out, it waits for us
            }
            trap_forced_unwind(|| {
                py.detach(|| {
                    while FORKING.load(SeqCst) {
                        std::thread::sleep(POLL);
                    }
                })
            });
            py.check_signals()?; // not counted in yet: an interrupt here leaves nothing to undo
        }
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, _exc: &Bound<'_, pyo3::types::PyTuple>) {
        match depth() {
            0 => {} // not inside (an unmatched exit): nothing to release
            1 => {
                set_depth(0);
                INSIDE.fetch_sub(1, SeqCst);
            }
            n => set_depth(n - 1),
        }
    }

    /// The at-fork "before" hook: closes the door and waits (with the GIL released, so the threads inside
    /// can finish) until nobody is inside. A fork from inside a gated operation cannot wait for itself,
    /// and does not wait for the others either (they may be waiting for this thread's statement).
    fn before_fork(&self, py: Python<'_>) {
        FORKING.store(true, SeqCst);
        if depth() > 0 {
            return;
        }
        trap_forced_unwind(|| {
            py.detach(|| {
                while INSIDE.load(SeqCst) > 0 {
                    std::thread::sleep(POLL);
                }
            })
        });
    }

    fn after_fork_in_parent(&self) {
        FORKING.store(false, SeqCst);
    }

    /// The only thread left is the one that forked: only it can be inside, and nobody waits.
    fn after_fork_in_child(&self) {
        INSIDE.store(usize::from(depth() > 0), SeqCst);
        FORKING.store(false, SeqCst);
    }

    /// Threads inside the gate now (for tests and diagnostics).
    #[getter]
    fn inside(&self) -> usize {
        INSIDE.load(SeqCst)
    }

    /// True while a fork holds the door closed.
    #[getter]
    fn forking(&self) -> bool {
        FORKING.load(SeqCst)
    }
}
