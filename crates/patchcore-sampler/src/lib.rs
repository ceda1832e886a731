//! Memory-bank subsampling (PatchCore §3.2).
//!
//! The contract is [`Sampler`]. Implementations:
//! * [`GreedyCoreset`]: greedy k-center / minimax facility location (Sener & Savarese 2018),
//!   on a seeded Gaussian random projection of the features (Johnson-Lindenstrauss; default
//!   128 dimensions) or on the raw features;
//!   plain ([`greedy_k_center`]), pruned by the triangle inequality with identical selections
//!   ([`greedy_k_center_pruned`], the default), partitioned into blocks of nearby rows for
//!   large banks ([`greedy_k_center_partitioned`]: not the exact selection, linear cost at a
//!   fixed ratio; chosen in the config) or the official approximate variant
//!   ([`approximate_greedy_k_center`]); distances on a [`Projection`] (dense Gaussian, sparse
//!   Achlioptas/Li, or none; width fixed or from the Johnson-Lindenstrauss bound);
//! * [`RandomSampler`]: a seeded uniform subset without replacement;
//! * [`IdentitySampler`]: keeps every row (the full memory bank, PatchCore-100%).
//!
//! Free functions expose the pieces: [`greedy_k_center`] on already-projected points,
//! [`gaussian_projection`], and [`covering_radius`] (the quantity greedy k-center minimises
//! up to a factor 2).

#![warn(missing_docs)]

mod greedy;
mod params;
mod projection;

pub use greedy::{
    GreedyCoreset, GreedyRun, GreedyVariant, approximate_greedy_k_center, covering_radius,
    greedy_k_center, greedy_k_center_partitioned, greedy_k_center_pruned,
};
pub use params::{
    ApproximateGreedyParams, GreedyAlgorithm, GreedyParams, ProjectionKind, SamplerParams,
    SizeParams,
};
pub use projection::{ProjDim, Projection, gaussian_projection, jl_min_dim, sparse_projection};

use ndarray::ArrayView2;
use patchcore_core::{Error, Progress, Result};
use rand::SeedableRng;
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;

/// How many rows to keep.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum SampleSize {
    /// A fraction of the rows in `(0, 1]`; the count is `ceil(ratio * n)`, at least 1.
    Ratio(f64),
    /// An absolute count, capped at the number of rows.
    Count(usize),
}

impl SampleSize {
    /// Checked constructor for a ratio.
    pub fn ratio(r: f64) -> Result<Self> {
        if !(r > 0.0 && r <= 1.0) {
            return Err(Error::config(
                "sampler.ratio",
                format!("must be in (0, 1], got {r}"),
            ));
        }
        Ok(SampleSize::Ratio(r))
    }

    /// Checked constructor for a count.
    pub fn count(k: usize) -> Result<Self> {
        if k == 0 {
            return Err(Error::config("sampler.count", "must be at least 1"));
        }
        Ok(SampleSize::Count(k))
    }

    /// The number of rows to keep out of `n` (`1..=n` for `n > 0`).
    pub fn resolve(self, n: usize) -> usize {
        let k = match self {
            SampleSize::Ratio(r) => (r * n as f64).ceil() as usize,
            SampleSize::Count(k) => k,
        };
        k.clamp(1, n.max(1)).min(n)
    }
}

/// Chooses the rows of the memory bank to keep.
///
/// Contract:
/// * input: `[n, d]` finite features, `n >= 1`;
/// * output: distinct row indices `< n`, in selection order; [`Sampler::select`] keeps
///   [`Sampler::size`] resolved against `n`, [`Sampler::select_count`] exactly
///   `count.clamp(1, n)` rows with the same algorithm and seed (merge-and-reduce fitting keeps
///   a share of each chunk that way, with the sampler it was given);
/// * deterministic: the same input and configuration (seed included) give the same output;
/// * errors on empty input.
pub trait Sampler: Send + Sync {
    /// Short name for reports and model files, e.g. `greedy_coreset`.
    fn name(&self) -> &str;
    /// How many rows [`Sampler::select`] keeps.
    fn size(&self) -> SampleSize;
    /// Selects `count.clamp(1, n)` rows, reporting progress (one step per selected row).
    fn select_count(
        &self,
        features: ArrayView2<'_, f32>,
        count: usize,
        progress: &dyn Progress,
    ) -> Result<Vec<usize>>;
    /// Selects [`Sampler::size`] rows.
    fn select(&self, features: ArrayView2<'_, f32>, progress: &dyn Progress) -> Result<Vec<usize>> {
        let count = self.size().resolve(features.nrows());
        self.select_count(features, count, progress)
    }
}

fn check_not_empty(features: &ArrayView2<'_, f32>) -> Result<usize> {
    match features.nrows() {
        0 => Err(Error::InvalidArgument(
            "cannot sample from an empty memory bank".into(),
        )),
        n => Ok(n),
    }
}

/// Seeded uniform sampling without replacement.
#[derive(Debug, Clone, PartialEq)]
pub struct RandomSampler {
    size: SampleSize,
    seed: u64,
}

impl RandomSampler {
    /// Keeps `size` rows drawn from `seed`.
    pub fn new(size: SampleSize, seed: u64) -> Self {
        Self { size, seed }
    }

    /// The seed of the subset.
    pub fn seed(&self) -> u64 {
        self.seed
    }
}

impl Sampler for RandomSampler {
    fn name(&self) -> &str {
        "random"
    }

    fn size(&self) -> SampleSize {
        self.size
    }

    fn select_count(
        &self,
        features: ArrayView2<'_, f32>,
        count: usize,
        progress: &dyn Progress,
    ) -> Result<Vec<usize>> {
        let n = check_not_empty(&features)?;
        let k = count.clamp(1, n);
        progress.start(k as u64, "random sampling");
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let idx = sample(&mut rng, n, k).into_vec();
        progress.advance(k as u64);
        progress.finish();
        Ok(idx)
    }
}

/// Keeps every row (no subsampling): its size is the whole bank, and
/// [`Sampler::select_count`] keeps the first `count` rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct IdentitySampler;

impl Sampler for IdentitySampler {
    fn name(&self) -> &str {
        "identity"
    }

    fn size(&self) -> SampleSize {
        SampleSize::Ratio(1.0)
    }

    fn select_count(
        &self,
        features: ArrayView2<'_, f32>,
        count: usize,
        _progress: &dyn Progress,
    ) -> Result<Vec<usize>> {
        let n = check_not_empty(&features)?;
        Ok((0..count.clamp(1, n)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_size_resolution() {
        assert_eq!(SampleSize::Ratio(0.01).resolve(1000), 10);
        assert_eq!(SampleSize::Ratio(0.011).resolve(1000), 11);
        assert_eq!(SampleSize::Ratio(1e-9).resolve(1000), 1);
        assert_eq!(SampleSize::Count(5000).resolve(1000), 1000);
        assert!(SampleSize::ratio(0.0).is_err());
        assert!(SampleSize::ratio(1.5).is_err());
        assert!(SampleSize::count(0).is_err());
    }
}
