//! `MemoryStore`: the thread-safe in-memory store behind `InMemCache` and the native memoizer.
//!
//! Entries are keyed by `func id (4 bytes LE) + canonical bytes of the inputs dict`. The lock is never
//! held while Python code can run: no user `__eq__` (keys are bytes), and every value that leaves the
//! map (replaced, evicted, expired, removed, cleared) is dropped only after the lock is released, since
//! a decref can run `__del__`, which may call back into the cache.

pub mod flight;
pub mod lru;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::Mutex;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};
use pyo3::{PyTraverseError, PyVisit};

use crate::entry::CacheEntry;
use crate::key::{decode, digest, encode_inputs_flagged};
use lru::{Lookup, Lru};

/// What a hit returns plus what `CacheEntry` needs; the rare parts are boxed so a plain memoized call
/// costs two pointers.
pub struct Payload {
    pub output: Py<PyAny>,
    pub extra: Option<Box<Extra>>,
}

#[derive(Default)]
pub struct Extra {
    pub expected: Option<Py<PyAny>>,
    pub metadata: Option<Py<PyDict>>,
    /// The original inputs, kept only when their canonical bytes cannot be decoded back (dataclasses, ...).
    pub inputs: Option<Py<PyDict>>,
}

impl Payload {
    /// What a memoized hit returns: `expected` when annotated, else `output`.
    #[inline]
    pub fn value(&self, py: Python<'_>) -> Py<PyAny> {
        self.value_ref().clone_ref(py)
    }

    /// `value` without taking a reference.
    fn value_ref(&self) -> &Py<PyAny> {
        match self.extra.as_deref().and_then(|e| e.expected.as_ref()) {
            Some(expected) => expected,
            None => &self.output,
        }
    }

    /// Whether a memoized call may return this payload: an entry without output (`...`, as `set()`
    /// without `output=` or an import writes it) and without `expected` holds no value to return, so the
    /// call is a miss and the function runs. Pointer comparisons only: safe under the store's lock.
    #[inline]
    pub fn answers(&self, py: Python<'_>) -> bool {
        self.extra.as_deref().is_some_and(|e| e.expected.is_some()) || !self.output.bind(py).is(py.Ellipsis())
    }

    fn clone_ref(&self, py: Python<'_>) -> Payload {
        Payload {
            output: self.output.clone_ref(py),
            extra: self.extra.as_ref().map(|e| {
                Box::new(Extra {
                    expected: e.expected.as_ref().map(|v| v.clone_ref(py)),
                    metadata: e.metadata.as_ref().map(|v| v.clone_ref(py)),
                    inputs: e.inputs.as_ref().map(|v| v.clone_ref(py)),
                })
            }),
        }
    }

    fn visit(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.output)?;
        if let Some(e) = &self.extra {
            if let Some(v) = &e.expected {
                visit.call(v)?;
            }
            if let Some(v) = &e.metadata {
                visit.call(v)?;
            }
            if let Some(v) = &e.inputs {
                visit.call(v)?;
            }
        }
        Ok(())
    }
}

#[derive(Default, Clone, Copy)]
pub struct Stats {
    pub hits: u64,
    pub misses: u64,
    pub sets: u64,
    pub evictions: u64,
    pub expirations: u64,
    /// Memoized calls whose function raised (nothing stored).
    pub errors: u64,
}

struct Inner {
    lru: Lru<Payload>,
    /// Function identities by id. Ids are never reused: a stale row of `by_digest` may still name an id.
    names: HashMap<u32, Box<str>>,
    ids: HashMap<Box<str>, u32>,
    next_id: u32,
    stats: Stats,
    /// digest -> key bytes, built on the first lookup by integer key and kept up to date after that.
    /// Removals leave stale rows, which are ignored and pruned when the index grows past twice the map.
    by_digest: Option<HashMap<u128, Box<[u8]>>>,
}

