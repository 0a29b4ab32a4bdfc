//! The native memoize wrapper for `InMemCache`: one call into Rust binds the arguments to the signature,
//! writes the canonical key bytes, and returns the stored value on a hit.
//!
//! A Python closure around a Rust dict already costs as much as the best peers' whole hit (about 250 ns,
//! see reference/performance-anchors.md section 1), so the wrapper itself is a native callable.

use std::sync::atomic::{AtomicU64, Ordering};

use pyo3::exceptions::PyValueError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyString, PyTuple};
use pyo3::{PyTraverseError, PyVisit};
use smallvec::SmallVec;

use crate::controls::{self, Mode};
use crate::errors::CoreError;
use crate::key::digest;
use crate::key::encode::{tag, with_scratch, write_str, write_varint, Encoder};
use crate::shutdown::{self, trap_forced_unwind};
use crate::store::flight::{wait_bound, Turn};
use crate::store::{compact_large_key, ttl_nanos, Extra, MemoryStore, Payload};

/// `inspect.Parameter.kind` values.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    PositionalOnly = 0,
    PositionalOrKeyword = 1,
    VarPositional = 2,
    KeywordOnly = 3,
    VarKeyword = 4,
}

impl Kind {
    fn from_int(v: u8) -> PyResult<Kind> {
        Ok(match v {
            0 => Kind::PositionalOnly,
            1 => Kind::PositionalOrKeyword,
            2 => Kind::VarPositional,
            3 => Kind::KeywordOnly,
            4 => Kind::VarKeyword,
            _ => return Err(PyValueError::new_err(format!("unknown parameter kind {v}"))),
        })
    }
}

struct Param {
    name: Py<PyString>,
    kind: Kind,
    default: Option<Py<PyAny>>,
    /// Canonical encoding of the name (`s` + length + UTF-8), written before the value.
    name_bytes: Vec<u8>,
    /// The name's UTF-8 (the tail of `name_bytes`, whose length prefix is longer for long names).
    text: Box<str>,
}

/// A memoized function on a `MemoryStore`. Built by `InMemCache.memoize`; behaves like the function.
#[pyclass(module = "oxicache._core", name = "Memoizer", frozen, dict, weakref)]
pub struct Memoizer {
    func: Py<PyAny>,
    store: Py<MemoryStore>,
    func_name: Py<PyString>,
    func_id: u32,
    params: Vec<Param>,
    /// Number of leading positional parameters (positional-only and positional-or-keyword).
    n_positional: usize,
    var_pos: Option<usize>,
    var_kw: Option<usize>,
    /// Every parameter is positional (no `*args`, `**kwargs` or keyword-only ones): calls without
    /// keywords bind by position alone, the fast path.
    plain_positional: bool,
    /// Number of leading parameters without a default.
    required: usize,
    /// Parameters in the key, in canonical order (sorted by encoded name); excluded ones are absent.
    order: Vec<usize>,
    /// Excluded names, also dropped from the `**kwargs` dict (so `exclude=["api_key"]` works on `**kw`).
    exclude: Vec<String>,
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

type Slots<'py> = SmallVec<[Option<Bound<'py, PyAny>>; 8]>;

/// A call's arguments bound to the parameters.
enum ArgValues<'a, 'py> {
    /// Parameter i is `args[i]`, or its default past the end (positional calls of plain signatures).
    Positional(&'a Bound<'py, PyTuple>),
    Slots(Slots<'py>),
}

impl<'a, 'py> ArgValues<'a, 'py> {
    #[inline]
    fn value<'b>(&'b self, py: Python<'py>, memo: &'b Memoizer, i: usize) -> Borrowed<'b, 'py, PyAny> {
        match self {
            ArgValues::Positional(args) if i < args.len() => {
                // SAFETY: i < len(args), and `args` outlives the borrow.
                unsafe { args.get_borrowed_item_unchecked(i) }
            }
            ArgValues::Positional(_) => memo.default_of(py, i),
            ArgValues::Slots(slots) => slots[i].as_ref().expect("bound").as_borrowed(),
        }
    }
}

