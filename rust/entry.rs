//! `CacheEntry`: one cached call (func, inputs, output, expected, metadata), with the seed guide's API.
//!
//! `...` (Ellipsis) means "unset" for `output` and `expected`, as in the guide. Because `None` is a value
//! worth caching, the constructor and friends parse their arguments by hand instead of using `Option`.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};

use crate::key::{call_key, entry_key_of, local_class_error};

/// One cached call: the function's name, its bound arguments, its result and optional annotations.
///
/// `func` is the function identity (`module.qualname`, or the `name=` given to memoize; a callable is
/// named for you), `inputs` a dict of argument names to values, `output` the result, `expected` an
/// annotated ground truth and `metadata` a free-form dict. `...` (Ellipsis) means "unset" for `output`
/// and `expected`, because `None` is a result worth caching. `key` is the 128-bit key of
/// `(func, inputs)`; equal entries hash alike. Caches return entries from `retrieve()` and iteration.
#[pyclass(module = "oxicache._core", name = "CacheEntry")]
pub struct CacheEntry {
    func: Py<PyString>,
    inputs: Py<PyDict>,
    /// The function's result; `...` when unset.
    #[pyo3(get, set)]
    output: Py<PyAny>,
    /// The annotated (ground-truth) result; `...` when unset.
    #[pyo3(get, set)]
    expected: Py<PyAny>,
    /// Created on first access: most entries never have metadata, and an empty dict per entry costs an
    /// allocation on every `from_args` and every cache read.
    metadata: Option<Py<PyDict>>,
    /// The key of a memoized call, fixed when the call was made (`_pin_key`): `key` returns it until
    /// `func` or `inputs` is set again, so the key is computed (and `__cache_key__` hooks run) once per
    /// call, from the arguments as they were before the function ran.
    pinned: Option<Box<Pinned>>,
}

struct Pinned {
    key: u128,
    /// A class with a process-local identity among the inputs (then no shared store takes the entry).
    local: Option<String>,
    /// Each input's canonical bytes, until the call's snapshot is taken (`_call_snapshot`).
    values: Vec<(Py<PyAny>, Vec<u8>)>,
}

impl Pinned {
    /// The pin without the inputs' bytes (for copies of the entry).
    fn copy(&self) -> Box<Pinned> {
        Box::new(Pinned {
            key: self.key,
            local: self.local.clone(),
            values: Vec::new(),
        })
    }
}

const FIELDS: [&str; 5] = ["func", "inputs", "output", "expected", "metadata"];

fn is_unset(obj: &Bound<'_, PyAny>) -> bool {
    obj.is(obj.py().Ellipsis())
}

/// An optional argument that keeps `None` distinct from "not given" (PyO3 maps `None` to `Option::None`).
pub enum Given<'py> {
    No,
    Yes(Bound<'py, PyAny>),
}

impl<'a, 'py> FromPyObject<'a, 'py> for Given<'py> {
    type Error = PyErr;
    fn extract(obj: pyo3::Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        Ok(Given::Yes(obj.to_owned()))
    }
}

impl<'py> Given<'py> {
    fn opt(self) -> Option<Bound<'py, PyAny>> {
        match self {
            Given::No => None,
            Given::Yes(v) => Some(v),
        }
    }
}

/// `func` as the name string: a str as is, a callable as `module.qualname`.
pub fn func_name(func: &Bound<'_, PyAny>) -> PyResult<Py<PyString>> {
    if let Ok(s) = func.cast::<PyString>() {
        return Ok(s.clone().unbind());
    }
    if func.is_callable() {
        let py = func.py();
        let module = func.getattr_opt(pyo3::intern!(py, "__module__"))?;
        let qualname = func.getattr_opt(pyo3::intern!(py, "__qualname__"))?;
        if let (Some(m), Some(q)) = (module, qualname) {
            if !m.is_none() {
                return Ok(PyString::new(py, &format!("{}.{}", m.str()?, q.str()?)).unbind());
            }
        }
        let msg = format!(
            "cannot name the callable {}: it has no __module__/__qualname__; pass func as a string",
            func.repr()?
        );
        return Err(PyTypeError::new_err(msg));
    }
    Err(PyTypeError::new_err(format!(
        "func must be a str or a callable, got {}",
        func.get_type().name()?
    )))
}

