use ndarray::{Array2, ArrayView2};
use patchcore_core::{Error, NoProgress, Progress, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{SampleSize, Sampler};

/// Squared Euclidean distance, computed from differences (not `|a|^2 + |b|^2 - 2ab`, whose
/// cancellation can flip near-tied greedy picks), with 8 independent accumulators so it
/// vectorises.
#[inline]
fn sq_dist(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for i in 0..8 {
            let d = x[i] - y[i];
            acc[i] += d * d;
        }
    }
    let mut s: f32 = 0.0;
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        let d = x - y;
        s += d * d;
    }
    s + acc.iter().sum::<f32>()
}

/// The result of a greedy k-center run.
#[derive(Debug, Clone, PartialEq)]
pub struct GreedyRun {
    /// Selected row indices in selection order (the first is the start).
    pub indices: Vec<usize>,
    /// The max-min distance at the moment each index was picked (0 for the start).
    pub picked_distance: Vec<f32>,
    /// Covering radius of the selection: max over rows of the distance to the nearest centre.
    pub radius: f32,
}

/// Greedy k-center (minimax facility location) on `points` `[n, d]`.
///
/// Starts from `start`, then repeatedly picks the row farthest from the current selection
/// (the lowest index on ties), updating every row's distance to its nearest centre. Exact:
/// `O(n * k * d)` distance work, parallel over rows.
pub fn greedy_k_center(
    points: ArrayView2<'_, f32>,
    k: usize,
    start: usize,
    progress: &dyn Progress,
) -> Result<GreedyRun> {
    let n = points.nrows();
    if n == 0 {
        return Err(Error::InvalidArgument(
            "greedy k-center on an empty set".into(),
        ));
    }
    if start >= n {
        return Err(Error::InvalidArgument(format!(
            "start index {start} >= {n} rows"
        )));
    }
    let k = k.clamp(1, n);
    let points = points.as_standard_layout();
    let d = points.ncols();
    let data = points.as_slice().expect("standard layout");
    let mut min_d = vec![f32::INFINITY; n];
    let mut indices = Vec::with_capacity(k);
    let mut picked = Vec::with_capacity(k);
    let mut current = start;
    let mut current_dist = 0f32;
    progress.start(k as u64, "coreset selection");
    const CHUNK: usize = 4096;
    loop {
        indices.push(current);
        picked.push(current_dist.sqrt());
        progress.advance(1);
        let centre = &data[current * d..(current + 1) * d];
        // Update the nearest-centre distances and find the farthest row in one pass.
        let (best, best_i) = min_d
            .par_chunks_mut(CHUNK)
            .enumerate()
            .map(|(c, chunk)| {
                let mut best = f32::NEG_INFINITY;
                let mut best_i = usize::MAX;
                for (j, m) in chunk.iter_mut().enumerate() {
                    let i = c * CHUNK + j;
                    let dist = sq_dist(&data[i * d..(i + 1) * d], centre);
                    if dist < *m {
                        *m = dist;
                    }
                    if *m > best {
                        best = *m;
                        best_i = i;
                    }
                }
                (best, best_i)
            })
            .reduce(
                || (f32::NEG_INFINITY, usize::MAX),
                |a, b| {
                    if b.0 > a.0 || (b.0 == a.0 && b.1 < a.1) {
                        b
                    } else {
                        a
                    }
                },
            );
        if indices.len() == k {
            progress.finish();
            return Ok(GreedyRun {
                indices,
                picked_distance: picked,
                radius: best.max(0.0).sqrt(),
            });
        }
        current = best_i;
        current_dist = best;
    }
}

/// Covering radius of `selected` over `points`: `max_i min_{c in selected} ||p_i - p_c||`.
pub fn covering_radius(points: ArrayView2<'_, f32>, selected: &[usize]) -> f32 {
    let points = points.as_standard_layout();
    let d = points.ncols();
    let data = points.as_slice().expect("standard layout");
    (0..points.nrows())
        .into_par_iter()
        .map(|i| {
            selected
                .iter()
                .map(|&c| sq_dist(&data[i * d..(i + 1) * d], &data[c * d..(c + 1) * d]))
                .fold(f32::INFINITY, f32::min)
        })
        .reduce(|| 0.0, f32::max)
        .sqrt()
}

/// A dense Gaussian random projection `[d_in, d_out]` with entries `N(0, 1/d_out)`
/// (Johnson-Lindenstrauss), from a ChaCha8 stream seeded with `seed`.
pub fn gaussian_projection(d_in: usize, d_out: usize, seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let scale = 1.0 / (d_out as f32).sqrt();
    Array2::from_shape_fn((d_in, d_out), |_| {
        let v: f32 = rng.sample(StandardNormal);
        v * scale
    })
}

/// Greedy k-center coreset, as PatchCore's memory-bank reduction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GreedyCoreset {
    /// How many rows to keep.
    pub size: SampleSize,
    /// Dimension of the random projection the distances are computed on; `None` computes
    /// them on the raw features. Ignored (no projection) when it is not below the feature
    /// width.
    pub projection_dim: Option<usize>,
    /// Seed of the projection and of the start row.
    pub seed: u64,
    /// Fixed start row; `None` draws it from the seed.
    pub start: Option<usize>,
}

impl GreedyCoreset {
    /// The points greedy runs on: the projection of `features`, or `features` itself.
    pub fn project(&self, features: ArrayView2<'_, f32>) -> Array2<f32> {
        match self.projection_dim {
            Some(p) if p < features.ncols() => {
                let proj = gaussian_projection(features.ncols(), p, self.seed);
                features.dot(&proj)
            }
            _ => features.to_owned(),
        }
    }

    /// Runs the selection and returns the whole run (indices, picked distances, radius in
    /// the projected space).
    pub fn run(&self, features: ArrayView2<'_, f32>, progress: &dyn Progress) -> Result<GreedyRun> {
        let n = features.nrows();
        if n == 0 {
            return Err(Error::InvalidArgument(
                "cannot subsample an empty memory bank".into(),
            ));
        }
        let k = self.size.resolve(n);
        let start = match self.start {
            Some(s) => s,
            None => ChaCha8Rng::seed_from_u64(self.seed ^ 0x5eed_5eed).random_range(0..n),
        };
        let points = self.project(features);
        greedy_k_center(points.view(), k, start, progress)
    }
}

impl Sampler for GreedyCoreset {
    fn name(&self) -> &str {
        "greedy_coreset"
    }

    fn select(&self, features: ArrayView2<'_, f32>, progress: &dyn Progress) -> Result<Vec<usize>> {
        Ok(self.run(features, progress)?.indices)
    }
}

impl Default for GreedyCoreset {
    fn default() -> Self {
        Self {
            size: SampleSize::Ratio(0.01),
            projection_dim: Some(128),
            seed: 0,
            start: None,
        }
    }
}

#[allow(dead_code)]
fn _assert_object_safe(_: &dyn Sampler, _: NoProgress) {}
