//! Single-flight for concurrent misses of one key: the first caller computes, the others wait for its
//! outcome instead of running the function again (the stampede of cachetools #294).
//!
//! The rules (docs/memoize.md, "Single-flight"):
//! - Waiters release the GIL while they wait, and take Ctrl-C promptly (signals are checked every
//!   `SIGNAL_POLL`).
//! - When the leader raises an `Exception`, every waiter raises the same exception and nothing is stored.
//! - When the leader is interrupted (`KeyboardInterrupt`, `SystemExit`: any `BaseException` that is not an
//!   `Exception`) or never finishes its flight, the waiters are not told to stop too: one of them takes
//!   over and computes.
//! - A wait is bounded: after `wait` a waiter stops waiting and takes over the key (the first waiter to
//!   get there leads a new flight, the later ones follow it), so a leader stuck for good (a wait cycle: it
//!   needs a lock a waiter holds) costs at most one more run per bound, never a hang.
//! - A leader that calls its own key again (recursion on one thread) computes without waiting on itself.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use hashbrown::HashMap;
use parking_lot::{Condvar, Mutex};
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

use crate::shutdown::trap_forced_unwind;

/// How often a waiter wakes to let Python handle signals (Ctrl-C).
const SIGNAL_POLL: Duration = Duration::from_millis(50);

/// The default bound of a wait (`wait_timeout`, docs/memoize.md): longer than the default request timeout
/// of the LLM SDKs (600 s), so that a leader still making a slow call is never duplicated in normal
/// operation.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(600);

/// Bumped in a forked child (`os.register_at_fork`): flights started before the fork belong to threads
/// that do not exist in the child, so the child must not wait for them.
static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);

/// Registered by the package with `os.register_at_fork(after_in_child=...)`.
#[pyfunction]
pub fn after_fork_in_child() {
    FORK_GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// How a flight ended, as its waiters see it.
enum Outcome {
    Value(Py<PyAny>),
    Error(PyErr),
    /// The leader was interrupted or dropped its flight: go round again, one waiter takes over.
    Retry,
}

/// The outcome a key's waiters wait for. Made only when a second caller arrives: an uncontended miss
/// (nearly every miss) allocates nothing and publishes nothing.
pub struct Flight {
    outcome: Mutex<Option<Outcome>>,
    done: Condvar,
}

/// A key being computed: by which thread (and in which process generation), and the flight its waiters
/// share once it has any. `id` tells this computation from a later one of the same key.
struct Slot {
    id: u64,
    leader: ThreadId,
    generation: u64,
    shared: Option<Arc<Flight>>,
}

/// The keys being computed, and the next slot's id.
#[derive(Default)]
struct Running {
    slots: HashMap<FlightKey, Slot, foldhash::fast::RandomState>,
    next_id: u64,
}

/// A key, kept inline when short (a memoized call's key is usually a few dozen bytes): no allocation.
enum FlightKey {
    Inline(u8, [u8; INLINE_KEY]),
    Heap(Box<[u8]>),
}

const INLINE_KEY: usize = 40;

impl FlightKey {
    fn new(key: &[u8]) -> Self {
        if key.len() <= INLINE_KEY {
            let mut bytes = [0u8; INLINE_KEY];
            bytes[..key.len()].copy_from_slice(key);
            FlightKey::Inline(key.len() as u8, bytes)
        } else {
            FlightKey::Heap(key.into())
        }
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            FlightKey::Inline(len, bytes) => &bytes[..*len as usize],
            FlightKey::Heap(bytes) => bytes,
        }
    }
}

// Hash, Eq and Borrow all go through the bytes, so the map is looked up with a plain `&[u8]`.
impl std::hash::Hash for FlightKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state);
    }
}

impl PartialEq for FlightKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for FlightKey {}

impl std::borrow::Borrow<[u8]> for FlightKey {
    fn borrow(&self) -> &[u8] {
        self.as_slice()
    }
}

/// What a wait ended with.
enum Waited {
    Finished(PyResult<Py<PyAny>>),
    Retry,
    TimedOut,
}

