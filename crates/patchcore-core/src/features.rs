use ndarray::{Array2, ArrayView2};

use crate::error::{Error, Result};

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

    /// Stacks the images of several batches, in order; all must share grid and width.
    pub fn concat(parts: &[PatchFeatures]) -> Result<Self> {
        let first = parts
            .first()
            .ok_or_else(|| Error::InvalidArgument("no patch features to concatenate".into()))?;
        if let Some(p) = parts
            .iter()
            .find(|p| (p.grid_h, p.grid_w, p.dim()) != (first.grid_h, first.grid_w, first.dim()))
        {
            return Err(Error::Shape(format!(
                "cannot stack patch features of {}x{} cells x {} with {}x{} cells x {}",
                first.grid_h,
                first.grid_w,
                first.dim(),
                p.grid_h,
                p.grid_w,
                p.dim()
            )));
        }
        let views: Vec<ArrayView2<'_, f32>> = parts.iter().map(|p| p.features.view()).collect();
        let features = ndarray::concatenate(ndarray::Axis(0), &views)
            .map_err(|e| Error::Shape(e.to_string()))?;
        Self::new(
            features,
            parts.iter().map(|p| p.batch).sum(),
            first.grid_h,
            first.grid_w,
        )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concat_keeps_image_order_and_refuses_other_grids() {
        let a = PatchFeatures::new(Array2::from_elem((4, 3), 1.0), 1, 2, 2).unwrap();
        let b = PatchFeatures::new(Array2::from_elem((8, 3), 2.0), 2, 2, 2).unwrap();
        let ab = PatchFeatures::concat(&[a.clone(), b.clone()]).unwrap();
        assert_eq!((ab.batch, ab.features.nrows()), (3, 12));
        assert!(ab.image(0).iter().all(|&v| v == 1.0));
        assert!(ab.image(2).iter().all(|&v| v == 2.0));
        let c = PatchFeatures::new(Array2::zeros((9, 3)), 1, 3, 3).unwrap();
        assert!(PatchFeatures::concat(&[a, c]).is_err());
        assert!(PatchFeatures::concat(&[]).is_err());
    }
}
