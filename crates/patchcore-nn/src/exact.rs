use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis};
use patchcore_core::{Error, Result};
use rayon::prelude::*;

use crate::{NearestNeighborIndex, Neighbors, TopK, check_query};

/// Exact k-NN by blocked GEMM.
#[derive(Debug, Clone)]
pub struct ExactIndex {
    bank: Array2<f32>,
    norms: Array1<f32>,
}

const QUERY_BLOCK: usize = 128;
const BANK_BLOCK: usize = 2048;

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

    fn search_block(
        &self,
        q: ArrayView2<'_, f32>,
        k: usize,
        out_d: &mut [f32],
        out_i: &mut [usize],
    ) {
        let nq = q.nrows();
        let dim = q.ncols();
        let qn: Vec<f32> = q.rows().into_iter().map(|r| r.dot(&r)).collect();
        let mut tops: Vec<TopK> = (0..nq).map(|_| TopK::new(k)).collect();
        let mut dots = vec![0f32; nq * BANK_BLOCK];
        let bank = self.bank.as_slice().expect("standard layout");
        for b0 in (0..self.bank.nrows()).step_by(BANK_BLOCK) {
            let nb = BANK_BLOCK.min(self.bank.nrows() - b0);
            // dots[i, j] = q_i . m_{b0+j}; row-major [nq, nb].
            unsafe {
                gemm::gemm(
                    nq,
                    nb,
                    dim,
                    dots.as_mut_ptr(),
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
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
            for (i, top) in tops.iter_mut().enumerate() {
                let row = &dots[i * nb..(i + 1) * nb];
                for (j, &dot) in row.iter().enumerate() {
                    let d2 = (qn[i] + self.norms[b0 + j] - 2.0 * dot).max(0.0);
                    top.push(d2, b0 + j);
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
        distances
            .as_slice_mut()
            .expect("owned")
            .par_chunks_mut(QUERY_BLOCK * k)
            .zip(
                indices
                    .as_slice_mut()
                    .expect("owned")
                    .par_chunks_mut(QUERY_BLOCK * k),
            )
            .enumerate()
            .for_each(|(blk, (od, oi))| {
                let q0 = blk * QUERY_BLOCK;
                let q1 = (q0 + QUERY_BLOCK).min(nq);
                self.search_block(queries.slice(ndarray::s![q0..q1, ..]), k, od, oi);
            });
        Ok(Neighbors { distances, indices })
    }
}
