//! `CacheEntry`: one cached call (func, inputs, output, expected, metadata), with the seed guide's API.
//!
//! `...` (Ellipsis) means "unset" for `output` and `expected`, as in the guide. Because `None` is a value
//! worth caching, the constructor and friends parse their arguments by hand instead of using `Option`.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};

use crate::key::{digest, encode_inputs};

#[pyclass(module = "oxicache._core", name = "CacheEntry")]
pub struct CacheEntry {
    func: Py<PyString>,
    inputs: Py<PyDict>,
    output: Py<PyAny>,
    expected: Py<PyAny>,
    metadata: Py<PyDict>,
}

const FIELDS: [&str; 5] = ["func", "inputs", "output", "expected", "metadata"];

fn is_unset(obj: &Bound<'_, PyAny>) -> bool {
    obj.is(&obj.py().Ellipsis())
}

/// Positional-or-keyword argument lookup that keeps `None` distinct from "not given".
struct Args<'a, 'py> {
    args: &'a Bound<'py, PyTuple>,
    kwargs: Option<&'a Bound<'py, PyDict>>,
    what: &'static str,
}

impl<'py> Args<'_, 'py> {
    fn take(&self, index: usize, name: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
        let by_name = match self.kwargs {
            Some(kw) => {
                let v = kw.get_item(name)?;
                if v.is_some() {
                    kw.del_item(name)?;
                }
                v
            }
            None => None,
        };
        let by_position = if index < self.args.len() { Some(self.args.get_item(index)?) } else { None };
        match (by_position, by_name) {
            (Some(_), Some(_)) => Err(PyTypeError::new_err(format!("{}() got multiple values for argument '{name}'", self.what))),
            (p, n) => Ok(p.or(n)),
        }
    }

    fn reject_extra(&self, max_positional: usize) -> PyResult<()> {
        if self.args.len() > max_positional {
            let msg = format!("{}() takes at most {max_positional} positional arguments ({} given)", self.what, self.args.len());
            return Err(PyTypeError::new_err(msg));
        }
        if let Some(kw) = self.kwargs {
            if let Some((k, _)) = kw.iter().next() {
                let msg = format!("{}() got an unexpected keyword argument {}; valid fields: {}", self.what, k.repr()?, FIELDS.join(", "));
                return Err(PyTypeError::new_err(msg));
            }
        }
        Ok(())
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
        let msg = format!("cannot name the callable {}: it has no __module__/__qualname__; pass func as a string", func.repr()?);
        return Err(PyTypeError::new_err(msg));
    }
    Err(PyTypeError::new_err(format!("func must be a str or a callable, got {}", func.get_type().name()?)))
}

fn as_inputs(py: Python<'_>, value: Option<Bound<'_, PyAny>>) -> PyResult<Py<PyDict>> {
    match value {
        None => Ok(PyDict::new(py).unbind()),
        Some(v) if v.is_none() => Ok(PyDict::new(py).unbind()),
        Some(v) => {
            let dict = v.cast::<PyDict>().map_err(|_| {
                PyTypeError::new_err(format!("inputs must be a dict of argument names to values, got {}", type_name(&v)))
            })?;
            for k in dict.keys() {
                if !k.is_instance_of::<PyString>() {
                    let msg = format!("inputs keys must be argument names (str), got {} of type {}", k.repr()?, type_name(&k));
                    return Err(PyTypeError::new_err(msg));
                }
            }
            Ok(dict.clone().unbind())
        }
    }
}

fn as_metadata(py: Python<'_>, value: Option<Bound<'_, PyAny>>) -> PyResult<Py<PyDict>> {
    match value {
        None => Ok(PyDict::new(py).unbind()),
        Some(v) if v.is_none() => Ok(PyDict::new(py).unbind()),
        Some(v) => Ok(v
            .cast::<PyDict>()
            .map_err(|_| PyTypeError::new_err(format!("metadata must be a dict or None, got {}", type_name(&v))))?
            .clone()
            .unbind()),
    }
}

fn type_name(v: &Bound<'_, PyAny>) -> String {
    v.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into())
}

