use ndarray::{Array2, ArrayView2};

use crate::{Error, Result};

/// Patch features of a batch of images: one row per feature-grid cell.
///
/// Rows are ordered image by image, each image's grid row-major: row `b*H*W + y*W + x`.
/// `features` has shape `[batch * grid_h * grid_w, dim]`.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchFeatures {
    /// `[batch * grid_h * grid_w, dim]` feature rows.
    pub features: Array2<f32>,
    /// Number of images.
    pub batch: usize,
    /// Grid height (cells).
    pub grid_h: usize,
    /// Grid width (cells).
    pub grid_w: usize,
}

impl PatchFeatures {
    /// Checks that the row count matches `batch * grid_h * grid_w`.
    pub fn new(features: Array2<f32>, batch: usize, grid_h: usize, grid_w: usize) -> Result<Self> {
        if features.nrows() != batch * grid_h * grid_w {
            return Err(Error::Shape(format!(
                "{} feature rows for {batch} images of {grid_h}x{grid_w} cells",
                features.nrows()
            )));
        }
        Ok(Self {
            features,
            batch,
            grid_h,
            grid_w,
        })
    }

    /// Feature width.
    pub fn dim(&self) -> usize {
        self.features.ncols()
    }

    /// Cells per image.
    pub fn patches_per_image(&self) -> usize {
        self.grid_h * self.grid_w
    }

    /// The rows of image `b`.
    pub fn image(&self, b: usize) -> ArrayView2<'_, f32> {
        let n = self.patches_per_image();
        self.features.slice(ndarray::s![b * n..(b + 1) * n, ..])
    }

    /// Fails if any value is NaN or infinite.
    pub fn check_finite(&self, what: &str) -> Result<()> {
        if let Some(pos) = self.features.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFinite(format!(
                "{what}: value at flat index {pos} is {}",
                self.features.iter().nth(pos).copied().unwrap_or(f32::NAN)
            )));
        }
        Ok(())
    }
}
