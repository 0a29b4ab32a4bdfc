//! The value codec of persistent backends (docs/value-codec.md): one value model, two encodings
//! (MessagePack with extension types in `msgpack.rs`, tagged JSON in `json.rs`).
//!
//! This module holds what both share: how a Python value is classified, the parts of the non-builtin
//! types, the allow-list of revivable classes, and how decoded parts become Python values again.
//! Decoding never imports a module named by the data: classes come only from the allow-list.

pub mod json;
pub mod json_read;
pub mod msgpack;

use std::hash::BuildHasher;

use pyo3::exceptions::PyTypeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple, PyType};

use crate::errors::codec_error;
use crate::key::encode::with_scratch;
use crate::key::known_types;

pub use crate::limits::MAX_DEPTH;

/// Extension type codes of the binary encoding (and the order of JSON tags).
pub mod ext {
    pub const BIGINT: i8 = 1;
    pub const TUPLE: i8 = 2;
    pub const SET: i8 = 3;
    pub const FROZENSET: i8 = 4;
    pub const ELLIPSIS: i8 = 5;
    pub const BYTEARRAY: i8 = 6;
    pub const COMPLEX: i8 = 7;
    pub const DATETIME: i8 = 8;
    pub const DATE: i8 = 9;
    pub const TIME: i8 = 10;
    pub const TIMEDELTA: i8 = 11;
    pub const DECIMAL: i8 = 12;
    pub const UUID: i8 = 13;
    pub const PATH: i8 = 14;
    pub const ENUM: i8 = 15;
    pub const DATACLASS: i8 = 16;
    pub const PYDANTIC: i8 = 17;
    pub const NDARRAY: i8 = 18;
    pub const NPSCALAR: i8 = 19;
    pub const NAMEDTUPLE: i8 = 20;
    pub const SURROGATE_STR: i8 = 21;
    pub const KEYBYTES: i8 = 22;
}

/// An encoding failure: a message and the path to the value inside the whole (innermost first).
pub struct EncodeError {
    message: String,
    path: Vec<String>,
    /// For nesting beyond the limit: the innermost container on the way back up (its type names the
    /// problem), and whether it was met again further up (a reference cycle).
    too_deep: Option<TooDeep>,
}

struct TooDeep {
    container: Option<(usize, String)>,
    cyclic: bool,
}

pub type EncodeResult = Result<(), EncodeError>;

impl EncodeError {
    pub fn new(message: impl Into<String>) -> Self {
        EncodeError {
            message: message.into(),
            path: Vec::new(),
            too_deep: None,
        }
    }

    /// Called by each container on the way back up from a failure: the first records itself, and
    /// meeting the same container again higher up proves a cycle.
    pub fn through(mut self, container: &Bound<'_, PyAny>) -> Self {
        if let Some(deep) = &mut self.too_deep {
            let addr = container.as_ptr() as usize;
            match &deep.container {
                None => {
                    let name = container
                        .get_type()
                        .qualname()
                        .map(|n| n.to_string())
                        .unwrap_or_default();
                    deep.container = Some((addr, name));
                }
                Some((first, _)) if *first == addr => deep.cyclic = true,
                Some(_) => {}
            }
        }
        self
    }

    /// Records that the failure happened inside `segment` of the enclosing container.
    pub fn inside(mut self, segment: impl FnOnce() -> String) -> Self {
        if self.path.len() < 64 {
            self.path.push(segment());
        }
        self
    }

    pub fn into_pyerr(mut self, py: Python<'_>) -> PyErr {
        if let Some(deep) = &self.too_deep {
            let name = deep.container.as_ref().map(|(_, n)| n.as_str()).unwrap_or("value");
            self.message = if deep.cyclic {
                format!("a '{name}' that contains itself (a reference cycle) cannot be stored; store an acyclic value")
            } else {
                format!("a '{name}' nested deeper than {MAX_DEPTH} levels cannot be stored; store a flatter value")
            };
        }
        // Segments were pushed innermost first; a path through a cycle is long, so keep its ends.
        let path: String = if self.path.len() > 8 {
            let outer: String = self.path.iter().rev().take(4).cloned().collect();
            let inner: String = self.path.iter().take(2).rev().cloned().collect();
            format!("{outer}...{inner}")
        } else {
            self.path.iter().rev().cloned().collect()
        };
        let at = if path.is_empty() {
            String::new()
        } else {
            format!(" at value{path}")
        };
        codec_error(
            py,
            "ValueEncodingError",
            format!("cannot store the value{at}: {}", self.message),
        )
    }
}

impl From<PyErr> for EncodeError {
    fn from(err: PyErr) -> Self {
        Python::attach(|py| EncodeError::new(format!("{}", err.value(py))))
    }
}

pub fn decode_error(py: Python<'_>, message: impl Into<String>) -> PyErr {
    codec_error(py, "ValueDecodingError", message.into())
}

