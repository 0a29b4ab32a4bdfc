//! The native memoize wrapper for `InMemCache`: one call into Rust binds the arguments to the signature,
//! writes the canonical key bytes, and returns the stored value on a hit.
//!
//! A Python closure around a Rust dict already costs as much as the best peers' whole hit (about 250 ns,
//! see reference/performance-anchors.md section 1), so the wrapper itself is a native callable.

use std::sync::atomic::{AtomicU64, Ordering};

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyString, PyTuple};
use pyo3::{PyTraverseError, PyVisit};
use smallvec::SmallVec;

pub mod binder;
mod pending;

use crate::controls::{self, Mode};
use crate::errors::CoreError;
use crate::key::digest;
use crate::key::encode::{tag, with_scratch, write_varint, Encoder};
use crate::shutdown::{self, trap_forced_unwind};
use crate::store::flight::{wait_bound, Turn};
use crate::store::{compact_large_key, ttl_nanos, Extra, MemoryStore, Payload};
use binder::{ParamSpecs, Signature};
pub use pending::Pending;

/// A memoized function on a `MemoryStore`. Built by `InMemCache.memoize`; behaves like the function.
#[pyclass(module = "oxicache._core", name = "Memoizer", frozen, dict, weakref)]
pub struct Memoizer {
    func: Py<PyAny>,
    store: Py<MemoryStore>,
    func_name: Py<PyString>,
    func_id: u32,
    /// The signature the call's arguments are bound to (also `Binder`'s, for the Python engine).
    sig: Signature,
    ttl: u64,
    /// Stored with every entry (memoize(annotation=...) lands here as {"annotation": {...}}).
    metadata: Option<Py<PyDict>>,
    /// `memoize(cache_if=...)`: a result is stored only when this returns true for it.
    cache_if: Option<Py<PyAny>>,
    /// How long a call waits for another thread computing the same key before taking over.
    wait: std::time::Duration,
    /// The identity is this memoizer's alone (a local function's `#n` on InMemCache): when the memoizer
    /// goes, nothing can look its entries up again, so they and the name are freed with it.
    private: bool,
    /// Set for a function the Python engine memoizes on this store (freshness options, tags): this
    /// memoizer answers only its fresh hits, entries living this many ns longer than now (their stale
    /// windows, kept past the TTL), and hands every other call to `func`, the Python engine's wrapper,
    /// which counts, stores and revalidates. None: it memoizes by itself.
    delegate: Option<u64>,
    /// Set for a backend that stores nothing (NoCache): every call runs the function, counted as a miss
    /// (and an error when it raises) here and in `store`'s counters, which hold the cache's; no key is made.
    passthrough: bool,
    /// A delegating memoizer of a generator function: a hit is a `Replay` of the stored items.
    replay: bool,
    hits: AtomicU64,
    misses: AtomicU64,
    sets: AtomicU64,
    errors: AtomicU64,
    /// Read by CPython through `tp_vectorcall_offset` (see `vectorcall.rs`).
    pub(crate) vectorcall: ffi::vectorcallfunc,
}

/// Where each parameter's value sits in the key bytes: (parameter, start, end).
type Spans = SmallVec<[(usize, usize, usize); 8]>;

/// A missed lookup: the key bytes, whether the inputs decode back from them, and (when they do not, and
/// the key holds them rather than their digest) where each value's bytes are.
struct Miss {
    key: Vec<u8>,
    lossless: bool,
    spans: Option<Spans>,
}

/// A hit's value, or a miss.
type HitOrMiss = Result<Py<PyAny>, Miss>;

