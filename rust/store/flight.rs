//! Single-flight for concurrent misses of one key: the first caller computes, the others wait for its
//! outcome instead of running the function again (the stampede of cachetools #294).
//!
//! Waiters release the GIL while they wait. When the leader raises, every waiter raises the same
//! exception and nothing is stored. A leader that calls its own key again (recursion on one thread)
//! computes without waiting on itself.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::ThreadId;

use hashbrown::HashMap;
use parking_lot::{Condvar, Mutex};
use pyo3::prelude::*;

type Outcome = Result<Py<PyAny>, PyErr>;

/// Bumped in a forked child (`os.register_at_fork`): flights started before the fork belong to threads
/// that do not exist in the child, so the child must not wait for them.
static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);

/// Registered by the package with `os.register_at_fork(after_in_child=...)`.
#[pyfunction]
pub fn _after_fork_in_child() {
    FORK_GENERATION.fetch_add(1, Ordering::Relaxed);
}

pub struct Flight {
    leader: ThreadId,
    generation: u64,
    outcome: Mutex<Option<Outcome>>,
    done: Condvar,
}

impl Flight {
    /// Blocks (with the GIL released) until the leader finishes, then returns its result or exception.
    pub fn wait(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        py.detach(|| {
            let mut slot = self.outcome.lock();
            while slot.is_none() {
                self.done.wait(&mut slot);
            }
        });
        match self.outcome.lock().as_ref().expect("filled before the wait ends") {
            Ok(value) => Ok(value.clone_ref(py)),
            Err(err) => Err(err.clone_ref(py)),
        }
    }
}

/// The calls in progress, by key.
#[derive(Default)]
pub struct Flights {
    running: Mutex<HashMap<Box<[u8]>, Arc<Flight>, foldhash::fast::RandomState>>,
    /// Counts finished flights. A caller that read it before its (missed) lookup and finds it unchanged
    /// after winning the lead knows no other flight stored a value in between, and skips a re-check.
    finished: AtomicU64,
}

pub enum Role<'a> {
    /// This caller computes and must `finish` (dropping the guard unfinished releases the waiters with
    /// an error, so nobody waits forever).
    Lead(Leader<'a>),
    /// Another thread is computing this key.
    Follow(Arc<Flight>),
    /// This thread is already computing this key further up its stack: compute again, don't wait.
    Reentrant,
}

pub struct Leader<'a> {
    flights: &'a Flights,
    key: &'a [u8],
    flight: Arc<Flight>,
    finished: bool,
}

impl Flights {
    /// Read before a lookup; see `finished`.
    pub fn finished_count(&self) -> u64 {
        self.finished.load(Ordering::SeqCst)
    }

    pub fn join<'a>(&'a self, key: &'a [u8]) -> Role<'a> {
        let me = std::thread::current().id();
        let generation = FORK_GENERATION.load(Ordering::Relaxed);
        let mut running = self.running.lock();
        if let Some(flight) = running.get(key).filter(|f| f.generation == generation) {
            return if flight.leader == me {
                Role::Reentrant
            } else {
                Role::Follow(flight.clone())
            };
        }
        // No flight, or one inherited through fork() whose leader is gone: this caller leads.
        let flight = Arc::new(Flight {
            leader: me,
            generation,
            outcome: Mutex::new(None),
            done: Condvar::new(),
        });
        running.insert(key.into(), flight.clone());
        Role::Lead(Leader {
            flights: self,
            key,
            flight,
            finished: false,
        })
    }
}

impl Leader<'_> {
    /// Publishes the outcome to the waiters and retires the flight (call after storing the value).
    pub fn finish(mut self, py: Python<'_>, outcome: &PyResult<Py<PyAny>>) {
        let shared = match outcome {
            Ok(value) => Ok(value.clone_ref(py)),
            Err(err) => Err(err.clone_ref(py)),
        };
        self.publish(shared);
    }

    fn publish(&mut self, outcome: Outcome) {
        self.finished = true;
        let removed = {
            let mut running = self.flights.running.lock();
            // Only retire our own flight (a newer one may have replaced an inherited entry).
            match running.get(self.key) {
                Some(current) if Arc::ptr_eq(current, &self.flight) => running.remove(self.key),
                _ => None,
            }
        };
        self.flights.finished.fetch_add(1, Ordering::SeqCst);
        *self.flight.outcome.lock() = Some(outcome);
        self.flight.done.notify_all();
        drop(removed);
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        if !self.finished {
            let err = pyo3::exceptions::PyRuntimeError::new_err("the call computing this cache entry did not finish");
            self.publish(Err(err));
        }
    }
}

/// Single-flight for the Python wrappers (backends without a native store): the same per-key flights,
/// driven by Python callables.
#[pyclass(module = "oxicache._core", name = "SingleFlight", frozen)]
#[derive(Default)]
pub struct SingleFlight {
    flights: Flights,
}

#[pymethods]
impl SingleFlight {
    #[new]
    fn new() -> Self {
        Self::default()
    }

    /// Read before the lookup that missed; passed back to `run` as `before`.
    fn finished_count(&self) -> u64 {
        self.flights.finished_count()
    }

    /// `compute()` unless another thread is computing `key`; then waits for and returns its result (or
    /// raises its exception). When some flight finished since `before`, the leader first calls
    /// `recheck()`, which returns `(found, value)`: a value stored in the meantime is returned as is.
    fn run(
        &self,
        py: Python<'_>,
        key: &[u8],
        before: u64,
        compute: &Bound<'_, PyAny>,
        recheck: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        match self.flights.join(key) {
            Role::Follow(flight) => flight.wait(py),
            Role::Reentrant => Ok(compute.call0()?.unbind()),
            Role::Lead(leader) => {
                let mut outcome = None;
                if self.flights.finished_count() != before {
                    let (found, value): (bool, Py<PyAny>) = recheck.call0()?.extract()?;
                    if found {
                        outcome = Some(Ok(value));
                    }
                }
                let outcome = outcome.unwrap_or_else(|| compute.call0().map(Bound::unbind));
                leader.finish(py, &outcome);
                outcome
            }
        }
    }
}
