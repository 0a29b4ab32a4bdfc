//! Native core of oxicache: canonical keys, `CacheEntry`, the in-memory store and the native memoizer.

mod codec;
mod controls;
mod entry;
mod errors;
mod forkgate;
mod key;
mod limits;
mod log;
mod memo;
mod monitor;
mod records;
mod replay;
mod shutdown;
mod snapshot;
mod stack;
mod store;
mod stored;
mod vectorcall;

#[pyo3::pymodule]
mod _core {
    #[pymodule_export]
    use crate::codec::allow::unrevived_factory;
    #[pymodule_export]
    use crate::codec::{
        allow_type, decode_binary, decode_json, encode_binary, encode_json, encode_json_bytes, revive_imported,
    };
    #[pymodule_export]
    use crate::controls::{controls_activated, controls_var};
    #[pymodule_export]
    use crate::entry::CacheEntry;
    #[pymodule_export]
    use crate::forkgate::ForkGate;
    #[pymodule_export]
    use crate::key::keybytes::KeyBytes;
    #[pymodule_export]
    use crate::key::known_types::register_key_encoder;
    #[pymodule_export]
    use crate::key::{canonical_bytes, key_of, key_of_many};
    #[pymodule_export]
    use crate::log::set_debug_logging;
    #[pymodule_export]
    use crate::memo::binder::Binder;
    #[pymodule_export]
    use crate::memo::{Memoizer, Pending};
    #[pymodule_export]
    use crate::monitor::Monitor;
    #[pymodule_export]
    use crate::records::{entry_of_columns, entry_of_record};
    #[pymodule_export]
    use crate::replay::Replay;
    #[pymodule_export]
    use crate::stack::check_stack;
    #[pymodule_export]
    use crate::store::flight::{after_fork_in_child, SingleFlight};
    #[pymodule_export]
    use crate::store::MemoryStore;
    #[pymodule_export]
    use crate::vectorcall::install_vectorcall;

    use pyo3::prelude::*;

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add("__version__", env!("CARGO_PKG_VERSION"))?;
        m.add("KEY_SCHEME_VERSION", crate::key::digest::KEY_SCHEME_VERSION)?;
        m.add("MAX_DEPTH", crate::key::encode::MAX_DEPTH)?;
        m.add("DEFAULT_WAIT_TIMEOUT", crate::store::flight::DEFAULT_WAIT.as_secs_f64())?;
        crate::replay::install(&m.py().get_type::<crate::replay::Replay>());
        // `__eq__` gives the type a rich-compare slot, for which CPython lists all six operators; entries
        // have no order, so help() and dir() must not show `<`/`>` methods that only raise.
        let entry = m.py().get_type::<crate::entry::CacheEntry>();
        for op in ["__lt__", "__le__", "__gt__", "__ge__"] {
            entry.delattr(op)?;
        }
        Ok(())
    }
}
