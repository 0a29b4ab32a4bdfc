//! The parts of Python values that both encodings write (`encode.rs` hands them to a `Format`), and the
//! one-step reads of containers: each container is read at once (`crate::snapshot`), its items written,
//! and the container checked unchanged afterwards.

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

use crate::errors::EncodeError;
use crate::key::known_types;

use super::EncodeResult;

/// `write()` (which writes a snapshot of `container`'s items), then an error if Python code that ran
/// meanwhile changed the container (`unchanged` compares it with the snapshot).
fn write_checked(
    container: &Bound<'_, PyAny>,
    write: impl FnOnce() -> EncodeResult,
    unchanged: impl FnOnce() -> PyResult<bool>,
) -> EncodeResult {
    let mark = crate::snapshot::mark();
    write()?;
    if crate::snapshot::python_ran_since(mark) && !unchanged()? {
        return Err(EncodeError::changed(container));
    }
    Ok(())
}

/// A list's items, written by `write`.
pub fn list_with<'py>(
    list: &Bound<'py, PyList>,
    write: impl FnOnce(&[Bound<'py, PyAny>]) -> EncodeResult,
) -> EncodeResult {
    let items = crate::snapshot::list_items(list);
    write_checked(
        list.as_any(),
        || write(&items),
        || Ok(crate::snapshot::list_unchanged(list, &items)),
    )
}

/// A set's or frozenset's items, written by `write`.
pub fn set_with<'py>(
    set: &Bound<'py, PyAny>,
    write: impl FnOnce(&[Bound<'py, PyAny>]) -> EncodeResult,
) -> EncodeResult {
    let items = crate::snapshot::set_items(set)?;
    write_checked(set, || write(&items), || crate::snapshot::set_unchanged(set, &items))
}

/// A dict's (key, value) pairs, written by `write`.
pub fn dict_with<'py>(
    dict: &Bound<'py, PyDict>,
    write: impl FnOnce(&crate::snapshot::Pairs<'py>) -> EncodeResult,
) -> EncodeResult {
    let items = crate::snapshot::dict_items(dict);
    write_checked(
        dict.as_any(),
        || write(&items),
        || Ok(crate::snapshot::dict_unchanged(dict, &items)),
    )
}

/// `[isoformat, zone key or None, fold]` of a datetime or time.
pub struct TimeParts {
    pub iso: String,
    pub zone: Option<String>,
    pub fold: u8,
}

pub fn time_parts(obj: &Bound<'_, PyAny>) -> PyResult<TimeParts> {
    let py = obj.py();
    let iso: String = obj.call_method0(pyo3::intern!(py, "isoformat"))?.extract()?;
    let tz = obj.getattr(pyo3::intern!(py, "tzinfo"))?;
    let zone = if tz.is_none() { None } else { zoneinfo_key(&tz)? };
    let fold: u8 = obj.getattr(pyo3::intern!(py, "fold"))?.extract()?;
    Ok(TimeParts { iso, zone, fold })
}

fn zoneinfo_key(tz: &Bound<'_, PyAny>) -> PyResult<Option<String>> {
    let py = tz.py();
    let modules = py.import("sys")?.getattr("modules")?;
    let Ok(module) = modules.get_item("zoneinfo") else {
        return Ok(None);
    };
    if tz.is_instance(&module.getattr("ZoneInfo")?)? {
        let key = tz.getattr("key")?;
        if !key.is_none() {
            return Ok(Some(key.extract()?));
        }
    }
    Ok(None)
}

pub fn timedelta_parts(obj: &Bound<'_, PyAny>) -> PyResult<(i64, i64, i64)> {
    Ok((
        obj.getattr("days")?.extract()?,
        obj.getattr("seconds")?.extract()?,
        obj.getattr("microseconds")?.extract()?,
    ))
}

/// The fields of a dataclass instance (every field, `init=False` ones included), by name.
pub fn dataclass_fields<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyDict>> {
    let py = obj.py();
    let fields = known_types::get(py)?.dataclass_fields.bind(py).call1((obj,))?;
    let out = PyDict::new(py);
    for field in fields.try_iter()? {
        let name = field?.getattr(pyo3::intern!(py, "name"))?;
        out.set_item(&name, obj.getattr(name.cast::<PyString>()?)?)?;
    }
    Ok(out)
}

/// A model's fields in declaration order, then its extra fields (`extra="allow"` models).
pub fn pydantic_fields<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyDict>> {
    let py = obj.py();
    let names = obj.get_type().getattr(pyo3::intern!(py, "model_fields"))?;
    let out = PyDict::new(py);
    for name in names.try_iter()? {
        let name = name?;
        out.set_item(&name, obj.getattr(name.cast::<PyString>()?)?)?;
    }
    let extra = obj.getattr(pyo3::intern!(py, "__pydantic_extra__"))?;
    if let Ok(extra) = extra.cast::<PyDict>() {
        for (k, v) in crate::snapshot::dict_items(extra) {
            out.set_item(k, v)?;
        }
    }
    Ok(out)
}

/// dtype string, shape and C-order bytes of an array (object and structured dtypes refused).
pub fn ndarray_parts(obj: &Bound<'_, PyAny>) -> Result<(String, Vec<usize>, Vec<u8>), EncodeError> {
    let py = obj.py();
    let dtype = obj.getattr("dtype")?;
    check_dtype(&dtype)?;
    let shape: Vec<usize> = obj.getattr("shape")?.extract()?;
    let np = known_types::numpy(py)?.expect("classified as an array, so numpy is imported");
    let contiguous = np.ascontiguousarray.bind(py).call1((obj,))?;
    let bytes: Vec<u8> = contiguous.call_method0("tobytes")?.extract()?;
    Ok((dtype.getattr("str")?.extract()?, shape, bytes))
}

pub fn npscalar_parts(obj: &Bound<'_, PyAny>) -> Result<(String, Vec<u8>), EncodeError> {
    let dtype = obj.getattr("dtype")?;
    check_dtype(&dtype)?;
    Ok((
        dtype.getattr("str")?.extract()?,
        obj.call_method0("tobytes")?.extract()?,
    ))
}

/// The dtypes whose bytes are the values: bool, numbers, datetimes, fixed-size bytes and str. Object and
/// structured dtypes hold arbitrary objects, and the variable-width string dtype (numpy 2's
/// `StringDType`, kind `T`) holds pointers into memory of this process: never encoded, never decoded.
pub fn is_plain_dtype(dtype: &Bound<'_, PyAny>) -> PyResult<bool> {
    let kind: String = dtype.getattr("kind")?.extract()?;
    Ok(
        matches!(kind.as_str(), "b" | "i" | "u" | "f" | "c" | "m" | "M" | "S" | "U")
            && !dtype.getattr("hasobject")?.is_truthy()?,
    )
}

fn check_dtype(dtype: &Bound<'_, PyAny>) -> Result<(), EncodeError> {
    if !is_plain_dtype(dtype)? {
        return Err(EncodeError::new(format!(
            "numpy dtype '{}' (object, structured or variable-width string) has no encoding; convert the array \
             to a list, or to a plain dtype (for strings, .astype(str) gives a fixed-width one)",
            dtype.str()?
        )));
    }
    Ok(())
}

/// Minimal two's-complement big-endian bytes of an int outside the 64-bit range.
pub fn bigint_bytes(obj: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    let py = obj.py();
    let negative = obj.lt(0)?;
    let magnitude = if negative {
        obj.call_method0("__invert__")?
    } else {
        obj.clone()
    };
    let bits: usize = magnitude.call_method0("bit_length")?.extract()?;
    let kwargs = PyDict::new(py);
    kwargs.set_item("signed", true)?;
    obj.call_method("to_bytes", ((bits + 8) / 8, "big"), Some(&kwargs))?
        .extract()
}

/// A str that is not valid UTF-8 (it holds lone surrogates) as UTF-8 with surrogatepass, or None.
pub fn surrogate_bytes(s: &Bound<'_, PyString>) -> PyResult<Vec<u8>> {
    s.call_method1("encode", ("utf-8", "surrogatepass"))?.extract()
}

pub fn keybytes_of(obj: &Bound<'_, PyAny>) -> Vec<u8> {
    obj.cast::<crate::key::keybytes::KeyBytes>()
        .map(|k| k.get().bytes.clone())
        .unwrap_or_default()
}

/// An exact int's value when it fits in i64 (no error state is set either way).
#[inline]
pub fn small_int(obj: &Bound<'_, PyAny>) -> Option<i64> {
    let mut overflow: std::os::raw::c_int = 0;
    // SAFETY: `obj` is an exact int (checked by `classify`), for which this never raises.
    let v = unsafe { ffi::PyLong_AsLongLongAndOverflow(obj.as_ptr(), &mut overflow) };
    (overflow == 0).then_some(v)
}
