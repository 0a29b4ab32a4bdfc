//! Canonical, type-tagged, self-delimiting encoding of Python values (docs/key-scheme.md, section 2).
//!
//! Exact builtin types are recognised by comparing type pointers and encoded without calling Python;
//! everything else goes through `encode_object` (registered encoders, hooks, dataclasses, numpy, ...).

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PySet, PyString, PyTuple, PyType};

use super::class_identity::{class_id, process_token, ClassId};
use super::known_types;
use crate::errors::CoreError;
use crate::snapshot;

pub use crate::limits::MAX_DEPTH;

pub mod tag {
    pub const NONE: u8 = b'N';
    pub const FALSE: u8 = b'F';
    pub const TRUE: u8 = b'T';
    pub const INT: u8 = b'i';
    pub const FLOAT: u8 = b'f';
    pub const COMPLEX: u8 = b'c';
    pub const STR: u8 = b's';
    pub const BYTES: u8 = b'b';
    pub const BYTEARRAY: u8 = b'B';
    pub const ELLIPSIS: u8 = b'e';
    pub const TUPLE: u8 = b't';
    pub const LIST: u8 = b'l';
    pub const DICT: u8 = b'd';
    pub const SET: u8 = b'S';
    pub const FROZENSET: u8 = b'Z';
    pub const REGISTERED: u8 = b'X';
    pub const HOOK: u8 = b'K';
    pub const ENUM: u8 = b'n';
    pub const CLASS: u8 = b'y';
    pub const NDARRAY: u8 = b'A';
    pub const NPSCALAR: u8 = b'g';
    pub const DATACLASS: u8 = b'O';
    pub const PYDANTIC: u8 = b'P';
    pub const DATETIME: u8 = b'M';
    pub const DATE: u8 = b'Y';
    pub const TIME: u8 = b'H';
    pub const TIMEDELTA: u8 = b'R';
    pub const DECIMAL: u8 = b'm';
    pub const UUID: u8 = b'u';
    pub const PATH: u8 = b'p';
    pub const WINDOWS_PATH: u8 = b'W';
    /// In place of a class's `module.qualname`: a class no other process can name (class_identity.rs).
    pub const LOCAL_CLASS: u8 = b'L';
}

const CANONICAL_NAN: u64 = 0x7ff8_0000_0000_0000;

#[inline]
pub fn write_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

#[inline]
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(tag::STR);
    write_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// `int` payload for values that fit in i64: `n = (bit_length + 8) // 8` little-endian two's complement bytes.
#[inline]
pub fn write_i64(out: &mut Vec<u8>, v: i64) {
    let bit_length = 64 - v.unsigned_abs().leading_zeros();
    let n = (bit_length + 8) / 8;
    out.push(tag::INT);
    out.push(n as u8);
    let bytes = v.to_le_bytes();
    if n <= 8 {
        out.extend_from_slice(&bytes[..n as usize]);
    } else {
        out.extend_from_slice(&bytes);
        out.push(if v < 0 { 0xff } else { 0 });
    }
}

#[inline]
fn write_f64_payload(out: &mut Vec<u8>, v: f64) {
    let bits = if v.is_nan() { CANONICAL_NAN } else { v.to_bits() };
    out.extend_from_slice(&bits.to_be_bytes());
}

#[inline]
fn write_blob(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    out.push(tag);
    write_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Python's `f"{cls.__module__}.{cls.__qualname__}"`: the stable name of a class.
pub fn type_identity(cls: &Bound<'_, PyAny>) -> PyResult<String> {
    let module: String = cls.getattr(pyo3::intern!(cls.py(), "__module__"))?.str()?.extract()?;
    let qualname: String = cls.getattr(pyo3::intern!(cls.py(), "__qualname__"))?.str()?.extract()?;
    Ok(format!("{module}.{qualname}"))
}

macro_rules! type_ptr {
    ($name:ident) => {
        std::ptr::addr_of_mut!(ffi::$name)
    };
}

/// Writes canonical bytes into `out`. `lossless` stays true while every value written can be decoded back
/// into an equal object of the same type (see `decode.rs`), which lets the in-memory store skip keeping the
/// original arguments alive.
pub struct Encoder<'a> {
    pub out: &'a mut Vec<u8>,
    pub lossless: bool,
    /// The first class written with a process-local identity (`module.qualname`), if any: such bytes
    /// mean nothing in another process.
    pub process_local: Option<String>,
    /// Refuse (with `CoreError::NeedsFullPath`) anything that would run Python code or build a Python
    /// error: the mode of the memoizer's hit path, which runs outside PyO3's call bookkeeping.
    builtins_only: bool,
}