/// A container that changed while its items were encoded (Python code run by an item changed it): its
/// record would hold neither the state before nor the one after.
pub fn changed(container: &Bound<'_, PyAny>) -> EncodeError {
    let name = container
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "container".into());
    EncodeError::new(format!(
        "the {name} changed while it was being encoded (by code that encoding one of its items ran, or by \
         another thread meanwhile); store a value nobody changes during the call"
    ))
}

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
        return Err(changed(container));
    }
    Ok(())
}

// Each container is read in one step (crate::snapshot), its items written by the format's `write`, and
// the container checked unchanged afterwards: the same for both formats.

/// A list's items, written by `write`.
pub fn write_list_with<'py>(
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
pub fn write_set_with<'py>(
    set: &Bound<'py, PyAny>,
    write: impl FnOnce(&[Bound<'py, PyAny>]) -> EncodeResult,
) -> EncodeResult {
    let items = crate::snapshot::set_items(set)?;
    write_checked(set, || write(&items), || crate::snapshot::set_unchanged(set, &items))
}

/// A dict's (key, value) pairs, written by `write`.
pub fn write_dict_with<'py>(
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

/// Nesting beyond the limit (a cycle always ends here); the containers on the way up complete it.
pub fn too_deep() -> EncodeError {
    let mut err = EncodeError::new(String::new());
    err.too_deep = Some(TooDeep {
        container: None,
        cyclic: false,
    });
    err
}

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

// ---- the allow-list ------------------------------------------------------------------------------

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

// ---- parts of the non-builtin types (shared by both encodings) -----------------------------------

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

pub fn timedelta_parts(obj: &Bound<'_, PyAny>) -> PyResult<(i64, i64, i64)> {
    Ok((
        obj.getattr("days")?.extract()?,
        obj.getattr("seconds")?.extract()?,
        obj.getattr("microseconds")?.extract()?,
    ))
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

/// A dataclass revived as pickle does: without `__init__`, fields set as stored.
pub fn revive_dataclass(py: Python<'_>, name: &str, fields: &Bound<'_, PyDict>) -> PyResult<Py<PyAny>> {
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

pub fn revive_pydantic(py: Python<'_>, name: &str, fields: &Bound<'_, PyDict>) -> PyResult<Py<PyAny>> {
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
    Ok(allowed_class(py, name, Family::Enum)?.call1((value,))?.unbind())
}

pub fn revive_namedtuple(py: Python<'_>, name: &str, items: &Bound<'_, PyList>) -> PyResult<Py<PyAny>> {
    let args = PyTuple::new(py, items.iter())?;
    Ok(allowed_class(py, name, Family::NamedTuple)?.call1(args)?.unbind())
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
fn is_plain_dtype(dtype: &Bound<'_, PyAny>) -> PyResult<bool> {
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

/// A str that is not valid UTF-8 (it holds lone surrogates) as UTF-8 with surrogatepass, or None.
pub fn surrogate_bytes(s: &Bound<'_, PyString>) -> PyResult<Vec<u8>> {
    s.call_method1("encode", ("utf-8", "surrogatepass"))?.extract()
}

pub fn str_from_surrogate_bytes(py: Python<'_>, bytes: &[u8]) -> PyResult<Py<PyAny>> {
    Ok(PyBytes::new(py, bytes)
        .call_method1("decode", ("utf-8", "surrogatepass"))?
        .unbind())
}

// ---- Python entry points -------------------------------------------------------------------------

/// The binary (MessagePack) encoding of `value`.
#[pyfunction]
pub fn encode_binary<'py>(py: Python<'py>, value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    with_scratch(|out| {
        msgpack::encode(value, out, 0).map_err(|e| e.into_pyerr(py))?;
        Ok(PyBytes::new(py, out))
    })
}

/// Any failure while decoding is a `ValueDecodingError` (a class constructor or `fromisoformat` raising
/// on damaged data raises its own type otherwise).
fn as_decoding_error(py: Python<'_>, err: PyErr) -> PyErr {
    if crate::errors::is_codec_error(py, &err, "ValueDecodingError") {
        return err;
    }
    decode_error(
        py,
        format!(
            "the stored value could not be rebuilt: {}: {}",
            err.get_type(py).name().map(|n| n.to_string()).unwrap_or_default(),
            err.value(py)
        ),
    )
}

/// The value of a binary encoding (bytes or any bytes-like object).
#[pyfunction]
pub fn decode_binary(py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    let result = if let Ok(b) = data.cast::<PyBytes>() {
        msgpack::decode(py, b.as_bytes())
    } else if data.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(
            "decode_binary expects bytes, got str (use decode_json for JSON text)",
        ));
    } else {
        let copied: Vec<u8> = py.get_type::<PyBytes>().call1((data,))?.extract()?;
        msgpack::decode(py, &copied)
    };
    result.map_err(|e| as_decoding_error(py, e))
}

/// The tagged JSON encoding of `value`.
#[pyfunction]
pub fn encode_json<'py>(py: Python<'py>, value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyString>> {
    with_scratch(|out| {
        json::encode(value, out, 0).map_err(|e| e.into_pyerr(py))?;
        // SAFETY: the writer emits UTF-8 only (str contents are copied from valid UTF-8, the rest is ASCII).
        Ok(new_str(py, out)?.into_bound(py).cast_into::<PyString>()?)
    })
}

/// The value of a JSON encoding (str or UTF-8 bytes).
#[pyfunction]
pub fn decode_json(py: Python<'_>, text: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    if let Ok(s) = text.cast::<PyString>() {
        let s = s
            .to_str()
            .map_err(|_| decode_error(py, "JSON text with lone surrogates"))?;
        return json_read::decode(py, s.as_bytes()).map_err(|e| as_decoding_error(py, e));
    }
    if let Ok(b) = text.cast::<PyBytes>() {
        return json_read::decode(py, b.as_bytes()).map_err(|e| as_decoding_error(py, e));
    }
    Err(PyTypeError::new_err(format!(
        "decode_json expects str or bytes, got {}",
        text.get_type().name()?
    )))
}

// ---- building strings fast (decoding) ------------------------------------------------------------

/// A new str from UTF-8 `bytes`: ASCII is copied straight into a new compact str (no decoding pass);
/// anything else goes through CPython's UTF-8 decoder, which also validates it.
pub fn new_str(py: Python<'_>, bytes: &[u8]) -> PyResult<Py<PyAny>> {
    // SAFETY: PyUnicode_New(len, 127) makes a compact ASCII str whose data area holds `len` bytes (plus
    // the NUL it already wrote); we fill it before anyone sees the object.
    unsafe {
        if bytes.is_ascii() {
            let s = ffi::PyUnicode_New(bytes.len() as ffi::Py_ssize_t, 127);
            if s.is_null() {
                return Err(PyErr::fetch(py));
            }
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), ffi::PyUnicode_DATA(s) as *mut u8, bytes.len());
            return Ok(Bound::from_owned_ptr(py, s).unbind());
        }
        let s = ffi::PyUnicode_DecodeUTF8(
            bytes.as_ptr().cast(),
            bytes.len() as ffi::Py_ssize_t,
            c"strict".as_ptr(),
        );
        if s.is_null() {
            let _ = PyErr::fetch(py);
            return Err(decode_error(py, "a stored string is not valid UTF-8"));
        }
        Ok(Bound::from_owned_ptr(py, s).unbind())
    }
}

