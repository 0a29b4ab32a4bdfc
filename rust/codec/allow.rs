//! The allow-list: the classes (Enum, dataclass, pydantic model, named tuple) whose instances decoding
//! may revive. A class is allowed when this process encodes one of its instances or calls
//! `oxicache.codec.allow(cls)` (memoize does for the classes its return annotation and `types=` name).
//! Stored data never names a module to import: besides the allow-list, a record may name a plain-data
//! class of a module this process has already imported (found by dictionary lookups only, no code run;
//! the threat model is in docs/value-codec.md), unless `oxicache.codec.revive_imported(False)`.

use std::sync::atomic::{AtomicBool, Ordering};

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyModule, PyTuple, PyType};

use crate::errors::codec_error;
use crate::key::known_types;

use super::decode_error;

/// Whether records may name already-imported plain-data classes that are not on the allow-list.
static REVIVE_IMPORTED: AtomicBool = AtomicBool::new(true);

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
    if let Some(cls) = allowed(py).get_item(name)? {
        return Ok(cls);
    }
    let why = if REVIVE_IMPORTED.load(Ordering::Relaxed) {
        match imported_plain_class(py, name)? {
            Ok(cls) => {
                allowed(py).set_item(name, &cls)?; // found once, then as fast as an allowed class
                return Ok(cls.into_any());
            }
            Err(why) => why,
        }
    } else {
        "reviving already-imported classes is off (oxicache.codec.revive_imported(False))".to_string()
    };
    let dotted = name.replacen(':', ".", 1);
    let short = name.rsplit([':', '.']).next().unwrap_or(name);
    Err(codec_error(
        py,
        "ValueNotAllowedError",
        format!(
            "value of class {dotted} is not allowed; fix: memoize(types=[{short}]) or \
             oxicache.codec.allow({short}) (stored as {name}; {why}; classes are never imported from stored data)"
        ),
    ))
}

/// The class a record names, when its module is already imported (`sys.modules`, never imported here)
/// and the name leads to a plain-data class by dictionary lookups alone (no module `__getattr__`, no
/// descriptor runs), whose own module and qualname are that name (not an alias). Otherwise why not.
fn imported_plain_class<'py>(py: Python<'py>, name: &str) -> PyResult<Result<Bound<'py, PyType>, String>> {
    let Some((module_name, qualname)) = name.split_once(':') else {
        return Ok(Err("the stored name has no module".into()));
    };
    let modules = py.import("sys")?.getattr("modules")?;
    let Ok(modules) = modules.cast::<PyDict>() else {
        return Ok(Err("sys.modules is not a dict".into()));
    };
    let Some(module) = modules.get_item(module_name)? else {
        return Ok(Err(format!("its module {module_name} is not imported")));
    };
    let Ok(module) = module.cast::<PyModule>() else {
        return Ok(Err(format!("sys.modules['{module_name}'] is not a module")));
    };
    let mut namespace = module.dict().into_any();
    let mut found: Option<Bound<'py, PyAny>> = None;
    for part in qualname.split('.') {
        if let Some(cls) = &found {
            // A class's own namespace (a mappingproxy): nested classes, found without running anything.
            namespace = cls.cast::<PyType>()?.getattr(pyo3::intern!(py, "__dict__"))?;
        }
        let item = match namespace.get_item(part) {
            Ok(item) => item,
            Err(_) => return Ok(Err(format!("{module_name} has no class {qualname}"))),
        };
        if item.cast::<PyType>().is_err() {
            return Ok(Err(format!("{module_name}.{qualname} is not a class")));
        }
        found = Some(item);
    }
    let Some(cls) = found else {
        return Ok(Err("the stored name is empty".into()));
    };
    let ty = cls.cast_into::<PyType>()?;
    if type_name_of(&ty)? != name {
        return Ok(Err(format!("{module_name}.{qualname} is another class's alias")));
    }
    if family_of(&ty)?.is_none() {
        return Ok(Err("it is not a dataclass, NamedTuple, Enum or pydantic model".into()));
    }
    // A finalizer runs on fields the record chose, without the class's own __init__ having checked them.
    for base in ty.mro().iter() {
        let base = base.cast_into::<PyType>()?;
        if base.getattr(pyo3::intern!(py, "__dict__"))?.contains("__del__")? {
            return Ok(Err("it defines __del__, so it is revived only when allowed".into()));
        }
    }
    Ok(Ok(ty))
}

thread_local! {
    /// Set only inside `oxicache.codec.unrevived_placeholders()` (a tool inspecting a store, never a
    /// cache's reads): makes a value of a class not revived here from `(type name, stored data)`.
    static UNREVIVED: std::cell::RefCell<Option<Py<PyAny>>> = const { std::cell::RefCell::new(None) };
}

/// Sets this thread's placeholder factory (None: off); returns the previous one.
#[pyfunction]
#[pyo3(signature = (factory))]
pub fn unrevived_factory(factory: Option<Py<PyAny>>) -> Option<Py<PyAny>> {
    UNREVIVED.with(|cell| cell.replace(factory))
}

/// Under a placeholder factory: the placeholder for a value of `name` when this process does not revive
/// that class; None otherwise (always None, after one thread-local read, outside the factory's scope).
pub fn unrevived(py: Python<'_>, name: &str, data: &Bound<'_, PyAny>) -> PyResult<Option<Py<PyAny>>> {
    let Some(factory) = UNREVIVED.with(|cell| cell.borrow().as_ref().map(|f| f.clone_ref(py))) else {
        return Ok(None);
    };
    match allowed_class_any(py, name) {
        Ok(_) => Ok(None),
        Err(err) if crate::errors::is_codec_error(py, &err, "ValueNotAllowedError") => {
            Ok(Some(factory.call1(py, (name, data))?))
        }
        Err(err) => Err(err),
    }
}

/// `oxicache.codec.revive_imported(enabled)`: whether records may name already-imported plain-data
/// classes that are not on the allow-list (on by default). Returns the previous setting.
#[pyfunction]
pub fn revive_imported(enabled: bool) -> bool {
    REVIVE_IMPORTED.swap(enabled, Ordering::Relaxed)
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