/// `inputs` without the names in `exclude` (a new dict; the caller's dict is never modified).
fn without_excluded<'py>(inputs: &Bound<'py, PyDict>, exclude: Option<&Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyDict>> {
    let out = inputs.copy()?;
    if let Some(ex) = exclude.filter(|e| !e.is_none()) {
        if ex.is_instance_of::<PyString>() {
            let msg = format!("exclude must be a list of argument names, got the string {}; write [{}]", ex.repr()?, ex.repr()?);
            return Err(PyTypeError::new_err(msg));
        }
        for name in ex.try_iter()? {
            let name = name?;
            if out.contains(&name)? {
                out.del_item(&name)?;
            }
        }
    }
    Ok(out)
}

impl CacheEntry {
    pub fn new_raw(func: Py<PyString>, inputs: Py<PyDict>, output: Py<PyAny>, expected: Py<PyAny>, metadata: Py<PyDict>) -> Self {
        CacheEntry { func, inputs, output, expected, metadata }
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
    pub fn metadata<'py>(&self, py: Python<'py>) -> &Bound<'py, PyDict> {
        self.metadata.bind(py)
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
            metadata: as_metadata(py, metadata)?,
        })
    }

    fn field<'py>(&self, py: Python<'py>, name: &str) -> Bound<'py, PyAny> {
        match name {
            "func" => self.func.bind(py).clone().into_any(),
            "inputs" => self.inputs.bind(py).clone().into_any(),
            "output" => self.output.bind(py).clone(),
            "expected" => self.expected.bind(py).clone(),
            _ => self.metadata.bind(py).clone().into_any(),
        }
    }

    fn key_u128(&self, py: Python<'_>) -> PyResult<u128> {
        let func = self.func.bind(py).to_str()?;
        let inputs_bytes = encode_inputs(py, self.inputs.bind(py), Some(func))?;
        Ok(digest::entry_key(func, &inputs_bytes))
    }
}

#[pymethods]
impl CacheEntry {
    /// CacheEntry(func="", inputs=None, output=..., expected=..., metadata=None)
    #[new]
    #[pyo3(signature = (*args, **kwargs))]
    fn py_new(py: Python<'_>, args: &Bound<'_, PyTuple>, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        let kwargs = kwargs.map(|k| k.copy()).transpose()?;
        let a = Args { args, kwargs: kwargs.as_ref(), what: "CacheEntry" };
        let (f, i, o, e, m) = (a.take(0, "func")?, a.take(1, "inputs")?, a.take(2, "output")?, a.take(3, "expected")?, a.take(4, "metadata")?);
        a.reject_extra(5)?;
        Self::build(py, f, i, o, e, m)
    }

    /// Function identity: `module.qualname` of the memoized callable, or the `name=` it was given.
    #[getter]
    fn get_func(&self, py: Python<'_>) -> Py<PyString> {
        self.func.clone_ref(py)
    }
    #[setter]
    fn set_func(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.func = func_name(value)?;
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
        Ok(())
    }
    /// The function's result; `...` when unset.
    #[getter]
    fn get_output(&self, py: Python<'_>) -> Py<PyAny> {
        self.output.clone_ref(py)
    }
    #[setter]
    fn set_output(&mut self, value: Py<PyAny>) {
        self.output = value;
    }
    /// The annotated (ground-truth) result; `...` when unset.
    #[getter]
    fn get_expected(&self, py: Python<'_>) -> Py<PyAny> {
        self.expected.clone_ref(py)
    }
    #[setter]
    fn set_expected(&mut self, value: Py<PyAny>) {
        self.expected = value;
    }
    /// Free-form metadata (memoize annotations live under "annotation").
    #[getter]
    fn get_metadata(&self, py: Python<'_>) -> Py<PyDict> {
        self.metadata.clone_ref(py)
    }
    #[setter]
    fn set_metadata(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.metadata = as_metadata(value.py(), Some(value.clone()))?;
        Ok(())
    }