fn as_inputs(py: Python<'_>, value: Option<Bound<'_, PyAny>>) -> PyResult<Py<PyDict>> {
    match value {
        None => Ok(PyDict::new(py).unbind()),
        Some(v) if v.is_none() => Ok(PyDict::new(py).unbind()),
        Some(v) => {
            let dict = v.cast::<PyDict>().map_err(|_| {
                PyTypeError::new_err(format!(
                    "inputs must be a dict of argument names to values, got {}",
                    type_name(&v)
                ))
            })?;
            for k in dict.keys() {
                if !k.is_instance_of::<PyString>() {
                    let msg = format!(
                        "inputs keys must be argument names (str), got {} of type {}",
                        k.repr()?,
                        type_name(&k)
                    );
                    return Err(PyTypeError::new_err(msg));
                }
            }
            Ok(dict.clone().unbind())
        }
    }
}

fn as_metadata(value: Option<Bound<'_, PyAny>>) -> PyResult<Option<Py<PyDict>>> {
    match value {
        None => Ok(None),
        Some(v) if v.is_none() => Ok(None),
        Some(v) => Ok(Some(
            v.cast::<PyDict>()
                .map_err(|_| PyTypeError::new_err(format!("metadata must be a dict or None, got {}", type_name(&v))))?
                .clone()
                .unbind(),
        )),
    }
}

/// A shallow copy of the metadata (a new empty dict when there is none).
fn metadata_copy<'py>(py: Python<'py>, metadata: &Option<Py<PyDict>>) -> PyResult<Bound<'py, PyDict>> {
    match metadata {
        Some(m) => m.bind(py).copy(),
        None => Ok(PyDict::new(py)),
    }
}

fn type_name(v: &Bound<'_, PyAny>) -> String {
    v.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// `inputs` without the names in `exclude` (a new dict; the caller's dict is never modified).
fn without_excluded<'py>(
    inputs: &Bound<'py, PyDict>,
    exclude: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let out = inputs.copy()?;
    if let Some(ex) = exclude.filter(|e| !e.is_none()) {
        remove_names(&out, ex)?;
    }
    Ok(out)
}

/// Deletes the names listed in `exclude` from `dict` (which the caller owns).
fn remove_names(dict: &Bound<'_, PyDict>, exclude: &Bound<'_, PyAny>) -> PyResult<()> {
    if exclude.is_instance_of::<PyString>() {
        let msg = format!(
            "exclude must be a list of argument names, got the string {}; write [{}]",
            exclude.repr()?,
            exclude.repr()?
        );
        return Err(PyTypeError::new_err(msg));
    }
    for name in exclude.try_iter()? {
        let name = name?;
        if dict.contains(&name)? {
            dict.del_item(&name)?;
        }
    }
    Ok(())
}

impl CacheEntry {
    pub fn new_raw(
        func: Py<PyString>,
        inputs: Py<PyDict>,
        output: Py<PyAny>,
        expected: Py<PyAny>,
        metadata: Option<Py<PyDict>>,
    ) -> Self {
        CacheEntry {
            func,
            inputs,
            output,
            expected,
            metadata,
            pinned: None,
        }
    }

