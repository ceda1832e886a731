use linfa_nn::distance::L2Dist;
use linfa_nn::{BallTree, KdTree, LinearSearch, NearestNeighbour, NearestNeighbourIndex};
use ndarray::{Array2, ArrayView1, ArrayView2};
use patchcore_core::{Error, Result};
use rayon::prelude::*;

use crate::{NearestNeighborIndex, Neighbors, check_query};

/// Which linfa-nn algorithm backs a [`LinfaIndex`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum LinfaAlgorithm {
    /// `linfa_nn::LinearSearch`: a full scan per query.
    LinearSearch,
    /// `linfa_nn::KdTree`.
    KdTree,
    /// `linfa_nn::BallTree`.
    BallTree,
}

/// A linfa-nn index borrowing the bank it was built on.
type Tree<'a> = Box<dyn NearestNeighbourIndex<f32> + Send + Sync + 'a>;

self_cell::self_cell!(
    /// The bank and the linfa-nn index built over it, kept together (linfa-nn's indices
    /// borrow their points).
    struct BankTree {
        owner: Array2<f32>,
        #[covariant]
        dependent: Tree,
    }
);

/// linfa-nn behind [`NearestNeighborIndex`].
///
/// The linfa-nn index (linear scan, k-d tree or ball tree) is built once, when the adapter is
/// built, over the bank it owns. Slow at high dimension: space-partitioning trees degenerate at
/// PatchCore's feature widths (docs/COMPONENTS.md has the figures).
pub struct LinfaIndex {
    tree: BankTree,
    algorithm: LinfaAlgorithm,
}

impl std::fmt::Debug for LinfaIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinfaIndex")
            .field("algorithm", &self.algorithm)
            .field("shape", &self.tree.borrow_owner().shape())
            .finish()
    }
}

impl LinfaIndex {
    /// Builds the adapter; the bank must be non-empty and finite.
    pub fn new(bank: Array2<f32>, algorithm: LinfaAlgorithm) -> Result<Self> {
        if bank.nrows() == 0 || bank.ncols() == 0 {
            return Err(Error::InvalidArgument("memory bank is empty".into()));
        }
        if bank.iter().any(|v| !v.is_finite()) {
            return Err(Error::NonFinite(
                "memory bank holds NaN or infinite values".into(),
            ));
        }
        let tree = BankTree::try_new(bank, |bank| {
            match algorithm {
                LinfaAlgorithm::LinearSearch => LinearSearch::new().from_batch(bank, L2Dist),
                LinfaAlgorithm::KdTree => KdTree::new().from_batch(bank, L2Dist),
                LinfaAlgorithm::BallTree => BallTree::new().from_batch(bank, L2Dist),
            }
            .map_err(|e| Error::InvalidArgument(format!("linfa-nn build: {e}")))
        })?;
        Ok(Self { tree, algorithm })
    }

    fn bank(&self) -> &Array2<f32> {
        self.tree.borrow_owner()
    }
}

impl NearestNeighborIndex for LinfaIndex {
    fn name(&self) -> &str {
        match self.algorithm {
            LinfaAlgorithm::LinearSearch => "linfa_linear",
            LinfaAlgorithm::KdTree => "linfa_kdtree",
            LinfaAlgorithm::BallTree => "linfa_balltree",
        }
    }

    fn len(&self) -> usize {
        self.bank().nrows()
    }

    fn dim(&self) -> usize {
        self.bank().ncols()
    }

    fn row(&self, i: usize) -> ArrayView1<'_, f32> {
        self.bank().row(i)
    }

    fn search(&self, queries: ArrayView2<'_, f32>, k: usize) -> Result<Neighbors> {
        let k = check_query(self, &queries, k)?;
        let index = self.tree.borrow_dependent();
        let nq = queries.nrows();
        let rows: Vec<Result<Vec<(f32, usize)>>> = (0..nq)
            .into_par_iter()
            .map(|r| {
                let q = queries.row(r);
                let found = index
                    .k_nearest(q, k)
                    .map_err(|e| Error::InvalidArgument(format!("linfa-nn query: {e}")))?;
                let mut v: Vec<(f32, usize)> = found
                    .into_iter()
                    .map(|(p, i)| {
                        let d: f32 = p.iter().zip(q.iter()).map(|(a, b)| (a - b) * (a - b)).sum();
                        (d.sqrt(), i)
                    })
                    .collect();
                v.sort_by(|a, b| a.0.total_cmp(&b.0));
                Ok(v)
            })
            .collect();
        let mut distances = Array2::<f32>::zeros((nq, k));
        let mut indices = Array2::<usize>::zeros((nq, k));
        for (r, row) in rows.into_iter().enumerate() {
            for (j, (d, i)) in row?.into_iter().enumerate() {
                distances[[r, j]] = d;
                indices[[r, j]] = i;
            }
        }
        Ok(Neighbors { distances, indices })
    }
}
