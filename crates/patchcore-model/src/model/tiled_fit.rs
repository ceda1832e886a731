//! Fitting a tiled model (`[tiling]`): every training image is cut into tiles at its native
//! resolution, each tile is one network input, and its patch features go to one bank
//! (`shared`) or to the bank of its position (`per_position`).
//!
//! Memory: features are held in a pending buffer of at most a quarter of
//! `fit.max_feature_memory_mb` (plus one image's tiles); when it is full every bank's
//! pending rows are reduced to twice their share of the bank by the sampler (merge and
//! reduce, as the untiled streamed fit), and a final selection over the kept rows picks each
//! bank. The buffer's concatenated copy during a reduction is another quarter, the kept rows
//! (twice the banks) are checked to fit in the remaining half: the features held at once
//! exceed the bound by at most two images' tiles. When everything fits in the first quarter nothing is reduced early and each bank
//! is the sampler's selection over all its rows (the paper's procedure).

use std::collections::HashMap;
use std::time::Instant;

use ndarray::{Array2, Axis, s};
use patchcore_core::{Error, NoProgress, Progress, Result};
use patchcore_data::{TileLayout, Tiling, TilingMode};
use patchcore_sampler::{GreedyAlgorithm, SamplerParams};

use super::fit::{SeededSampler, TrainImages, check_fit_args};
use super::{FitStats, PatchCore};

/// Memory banks of one fit: one, or one per tile position (row-major, as
/// [`TileLayout::origins`]) for `tiling.mode = "per_position"`.
#[derive(Debug, Clone, PartialEq)]
pub struct BankSet {
    /// The banks, `[rows, dim]` each.
    pub banks: Vec<Array2<f32>>,
    /// The training images' size `(width, height)` for a tiled fit whose images share one
    /// (required for per-position banks).
    pub image_size: Option<(u32, u32)>,
}

/// Pending rows per bank, and the rows each seed kept from earlier reductions.
struct Streams {
    /// Rows each bank receives over the whole fit.
    totals: Vec<usize>,
    /// Bank size per seed, per stream.
    targets: Vec<Vec<usize>>,
    pending: Vec<Vec<Array2<f32>>>,
    pending_bytes: usize,
    /// `[seed][stream]`: rows kept by the reductions so far.
    kept: Vec<Vec<Vec<Array2<f32>>>>,
    reductions: usize,
}

impl Streams {
    fn push(&mut self, stream: usize, rows: Array2<f32>) {
        self.pending_bytes += rows.len() * 4;
        self.pending[stream].push(rows);
    }

    /// One image's tile features (`ppi` rows per tile): all to the shared bank, or each
    /// tile's rows to its position's.
    fn push_tiles(&mut self, features: Array2<f32>, ppi: usize, per_position: bool) {
        if !per_position {
            return self.push(0, features);
        }
        for t in 0..features.nrows() / ppi {
            let rows = features.slice(s![t * ppi..(t + 1) * ppi, ..]).to_owned();
            self.push(t, rows);
        }
    }

