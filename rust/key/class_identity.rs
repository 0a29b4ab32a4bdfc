//! The identity a key gives a class (of an instance keyed by its class, or of a class passed itself).
//!
//! A class that its module names (`sys.modules[cls.__module__]`, then its `__qualname__` attribute by
//! attribute, is the class itself) is keyed by `module.qualname`, the same in every process. A class
//! that cannot be named so (made inside a function, by a factory or `type(...)`) has no identity another
//! process could share: two such classes may have one qualname (`Meters` and `Km` from one factory)
//! while Python treats them as different. Each gets a process-local identity instead: a serial number,
//! never reused, and a random token of this process. Keys holding one work in process memory
//! (InMemCache) and are refused by stores other processes read (`CacheEntry.shared_key`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyString, PyTuple, PyWeakrefReference};

use super::encode::type_identity;

pub enum ClassId {
    /// `module.qualname`, which names this class in every process.
    Portable(String),
    /// A serial number of this process, with the class's `module.qualname` for messages.
    Local { serial: u64, name: String },
}

static NEXT_SERIAL: AtomicU64 = AtomicU64::new(1);
/// id(class) -> (weakref to the class, its identity str, serial or 0 when portable).
static KNOWN: PyOnceLock<Py<PyDict>> = PyOnceLock::new();
/// The cache's size after its last sweep of dead classes.
static SWEPT_AT: AtomicU64 = AtomicU64::new(64);

/// 8 random bytes of this process, written into process-local identities so that even a key computed
/// in two processes can never agree by accident.
pub fn process_token() -> &'static [u8; 8] {
    static TOKEN: OnceLock<[u8; 8]> = OnceLock::new();
    TOKEN.get_or_init(|| {
        use std::hash::BuildHasher;
        let seed = foldhash::fast::RandomState::default().hash_one((std::process::id(), std::time::SystemTime::now()));
        seed.to_le_bytes()
    })
}

/// The identity of `cls`, computed once per class.
pub fn class_id(cls: &Bound<'_, PyAny>) -> PyResult<ClassId> {
    let py = cls.py();
    let known = KNOWN.get_or_init(py, || PyDict::new(py).unbind()).bind(py);
    let addr = cls.as_ptr() as usize;
    if let Some(hit) = known.get_item(addr)? {
        let hit = hit.cast_into::<PyTuple>()?;
        let alive = match hit.get_item(0)?.cast_into::<PyWeakrefReference>() {
            Ok(weak) => weak.upgrade().is_some_and(|o| o.is(cls)),
            Err(_) => hit.get_item(0)?.is(cls), // a class without weakref support, held strongly
        };
        if alive {
            let name: String = hit.get_item(1)?.extract()?;
            let serial: u64 = hit.get_item(2)?.extract()?;
            return Ok(if serial == 0 {
                ClassId::Portable(name)
            } else {
                ClassId::Local { serial, name }
            });
        }
    }
    let name = type_identity(cls)?;
    let serial = if importable(cls)? {
        0
    } else {
        NEXT_SERIAL.fetch_add(1, Ordering::Relaxed)
    };
    let holder = match PyWeakrefReference::new(cls) {
        Ok(weak) => weak.into_any(),
        Err(_) => cls.clone(),
    };
    known.set_item(addr, (holder, &name, serial))?;
    sweep_if_grown(known)?;
    Ok(if serial == 0 {
        ClassId::Portable(name)
    } else {
        ClassId::Local { serial, name }
    })
}

/// True when `sys.modules[cls.__module__]`, then `__qualname__` attribute by attribute, is `cls`, or `cls`
/// is a static type (`NoneType`, `function`: one per interpreter, whatever its module exposes).
fn importable(cls: &Bound<'_, PyAny>) -> PyResult<bool> {
    let py = cls.py();
    if let Ok(ty) = cls.cast::<pyo3::types::PyType>() {
        // SAFETY: reads the flags of a live type object.
        let flags = unsafe { pyo3::ffi::PyType_GetFlags(ty.as_type_ptr()) };
        if flags & pyo3::ffi::Py_TPFLAGS_HEAPTYPE == 0 {
            return Ok(true);
        }
    }
    let (Some(module), Some(qualname)) = (
        cls.getattr_opt(pyo3::intern!(py, "__module__"))?,
        cls.getattr_opt(pyo3::intern!(py, "__qualname__"))?,
    ) else {
        return Ok(false);
    };
    let (Ok(module), Ok(qualname)) = (module.cast::<PyString>(), qualname.cast::<PyString>()) else {
        return Ok(false);
    };
    let qualname = qualname.to_str()?;
    if qualname.contains('<') {
        return Ok(false); // `<locals>`, `<lambda>`: not reachable by attribute
    }
    let Ok(mut found) = py.import("sys")?.getattr("modules")?.get_item(module) else {
        return Ok(false);
    };
    for part in qualname.split('.') {
        match found.getattr_opt(part) {
            Ok(Some(next)) => found = next,
            Ok(None) | Err(_) => return Ok(false),
        }
    }
    Ok(found.is(cls))
}

/// Drops the entries of classes that died, once the cache has doubled since the last sweep.
fn sweep_if_grown(known: &Bound<'_, PyDict>) -> PyResult<()> {
    let len = known.len() as u64;
    if len < 2 * SWEPT_AT.load(Ordering::Relaxed) {
        return Ok(());
    }
    let mut dead = Vec::new();
    for (addr, hit) in crate::snapshot::dict_items(known) {
        let holder = hit.cast::<PyTuple>()?.get_item(0)?;
        if let Ok(weak) = holder.cast::<PyWeakrefReference>() {
            if weak.upgrade().is_none() {
                dead.push(addr);
            }
        }
    }
    for addr in dead {
        known.del_item(addr)?;
    }
    SWEPT_AT.store((known.len() as u64).max(64), Ordering::Relaxed);
    Ok(())
}
