//! Python types the encoder recognises beyond the builtins, looked up once, plus the user registry.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};

pub struct KnownTypes {
    pub enum_base: Py<PyAny>,
    pub dataclass_fields: Py<PyAny>,
    pub datetime: Py<PyAny>,
    pub date: Py<PyAny>,
    pub time: Py<PyAny>,
    pub timedelta: Py<PyAny>,
    pub decimal: Py<PyAny>,
    pub uuid: Py<PyAny>,
    pub pure_path: Py<PyAny>,
    pub pure_windows_path: Py<PyAny>,
}

pub struct Numpy {
    pub ndarray: Py<PyAny>,
    pub generic: Py<PyAny>,
    pub ascontiguousarray: Py<PyAny>,
}

static KNOWN: PyOnceLock<KnownTypes> = PyOnceLock::new();
static NUMPY: PyOnceLock<Numpy> = PyOnceLock::new();
static REGISTRY: PyOnceLock<Py<PyDict>> = PyOnceLock::new();

fn attr(py: Python<'_>, module: &str, name: &str) -> PyResult<Py<PyAny>> {
    Ok(py.import(module)?.getattr(name)?.unbind())
}

/// The stdlib types of the encoding rules (imported on the first non-builtin value, not at start-up).
pub fn get(py: Python<'_>) -> PyResult<&KnownTypes> {
    KNOWN.get_or_try_init(py, || {
        Ok(KnownTypes {
            enum_base: attr(py, "enum", "Enum")?,
            dataclass_fields: attr(py, "dataclasses", "fields")?,
            datetime: attr(py, "datetime", "datetime")?,
            date: attr(py, "datetime", "date")?,
            time: attr(py, "datetime", "time")?,
            timedelta: attr(py, "datetime", "timedelta")?,
            decimal: attr(py, "decimal", "Decimal")?,
            uuid: attr(py, "uuid", "UUID")?,
            pure_path: attr(py, "pathlib", "PurePath")?,
            pure_windows_path: attr(py, "pathlib", "PureWindowsPath")?,
        })
    })
}

/// numpy's types, but only once the program itself has imported numpy (we never import it).
pub fn numpy(py: Python<'_>) -> PyResult<Option<&Numpy>> {
    if let Some(np) = NUMPY.get(py) {
        return Ok(Some(np));
    }
    let modules = py.import("sys")?.getattr("modules")?;
    let Ok(module) = modules.get_item("numpy") else {
        return Ok(None);
    };
    let np = NUMPY.get_or_try_init(py, || {
        Ok::<_, PyErr>(Numpy {
            ndarray: module.getattr("ndarray")?.unbind(),
            generic: module.getattr("generic")?.unbind(),
            ascontiguousarray: module.getattr("ascontiguousarray")?.unbind(),
        })
    })?;
    Ok(Some(np))
}

pub fn registry(py: Python<'_>) -> &Bound<'_, PyDict> {
    REGISTRY.get_or_init(py, || PyDict::new(py).unbind()).bind(py)
}

/// The encoder registered for `ty` or its nearest base class, with the class it was registered for.
pub fn registered_encoder<'py>(
    py: Python<'py>,
    ty: &Bound<'py, PyType>,
) -> PyResult<Option<(Bound<'py, PyAny>, Bound<'py, PyAny>)>> {
    let registry = registry(py);
    if registry.is_empty() {
        return Ok(None);
    }
    let mro = ty.getattr(pyo3::intern!(py, "__mro__"))?;
    for cls in mro.cast::<PyTuple>()?.iter() {
        if let Some(encoder) = registry.get_item(&cls)? {
            return Ok(Some((cls, encoder)));
        }
    }
    Ok(None)
}

/// `oxicache.register_key_encoder(cls, fn)`: keys for instances of `cls` (and subclasses) become
/// `fn(obj)`, encoded recursively and tagged with the class name. `fn=None` removes the registration.
#[pyfunction]
#[pyo3(signature = (cls, encoder))]
pub fn register_key_encoder(
    py: Python<'_>,
    cls: &Bound<'_, PyAny>,
    encoder: Option<&Bound<'_, PyAny>>,
) -> PyResult<()> {
    if !cls.is_instance_of::<PyType>() {
        let msg = format!(
            "register_key_encoder expects a class as its first argument, got {}",
            cls.repr()?
        );
        return Err(pyo3::exceptions::PyTypeError::new_err(msg));
    }
    let registry = registry(py);
    match encoder {
        None => {
            if registry.contains(cls)? {
                registry.del_item(cls)?;
            }
        }
        Some(encoder) if encoder.is_callable() => registry.set_item(cls, encoder)?,
        Some(other) => {
            let msg = format!(
                "register_key_encoder expects a callable encoder (obj -> encodable value), got {}",
                other.repr()?
            );
            return Err(pyo3::exceptions::PyTypeError::new_err(msg));
        }
    }
    Ok(())
}