    /// Every stream's pending rows reduced to twice their share of each seed's bank.
    fn reduce(&mut self, samplers: &[SeededSampler<'_>]) -> Result<()> {
        for (s, blocks) in self.pending.iter_mut().enumerate() {
            if blocks.is_empty() {
                continue;
            }
            let block = concat(&std::mem::take(blocks))?;
            let rows = block.nrows();
            for (i, sampler) in samplers.iter().enumerate() {
                let keep = (2 * self.targets[i][s] * rows)
                    .div_ceil(self.totals[s])
                    .clamp(1, rows);
                let sel = sampler
                    .get()
                    .select_count(block.view(), keep, &NoProgress)?;
                self.kept[i][s].push(block.select(Axis(0), &sel));
            }
        }
        self.pending_bytes = 0;
        self.reductions += 1;
        Ok(())
    }

    /// The banks of every seed: one selection over all rows when nothing was reduced, else a
    /// last reduction and a selection over the kept rows.
    fn finish(
        mut self,
        samplers: &[SeededSampler<'_>],
        progress: &dyn Progress,
    ) -> Result<(Vec<Vec<Array2<f32>>>, usize)> {
        let streams = self.totals.len();
        progress.start(
            (streams * samplers.len()) as u64,
            "coreset selection (banks)",
        );
        let mut out = vec![Vec::with_capacity(streams); samplers.len()];
        if self.reductions == 0 {
            for (s, blocks) in self.pending.iter_mut().enumerate() {
                let all = concat(&std::mem::take(blocks))?;
                for (i, sampler) in samplers.iter().enumerate() {
                    let sel =
                        sampler
                            .get()
                            .select_count(all.view(), self.targets[i][s], &NoProgress)?;
                    out[i].push(all.select(Axis(0), &sel));
                    progress.advance(1);
                }
            }
            progress.finish();
            return Ok((out, 1));
        }
        self.reduce(samplers)?;
        for (i, sampler) in samplers.iter().enumerate() {
            for s in 0..streams {
                let merged = concat(&std::mem::take(&mut self.kept[i][s]))?;
                let k = self.targets[i][s].min(merged.nrows());
                let sel = sampler.get().select_count(merged.view(), k, &NoProgress)?;
                out[i].push(merged.select(Axis(0), &sel));
                progress.advance(1);
            }
        }
        progress.finish();
        Ok((out, self.reductions))
    }
}

fn concat(blocks: &[Array2<f32>]) -> Result<Array2<f32>> {
    let views: Vec<_> = blocks.iter().map(|a| a.view()).collect();
    ndarray::concatenate(Axis(0), &views).map_err(|e| Error::Shape(e.to_string()))
}

impl<S: Sync> PatchCore<S> {
    /// Memory banks of `train` for each of `seeds`: for an untiled model one bank per seed
    /// ([`PatchCore::fit_banks`]); for a tiled one the tiles' banks (see the module docs).
    pub fn fit_bank_sets(
        &self,
        train: TrainImages<'_>,
        seeds: &[u64],
        progress: &dyn Progress,
    ) -> Result<Vec<(BankSet, FitStats)>> {
        match self.tiling {
            None => Ok(self
                .fit_banks(train, seeds, progress)?
                .into_iter()
                .map(|(bank, stats)| {
                    let set = BankSet {
                        banks: vec![bank],
                        image_size: None,
                    };
                    (set, stats)
                })
                .collect()),
            Some(tiling) => self.fit_tiled(tiling, train, seeds, progress),
        }
    }

    /// A bank set this model can install: one bank, or one per tile position of its image
    /// size; all of one width.
    pub(super) fn check_bank_set(&self, set: &BankSet) -> Result<()> {
        let expected = match (self.tiling, set.image_size) {
            (Some(t), Some((w, h))) if t.mode() == TilingMode::PerPosition => t.layout(w, h)?.len(),
            (Some(t), None) if t.mode() == TilingMode::PerPosition => {
                return Err(Error::InvalidArgument(
                    "per-position banks need the image size they were fitted at".into(),
                ));
            }
            _ => 1,
        };
        if set.banks.len() != expected {
            return Err(Error::Shape(format!(
                "{} banks given, the model needs {expected} (tiling.mode = {:?})",
                set.banks.len(),
                self.tiling.map(|t| t.mode()).unwrap_or_default()
            )));
        }
        let dim = set.banks[0].ncols();
        if set.banks.iter().any(|b| b.ncols() != dim || b.nrows() == 0) {
            return Err(Error::Shape(
                "every bank must be non-empty and of one width".into(),
            ));
        }
        Ok(())
    }

    /// Each training image's size, from its header (nothing decoded yet), and its tiles.
    fn train_layouts(&self, tiling: Tiling, train: TrainImages<'_>) -> Result<Vec<TileLayout>> {
        let mut cache: HashMap<(u32, u32), TileLayout> = HashMap::new();
        let mut first: Option<((u32, u32), String)> = None;
        (0..train.len())
            .map(|i| {
                let (size, name) = match train {
                    TrainImages::Paths(p) => {
                        let size = image::image_dimensions(&p[i]).map_err(|e| Error::Dataset {
                            path: p[i].clone(),
                            message: format!("cannot read the image size: {e}"),
                        })?;
                        (size, p[i].display().to_string())
                    }
                    TrainImages::Decoded(d) => (d[i].dimensions(), format!("image {i}")),
                };
                let located = |message: String| Error::Dataset {
                    path: name.clone().into(),
                    message,
                };
                let pixels = size.0 as u64 * size.1 as u64;
                if pixels > self.limits.max_pixels {
                    return Err(located(format!(
                        "{}x{} = {pixels} pixels exceeds data.max_image_pixels ({})",
                        size.0, size.1, self.limits.max_pixels
                    )));
                }
                match &first {
                    Some((s0, n0)) if tiling.mode() == TilingMode::PerPosition && *s0 != size => {
                        return Err(located(format!(
                            "is {}x{}, but {n0} is {}x{}: tiling.mode = \"per_position\" keeps \
                             one bank per tile position and needs every image at one size \
                             (use mode = \"shared\" for mixed sizes)",
                            size.0, size.1, s0.0, s0.1
                        )));
                    }
                    None => first = Some((size, name.clone())),
                    _ => {}
                }
                if let Some(l) = cache.get(&size) {
                    return Ok(l.clone());
                }
                let l = tiling
                    .layout(size.0, size.1)
                    .map_err(|e| located(e.to_string()))?;
                cache.insert(size, l.clone());
                Ok(l)
            })
            .collect()
    }

    /// The sampler of `seed` for banks of `rows` rows each: the configured greedy turned
    /// partitioned above `tiling.partitioned_above_rows`.
    fn tiled_sampler(&self, tiling: Tiling, seed: u64, rows: usize) -> Result<SeededSampler<'_>> {
        let above = tiling.partitioned_above_rows();
        if above > 0
            && rows > above
            && let SamplerParams::GreedyCoreset(p) = &self.config.sampler
            && p.greedy == GreedyAlgorithm::Pruned
        {
            let mut q = p.clone();
            q.greedy = GreedyAlgorithm::Partitioned;
            return Ok(SeededSampler::Built(
                SamplerParams::GreedyCoreset(q).build(seed)?,
            ));
        }
        self.sampler_for_seed(seed)
    }

    fn fit_tiled(
        &self,
        tiling: Tiling,
        train: TrainImages<'_>,
        seeds: &[u64],
        progress: &dyn Progress,
    ) -> Result<Vec<(BankSet, FitStats)>> {
        check_fit_args(train, seeds)?;
        for &seed in seeds {
            self.sampler_for_seed(seed)?;
        }
        let layouts = self.train_layouts(tiling, train)?;
        let n = train.len();
        let per_position = tiling.mode() == TilingMode::PerPosition;
        let size0 = layouts[0].image_size();
        let image_size = layouts
            .iter()
            .all(|l| l.image_size() == size0)
            .then_some(size0);
        let t0 = Instant::now();
        progress.start(n as u64, "feature extraction (tiles)");
        let mut extract = 0.0;
        let mut streams: Option<Streams> = None;
        let mut samplers: Vec<SeededSampler<'_>> = Vec::new();
        let chunk_bytes = (self.config.fit.max_feature_memory_mb << 20) / 4;
        let mut sample = 0.0;
        let (mut ppi, mut dim) = (0, 0);
        for start in (0..n).step_by(self.batch_size()) {
            let end = (start + self.batch_size()).min(n);
            let te = Instant::now();
            let images = self.images(train.slice(start..end))?;
            extract += te.elapsed().as_secs_f64();
            for (k, (img, layout)) in images.iter().zip(&layouts[start..end]).enumerate() {
                let te = Instant::now();
                let feats = self.extract_images(&layout.cut(img)?)?;
                if streams.is_none() {
                    (ppi, dim) = (feats.patches_per_image(), feats.dim());
                    let st =
                        self.tiled_streams(tiling, &layouts, ppi, dim, seeds, &mut samplers)?;
                    streams = Some(st);
                }
                let st = streams.as_mut().expect("initialised");
                st.push_tiles(feats.features, ppi, per_position);
                extract += te.elapsed().as_secs_f64();
                // Reduced after any image that fills the buffer: one image's tiles at most
                // above a quarter of the bound.
                if chunk_bytes > 0 && st.pending_bytes >= chunk_bytes && start + k + 1 < n {
                    let ts = Instant::now();
                    st.reduce(&samplers)?;
                    sample += ts.elapsed().as_secs_f64();
                }
            }
            progress.advance((end - start) as u64);
        }
        progress.finish();
        let st = streams.expect("at least one image");
        let total_rows: usize = st.totals.iter().sum();
        let ts = Instant::now();
        let (banks, chunks) = st.finish(&samplers, progress)?;
        sample += ts.elapsed().as_secs_f64();
        tracing::info!(
            tiles = layouts.iter().map(TileLayout::len).sum::<usize>(),
            banks = banks[0].len(),
            chunks,
            sampler = samplers[0].get().name(),
            seconds = format!("{:.1}", t0.elapsed().as_secs_f64()),
            "tiled fit"
        );
        Ok(banks
            .into_iter()
            .zip(&samplers)
            .enumerate()
            .map(|(i, (banks, sampler))| {
                let stats = FitStats {
                    num_images: n,
                    bank_rows_full: total_rows,
                    bank_rows: banks.iter().map(Array2::nrows).sum(),
                    feature_dim: dim,
                    extract_seconds: if i == 0 { extract } else { 0.0 },
                    sample_seconds: sample / seeds.len() as f64,
                    index_seconds: 0.0,
                    chunks,
                    sampler: sampler.get().name().to_string(),
                    banks: banks.len(),
                };
                (BankSet { banks, image_size }, stats)
            })
            .collect())
    }

    /// The streams of a tiled fit once the feature size is known, and each seed's sampler;
    /// an error when the banks alone would not fit in half the memory bound.
    fn tiled_streams<'a>(
        &'a self,
        tiling: Tiling,
        layouts: &[TileLayout],
        ppi: usize,
        dim: usize,
        seeds: &[u64],
        samplers: &mut Vec<SeededSampler<'a>>,
    ) -> Result<Streams> {
        let totals: Vec<usize> = if tiling.mode() == TilingMode::PerPosition {
            vec![layouts.len() * ppi; layouts[0].len()]
        } else {
            vec![layouts.iter().map(TileLayout::len).sum::<usize>() * ppi]
        };
        for &seed in seeds {
            samplers.push(self.tiled_sampler(tiling, seed, totals[0])?);
        }
        let targets: Vec<Vec<usize>> = samplers
            .iter()
            .map(|s| totals.iter().map(|&t| s.get().size().resolve(t)).collect())
            .collect();
        let kept_bytes = targets
            .iter()
            .map(|t| t.iter().sum::<usize>() * dim * 4 * 2)
            .sum::<usize>();
        let budget_mb = self.config.fit.max_feature_memory_mb;
        if budget_mb > 0 && kept_bytes > (budget_mb << 20) / 2 {
            return Err(Error::config(
                "fit.max_feature_memory_mb",
                format!(
                    "the banks of this tiled fit ({} rows x {dim} x 4 bytes, kept twice while \
                     merging = {} MiB) exceed half the bound of {budget_mb} MiB: raise it or \
                     lower sampler.ratio",
                    targets[0].iter().sum::<usize>(),
                    kept_bytes >> 20
                ),
            ));
        }
        let streams = totals.len();
        Ok(Streams {
            totals,
            targets,
            pending: vec![Vec::new(); streams],
            pending_bytes: 0,
            kept: vec![vec![Vec::new(); streams]; seeds.len()],
            reductions: 0,
        })
    }
}