    /// The 128-bit key of (func, inputs) (docs/key-scheme.md); recomputed from the current fields.
    #[getter]
    fn key(&self, py: Python<'_>) -> PyResult<u128> {
        self.key_u128(py)
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
    #[pyo3(signature = (*args, **kwargs))]
    fn from_args(
        _cls: &Bound<'_, pyo3::types::PyType>,
        py: Python<'_>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let inputs = match kwargs {
            Some(k) => k.copy()?,
            None => PyDict::new(py),
        };
        let a = Args { args, kwargs: Some(&inputs), what: "CacheEntry.from_args" };
        let func = a.take(0, "func")?;
        let output = a.take(1, "output")?;
        let expected = a.take(2, "expected")?;
        let metadata = a.take(3, "metadata")?;
        let exclude = a.take(4, "exclude")?;
        if args.len() > 5 {
            return Err(PyTypeError::new_err("CacheEntry.from_args() takes the inputs as keyword arguments"));
        }
        let inputs = without_excluded(&inputs, exclude.as_ref())?;
        Self::build(py, func, Some(inputs.into_any()), output, expected, metadata)
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
            return Err(PyTypeError::new_err(format!("from_dict expects a mapping, got {}", type_name(data))));
        }
        let inputs = as_inputs(py, get("inputs")?)?;
        let inputs = without_excluded(inputs.bind(py), exclude)?;
        Self::build(py, get("func")?, Some(inputs.into_any()), get("output")?, get("expected")?, get("metadata")?)
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
        d.set_item("metadata", self.metadata.bind(py).copy()?)?;
        Ok(d)
    }

    /// A copy with some fields replaced: clone(output=..., metadata=..., exclude=[...]).
    #[pyo3(signature = (**updates))]
    fn clone(&self, py: Python<'_>, updates: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        let updates = match updates {
            Some(u) => u.copy()?,
            None => PyDict::new(py),
        };
        let empty = PyTuple::empty(py);
        let a = Args { args: &empty, kwargs: Some(&updates), what: "clone" };
        let mut fields: Vec<Bound<'_, PyAny>> = Vec::with_capacity(5);
        for name in FIELDS {
            fields.push(match a.take(usize::MAX, name)? {
                Some(v) => v,
                None => self.field(py, name),
            });
        }
        let exclude = a.take(usize::MAX, "exclude")?;
        a.reject_extra(0)?;
        let inputs = as_inputs(py, Some(fields[1].clone()))?;
        let inputs = without_excluded(inputs.bind(py), exclude.as_ref())?;
        let mut it = fields.into_iter();
        let (f, _, o, e, m) = (it.next(), it.next(), it.next(), it.next(), it.next());
        let metadata = as_metadata(py, m)?.bind(py).copy()?;
        Self::build(py, f, Some(inputs.into_any()), o, e, Some(metadata.into_any()))
    }

    /// annotate(expected=..., metadata=None): a copy with `expected` set (to `output` when omitted) and
    /// `metadata` merged over the current metadata. The entry itself is unchanged.
    #[pyo3(signature = (*args, **kwargs))]
    fn annotate(&self, py: Python<'_>, args: &Bound<'_, PyTuple>, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        let kwargs = kwargs.map(|k| k.copy()).transpose()?;
        let a = Args { args, kwargs: kwargs.as_ref(), what: "annotate" };
        let expected = a.take(0, "expected")?.filter(|e| !is_unset(e)).unwrap_or_else(|| self.output.bind(py).clone());
        let extra = a.take(1, "metadata")?;
        a.reject_extra(2)?;
        let metadata = self.metadata.bind(py).copy()?;
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
            metadata: metadata.unbind(),
        })
    }

    fn __eq__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let Ok(other) = other.cast::<CacheEntry>() else { return Ok(py.NotImplemented()) };
        let other = other.borrow();
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
        parts.push(format!("metadata={}", self.metadata.bind(py).repr()?));
        Ok(format!("CacheEntry({})", parts.join(", ")))
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let py = slf.py();
        let this = slf.borrow();
        let args = PyTuple::new(py, FIELDS.iter().map(|n| this.field(py, n)))?;
        Ok((slf.get_type().into_any(), args))
    }

    fn __traverse__(&self, visit: pyo3::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        visit.call(&self.inputs)?;
        visit.call(&self.output)?;
        visit.call(&self.expected)?;
        visit.call(&self.metadata)?;
        Ok(())
    }
}