impl Memoizer {
    /// Writes the key bytes into `enc`: func id, then the canonical dict encoding of the bound inputs
    /// (`value(i)` is parameter i's bound value). On failure, also returns the parameter that failed.
    /// `spans`, when given, receives where each value's bytes are.
    fn encode_key<'a, 'py: 'a>(
        &self,
        enc: &mut Encoder<'_>,
        value: impl Fn(usize) -> Borrowed<'a, 'py, PyAny>,
        mut spans: Option<&mut Spans>,
    ) -> Result<(), (CoreError, usize)> {
        enc.out.extend_from_slice(&self.func_id.to_le_bytes());
        enc.out.push(tag::DICT);
        let order = self.sig.key_order();
        write_varint(enc.out, order.len() as u64);
        for &i in order {
            enc.out.extend_from_slice(self.sig.name_bytes(i));
            let start = enc.out.len();
            enc.encode(&value(i), 2).map_err(|err| (err, i))?;
            if let Some(spans) = spans.as_deref_mut() {
                spans.push((i, start, enc.out.len()));
            }
        }
        Ok(())
    }

    /// `encode_key` into `key` with errors raised as `KeyEncodingError` naming the parameter. Returns
    /// whether the inputs decode back losslessly.
    fn write_key<'a, 'py: 'a>(
        &self,
        py: Python<'py>,
        value: impl Fn(usize) -> Borrowed<'a, 'py, PyAny>,
        key: &mut Vec<u8>,
        spans: Option<&mut Spans>,
    ) -> PyResult<bool> {
        let mut enc = Encoder::new(key);
        if let Err((err, i)) = self.encode_key(&mut enc, value, spans) {
            let func = self.func_name.bind(py).to_str()?;
            return Err(err.into_pyerr(py, Some(func), Some(self.sig.name(py, i).to_str()?)));
        }
        Ok(enc.lossless)
    }

    /// The inputs an entry keeps when they do not decode from its key, taken when the call is made (before
    /// the function runs, which may change its arguments): each argument as `stored::kept_argument` keeps
    /// it, never the caller's mutable object, and an instance only as its key bytes, so a memoized method
    /// does not keep its instances alive (unlike `functools.lru_cache`). Key bytes come from the miss's
    /// key where it holds them (a `__cache_key__` hook runs once per call).
    fn stored_inputs<'a, 'py: 'a>(
        &self,
        py: Python<'py>,
        value: impl Fn(usize) -> Borrowed<'a, 'py, PyAny>,
        miss: &Miss,
    ) -> PyResult<Py<PyDict>> {
        let inputs = PyDict::new(py);
        for i in self.sig.in_signature_order() {
            let canonical = miss
                .spans
                .as_ref()
                .and_then(|spans| spans.iter().find(|(p, _, _)| *p == i))
                .and_then(|&(_, start, end)| miss.key.get(start..end));
            let kept = crate::stored::kept_argument(&value(i), canonical)?;
            inputs.set_item(self.sig.name(py, i), kept)?;
        }
        Ok(inputs.unbind())
    }

    /// Any call: binds through the general path (keywords, variadics) and memoizes.
    pub(crate) fn call_general(
        &self,
        py: Python<'_>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        let call = || Ok(shutdown::call_with_kwargs(self.func.bind(py), args, kwargs)?.unbind());
        if self.passthrough {
            return self.run_through(call); // (arguments that do not fit: the function's TypeError, counted)
        }
        match self.sig.bind_values(py, args, kwargs)? {
            Some(values) => self.call_with(py, |i| values.value(py, &self.sig, i), call),
            None => call(), // the function raises its own TypeError
        }
    }

    pub(crate) fn func(&self) -> &Py<PyAny> {
        &self.func
    }

    /// A store-nothing backend's memoizer: no lookup to try first (`vectorcall.rs`).
    #[inline]
    pub(crate) fn is_passthrough(&self) -> bool {
        self.passthrough
    }

    pub(crate) fn sig(&self) -> &Signature {
        &self.sig
    }

    /// The hit path for positional calls whose arguments are all exact builtins: encodes without running
    /// Python code and returns the stored value, or None for anything else (miss, expired entry, other
    /// argument types), which the caller then handles through the full path.
    #[inline]
    pub(crate) fn fast_hit<'py>(
        &self,
        py: Python<'py>,
        value: impl Fn(usize) -> Borrowed<'py, 'py, PyAny>,
    ) -> Option<Py<PyAny>> {
        if controls::maybe_active() || crate::log::enabled() {
            return None; // the full path reads the context's mode, and logs
        }
        let store = self.store.get();
        let margin = self.delegate.unwrap_or(0);
        let hit = with_scratch(|key| {
            self.encode_key(&mut Encoder::builtins_only(key), value, None).ok()?;
            if key.len() > crate::store::LARGE_KEY {
                return None; // digesting needs the name as a str: leave it to the full path
            }
            store.lookup_hit(py, key, margin, self.replay)
        })?;
        bump(&self.hits);
        if self.replay {
            // The items are an exact list or tuple (lookup_hit checked): the Replay runs no Python code.
            return Bound::new(py, crate::replay::Replay::new(hit.bind(py)).ok()?)
                .ok()
                .map(|r| r.into_any().unbind());
        }
        Some(hit)
    }

    /// Writes the call's key and looks it up (unless `refresh`), counting a hit or a miss. Returns the
    /// hit's value, or the miss's key bytes and whether its inputs decode back from them.
    fn probe<'a, 'py: 'a>(
        &self,
        py: Python<'py>,
        value: impl Fn(usize) -> Borrowed<'a, 'py, PyAny> + Copy,
        refresh: bool,
    ) -> PyResult<HitOrMiss> {
        let store = self.store.get();
        let logged = crate::log::enabled();
        let (result, digest) = with_scratch(|key| -> PyResult<(HitOrMiss, u128)> {
            let mut spans = Spans::new();
            let decodable = self.write_key(py, value, key, Some(&mut spans))?;
            let digested = compact_large_key(key, self.func_name.bind(py).to_str()?);
            let found = if refresh {
                store.count_event(|s| s.misses += 1);
                None
            } else {
                store.lookup(py, key)
            };
            let digest = if logged { self.entry_key(py, key)? } else { 0 };
            Ok((
                match found {
                    Some(value) => Ok(value),
                    None => Err(Miss {
                        key: key.clone(), // the miss path keeps its own copy
                        lossless: decodable && !digested,
                        spans: (!decodable && !digested).then_some(spans),
                    }),
                },
                digest,
            ))
        })?;
        bump(if result.is_ok() { &self.hits } else { &self.misses });
        if logged {
            let event = if result.is_ok() { "hit" } else { "miss" };
            crate::log::event(py, event, self.func_name.bind(py), digest)?;
        }
        Ok(result)
    }

    /// A delegating memoizer's call: a fresh hit here, anything else (a miss, a stale or expired entry,
    /// bypass, refresh, max_age(), an argument the key cannot hold) by the Python engine's wrapper.
    fn delegated<'a, 'py: 'a>(
        &self,
        py: Python<'py>,
        value: impl Fn(usize) -> Borrowed<'a, 'py, PyAny> + Copy,
        call: impl FnOnce() -> PyResult<Py<PyAny>>,
        mode: Mode,
        margin: u64,
    ) -> PyResult<Py<PyAny>> {
        if mode == Mode::Normal {
            let store = self.store.get();
            let hit = with_scratch(|key| {
                match self.write_key(py, value, key, None) {
                    Ok(_) => {}
                    // An argument the key cannot hold (or an encoder that raised): the engine's call
                    // reports it as it does. An interrupt (KeyboardInterrupt, SystemExit) goes up now.
                    Err(err) if err.is_instance_of::<pyo3::exceptions::PyException>(py) => return Ok(None),
                    Err(err) => return Err(err),
                }
                compact_large_key(key, self.func_name.bind(py).to_str()?);
                let Some(found) = store.lookup_hit(py, key, margin, false) else {
                    return Ok(None);
                };
                let digest = match crate::log::enabled() {
                    true => Some(self.entry_key(py, key)?),
                    false => None,
                };
                Ok(Some((found, digest)))
            })?;
            if let Some((found, digest)) = hit {
                let found = match self.replay {
                    true => Bound::new(py, crate::replay::Replay::new(found.bind(py))?)?
                        .into_any()
                        .unbind(),
                    false => found,
                };
                bump(&self.hits);
                if let Some(digest) = digest {
                    crate::log::event(py, "hit", self.func_name.bind(py), digest)?;
                }
                return Ok(found);
            }
        }
        trap_forced_unwind(call)
    }

    /// The entry key (`CacheEntry.key`, as debug events show it) of this function's store key bytes.
    fn entry_key(&self, py: Python<'_>, key: &[u8]) -> PyResult<u128> {
        Ok(crate::store::key_digest(key, self.func_name.bind(py).to_str()?))
    }

    /// A passthrough's call: the function runs, counted as a miss (and an error when it raises).
    pub(crate) fn run_through(&self, call: impl FnOnce() -> PyResult<Py<PyAny>>) -> PyResult<Py<PyAny>> {
        crate::stack::check()?;
        self.count_bypass();
        self.run_counted(call)
    }

    /// Runs the function, counting an error when it raises.
    fn run_counted(&self, call: impl FnOnce() -> PyResult<Py<PyAny>>) -> PyResult<Py<PyAny>> {
        let outcome = trap_forced_unwind(call);
        if outcome.is_err() {
            self.count_error();
        }
        outcome
    }

    fn count_error(&self) {
        bump(&self.errors);
        self.store.get().count_event(|s| s.errors += 1);
    }

    /// A call that does not use the cache (`oxicache.bypass()`): counted as a miss.
    fn count_bypass(&self) {
        bump(&self.misses);
        self.store.get().count_event(|s| s.misses += 1);
    }

    /// Stores a computed `output` under `key`, unless it is `...` or `cache_if` rejects it. `inputs` are the entry's
    /// inputs when they do not decode from the key (`stored_inputs`, taken before the call).
    fn store_output(&self, py: Python<'_>, key: &[u8], inputs: Option<Py<PyDict>>, output: &Py<PyAny>) -> PyResult<()> {
        if output.bind(py).is(py.Ellipsis()) {
            return Ok(()); // `...` is "no output": such an entry answers no call, so it is not stored
        }
        if let Some(keep) = &self.cache_if {
            if !shutdown::call(keep.bind(py), &[output.bind(py)])?.is_truthy()? {
                return Ok(());
            }
        }
        let extra = if inputs.is_none() && self.metadata.is_none() {
            None
        } else {
            Some(Box::new(Extra {
                expected: None,
                metadata: self.metadata.as_ref().map(|m| m.clone_ref(py)),
                inputs,
            }))
        };
        let payload = Payload {
            output: output.clone_ref(py),
            extra,
        };
        self.store.get().store(py, key, payload, self.ttl)?;
        bump(&self.sets);
        if crate::log::enabled() {
            crate::log::event(py, "stored", self.func_name.bind(py), self.entry_key(py, key)?)?;
        }
        Ok(())
    }

    /// Looks the call up; on a miss runs `call` (the function with the caller's arguments) and stores
    /// the result. Concurrent misses of one key run `call` once (single-flight).
    pub(crate) fn call_with<'a, 'py: 'a>(
        &self,
        py: Python<'py>,
        value: impl Fn(usize) -> Borrowed<'a, 'py, PyAny> + Copy,
        call: impl FnOnce() -> PyResult<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        crate::stack::check()?;
        if self.passthrough {
            return self.run_through(call);
        }
        let mode = controls::mode(py)?;
        if let Some(margin) = self.delegate {
            return self.delegated(py, value, call, mode, margin);
        }
        if mode == Mode::Bypass {
            self.count_bypass();
            return self.run_counted(call);
        }
        let store = self.store.get();
        let before = store.flights.finished_count();
        let miss = match self.probe(py, value, mode == Mode::Refresh)? {
            Ok(value) => return Ok(value),
            Err(miss) => miss,
        };
        // The entry's inputs are the call's, taken now: the function may change its arguments.
        let inputs = if miss.lossless {
            None
        } else {
            Some(self.stored_inputs(py, value, &miss)?)
        };
        let key = miss.key;
        store.flights.run(py, &key, before, self.wait, |turn| {
            // Another leader may have stored the value between our lookup and now; only possible when
            // some flight finished since then. (A refresh computes regardless.)
            if turn == (Turn::Lead { recheck: true }) && mode != Mode::Refresh {
                if let Some(stored) = store.peek_value(py, &key) {
                    return Ok(stored);
                }
            }
            let output = self.run_counted(call)?;
            self.store_output(py, &key, inputs, &output)?;
            Ok(output)
        })
    }
}

