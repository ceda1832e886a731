//! Anomaly scoring (PatchCore §3.3).
//!
//! The contract is [`Scorer`]; [`PatchCoreScorer`] implements the paper:
//! * patch score = Euclidean distance of the patch feature to its nearest memory-bank row;
//! * image score = the largest patch score `s*`, re-weighted by eq. 7:
//!   `s = (1 - exp(||m_test - m*||) / sum_{m in N_k(m*)} exp(||m_test - m||)) * s*`, where
//!   `m*` is the bank row nearest to the worst patch `m_test` and `N_k(m*)` its `k` nearest
//!   bank rows (`m*` itself first), as anomalib computes it; `k = 1` gives plain `s*`;
//! * anomaly map = the patch-score grid resized bilinearly (`align_corners = false`) to the
//!   input size, then smoothed by a Gaussian of `sigma` (kernel `2*floor(4 sigma + 0.5) + 1`,
//!   reflect padding).

#![warn(missing_docs)]

mod map;

pub use map::{gaussian_blur, gaussian_kernel, resize_bilinear, resize_nearest};

use ndarray::{Array2, ArrayView2};
use patchcore_core::{Error, PatchFeatures, Result};
use patchcore_nn::NearestNeighborIndex;
use rayon::prelude::*;

/// Scores of one image.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageScore {
    /// Image-level anomaly score.
    pub score: f32,
    /// `[grid_h, grid_w]` patch scores (distance to the nearest bank row).
    pub patch_scores: Array2<f32>,
}

/// Turns patch features into image scores and anomaly maps.
///
/// Contract:
/// * `features` rows have the width of the index; each image's rows form its grid in
///   [`PatchFeatures`] order;
/// * one [`ImageScore`] per image, in batch order; scores are finite and `>= 0`;
/// * [`Scorer::anomaly_map`] returns an `[height, width]` map for a patch grid.
pub trait Scorer: Send + Sync {
    /// A short name (`patchcore` for [`PatchCoreScorer`]). A model file records only the
    /// scorer its config describes; a model with any other scorer cannot be saved.
    fn name(&self) -> &str;
    /// Scores every image of a batch.
    fn score(
        &self,
        features: &PatchFeatures,
        index: &dyn NearestNeighborIndex,
    ) -> Result<Vec<ImageScore>>;
    /// The pixel anomaly map of one image at `height x width`.
    fn anomaly_map(
        &self,
        patch_scores: ArrayView2<'_, f32>,
        height: usize,
        width: usize,
    ) -> Array2<f32>;
    /// The first half of [`Scorer::anomaly_map`] for tiled images: one tile's patch grid at
    /// `height x width`, before the smoothing that [`Scorer::smooth`] applies once to the
    /// stitched map. The default is the whole `anomaly_map` (each tile smoothed on its own,
    /// `smooth` then the identity); [`PatchCoreScorer`] splits the two.
    fn upsample(
        &self,
        patch_scores: ArrayView2<'_, f32>,
        height: usize,
        width: usize,
    ) -> Array2<f32> {
        self.anomaly_map(patch_scores, height, width)
    }
    /// The second half of [`Scorer::anomaly_map`]: the smoothing of a (stitched) map.
    fn smooth(&self, map: Array2<f32>) -> Array2<f32> {
        map
    }
}

/// How the patch-score grid is brought to the image size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Upsample {
    /// Bilinear, `align_corners = false` (anomalib, the official code).
    #[default]
    Bilinear,
    /// Nearest neighbour (PyTorch `nearest`: source `floor(dst * in / out)`).
    Nearest,
}

/// The `[scorer]` config section (every key has a default): unchecked; [`ScorerParams::check`]
/// returns the [`PatchCoreScorer`].
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct ScorerParams {
    /// Neighbourhood size `k` of eq. 7 (`1` = plain max; anomalib's default is 9).
    #[cfg_attr(feature = "serde", serde(default = "d_k"))]
    pub num_neighbors: usize,
    /// Gaussian smoothing of the anomaly map, in pixels (the paper: 4). `0` disables it.
    #[cfg_attr(feature = "serde", serde(default = "d_sigma"))]
    pub sigma: f32,
    /// Upsampling of the patch grid to the image: "bilinear" (default) or "nearest".
    #[cfg_attr(feature = "serde", serde(default))]
    pub upsample: Upsample,
}
fn d_k() -> usize {
    9
}
fn d_sigma() -> f32 {
    4.0
}

impl Default for ScorerParams {
    fn default() -> Self {
        Self {
            num_neighbors: d_k(),
            sigma: d_sigma(),
            upsample: Upsample::Bilinear,
        }
    }
}

impl ScorerParams {
    /// Range checks; errors name the `scorer.*` key.
    pub fn validate(&self) -> Result<()> {
        self.check().map(|_| ())
    }