impl<'a> Encoder<'a> {
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        Encoder {
            out,
            lossless: true,
            process_local: None,
            builtins_only: false,
        }
    }

    pub fn builtins_only(out: &'a mut Vec<u8>) -> Self {
        Encoder {
            out,
            lossless: true,
            process_local: None,
            builtins_only: true,
        }
    }

    /// In builtins-only mode: clear the pending Python error without materialising it, and bail out.
    fn bail(&self) -> Result<(), CoreError> {
        // SAFETY: the thread holds the GIL (every caller of the encoder does).
        unsafe { ffi::PyErr_Clear() };
        Err(CoreError::NeedsFullPath)
    }

    pub fn encode(&mut self, obj: &Bound<'_, PyAny>, depth: usize) -> Result<(), CoreError> {
        if depth > MAX_DEPTH {
            if self.builtins_only {
                return Err(CoreError::NeedsFullPath);
            }
            return Err(CoreError::TooDeep {
                limit: MAX_DEPTH,
                cyclic: false,
                path: Vec::new(),
                probe: 0,
            });
        }
        let ptr = obj.as_ptr();
        // SAFETY: `ptr` is a live object (borrowed by `obj`); these are type-pointer comparisons and
        // type-specific accessors guarded by the exact type checks just made.
        unsafe {
            let ty = ffi::Py_TYPE(ptr);
            if ptr == ffi::Py_None() {
                self.out.push(tag::NONE);
            } else if ty == type_ptr!(PyBool_Type) {
                self.out
                    .push(if ptr == ffi::Py_True() { tag::TRUE } else { tag::FALSE });
            } else if ty == type_ptr!(PyLong_Type) {
                self.write_int(obj)?;
            } else if ty == type_ptr!(PyUnicode_Type) {
                self.write_py_str(obj)?;
            } else if ty == type_ptr!(PyFloat_Type) {
                self.out.push(tag::FLOAT);
                write_f64_payload(self.out, ffi::PyFloat_AS_DOUBLE(ptr));
            } else if ty == type_ptr!(PyTuple_Type) {
                self.write_sequence(tag::TUPLE, obj, depth)?;
            } else if ty == type_ptr!(PyList_Type) {
                self.write_sequence(tag::LIST, obj, depth)?;
            } else if ty == type_ptr!(PyDict_Type) {
                self.write_dict(obj.cast_unchecked::<PyDict>(), depth)?;
            } else if ty == type_ptr!(PyBytes_Type) {
                write_blob(self.out, tag::BYTES, obj.cast_unchecked::<PyBytes>().as_bytes());
            } else if ty == type_ptr!(PySet_Type) {
                self.write_set(tag::SET, obj, depth)?;
            } else if ty == type_ptr!(PyFrozenSet_Type) {
                self.write_set(tag::FROZENSET, obj, depth)?;
            } else if ty == type_ptr!(PyByteArray_Type) {
                let len = ffi::PyByteArray_Size(ptr) as usize;
                let data = std::slice::from_raw_parts(ffi::PyByteArray_AsString(ptr) as *const u8, len);
                write_blob(self.out, tag::BYTEARRAY, data);
            } else if ptr == ffi::Py_Ellipsis() {
                self.out.push(tag::ELLIPSIS);
            } else if ty == type_ptr!(PyComplex_Type) {
                self.out.push(tag::COMPLEX);
                write_f64_payload(self.out, ffi::PyComplex_RealAsDouble(ptr));
                write_f64_payload(self.out, ffi::PyComplex_ImagAsDouble(ptr));
            } else if self.builtins_only {
                return Err(CoreError::NeedsFullPath);
            } else {
                self.lossless = false;
                snapshot::note_python();
                self.encode_object(obj, depth)?;
            }
        }
        Ok(())
    }

    fn write_int(&mut self, obj: &Bound<'_, PyAny>) -> Result<(), CoreError> {
        let mut overflow: std::os::raw::c_int = 0;
        // SAFETY: `obj` is an int (exact or subclass), checked by the caller.
        let v = unsafe { ffi::PyLong_AsLongLongAndOverflow(obj.as_ptr(), &mut overflow) };
        if overflow == 0 {
            if v == -1 && PyErr::occurred(obj.py()) {
                if self.builtins_only {
                    return self.bail();
                }
                return Err(PyErr::fetch(obj.py()).into());
            }
            write_i64(self.out, v);
            return Ok(());
        }
        if self.builtins_only {
            return Err(CoreError::NeedsFullPath);
        }
        // Arbitrary size: let Python produce the two's-complement bytes.
        let py = obj.py();
        let bit_length: u64 = obj.call_method0(pyo3::intern!(py, "bit_length"))?.extract()?;
        let n = (bit_length + 8) / 8;
        let kwargs = PyDict::new(py);
        kwargs.set_item("signed", true)?;
        let bytes = obj.call_method("to_bytes", (n, "little"), Some(&kwargs))?;
        write_blob(
            self.out,
            tag::INT,
            bytes.cast::<PyBytes>().map_err(PyErr::from)?.as_bytes(),
        );
        Ok(())
    }

    fn write_py_str(&mut self, obj: &Bound<'_, PyAny>) -> Result<(), CoreError> {
        let mut size: ffi::Py_ssize_t = 0;
        // SAFETY: `obj` is a str (exact or subclass); the UTF-8 buffer is cached inside the object and
        // lives as long as it does.
        let data = unsafe { ffi::PyUnicode_AsUTF8AndSize(obj.as_ptr(), &mut size) };
        if !data.is_null() {
            let bytes = unsafe { std::slice::from_raw_parts(data as *const u8, size as usize) };
            write_blob(self.out, tag::STR, bytes);
            return Ok(());
        }
        // Lone surrogates have no UTF-8 form; "surrogatepass" still gives one deterministic encoding.
        if self.builtins_only {
            return self.bail();
        }
        let py = obj.py();
        drop(PyErr::fetch(py));
        let encoded = obj.call_method1(pyo3::intern!(py, "encode"), ("utf-8", "surrogatepass"))?;
        write_blob(
            self.out,
            tag::STR,
            encoded.cast::<PyBytes>().map_err(PyErr::from)?.as_bytes(),
        );
        Ok(())
    }

    fn write_sequence(&mut self, tag: u8, obj: &Bound<'_, PyAny>, depth: usize) -> Result<(), CoreError> {
        self.out.push(tag);
        if let Ok(tuple) = obj.cast::<PyTuple>() {
            write_varint(self.out, tuple.len() as u64);
            for (i, item) in tuple.iter_borrowed().enumerate() {
                self.encode(&item, depth + 1)
                    .map_err(|e| e.inside(|| format!("[{i}]")).cyclic_through(obj))?;
            }
        } else {
            let list = obj.cast::<PyList>().map_err(PyErr::from)?;
            let items = snapshot::list_items(list);
            let mark = snapshot::mark();
            write_varint(self.out, items.len() as u64);
            for (i, item) in items.iter().enumerate() {
                self.encode(item, depth + 1)
                    .map_err(|e| e.inside(|| format!("[{i}]")).cyclic_through(obj))?;
            }
            if snapshot::python_ran_since(mark) && !snapshot::list_unchanged(list, &items) {
                return Err(changed(obj));
            }
        }
        Ok(())
    }

    /// Writes `d` + count + items sorted by their encoded bytes (key bytes first, so keys decide the order).
    pub fn write_dict(&mut self, dict: &Bound<'_, PyDict>, depth: usize) -> Result<(), CoreError> {
        self.out.push(tag::DICT);
        let items = snapshot::dict_items(dict);
        let mark = snapshot::mark();
        let len = items.len();
        write_varint(self.out, len as u64);
        if len <= 16 && self.write_str_keyed_dict(dict, &items, depth)? {
            return self.check_dict_unchanged(dict, &items, mark);
        }
        let start = self.out.len();
        let mut spans: Vec<(usize, usize)> = Vec::with_capacity(len);
        for (k, v) in &items {
            let item_start = self.out.len();
            self.encode(k, depth + 1)
                .and_then(|()| self.encode(v, depth + 1))
                .map_err(|e| {
                    e.inside(|| format!("[{}]", short_repr(k)))
                        .cyclic_through(dict.as_any())
                })?;
            spans.push((item_start - start, self.out.len() - start));
        }
        self.sort_spans(start, spans);
        self.check_dict_unchanged(dict, &items, mark)
    }

    /// After a dict's items are written: an error if Python code run meanwhile changed the dict.
    fn check_dict_unchanged(
        &self,
        dict: &Bound<'_, PyDict>,
        items: &snapshot::Pairs<'_>,
        mark: u64,
    ) -> Result<(), CoreError> {
        if snapshot::python_ran_since(mark) && !snapshot::dict_unchanged(dict, items) {
            return Err(changed(dict.as_any()));
        }
        Ok(())
    }

    /// Fast path for small dicts whose keys are all exact `str` shorter than 128 bytes (argument dicts):
    /// such encoded keys (`s`, one length byte, UTF-8) sort by (length, bytes), so the keys are sorted
    /// first and items written in place, with no copying. Returns false (having written nothing) when a
    /// key does not qualify; longer keys have multi-byte lengths, whose bytewise order is not numeric.
    fn write_str_keyed_dict<'py>(
        &mut self,
        dict: &Bound<'py, PyDict>,
        pairs: &snapshot::Pairs<'py>,
        depth: usize,
    ) -> Result<bool, CoreError> {
        let mut items: smallvec::SmallVec<[StrKeyedItem<'_, 'py>; 8]> = smallvec::SmallVec::new();
        for (k, v) in pairs {
            // SAFETY: type-pointer check, then the UTF-8 buffer cached in the str object, which `items`
            // keeps alive (it holds `k`) for as long as the slice is used.
            let bytes = unsafe {
                if ffi::Py_TYPE(k.as_ptr()) != type_ptr!(PyUnicode_Type) {
                    return Ok(false);
                }
                let mut size: ffi::Py_ssize_t = 0;
                let data = ffi::PyUnicode_AsUTF8AndSize(k.as_ptr(), &mut size);
                if data.is_null() {
                    // Lone surrogate: let the general path handle it.
                    if self.builtins_only {
                        ffi::PyErr_Clear();
                    } else {
                        drop(PyErr::fetch(dict.py()));
                    }
                    return Ok(false);
                }
                if size >= 0x80 {
                    return Ok(false);
                }
                std::slice::from_raw_parts(data as *const u8, size as usize)
            };
            items.push((bytes, k, v));
        }
        items.sort_unstable_by(|a, b| a.0.len().cmp(&b.0.len()).then_with(|| a.0.cmp(b.0)));
        for (bytes, k, v) in &items {
            write_blob(self.out, tag::STR, bytes);
            self.encode(v, depth + 1).map_err(|e| {
                e.inside(|| format!("[{}]", short_repr(k)))
                    .cyclic_through(dict.as_any())
            })?;
        }
        Ok(true)
    }

    fn write_set(&mut self, tag: u8, obj: &Bound<'_, PyAny>, depth: usize) -> Result<(), CoreError> {
        self.out.push(tag);
        // The set's own storage, not a subclass's overridden __iter__ (as for the other builtins).
        let items = snapshot::set_items(obj)?;
        let mark = snapshot::mark();
        write_varint(self.out, items.len() as u64);
        let start = self.out.len();
        let mut spans = Vec::with_capacity(items.len());
        for item in &items {
            let item_start = self.out.len();
            self.encode(item, depth + 1)
                .map_err(|e| e.inside(|| format!("{{{}}}", short_repr(item))).cyclic_through(obj))?;
            spans.push((item_start - start, self.out.len() - start));
        }
        self.sort_spans(start, spans);
        if snapshot::python_ran_since(mark) && !snapshot::set_unchanged(obj, &items)? {
            return Err(changed(obj));
        }
        Ok(())
    }

    /// Reorders the items written since `start` into bytewise order of their encodings.
    fn sort_spans(&mut self, start: usize, mut spans: Vec<(usize, usize)>) {
        if spans.len() < 2 {
            return;
        }
        let written = self.out.split_off(start);
        spans.sort_unstable_by(|a, b| written[a.0..a.1].cmp(&written[b.0..b.1]));
        for (s, e) in spans {
            self.out.extend_from_slice(&written[s..e]);
        }
    }

    /// Everything that is not an exact builtin: the rules of docs/key-scheme.md section 2, in order.
    fn encode_object(&mut self, obj: &Bound<'_, PyAny>, depth: usize) -> Result<(), CoreError> {
        let py = obj.py();
        let ty = obj.get_type();
        let nested = |e: CoreError, what: &str| e.inside(|| what.to_string());

        if let Ok(stored) = obj.cast::<super::keybytes::KeyBytes>() {
            // A stored stand-in: the original argument's canonical bytes, written back as they were.
            self.out.extend_from_slice(&stored.get().bytes);
            return Ok(());
        }

        if let Some((cls, encoder)) = known_types::registered_encoder(py, &ty)? {
            self.out.push(tag::REGISTERED);
            self.write_class(&cls)?;
            let value = crate::shutdown::call(&encoder, &[obj])?;
            return self
                .encode(&value, depth + 1)
                .map_err(|e| nested(e, ".<registered encoder>"));
        }
        if let Some(hook) = ty.getattr_opt(pyo3::intern!(py, "__cache_key__"))? {
            self.out.push(tag::HOOK);
            self.write_class(ty.as_any())?;
            let value = crate::shutdown::call(&hook, &[obj])?;
            return self
                .encode(&value, depth + 1)
                .map_err(|e| nested(e, ".__cache_key__()"));
        }
        let kt = known_types::get(py)?;
        if obj.is_instance(kt.enum_base.bind(py))? {
            self.out.push(tag::ENUM);
            self.write_class(ty.as_any())?;
            // A combined Flag (or Flag(0)) has no name on some Pythons: its value identifies it then.
            let name = obj.getattr(pyo3::intern!(py, "name"))?;
            return match name.cast::<PyString>() {
                Ok(name) => {
                    write_str(self.out, name.to_str()?);
                    Ok(())
                }
                Err(_) => self.encode(&obj.getattr(pyo3::intern!(py, "value"))?, depth + 1),
            };
        }
        if let Ok(cls) = obj.cast::<PyType>() {
            self.out.push(tag::CLASS);
            self.write_class(cls.as_any())?;
            return Ok(());
        }
        if let Some(numpy) = known_types::numpy(py)? {
            // Exact ndarray only: subclasses (masked arrays, ...) carry state the bytes don't show.
            if ty.is(numpy.ndarray.bind(py)) {
                return self.write_ndarray(obj, numpy.ascontiguousarray.bind(py), depth);
            }
            if obj.is_instance(numpy.generic.bind(py))? {
                if obj.getattr("dtype")?.getattr("hasobject")?.is_truthy()? {
                    return Err(CoreError::Unsupported {
                        type_name: type_identity(ty.as_any())?,
                        path: Vec::new(),
                    });
                }
                self.out.push(tag::NPSCALAR);
                write_str(self.out, &dtype_str(&obj.getattr("dtype")?)?);
                let bytes = obj.call_method0("tobytes")?;
                let bytes = bytes.cast::<PyBytes>().map_err(PyErr::from)?;
                write_varint(self.out, bytes.as_bytes().len() as u64);
                self.out.extend_from_slice(bytes.as_bytes());
                return Ok(());
            }
        }
        if ty.hasattr(pyo3::intern!(py, "__dataclass_fields__"))? {
            let fields = PyDict::new(py);
            for field in kt.dataclass_fields.bind(py).call1((obj,))?.try_iter()? {
                let name = field?.getattr(pyo3::intern!(py, "name"))?;
                fields.set_item(&name, obj.getattr(name.cast::<PyString>().map_err(PyErr::from)?)?)?;
            }
            self.out.push(tag::DATACLASS);
            self.write_class(ty.as_any())?;
            return self.write_dict(&fields, depth + 1);
        }
        if ty.hasattr(pyo3::intern!(py, "__pydantic_fields__"))? && ty.hasattr(pyo3::intern!(py, "model_fields"))? {
            let fields = PyDict::new(py);
            for name in ty.getattr(pyo3::intern!(py, "model_fields"))?.try_iter()? {
                let name = name?;
                fields.set_item(&name, obj.getattr(name.cast::<PyString>().map_err(PyErr::from)?)?)?;
            }
            if let Some(extra) = obj.getattr_opt(pyo3::intern!(py, "__pydantic_extra__"))? {
                if let Ok(extra) = extra.cast::<PyDict>() {
                    for (k, v) in snapshot::dict_items(extra) {
                        fields.set_item(k, v)?;
                    }
                }
            }
            self.out.push(tag::PYDANTIC);
            self.write_class(ty.as_any())?;
            return self.write_dict(&fields, depth + 1);
        }
        if obj.is_instance(kt.datetime.bind(py))? {
            return self.write_isoformat(tag::DATETIME, obj);
        }
        if obj.is_instance(kt.date.bind(py))? {
            return self.write_isoformat(tag::DATE, obj);
        }
        if obj.is_instance(kt.time.bind(py))? {
            return self.write_isoformat(tag::TIME, obj);
        }
        if obj.is_instance(kt.timedelta.bind(py))? {
            self.out.push(tag::TIMEDELTA);
            for part in ["days", "seconds", "microseconds"] {
                write_i64(self.out, obj.getattr(part)?.extract()?);
            }
            return Ok(());
        }
        if obj.is_instance(kt.decimal.bind(py))? {
            self.out.push(tag::DECIMAL);
            write_str(self.out, obj.str()?.to_str()?);
            return Ok(());
        }
        if obj.is_instance(kt.uuid.bind(py))? {
            let bytes = obj.getattr(pyo3::intern!(py, "bytes"))?;
            self.out.push(tag::UUID);
            self.out
                .extend_from_slice(bytes.cast::<PyBytes>().map_err(PyErr::from)?.as_bytes());
            return Ok(());
        }
        if obj.is_instance(kt.pure_path.bind(py))? {
            // The flavour is part of the key: PurePosixPath("/x") and PureWindowsPath("/x") differ.
            let windows = obj.is_instance(kt.pure_windows_path.bind(py))?;
            self.out.push(if windows { tag::WINDOWS_PATH } else { tag::PATH });
            // As any str: a path with surrogate escapes (undecodable file names) takes "surrogatepass".
            return self.write_py_str(&obj.call_method0(pyo3::intern!(py, "as_posix"))?);
        }
        self.encode_builtin_subclass(obj, depth)
    }

    /// Rule 16: instances of subclasses of builtins encode as their base type.
    fn encode_builtin_subclass(&mut self, obj: &Bound<'_, PyAny>, depth: usize) -> Result<(), CoreError> {
        let ptr = obj.as_ptr();
        // SAFETY: `ptr` is live; the `*_Check` macros only read its type.
        unsafe {
            if ffi::PyLong_Check(ptr) != 0 {
                self.write_int(obj)
            } else if ffi::PyUnicode_Check(ptr) != 0 {
                self.write_py_str(obj)
            } else if ffi::PyFloat_Check(ptr) != 0 {
                self.out.push(tag::FLOAT);
                write_f64_payload(self.out, ffi::PyFloat_AsDouble(ptr));
                Ok(())
            } else if ffi::PyTuple_Check(ptr) != 0 {
                self.write_sequence(tag::TUPLE, obj, depth)
            } else if ffi::PyList_Check(ptr) != 0 {
                self.write_sequence(tag::LIST, obj, depth)
            } else if ffi::PyDict_Check(ptr) != 0 {
                self.write_dict(obj.cast_unchecked::<PyDict>(), depth)
            } else if ffi::PyBytes_Check(ptr) != 0 {
                write_blob(self.out, tag::BYTES, obj.cast_unchecked::<PyBytes>().as_bytes());
                Ok(())
            } else if ffi::PyFrozenSet_Check(ptr) != 0 {
                self.write_set(tag::FROZENSET, obj, depth)
            } else if obj.is_instance_of::<PySet>() {
                self.write_set(tag::SET, obj, depth)
            } else if ffi::PyByteArray_Check(ptr) != 0 {
                let len = ffi::PyByteArray_Size(ptr) as usize;
                let data = std::slice::from_raw_parts(ffi::PyByteArray_AsString(ptr) as *const u8, len);
                write_blob(self.out, tag::BYTEARRAY, data);
                Ok(())
            } else if ffi::PyComplex_Check(ptr) != 0 {
                self.out.push(tag::COMPLEX);
                write_f64_payload(self.out, ffi::PyComplex_RealAsDouble(ptr));
                write_f64_payload(self.out, ffi::PyComplex_ImagAsDouble(ptr));
                Ok(())
            } else {
                Err(CoreError::Unsupported {
                    type_name: type_identity(obj.get_type().as_any())?,
                    path: Vec::new(),
                })
            }
        }
    }

    /// A class's identity (class_identity.rs): `str(module.qualname)` for a class its module names, else
    /// `L` + the process token + `varint(serial)` + `str(module.qualname)`.
    fn write_class(&mut self, cls: &Bound<'_, PyAny>) -> Result<(), CoreError> {
        match class_id(cls)? {
            ClassId::Portable(name) => write_str(self.out, &name),
            ClassId::Local { serial, name } => {
                self.out.push(tag::LOCAL_CLASS);
                self.out.extend_from_slice(process_token());
                write_varint(self.out, serial);
                write_str(self.out, &name);
                self.process_local.get_or_insert(name);
            }
        }
        Ok(())
    }

    fn write_isoformat(&mut self, tag: u8, obj: &Bound<'_, PyAny>) -> Result<(), CoreError> {
        self.out.push(tag);
        write_str(
            self.out,
            obj.call_method0(pyo3::intern!(obj.py(), "isoformat"))?
                .extract::<&str>()?,
        );
        Ok(())
    }

    fn write_ndarray(
        &mut self,
        arr: &Bound<'_, PyAny>,
        ascontiguous: &Bound<'_, PyAny>,
        depth: usize,
    ) -> Result<(), CoreError> {
        let py = arr.py();
        let dtype = arr.getattr(pyo3::intern!(py, "dtype"))?;
        self.out.push(tag::NDARRAY);
        write_str(self.out, &dtype_str(&dtype)?);
        let shape = arr.getattr(pyo3::intern!(py, "shape"))?;
        let shape = shape.cast::<PyTuple>().map_err(PyErr::from)?;
        write_varint(self.out, shape.len() as u64);
        for dim in shape.iter() {
            write_varint(self.out, dim.extract::<u64>()?);
        }
        if dtype.getattr(pyo3::intern!(py, "hasobject"))?.is_truthy()? {
            if !dtype.getattr(pyo3::intern!(py, "names"))?.is_none() {
                // Records holding objects would be keyed by raw pointers: refuse them.
                return Err(CoreError::Unsupported {
                    type_name: format!("numpy.ndarray[{}]", dtype_str(&dtype)?),
                    path: Vec::new(),
                });
            }
            let flat = arr.call_method1(pyo3::intern!(py, "ravel"), ("C",))?;
            for (i, item) in flat.try_iter()?.enumerate() {
                self.encode(&item?, depth + 1)
                    .map_err(|e| e.inside(|| format!(".flat[{i}]")))?;
            }
        } else if !self.write_c_contiguous_buffer(arr) {
            let bytes = ascontiguous.call1((arr,))?.call_method0(pyo3::intern!(py, "tobytes"))?;
            let bytes = bytes.cast::<PyBytes>().map_err(PyErr::from)?.as_bytes();
            write_varint(self.out, bytes.len() as u64);
            self.out.extend_from_slice(bytes);
        }
        Ok(())
    }

    /// The array's bytes straight from its memory when it is C-contiguous (the buffer protocol lends
    /// the same bytes `tobytes()` would copy out), so a large array is copied once instead of three
    /// times. False, with nothing written, for arrays that do not lend a C-contiguous buffer (strided
    /// views, dtypes without a buffer format such as datetime64): those take `tobytes()`.
    fn write_c_contiguous_buffer(&mut self, arr: &Bound<'_, PyAny>) -> bool {
        let mut view = std::mem::MaybeUninit::<ffi::Py_buffer>::zeroed();
        // SAFETY: `arr` is an exact numpy.ndarray, whose getbuffer runs no Python code; the view is used
        // only between a successful PyObject_GetBuffer and its PyBuffer_Release.
        unsafe {
            if ffi::PyObject_GetBuffer(arr.as_ptr(), view.as_mut_ptr(), ffi::PyBUF_C_CONTIGUOUS) != 0 {
                drop(PyErr::take(arr.py())); // not contiguous, or no buffer format: the copy path decides
                return false;
            }
            let view = view.assume_init_mut();
            let len = view.len.max(0) as usize;
            write_varint(self.out, len as u64);
            if len > 0 {
                self.out
                    .extend_from_slice(std::slice::from_raw_parts(view.buf as *const u8, len));
            }
            ffi::PyBuffer_Release(view);
        }
        true
    }
}