    pub fn func<'py>(&self, py: Python<'py>) -> &Bound<'py, PyString> {
        self.func.bind(py)
    }
    pub fn inputs<'py>(&self, py: Python<'py>) -> &Bound<'py, PyDict> {
        self.inputs.bind(py)
    }
    pub fn output<'py>(&self, py: Python<'py>) -> &Bound<'py, PyAny> {
        self.output.bind(py)
    }
    pub fn expected<'py>(&self, py: Python<'py>) -> &Bound<'py, PyAny> {
        self.expected.bind(py)
    }
    /// The metadata dict, or None when the entry has none (never created).
    pub fn metadata<'py>(&self, py: Python<'py>) -> Option<&Bound<'py, PyDict>> {
        self.metadata.as_ref().map(|m| m.bind(py))
    }

    fn build(
        py: Python<'_>,
        func: Option<Bound<'_, PyAny>>,
        inputs: Option<Bound<'_, PyAny>>,
        output: Option<Bound<'_, PyAny>>,
        expected: Option<Bound<'_, PyAny>>,
        metadata: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let func = match func {
            Some(f) => func_name(&f)?,
            None => PyString::new(py, "").unbind(),
        };
        Ok(CacheEntry {
            func,
            inputs: as_inputs(py, inputs)?,
            output: output.map_or_else(|| py.Ellipsis(), Bound::unbind),
            expected: expected.map_or_else(|| py.Ellipsis(), Bound::unbind),
            metadata: as_metadata(metadata)?,
            pinned: None,
        })
    }

    /// `build` for an inputs dict known to have str keys (keyword arguments).
    fn build_trusted(
        py: Python<'_>,
        func: Option<Bound<'_, PyAny>>,
        inputs: Bound<'_, PyDict>,
        output: Option<Bound<'_, PyAny>>,
        expected: Option<Bound<'_, PyAny>>,
        metadata: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        Ok(CacheEntry {
            func: match func {
                Some(f) => func_name(&f)?,
                None => pyo3::intern!(py, "").clone().unbind(),
            },
            inputs: inputs.unbind(),
            output: output.map_or_else(|| py.Ellipsis(), Bound::unbind),
            expected: expected.map_or_else(|| py.Ellipsis(), Bound::unbind),
            metadata: as_metadata(metadata)?,
            pinned: None,
        })
    }

    fn field<'py>(&self, py: Python<'py>, name: &str) -> Bound<'py, PyAny> {
        match name {
            "func" => self.func.bind(py).clone().into_any(),
            "inputs" => self.inputs.bind(py).clone().into_any(),
            "output" => self.output.bind(py).clone(),
            "expected" => self.expected.bind(py).clone(),
            _ => match &self.metadata {
                Some(m) => m.bind(py).clone().into_any(),
                None => PyDict::new(py).into_any(),
            },
        }
    }

    fn key_u128(&self, py: Python<'_>) -> PyResult<u128> {
        match &self.pinned {
            Some(pin) => Ok(pin.key),
            None => entry_key_of(py, self.func.bind(py).to_str()?, self.inputs.bind(py), false),
        }
    }

    /// The key for a store other processes read: refused when the inputs hold a class no other process
    /// can name (class_identity.rs).
    fn shared_key_u128(&self, py: Python<'_>) -> PyResult<u128> {
        let func = self.func.bind(py).to_str()?;
        match &self.pinned {
            Some(pin) => match &pin.local {
                Some(class) => Err(local_class_error(py, func, self.inputs.bind(py), class)),
                None => Ok(pin.key),
            },
            None => entry_key_of(py, func, self.inputs.bind(py), true),
        }
    }
}

