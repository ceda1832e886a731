use ndarray::{Array2, ArrayView2, CowArray, Ix2};
use patchcore_core::{Error, Progress, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::projection::{ProjDim, Projection};
use crate::{SampleSize, Sampler};

mod kernels;
mod lazy;
mod partitioned;
mod pruned;

pub use partitioned::greedy_k_center_partitioned;
pub use pruned::greedy_k_center_pruned;

pub(crate) use kernels::sq_dist;

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

/// The shared greedy loop: `min_d` holds squared nearest-centre distances (already updated
/// for any initial centres), `first` is the first pick.
fn greedy_loop(
    mut min_d: Vec<f32>,
    k: usize,
    first: (usize, f32),
    progress: &dyn Progress,
    mut update: impl FnMut(&mut [f32], usize, &[usize]) -> (f32, usize),
) -> GreedyRun {
    let mut indices = Vec::with_capacity(k);
    let mut picked = Vec::with_capacity(k);
    let (mut current, mut current_dist) = first;
    progress.start(k as u64, "coreset selection");
    loop {
        indices.push(current);
        picked.push(current_dist.max(0.0).sqrt());
        progress.advance(1);
        // A selected row is never picked again, even when every row is already covered at
        // distance 0 (duplicated points).
        min_d[current] = f32::NEG_INFINITY;
        let (best, best_i) = update(&mut min_d, current, &indices);
        if indices.len() == k {
            progress.finish();
            return GreedyRun {
                indices,
                picked_distance: picked,
                radius: best.max(0.0).sqrt(),
            };
        }
        current = best_i;
        current_dist = best;
    }
}

pub(crate) const CHUNK: usize = 4096;

/// The pruning test's factor: a row is skipped when `||a(i) - c||^2 >= MARGIN * r(i)^2`, i.e.
/// `||a(i) - c|| >= 2 r(i)` with a relative margin of 1e-4 against float rounding.
pub(crate) const MARGIN: f32 = (2.0 * (1.0 + 1e-4)) * (2.0 * (1.0 + 1e-4));

/// Folds `(value, index)` pairs to the maximum, the lowest index on ties.
pub(crate) fn max_first(a: (f32, usize), b: (f32, usize)) -> (f32, usize) {
    if b.0 > a.0 || (b.0 == a.0 && b.1 < a.1) {
        b
    } else {
        a
    }
}

/// Plain update: every row's distance to the new centre.
fn plain_update(data: &[f32], d: usize, min_d: &mut [f32], centre_i: usize) -> (f32, usize) {
    let centre = &data[centre_i * d..(centre_i + 1) * d];
    min_d
        .par_chunks_mut(CHUNK)
        .enumerate()
        .map(|(c, chunk)| kernels::plain_chunk(data, d, c * CHUNK, centre, chunk))
        .reduce(|| (f32::NEG_INFINITY, usize::MAX), max_first)
}

/// Checks `points` and `start`, and returns the points in standard (row-major) layout.
pub(crate) fn standard_points<'a>(
    points: ArrayView2<'a, f32>,
    start: usize,
) -> Result<CowArray<'a, f32, Ix2>> {
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
    Ok(if points.is_standard_layout() {
        CowArray::from(points)
    } else {
        CowArray::from(points.as_standard_layout().into_owned())
    })
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
    let points = standard_points(points, start)?;
    let (n, d) = points.dim();
    let data = points.as_slice().expect("standard layout");
    Ok(greedy_loop(
        vec![f32::INFINITY; n],
        k.clamp(1, n),
        (start, 0.0),
        progress,
        |m, c, _| plain_update(data, d, m, c),
    ))
}

