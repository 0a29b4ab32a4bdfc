//! Decoded parts made Python values again, for both readers (`msgpack.rs`, `json_read.rs`). Classes come
//! only from the allow-list (`allow.rs`); nothing here imports a module named by the data.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use crate::key::known_types;

use super::allow::{allowed_class, unrevived, Family};
use super::decode_error;
use super::parts::is_plain_dtype;

pub fn revive_time(py: Python<'_>, datetime: bool, iso: &str, zone: Option<&str>, fold: u8) -> PyResult<Py<PyAny>> {
    let module = py.import("datetime")?;
    let cls = module.getattr(if datetime { "datetime" } else { "time" })?;
    let mut value = cls.call_method1("fromisoformat", (iso,))?;
    let kwargs = PyDict::new(py);
    if let Some(zone) = zone {
        let tz = py.import("zoneinfo")?.getattr("ZoneInfo")?.call1((zone,))?;
        kwargs.set_item("tzinfo", tz)?;
    }
    if fold != 0 {
        kwargs.set_item("fold", fold)?;
    }
    if !kwargs.is_empty() {
        value = value.call_method("replace", (), Some(&kwargs))?;
    }
    Ok(value.unbind())
}

pub fn revive_date(py: Python<'_>, iso: &str) -> PyResult<Py<PyAny>> {
    Ok(py
        .import("datetime")?
        .getattr("date")?
        .call_method1("fromisoformat", (iso,))?
        .unbind())
}

pub fn revive_timedelta(py: Python<'_>, d: i64, s: i64, us: i64) -> PyResult<Py<PyAny>> {
    Ok(py.import("datetime")?.getattr("timedelta")?.call1((d, s, us))?.unbind())
}

pub fn revive_decimal(py: Python<'_>, text: &str) -> PyResult<Py<PyAny>> {
    Ok(known_types::get(py)?.decimal.bind(py).call1((text,))?.unbind())
}

pub fn revive_uuid_bytes(py: Python<'_>, bytes: &[u8]) -> PyResult<Py<PyAny>> {
    let kwargs = PyDict::new(py);
    kwargs.set_item("bytes", PyBytes::new(py, bytes))?;
    Ok(known_types::get(py)?.uuid.bind(py).call((), Some(&kwargs))?.unbind())
}

pub fn revive_uuid_str(py: Python<'_>, text: &str) -> PyResult<Py<PyAny>> {
    Ok(known_types::get(py)?.uuid.bind(py).call1((text,))?.unbind())
}

pub fn revive_path(py: Python<'_>, class: &str, text: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    if !text.is_exact_instance_of::<PyString>() {
        return Err(decode_error(py, "a stored path's text is not a str"));
    }
    if !matches!(class, "PurePosixPath" | "PureWindowsPath" | "PosixPath" | "WindowsPath") {
        return Err(decode_error(py, format!("unknown path class '{class}'")));
    }
    let pathlib = py.import("pathlib")?;
    match pathlib.getattr(class)?.call1((text,)) {
        Ok(p) => Ok(p.unbind()),
        // A concrete path of the other platform cannot be instantiated here: keep its pure form.
        Err(_) => {
            let pure = if class == "WindowsPath" {
                "PureWindowsPath"
            } else {
                "PurePosixPath"
            };
            Ok(pathlib.getattr(pure)?.call1((text,))?.unbind())
        }
    }
}

/// A dataclass revived as pickle does: without `__init__`, fields set as stored.
pub fn revive_dataclass(py: Python<'_>, name: &str, fields: &Bound<'_, PyDict>) -> PyResult<Py<PyAny>> {
    if let Some(placeholder) = unrevived(py, name, fields.as_any())? {
        return Ok(placeholder);
    }
    let cls = allowed_class(py, name, Family::Dataclass)?;
    let declared = known_types::get(py)?.dataclass_fields.bind(py).call1((&cls,))?;
    let mut names = Vec::new();
    for field in declared.try_iter()? {
        names.push(field?.getattr(pyo3::intern!(py, "name"))?);
    }
    let exact = names.len() == fields.len()
        && names
            .iter()
            .map(|n| fields.contains(n))
            .collect::<PyResult<Vec<_>>>()?
            .into_iter()
            .all(|c| c);
    if !exact {
        return Err(decode_error(
            py,
            format!("the stored fields of '{name}' are not the fields of the class in this process"),
        ));
    }
    // Built in full before anyone sees it: a failure drops the half-made object.
    let obj = cls.call_method1("__new__", (&cls,))?;
    let setattr = py.import("builtins")?.getattr("object")?.getattr("__setattr__")?;
    for n in &names {
        let value = fields
            .get_item(n)?
            .ok_or_else(|| decode_error(py, format!("{name}: the stored fields changed while reviving")))?;
        setattr.call1((&obj, n, value))?;
    }
    Ok(obj.unbind())
}

