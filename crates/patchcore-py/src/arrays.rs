//! Arrays across the boundary. The numpy crate speaks ndarray 0.17 and the workspace 0.16:
//! inputs are viewed without a copy when C- or Fortran-contiguous (copied otherwise), outputs
//! hand their buffer to numpy.

use ndarray::{ArrayD, CowArray, IxDyn, ShapeBuilder};
use numpy::{Element, IntoPyArray, PyArrayDyn, PyReadonlyArrayDyn};
use patchcore_core::Error;
use pyo3::prelude::*;

use crate::to_py;

/// A workspace-ndarray view of a numpy array (any rank), without a copy when contiguous.
pub(crate) fn view<'a, T: Element + Copy>(
    a: &'a PyReadonlyArrayDyn<'_, T>,
) -> CowArray<'a, T, IxDyn> {
    let shape: Vec<usize> = a.as_array().shape().to_vec();
    // numpy's `as_slice` also accepts Fortran-contiguous arrays: check C order first.
    if a.as_array().is_standard_layout()
        && let Ok(s) = a.as_slice()
    {
        let v = ndarray::ArrayView::from_shape(IxDyn(&shape), s).expect("C-contiguous slice");
        return CowArray::from(v);
    }
    let v = a.as_array();
    if v.t().is_standard_layout()
        && let Some(s) = v.to_slice_memory_order()
    {
        let f =
            ndarray::ArrayView::from_shape(IxDyn(&shape).f(), s).expect("Fortran-contiguous slice");
        return CowArray::from(f);
    }
    let v = a.as_array();
    let data: Vec<T> = v.iter().copied().collect();
    CowArray::from(ArrayD::from_shape_vec(IxDyn(&shape), data).expect("shape of the copy"))
}

/// Hands an array to numpy (its buffer moves when in standard layout).
pub(crate) fn out<'py, T: Element + Copy>(
    py: Python<'py>,
    a: ArrayD<T>,
) -> Bound<'py, PyArrayDyn<T>> {
    let shape = a.shape().to_vec();
    let data: Vec<T> = if a.is_standard_layout() {
        a.into_raw_vec_and_offset().0
    } else {
        a.iter().copied().collect()
    };
    numpy::ndarray::ArrayD::from_shape_vec(numpy::ndarray::IxDyn(&shape), data)
        .expect("standard-layout buffer")
        .into_pyarray(py)
}

/// Refuses empty arrays and non-finite values, naming the argument.
pub(crate) fn check(v: &ndarray::ArrayViewD<'_, f32>, what: &str) -> PyResult<()> {
    if v.is_empty() {
        return Err(to_py(Error::InvalidArgument(format!(
            "{what} is empty (shape {:?})",
            v.shape()
        ))));
    }
    if let Some(pos) = v.iter().position(|x| !x.is_finite()) {
        return Err(to_py(Error::NonFinite(format!(
            "{what}: element {pos} (in logical order) is not finite"
        ))));
    }
    Ok(())
}
