//! Python bindings of patchcore-rs: the native module `patchcore_rs._native`, wrapped by the
//! Python package `patchcore_rs` (python/patchcore_rs).
//!
//! Arrays come in as numpy arrays of the documented dtype and rank (C- or Fortran-ordered,
//! any strides) and go out as new numpy arrays. The GIL is released during all work. A Rust
//! error becomes a `patchcore_rs.PatchcoreError` (a `ValueError`) carrying the Rust message;
//! a file error becomes an `OSError`.

// PyO3's macros (#[pymodule], #[pyclass], #[pyfunction], create_exception!) expand to the
// unsafe FFI glue of the CPython C API; this crate writes no unsafe block of its own.
#![allow(unsafe_code)]

mod arrays;
mod components;
mod model;

use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;

pyo3::create_exception!(
    _native,
    PatchcoreError,
    PyValueError,
    "An error from patchcore-rs: invalid input, configuration, data set or model file."
);

/// A Rust error as a Python exception with the same message.
pub(crate) fn to_py(e: patchcore_core::Error) -> PyErr {
    match e {
        patchcore_core::Error::Io { .. } => PyOSError::new_err(e.to_string()),
        other => PatchcoreError::new_err(other.to_string()),
    }
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("PatchcoreError", m.py().get_type::<PatchcoreError>())?;
    components::register(m)?;
    model::register(m)?;
    Ok(())
}
