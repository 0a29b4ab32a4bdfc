//! What a Python value is, for the encoders: builtins by exact type (pointer compares), then the
//! standard-library and third-party types the codec knows.

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyTuple, PyType};

use crate::errors::EncodeError;
use crate::key::known_types;

use super::allow::type_name_of;

pub fn unsupported(obj: &Bound<'_, PyAny>) -> EncodeError {
    let name = type_name_of(&obj.get_type()).unwrap_or_else(|_| "?".into());
    EncodeError::new(format!(
        "type '{name}' has no encoding in oxicache's value codec; convert it to supported types \
         (dict, list, str, numbers, datetime, ...), or make it a dataclass; see docs/value-codec.md"
    ))
}

/// What a Python value is, for the encoders. Builtins are recognised by exact type.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    None,
    Bool,
    Int,
    Float,
    Str,
    Bytes,
    List,
    Tuple,
    Dict,
    Set,
    FrozenSet,
    Ellipsis,
    ByteArray,
    Complex,
    DateTime,
    Date,
    Time,
    TimeDelta,
    Decimal,
    Uuid,
    Path,
    Enum,
    Dataclass,
    Pydantic,
    NdArray,
    NpScalar,
    NamedTuple,
    /// An argument stored by its key bytes (see key/keybytes.rs).
    KeyBytes,
}

macro_rules! type_ptr {
    ($name:ident) => {
        std::ptr::addr_of_mut!(ffi::$name)
    };
}

#[inline(always)]
pub fn classify(obj: &Bound<'_, PyAny>) -> Result<Kind, EncodeError> {
    let ptr = obj.as_ptr();
    // SAFETY: pointer comparisons against live type objects.
    unsafe {
        let ty = ffi::Py_TYPE(ptr);
        if ptr == ffi::Py_None() {
            return Ok(Kind::None);
        } else if ty == type_ptr!(PyBool_Type) {
            return Ok(Kind::Bool);
        } else if ty == type_ptr!(PyLong_Type) {
            return Ok(Kind::Int);
        } else if ty == type_ptr!(PyUnicode_Type) {
            return Ok(Kind::Str);
        } else if ty == type_ptr!(PyFloat_Type) {
            return Ok(Kind::Float);
        } else if ty == type_ptr!(PyDict_Type) {
            return Ok(Kind::Dict);
        } else if ty == type_ptr!(PyList_Type) {
            return Ok(Kind::List);
        } else if ty == type_ptr!(PyTuple_Type) {
            return Ok(Kind::Tuple);
        } else if ty == type_ptr!(PyBytes_Type) {
            return Ok(Kind::Bytes);
        } else if ty == type_ptr!(PySet_Type) {
            return Ok(Kind::Set);
        } else if ty == type_ptr!(PyFrozenSet_Type) {
            return Ok(Kind::FrozenSet);
        } else if ty == type_ptr!(PyByteArray_Type) {
            return Ok(Kind::ByteArray);
        } else if ptr == ffi::Py_Ellipsis() {
            return Ok(Kind::Ellipsis);
        } else if ty == type_ptr!(PyComplex_Type) {
            return Ok(Kind::Complex);
        }
    }
    classify_object(obj)
}

fn classify_object(obj: &Bound<'_, PyAny>) -> Result<Kind, EncodeError> {
    // From here on, classifying and encoding can run Python code (isinstance hooks, properties).
    crate::snapshot::note_python();
    let py = obj.py();
    if obj.is_exact_instance_of::<crate::key::keybytes::KeyBytes>() {
        return Ok(Kind::KeyBytes);
    }
    let known = known_types::get(py)?;
    let ty = obj.get_type();
    let is = |t: &Py<PyAny>| ty.is(t.bind(py));
    if is(&known.datetime) {
        return Ok(Kind::DateTime);
    } else if is(&known.date) {
        return Ok(Kind::Date);
    } else if is(&known.time) {
        return Ok(Kind::Time);
    } else if is(&known.timedelta) {
        return Ok(Kind::TimeDelta);
    } else if is(&known.decimal) {
        return Ok(Kind::Decimal);
    } else if is(&known.uuid) {
        return Ok(Kind::Uuid);
    }
    if obj.is_instance(known.enum_base.bind(py))? {
        return Ok(Kind::Enum);
    }
    if obj.is_instance(known.pure_path.bind(py))? {
        let name = ty.name()?;
        return match name.to_str()? {
            "PurePosixPath" | "PureWindowsPath" | "PosixPath" | "WindowsPath" => Ok(Kind::Path),
            _ => Err(unsupported(obj)),
        };
    }
    if !obj.is_instance_of::<PyType>() && ty.hasattr(pyo3::intern!(py, "__dataclass_fields__"))? {
        return Ok(Kind::Dataclass);
    }
    if obj.is_instance_of::<PyTuple>() && ty.hasattr(pyo3::intern!(py, "_fields"))? {
        return Ok(Kind::NamedTuple);
    }
    if let Some(np) = known_types::numpy(py)? {
        if ty.is(np.ndarray.bind(py)) {
            return Ok(Kind::NdArray);
        }
        if obj.is_instance(np.generic.bind(py))? {
            return Ok(Kind::NpScalar);
        }
    }
    if is_pydantic(obj)? {
        return Ok(Kind::Pydantic);
    }
    Err(unsupported(obj))
}

fn is_pydantic(obj: &Bound<'_, PyAny>) -> PyResult<bool> {
    static BASE_MODEL: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let py = obj.py();
    if BASE_MODEL.get(py).is_none() {
        // Only once the program has imported pydantic (we never import it).
        let modules = py.import("sys")?.getattr("modules")?;
        let Ok(module) = modules.get_item("pydantic") else {
            return Ok(false);
        };
        let base = module.getattr("BaseModel")?.unbind();
        let _ = BASE_MODEL.set(py, base);
    }
    obj.is_instance(BASE_MODEL.get(py).expect("set above").bind(py))
}