/// A dict item with its key's UTF-8 bytes, for sorting.
type StrKeyedItem<'a, 'py> = (&'a [u8], &'a Bound<'py, PyAny>, &'a Bound<'py, PyAny>);

/// `dtype.str` for plain dtypes, `repr(dtype.descr)` for structured ones (whose `.str` hides the fields),
/// and `str(dtype)` (names, formats, offsets and itemsize) for structured dtypes whose fields overlap or
/// are out of order, which have no `descr`.
fn dtype_str(dtype: &Bound<'_, PyAny>) -> PyResult<String> {
    let py = dtype.py();
    if dtype.getattr(pyo3::intern!(py, "names"))?.is_none() {
        return dtype.getattr(pyo3::intern!(py, "str"))?.extract();
    }
    match dtype.getattr(pyo3::intern!(py, "descr")) {
        Ok(descr) => descr.repr()?.extract(),
        Err(err) if err.is_instance_of::<pyo3::exceptions::PyValueError>(py) => dtype.str()?.extract(),
        Err(err) => Err(err),
    }
}

/// The error for a container that changed while its items were encoded.
fn changed(container: &Bound<'_, PyAny>) -> CoreError {
    let name = container
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "container".into());
    CoreError::Changed {
        container: name,
        path: Vec::new(),
    }
}

