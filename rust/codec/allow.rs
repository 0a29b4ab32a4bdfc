//! The allow-list: the classes (Enum, dataclass, pydantic model, named tuple) whose instances decoding
//! may revive. A class is allowed when this process encodes one of its instances or calls
//! `oxicache.codec.allow(cls)`; stored data never names a module to import.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};

use crate::key::known_types;

use super::decode_error;

static ALLOWED: PyOnceLock<Py<PyDict>> = PyOnceLock::new();

fn allowed(py: Python<'_>) -> &Bound<'_, PyDict> {
    ALLOWED.get_or_init(py, || PyDict::new(py).unbind()).bind(py)
}

/// `module:qualname` of a class.
pub fn type_name_of(ty: &Bound<'_, PyType>) -> PyResult<String> {
    let module = ty.module()?;
    let qualname = ty.qualname()?;
    Ok(format!("{}:{}", module.to_str()?, qualname.to_str()?))
}

/// The type name of `obj`'s class, allowing the class for decoding in this process.
pub fn allow_and_name(obj: &Bound<'_, PyAny>) -> PyResult<String> {
    let ty = obj.get_type();
    let name = nameable_type_name(&ty)?;
    let registry = allowed(obj.py());
    match registry.get_item(&name)? {
        Some(cls) if cls.is(&ty) => {}
        _ => registry.set_item(&name, &ty)?,
    }
    Ok(name)
}

/// Which family a stored type name must belong to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Enum,
    Dataclass,
    Pydantic,
    NamedTuple,
}

fn family_of(ty: &Bound<'_, PyType>) -> PyResult<Option<Family>> {
    let py = ty.py();
    let known = known_types::get(py)?;
    Ok(if ty.is_subclass(known.enum_base.bind(py))? {
        Some(Family::Enum)
    } else if ty.hasattr("__dataclass_fields__")? {
        Some(Family::Dataclass)
    } else if BaseModelCheck::is_model_class(ty)? {
        Some(Family::Pydantic)
    } else if ty.is_subclass_of::<PyTuple>()? && ty.hasattr("_fields")? {
        Some(Family::NamedTuple)
    } else {
        None
    })
}

/// The allowed class of a stored type name, which must be of `family`; or a decoding error naming the fix.
pub fn allowed_class<'py>(py: Python<'py>, name: &str, family: Family) -> PyResult<Bound<'py, PyAny>> {
    let cls = allowed_class_any(py, name)?;
    if family_of(cls.cast::<PyType>()?)? != Some(family) {
        return Err(decode_error(
            py,
            format!("the stored value names '{name}' as a different kind of class than it is in this process"),
        ));
    }
    Ok(cls)
}

fn allowed_class_any<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    allowed(py).get_item(name)?.ok_or_else(|| {
        decode_error(
            py,
            format!(
                "the stored value names the type '{name}', which is not allowed in this process; \
                 call oxicache.codec.allow({}) to revive it (classes are never imported from stored data)",
                name.rsplit([':', '.']).next().unwrap_or(name)
            ),
        )
    })
}

/// `oxicache.codec.allow(cls)`: lets decoding revive instances of `cls` (an Enum, dataclass, pydantic
/// model or named tuple class).
#[pyfunction]
pub fn allow_type(cls: &Bound<'_, PyAny>) -> PyResult<String> {
    let py = cls.py();
    let Ok(ty) = cls.cast::<PyType>() else {
        return Err(PyTypeError::new_err(format!(
            "allow() expects classes, got {}",
            cls.repr()?
        )));
    };
    if family_of(ty)?.is_none() {
        return Err(PyTypeError::new_err(format!(
            "allow() takes Enum, dataclass, pydantic model or named tuple classes; {} is none of these",
            type_name_of(ty)?
        )));
    }
    let name = nameable_type_name(ty)?;
    allowed(py).set_item(&name, ty)?;
    Ok(name)
}

/// The type name a record stores for `ty`, refused for a class its module cannot name (made inside a
/// function, by a factory, by `type()` or `Enum(...)`): two such classes can share the name while Python
/// treats them as different, and reviving one as the other would be a wrong value
/// (key/class_identity.rs draws the same line for keys).
fn nameable_type_name(ty: &Bound<'_, PyType>) -> PyResult<String> {
    let name = type_name_of(ty)?;
    if let crate::key::class_identity::ClassId::Local { .. } = crate::key::class_identity::class_id(ty.as_any())? {
        return Err(pyo3::exceptions::PyValueError::new_err(format!(
            "'{name}' is a class its module cannot name (made inside a function, by a factory, by type() or \
             Enum(...)): another class may share that name, so its instances are not stored; define the class \
             at module level"
        )));
    }
    Ok(name)
}

struct BaseModelCheck;

impl BaseModelCheck {
    fn is_model_class(ty: &Bound<'_, PyType>) -> PyResult<bool> {
        let py = ty.py();
        let modules = py.import("sys")?.getattr("modules")?;
        let Ok(module) = modules.get_item("pydantic") else {
            return Ok(false);
        };
        ty.is_subclass(&module.getattr("BaseModel")?)
    }
}