/// The official approximate greedy coreset (patchcore-inspection's
/// `ApproximateGreedyCoresetSampler`): every row starts with the *mean* distance to
/// `starts` random rows instead of the distance to one start; the first pick is the row with
/// the largest mean distance; the rest is exact greedy. The starts are not part of the
/// selection.
pub fn approximate_greedy_k_center(
    points: ArrayView2<'_, f32>,
    k: usize,
    starts: &[usize],
    progress: &dyn Progress,
) -> Result<GreedyRun> {
    let n = points.nrows();
    let max_start = *starts.iter().max().ok_or_else(|| {
        Error::InvalidArgument("approximate greedy needs at least one start row".into())
    })?;
    let points = standard_points(points, max_start)?;
    let d = points.ncols();
    let data = points.as_slice().expect("standard layout");
    let mut min_d = vec![0f32; n];
    let first = min_d
        .par_chunks_mut(CHUNK)
        .enumerate()
        .map(|(c, chunk)| {
            let mut best = (f32::NEG_INFINITY, usize::MAX);
            for (j, m) in chunk.iter_mut().enumerate() {
                let i = c * CHUNK + j;
                let x = &data[i * d..(i + 1) * d];
                let mean: f32 = starts
                    .iter()
                    .map(|&s| sq_dist(x, &data[s * d..(s + 1) * d]).sqrt())
                    .sum::<f32>()
                    / starts.len() as f32;
                *m = mean * mean;
                best = max_first(best, (*m, i));
            }
            best
        })
        .reduce(|| (f32::NEG_INFINITY, usize::MAX), max_first);
    Ok(greedy_loop(
        min_d,
        k.clamp(1, n),
        (first.1, first.0),
        progress,
        |m, c, _| plain_update(data, d, m, c),
    ))
}

/// Covering radius of `selected` over `points`: `max_i min_{c in selected} ||p_i - p_c||`.
pub fn covering_radius(points: ArrayView2<'_, f32>, selected: &[usize]) -> f32 {
    let points = points.as_standard_layout();
    let d = points.ncols();
    let data = points.as_slice().expect("standard layout");
    (0..points.nrows())
        .into_par_iter()
        .map(|i| kernels::nearest_of(data, d, &data[i * d..(i + 1) * d], selected))
        .reduce(|| 0.0, f32::max)
        .sqrt()
}

/// Which greedy k-center algorithm a [`GreedyCoreset`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum GreedyVariant {
    /// [`greedy_k_center`]: exact, one full pass over the bank per pick.
    Plain,
    /// [`greedy_k_center_pruned`]: the same selection, far fewer distance evaluations.
    #[default]
    Pruned,
    /// [`greedy_k_center_partitioned`]: exact greedy inside blocks of nearby rows sized for
    /// about `block_picks` picks each, merged; not the exact selection, cost linear in the
    /// rows.
    Partitioned {
        /// Picks per block (its rows: `block_picks * n / k`).
        block_picks: usize,
    },
    /// [`approximate_greedy_k_center`] with this many random start rows (official default 10).
    Approximate {
        /// Random start rows.
        starts: usize,
    },
}

/// Greedy k-center coreset, as PatchCore's memory-bank reduction (§3.2, eq. 4).
///
/// Built checked: by [`GreedyCoreset::new`] and its `with_*` methods, or from the config keys
/// by [`crate::GreedyParams::check`] / [`crate::ApproximateGreedyParams::check`]. The default
/// is the paper's: 1 %, a 128-d Gaussian projection, the pruned exact greedy, seed 0.
#[derive(Debug, Clone, PartialEq)]
pub struct GreedyCoreset {
    size: SampleSize,
    projection: Projection,
    seed: u64,
    start: Option<usize>,
    variant: GreedyVariant,
    always_project: bool,
}

impl GreedyCoreset {
    /// Keeps `size` rows with `variant`, on the default projection (128-d Gaussian), seed 0.
    /// Errors for a partitioned variant with `block_picks = 0` or an approximate one with
    /// `starts = 0`.
    pub fn new(size: SampleSize, variant: GreedyVariant) -> Result<Self> {
        match variant {
            GreedyVariant::Partitioned { block_picks: 0 } => {
                return Err(Error::config("sampler.block_picks", "must be at least 1"));
            }
            GreedyVariant::Approximate { starts: 0 } => {
                return Err(Error::config("sampler.approx_starts", "must be at least 1"));
            }
            _ => {}
        }
        Ok(Self {
            size,
            variant,
            ..Self::default()
        })
    }