/// A short, safe description of a dict key or set item for error paths.
fn short_repr(obj: &Bound<'_, PyAny>) -> String {
    let text = obj.repr().map(|r| r.to_string()).unwrap_or_else(|_| "?".to_string());
    if text.chars().count() > 40 {
        let cut: String = text.chars().take(37).collect();
        format!("{cut}...")
    } else {
        text
    }
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(256));
}

/// Runs `f` with an empty per-thread buffer, so building a key allocates nothing. Re-entrant calls (a
/// `__cache_key__` hook calling a memoized function) get a fresh buffer instead.
pub fn with_scratch<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            buf.clear();
            let result = f(&mut buf);
            if buf.capacity() > 1 << 16 {
                *buf = Vec::with_capacity(256); // don't keep a huge argument's buffer around
            }
            result
        }
        Err(_) => f(&mut Vec::new()),
    })
}

/// Encodes one value into fresh bytes (used by `canonical_bytes` and tests).
pub fn encode_value(obj: &Bound<'_, PyAny>) -> Result<(Vec<u8>, bool), CoreError> {
    let mut out = Vec::with_capacity(64);
    let mut enc = Encoder::new(&mut out);
    enc.encode(obj, 0)?;
    let lossless = enc.lossless;
    Ok((out, lossless))
}
