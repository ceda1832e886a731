//! Feature extraction and fitting the memory bank (in memory, or merge-and-reduce under
//! `fit.max_feature_memory_mb`).

use std::borrow::Cow;
use std::path::PathBuf;
use std::time::Instant;

use burn::tensor::{Tensor, TensorData};
use ndarray::{Array2, Axis, s};
use patchcore_core::{Error, NoProgress, PatchFeatures, Progress, Result};
use patchcore_data::load_rgb_with;
use patchcore_sampler::Sampler;
use rayon::prelude::*;

use super::{FitStats, FittedOn, FittedPatchCore, PatchCore};

/// Training images: files decoded batch by batch, or images already in memory.
#[derive(Debug, Clone, Copy)]
pub enum TrainImages<'a> {
    /// Image files, decoded in parallel under the model's image limits.
    Paths(&'a [PathBuf]),
    /// Decoded images.
    Decoded(&'a [image::RgbImage]),
}

impl<'a> TrainImages<'a> {
    /// Number of images.
    pub fn len(&self) -> usize {
        match self {
            TrainImages::Paths(p) => p.len(),
            TrainImages::Decoded(d) => d.len(),
        }
    }

    /// Whether there is no image.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Images `range`.
    pub(super) fn slice(&self, range: std::ops::Range<usize>) -> TrainImages<'a> {
        match *self {
            TrainImages::Paths(p) => TrainImages::Paths(&p[range]),
            TrainImages::Decoded(d) => TrainImages::Decoded(&d[range]),
        }
    }
}

/// A model's sampler, or one built for another seed ([`PatchCore::sampler_for_seed`]).
pub enum SeededSampler<'a> {
    /// The model's own sampler (the config's seed).
    Own(&'a dyn Sampler),
    /// A sampler built from the config's `[sampler]` with another seed.
    Built(Box<dyn Sampler>),
}

impl SeededSampler<'_> {
    /// The sampler.
    pub fn get(&self) -> &dyn Sampler {
        match self {
            SeededSampler::Own(s) => *s,
            SeededSampler::Built(b) => b.as_ref(),
        }
    }
}

/// Something to fit: at least one image and one seed.
pub(super) fn check_fit_args(train: TrainImages<'_>, seeds: &[u64]) -> Result<()> {
    if train.is_empty() {
        return Err(Error::InvalidArgument("no training images".into()));
    }
    if seeds.is_empty() {
        return Err(Error::InvalidArgument("no seeds to fit".into()));
    }
    Ok(())
}

/// Seconds spent extracting and subsampling, summed over a fit.
#[derive(Default)]
struct Clock {
    extract: f64,
    sample: f64,
}

impl<S: Sync> PatchCore<S> {
    /// Patch features of decoded images (one backbone pass).
    pub fn extract_images(&self, images: &[image::RgbImage]) -> Result<PatchFeatures> {
        if images.is_empty() {
            return Err(Error::InvalidArgument(
                "no images to extract features from".into(),
            ));
        }
        let per_call = self.forward_batch.clamp(1, images.len());
        if per_call < images.len() {
            // Forward calls of `per_call` images in parallel: at batch 1 on the CPU backends
            // this keeps both cores busy where one batched forward leaves a third idle.
            let parts: Vec<PatchFeatures> = images
                .par_chunks(per_call)
                .map(|chunk| self.extract_one_call(chunk))
                .collect::<Result<_>>()?;
            return PatchFeatures::concat(&parts);
        }
        self.extract_one_call(images)
    }

    /// Patch features of `images` from one backbone forward call.
    fn extract_one_call(&self, images: &[image::RgbImage]) -> Result<PatchFeatures> {
        let c = self.geometry.crop as usize;
        let values: Vec<f32> = images
            .par_iter()
            .flat_map_iter(|img| self.geometry.to_tensor_values(img))
            .collect();
        let x = Tensor::<4>::from_data(
            TensorData::new(values, [images.len(), 3, c, c]),
            self.backbone.device(),
        );
        let maps = self.backbone.forward_host(x)?;
        self.aggregator.aggregate(&maps)
    }

