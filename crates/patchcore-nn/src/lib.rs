//! k-nearest-neighbour search over the memory bank.
//!
//! The contract is [`NearestNeighborIndex`]. Implementations:
//! * [`ExactIndex`]: exact batched k-NN through GEMM, `d^2 = |q|^2 + |m|^2 - 2 q.m`, blocked
//!   over queries and bank rows and parallel over query blocks. The default.
//! * [`LinfaIndex`]: adapters over linfa-nn's `LinearSearch`, `KdTree` and `BallTree`. Exact
//!   but far slower at PatchCore's feature widths (hundreds to thousands of dimensions, where
//!   space-partitioning trees degenerate); offered for comparison and for low-dimensional use.
//! * [`IvfIndex`]: approximate inverted-file index (k-means cells, `nprobe` cells scanned)
//!   for large banks; [`recall_at_1`] measures it against the exact index.
//!
//! * a Qdrant collection (`kind = "qdrant"`, [`QdrantParams`]): the index is in the
//!   `patchcore-qdrant` crate; only its checked parameters are here.
//!
//! [`IndexBuilder`] builds an index over a bank (the seam an assembled model takes any index
//! through); [`IndexParams`], the `[nn]` config section, is the builder of the indices above.
//!
//! Why the trait keeps [`NearestNeighborIndex::row`]: the paper's eq. 7 re-weights an image
//! score by the distances from the worst test patch to the bank neighbours of its nearest bank
//! row, so the scorer needs those rows' features, not only their indices. Every index here
//! stores the bank anyway; dropping `row` would make the model keep a second copy of it.

#![warn(missing_docs)]

mod builder;
mod exact;
mod ivf;
mod linfa_adapter;
mod qdrant_params;

pub use builder::{ExactBuilder, IndexBuilder, IndexParams, IvfBuilder, IvfParams, LinfaBuilder};
pub use exact::ExactIndex;
pub use ivf::IvfIndex;
pub use linfa_adapter::{LinfaAlgorithm, LinfaIndex};
pub use qdrant_params::{QdrantLocation, QdrantParams, QdrantSettings};

use ndarray::{Array2, ArrayView1, ArrayView2};
use patchcore_core::Result;

/// The `k` nearest bank rows of each query.
#[derive(Debug, Clone, PartialEq)]
pub struct Neighbors {
    /// `[queries, k]` Euclidean distances, ascending along each row.
    pub distances: Array2<f32>,
    /// `[queries, k]` bank row indices matching `distances`.
    pub indices: Array2<usize>,
}

/// An index over a fixed set of bank rows.
///
/// Contract:
/// * distances are Euclidean (not squared), `>= 0`, ascending per query; equal distances
///   may come in any order;
/// * `k` is clamped to `1..=len()`; `k = 0` is an error;
/// * queries must have width [`NearestNeighborIndex::dim`], else an error.
pub trait NearestNeighborIndex: Send + Sync {
    /// Short name for reports.
    fn name(&self) -> &str;
    /// Number of bank rows.
    fn len(&self) -> usize;
    /// `true` when the bank is empty (never, for a built index).
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Feature width.
    fn dim(&self) -> usize;
    /// Bank row `i`.
    fn row(&self, i: usize) -> ArrayView1<'_, f32>;
    /// The `k` nearest bank rows of every query row.
    fn search(&self, queries: ArrayView2<'_, f32>, k: usize) -> Result<Neighbors>;
    /// Where the index lives when not in this process (e.g. `qdrant http://host:6334
    /// collection patchcore-1a2b...`); `None` for an in-process index. Model files record it.
    fn location(&self) -> Option<String> {
        None
    }
}

/// The contract's argument checks of [`NearestNeighborIndex::search`], for implementations
/// in other crates: `k >= 1` and queries as wide as the bank. Returns `k` clamped to
/// `1..=index.len()`.
pub fn check_query(
    index: &dyn NearestNeighborIndex,
    queries: &ArrayView2<'_, f32>,
    k: usize,
) -> Result<usize> {
    use patchcore_core::Error;
    if k == 0 {
        return Err(Error::InvalidArgument("k-NN search with k = 0".into()));
    }
    if queries.ncols() != index.dim() {
        return Err(Error::Shape(format!(
            "queries have {} columns, the memory bank has {}",
            queries.ncols(),
            index.dim()
        )));
    }
    Ok(k.min(index.len()))
}

/// Fraction of queries whose nearest neighbour from `approx` is as close as the exact one.
/// Both candidates' distances are recomputed from differences in f64, so that the rounding
/// of the GEMM index does not count as a miss, and ties count as hits.
pub fn recall_at_1(
    exact: &dyn NearestNeighborIndex,
    approx: &dyn NearestNeighborIndex,
    queries: ArrayView2<'_, f32>,
) -> Result<f64> {
    let e = exact.search(queries, 1)?;
    let a = approx.search(queries, 1)?;
    let dist = |r: usize, i: usize| -> f64 {
        queries
            .row(r)
            .iter()
            .zip(exact.row(i).iter())
            .map(|(x, y)| ((x - y) as f64).powi(2))
            .sum::<f64>()
    };
    let hits = (0..queries.nrows())
        .filter(|&r| dist(r, a.indices[[r, 0]]) <= dist(r, e.indices[[r, 0]]) * (1.0 + 1e-9))
        .count();
    Ok(hits as f64 / queries.nrows().max(1) as f64)
}

/// Keeps the `k` smallest `(distance, index)` pairs, sorted ascending.
#[derive(Debug, Clone)]
pub(crate) struct TopK {
    pub d: Vec<f32>,
    pub i: Vec<usize>,
    k: usize,
}

impl TopK {
    pub fn new(k: usize) -> Self {
        Self {
            d: Vec::with_capacity(k + 1),
            i: Vec::with_capacity(k + 1),
            k,
        }
    }
    #[inline]
    pub fn worst(&self) -> f32 {
        if self.d.len() < self.k {
            f32::INFINITY
        } else {
            self.d[self.k - 1]
        }
    }
    #[inline]
    pub fn push(&mut self, d: f32, i: usize) {
        if d >= self.worst() {
            return;
        }
        let pos = self.d.partition_point(|&x| x <= d);
        self.d.insert(pos, d);
        self.i.insert(pos, i);
        if self.d.len() > self.k {
            self.d.pop();
            self.i.pop();
        }
    }
}
