use ndarray::{Array2, ArrayView2, CowArray, Ix2};
use patchcore_core::{Error, Progress, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::projection::{ProjDim, Projection};
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

/// What one piece of a cluster gives: the rows that move to the new centre (row, new
/// distance), and the largest distance among the rows that stay (distance, row).
type PieceResult = (Vec<(u32, f32)>, (f32, usize));

const CHUNK: usize = 4096;

/// The pruning test's factor: a row is skipped when `||a(i) - c||^2 >= MARGIN * r(i)^2`, i.e.
/// `||a(i) - c|| >= 2 r(i)` with a relative margin of 1e-4 against float rounding.
const MARGIN: f32 = (2.0 * (1.0 + 1e-4)) * (2.0 * (1.0 + 1e-4));

/// Folds `(value, index)` pairs to the maximum, the lowest index on ties.
fn max_first(a: (f32, usize), b: (f32, usize)) -> (f32, usize) {
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
        .map(|(c, chunk)| {
            let mut best = (f32::NEG_INFINITY, usize::MAX);
            for (j, m) in chunk.iter_mut().enumerate() {
                let i = c * CHUNK + j;
                let dist = sq_dist(&data[i * d..(i + 1) * d], centre);
                if dist < *m {
                    *m = dist;
                }
                best = max_first(best, (*m, i));
            }
            best
        })
        .reduce(|| (f32::NEG_INFINITY, usize::MAX), max_first)
}

/// Checks `points` and `start`, and returns the points in standard (row-major) layout.
fn standard_points<'a>(
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

/// One pruned pass over every row in index order (parallel chunks): rows whose cluster centre
/// is far enough from the new centre `slot` are skipped, the others measured and moved when
/// closer. Centre rows (`-inf`) are left alone.
fn flat_update(
    data: &[f32],
    d: usize,
    centre: &[f32],
    cc: &[f32],
    slot: usize,
    min_d: &mut [f32],
    owner: &mut [u32],
) {
    min_d
        .par_chunks_mut(CHUNK)
        .zip(owner.par_chunks_mut(CHUNK))
        .enumerate()
        .for_each(|(ci, (md, ow))| {
            for (j, (m, o)) in md.iter_mut().zip(ow.iter_mut()).enumerate() {
                if *o == u32::MAX {
                    continue;
                }
                if cc[*o as usize] < MARGIN * *m {
                    let i = ci * CHUNK + j;
                    let dist = sq_dist(&data[i * d..(i + 1) * d], centre);
                    if dist < *m {
                        *m = dist;
                        *o = slot as u32;
                    }
                }
            }
        });
}

/// Member lists and per-cluster maxima of `clusters` clusters, from the rows' owners.
fn rebuild_clusters(
    owner: &[u32],
    min_d: &[f32],
    clusters: usize,
    members: &mut Vec<Vec<u32>>,
    cmax: &mut Vec<(f32, usize)>,
) {
    members.iter_mut().for_each(Vec::clear);
    members.resize_with(clusters, Vec::new);
    cmax.clear();
    cmax.resize(clusters, (f32::NEG_INFINITY, usize::MAX));
    for (i, &o) in owner.iter().enumerate() {
        if o != u32::MAX {
            members[o as usize].push(i as u32);
            cmax[o as usize] = max_first(cmax[o as usize], (min_d[i], i));
        }
    }
}

/// Greedy k-center with triangle-inequality pruning: the same selection as
/// [`greedy_k_center`] (same start, same tie rule, same distances), with far fewer distance
/// evaluations.
///
/// Every row belongs to the cluster of its nearest centre `a(i)`, at squared distance `r(i)²`;
/// each cluster keeps its members and their largest `r²`. When centre `c` is added,
/// `||x_i - c|| >= ||a(i) - c|| - r(i)`, so a row with `||a(i) - c|| >= 2 r(i)` cannot get
/// closer and is skipped without touching its features; a cluster whose largest `r` passes that
/// test is skipped whole, without touching its rows at all. The next centre is the largest
/// per-cluster maximum, so a pick costs one distance per existing centre plus the rows of the
/// clusters near the new centre, not a pass over every row. The test keeps a relative margin of
/// 1e-4 so that float rounding can never make it skip a row the plain loop would have updated:
/// the selections are identical, not just equally good.
pub fn greedy_k_center_pruned(
    points: ArrayView2<'_, f32>,
    k: usize,
    start: usize,
    progress: &dyn Progress,
) -> Result<GreedyRun> {
    let points = standard_points(points, start)?;
    let (n, d) = points.dim();
    let k = k.clamp(1, n);
    let data = points.as_slice().expect("standard layout");
    let mut clusters = Clusters::new(n, k);
    let mut indices: Vec<usize> = Vec::with_capacity(k);
    // The centres' rows, contiguous: centre-to-centre distances stream through this instead
    // of gathering rows scattered over the whole matrix.
    let mut centres: Vec<f32> = Vec::with_capacity(k * d);
    let mut picked = Vec::with_capacity(k);
    let (mut current, mut current_dist) = (start, 0.0f32);
    progress.start(k as u64, "coreset selection");
    loop {
        indices.push(current);
        picked.push(current_dist.max(0.0).sqrt());
        progress.advance(1);
        let slot = indices.len() - 1;
        let centre = &data[current * d..(current + 1) * d];
        let dirty = clusters.take_centre(current);
        if slot == 0 {
            clusters.first(data, d, current);
        } else {
            // Squared distances from the new centre to every earlier centre.
            let cc: Vec<f32> = centres
                .par_chunks(d)
                .with_min_len(512)
                .map(|cj| sq_dist(cj, centre))
                .collect();
            clusters.add(data, d, centre, &cc, slot, dirty);
        }
        centres.extend_from_slice(centre);
        let best = clusters.farthest();
        if indices.len() == k {
            progress.finish();
            return Ok(GreedyRun {
                indices,
                picked_distance: picked,
                radius: best.0.max(0.0).sqrt(),
            });
        }
        current = best.1;
        current_dist = best.0;
    }
}

/// The rows of the pruned greedy grouped by their nearest centre: each row's squared distance
/// to it and its slot, each cluster's members and farthest row.
struct Clusters {
    min_d: Vec<f32>,
    owner: Vec<u32>,
    members: Vec<Vec<u32>>,
    cmax: Vec<(f32, usize)>,
}

impl Clusters {
    fn new(n: usize, k: usize) -> Self {
        Self {
            min_d: vec![f32::INFINITY; n],
            owner: vec![u32::MAX; n],
            members: Vec::with_capacity(k),
            cmax: Vec::with_capacity(k),
        }
    }

    /// The farthest row of a list (largest distance, first index on ties).
    fn cluster_max(rows: &[u32], min_d: &[f32]) -> (f32, usize) {
        rows.iter().fold((f32::NEG_INFINITY, usize::MAX), |b, &i| {
            max_first(b, (min_d[i as usize], i as usize))
        })
    }

    /// The new centre leaves its cluster and is never picked again; returns that cluster's
    /// slot (`u32::MAX` for the start row).
    fn take_centre(&mut self, current: usize) -> u32 {
        self.min_d[current] = f32::NEG_INFINITY;
        let dirty = self.owner[current];
        self.owner[current] = u32::MAX;
        if dirty != u32::MAX {
            self.members[dirty as usize].retain(|&i| i as usize != current);
        }
        dirty
    }

    /// The first centre: every other row joins its cluster.
    fn first(&mut self, data: &[f32], d: usize, current: usize) {
        let centre = &data[current * d..(current + 1) * d];
        self.min_d
            .par_chunks_mut(CHUNK)
            .enumerate()
            .for_each(|(c, chunk)| {
                for (j, m) in chunk.iter_mut().enumerate() {
                    let i = c * CHUNK + j;
                    if i != current {
                        *m = sq_dist(&data[i * d..(i + 1) * d], centre);
                    }
                }
            });
        let n = self.min_d.len();
        let all: Vec<u32> = (0..n as u32).filter(|&i| i as usize != current).collect();
        self.owner.iter_mut().for_each(|o| *o = 0);
        self.owner[current] = u32::MAX;
        self.cmax.push(Self::cluster_max(&all, &self.min_d));
        self.members.push(all);
    }

    /// A later centre in `slot`, at squared distances `cc` from the earlier centres: rows
    /// nearer to it than to their own centre move into its new cluster. Only clusters that
    /// the triangle inequality cannot rule out (and the one the centre left) are read.
    fn add(&mut self, data: &[f32], d: usize, centre: &[f32], cc: &[f32], slot: usize, dirty: u32) {
        let candidates: Vec<usize> = (0..slot)
            .filter(|&j| {
                j as u32 == dirty
                    || (!self.members[j].is_empty() && cc[j] < MARGIN * self.cmax[j].0)
            })
            .collect();
        let candidate_rows: usize = candidates.iter().map(|&j| self.members[j].len()).sum();
        let n = self.min_d.len();
        if candidate_rows * 4 > n - slot {
            // Most rows are candidates (weakly clustered data, early picks): one sequential
            // pass over all rows beats walking the member lists; the lists are rebuilt.
            flat_update(data, d, centre, cc, slot, &mut self.min_d, &mut self.owner);
            rebuild_clusters(
                &self.owner,
                &self.min_d,
                slot + 1,
                &mut self.members,
                &mut self.cmax,
            );
        } else {
            self.move_from(&candidates, data, d, centre, cc, slot);
        }
    }

    /// The pruned update over the candidate clusters, large ones split into pieces of CHUNK
    /// rows so that the first picks (few, huge clusters) still use every thread.
    fn move_from(
        &mut self,
        candidates: &[usize],
        data: &[f32],
        d: usize,
        centre: &[f32],
        cc: &[f32],
        slot: usize,
    ) {
        let members = &self.members;
        let min_d = &self.min_d;
        let items: Vec<(usize, usize, usize)> = candidates
            .iter()
            .flat_map(|&j| {
                let len = members[j].len();
                (0..len.div_ceil(CHUNK).max(1))
                    .map(move |p| (j, p * CHUNK, ((p + 1) * CHUNK).min(len)))
            })
            .collect();
        // Each piece: rows that move to the new centre (with their new distance), and the
        // largest distance among the rows that stay.
        let results: Vec<PieceResult> = items
            .par_iter()
            .map(|&(j, a, b)| {
                let mut moved = Vec::new();
                let mut best = (f32::NEG_INFINITY, usize::MAX);
                let bound = cc[j];
                for &i in &members[j][a..b] {
                    let iu = i as usize;
                    let m = min_d[iu];
                    if bound < MARGIN * m {
                        let dist = sq_dist(&data[iu * d..(iu + 1) * d], centre);
                        if dist < m {
                            moved.push((i, dist));
                            continue;
                        }
                    }
                    best = max_first(best, (m, iu));
                }
                (moved, best)
            })
            .collect();
        let slot32 = slot as u32;
        let mut new_members = Vec::new();
        let mut new_max = (f32::NEG_INFINITY, usize::MAX);
        let mut touched: Vec<usize> = Vec::new();
        for &j in candidates {
            self.cmax[j] = (f32::NEG_INFINITY, usize::MAX);
        }
        for (&(j, _, _), (moved, best)) in items.iter().zip(results) {
            self.cmax[j] = max_first(self.cmax[j], best);
            if moved.is_empty() {
                continue;
            }
            if touched.last() != Some(&j) {
                touched.push(j);
            }
            for (i, dist) in moved {
                self.min_d[i as usize] = dist;
                self.owner[i as usize] = slot32;
                new_max = max_first(new_max, (dist, i as usize));
                new_members.push(i);
            }
        }
        for j in touched {
            let owner = &self.owner;
            self.members[j].retain(|&i| owner[i as usize] != slot32);
        }
        self.members.push(new_members);
        self.cmax.push(new_max);
    }

    /// The row farthest from its centre (the next pick) with its squared distance.
    fn farthest(&self) -> (f32, usize) {
        self.cmax
            .iter()
            .copied()
            .fold((f32::NEG_INFINITY, usize::MAX), max_first)
    }
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
        .map(|i| {
            selected
                .iter()
                .map(|&c| sq_dist(&data[i * d..(i + 1) * d], &data[c * d..(c + 1) * d]))
                .fold(f32::INFINITY, f32::min)
        })
        .reduce(|| 0.0, f32::max)
        .sqrt()
}

/// Which greedy k-center algorithm a [`GreedyCoreset`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum GreedyVariant {
    /// [`greedy_k_center`]: exact, one full pass over the bank per pick.
    Plain,
    /// [`greedy_k_center_pruned`]: the same selection, far fewer distance evaluations.
    #[default]
    Pruned,
    /// [`approximate_greedy_k_center`] with this many random start rows (official default 10).
    Approximate {
        /// Random start rows.
        starts: usize,
    },
}

/// Greedy k-center coreset, as PatchCore's memory-bank reduction (§3.2, eq. 4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GreedyCoreset {
    /// How many rows to keep.
    pub size: SampleSize,
    /// The projection the distances are computed on.
    pub projection: Projection,
    /// Seed of the projection and of the start row(s).
    pub seed: u64,
    /// Fixed start row (plain and pruned variants); `None` draws it from the seed.
    pub start: Option<usize>,
    /// The algorithm.
    pub variant: GreedyVariant,
}

impl GreedyCoreset {
    /// The points greedy runs on.
    pub fn project(&self, features: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        self.projection.apply(features, self.seed)
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
        }
    }
}
