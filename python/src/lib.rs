//! `courierkit._courier`: the native half of the Python package.
//!
//! This crate only converts types, maps errors and drives core futures: sync methods
//! block with the GIL released ([`wait::block`]), `*_async` methods return awaitables
//! ([`wait::awaitable`]). Methods take core's arguments: the positional ones as they are,
//! an options struct as one dict (`*Arg` types, `None` for core's default). The public
//! API (keyword arguments, `json=`, context managers, iterators) is the Python layer in
//! `courierkit/`.

use pyo3::prelude::*;

mod asyncio_bridge;
mod bus;
mod client;
mod error;
mod telemetry;
mod trace;
mod wait;

#[pymodule]
fn _courier(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<client::Client>()?;
    m.add_class::<client::Response>()?;
    m.add_class::<bus::Bus>()?;
    m.add_class::<bus::Consumer>()?;
    m.add_class::<bus::Delivery>()?;
    m.add_class::<bus::Batch>()?;
    m.add_class::<trace::TraceContext>()?;
    m.add_function(wrap_pyfunction!(client::deadline_from_headers, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(wait::_quiesce, m)?)?;
    m.add_function(wrap_pyfunction!(wait::_panic_for_tests, m)?)?;
    m.add_function(wrap_pyfunction!(telemetry::_install_telemetry, m)?)?;
    m.add_function(wrap_pyfunction!(telemetry::set_log_level, m)?)?;
    m.add_function(wrap_pyfunction!(telemetry::log_level, m)?)?;
    m.add_function(wrap_pyfunction!(telemetry::configure_telemetry, m)?)?;
    m.add_function(wrap_pyfunction!(telemetry::flush_telemetry, m)?)?;
    m.add_function(wrap_pyfunction!(telemetry::metrics_text, m)?)?;
    Ok(())
}
