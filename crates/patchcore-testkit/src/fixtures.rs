//! Reading reference tensors (`<shared>/fixtures/*.safetensors`) for parity tests.
//!
//! A missing fixture is an error, never a silent skip: CI has the shared folder, and a test
//! that expects it must fail loudly when it is absent.

use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};

use patchcore_core::{Error, Result};

/// A safetensors file held in memory.
pub struct Fixture {
    path: PathBuf,
    bytes: Vec<u8>,
}

/// Tensor values with their shape.
#[derive(Debug, Clone)]
pub struct Array<T> {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// Values in row-major order.
    pub values: Vec<T>,
}

impl Fixture {
    /// Opens `<shared_dir>/fixtures/<name>`.
    pub fn open(name: &str) -> Result<Self> {
        Self::open_path(&crate::shared_dir().join("fixtures").join(name))
    }

    /// Opens a safetensors file by path.
    pub fn open_path(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| {
            Error::io(
                path,
                std::io::Error::new(
                    e.kind(),
                    format!(
                        "{e}: reference fixture missing (set {} to the folder holding \
                         fixtures/ and datasets/)",
                        crate::SHARED_DIR_ENV
                    ),
                ),
            )
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            bytes,
        })
    }

    fn view(&self, name: &str, dtype: Dtype) -> Result<(Vec<usize>, Vec<u8>)> {
        let st = SafeTensors::deserialize(&self.bytes).map_err(|e| Error::Dataset {
            path: self.path.clone(),
            message: format!("not a safetensors file: {e}"),
        })?;
        let t = st.tensor(name).map_err(|e| Error::Dataset {
            path: self.path.clone(),
            message: format!("tensor `{name}`: {e}"),
        })?;
        if t.dtype() != dtype {
            return Err(Error::Dataset {
                path: self.path.clone(),
                message: format!("tensor `{name}` is {:?}, expected {dtype:?}", t.dtype()),
            });
        }
        Ok((t.shape().to_vec(), t.data().to_vec()))
    }

    /// Names of all tensors.
    pub fn names(&self) -> Result<Vec<String>> {
        let st = SafeTensors::deserialize(&self.bytes).map_err(|e| Error::Dataset {
            path: self.path.clone(),
            message: format!("not a safetensors file: {e}"),
        })?;
        Ok(st.names().into_iter().map(|s| s.to_string()).collect())
    }

    /// Tensor `name` as float32 (an error for another dtype).
    pub fn f32(&self, name: &str) -> Result<Array<f32>> {
        let (shape, b) = self.view(name, Dtype::F32)?;
        let values = b
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        Ok(Array { shape, values })
    }

    /// Tensor `name` as float64.
    pub fn f64(&self, name: &str) -> Result<Array<f64>> {
        let (shape, b) = self.view(name, Dtype::F64)?;
        let values = b
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        Ok(Array { shape, values })
    }

    /// Tensor `name` as int64.
    pub fn i64(&self, name: &str) -> Result<Array<i64>> {
        let (shape, b) = self.view(name, Dtype::I64)?;
        let values = b
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        Ok(Array { shape, values })
    }

    /// Tensor `name` as int32.
    pub fn i32(&self, name: &str) -> Result<Array<i32>> {
        let (shape, b) = self.view(name, Dtype::I32)?;
        let values = b
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        Ok(Array { shape, values })
    }

    /// Tensor `name` as uint8.
    pub fn u8(&self, name: &str) -> Result<Array<u8>> {
        let (shape, values) = self.view(name, Dtype::U8)?;
        Ok(Array { shape, values })
    }
}

/// Relative L2 error `||a-b|| / ||b||` and `max|a-b| / max|b|`.
pub fn rel_errors(a: &[f32], b: &[f32]) -> (f64, f64) {
    assert_eq!(a.len(), b.len(), "length mismatch");
    let (mut num, mut den, mut maxd, mut maxb) = (0f64, 0f64, 0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        let d = (*x as f64 - *y as f64).abs();
        num += d * d;
        den += (*y as f64) * (*y as f64);
        maxd = maxd.max(d);
        maxb = maxb.max((*y as f64).abs());
    }
    ((num / den.max(1e-30)).sqrt(), maxd / maxb.max(1e-30))
}
