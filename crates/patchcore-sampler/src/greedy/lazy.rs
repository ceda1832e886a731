//! The lazy pruned greedy: the exact greedy's selection, with each cluster's updates deferred
//! until the cluster could hold the next pick, then applied for all waiting centres in one
//! pass over its rows.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use rayon::prelude::*;

use super::{CHUNK, GreedyRun, MARGIN, kernels, max_first};

/// A cluster's bound in the heap: its largest (squared distance, row) as of `version`.
#[derive(Clone, Copy, Debug)]
struct Entry {
    value: f32,
    row: usize,
    slot: u32,
    version: u32,
}

impl Ord for Entry {
    /// The farthest first; on equal distances the lowest row (the plain greedy's tie rule).
    fn cmp(&self, other: &Self) -> Ordering {
        self.value
            .total_cmp(&other.value)
            .then(other.row.cmp(&self.row))
            .then(other.slot.cmp(&self.slot))
    }
}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Entry {}

/// What one chunk of a cluster's rows gives when its waiting centres are applied: the rows
/// that stay, the rows that move (row, new slot, new squared distance), and the farthest row
/// that stays.
type ChunkResult = (Vec<u32>, Vec<(u32, u32, f32)>, (f32, usize));

/// A resumable exact greedy k-center over rows held by the caller (the same selection as the
/// plain loop: same start, same tie rule, same distances).
///
/// Every row belongs to the cluster of its nearest centre as of the cluster's last update.
/// A new centre `c` is not applied to the rows at once: it is queued on every cluster `j` with
/// `||c - c_j||^2 < 4 r_j^2` (with a relative margin of 1e-4 against rounding), `r_j` an upper
/// bound of the cluster's largest distance; by the triangle inequality no row of any other
/// cluster can get nearer to `c`. The clusters sit in a max-heap by that bound. The next pick
/// is found by popping: a cluster with queued centres is updated (all of them in one pass over
/// its rows, each row measured only against the centres its own bound cannot rule out) and
/// pushed back with its exact maximum; the first cluster popped with nothing queued holds the
/// farthest row. Clusters far from where the picks happen are never touched.
pub(crate) struct LazyGreedy {
    min_d: Vec<f32>,
    owner: Vec<u32>,
    members: Vec<Vec<u32>>,
    cmax: Vec<(f32, usize)>,
    /// Centres queued on each cluster: (slot, squared distance to the cluster's centre).
    pending: Vec<Vec<(u32, f32)>>,
    version: Vec<u32>,
    heap: BinaryHeap<Entry>,
    indices: Vec<usize>,
    picked: Vec<f32>,
    /// The centres' rows, contiguous.
    centres: Vec<f32>,
    /// The next pick: (squared distance, row); `usize::MAX` once every row is picked.
    next: (f32, usize),
}

