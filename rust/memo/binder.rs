//! Binding a call's arguments to the memoized function's signature: one binder, used by the native
//! memoizer (`memo/mod.rs`, `vectorcall.rs`) and, through `Binder`, by the Python engine of the other backends,
//! so every backend binds (defaults, keywords, `*args`, `**kwargs`, `exclude`) the same way.

use pyo3::exceptions::PyValueError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};
use pyo3::{PyTraverseError, PyVisit};
use smallvec::SmallVec;

use crate::key::encode::write_str;

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

/// A function's parameters, as the key and the inputs dict see them.
pub struct Signature {
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
}

/// `(name, kind, has_default, default)` of each parameter in signature order, `kind` being the int value
/// of `inspect.Parameter.kind` (`oxicache.memo.signature.param_specs` makes these).
pub type ParamSpecs = Vec<(Py<PyString>, u8, bool, Py<PyAny>)>;

pub type Slots<'py> = SmallVec<[Option<Bound<'py, PyAny>>; 8]>;

/// A call's arguments bound to the parameters.
pub enum ArgValues<'a, 'py> {
    /// Parameter i is `args[i]`, or its default past the end (positional calls of plain signatures).
    Positional(&'a Bound<'py, PyTuple>),
    Slots(Slots<'py>),
}

impl<'a, 'py> ArgValues<'a, 'py> {
    #[inline]
    pub fn value<'b>(&'b self, py: Python<'py>, sig: &'b Signature, i: usize) -> Borrowed<'b, 'py, PyAny> {
        match self {
            ArgValues::Positional(args) if i < args.len() => {
                // SAFETY: i < len(args), and `args` outlives the borrow.
                unsafe { args.get_borrowed_item_unchecked(i) }
            }
            ArgValues::Positional(_) => sig.default_of(py, i),
            ArgValues::Slots(slots) => slots[i].as_ref().expect("bound").as_borrowed(),
        }
    }
}

pub enum Binding<'py> {
    Bound(Slots<'py>),
    /// The arguments do not fit the signature: the real call raises the right TypeError.
    Mismatch,
}

impl Signature {
    /// The names left out of keys.
    pub fn excluded(&self) -> &[String] {
        &self.exclude
    }

    pub fn new(py: Python<'_>, params: ParamSpecs, exclude: Vec<String>) -> PyResult<Self> {
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
        let plain_positional = parsed
            .iter()
            .all(|p| matches!(p.kind, Kind::PositionalOnly | Kind::PositionalOrKeyword));
        let required = parsed.iter().take_while(|p| p.default.is_none()).count();
        Ok(Signature {
            params: parsed,
            n_positional,
            var_pos,
            var_kw,
            plain_positional,
            required,
            order,
            exclude,
        })
    }

    /// The parameters in the key, in canonical order.
    #[inline]
    pub fn key_order(&self) -> &[usize] {
        &self.order
    }

    /// The parameters in the key, in signature order (the inputs dict's order).
    pub fn in_signature_order(&self) -> SmallVec<[usize; 8]> {
        let mut in_key: SmallVec<[usize; 8]> = self.order.iter().copied().collect();
        in_key.sort_unstable();
        in_key
    }

    /// Parameter i's canonical name bytes (written before its value in the key).
    #[inline]
    pub fn name_bytes(&self, i: usize) -> &[u8] {
        &self.params[i].name_bytes
    }

    pub fn name<'py>(&self, py: Python<'py>, i: usize) -> &Bound<'py, PyString> {
        self.params[i].name.bind(py)
    }

    pub fn bind<'py>(
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

    /// The inputs dict of a bound call (`CacheEntry.inputs`): signature order, excluded names left out.
    pub fn inputs_dict<'a, 'py: 'a>(
        &self,
        py: Python<'py>,
        value: impl Fn(usize) -> Borrowed<'a, 'py, PyAny>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let inputs = PyDict::new(py);
        for i in self.in_signature_order() {
            inputs.set_item(self.params[i].name.bind(py), value(i))?;
        }
        Ok(inputs)
    }

    /// True when `nargs` positional arguments alone bind the signature: no variadic or keyword-only
    /// parameters, and every parameter not passed has a default. Then parameter i is `args[i]` or its
    /// default. (The caller checks that no keywords were passed.)
    #[inline]
    pub fn binds_positionally(&self, nargs: usize) -> bool {
        self.plain_positional && (self.required..=self.params.len()).contains(&nargs)
    }

    /// For the keyword hit path: the slots of a call with `nargs` positional arguments and the keyword
    /// names `kwnames` (pointers of interned strings), or None when the call needs the full binder
    /// (variadics, unknown or duplicate names, a missing argument without default). Slot i is the index
    /// into the caller's argument array, or `usize::MAX` for "use the default".
    #[inline]
    pub fn keyword_slots(&self, nargs: usize, kwnames: &[*mut ffi::PyObject]) -> Option<SmallVec<[usize; 8]>> {
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
    pub fn bind_or_raise<'py>(
        &self,
        py: Python<'py>,
        func: &Py<PyAny>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Slots<'py>> {
        match self.bind(py, args, kwargs)? {
            Binding::Bound(slots) => Ok(slots),
            Binding::Mismatch => {
                let sig = py.import("inspect")?.call_method1("signature", (func.bind(py),))?;
                sig.call_method("bind", args, kwargs)?;
                Err(pyo3::exceptions::PyTypeError::new_err(
                    "arguments do not match the function's signature",
                ))
            }
        }
    }

    /// Parameter i's default (only called for parameters that have one).
    #[inline]
    pub fn default_of<'a, 'py>(&'a self, py: Python<'py>, i: usize) -> Borrowed<'a, 'py, PyAny> {
        self.params[i]
            .default
            .as_ref()
            .expect("checked by binds_positionally")
            .bind_borrowed(py)
    }

    /// Binds `args`/`kwargs`, or None when they do not fit the signature.
    pub fn bind_values<'a, 'py>(
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

    /// Visits the defaults (for the garbage collector).
    pub fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        for p in &self.params {
            if let Some(d) = &p.default {
                visit.call(d)?;
            }
        }
        Ok(())
    }
}

/// `Binder(func, params, exclude)`: the binder for the Python engine (`oxicache.memo.engine`).
#[pyclass(module = "oxicache._core", name = "Binder", frozen)]
pub struct Binder {
    sig: Signature,
}

#[pymethods]
impl Binder {
    #[new]
    fn new(py: Python<'_>, params: ParamSpecs, exclude: Vec<String>) -> PyResult<Self> {
        Ok(Binder {
            sig: Signature::new(py, params, exclude)?,
        })
    }

    /// The inputs dict of a call (signature order, defaults applied, excluded names left out, also from
    /// `**kwargs`), or None when the arguments do not fit the signature.
    #[pyo3(signature = (args, kwargs=None))]
    fn inputs<'py>(
        &self,
        py: Python<'py>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        match self.sig.bind_values(py, args, kwargs)? {
            Some(values) => Ok(Some(self.sig.inputs_dict(py, |i| values.value(py, &self.sig, i))?)),
            None => Ok(None),
        }
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.sig.traverse(&visit)
    }
}