/// Canonical bytes longer than this are not kept as the lookup key: a large argument (an array, a long
/// document) would otherwise be stored twice, once as itself and once inside its key.
pub const LARGE_KEY: usize = 512;
/// Marks a key whose tail is the entry's 128-bit digest instead of the inputs' bytes (canonical dict
/// bytes start with `d`, never with this byte).
const DIGESTED: u8 = 0xFF;

/// Replaces the inputs bytes of a large key (func id + inputs bytes) by the entry's digest, in place.
/// Returns true when it did: the inputs can then no longer be decoded from the key.
pub fn compact_large_key(key: &mut Vec<u8>, func: &str) -> bool {
    if key.len() <= LARGE_KEY {
        return false;
    }
    let digest = digest::entry_key(func, &key[4..]);
    key.truncate(4);
    key.push(DIGESTED);
    key.extend_from_slice(&digest.to_be_bytes());
    true
}

/// The entry key (`CacheEntry.key`) of a stored key of the function `func`.
pub fn key_digest(key: &[u8], func: &str) -> u128 {
    if key.get(4) == Some(&DIGESTED) {
        let mut raw = [0u8; 16];
        raw.copy_from_slice(&key[5..21]);
        return u128::from_be_bytes(raw);
    }
    digest::entry_key(func, &key[4..])
}

impl Inner {
    fn digest_of(&self, key: &[u8]) -> u128 {
        key_digest(key, self.name_of(key))
    }

    /// The function identity of a stored key (every live key's id is interned).
    fn name_of(&self, key: &[u8]) -> &str {
        self.names.get(&lru::group_of(key)).map_or("", |n| n)
    }

    fn index(&mut self, key: &[u8]) {
        if self.by_digest.is_some() {
            let d = self.digest_of(key);
            if let Some(index) = &mut self.by_digest {
                index.insert(d, key.into());
            }
        }
    }
}

/// Thread-safe in-memory store: optional max size (LRU eviction), optional TTL, exact statistics.
#[pyclass(module = "oxicache._core", name = "MemoryStore", frozen)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    /// Misses being computed right now (single-flight); a separate lock, never held with `inner`.
    pub flights: flight::Flights,
    default_ttl: u64,
    epoch: Instant,
    /// Added to the monotonic clock; lets tests move time forward without sleeping.
    clock_offset: AtomicU64,
}

/// Seconds (as given by users) to nanoseconds; `None` stays 0 ("no expiry").
pub fn ttl_nanos(ttl: Option<f64>) -> PyResult<u64> {
    match ttl {
        None => Ok(0),
        Some(t) if t.is_finite() && t > 0.0 => Ok(((t * 1e9) as u64).max(1)),
        Some(t) => Err(PyValueError::new_err(format!(
            "ttl must be a positive number of seconds, got {t}"
        ))),
    }
}

type Evicted = Vec<Payload>;