enum Binding<'py> {
    Bound(Slots<'py>),
    /// The arguments do not fit the signature: the real call raises the right TypeError.
    Mismatch,
}

impl Memoizer {
    fn bind<'py>(
        &self,
        py: Python<'py>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Binding<'py>> {
        let mut slots: Slots<'py> = SmallVec::from_elem(None, self.params.len());
        let nargs = args.len();
        let npos = self.n_positional;
        for (i, slot) in slots.iter_mut().enumerate().take(nargs.min(npos)) {
            *slot = Some(args.get_item(i)?);
        }
        if let Some(vp) = self.var_pos {
            slots[vp] = Some(if nargs > npos {
                args.get_slice(npos, nargs).into_any()
            } else {
                PyTuple::empty(py).into_any()
            });
        } else if nargs > npos {
            return Ok(Binding::Mismatch);
        }
        let mut extra_kw: Option<Bound<'py, PyDict>> = None;
        if let Some(kwargs) = kwargs {
            for (k, v) in kwargs.iter() {
                match self.param_index(&k)? {
                    Some(i) => {
                        if slots[i].is_some() {
                            return Ok(Binding::Mismatch);
                        }
                        slots[i] = Some(v);
                    }
                    None if self.var_kw.is_some() => {
                        let excluded = !self.exclude.is_empty() && {
                            let name = k.cast::<PyString>()?.to_str()?;
                            self.exclude.iter().any(|e| e == name)
                        };
                        if !excluded {
                            extra_kw.get_or_insert_with(|| PyDict::new(py)).set_item(k, v)?;
                        }
                    }
                    None => return Ok(Binding::Mismatch),
                }
            }
        }
        if let Some(vk) = self.var_kw {
            slots[vk] = Some(extra_kw.unwrap_or_else(|| PyDict::new(py)).into_any());
        }
        for (slot, param) in slots.iter_mut().zip(&self.params) {
            if slot.is_none() {
                match &param.default {
                    Some(d) => *slot = Some(d.bind(py).clone()),
                    None => return Ok(Binding::Mismatch),
                }
            }
        }
        Ok(Binding::Bound(slots))
    }

