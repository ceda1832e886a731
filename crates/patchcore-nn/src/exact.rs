use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis};
use patchcore_core::{Error, Result};
use rayon::prelude::*;

use crate::{NearestNeighborIndex, Neighbors, TopK, check_query};

/// Exact k-NN by blocked GEMM.
///
/// Squared distances are expanded as `‖q‖² + ‖m‖² − 2 q·m`: one GEMM per (query block, bank
/// block) computes `−2 q·m` straight into a scratch tile, one vectorised pass adds the norms,
/// and the `k` smallest are kept (for `k = 1`, a lane-wise minimum and one scan for its first
/// position). Query blocks are sized so that every thread gets the same number of them.
#[derive(Debug, Clone)]
pub struct ExactIndex {
    bank: Array2<f32>,
    norms: Array1<f32>,
}

/// Upper bound on the query rows of one GEMM call (the tile `QUERY_BLOCK x BANK_BLOCK` stays
/// in L2).
const QUERY_BLOCK: usize = 128;
const BANK_BLOCK: usize = 2048;
/// Lanes of the minimum reduction (one AVX-512 register, two AVX2 registers).
const LANES: usize = 16;

/// Splits `nq` queries into blocks of at most `QUERY_BLOCK` rows whose count is a multiple of
/// `threads` (so no thread idles on the last block), returning the block length.
fn query_block_len(nq: usize, threads: usize) -> usize {
    let threads = threads.max(1);
    let min_blocks = nq.div_ceil(QUERY_BLOCK).max(1);
    let blocks = min_blocks.div_ceil(threads) * threads;
    nq.div_ceil(blocks).max(1)
}

/// Turns the tile row `−2 q·m_j` into `(‖q‖² + ‖m_j‖²) − 2 q·m_j` in place and returns the
/// smallest value with its first position.
#[inline]
fn finish_row_min(row: &mut [f32], qn: f32, norms: &[f32]) -> (f32, usize) {
    let mut acc = [f32::INFINITY; LANES];
    let mut chunks = row.chunks_exact_mut(LANES);
    let mut nchunks = norms.chunks_exact(LANES);
    for (c, n) in (&mut chunks).zip(&mut nchunks) {
        for l in 0..LANES {
            let v = (qn + n[l]) + c[l];
            c[l] = v;
            acc[l] = if v < acc[l] { v } else { acc[l] };
        }
    }
    let mut best = f32::INFINITY;
    for (c, n) in chunks.into_remainder().iter_mut().zip(nchunks.remainder()) {
        *c += qn + n;
        best = best.min(*c);
    }
    for a in acc {
        best = best.min(a);
    }
    let pos = row.iter().position(|&v| v == best).unwrap_or(0);
    (best, pos)
}

/// Same as [`finish_row_min`] without the reduction.
#[inline]
fn finish_row(row: &mut [f32], qn: f32, norms: &[f32]) {
    for (c, n) in row.iter_mut().zip(norms) {
        *c += qn + n;
    }
}

impl ExactIndex {
    /// Builds the index; the bank must be non-empty and finite.
    pub fn new(bank: Array2<f32>) -> Result<Self> {
        if bank.nrows() == 0 || bank.ncols() == 0 {
            return Err(Error::InvalidArgument(format!(
                "memory bank of shape {:?} is empty",
                bank.shape()
            )));
        }
        if bank.iter().any(|v| !v.is_finite()) {
            return Err(Error::NonFinite(
                "memory bank holds NaN or infinite values".into(),
            ));
        }
        let bank = bank.as_standard_layout().into_owned();
        let norms = bank.map_axis(Axis(1), |r| r.dot(&r));
        Ok(Self { bank, norms })
    }

    /// The bank rows.
    pub fn bank(&self) -> &Array2<f32> {
        &self.bank
    }