impl Drop for Memoizer {
    fn drop(&mut self) {
        if self.private {
            self.store.get().release(self.func_id);
        }
    }
}

extern "C" {
    // In CPython's stable C API (methodobject/classobject), but not declared by pyo3-ffi.
    fn PyMethod_New(func: *mut ffi::PyObject, slf: *mut ffi::PyObject) -> *mut ffi::PyObject;
}

/// Counter increment without a locked instruction: every caller holds the GIL (the module does not
/// declare free-threading support), so a plain load and store cannot lose updates, and the hit path
/// saves the ~20 cycles of `lock xadd`.
#[inline]
fn bump(counter: &AtomicU64) {
    counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

static CACHE_INFO: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

#[pymethods]
impl Memoizer {
    /// Memoizer(func, store, name, params, exclude, ttl=None, metadata=None)
    ///
    /// `params` lists `(name, kind, has_default, default)` in signature order, `kind` being the int value
    /// of `inspect.Parameter.kind`.
    #[new]
    #[pyo3(signature = (func, store, name, params, exclude, ttl=None, metadata=None, cache_if=None, wait_timeout=None, private=false, *, delegate=None, passthrough=false, replay=false))]
    #[allow(clippy::too_many_arguments)] // mirrors the Python-side constructor
    fn new(
        py: Python<'_>,
        func: Py<PyAny>,
        store: Py<MemoryStore>,
        name: Py<PyString>,
        params: ParamSpecs,
        exclude: Vec<String>,
        ttl: Option<f64>,
        metadata: Option<Py<PyDict>>,
        cache_if: Option<Py<PyAny>>,
        wait_timeout: Option<f64>,
        private: bool,
        delegate: Option<f64>,
        passthrough: bool,
        replay: bool,
    ) -> PyResult<Self> {
        let func_id = store.get().intern(name.bind(py).to_str()?);
        Ok(Memoizer {
            func,
            store,
            func_name: name,
            func_id,
            sig: Signature::new(py, params, exclude)?,
            ttl: ttl_nanos(ttl)?,
            metadata,
            cache_if,
            wait: wait_bound(wait_timeout)?,
            private,
            delegate: match delegate {
                Some(margin) if margin.is_finite() && margin >= 0.0 => Some((margin * 1e9) as u64),
                Some(margin) => {
                    return Err(pyo3::exceptions::PyValueError::new_err(format!(
                        "delegate must be a non-negative number of seconds, got {margin}"
                    )))
                }
                None => None,
            },
            passthrough,
            replay,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            sets: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            vectorcall: crate::vectorcall::memoizer_vectorcall(),
        })
    }

    /// Calls through `tp_call` (e.g. `PyObject_Call`); ordinary calls take the vectorcall entry point
    /// in `vectorcall.rs`, which skips building the argument tuple.
    #[pyo3(signature = (*args, **kwargs))]
    fn __call__(
        &self,
        py: Python<'_>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        self.call_general(py, args, kwargs)
    }

    /// For the Python wrappers of coroutine and generator functions: the stored value of the call, or a
    /// `Pending` to complete after running the function. Arguments that do not fit the signature raise
    /// the signature's TypeError.
    #[pyo3(signature = (args, kwargs=None))]
    fn lookup(
        slf: &Bound<'_, Self>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let memo = slf.get();
        let mode = controls::mode(py)?;
        let values = match memo.sig.bind_values(py, args, kwargs)? {
            Some(values) => values,
            None => {
                // Raises the signature's own TypeError (or, should a rebinding succeed, the generic one).
                memo.sig.bind_or_raise(py, &memo.func, args, kwargs)?;
                return Err(pyo3::exceptions::PyTypeError::new_err(
                    "arguments do not match the function's signature",
                ));
            }
        };
        let pending = |key, inputs, bypass| {
            let pending = Pending {
                memo: slf.clone().unbind(),
                key,
                inputs,
                bypass,
                refresh: mode == Mode::Refresh,
            };
            Ok(Py::new(py, pending)?.into_any())
        };
        if mode == Mode::Bypass {
            memo.count_bypass();
            return pending(Vec::new(), None, true);
        }
        let value = |i| values.value(py, &memo.sig, i);
        match memo.probe(py, value, mode == Mode::Refresh)? {
            Ok(hit) => Ok(hit),
            Err(miss) => {
                let inputs = if miss.lossless {
                    None
                } else {
                    Some(memo.stored_inputs(py, value, &miss)?)
                };
                pending(miss.key, inputs, false)
            }
        }
    }

    /// Binding as a method: `obj.method` returns a bound method, so `self` is the first argument.
    fn __get__(
        slf: Bound<'_, Self>,
        obj: Option<&Bound<'_, PyAny>>,
        _owner: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        match obj {
            Some(obj) if !obj.is_none() => {
                // SAFETY: both pointers are live; PyMethod_New returns a new reference or NULL with an error set.
                unsafe {
                    let bound = PyMethod_New(slf.as_ptr(), obj.as_ptr());
                    Bound::from_owned_ptr_or_err(slf.py(), bound).map(Bound::unbind)
                }
            }
            _ => Ok(slf.into_any().unbind()),
        }
    }

    /// Pickled by reference, like functions and `functools.lru_cache` wrappers: the qualified name is
    /// looked up again in the module on unpickling (so memoized functions can go to process pools).
    fn __repr__(slf: &Bound<'_, Self>) -> String {
        let name = slf
            .getattr(pyo3::intern!(slf.py(), "__qualname__"))
            .and_then(|n| n.extract::<String>())
            .unwrap_or_else(|_| slf.get().func_name.to_string());
        let kind = if slf.get().replay {
            "generator function"
        } else {
            "function"
        };
        format!("<memoized {kind} {name}>")
    }

    fn __reduce__(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        Ok(slf.getattr(pyo3::intern!(slf.py(), "__qualname__"))?.unbind())
    }

    /// `copy.copy` of a memoized function is the function itself, as for functions and `lru_cache`
    /// wrappers (it holds no state of its own to copy: its entries live in the cache).
    fn __copy__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    /// `copy.deepcopy`: the function itself, as `__copy__`.
    fn __deepcopy__<'py>(slf: Bound<'py, Self>, _memo: &Bound<'py, PyAny>) -> Bound<'py, Self> {
        slf
    }

    /// The key (`CacheEntry.key`) a call with these arguments would use.
    #[pyo3(signature = (*args, **kwargs))]
    fn cache_key(
        &self,
        py: Python<'_>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<u128> {
        let slots = self.sig.bind_or_raise(py, &self.func, args, kwargs)?;
        let mut key = Vec::new();
        self.write_key(py, |i| slots[i].as_ref().expect("bound").as_borrowed(), &mut key, None)?;
        Ok(digest::entry_key(self.func_name.bind(py).to_str()?, &key[4..]))
    }

    /// The inputs dict a call with these arguments is stored under (`CacheEntry.inputs`): bound to the
    /// signature, defaults applied, excluded names left out.
    #[pyo3(signature = (*args, **kwargs))]
    fn cache_inputs<'py>(
        &self,
        py: Python<'py>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let slots = self.sig.bind_or_raise(py, &self.func, args, kwargs)?;
        self.sig
            .inputs_dict(py, |i| slots[i].as_ref().expect("bound").as_borrowed())
    }

    /// CacheInfo(hits, misses, maxsize, currsize) for this function, as functools.lru_cache reports it.
    fn cache_info(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let cls = CACHE_INFO.get_or_try_init(py, || {
            py.import("oxicache.info")?.getattr("CacheInfo").map(Bound::unbind)
        })?;
        let store = self.store.get();
        let info = cls.bind(py).call1((
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
            store.max_size(),
            store.count_group(self.func_id),
            self.sets.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed),
        ))?;
        Ok(info.unbind())
    }

    /// Removes this function's entries (not the rest of the cache) and resets its counters.
    fn cache_clear(&self) {
        self.store.get().remove_group(self.func_id);
        for counter in [&self.hits, &self.misses, &self.sets, &self.errors] {
            counter.store(0, Ordering::Relaxed);
        }
    }

    /// Seconds a call waits for another thread computing the same key before taking over (`wait_timeout`).
    #[getter]
    fn wait(&self) -> f64 {
        self.wait.as_secs_f64()
    }

    /// The function identity used in keys (`CacheEntry.func`).
    /// The parameter names left out of its keys (`exclude`), sorted.
    #[getter]
    fn excluded(&self) -> Vec<String> {
        let mut names = self.sig.excluded().to_vec();
        names.sort();
        names
    }

    #[getter]
    fn cache_name(&self, py: Python<'_>) -> Py<PyString> {
        self.func_name.clone_ref(py)
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.func)?;
        visit.call(&self.store)?;
        self.sig.traverse(&visit)?;
        if let Some(m) = &self.metadata {
            visit.call(m)?;
        }
        if let Some(c) = &self.cache_if {
            visit.call(c)?;
        }
        Ok(())
    }
}