impl Flight {
    /// Waits (with the GIL released) for the leader's outcome until `deadline`, checking for signals
    /// every `SIGNAL_POLL`: a `KeyboardInterrupt` raised by a signal handler ends the wait as an error.
    fn wait(&self, py: Python<'_>, deadline: Instant) -> PyResult<Waited> {
        loop {
            let finished = trap_forced_unwind(|| {
                py.detach(|| {
                    let until = deadline.min(Instant::now() + SIGNAL_POLL);
                    let mut slot = self.outcome.lock();
                    while slot.is_none() {
                        if self.done.wait_until(&mut slot, until).timed_out() {
                            break;
                        }
                    }
                    slot.is_some()
                })
            });
            if finished {
                return Ok(match self.outcome.lock().as_ref() {
                    Some(Outcome::Value(value)) => Waited::Finished(Ok(value.clone_ref(py))),
                    Some(Outcome::Error(err)) => Waited::Finished(Err(err.clone_ref(py))),
                    Some(Outcome::Retry) | None => Waited::Retry,
                });
            }
            py.check_signals()?;
            if Instant::now() >= deadline {
                return Ok(Waited::TimedOut);
            }
        }
    }
}

/// The calls in progress, by key.
#[derive(Default)]
pub struct Flights {
    running: Mutex<Running>,
    /// Counts finished flights. A caller that read it before its (missed) lookup and finds it unchanged
    /// after winning the lead knows no other flight stored a value in between, and skips a re-check.
    finished: AtomicU64,
}

enum Role<'a> {
    /// This caller computes and must `finish` (dropping the guard unfinished hands the key over).
    Lead(Leader<'a>),
    /// Another thread is computing this key.
    Follow(Arc<Flight>),
    /// This thread is already computing this key further up its stack: compute again, don't wait.
    Reentrant,
}

/// How the caller computes: as the key's leader (whose result other callers take) or on its own.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// The leader. `recheck`: some other flight finished since the caller's lookup, so the value may
    /// be stored by now and is worth looking up again before computing.
    Lead { recheck: bool },
    /// A recursive call of the key on the thread computing it.
    Reentrant,
}

struct Leader<'a> {
    flights: &'a Flights,
    key: &'a [u8],
    id: u64,
    finished: bool,
}

impl Flights {
    /// Read before a lookup; passed to `run` as `before`.
    pub fn finished_count(&self) -> u64 {
        self.finished.load(Ordering::SeqCst)
    }

    /// Runs `compute` for `key` once across the threads missing it at the same time, and returns its
    /// result to all of them (see the module docs for interrupts, hand-over and the wait bound).
    /// `before` is `finished_count()` read before the caller's lookup.
    pub fn run(
        &self,
        py: Python<'_>,
        key: &[u8],
        before: u64,
        wait: Duration,
        compute: impl FnOnce(Turn) -> PyResult<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let mut role = self.join(key, None);
        loop {
            match role {
                Role::Reentrant => return compute(Turn::Reentrant),
                Role::Lead(mut leader) => {
                    let recheck = self.finished_count() != before;
                    let outcome = compute(Turn::Lead { recheck });
                    leader.finish(py, &outcome);
                    return outcome;
                }
                Role::Follow(flight) => {
                    let deadline = Instant::now().checked_add(wait).unwrap_or_else(far_future);
                    role = match flight.wait(py, deadline)? {
                        Waited::Finished(result) => return result,
                        Waited::Retry => self.join(key, None),
                        Waited::TimedOut => self.join(key, Some(&flight)),
                    };
                }
            }
        }
    }