impl MemoryStore {
    #[inline]
    pub fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64 + self.clock_offset.load(Ordering::Relaxed)
    }

    fn expiry(&self, ttl: u64) -> u64 {
        let ttl = if ttl == 0 { self.default_ttl } else { ttl };
        if ttl == 0 {
            0
        } else {
            self.now().saturating_add(ttl).max(1)
        }
    }

    /// The id of a function name, allocated on first use.
    pub fn intern(&self, name: &str) -> u32 {
        let mut inner = self.inner.lock();
        if let Some(&id) = inner.ids.get(name) {
            return id;
        }
        let id = inner.next_id;
        inner.next_id = id.wrapping_add(1);
        inner.names.insert(id, name.into());
        inner.ids.insert(name.into(), id);
        id
    }

    /// Forgets a process-private function identity (a local function's `#n`, whose memoizer is gone, so
    /// nothing can look its entries up again): its entries and its name are freed.
    pub fn release(&self, id: u32) {
        let removed = {
            let mut inner = self.inner.lock();
            if let Some(name) = inner.names.remove(&id) {
                inner.ids.remove(&name);
            }
            inner.lru.remove_group(id)
        };
        drop(removed); // outside the lock: a value's __del__ may call back into the cache
    }

    fn known_id(&self, name: &str) -> Option<u32> {
        self.inner.lock().ids.get(name).copied()
    }

    /// The memoizer's lookup: the hit value, counting the hit or miss.
    #[inline]
    pub fn lookup(&self, py: Python<'_>, key: &[u8]) -> Option<Py<PyAny>> {
        self.counted_lookup(key, |payload| payload.answers(py).then(|| payload.value(py)))
    }

    /// Looks `key` up, counting a hit or a miss (and an expiration), and maps a hit's payload with `f`
    /// under the lock (`f` must not run Python code; None from it is a miss). An expired payload is dropped
    /// after unlocking.
    fn counted_lookup<T>(&self, key: &[u8], f: impl FnOnce(&Payload) -> Option<T>) -> Option<T> {
        let mut expired = None;
        let found = {
            let mut inner = self.inner.lock();
            let found = match inner.lru.get(key, || self.now()) {
                Lookup::Hit(payload) => f(payload),
                Lookup::Expired(payload) => {
                    expired = Some(payload);
                    None
                }
                Lookup::Miss => None,
            };
            if found.is_some() {
                inner.stats.hits += 1;
            } else {
                inner.stats.misses += 1;
                inner.stats.expirations += u64::from(expired.is_some());
            }
            found
        };
        drop(expired);
        found
    }

    /// The hit path of the native memoizer: returns the value of a live entry and counts the hit; on
    /// anything else returns None, counts nothing and changes nothing (the full path then looks again).
    /// Drops no Python object, so it is safe outside PyO3's call bookkeeping. `fresh_margin` (ns): the
    /// entry must live that much longer (its stale window, kept past its TTL: `Memoizer`'s delegation).
    /// `sequence`: only a value that is an exact list or tuple is a hit here (a generator's items, which
    /// its `Replay` reads without running Python code).
    #[inline]
    pub fn lookup_hit(&self, py: Python<'_>, key: &[u8], fresh_margin: u64, sequence: bool) -> Option<Py<PyAny>> {
        let mut inner = self.inner.lock();
        let payload = inner.lru.get_live(key, || self.now(), fresh_margin)?;
        if !payload.answers(py) {
            return None; // no output: the full path counts the miss
        }
        if sequence {
            let items = payload.value_ref().bind(py);
            if !(items.is_exact_instance_of::<PyList>() || items.is_exact_instance_of::<PyTuple>()) {
                return None; // not a plain sequence of items: the full path makes its Replay
            }
        }
        let value = payload.value(py);
        inner.stats.hits += 1;
        Some(value)
    }

    /// The hit value for `key` without counting a lookup (the leader's re-check after winning a flight).
    pub fn peek_value(&self, py: Python<'_>, key: &[u8]) -> Option<Py<PyAny>> {
        self.inner
            .lock()
            .lru
            .peek(key, || self.now())
            .filter(|p| p.answers(py))
            .map(|p| p.value(py))
    }

    /// Stores `payload` under `key` (`ttl` in ns, 0 = the store's default).
    /// With debug logging on, evictions are logged (the count, on the function that stored).
    pub fn store(&self, py: Python<'_>, key: &[u8], payload: Payload, ttl: u64) -> PyResult<()> {
        let expires = self.expiry(ttl);
        let displaced = {
            let mut inner = self.inner.lock();
            let displaced = inner.lru.insert(key, payload, expires, || self.now());
            inner.stats.sets += 1;
            inner.stats.evictions += displaced.evicted.len() as u64;
            inner.stats.expirations += displaced.expired.len() as u64;
            inner.index(key);
            displaced
        };
        let evicted = displaced.evicted.len();
        drop(displaced);
        if evicted > 0 && crate::log::enabled() {
            let name = PyString::new(py, self.inner.lock().name_of(key));
            crate::log::event(py, "evicted", &name, evicted as u128)?;
        }
        Ok(())
    }

    fn key_for(
        &self,
        py: Python<'_>,
        func: &str,
        inputs: &Bound<'_, PyDict>,
        create: bool,
    ) -> PyResult<Option<(Vec<u8>, bool)>> {
        let id = if create {
            Some(self.intern(func))
        } else {
            self.known_id(func)
        };
        let Some(id) = id else { return Ok(None) };
        let (inputs_bytes, lossless) = encode_inputs_flagged(py, inputs, Some(func))?;
        let mut key = Vec::with_capacity(4 + inputs_bytes.len());
        key.extend_from_slice(&id.to_le_bytes());
        key.extend_from_slice(&inputs_bytes);
        let digested = compact_large_key(&mut key, func);
        Ok(Some((key, lossless && !digested)))
    }

    fn to_entry(&self, py: Python<'_>, name: &str, key: &[u8], payload: &Payload) -> PyResult<CacheEntry> {
        let extra = payload.extra.as_deref();
        let inputs = match extra.and_then(|e| e.inputs.as_ref()) {
            Some(inputs) => inputs.bind(py).copy()?,
            None => decode::decode_dict(py, &key[4..])?,
        };
        let metadata = extra
            .and_then(|e| e.metadata.as_ref())
            .map(|m| m.bind(py).copy())
            .transpose()?;
        let expected = extra
            .and_then(|e| e.expected.as_ref())
            .map_or_else(|| py.Ellipsis(), |v| v.clone_ref(py));
        Ok(CacheEntry::new_raw(
            PyString::new(py, name).unbind(),
            inputs.unbind(),
            payload.output.clone_ref(py),
            expected,
            metadata.map(Bound::unbind),
        ))
    }

    fn snapshot(&self, py: Python<'_>) -> Vec<(String, Vec<u8>, Payload)> {
        let inner = self.inner.lock();
        inner
            .lru
            .iter(|| self.now())
            .map(|(k, p)| (inner.name_of(k).to_owned(), k.to_vec(), p.clone_ref(py)))
            .collect()
    }

    /// Key bytes of the entry whose digest is `key`, building the digest index on first use.
    fn key_by_digest(&self, key: u128) -> Option<Box<[u8]>> {
        let mut inner = self.inner.lock();
        let stale = inner
            .by_digest
            .as_ref()
            .is_some_and(|m| m.len() > 2 * inner.lru.len() + 1024);
        if inner.by_digest.is_none() || stale {
            let now = self.now();
            let rows: HashMap<u128, Box<[u8]>> = inner
                .lru
                .iter(|| now)
                .map(|(k, _)| (inner.digest_of(k), k.into()))
                .collect();
            inner.by_digest = Some(rows);
        }
        inner.by_digest.as_ref().and_then(|m| m.get(&key).cloned())
    }

    /// Removes expired entries (counting them), then runs `f` under the same lock; the removed values
    /// are dropped after unlocking. `f` gets how many were removed.
    fn after_purge<T>(&self, f: impl FnOnce(&Inner, usize) -> T) -> T {
        let mut expired: Evicted = Vec::new();
        let result = {
            let mut inner = self.inner.lock();
            let n = inner.lru.purge_expired(&|| self.now(), &mut expired);
            inner.stats.expirations += n as u64;
            f(&inner, n)
        };
        drop(expired);
        result
    }

    pub fn stats_snapshot(&self) -> (Stats, usize) {
        self.after_purge(|inner, _| (inner.stats, inner.lru.len()))
    }

    /// Live entries of one function (expired ones are purged first, so they are never counted).
    pub fn count_group(&self, id: u32) -> usize {
        self.after_purge(|inner, _| inner.lru.group_count(id))
    }

    pub fn max_size(&self) -> Option<usize> {
        self.inner.lock().lru.max_size()
    }

    /// Updates the counters of an event that bypassed `lookup`/`store` (a refreshed or bypassed call
    /// counts a miss; a raising function an error).
    pub fn count_event(&self, f: impl FnOnce(&mut Stats)) {
        f(&mut self.inner.lock().stats);
    }

    pub fn remove_group(&self, id: u32) -> usize {
        let removed = self.inner.lock().lru.remove_group(id);
        let n = removed.len();
        drop(removed);
        n
    }
}