    /// The scorer these keys describe; errors name the `scorer.*` key.
    pub fn check(&self) -> Result<PatchCoreScorer> {
        if self.num_neighbors == 0 {
            return Err(Error::config("scorer.num_neighbors", "must be at least 1"));
        }
        if !(self.sigma >= 0.0 && self.sigma.is_finite()) {
            return Err(Error::config(
                "scorer.sigma",
                format!("must be >= 0, got {}", self.sigma),
            ));
        }
        Ok(PatchCoreScorer {
            num_neighbors: self.num_neighbors,
            sigma: self.sigma,
            upsample: self.upsample,
        })
    }
}

/// PatchCore's scorer (eq. 7 and the smoothed anomaly map), built by [`ScorerParams::check`]
/// or [`PatchCoreScorer::new`]; the default is the paper's (`k = 9`, `sigma = 4`, bilinear).
#[derive(Debug, Clone, PartialEq)]
pub struct PatchCoreScorer {
    num_neighbors: usize,
    sigma: f32,
    upsample: Upsample,
}

impl Default for PatchCoreScorer {
    fn default() -> Self {
        ScorerParams::default().check().expect("valid defaults")
    }
}

impl PatchCoreScorer {
    /// Checked constructor (bilinear upsampling).
    pub fn new(num_neighbors: usize, sigma: f32) -> Result<Self> {
        ScorerParams {
            num_neighbors,
            sigma,
            upsample: Upsample::Bilinear,
        }
        .check()
    }

    /// Neighbourhood size `k` of eq. 7.
    pub fn num_neighbors(&self) -> usize {
        self.num_neighbors
    }

    /// Gaussian sigma of the anomaly map (0 = none).
    pub fn sigma(&self) -> f32 {
        self.sigma
    }

    /// Upsampling of the patch grid.
    pub fn upsample(&self) -> Upsample {
        self.upsample
    }

    /// The same scorer with another upsampling.
    pub fn with_upsample(self, upsample: Upsample) -> Self {
        Self { upsample, ..self }
    }

    /// Eq. 7 for one image given its worst patch.
    fn reweight(
        &self,
        patch: ndarray::ArrayView1<'_, f32>,
        s_star: f32,
        nearest: usize,
        index: &dyn NearestNeighborIndex,
    ) -> Result<f32> {
        if self.num_neighbors == 1 {
            return Ok(s_star);
        }
        let m_star = index.row(nearest).to_owned().insert_axis(ndarray::Axis(0));
        let support = index.search(m_star.view(), self.num_neighbors)?;
        let dists: Vec<f32> = support
            .indices
            .row(0)
            .iter()
            .map(|&j| {
                index
                    .row(j)
                    .iter()
                    .zip(patch.iter())
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum::<f32>()
                    .sqrt()
            })
            .collect();
        // Stable softmax of the distances; weight = 1 - softmax[0].
        let max = dists.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let denom: f32 = dists.iter().map(|d| (d - max).exp()).sum();
        let w = 1.0 - (dists[0] - max).exp() / denom;
        Ok(w * s_star)
    }
}

impl Scorer for PatchCoreScorer {
    fn name(&self) -> &str {
        "patchcore"
    }

    fn score(
        &self,
        features: &PatchFeatures,
        index: &dyn NearestNeighborIndex,
    ) -> Result<Vec<ImageScore>> {
        let nn = index.search(features.features.view(), 1)?;
        let per = features.patches_per_image();
        (0..features.batch)
            .into_par_iter()
            .map(|b| {
                let d = nn.distances.slice(ndarray::s![b * per..(b + 1) * per, 0]);
                let (arg, s_star) =
                    d.iter()
                        .enumerate()
                        .fold((0usize, f32::NEG_INFINITY), |acc, (i, &v)| {
                            if v > acc.1 { (i, v) } else { acc }
                        });
                let nearest = nn.indices[[b * per + arg, 0]];
                let score =
                    self.reweight(features.features.row(b * per + arg), s_star, nearest, index)?;
                let patch_scores = d
                    .to_owned()
                    .into_shape_with_order((features.grid_h, features.grid_w))
                    .map_err(|e| Error::Shape(e.to_string()))?;
                Ok(ImageScore {
                    score,
                    patch_scores,
                })
            })
            .collect()
    }

    fn anomaly_map(
        &self,
        patch_scores: ArrayView2<'_, f32>,
        height: usize,
        width: usize,
    ) -> Array2<f32> {
        Scorer::smooth(self, Scorer::upsample(self, patch_scores, height, width))
    }

    fn upsample(
        &self,
        patch_scores: ArrayView2<'_, f32>,
        height: usize,
        width: usize,
    ) -> Array2<f32> {
        match self.upsample {
            Upsample::Bilinear => resize_bilinear(patch_scores, height, width),
            Upsample::Nearest => resize_nearest(patch_scores, height, width),
        }
    }

    fn smooth(&self, map: Array2<f32>) -> Array2<f32> {
        if self.sigma > 0.0 {
            gaussian_blur(map.view(), self.sigma)
        } else {
            map
        }
    }
}