    /// The parameter a keyword argument binds to (never positional-only or variadic ones).
    fn param_index(&self, name: &Bound<'_, PyAny>) -> PyResult<Option<usize>> {
        // Keyword names are usually the interned strings of the signature: compare pointers first.
        for (i, p) in self.params.iter().enumerate() {
            if p.name.as_ptr() == name.as_ptr() && matches!(p.kind, Kind::PositionalOrKeyword | Kind::KeywordOnly) {
                return Ok(Some(i));
            }
        }
        let name = name.cast::<PyString>()?.to_str()?;
        for (i, p) in self.params.iter().enumerate() {
            if matches!(p.kind, Kind::PositionalOrKeyword | Kind::KeywordOnly) && *p.text == *name {
                return Ok(Some(i));
            }
        }
        Ok(None)
    }

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
        write_varint(enc.out, self.order.len() as u64);
        for &i in &self.order {
            enc.out.extend_from_slice(&self.params[i].name_bytes);
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
            return Err(err.into_pyerr(py, Some(func), Some(self.params[i].name.bind(py).to_str()?)));
        }
        Ok(enc.lossless)
    }

    fn inputs_dict<'a, 'py: 'a>(
        &self,
        py: Python<'py>,
        value: impl Fn(usize) -> Borrowed<'a, 'py, PyAny>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let inputs = PyDict::new(py);
        let mut in_key: SmallVec<[usize; 8]> = self.order.iter().copied().collect();
        in_key.sort_unstable();
        for i in in_key {
            inputs.set_item(self.params[i].name.bind(py), value(i))?;
        }
        Ok(inputs)
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
        let mut in_key: SmallVec<[usize; 8]> = self.order.iter().copied().collect();
        in_key.sort_unstable();
        for i in in_key {
            let canonical = miss
                .spans
                .as_ref()
                .and_then(|spans| spans.iter().find(|(p, _, _)| *p == i))
                .and_then(|&(_, start, end)| miss.key.get(start..end));
            let kept = crate::stored::kept_argument(&value(i), canonical)?;
            inputs.set_item(self.params[i].name.bind(py), kept)?;
        }
        Ok(inputs.unbind())
    }

    /// True when `nargs` positional arguments alone bind the signature: no variadic or keyword-only
    /// parameters, and every parameter not passed has a default. Then parameter i is `args[i]` or its
    /// default. (The caller checks that no keywords were passed.)
    #[inline]
    pub(crate) fn binds_positionally(&self, nargs: usize) -> bool {
        self.plain_positional && (self.required..=self.params.len()).contains(&nargs)
    }

    /// For the keyword hit path: the slots of a call with `nargs` positional arguments and the keyword
    /// names `kwnames` (pointers of interned strings), or None when the call needs the full binder
    /// (variadics, unknown or duplicate names, a missing argument without default). Slot i is the index
    /// into the caller's argument array, or `usize::MAX` for "use the default".
    #[inline]
    pub(crate) fn keyword_slots(&self, nargs: usize, kwnames: &[*mut ffi::PyObject]) -> Option<SmallVec<[usize; 8]>> {
        if self.var_pos.is_some() || self.var_kw.is_some() || nargs > self.n_positional {
            return None;
        }
        let mut slots: SmallVec<[usize; 8]> = SmallVec::from_elem(usize::MAX, self.params.len());
        for (i, slot) in slots.iter_mut().enumerate().take(nargs) {
            *slot = i;
        }
        for (k, &name) in kwnames.iter().enumerate() {
            let i = self.params.iter().position(|p| p.name.as_ptr() == name)?;
            if !matches!(self.params[i].kind, Kind::PositionalOrKeyword | Kind::KeywordOnly) || slots[i] != usize::MAX {
                return None;
            }
            slots[i] = nargs + k;
        }
        for (slot, p) in slots.iter().zip(&self.params) {
            if *slot == usize::MAX && p.default.is_none() {
                return None;
            }
        }
        Some(slots)
    }

    /// `bind`, raising the signature's own TypeError when the arguments do not fit.
    fn bind_or_raise<'py>(
        &self,
        py: Python<'py>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Slots<'py>> {
        match self.bind(py, args, kwargs)? {
            Binding::Bound(slots) => Ok(slots),
            Binding::Mismatch => {
                let sig = py.import("inspect")?.call_method1("signature", (self.func.bind(py),))?;
                sig.call_method("bind", args, kwargs)?;
                Err(pyo3::exceptions::PyTypeError::new_err(
                    "arguments do not match the function's signature",
                ))
            }
        }
    }

    /// Parameter i's default (only called for parameters that have one).
    #[inline]
    pub(crate) fn default_of<'a, 'py>(&'a self, py: Python<'py>, i: usize) -> Borrowed<'a, 'py, PyAny> {
        self.params[i]
            .default
            .as_ref()
            .expect("checked by binds_positionally")
            .bind_borrowed(py)
    }

    /// Binds `args`/`kwargs`, or None when they do not fit the signature.
    fn bind_values<'a, 'py>(
        &self,
        py: Python<'py>,
        args: &'a Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Option<ArgValues<'a, 'py>>> {
        if kwargs.is_none_or(|k| k.is_empty()) && self.binds_positionally(args.len()) {
            return Ok(Some(ArgValues::Positional(args)));
        }
        Ok(match self.bind(py, args, kwargs)? {
            Binding::Bound(slots) => Some(ArgValues::Slots(slots)),
            Binding::Mismatch => None,
        })
    }

    /// Any call: binds through the general path (keywords, variadics) and memoizes.
    pub(crate) fn call_general(
        &self,
        py: Python<'_>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        let call = || Ok(shutdown::call_with_kwargs(self.func.bind(py), args, kwargs)?.unbind());
        match self.bind_values(py, args, kwargs)? {
            Some(values) => self.call_with(py, |i| values.value(py, self, i), call),
            None => call(), // the function raises its own TypeError
        }
    }

    pub(crate) fn func(&self) -> &Py<PyAny> {
        &self.func
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
        if controls::maybe_active() {
            return None; // the full path reads the context's mode
        }
        let store = self.store.get();
        let hit = with_scratch(|key| {
            self.encode_key(&mut Encoder::builtins_only(key), value, None).ok()?;
            if key.len() > crate::store::LARGE_KEY {
                return None; // digesting needs the name as a str: leave it to the full path
            }
            store.lookup_hit(py, key)
        })?;
        bump(&self.hits);
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
        let result = with_scratch(|key| -> PyResult<HitOrMiss> {
            let mut spans = Spans::new();
            let decodable = self.write_key(py, value, key, Some(&mut spans))?;
            let digested = compact_large_key(key, self.func_name.bind(py).to_str()?);
            let found = if refresh {
                store.count_event(|s| s.misses += 1);
                None
            } else {
                store.lookup(py, key)
            };
            Ok(match found {
                Some(value) => Ok(value),
                None => Err(Miss {
                    key: key.clone(), // the miss path keeps its own copy
                    lossless: decodable && !digested,
                    spans: (!decodable && !digested).then_some(spans),
                }),
            })
        })?;
        bump(if result.is_ok() { &self.hits } else { &self.misses });
        Ok(result)
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

    /// Stores a computed `output` under `key`, unless `cache_if` rejects it. `inputs` are the entry's
    /// inputs when they do not decode from the key (`stored_inputs`, taken before the call).
    fn store_output(&self, py: Python<'_>, key: &[u8], inputs: Option<Py<PyDict>>, output: &Py<PyAny>) -> PyResult<()> {
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
        self.store.get().store(key, payload, self.ttl);
        bump(&self.sets);
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
        let mode = controls::mode(py)?;
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

/// A missed lookup of a memoized coroutine or generator function (`Memoizer.lookup`): the Python
/// wrapper runs the function and hands the complete result to `store`.
#[pyclass(module = "oxicache._core", name = "Pending", frozen)]
pub struct Pending {
    memo: Py<Memoizer>,
    key: Vec<u8>,
    /// The entry's inputs when they do not decode from the key (`Memoizer::stored_inputs`).
    inputs: Option<Py<PyDict>>,
    bypass: bool,
    /// Under `oxicache.refresh()`: the stored value is what is being replaced, never an answer.
    refresh: bool,
}

#[pymethods]
impl Pending {
    /// The store key of the call (single-flight groups concurrent calls by it).
    #[getter]
    fn key<'py>(&self, py: Python<'py>) -> Bound<'py, pyo3::types::PyBytes> {
        pyo3::types::PyBytes::new(py, &self.key)
    }

    /// True under `oxicache.bypass()`: run the function, store nothing.
    #[getter]
    fn bypass(&self) -> bool {
        self.bypass
    }

    /// Stores the call's complete result (unless bypassed or rejected by `cache_if`).
    fn store(&self, py: Python<'_>, output: Py<PyAny>) -> PyResult<()> {
        if self.bypass {
            return Ok(());
        }
        let inputs = self.inputs.as_ref().map(|i| i.clone_ref(py));
        self.memo.get().store_output(py, &self.key, inputs, &output)
    }

    /// For single-flight: `(True, value)` when a value was stored for this key since the lookup missed
    /// (not counted as a hit), else `(False, None)`.
    fn recheck(&self, py: Python<'_>) -> (bool, Py<PyAny>) {
        if self.bypass || self.refresh {
            return (false, py.None());
        }
        match self.memo.get().store.get().peek_value(py, &self.key) {
            Some(value) => (true, value),
            None => (false, py.None()),
        }
    }

    /// Counts the function's failure (nothing is stored).
    fn failed(&self) {
        self.memo.get().count_error();
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.memo)?;
        if let Some(i) = &self.inputs {
            visit.call(i)?;
        }
        Ok(())
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
    #[pyo3(signature = (func, store, name, params, exclude, ttl=None, metadata=None, cache_if=None, wait_timeout=None, private=false))]
    #[allow(clippy::too_many_arguments)] // mirrors the Python-side constructor
    fn new(
        py: Python<'_>,
        func: Py<PyAny>,
        store: Py<MemoryStore>,
        name: Py<PyString>,
        params: Vec<(Py<PyString>, u8, bool, Py<PyAny>)>,
        exclude: Vec<String>,
        ttl: Option<f64>,
        metadata: Option<Py<PyDict>>,
        cache_if: Option<Py<PyAny>>,
        wait_timeout: Option<f64>,
        private: bool,
    ) -> PyResult<Self> {
        let mut parsed = Vec::with_capacity(params.len());
        let (mut var_pos, mut var_kw, mut n_positional) = (None, None, 0);
        for (i, (pname, kind, has_default, default)) in params.into_iter().enumerate() {
            let kind = Kind::from_int(kind)?;
            match kind {
                Kind::PositionalOnly | Kind::PositionalOrKeyword => n_positional = i + 1,
                Kind::VarPositional => var_pos = Some(i),
                Kind::VarKeyword => var_kw = Some(i),
                Kind::KeywordOnly => {}
            }
            let text: Box<str> = pname.bind(py).to_str()?.into();
            let mut name_bytes = Vec::new();
            write_str(&mut name_bytes, &text);
            // Interning makes keyword lookups a pointer comparison in the common case.
            let interned = PyString::intern(py, pname.bind(py).to_str()?).unbind();
            parsed.push(Param {
                name: interned,
                kind,
                default: has_default.then_some(default),
                name_bytes,
                text,
            });
        }
        let mut order: Vec<usize> = (0..parsed.len())
            .filter(|&i| !exclude.iter().any(|e| **e == *parsed[i].text))
            .collect();
        order.sort_by(|&a, &b| parsed[a].name_bytes.cmp(&parsed[b].name_bytes));
        let func_id = store.get().intern(name.bind(py).to_str()?);
        let plain_positional = parsed
            .iter()
            .all(|p| matches!(p.kind, Kind::PositionalOnly | Kind::PositionalOrKeyword));
        let required = parsed.iter().take_while(|p| p.default.is_none()).count();
        Ok(Memoizer {
            func,
            store,
            func_name: name,
            func_id,
            params: parsed,
            n_positional,
            var_pos,
            var_kw,
            plain_positional,
            required,
            order,
            exclude,
            ttl: ttl_nanos(ttl)?,
            metadata,
            cache_if,
            wait: wait_bound(wait_timeout)?,
            private,
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
        let values = match memo.bind_values(py, args, kwargs)? {
            Some(values) => values,
            None => {
                // Raises the signature's own TypeError (or, should a rebinding succeed, the generic one).
                memo.bind_or_raise(py, args, kwargs)?;
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
        let value = |i| values.value(py, memo, i);
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
        let slots = self.bind_or_raise(py, args, kwargs)?;
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
        let slots = self.bind_or_raise(py, args, kwargs)?;
        self.inputs_dict(py, |i| slots[i].as_ref().expect("bound").as_borrowed())
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
    #[getter]
    fn cache_name(&self, py: Python<'_>) -> Py<PyString> {
        self.func_name.clone_ref(py)
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.func)?;
        visit.call(&self.store)?;
        for p in &self.params {
            if let Some(d) = &p.default {
                visit.call(d)?;
            }
        }
        if let Some(m) = &self.metadata {
            visit.call(m)?;
        }
        if let Some(c) = &self.cache_if {
            visit.call(c)?;
        }
        Ok(())
    }
}