pub fn revive_pydantic(py: Python<'_>, name: &str, fields: &Bound<'_, PyDict>) -> PyResult<Py<PyAny>> {
    if let Some(placeholder) = unrevived(py, name, fields.as_any())? {
        return Ok(placeholder);
    }
    let cls = allowed_class(py, name, Family::Pydantic)?;
    let declared = cls.getattr("model_fields")?;
    let mut n_declared = 0;
    for field in declared.try_iter()? {
        n_declared += 1;
        if !fields.contains(field?)? {
            return Err(decode_error(
                py,
                format!("a stored '{name}' lacks a field of the class in this process"),
            ));
        }
    }
    if fields.len() > n_declared {
        let extra = cls.getattr("model_config")?.get_item("extra").ok();
        if extra.is_none_or(|e| e.extract::<String>().ok().as_deref() != Some("allow")) {
            return Err(decode_error(
                py,
                format!("a stored '{name}' has fields the class in this process does not allow"),
            ));
        }
    }
    Ok(cls.call_method("model_construct", (), Some(fields))?.unbind())
}

pub fn revive_enum(py: Python<'_>, name: &str, value: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    if let Some(placeholder) = unrevived(py, name, value)? {
        return Ok(placeholder);
    }
    Ok(allowed_class(py, name, Family::Enum)?.call1((value,))?.unbind())
}

pub fn revive_namedtuple(py: Python<'_>, name: &str, items: &Bound<'_, PyList>) -> PyResult<Py<PyAny>> {
    if let Some(placeholder) = unrevived(py, name, items.as_any())? {
        return Ok(placeholder);
    }
    let args = PyTuple::new(py, items.iter())?;
    Ok(allowed_class(py, name, Family::NamedTuple)?.call1(args)?.unbind())
}

/// numpy and the stored dtype (object and structured dtypes refused).
fn decoded_dtype<'py>(py: Python<'py>, dtype: &str) -> PyResult<(Bound<'py, PyModule>, Bound<'py, PyAny>)> {
    let np = py
        .import("numpy")
        .map_err(|_| decode_error(py, "the stored value holds a numpy array, and numpy is not installed"))?;
    let dtype = np.getattr("dtype")?.call1((dtype,))?;
    if !is_plain_dtype(&dtype)? {
        return Err(decode_error(
            py,
            "the stored numpy dtype is object or structured, which is never decoded",
        ));
    }
    Ok((np, dtype))
}

pub fn revive_ndarray(py: Python<'_>, dtype: &str, shape: &[usize], data: &[u8]) -> PyResult<Py<PyAny>> {
    let (np, dtype) = decoded_dtype(py, dtype)?;
    let flat = np.getattr("frombuffer")?.call1((PyBytes::new(py, data), &dtype))?;
    let shaped = flat.call_method1("reshape", (PyTuple::new(py, shape)?,))?;
    Ok(shaped.call_method0("copy")?.unbind()) // writable, owning its memory
}

pub fn revive_npscalar(py: Python<'_>, dtype: &str, data: &[u8]) -> PyResult<Py<PyAny>> {
    let (np, dtype) = decoded_dtype(py, dtype)?;
    if dtype.getattr("itemsize")?.extract::<usize>()? == 0 {
        // S0 / U0: the empty scalar (its tobytes() still holds one NUL character)
        return Ok(dtype.getattr("type")?.call0()?.unbind());
    }
    let flat = np.getattr("frombuffer")?.call1((PyBytes::new(py, data), &dtype))?;
    Ok(flat.get_item(0)?.unbind())
}

pub fn revive_bigint(py: Python<'_>, bytes: &[u8]) -> PyResult<Py<PyAny>> {
    if bytes.is_empty() {
        return Err(decode_error(py, "an empty big int"));
    }
    let kwargs = PyDict::new(py);
    kwargs.set_item("signed", true)?;
    let int = py.get_type::<pyo3::types::PyInt>();
    Ok(int
        .call_method("from_bytes", (PyBytes::new(py, bytes), "big"), Some(&kwargs))?
        .unbind())
}

pub fn str_from_surrogate_bytes(py: Python<'_>, bytes: &[u8]) -> PyResult<Py<PyAny>> {
    Ok(PyBytes::new(py, bytes)
        .call_method1("decode", ("utf-8", "surrogatepass"))?
        .unbind())
}

pub fn revive_keybytes(py: Python<'_>, bytes: &[u8]) -> PyResult<Py<PyAny>> {
    Ok(Py::new(py, crate::key::keybytes::KeyBytes { bytes: bytes.to_vec() })?.into_any())
}
