//! Exposes PyO3's interpreter cfgs (`Py_3_11`, ...) to this crate: a few CPython functions exist only
//! from some version on (rust/shutdown.rs).
fn main() {
    pyo3_build_config::use_pyo3_cfgs();
}
