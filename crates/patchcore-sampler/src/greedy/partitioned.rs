//! The partitioned greedy: exact greedy k-center inside balanced blocks of nearby rows, the
//! blocks' picks merged by their max-min distance. Not the exact selection; its cost grows
//! linearly with the rows at a fixed ratio instead of quadratically.

use ndarray::ArrayView2;
use patchcore_core::{Progress, Result};
use rayon::prelude::*;

use super::lazy::LazyGreedy;
use super::pruned::PrunedGreedy;
use super::{GreedyRun, kernels, max_first, standard_points};

/// Picks a block runs before the first merge: its proportional share and 5 %, plus two. Blocks
/// denser than average are extended after the merge, in steps of a tenth of their share, so
/// little work is done on picks the merge drops.
fn initial_target(share: f64, n_b: usize) -> usize {
    ((share * 1.05).ceil() as usize + 2).min(n_b)
}

/// SplitMix64: a well-mixed 64-bit value for a seed and a node, so that every split point and
/// start row is a pure function of the seed and the data.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The row of `rows` farthest from `from` (the lowest row on ties).
fn farthest(data: &[f32], d: usize, rows: &[u32], from: &[f32]) -> usize {
    rows.par_chunks(4096)
        .map(|c| kernels::farthest_of(data, d, c, from))
        .reduce(|| (f32::NEG_INFINITY, usize::MAX), max_first)
        .1
}

/// Splits `rows` into blocks of at most `block` rows: each split projects its rows on the line
/// through two far-apart rows (the farthest row from a seeded pivot, then the farthest from
/// that) and cuts at the median, so blocks are balanced and hold nearby rows.
fn partition(
    data: &[f32],
    d: usize,
    mut rows: Vec<u32>,
    block: usize,
    seed: u64,
    node: u64,
) -> Vec<Vec<u32>> {
    if rows.len() <= block {
        return vec![rows];
    }
    let pivot = rows[(mix(seed ^ mix(node)) % rows.len() as u64) as usize] as usize;
    let a = farthest(data, d, &rows, &data[pivot * d..(pivot + 1) * d]);
    let b = farthest(data, d, &rows, &data[a * d..(a + 1) * d]);
    let dir: Vec<f32> = (0..d).map(|j| data[b * d + j] - data[a * d + j]).collect();
    let mid = rows.len() / 2;
    if dir.iter().any(|&v| v != 0.0) {
        let mut keyed: Vec<(f32, u32)> = rows
            .par_chunks(4096)
            .map(|c| {
                let mut out = Vec::with_capacity(c.len());
                kernels::project_on(data, d, c, &dir, &mut out);
                out
            })
            .flatten_iter()
            .collect();
        keyed.select_nth_unstable_by(mid, |p, q| p.0.total_cmp(&q.0).then(p.1.cmp(&q.1)));
        rows = keyed.into_iter().map(|(_, i)| i).collect();
    }
    // All rows equal: any cut is as good; `rows` keeps its order.
    let right = rows.split_off(mid);
    let (mut l, r) = rayon::join(
        || partition(data, d, rows, block, seed, node * 2),
        || partition(data, d, right, block, seed, node * 2 + 1),
    );
    l.extend(r);
    l
}

/// Blocks of at least this many rows run the lazy exact greedy, smaller ones the eager one:
/// measured on weakly clustered features, the lazy one is faster on blocks of 51 200 rows (1 %,
/// 512 picks per block) and the eager one on blocks of 5 120 (10 %), where the lazy one's heap
/// and queues cost more than they save (docs/BENCHMARKS.md, issue #17).
const LAZY_BLOCK_ROWS: usize = 16_384;

/// A block's exact greedy run: the same selection either way.
enum BlockRun {
    Eager(PrunedGreedy),
    Lazy(LazyGreedy),
}

impl BlockRun {
    fn new(n: usize, k: usize, start: usize) -> Self {
        if n >= LAZY_BLOCK_ROWS {
            BlockRun::Lazy(LazyGreedy::new(n, k, start))
        } else {
            BlockRun::Eager(PrunedGreedy::new(n, k, start))
        }
    }
    fn len(&self) -> usize {
        match self {
            BlockRun::Eager(r) => r.len(),
            BlockRun::Lazy(r) => r.len(),
        }
    }
    fn indices(&self) -> &[usize] {
        match self {
            BlockRun::Eager(r) => r.indices(),
            BlockRun::Lazy(r) => r.indices(),
        }
    }
    fn picked(&self) -> &[f32] {
        match self {
            BlockRun::Eager(r) => r.picked(),
            BlockRun::Lazy(r) => r.picked(),
        }
    }
    fn radius(&self) -> f32 {
        match self {
            BlockRun::Eager(r) => r.radius(),
            BlockRun::Lazy(r) => r.radius(),
        }
    }
    fn exhausted(&self) -> bool {
        match self {
            BlockRun::Eager(r) => r.exhausted(),
            BlockRun::Lazy(r) => r.exhausted(),
        }
    }
    fn step(&mut self, data: &[f32], d: usize) {
        match self {
            BlockRun::Eager(r) => r.step(data, d),
            BlockRun::Lazy(r) => r.step(data, d),
        }
    }
}