    /// Computes the distances on `projection` (checked: a JL width needs `eps` in (0, 1), a
    /// sparse density lies in (0, 1]).
    pub fn with_projection(self, projection: Projection) -> Result<Self> {
        projection.validate()?;
        Ok(Self { projection, ..self })
    }

    /// Draws the projection and the start row(s) from `seed`.
    pub fn with_seed(self, seed: u64) -> Self {
        Self { seed, ..self }
    }

    /// Starts the plain and pruned variants from row `start` (`None`: drawn from the seed).
    pub fn with_start(self, start: Option<usize>) -> Self {
        Self { start, ..self }
    }

    /// Projects even when the projection is not narrower than the features (anomalib 2.7's
    /// rule; otherwise such a projection is skipped).
    pub fn with_always_project(self, always_project: bool) -> Self {
        Self {
            always_project,
            ..self
        }
    }

    /// How many rows are kept.
    pub fn sample_size(&self) -> SampleSize {
        self.size
    }

    /// The projection the distances are computed on.
    pub fn projection(&self) -> &Projection {
        &self.projection
    }

    /// The seed of the projection and of the start row(s).
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The fixed start row, if any.
    pub fn start(&self) -> Option<usize> {
        self.start
    }

    /// The algorithm.
    pub fn variant(&self) -> GreedyVariant {
        self.variant
    }

    /// Whether a projection no narrower than the features is still applied.
    pub fn always_project(&self) -> bool {
        self.always_project
    }

    /// The points greedy runs on.
    pub fn project(&self, features: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        self.projection
            .apply_with(features, self.seed, self.always_project)
    }

    /// Runs the selection and returns the whole run (indices, picked distances, radius in
    /// the projected space).
    pub fn run(&self, features: ArrayView2<'_, f32>, progress: &dyn Progress) -> Result<GreedyRun> {
        self.run_count(features, self.size.resolve(features.nrows()), progress)
    }

    /// As [`GreedyCoreset::run`], keeping `count` rows (clamped to `1..=n`) whatever `size` says.
    pub fn run_count(
        &self,
        features: ArrayView2<'_, f32>,
        count: usize,
        progress: &dyn Progress,
    ) -> Result<GreedyRun> {
        let n = features.nrows();
        if n == 0 {
            return Err(Error::InvalidArgument(
                "cannot subsample an empty memory bank".into(),
            ));
        }
        let k = count.clamp(1, n);
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ 0x5eed_5eed);
        let points = self.project(features)?;
        match self.variant {
            GreedyVariant::Approximate { starts } => {
                let starts = rand::seq::index::sample(&mut rng, n, starts.clamp(1, n)).into_vec();
                approximate_greedy_k_center(points.view(), k, &starts, progress)
            }
            GreedyVariant::Partitioned { block_picks } => {
                greedy_k_center_partitioned(points.view(), k, block_picks, self.seed, progress)
            }
            v => {
                let start = self.start.unwrap_or_else(|| rng.random_range(0..n));
                if v == GreedyVariant::Plain {
                    greedy_k_center(points.view(), k, start, progress)
                } else {
                    greedy_k_center_pruned(points.view(), k, start, progress)
                }
            }
        }
    }
}

impl Sampler for GreedyCoreset {
    fn name(&self) -> &str {
        match self.variant {
            GreedyVariant::Plain => "greedy_coreset",
            GreedyVariant::Pruned => "greedy_coreset_pruned",
            GreedyVariant::Partitioned { .. } => "greedy_coreset_partitioned",
            GreedyVariant::Approximate { .. } => "approximate_greedy_coreset",
        }
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
        Ok(self.run_count(features, count, progress)?.indices)
    }
}

impl Default for GreedyCoreset {
    fn default() -> Self {
        Self {
            size: SampleSize::Ratio(0.01),
            projection: Projection::Gaussian(ProjDim::Fixed(128)),
            seed: 0,
            start: None,
            variant: GreedyVariant::Pruned,
            always_project: false,
        }
    }
}
