//! Pure parts: the bank's hash, the default collection name and the mapping of Qdrant's
//! answers to the [`NearestNeighborIndex`](patchcore_nn::NearestNeighborIndex) contract.

use ndarray::{Array2, ArrayView2};
use patchcore_core::{Error, Result};
use patchcore_nn::Neighbors;
use sha2::{Digest, Sha256};

/// SHA-256 (hex) of a bank: its shape (two little-endian u64) then its values (little-endian
/// f32, row-major). Equal banks hash equally on every machine.
pub fn bank_hash(bank: ArrayView2<'_, f32>) -> String {
    let mut h = Sha256::new();
    h.update((bank.nrows() as u64).to_le_bytes());
    h.update((bank.ncols() as u64).to_le_bytes());
    let mut buf = Vec::with_capacity(bank.ncols() * 4);
    for row in bank.rows() {
        buf.clear();
        for v in row {
            buf.extend_from_slice(&v.to_le_bytes());
        }
        h.update(&buf);
    }
    h.finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
}

/// The collection a bank goes to when `nn.collection` is not set: `patchcore-` and the first
/// 16 hex digits of its hash.
pub fn default_collection(hash: &str) -> String {
    format!("patchcore-{}", &hash[..16.min(hash.len())])
}

/// Maps the answer to a batched search (per query, `(point id, score)` best first) to
/// [`Neighbors`].
///
/// Qdrant's Euclidean score *is* the Euclidean distance (its metric ranks by the negative
/// squared distance and takes the square root of the absolute value when it answers), which
/// is the contract's convention (not squared); it is taken as it is, after checking it is
/// finite and not negative. Each query must get exactly `k` hits (`k` already clamped to the
/// bank), each id a bank row: anything else means the collection is not the bank this index
/// was built from. Hits are sorted ascending (stable, so equal distances keep Qdrant's order).
pub fn neighbors_from_hits(hits: Vec<Vec<(u64, f32)>>, k: usize, rows: usize) -> Result<Neighbors> {
    let n = hits.len();
    let mut distances = Array2::<f32>::zeros((n, k));
    let mut indices = Array2::<usize>::zeros((n, k));
    for (q, mut h) in hits.into_iter().enumerate() {
        if h.len() != k {
            return Err(Error::External(format!(
                "Qdrant returned {} neighbours for query {q}, {k} were asked: the collection \
                 holds fewer points than the bank's {rows} rows (was it changed since it was \
                 uploaded? `patchcore bank status` tells)",
                h.len()
            )));
        }
        h.sort_by(|a, b| a.1.total_cmp(&b.1));
        for (j, (id, score)) in h.into_iter().enumerate() {
            if id as usize >= rows || id > usize::MAX as u64 {
                return Err(Error::External(format!(
                    "Qdrant returned point id {id}, the bank has {rows} rows: the collection \
                     holds points of another bank"
                )));
            }
            if !score.is_finite() || score < 0.0 {
                return Err(Error::External(format!(
                    "Qdrant returned the distance {score} for point {id}: expected a finite \
                     Euclidean distance (is the collection's metric Euclid?)"
                )));
            }
            distances[[q, j]] = score;
            indices[[q, j]] = id as usize;
        }
    }
    Ok(Neighbors { distances, indices })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;
    use patchcore_nn::{ExactIndex, NearestNeighborIndex};

    #[test]
    fn hash_depends_on_values_and_shape() {
        let a = array![[1.0f32, 2.0], [3.0, 4.0]];
        let b = array![[1.0f32, 2.0, 3.0, 4.0]];
        let c = array![[1.0f32, 2.0], [3.0, 4.5]];
        let ha = bank_hash(a.view());
        assert_eq!(ha.len(), 64);
        assert_eq!(ha, bank_hash(a.clone().view()));
        assert_ne!(ha, bank_hash(b.view()));
        assert_ne!(ha, bank_hash(c.view()));
        // A transposed view has other values in row-major order.
        assert_ne!(ha, bank_hash(a.t()));
        assert_eq!(default_collection(&ha), format!("patchcore-{}", &ha[..16]));
    }

    /// What Qdrant's Euclid metric answers (the square root of the absolute value of the
    /// negative squared distance it ranks by) maps to the exact index's distances.
    #[test]
    fn euclid_scores_map_to_the_contract_distances() {
        let bank = array![[0.0f32, 0.0], [3.0, 4.0], [1.0, 1.0], [-2.0, 0.5]];
        let queries = array![[0.4f32, 0.5], [3.0, 3.0]];
        let exact = ExactIndex::new(bank.clone()).unwrap();
        let want = exact.search(queries.view(), 3).unwrap();
        let hits = queries
            .rows()
            .into_iter()
            .map(|q| {
                let mut h: Vec<(u64, f32)> = bank
                    .rows()
                    .into_iter()
                    .enumerate()
                    .map(|(i, m)| {
                        let neg_sq = -q
                            .iter()
                            .zip(m.iter())
                            .map(|(a, b)| (a - b) * (a - b))
                            .sum::<f32>();
                        (i as u64, neg_sq.abs().sqrt())
                    })
                    .collect();
                // Best first, as Qdrant answers; cut to k.
                h.sort_by(|a, b| a.1.total_cmp(&b.1));
                h.truncate(3);
                h.reverse(); // any order is accepted
                h
            })
            .collect();
        let got = neighbors_from_hits(hits, 3, bank.nrows()).unwrap();
        assert_eq!(got.indices, want.indices);
        for (g, w) in got.distances.iter().zip(want.distances.iter()) {
            assert!((g - w).abs() < 1e-5, "{g} vs {w}");
        }
        // Not squared: the point (3, 4) is at distance 5 from the origin.
        let g = neighbors_from_hits(vec![vec![(1, 5.0)]], 1, 4).unwrap();
        assert_eq!(g.distances[[0, 0]], 5.0);
    }

    #[test]
    fn foreign_answers_are_refused() {
        let short = neighbors_from_hits(vec![vec![(0, 1.0)]], 2, 5);
        assert!(format!("{}", short.unwrap_err()).contains("fewer points"));
        let id = neighbors_from_hits(vec![vec![(7, 1.0)]], 1, 5);
        assert!(format!("{}", id.unwrap_err()).contains("another bank"));
        let nan = neighbors_from_hits(vec![vec![(1, f32::NAN)]], 1, 5);
        assert!(nan.is_err());
        let neg = neighbors_from_hits(vec![vec![(1, -0.5)]], 1, 5);
        assert!(neg.is_err());
        let empty = neighbors_from_hits(vec![], 1, 5).unwrap();
        assert_eq!(empty.distances.dim(), (0, 1));
    }
}