    /// `tile[i, j] = −2 q_i · m_{b0+j}` for `nb` bank rows; row-major `[nq, nb]`.
    #[allow(unsafe_code)]
    fn gemm_tile(&self, q: ArrayView2<'_, f32>, b0: usize, nb: usize, tile: &mut [f32]) {
        let nq = q.nrows();
        let dim = q.ncols();
        debug_assert!(tile.len() >= nq * nb);
        let bank = self.bank.as_slice().expect("standard layout");
        // SAFETY: `tile` holds nq * nb floats written with row stride nb; `q` is nq x dim with
        // the strides passed; the bank slice from row b0 holds nb rows of dim floats.
        unsafe {
            gemm::gemm(
                nq,
                nb,
                dim,
                tile.as_mut_ptr(),
                1,
                nb as isize,
                false,
                q.as_ptr(),
                q.strides()[1],
                q.strides()[0],
                bank.as_ptr().add(b0 * dim),
                dim as isize,
                1,
                0.0,
                -2.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
    }

    /// 1-NN of a query block: squared distance and index per query.
    fn search_block_1(&self, q: ArrayView2<'_, f32>, out_d: &mut [f32], out_i: &mut [usize]) {
        let nq = q.nrows();
        let qn: Vec<f32> = q.rows().into_iter().map(|r| r.dot(&r)).collect();
        let mut best = vec![(f32::INFINITY, 0usize); nq];
        let mut tile = vec![0f32; nq * BANK_BLOCK.min(self.bank.nrows())];
        let norms = self.norms.as_slice().expect("contiguous norms");
        for b0 in (0..self.bank.nrows()).step_by(BANK_BLOCK) {
            let nb = BANK_BLOCK.min(self.bank.nrows() - b0);
            self.gemm_tile(q, b0, nb, &mut tile);
            for (i, b) in best.iter_mut().enumerate() {
                let (v, j) =
                    finish_row_min(&mut tile[i * nb..(i + 1) * nb], qn[i], &norms[b0..b0 + nb]);
                if v < b.0 {
                    *b = (v, b0 + j);
                }
            }
        }
        for (i, (d2, j)) in best.into_iter().enumerate() {
            out_d[i] = d2.max(0.0).sqrt();
            out_i[i] = j;
        }
    }

    /// k-NN of a query block, `k > 1`.
    fn search_block_k(
        &self,
        q: ArrayView2<'_, f32>,
        k: usize,
        out_d: &mut [f32],
        out_i: &mut [usize],
    ) {
        let nq = q.nrows();
        let qn: Vec<f32> = q.rows().into_iter().map(|r| r.dot(&r)).collect();
        let mut tops: Vec<TopK> = (0..nq).map(|_| TopK::new(k)).collect();
        let mut tile = vec![0f32; nq * BANK_BLOCK.min(self.bank.nrows())];
        let norms = self.norms.as_slice().expect("contiguous norms");
        for b0 in (0..self.bank.nrows()).step_by(BANK_BLOCK) {
            let nb = BANK_BLOCK.min(self.bank.nrows() - b0);
            self.gemm_tile(q, b0, nb, &mut tile);
            for (i, top) in tops.iter_mut().enumerate() {
                let row = &mut tile[i * nb..(i + 1) * nb];
                finish_row(row, qn[i], &norms[b0..b0 + nb]);
                for (j, &d2) in row.iter().enumerate() {
                    let d2 = d2.max(0.0);
                    if d2 < top.worst() {
                        top.push(d2, b0 + j);
                    }
                }
            }
        }
        for (i, top) in tops.into_iter().enumerate() {
            for (j, (d, idx)) in top.d.into_iter().zip(top.i).enumerate() {
                out_d[i * k + j] = d.sqrt();
                out_i[i * k + j] = idx;
            }
        }
    }
}

impl NearestNeighborIndex for ExactIndex {
    fn name(&self) -> &str {
        "exact_gemm"
    }

    fn len(&self) -> usize {
        self.bank.nrows()
    }

    fn dim(&self) -> usize {
        self.bank.ncols()
    }

    fn row(&self, i: usize) -> ArrayView1<'_, f32> {
        self.bank.row(i)
    }

    fn search(&self, queries: ArrayView2<'_, f32>, k: usize) -> Result<Neighbors> {
        let k = check_query(self, &queries, k)?;
        if queries.iter().any(|v| !v.is_finite()) {
            return Err(Error::NonFinite(
                "query features hold NaN or infinite values".into(),
            ));
        }
        let queries = queries.as_standard_layout();
        let nq = queries.nrows();
        let mut distances = Array2::<f32>::zeros((nq, k));
        let mut indices = Array2::<usize>::zeros((nq, k));
        let block = query_block_len(nq, rayon::current_num_threads());
        distances
            .as_slice_mut()
            .expect("owned")
            .par_chunks_mut(block * k)
            .zip(
                indices
                    .as_slice_mut()
                    .expect("owned")
                    .par_chunks_mut(block * k),
            )
            .enumerate()
            .for_each(|(blk, (od, oi))| {
                let q0 = blk * block;
                let q1 = (q0 + block).min(nq);
                let q = queries.slice(ndarray::s![q0..q1, ..]);
                if k == 1 {
                    self.search_block_1(q, od, oi);
                } else {
                    self.search_block_k(q, k, od, oi);
                }
            });
        Ok(Neighbors { distances, indices })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_blocks_are_balanced_across_threads() {
        // (queries, threads) -> rows per block, blocks
        for (nq, threads, len, blocks) in [
            (784, 2, 98, 8),
            (6272, 2, 126, 50),
            (784, 16, 49, 16),
            (129, 1, 65, 2),
            (10, 2, 5, 2),
            (1, 4, 1, 1),
        ] {
            let b = query_block_len(nq, threads);
            assert_eq!(
                (b, nq.div_ceil(b)),
                (len, blocks),
                "{nq} queries, {threads} threads"
            );
            assert!(b <= QUERY_BLOCK);
        }
    }

    #[test]
    fn row_minimum_takes_the_first_smallest_value() {
        let norms: Vec<f32> = (0..37).map(|j| (j % 5) as f32).collect();
        let mut row = vec![0f32; 37];
        let (v, j) = finish_row_min(&mut row, 1.0, &norms);
        assert_eq!((v, j), (1.0, 0));
        let mut row: Vec<f32> = (0..37).map(|j| -(j as f32)).collect();
        let (v, j) = finish_row_min(&mut row, 0.0, &[0.0; 37]);
        assert_eq!((v, j), (-36.0, 36));
        let mut row = vec![0f32; 37];
        row[20] = -3.0;
        row[33] = -3.0;
        let (v, j) = finish_row_min(&mut row, 0.0, &[0.0; 37]);
        assert_eq!((v, j), (-3.0, 20));
    }
}
