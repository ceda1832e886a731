//! The pruned exact greedy: the plain greedy's selection with far fewer distance evaluations,
//! by the triangle inequality over per-centre clusters.

use ndarray::ArrayView2;
use patchcore_core::{Progress, Result};
use rayon::prelude::*;

use super::{CHUNK, GreedyRun, MARGIN, kernels, max_first, standard_points};

/// What one piece of a cluster gives: the rows that move to the new centre (row, new
/// distance), and the largest distance among the rows that stay (distance, row).
type PieceResult = (Vec<(u32, f32)>, (f32, usize));

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
            kernels::flat_chunk(data, d, ci * CHUNK, centre, cc, slot as u32, md, ow)
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
/// [`greedy_k_center`](super::greedy_k_center) (same start, same tie rule, same distances), with far fewer distance
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
///
/// The updates are lazy: a new centre is queued on the clusters it can reach, and a cluster
/// applies its queue (in one pass over its rows) only when its bound reaches the top of a
/// max-heap of cluster bounds, i.e. when it could hold the next pick. On weakly clustered
/// banks this halves the time against updating every reachable cluster at once.
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
    let mut state = super::lazy::LazyGreedy::new(n, k, start);
    progress.start(k as u64, "coreset selection");
    while state.len() < k {
        state.step(data, d);
        progress.advance(1);
    }
    progress.finish();
    Ok(state.into_run())
}

/// A resumable exact greedy over rows held by the caller, updating every cluster the new
/// centre can reach at once (eager): each [`step`](PrunedGreedy::step) makes one pick, so a
/// run can be extended later from where it stopped. The partitioned greedy runs it in its
/// small blocks: on blocks of a few thousand rows it beats the lazy variant
/// ([`LazyGreedy`](super::lazy::LazyGreedy), which [`greedy_k_center_pruned`] runs), whose
/// heap and batched updates pay off on large, weakly clustered banks (docs/BENCHMARKS.md).
/// Both select exactly the plain greedy's rows.
pub(crate) struct PrunedGreedy {
    clusters: Clusters,
    indices: Vec<usize>,
    picked: Vec<f32>,
    /// The centres' rows, contiguous: centre-to-centre distances stream through this instead
    /// of gathering rows scattered over the whole matrix.
    centres: Vec<f32>,
    /// The next pick: (squared distance to its nearest centre, row); `usize::MAX` once every
    /// row is a centre.
    next: (f32, usize),
}

impl PrunedGreedy {
    /// A run over `n` rows starting at row `start`, with room for `k` picks.
    pub(crate) fn new(n: usize, k: usize, start: usize) -> Self {
        Self {
            clusters: Clusters::new(n, k),
            indices: Vec::with_capacity(k),
            picked: Vec::with_capacity(k),
            centres: Vec::new(),
            next: (0.0, start),
        }
    }

    /// Picks made so far.
    pub(crate) fn len(&self) -> usize {
        self.indices.len()
    }

    /// Picks made so far (row indices, in order).
    pub(crate) fn indices(&self) -> &[usize] {
        &self.indices
    }

    /// The max-min distance at each pick (0 for the start).
    pub(crate) fn picked(&self) -> &[f32] {
        &self.picked
    }

    /// The distance of the row the next step would pick (the covering radius of the picks so
    /// far); 0 once every row is picked.
    pub(crate) fn radius(&self) -> f32 {
        self.next.0.max(0.0).sqrt()
    }

    /// True once every row is picked.
    pub(crate) fn exhausted(&self) -> bool {
        self.next.1 == usize::MAX
    }

    /// One pick: the farthest row (the start first) becomes a centre. `data` is the same
    /// `[n, d]` row-major matrix at every call. Does nothing once every row is picked.
    pub(crate) fn step(&mut self, data: &[f32], d: usize) {
        let (current_dist, current) = self.next;
        if current == usize::MAX {
            return;
        }
        self.indices.push(current);
        self.picked.push(current_dist.max(0.0).sqrt());
        let slot = self.indices.len() - 1;
        let centre = &data[current * d..(current + 1) * d];
        let dirty = self.clusters.take_centre(current);
        if slot == 0 {
            self.clusters.first(data, d, current);
        } else {
            // Squared distances from the new centre to every earlier centre.
            let mut cc = vec![0f32; slot];
            cc.par_chunks_mut(1024)
                .zip(self.centres.par_chunks(1024 * d))
                .for_each(|(out, rows)| kernels::dists_to(rows, d, centre, out));
            self.clusters.add(data, d, centre, &cc, slot, dirty);
        }
        self.centres.extend_from_slice(centre);
        self.next = self.clusters.farthest();
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
                kernels::first_chunk(data, d, c * CHUNK, centre, current, chunk)
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
                let best =
                    kernels::piece(data, d, &members[j][a..b], min_d, centre, cc[j], &mut moved);
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