#[pymethods]
impl MemoryStore {
    #[new]
    #[pyo3(signature = (max_size=None, ttl=None))]
    fn new(max_size: Option<i64>, ttl: Option<f64>) -> PyResult<Self> {
        let max_size = match max_size {
            None => None,
            Some(n) if n >= 0 => Some(n as usize),
            Some(n) => return Err(PyValueError::new_err(format!("max_size must be None or >= 0, got {n}"))),
        };
        Ok(MemoryStore {
            inner: Mutex::new(Inner {
                lru: Lru::new(max_size),
                names: HashMap::new(),
                ids: HashMap::new(),
                next_id: 0,
                stats: Stats::default(),
                by_digest: None,
            }),
            flights: flight::Flights::default(),
            default_ttl: ttl_nanos(ttl)?,
            epoch: Instant::now(),
            clock_offset: AtomicU64::new(0),
        })
    }

    /// The entry stored for (func, inputs), or None. Counts a hit or a miss.
    fn get(&self, py: Python<'_>, func: &str, inputs: &Bound<'_, PyDict>) -> PyResult<Option<CacheEntry>> {
        let Some((key, _)) = self.key_for(py, func, inputs, false)? else {
            self.inner.lock().stats.misses += 1;
            return Ok(None);
        };
        let found = self.counted_lookup(&key, |p| Some(p.clone_ref(py)));
        found.map(|p| self.to_entry(py, func, &key, &p)).transpose()
    }