impl LazyGreedy {
    /// A run over `n` rows starting at row `start`, with room for `k` picks.
    pub(crate) fn new(n: usize, k: usize, start: usize) -> Self {
        Self {
            min_d: vec![f32::INFINITY; n],
            owner: vec![u32::MAX; n],
            members: Vec::with_capacity(k),
            cmax: Vec::with_capacity(k),
            pending: Vec::with_capacity(k),
            version: Vec::with_capacity(k),
            heap: BinaryHeap::with_capacity(k),
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

    /// True once every row is picked.
    pub(crate) fn exhausted(&self) -> bool {
        self.next.1 == usize::MAX
    }

    /// The distance of the row the next step would pick (the covering radius of the picks so
    /// far); 0 once every row is picked.
    pub(crate) fn radius(&self) -> f32 {
        self.next.0.max(0.0).sqrt()
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
        self.min_d[current] = f32::NEG_INFINITY;
        let home = self.owner[current];
        self.owner[current] = u32::MAX;
        self.members.push(Vec::new());
        self.cmax.push((f32::NEG_INFINITY, usize::MAX));
        self.pending.push(Vec::new());
        self.version.push(0);
        if slot == 0 {
            self.min_d
                .par_chunks_mut(CHUNK)
                .enumerate()
                .for_each(|(c, chunk)| {
                    kernels::first_chunk(data, d, c * CHUNK, centre, current, chunk)
                });
            let all: Vec<u32> = (0..self.min_d.len() as u32)
                .filter(|&i| i as usize != current)
                .collect();
            for &i in &all {
                self.owner[i as usize] = 0;
            }
            self.cmax[0] = all.iter().fold((f32::NEG_INFINITY, usize::MAX), |b, &i| {
                max_first(b, (self.min_d[i as usize], i as usize))
            });
            self.members[0] = all;
            self.push(0);
        } else {
            let mut cc = vec![0f32; slot];
            if slot <= 2048 {
                kernels::dists_to(&self.centres, d, centre, &mut cc);
            } else {
                cc.par_chunks_mut(1024)
                    .zip(self.centres.par_chunks(1024 * d))
                    .for_each(|(out, rows)| kernels::dists_to(rows, d, centre, out));
            }
            for (j, &c) in cc.iter().enumerate() {
                // The centre's own cluster always: its bound named the row just taken.
                if j as u32 == home || c < MARGIN * self.cmax[j].0 {
                    self.pending[j].push((slot as u32, c));
                }
            }
        }
        self.centres.extend_from_slice(centre);
        self.next = self.find_next(data, d);
    }

    /// Pushes cluster `j`'s current bound (a new version: older entries are stale).
    fn push(&mut self, j: usize) {
        self.version[j] = self.version[j].wrapping_add(1);
        let (value, row) = self.cmax[j];
        if row != usize::MAX {
            self.heap.push(Entry {
                value,
                row,
                slot: j as u32,
                version: self.version[j],
            });
        }
    }

    /// The farthest row: pops clusters, updating those with queued centres, until one with
    /// nothing queued is on top.
    fn find_next(&mut self, data: &[f32], d: usize) -> (f32, usize) {
        while let Some(top) = self.heap.pop() {
            let j = top.slot as usize;
            if top.version != self.version[j] {
                continue;
            }
            if self.pending[j].is_empty() {
                self.heap.push(top);
                return (top.value, top.row);
            }
            self.update(j, data, d);
        }
        (f32::NEG_INFINITY, usize::MAX)
    }

    /// Applies every centre queued on cluster `j` to its rows, in creation order (a row moves
    /// when strictly nearer, as in the plain loop), in parallel chunks.
    fn update(&mut self, j: usize, data: &[f32], d: usize) {
        let queued = std::mem::take(&mut self.pending[j]);
        let rows = std::mem::take(&mut self.members[j]);
        let (owner, min_d, centres) = (&self.owner, &self.min_d, &self.centres);
        let run = |chunk: &[u32]| -> ChunkResult {
            let (mut stay, mut moved) = (Vec::with_capacity(chunk.len()), Vec::new());
            let best = kernels::apply_queued(
                data, d, chunk, j as u32, owner, min_d, &queued, centres, &mut stay, &mut moved,
            );
            (stay, moved, best)
        };
        // Small clusters (most updates once the picks are many) inline, without rayon's
        // hand-off; large ones in parallel chunks.
        let results: Vec<ChunkResult> = if rows.len() <= CHUNK {
            vec![run(&rows)]
        } else {
            rows.par_chunks(CHUNK).map(run).collect()
        };
        let mut stay_all = Vec::with_capacity(rows.len());
        let mut best = (f32::NEG_INFINITY, usize::MAX);
        let mut touched: Vec<u32> = Vec::new();
        for (stay, moved, b) in results {
            stay_all.extend_from_slice(&stay);
            best = max_first(best, b);
            for (i, s, m) in moved {
                self.min_d[i as usize] = m;
                self.owner[i as usize] = s;
                self.members[s as usize].push(i);
                self.cmax[s as usize] = max_first(self.cmax[s as usize], (m, i as usize));
                touched.push(s);
            }
        }
        self.members[j] = stay_all;
        self.cmax[j] = best;
        self.push(j);
        touched.sort_unstable();
        touched.dedup();
        for s in touched {
            self.push(s as usize);
        }
    }

    /// The run so far as a [`GreedyRun`].
    pub(crate) fn into_run(self) -> GreedyRun {
        let radius = self.radius();
        GreedyRun {
            indices: self.indices,
            picked_distance: self.picked,
            radius,
        }
    }
}