    /// Patch features of image files, in batches of `batch_size`, decoding in parallel.
    pub fn extract_paths(
        &self,
        paths: &[PathBuf],
        progress: &dyn Progress,
    ) -> Result<PatchFeatures> {
        if paths.is_empty() {
            return Err(Error::InvalidArgument("no images given".into()));
        }
        progress.start(paths.len() as u64, "feature extraction");
        let source = TrainImages::Paths(paths);
        let head = source.slice(0..self.batch_size().min(paths.len()));
        let first = self.extract_images(&self.images(head)?)?;
        progress.advance(head.len() as u64);
        let rest = source.slice(head.len()..paths.len());
        let all = self.extract_rest(&first, rest, paths.len(), progress)?;
        progress.finish();
        PatchFeatures::new(all, paths.len(), first.grid_h, first.grid_w)
    }

    /// A matrix for the features of `total_images` images that starts with `first`'s rows and
    /// continues with those of `rest`.
    fn extract_rest(
        &self,
        first: &PatchFeatures,
        rest: TrainImages<'_>,
        total_images: usize,
        progress: &dyn Progress,
    ) -> Result<Array2<f32>> {
        let head_rows = first.features.nrows();
        let mut all = Array2::zeros((total_images * first.patches_per_image(), first.dim()));
        all.slice_mut(s![..head_rows, ..]).assign(&first.features);
        self.extract_into(rest, &mut all, head_rows, progress)?;
        Ok(all)
    }

    /// Extracts `paths` batch by batch into rows `row..` of `out`; returns the row after the
    /// last one written.
    fn extract_into(
        &self,
        images: TrainImages<'_>,
        out: &mut Array2<f32>,
        mut row: usize,
        progress: &dyn Progress,
    ) -> Result<usize> {
        let n = images.len();
        for start in (0..n).step_by(self.batch_size()) {
            let chunk = images.slice(start..(start + self.batch_size()).min(n));
            let pf = self.extract_images(&self.images(chunk)?)?;
            out.slice_mut(s![row..row + pf.features.nrows(), ..])
                .assign(&pf.features);
            row += pf.features.nrows();
            progress.advance(chunk.len() as u64);
        }
        Ok(row)
    }

    /// The decoded images of a source: borrowed when already decoded.
    pub(super) fn images<'a>(&self, source: TrainImages<'a>) -> Result<Cow<'a, [image::RgbImage]>> {
        match source {
            TrainImages::Paths(p) => Ok(Cow::Owned(self.decode(p)?)),
            TrainImages::Decoded(d) => Ok(Cow::Borrowed(d)),
        }
    }

    pub(super) fn decode(&self, paths: &[PathBuf]) -> Result<Vec<image::RgbImage>> {
        paths
            .par_iter()
            .map(|p| load_rgb_with(p, &self.limits))
            .collect()
    }

    /// The sampler, or an error for a loaded model whose sampler was custom.
    fn fit_sampler(&self) -> Result<&dyn Sampler> {
        self.sampler.as_deref().ok_or_else(|| {
            Error::InvalidArgument(format!(
                "the model was fitted with the custom sampler `{}`: to fit again, pass a \
                 sampler (LoadOptions::sampler or PatchCoreBuilder::sampler)",
                self.config.sampler.kind()
            ))
        })
    }
}

impl PatchCore {
    /// Fits the memory bank on defect-free images with the model's sampler and returns the
    /// fitted model ([`FittedPatchCore::fit_stats`] has the timings). When the training
    /// features would exceed `fit.max_feature_memory_mb`, fitting streams in chunks (see
    /// [`crate::config::FitConfig`]).
    pub fn fit(self, train: &[PathBuf], progress: &dyn Progress) -> Result<FittedPatchCore> {
        self.fit_source(TrainImages::Paths(train), progress)
    }

    /// As [`PatchCore::fit`], on images already decoded.
    pub fn fit_images(
        self,
        train: &[image::RgbImage],
        progress: &dyn Progress,
    ) -> Result<FittedPatchCore> {
        self.fit_source(TrainImages::Decoded(train), progress)
    }