const KEY_CACHE_SLOTS: usize = 512;
const KEY_CACHE_MAX_LEN: usize = 48;

/// A key cache slot: the key's bytes and its str.
type KeySlot = Option<(Box<[u8]>, Py<PyAny>)>;

thread_local! {
    /// Recently decoded dict keys (short ASCII strs), so each key is allocated and hashed once instead of
    /// once per row. A slot is `(the key's bytes, the str)`; a miss replaces the slot.
    static KEY_CACHE: std::cell::RefCell<Vec<KeySlot>> =
        std::cell::RefCell::new((0..KEY_CACHE_SLOTS).map(|_| None).collect());
}

/// A str for a dict key: the cached object when this key was decoded recently.
pub fn key_str(py: Python<'_>, bytes: &[u8]) -> PyResult<Py<PyAny>> {
    if bytes.len() > KEY_CACHE_MAX_LEN || !bytes.is_ascii() {
        return new_str(py, bytes);
    }
    let slot = (foldhash::quality::FixedState::with_seed(0x6f78_6963).hash_one(bytes) as usize) % KEY_CACHE_SLOTS;
    KEY_CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some((cached, s)) = &cache[slot] {
            if **cached == *bytes {
                return Ok(s.clone_ref(py));
            }
        }
        let s = new_str(py, bytes)?;
        // Hash it now: the dict insertion needs the hash, and later hits reuse it.
        s.bind(py).hash()?;
        cache[slot] = Some((bytes.into(), s.clone_ref(py)));
        Ok(s)
    })
}

pub fn keybytes_of(obj: &Bound<'_, PyAny>) -> Vec<u8> {
    obj.cast::<crate::key::keybytes::KeyBytes>()
        .map(|k| k.get().bytes.clone())
        .unwrap_or_default()
}

pub fn revive_keybytes(py: Python<'_>, bytes: &[u8]) -> PyResult<Py<PyAny>> {
    Ok(Py::new(py, crate::key::keybytes::KeyBytes { bytes: bytes.to_vec() })?.into_any())
}

// ---- fast access to builtins (encoding) -----------------------------------------------------------

/// An exact int's value when it fits in i64 (no error state is set either way).
#[inline]
pub fn small_int(obj: &Bound<'_, PyAny>) -> Option<i64> {
    let mut overflow: std::os::raw::c_int = 0;
    // SAFETY: `obj` is an exact int (checked by `classify`), for which this never raises.
    let v = unsafe { ffi::PyLong_AsLongLongAndOverflow(obj.as_ptr(), &mut overflow) };
    (overflow == 0).then_some(v)
}