/// One block: its rows (global indices, ascending), their points gathered contiguously, and
/// its greedy run.
struct Block {
    rows: Vec<u32>,
    data: Vec<f32>,
    run: BlockRun,
    target: usize,
}

/// The blocks of nearby rows (median splits to about `block` rows each), each with its rows'
/// features copied together, a seeded start row and a first target of picks.
fn make_blocks(data: &[f32], d: usize, k: usize, block: usize, seed: u64) -> Vec<Block> {
    let n = data.len() / d;
    let parts = partition(data, d, (0..n as u32).collect(), block, seed, 1);
    parts
        .into_iter()
        .enumerate()
        .map(|(b, mut rows)| {
            rows.sort_unstable();
            let mut bd = Vec::with_capacity(rows.len() * d);
            for &i in &rows {
                bd.extend_from_slice(&data[i as usize * d..(i as usize + 1) * d]);
            }
            let start = (mix(seed ^ mix(u64::MAX - b as u64)) % rows.len() as u64) as usize;
            let share = k as f64 * rows.len() as f64 / n as f64;
            let target = initial_target(share, rows.len());
            Block {
                run: BlockRun::new(rows.len(), target, start),
                target,
                rows,
                data: bd,
            }
        })
        .collect()
}

/// Partitioned greedy k-center on `points` `[n, d]`: `k` rows, in blocks of at most
/// `ceil(block_picks * n / k)` rows, so that every block's share is about `block_picks`
/// picks whatever the ratio (`block_picks` below 2 counts as 2, so that there are never more
/// blocks than picks).
///
/// 1. The rows are split into balanced blocks of nearby rows (median cuts along the line
///    through two far-apart rows, recursively).
/// 2. Exact greedy k-center ([`greedy_k_center_pruned`](super::greedy_k_center_pruned)) runs
///    in every block, in parallel, from a seeded start row, with distances to the block's own
///    centres only.
/// 3. All blocks' picks are merged by their max-min distance (every block's start first) and
///    the first `k` kept. A block whose computed picks were all kept is extended and the merge
///    redone, so the result is exactly that of running every block's greedy in lockstep,
///    always advancing the block with the largest next distance.
///
/// Every row is then within [`GreedyRun::radius`] of a kept row of its own block: the radius
/// reported is an upper bound of the covering radius (rows may be nearer to a centre of
/// another block). With one block (`k <= block_picks`) this is the exact greedy from the
/// seeded start. Work: about `n * block_picks * d` instead of `n * k * d`: linear in the rows
/// whatever the ratio. Boundary waste (centres placed near a block's edge cover only their
/// side of it) shrinks as `block_picks` grows. The selection is not the exact
/// greedy's: its covering radius is measured against the exact one in docs/BENCHMARKS.md.
pub fn greedy_k_center_partitioned(
    points: ArrayView2<'_, f32>,
    k: usize,
    block_picks: usize,
    seed: u64,
    progress: &dyn Progress,
) -> Result<GreedyRun> {
    let points = standard_points(points, 0)?;
    let (n, d) = points.dim();
    let k = k.clamp(1, n);
    let data = points.as_slice().expect("standard layout");
    // Leaves of the median splits hold more than half a block, so blocks of at least 2n/k
    // rows number at most k: every block keeps its start.
    let block = (n * block_picks.max(2)).div_ceil(k).max(2);
    progress.start(k as u64, "coreset selection (partitioned)");
    let mut blocks = make_blocks(data, d, k, block, seed);
    loop {
        blocks.par_iter_mut().for_each(|b| {
            while b.run.len() < b.target && !b.run.exhausted() {
                b.run.step(&b.data, d);
            }
        });
        // Merge: (distance, global row, block, position); starts first, ties by block then
        // position, so that every block's kept picks are a prefix of its run.
        let mut entries: Vec<(f32, u32, u32, u32)> = blocks
            .iter()
            .enumerate()
            .flat_map(|(bi, b)| {
                b.run.picked().iter().enumerate().map(move |(p, &dist)| {
                    let key = if p == 0 { f32::INFINITY } else { dist };
                    (key, b.rows[b.run.indices()[p]], bi as u32, p as u32)
                })
            })
            .collect();
        let order = |x: &(f32, u32, u32, u32), y: &(f32, u32, u32, u32)| {
            y.0.total_cmp(&x.0).then(x.2.cmp(&y.2)).then(x.3.cmp(&y.3))
        };
        if entries.len() > k {
            entries.select_nth_unstable_by(k - 1, order);
            entries.truncate(k);
        }
        let mut kept = vec![0usize; blocks.len()];
        for e in &entries {
            kept[e.2 as usize] += 1;
        }
        // A block all of whose picks are kept has further picks above the cut when its next
        // distance reaches the k-th kept one (while fewer than k picks exist: every block).
        let cut = if entries.len() == k {
            entries.iter().map(|e| e.0).fold(f32::INFINITY, f32::min)
        } else {
            f32::NEG_INFINITY
        };
        let mut extended = false;
        for (b, &c) in blocks.iter_mut().zip(&kept) {
            if c == b.run.len() && !b.run.exhausted() && b.run.radius() >= cut {
                let share = k as f64 * b.rows.len() as f64 / n as f64;
                b.target = b.run.len() + ((share * 0.1).ceil() as usize).max(8);
                extended = true;
            }
        }
        if extended {
            continue;
        }
        entries.sort_unstable_by(order);
        let radius = blocks
            .iter()
            .zip(&kept)
            .map(|(b, &c)| {
                if c < b.run.len() {
                    b.run.picked()[c]
                } else {
                    b.run.radius()
                }
            })
            .fold(0.0f32, f32::max);
        progress.advance(k as u64);
        progress.finish();
        return Ok(GreedyRun {
            indices: entries.iter().map(|e| e.1 as usize).collect(),
            picked_distance: entries
                .iter()
                .map(|e| if e.0.is_infinite() { 0.0 } else { e.0 })
                .collect(),
            radius,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::greedy::{covering_radius, greedy_k_center, greedy_k_center_pruned};
    use ndarray::Array2;
    use patchcore_core::NoProgress;

    fn clustered(n: usize, d: usize, seed: u64) -> Array2<f32> {
        let mut s = seed;
        let mut next = || {
            s = mix(s);
            (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        };
        let centres: Vec<Vec<f32>> = (0..12)
            .map(|_| (0..d).map(|_| next() * 20.0).collect())
            .collect();
        Array2::from_shape_fn((n, d), |(i, j)| centres[i % 12][j] + next())
    }

    #[test]
    fn one_block_is_the_exact_greedy() {
        let x = clustered(500, 6, 1);
        let run = greedy_k_center_partitioned(x.view(), 40, 40, 3, &NoProgress).unwrap();
        let start = run.indices[0];
        let exact = greedy_k_center_pruned(x.view(), 40, start, &NoProgress).unwrap();
        assert_eq!(run.indices, exact.indices);
        assert_eq!(run.radius, exact.radius);
    }

    #[test]
    fn large_blocks_run_the_lazy_greedy_with_the_same_selection() {
        // One block of 24 000 rows (above LAZY_BLOCK_ROWS: the lazy greedy) is the plain
        // greedy from its start.
        let x = clustered(24_000, 5, 7);
        let run = greedy_k_center_partitioned(x.view(), 60, 60, 9, &NoProgress).unwrap();
        let plain = greedy_k_center(x.view(), 60, run.indices[0], &NoProgress).unwrap();
        assert_eq!(run.indices, plain.indices);
        // Two lazy blocks of 20 000 rows: every row within the reported radius.
        let x = clustered(40_000, 5, 8);
        let run = greedy_k_center_partitioned(x.view(), 100, 50, 9, &NoProgress).unwrap();
        assert_eq!(run.indices.len(), 100);
        assert!(covering_radius(x.view(), &run.indices) <= run.radius * (1.0 + 1e-5));
    }

    #[test]
    fn blocks_cover_every_row_within_the_reported_radius() {
        let x = clustered(4000, 8, 2);
        let run = greedy_k_center_partitioned(x.view(), 200, 15, 5, &NoProgress).unwrap();
        let mut sorted = run.indices.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 200);
        let cover = covering_radius(x.view(), &run.indices);
        assert!(
            cover <= run.radius * (1.0 + 1e-5),
            "{cover} > {}",
            run.radius
        );
        // Picks after the starts come in order of decreasing distance.
        let later: Vec<f32> = run
            .picked_distance
            .iter()
            .copied()
            .filter(|&v| v > 0.0)
            .collect();
        assert!(later.windows(2).all(|w| w[0] >= w[1]));
        // The same seed gives the same selection.
        let again = greedy_k_center_partitioned(x.view(), 200, 15, 5, &NoProgress).unwrap();
        assert_eq!(run.indices, again.indices);
    }
}