    /// As [`PatchCore::fit`], on files or decoded images.
    pub fn fit_source(
        self,
        train: TrainImages<'_>,
        progress: &dyn Progress,
    ) -> Result<FittedPatchCore> {
        let seed = self.config.seed;
        let (set, mut stats) = self
            .fit_bank_sets(train, &[seed], progress)?
            .pop()
            .expect("one seed");
        let t2 = Instant::now();
        let indices = set
            .banks
            .into_iter()
            .map(|b| self.index_builder.build(b))
            .collect::<Result<Vec<_>>>()?;
        stats.index_seconds = t2.elapsed().as_secs_f64();
        let fitted_on = FittedOn {
            dataset: "images".into(),
            num_train: stats.num_images,
            rows_full: stats.bank_rows_full,
        };
        Ok(self.with_indices(indices, set.image_size, fitted_on, Some(stats)))
    }
}

impl<S: Sync> PatchCore<S> {
    /// The sampler of this model with every random choice drawn from `seed`: the model's own
    /// for the config's seed, else one built from the config's `[sampler]` (a custom sampler
    /// cannot be reseeded).
    pub fn sampler_for_seed(&self, seed: u64) -> Result<SeededSampler<'_>> {
        let own = self.fit_sampler()?;
        if seed == self.config.seed {
            return Ok(SeededSampler::Own(own));
        }
        match &self.config.sampler {
            patchcore_sampler::SamplerParams::Custom { name } => Err(Error::config(
                "seeds",
                format!(
                    "the custom sampler `{name}` cannot be reseeded: run one seed (the \
                     config's `seed`), or build the sampler from the config"
                ),
            )),
            p => Ok(SeededSampler::Built(p.build(seed)?)),
        }
    }

    /// Memory banks of `train` for each of `seeds` (sampler reseeded per seed, see
    /// [`PatchCore::sampler_for_seed`]), without installing any. When the features fit in
    /// `fit.max_feature_memory_mb` they are extracted once and every seed selects from the
    /// same matrix: a later seed costs only its selection (its stats show no extraction
    /// time). A streamed fit extracts again for every seed.
    ///
    /// Untiled models only: a tiled model fits through [`PatchCore::fit_bank_sets`].
    pub fn fit_banks(
        &self,
        train: TrainImages<'_>,
        seeds: &[u64],
        progress: &dyn Progress,
    ) -> Result<Vec<(Array2<f32>, FitStats)>> {
        check_fit_args(train, seeds)?;
        if self.tiling.is_some() {
            return Err(Error::InvalidArgument(
                "a tiled model ([tiling]) fits through fit_bank_sets".into(),
            ));
        }
        let samplers = seeds
            .iter()
            .map(|&s| self.sampler_for_seed(s))
            .collect::<Result<Vec<_>>>()?;
        let t0 = Instant::now();
        let n = train.len();
        let budget = self
            .config
            .fit
            .max_feature_memory_mb
            .saturating_mul(1 << 20);
        // The first batch tells the feature size per image.
        progress.start(n as u64, "feature extraction");
        let head = train.slice(0..self.batch_size().min(n));
        let first = self.extract_images(&self.images(head)?)?;
        progress.advance(head.len() as u64);
        let ppi = first.patches_per_image();
        let total_rows = n * ppi;
        let per_image = ppi * first.dim() * 4;
        let chunk_images = if budget == 0 || per_image * n <= budget {
            n
        } else {
            (budget / 2 / per_image).max(self.batch_size()).max(1)
        };
        let stats = |bank: &Array2<f32>, clock: &Clock, chunks| FitStats {
            num_images: n,
            bank_rows_full: total_rows,
            bank_rows: bank.nrows(),
            feature_dim: bank.ncols(),
            extract_seconds: clock.extract,
            sample_seconds: clock.sample,
            index_seconds: 0.0,
            chunks,
            sampler: String::new(),
            banks: 1,
        };
        let mut out = Vec::with_capacity(seeds.len());
        if chunk_images >= n {
            // Everything fits: one matrix, one selection per seed (the paper's procedure).
            let all = self.extract_rest(&first, train.slice(head.len()..n), n, progress)?;
            drop(first);
            progress.finish();
            let mut extract = t0.elapsed().as_secs_f64();
            for sampler in &samplers {
                let t1 = Instant::now();
                let selected = sampler.get().select(all.view(), progress)?;
                let clock = Clock {
                    extract: std::mem::take(&mut extract),
                    sample: t1.elapsed().as_secs_f64(),
                };
                let bank = all.select(Axis(0), &selected);
                let mut st = stats(&bank, &clock, 1);
                st.sampler = sampler.get().name().to_string();
                out.push((st, bank));
            }
        } else {
            let mut first = Some(first);
            for sampler in &samplers {
                let mut clock = Clock::default();
                let head_feats = match first.take() {
                    Some(f) => {
                        clock.extract += t0.elapsed().as_secs_f64();
                        f
                    }
                    None => {
                        let te = Instant::now();
                        let f = self.extract_images(&self.images(head)?)?;
                        clock.extract += te.elapsed().as_secs_f64();
                        progress.start(n as u64, "feature extraction");
                        progress.advance(head.len() as u64);
                        f
                    }
                };
                let (bank, chunks) = self.fit_streamed(
                    sampler.get(),
                    train,
                    head_feats,
                    chunk_images,
                    &mut clock,
                    progress,
                )?;
                let mut st = stats(&bank, &clock, chunks);
                st.sampler = sampler.get().name().to_string();
                out.push((st, bank));
            }
        }
        Ok(out.into_iter().map(|(s, b)| (b, s)).collect())
    }

    /// Merge and reduce: images are extracted `chunk_images` at a time, each chunk keeps
    /// twice its share of the bank (selected by `sampler`), and a final selection over the
    /// union picks the bank. Returns the bank and the number of chunks.
    fn fit_streamed(
        &self,
        sampler: &dyn Sampler,
        train: TrainImages<'_>,
        first: PatchFeatures,
        chunk_images: usize,
        clock: &mut Clock,
        progress: &dyn Progress,
    ) -> Result<(Array2<f32>, usize)> {
        let n = train.len();
        let (ppi, dim) = (first.patches_per_image(), first.dim());
        let total_rows = n * ppi;
        let target = sampler.size().resolve(total_rows);
        let budget_mb = self.config.fit.max_feature_memory_mb;
        if target * dim * 4 * 2 > budget_mb.saturating_mul(1 << 20) {
            return Err(Error::config(
                "fit.max_feature_memory_mb",
                format!(
                    "the bank alone ({target} rows x {dim} x 4 bytes, kept twice while \
                     merging = {} MiB) exceeds the bound of {budget_mb} MiB: raise it or lower \
                     sampler.ratio",
                    (target * dim * 8) >> 20,
                ),
            ));
        }
        let head_images = first.batch;
        let mut union: Vec<Array2<f32>> = Vec::new();
        let mut first = Some(first);
        for start in (0..n).step_by(chunk_images) {
            let end = (start + chunk_images).min(n);
            let rows = (end - start) * ppi;
            let mut feats = Array2::<f32>::zeros((rows, dim));
            // The first chunk begins with the batch already extracted.
            let (from, row) = match first.take() {
                Some(f) => {
                    let r = f.features.nrows();
                    feats.slice_mut(s![..r, ..]).assign(&f.features);
                    (head_images, r)
                }
                None => (start, 0),
            };
            let te = Instant::now();
            self.extract_into(train.slice(from..end), &mut feats, row, progress)?;
            clock.extract += te.elapsed().as_secs_f64();
            let keep = ((2 * target * rows).div_ceil(total_rows)).clamp(1, rows);
            let ts = Instant::now();
            let sel = sampler.select_count(feats.view(), keep, &NoProgress)?;
            clock.sample += ts.elapsed().as_secs_f64();
            union.push(feats.select(Axis(0), &sel));
        }
        progress.finish();
        let chunks = union.len();
        let views: Vec<_> = union.iter().map(|a| a.view()).collect();
        let merged =
            ndarray::concatenate(Axis(0), &views).map_err(|e| Error::Shape(e.to_string()))?;
        drop(union);
        let ts = Instant::now();
        let sel = sampler.select_count(merged.view(), target, progress)?;
        clock.sample += ts.elapsed().as_secs_f64();
        tracing::info!(
            chunks,
            images_per_chunk = chunk_images,
            "streamed fit: features of {n} images exceed fit.max_feature_memory_mb"
        );
        Ok((merged.select(Axis(0), &sel), chunks))
    }
}