    /// True when (func, inputs) has a live entry; changes neither statistics nor recency.
    fn contains(&self, py: Python<'_>, func: &str, inputs: &Bound<'_, PyDict>) -> PyResult<bool> {
        let Some((key, _)) = self.key_for(py, func, inputs, false)? else {
            return Ok(false);
        };
        Ok(self.inner.lock().lru.peek(&key, || self.now()).is_some())
    }

    /// Stores `entry` (replacing any entry with the same func and inputs). `ttl` in seconds; None uses the
    /// store's default.
    #[pyo3(signature = (entry, ttl=None))]
    fn set(&self, py: Python<'_>, entry: &Bound<'_, PyAny>, ttl: Option<f64>) -> PyResult<()> {
        let entry = entry
            .cast::<CacheEntry>()
            .map_err(|_| {
                PyTypeError::new_err(format!(
                    "expected a CacheEntry, got {}",
                    entry.get_type().name().map(|n| n.to_string()).unwrap_or_default()
                ))
            })?
            .try_borrow()?;
        let func = entry.func(py).to_str()?.to_owned();
        let inputs = entry.inputs(py);
        let (key, lossless) = self.key_for(py, &func, inputs, true)?.expect("interned");
        let expected = entry.expected(py);
        let metadata = entry.metadata(py);
        let extra = Extra {
            expected: (!expected.is(py.Ellipsis())).then(|| expected.clone().unbind()),
            metadata: metadata
                .filter(|m| !m.is_empty())
                .map(|m| m.copy())
                .transpose()?
                .map(Bound::unbind),
            inputs: (!lossless).then(|| inputs.copy()).transpose()?.map(Bound::unbind),
        };
        let has_extra = extra.expected.is_some() || extra.metadata.is_some() || extra.inputs.is_some();
        let payload = Payload {
            output: entry.output(py).clone().unbind(),
            extra: has_extra.then(|| Box::new(extra)),
        };
        self.store(py, &key, payload, ttl_nanos(ttl)?)
    }

