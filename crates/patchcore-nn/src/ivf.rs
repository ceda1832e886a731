use ndarray::{Array2, ArrayView1, ArrayView2, Axis};
use patchcore_core::{Error, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::exact::ExactIndex;
use crate::{NearestNeighborIndex, Neighbors, TopK, check_query};

/// An inverted-file index (IVF-flat, Jégou et al. 2011): the bank is partitioned by a
/// k-means coarse quantiser into `nlist` cells; a query scans only the rows of its `nprobe`
/// nearest cells, with exact distances. Approximate: a true neighbour in an unprobed cell is
/// missed. `nprobe = nlist` is exact.
#[derive(Debug, Clone)]
pub struct IvfIndex {
    bank: Array2<f32>,
    centroids: ExactIndex,
    /// Per cell: an exact index over its rows (None when empty) and their bank row ids.
    cells: Vec<(Option<ExactIndex>, Vec<usize>)>,
    nprobe: usize,
}

impl IvfIndex {
    /// Builds the index: `nlist` cells (`0` = `round(sqrt(n))`), `iterations` of Lloyd's
    /// k-means from seeded random rows, `nprobe` cells scanned per query.
    pub fn new(
        bank: Array2<f32>,
        nlist: usize,
        nprobe: usize,
        iterations: usize,
        seed: u64,
    ) -> Result<Self> {
        let n = bank.nrows();
        if n == 0 || bank.ncols() == 0 {
            return Err(Error::InvalidArgument("memory bank is empty".into()));
        }
        if bank.iter().any(|v| !v.is_finite()) {
            return Err(Error::NonFinite(
                "memory bank holds NaN or infinite values".into(),
            ));
        }
        let nlist = if nlist == 0 {
            ((n as f64).sqrt().round() as usize).max(1)
        } else {
            nlist
        }
        .min(n);
        if nprobe == 0 {
            return Err(Error::config("nn.nprobe", "must be at least 1"));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let init = rand::seq::index::sample(&mut rng, n, nlist).into_vec();
        let mut centroids = bank.select(Axis(0), &init);
        let mut assign = vec![0usize; n];
        for it in 0..=iterations {
            let index = ExactIndex::new(centroids.clone())?;
            let nn = index.search(bank.view(), 1)?;
            assign = nn.indices.column(0).to_vec();
            if it == iterations {
                break;
            }
            let mut sums = Array2::<f64>::zeros(centroids.dim());
            let mut counts = vec![0usize; nlist];
            for (i, &c) in assign.iter().enumerate() {
                counts[c] += 1;
                sums.row_mut(c)
                    .zip_mut_with(&bank.row(i), |s, v| *s += *v as f64);
            }
            for (c, &count) in counts.iter().enumerate() {
                if count > 0 {
                    centroids
                        .row_mut(c)
                        .assign(&sums.row(c).mapv(|v| (v / count as f64) as f32));
                }
                // An empty cell keeps its centroid (it stays a valid, if useless, probe).
            }
        }
        let mut lists = vec![Vec::new(); nlist];
        for (i, &c) in assign.iter().enumerate() {
            lists[c].push(i);
        }
        let cells = lists
            .into_iter()
            .map(|ids| {
                let index = if ids.is_empty() {
                    None
                } else {
                    Some(ExactIndex::new(bank.select(Axis(0), &ids))?)
                };
                Ok((index, ids))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            bank,
            centroids: ExactIndex::new(centroids)?,
            cells,
            nprobe: nprobe.min(nlist),
        })
    }

    /// Number of cells.
    pub fn nlist(&self) -> usize {
        self.cells.len()
    }
}

impl NearestNeighborIndex for IvfIndex {
    fn name(&self) -> &str {
        "ivf_flat"
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
        let probes = self.centroids.search(queries, self.nprobe)?;
        let nq = queries.nrows();
        // Batch the queries by probed cell, so each cell is searched with one GEMM.
        let mut per_cell: Vec<Vec<usize>> = vec![Vec::new(); self.cells.len()];
        for r in 0..nq {
            for &cell in probes.indices.row(r) {
                per_cell[cell].push(r);
            }
        }
        let found: Vec<(usize, Neighbors)> = per_cell
            .par_iter()
            .enumerate()
            .filter_map(|(c, qs)| match (&self.cells[c].0, qs.is_empty()) {
                (Some(index), false) => Some((c, index, qs)),
                _ => None,
            })
            .map(|(c, index, qs)| Ok((c, index.search(queries.select(Axis(0), qs).view(), k)?)))
            .collect::<Result<_>>()?;
        let mut tops: Vec<TopK> = (0..nq).map(|_| TopK::new(k)).collect();
        for (c, nn) in found {
            let ids = &self.cells[c].1;
            for (j, &r) in per_cell[c].iter().enumerate() {
                for (d, &local) in nn.distances.row(j).iter().zip(nn.indices.row(j)) {
                    tops[r].push(*d, ids[local]);
                }
            }
        }
        let rows = tops;
        let mut distances = Array2::<f32>::from_elem((nq, k), f32::INFINITY);
        let mut indices = Array2::<usize>::zeros((nq, k));
        for (r, top) in rows.into_iter().enumerate() {
            // Fewer than k rows in the probed cells: the remaining slots repeat the farthest
            // found (never happens when the probed cells hold >= k rows).
            let found = top.d.len();
            for j in 0..k {
                let src = j.min(found.saturating_sub(1));
                if found > 0 {
                    distances[[r, j]] = top.d[src];
                    indices[[r, j]] = top.i[src];
                }
            }
        }
        Ok(Neighbors { distances, indices })
    }
}