#[pymethods]
impl CacheEntry {
    #[new]
    #[pyo3(
        signature = (func=Given::No, inputs=Given::No, output=Given::No, expected=Given::No, metadata=Given::No),
        text_signature = "(func='', inputs=None, output=..., expected=..., metadata=None)"
    )]
    fn py_new<'py>(
        py: Python<'py>,
        func: Given<'py>,
        inputs: Given<'py>,
        output: Given<'py>,
        expected: Given<'py>,
        metadata: Given<'py>,
    ) -> PyResult<Self> {
        Self::build(
            py,
            func.opt(),
            inputs.opt(),
            output.opt(),
            expected.opt(),
            metadata.opt(),
        )
    }

    /// Function identity: `module.qualname` of the memoized callable, or the `name=` it was given.
    #[getter]
    fn get_func(&self, py: Python<'_>) -> Py<PyString> {
        self.func.clone_ref(py)
    }
    #[setter]
    fn set_func(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.func = func_name(value)?;
        self.pinned = None;
        Ok(())
    }
    /// The call's arguments bound to the signature (defaults applied, excluded names removed).
    #[getter]
    fn get_inputs(&self, py: Python<'_>) -> Py<PyDict> {
        self.inputs.clone_ref(py)
    }
    #[setter]
    fn set_inputs(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inputs = as_inputs(value.py(), Some(value.clone()))?;
        self.pinned = None;
        Ok(())
    }
    /// Free-form metadata (memoize annotations live under "annotation").
    #[getter]
    fn get_metadata(&mut self, py: Python<'_>) -> Py<PyDict> {
        self.metadata
            .get_or_insert_with(|| PyDict::new(py).unbind())
            .clone_ref(py)
    }
    #[setter]
    fn set_metadata(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.metadata = as_metadata(Some(value.clone()))?;
        Ok(())
    }

    /// The 128-bit key of (func, inputs) (docs/key-scheme.md); recomputed from the current fields (an
    /// entry made by a memoized call keeps the key of the call, see `_pin_key`).
    #[getter]
    fn key(&self, py: Python<'_>) -> PyResult<u128> {
        self.key_u128(py)
    }

    /// `key`, for a store other processes read (the persistent backends): a `KeyEncodingError` when an
    /// input holds a class that no other process can name (made inside a function, by a factory or
    /// `type()`), since such a key could not mean the same thing anywhere else.
    #[getter]
    fn shared_key(&self, py: Python<'_>) -> PyResult<u128> {
        self.shared_key_u128(py)
    }

    /// For the memoize engine: computes the key of the call now, from the arguments as they are (hooks run
    /// once), and keeps it; with `shared`, refuses a key no other process could use. Returns the key.
    fn _pin_key(&mut self, py: Python<'_>, shared: bool) -> PyResult<u128> {
        let func = self.func.bind(py).to_str()?.to_owned();
        let call = call_key(py, &func, self.inputs.bind(py))?;
        if shared {
            if let Some(class) = &call.local {
                return Err(local_class_error(py, &func, self.inputs.bind(py), class));
            }
        }
        let key = call.key;
        self.pinned = Some(Box::new(Pinned {
            key,
            local: call.local,
            values: call.values,
        }));
        Ok(key)
    }

    /// For the memoize engine, on a miss, before the function runs: a copy of this entry whose inputs are
    /// the arguments as the call made them (`stored.rs`: copies, never the caller's mutable objects), with
    /// the key pinned.
    fn _call_snapshot(&mut self, py: Python<'_>) -> PyResult<CacheEntry> {
        if self.pinned.is_none() {
            self._pin_key(py, false)?;
        }
        let Some(pin) = self.pinned.as_deref() else {
            return Err(pyo3::exceptions::PyRuntimeError::new_err(
                "the call's key was not computed",
            ));
        };
        let inputs = self.inputs.bind(py);
        let kept = PyDict::new(py);
        for (name, value) in crate::snapshot::dict_items(inputs) {
            let canonical = pin.values.iter().find(|(n, _)| n.bind(py).eq(&name).unwrap_or(false));
            kept.set_item(
                &name,
                crate::stored::kept_argument(&value, canonical.map(|(_, b)| b.as_slice()))?,
            )?;
        }
        Ok(CacheEntry {
            func: self.func.clone_ref(py),
            inputs: kept.unbind(),
            output: self.output.clone_ref(py),
            expected: self.expected.clone_ref(py),
            metadata: self.metadata.as_ref().map(|m| m.clone_ref(py)),
            pinned: Some(pin.copy()),
        })
    }

    /// `expected` when annotated, otherwise `output`.
    #[getter]
    fn value(&self, py: Python<'_>) -> Py<PyAny> {
        if is_unset(self.expected.bind(py)) {
            self.output.clone_ref(py)
        } else {
            self.expected.clone_ref(py)
        }
    }

    /// True when `expected` is set.
    #[getter]
    fn annotated(&self, py: Python<'_>) -> bool {
        !is_unset(self.expected.bind(py))
    }

    /// CacheEntry.from_args(func="", output=..., expected=..., metadata=None, exclude=None, **inputs)
    #[classmethod]
    #[pyo3(
        signature = (func=Given::No, output=Given::No, expected=Given::No, metadata=Given::No, exclude=Given::No, **inputs),
        text_signature = "(func='', output=..., expected=..., metadata=None, exclude=None, **inputs)"
    )]
    #[allow(clippy::too_many_arguments)]
    fn from_args<'py>(
        _cls: &Bound<'py, pyo3::types::PyType>,
        py: Python<'py>,
        func: Given<'py>,
        output: Given<'py>,
        expected: Given<'py>,
        metadata: Given<'py>,
        exclude: Given<'py>,
        inputs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Self> {
        // PyO3 builds the **inputs dict fresh for this call, so it is used as is (no copy).
        let inputs = match inputs {
            Some(d) => d.clone(),
            None => PyDict::new(py),
        };
        if let Some(ex) = exclude.opt().filter(|e| !e.is_none()) {
            remove_names(&inputs, &ex)?;
        }
        Self::build_trusted(py, func.opt(), inputs, output.opt(), expected.opt(), metadata.opt())
    }

    /// CacheEntry.from_dict(data, exclude=None): the inverse of `to_dict`.
    #[classmethod]
    #[pyo3(signature = (data, exclude=None))]
    fn from_dict(
        _cls: &Bound<'_, pyo3::types::PyType>,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        exclude: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let get = |name: &str| -> PyResult<Option<Bound<'_, PyAny>>> {
            match data.get_item(name) {
                Ok(v) => Ok(Some(v)),
                Err(e) if e.is_instance_of::<pyo3::exceptions::PyKeyError>(py) => Ok(None),
                Err(e) => Err(e),
            }
        };
        if !data.hasattr("keys")? {
            return Err(PyTypeError::new_err(format!(
                "from_dict expects a mapping, got {}",
                type_name(data)
            )));
        }
        let inputs = as_inputs(py, get("inputs")?)?;
        let inputs = without_excluded(inputs.bind(py), exclude)?;
        // Deserialised entries never alias the source mapping's dicts.
        let metadata = metadata_copy(py, &as_metadata(get("metadata")?)?)?;
        Self::build(
            py,
            get("func")?,
            Some(inputs.into_any()),
            get("output")?,
            get("expected")?,
            Some(metadata.into_any()),
        )
    }

    /// {"func", "inputs", ["output"], ["expected"], "metadata"}: unset output/expected are left out.
    /// `inputs` and `metadata` are shallow copies.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("func", self.func.bind(py))?;
        d.set_item("inputs", self.inputs.bind(py).copy()?)?;
        if !is_unset(self.output.bind(py)) {
            d.set_item("output", self.output.bind(py))?;
        }
        if !is_unset(self.expected.bind(py)) {
            d.set_item("expected", self.expected.bind(py))?;
        }
        d.set_item("metadata", metadata_copy(py, &self.metadata)?)?;
        Ok(d)
    }

    /// A copy with some fields replaced, by keyword: func, inputs, output, expected, metadata, and
    /// exclude (argument names dropped from the copy's inputs). A field not named keeps its value.
    /// An unknown field name is a TypeError (ahvn ignored it silently).
    #[pyo3(
        signature = (*, func=Given::No, inputs=Given::No, output=Given::No, expected=Given::No, metadata=Given::No, exclude=Given::No),
        text_signature = "(self, /, **changes)"
    )]
    #[allow(clippy::too_many_arguments)]
    fn clone<'py>(
        &self,
        py: Python<'py>,
        func: Given<'py>,
        inputs: Given<'py>,
        output: Given<'py>,
        expected: Given<'py>,
        metadata: Given<'py>,
        exclude: Given<'py>,
    ) -> PyResult<Self> {
        // The same func and inputs: the copy keeps a pinned key.
        let same_key = matches!((&func, &inputs, &exclude), (Given::No, Given::No, Given::No));
        let pick = |given: Given<'py>, name: &str| given.opt().unwrap_or_else(|| self.field(py, name));
        let inputs = as_inputs(py, Some(pick(inputs, "inputs")))?;
        let inputs = without_excluded(inputs.bind(py), exclude.opt().as_ref())?;
        let metadata = metadata_copy(py, &as_metadata(Some(pick(metadata, "metadata")))?)?;
        let mut copy = Self::build_trusted(
            py,
            Some(pick(func, "func")),
            inputs,
            Some(pick(output, "output")),
            Some(pick(expected, "expected")),
            Some(metadata.into_any()),
        )?;
        if same_key {
            copy.pinned = self.pinned.as_ref().map(|p| p.copy());
        }
        Ok(copy)
    }

    /// annotate(expected=..., metadata=None): a copy with `expected` set (to `output` when omitted) and
    /// `metadata` merged over the current metadata. The entry itself is unchanged.
    #[pyo3(signature = (expected=Given::No, metadata=Given::No), text_signature = "(self, /, expected=..., metadata=None)")]
    fn annotate<'py>(&self, py: Python<'py>, expected: Given<'py>, metadata: Given<'py>) -> PyResult<Self> {
        let expected = expected
            .opt()
            .filter(|e| !is_unset(e))
            .unwrap_or_else(|| self.output.bind(py).clone());
        let extra = metadata.opt();
        let metadata = metadata_copy(py, &self.metadata)?;
        if let Some(extra) = extra.filter(|m| !m.is_none()) {
            metadata.update(extra.cast::<pyo3::types::PyMapping>().map_err(|_| {
                PyTypeError::new_err(format!("metadata must be a dict or None, got {}", type_name(&extra)))
            })?)?;
        }
        Ok(CacheEntry {
            func: self.func.clone_ref(py),
            inputs: self.inputs.bind(py).copy()?.unbind(),
            output: self.output.clone_ref(py),
            expected: expected.unbind(),
            metadata: Some(metadata.unbind()),
            pinned: self.pinned.as_ref().map(|p| p.copy()),
        })
    }

    fn __eq__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let Ok(other) = other.cast::<CacheEntry>() else {
            return Ok(py.NotImplemented());
        };
        let other = other.try_borrow()?; // (an entry being changed by a setter that re-entered: an error, not a panic)
        for name in FIELDS {
            if !self.field(py, name).eq(other.field(py, name))? {
                return Ok(false.into_pyobject(py)?.to_owned().into_any().unbind());
            }
        }
        Ok(true.into_pyobject(py)?.to_owned().into_any().unbind())
    }

    /// Entries hash by their key, so equal entries hash equally (mutating one inside a set breaks the set,
    /// as with any mutable hashable).
    fn __hash__(&self, py: Python<'_>) -> PyResult<isize> {
        let key = self.key_u128(py)?;
        let folded = (key as u64 ^ (key >> 64) as u64) as isize;
        Ok(if folded == -1 { -2 } else { folded })
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let mut parts = vec![
            format!("func={}", self.func.bind(py).repr()?),
            format!("inputs={}", self.inputs.bind(py).repr()?),
            format!("output={}", self.output.bind(py).repr()?),
        ];
        if !is_unset(self.expected.bind(py)) {
            parts.push(format!("expected={}", self.expected.bind(py).repr()?));
        }
        parts.push(format!("metadata={}", self.field(py, "metadata").repr()?));
        Ok(format!("CacheEntry({})", parts.join(", ")))
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let py = slf.py();
        let this = slf.try_borrow()?;
        let args = PyTuple::new(py, FIELDS.iter().map(|n| this.field(py, n)))?;
        Ok((slf.get_type().into_any(), args))
    }

    fn __traverse__(&self, visit: pyo3::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        visit.call(&self.inputs)?;
        visit.call(&self.output)?;
        visit.call(&self.expected)?;
        if let Some(m) = &self.metadata {
            visit.call(m)?;
        }
        Ok(())
    }
}