    /// Removes the entry for (func, inputs); True when there was one.
    fn remove(&self, py: Python<'_>, func: &str, inputs: &Bound<'_, PyDict>) -> PyResult<bool> {
        let Some((key, _)) = self.key_for(py, func, inputs, false)? else {
            return Ok(false);
        };
        let removed = self.inner.lock().lru.remove(&key);
        Ok(removed.is_some())
    }

    /// The entry whose `CacheEntry.key` is `key`, or None (does not count as a hit or miss).
    fn get_by_key(&self, py: Python<'_>, key: u128) -> PyResult<Option<CacheEntry>> {
        let Some(bytes) = self.key_by_digest(key) else {
            return Ok(None);
        };
        let found = {
            let inner = self.inner.lock();
            inner
                .lru
                .peek(&bytes, || self.now())
                .map(|p| (inner.name_of(&bytes).to_owned(), p.clone_ref(py)))
        };
        found.map(|(name, p)| self.to_entry(py, &name, &bytes, &p)).transpose()
    }

    /// Removes the entry whose `CacheEntry.key` is `key`; True when there was one.
    fn remove_by_key(&self, key: u128) -> bool {
        let Some(bytes) = self.key_by_digest(key) else {
            return false;
        };
        let removed = self.inner.lock().lru.remove(&bytes);
        removed.is_some()
    }

    /// A snapshot of the live entries, least recently used first.
    fn entries(&self, py: Python<'_>) -> PyResult<Vec<CacheEntry>> {
        self.snapshot(py)
            .iter()
            .map(|(name, key, p)| self.to_entry(py, name, key, p))
            .collect()
    }

    /// Removes every entry (statistics are kept).
    fn clear(&self) {
        let all = self.inner.lock().lru.take_all();
        drop(all);
    }

    /// Removes the entries of one function; returns how many.
    fn clear_func(&self, func: &str) -> usize {
        self.known_id(func).map_or(0, |id| self.remove_group(id))
    }

    /// Number of live entries of one function.
    fn count(&self, func: &str) -> usize {
        self.known_id(func).map_or(0, |id| self.count_group(id))
    }

    /// Removes expired entries now; returns how many.
    fn expire(&self) -> usize {
        self.after_purge(|_, n| n)
    }

    fn __len__(&self) -> usize {
        self.stats_snapshot().1
    }

    /// {"hits", "misses", "sets", "evictions", "expirations", "size", "max_size"}
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let (s, size) = self.stats_snapshot();
        let d = PyDict::new(py);
        d.set_item("hits", s.hits)?;
        d.set_item("misses", s.misses)?;
        d.set_item("sets", s.sets)?;
        d.set_item("evictions", s.evictions)?;
        d.set_item("expirations", s.expirations)?;
        d.set_item("errors", s.errors)?;
        d.set_item("size", size)?;
        d.set_item("max_size", self.max_size())?;
        Ok(d)
    }

    #[getter(max_size)]
    fn py_max_size(&self) -> Option<usize> {
        self.max_size()
    }

    /// The default time to live in seconds, or None.
    #[getter]
    fn ttl(&self) -> Option<f64> {
        (self.default_ttl != 0).then(|| self.default_ttl as f64 / 1e9)
    }

    /// Moves this store's clock forward (tests use it instead of sleeping).
    fn _advance_clock(&self, seconds: f64) -> PyResult<()> {
        let nanos = ttl_nanos(Some(seconds))?;
        self.clock_offset.fetch_add(nanos, Ordering::Relaxed);
        Ok(())
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        // try_lock: the collector must not block; a skipped visit only keeps objects alive longer.
        if let Some(inner) = self.inner.try_lock() {
            for payload in inner.lru.values() {
                payload.visit(&visit)?;
            }
        }
        Ok(())
    }

    fn __clear__(&self) {
        let all = self.inner.lock().lru.take_all();
        drop(all);
    }
}
