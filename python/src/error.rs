//! Core errors to the exception classes defined in `courierkit/_errors.py`.
//!
//! The classes live in Python so they can subclass stdlib bases (`ValueError`,
//! `TimeoutError`, `ConnectionError`) and be documented and pickled like any other
//! Python exception; Rust only picks the class by the error's stable kind code and
//! attaches the fields of core's table (`Error::details`).

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyDict;

static BY_KIND: PyOnceLock<Py<PyDict>> = PyOnceLock::new();

/// Converts a core error into the matching `courier` exception.
pub(crate) fn to_py(err: courierkit::Error) -> PyErr {
    Python::attach(|py| build(py, &err).unwrap_or_else(|e| e))
}

fn build(py: Python<'_>, err: &courierkit::Error) -> PyResult<PyErr> {
    let table = BY_KIND.get_or_try_init(py, || -> PyResult<Py<PyDict>> {
        Ok(py
            .import("courierkit._errors")?
            .getattr("BY_KIND")?
            .cast_into::<PyDict>()?
            .unbind())
    })?;
    let code = err.kind().code();
    let Some(class) = table.bind(py).get_item(code)? else {
        return Ok(PyRuntimeError::new_err(format!(
            "courier: no exception class for kind {code:?}: {err}"
        )));
    };
    let exc = class.call1((err.to_string(),))?;
    // Every field of core's table, under its own name: the same fields in every language.
    for (name, detail) in err.details() {
        match detail {
            courierkit::Detail::Text(text) => exc.setattr(name, text)?,
            courierkit::Detail::Count(count) => exc.setattr(name, count)?,
        }
    }
    if let Some(last) = err.cause() {
        // The failure the budget would not retry, as the exception's cause.
        let cause = build(py, last)?.into_value(py);
        exc.setattr("last", &cause)?;
        exc.setattr("__cause__", cause)?;
    }
    Ok(PyErr::from_value(exc))
}

/// `map_err(to_py)` with less noise.
pub(crate) trait IntoPyResult<T> {
    fn py(self) -> PyResult<T>;
}

impl<T> IntoPyResult<T> for courierkit::Result<T> {
    fn py(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}