    /// This caller's role for `key`. `stale`: a flight this caller waited on past its bound; if it still
    /// holds the key, this caller replaces it as the key's leader (and that flight's other waiters are
    /// told to come round again: they follow the new leader).
    fn join<'a>(&'a self, key: &'a [u8], stale: Option<&Arc<Flight>>) -> Role<'a> {
        let me = std::thread::current().id();
        let generation = FORK_GENERATION.load(Ordering::Relaxed);
        let mut running = self.running.lock();
        if let Some(slot) = running.slots.get_mut(key).filter(|s| s.generation == generation) {
            let taken_over = stale.is_some_and(|s| slot.shared.as_ref().is_some_and(|x| Arc::ptr_eq(s, x)));
            if !taken_over {
                if slot.leader == me {
                    return Role::Reentrant;
                }
                let flight = slot.shared.get_or_insert_with(|| {
                    Arc::new(Flight {
                        outcome: Mutex::new(None),
                        done: Condvar::new(),
                    })
                });
                return Role::Follow(flight.clone());
            }
        }
        // No flight, one inherited through fork() whose leader is gone, or one waited on too long.
        let id = running.next_id;
        running.next_id += 1;
        let slot = Slot {
            id,
            leader: me,
            generation,
            shared: None,
        };
        let replaced = match running.slots.get_mut(key) {
            Some(current) => Some(std::mem::replace(current, slot)),
            None => {
                running.slots.insert(FlightKey::new(key), slot);
                None
            }
        };
        drop(running);
        // Outside the lock (the last reference may hold Python objects): a stale flight's waiters come
        // round again. An inherited one is only dropped: its waiters are the parent's threads, and one
        // of them may have held its lock at fork time (locking it here could wait forever).
        if let Some(flight) = replaced
            .filter(|slot| slot.generation == generation)
            .and_then(|slot| slot.shared)
        {
            *flight.outcome.lock() = Some(Outcome::Retry);
            flight.done.notify_all();
        }
        Role::Lead(Leader {
            flights: self,
            key,
            id,
            finished: false,
        })
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600)
}

impl Leader<'_> {
    /// Publishes the outcome to the waiters, if any, and retires the flight (call after storing the
    /// value). An interrupt (a BaseException that is not an Exception) is not handed to the waiters:
    /// they retry.
    fn finish(&mut self, py: Python<'_>, outcome: &PyResult<Py<PyAny>>) {
        self.publish(|| match outcome {
            Ok(value) => Outcome::Value(value.clone_ref(py)),
            Err(err) if err.is_instance_of::<PyException>(py) => Outcome::Error(err.clone_ref(py)),
            Err(_) => Outcome::Retry,
        });
    }

    fn publish(&mut self, outcome: impl FnOnce() -> Outcome) {
        self.finished = true;
        let removed = {
            let mut running = self.flights.running.lock();
            // Only retire our own slot (a newer one may have replaced an inherited or stale entry, and
            // then told our waiters to come round again).
            match running.slots.get(self.key) {
                Some(current) if current.id == self.id => running.slots.remove(self.key),
                _ => None,
            }
        };
        self.flights.finished.fetch_add(1, Ordering::SeqCst);
        // (A leader that forked mid-call, finishing in the child: its waiters are the parent's threads.)
        let generation = FORK_GENERATION.load(Ordering::Relaxed);
        if let Some(flight) = removed
            .filter(|slot| slot.generation == generation)
            .and_then(|slot| slot.shared)
        {
            *flight.outcome.lock() = Some(outcome());
            flight.done.notify_all();
        }
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.publish(|| Outcome::Retry);
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
    /// raises its exception), for at most `wait` seconds before taking over. When some flight finished
    /// since `before`, the leader first calls `recheck()`, which returns `(found, value)`: a value
    /// stored in the meantime is returned as is.
    #[pyo3(signature = (key, before, compute, recheck, wait=None))]
    fn run(
        &self,
        py: Python<'_>,
        key: &[u8],
        before: u64,
        compute: &Bound<'_, PyAny>,
        recheck: &Bound<'_, PyAny>,
        wait: Option<f64>,
    ) -> PyResult<Py<PyAny>> {
        crate::stack::check()?;
        let wait = wait_bound(wait)?;
        self.flights.run(py, key, before, wait, |turn| {
            if turn == (Turn::Lead { recheck: true }) {
                let (found, value): (bool, Py<PyAny>) = crate::shutdown::call(recheck, &[])?.extract()?;
                if found {
                    return Ok(value);
                }
            }
            Ok(crate::shutdown::call(compute, &[])?.unbind())
        })
    }
}

/// `wait_timeout` in seconds (None: the default) as a Duration.
pub fn wait_bound(seconds: Option<f64>) -> PyResult<Duration> {
    match seconds {
        None => Ok(DEFAULT_WAIT),
        Some(s) => Duration::try_from_secs_f64(s).map_err(|_| {
            pyo3::exceptions::PyValueError::new_err(format!(
                "wait_timeout must be a finite, non-negative number of seconds, got {s}"
            ))
        }),
    }
}
