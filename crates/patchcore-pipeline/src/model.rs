use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::{Tensor, TensorData};
use ndarray::{Array2, s};
use patchcore_aggregate::{FeatureAggregator, LocallyAware, Official};
use patchcore_backbone::{Backbone, EfficientNetLite0, ResNet, ResNetSpec, TensorMap};
use patchcore_core::{Error, PatchFeatures, Progress, Result};
use patchcore_data::{Geometry, ImageLimits, load_rgb_with};
use patchcore_nn::{ExactIndex, IvfIndex, LinfaAlgorithm, LinfaIndex, NearestNeighborIndex};
use patchcore_sampler::{GreedyCoreset, GreedyVariant, IdentitySampler, RandomSampler, Sampler};
use patchcore_score::{PatchCoreScorer, Scorer};
use rayon::prelude::*;

use crate::config::{
    AggregatorKind, Architecture, Config, GreedyAlgorithm, NnConfig, NnKind, SamplerKind,
};

/// Timings and sizes of a fit.
#[derive(Debug, Clone, PartialEq)]
pub struct FitStats {
    pub num_images: usize,
    /// Rows before subsampling.
    pub bank_rows_full: usize,
    /// Rows kept.
    pub bank_rows: usize,
    pub feature_dim: usize,
    pub extract_seconds: f64,
    pub sample_seconds: f64,
    pub index_seconds: f64,
    /// Chunks the features were streamed in (1 = all in memory at once).
    pub chunks: usize,
}

/// Seconds spent in each stage of prediction.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct StageTimes {
    /// Image decoding.
    pub decode: f64,
    /// Preprocessing, backbone and aggregation.
    pub extract: f64,
    /// Nearest-neighbour search and image scores (eq. 7).
    pub search_and_score: f64,
    /// Anomaly maps (upsampling and smoothing).
    pub maps: f64,
}

/// Which weights a model runs on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WeightsInfo {
    /// The file, or a description of the random initialisation.
    pub file: String,
    /// SHA-256 of the file (`-` for random weights).
    pub sha256: String,
    /// `false` for randomly initialised weights.
    pub pretrained: bool,
}

/// The result for one image.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// Image-level anomaly score.
    pub score: f32,
    /// `[crop, crop]` anomaly map at the network input geometry.
    pub anomaly_map: Array2<f32>,
}

/// The sampler named by the config, selecting `size` rows.
pub fn build_sampler(cfg: &Config, size: patchcore_sampler::SampleSize) -> Box<dyn Sampler> {
    let greedy = |variant| -> Box<dyn Sampler> {
        Box::new(GreedyCoreset {
            size,
            projection: cfg.projection(),
            seed: cfg.seed,
            start: None,
            variant,
        })
    };
    match cfg.sampler.kind {
        SamplerKind::GreedyCoreset => greedy(match cfg.sampler.greedy {
            GreedyAlgorithm::Pruned => GreedyVariant::Pruned,
            GreedyAlgorithm::Plain => GreedyVariant::Plain,
        }),
        SamplerKind::ApproximateGreedyCoreset => greedy(GreedyVariant::Approximate {
            starts: cfg.sampler.approx_starts,
        }),
        SamplerKind::Random => Box::new(RandomSampler {
            size,
            seed: cfg.seed,
        }),
        SamplerKind::Identity => Box::new(IdentitySampler),
    }
}

/// Overrides for [`PatchCore::load_with`].
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Run on this device instead of the one in the model's config.
    pub device: Option<patchcore_core::ComputeDevice>,
    /// Read the backbone weights from this file (its SHA-256 must match the model's).
    pub weights: Option<PathBuf>,
}

/// An assembled PatchCore model.
pub struct PatchCore {
    pub backbone: Box<dyn Backbone>,
    pub aggregator: Box<dyn FeatureAggregator>,
    pub sampler: Box<dyn Sampler>,
    pub scorer: Box<dyn Scorer>,
    pub nn: NnConfig,
    /// Seed for index construction.
    pub seed: u64,
    pub geometry: Geometry,
    /// Where evaluation computes pixel metrics.
    pub metrics_resolution: crate::config::MetricsResolution,
    pub batch_size: usize,
    /// Images per backbone forward call; a batch is cut into calls of this size that run in
    /// parallel (`data.forward_batch_size`, resolved for the device).
    pub forward_batch: usize,
    /// The weights used.
    pub weights: WeightsInfo,
    /// Size limits applied when decoding images.
    pub limits: ImageLimits,
    /// Decision threshold on image scores (set by `patchcore fit`, by [`PatchCore::load`], or
    /// by hand).
    pub threshold: Option<crate::model_file::Threshold>,
    /// Smallest and largest image score seen when the threshold was chosen.
    pub score_range: Option<(f32, f32)>,
    /// What the bank was fitted on: (data set name, training images, rows before selection).
    pub fitted_on: Option<(String, usize, usize)>,
    config: Config,
    index: Option<Box<dyn NearestNeighborIndex>>,
}

impl PatchCore {
    /// Builds the components named by a validated single-backbone config (weights are
    /// fetched and read here). For an ensemble config, build one model per
    /// [`Config::member`].
    pub fn from_config(cfg: &Config) -> Result<Self> {
        cfg.validate()?;
        let bcfg = match (&cfg.backbone, cfg.ensemble.len()) {
            (Some(b), 0) => b,
            _ => {
                return Err(Error::config(
                    "ensemble",
                    "a PatchCore model has one backbone: build one per Config::member(i)",
                ));
            }
        };
        let device = cfg.device.burn_device()?;
        let (map, weights) = match bcfg.weights_source() {
            Some(src) => {
                let path = src.resolve()?;
                let sha = patchcore_backbone::weights::sha256_file(&path)?;
                (
                    Some(TensorMap::read(&path)?),
                    WeightsInfo {
                        file: path.to_string_lossy().into_owned(),
                        sha256: sha,
                        pretrained: true,
                    },
                )
            }
            None => (
                None,
                WeightsInfo {
                    file: format!("random initialisation (seed {}), NOT pretrained", cfg.seed),
                    sha256: "-".into(),
                    pretrained: false,
                },
            ),
        };
        let backbone: Box<dyn Backbone> = match bcfg.arch {
            Architecture::EfficientnetLite0 => Box::new(EfficientNetLite0::from_tensors(
                map.expect("validated: lite0 weights are never random"),
                &bcfg.layers,
                bcfg.padding.unwrap_or_default(),
                bcfg.bn_eps.unwrap_or(1e-3),
                &device,
            )?),
            arch => {
                let spec = ResNetSpec::preset(arch.name())?;
                let map = map.unwrap_or_else(|| spec.random_weights(cfg.seed));
                Box::new(ResNet::from_tensors(spec, map, &bcfg.layers, &device)?)
            }
        };
        let aggregator: Box<dyn FeatureAggregator> = match cfg.aggregator.kind {
            AggregatorKind::LocallyAware => {
                let target = (cfg.aggregator.target_dim > 0).then_some(cfg.aggregator.target_dim);
                Box::new(LocallyAware::new(cfg.aggregator.neighbourhood, target)?)
            }
            AggregatorKind::Official => Box::new(Official::new(
                cfg.aggregator.neighbourhood,
                cfg.aggregator.pretrain_embed_dim,
                cfg.aggregator.target_embed_dim,
            )?),
        };
        let sampler = build_sampler(cfg, cfg.sample_size());
        let scorer = Box::new(PatchCoreScorer {
            upsample: cfg.scorer.upsample,
            ..PatchCoreScorer::new(cfg.scorer.num_neighbors, cfg.scorer.sigma)?
        });
        Ok(Self {
            backbone,
            aggregator,
            sampler,
            scorer,
            nn: cfg.nn.clone(),
            seed: cfg.seed,
            geometry: Geometry::new(cfg.data.resize, cfg.data.crop)?,
            batch_size: cfg.data.batch_size,
            forward_batch: cfg.data.forward_batch_for(cfg.device),
            metrics_resolution: cfg.data.metrics_resolution,
            weights,
            limits: cfg.image_limits(),
            threshold: None,
            score_range: None,
            fitted_on: None,
            config: cfg.clone(),
            index: None,
        })
    }

    /// The config this model was built from.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// A copy of the memory bank, once fitted or loaded, read back from the index (every
    /// index keeps the bank's rows in their original order).
    pub fn bank(&self) -> Option<Array2<f32>> {
        let index = self.index.as_deref()?;
        let (n, d) = (index.len(), index.dim());
        let mut bank = Array2::zeros((n, d));
        for (i, mut row) in bank.rows_mut().into_iter().enumerate() {
            row.assign(&index.row(i));
        }
        Some(bank)
    }

    /// Whether an image score is anomalous under the model's threshold (`None` without one).
    pub fn verdict(&self, score: f32) -> Option<bool> {
        self.threshold.as_ref().map(|t| score > t.value)
    }

    /// The header a model file of this fitted model carries.
    pub fn header(&self) -> Result<crate::model_file::ModelHeader> {
        let index = self.index()?;
        let (dataset, num_train, rows_full) =
            self.fitted_on
                .clone()
                .unwrap_or(("unknown".into(), 0, index.len()));
        // The weights path as resolved at fit time: the config's folder is not stored.
        let mut config = self.config.clone();
        if let Some(b) = config.backbone.as_mut() {
            if self.weights.pretrained && b.weights != "pypi" {
                b.weights = std::path::absolute(&self.weights.file)
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_else(|_| self.weights.file.clone());
            }
        }
        Ok(crate::model_file::ModelHeader {
            format: crate::model_file::MODEL_FORMAT.into(),
            format_version: crate::model_file::MODEL_FORMAT_VERSION,
            created_by: format!("patchcore-rs {}", env!("CARGO_PKG_VERSION")),
            config,
            backbone: crate::model_file::BackboneIdentity {
                arch: self.backbone.name().to_string(),
                layers: self.backbone.layers().to_vec(),
                weights_sha256: self.weights.sha256.clone(),
                weights_file: self.weights.file.clone(),
                pretrained: self.weights.pretrained,
            },
            geometry: self.geometry,
            bank_rows: index.len(),
            feature_dim: index.dim(),
            bank_rows_full: rows_full,
            num_train,
            dataset,
            threshold: self.threshold.clone(),
            score_range: self.score_range,
        })
    }

    /// Writes the fitted model to `path` (atomically; format in [`crate::model_file`]).
    pub fn save(&self, path: &Path) -> Result<()> {
        let header = self.header()?;
        let bank = self.bank().expect("checked by header");
        crate::model_file::write(path, &header, &bank)
    }

    /// Loads a model file: rebuilds the components from its config (fetching the weights as
    /// the config says), checks the weights' SHA-256 against the one the bank was fitted
    /// with, and installs the bank. See [`PatchCore::load_with`] to run on another device or
    /// with the weights at another path.
    pub fn load(path: &Path) -> Result<Self> {
        Self::load_with(path, &LoadOptions::default())
    }

    /// As [`PatchCore::load`], with overrides.
    pub fn load_with(path: &Path, opts: &LoadOptions) -> Result<Self> {
        let (header, bank) = crate::model_file::read(path)?;
        let mut cfg = header.config.clone();
        if let Some(d) = opts.device {
            cfg.device = d;
        }
        if let Some(w) = &opts.weights {
            let b = cfg.backbone.as_mut().ok_or_else(|| Error::Model {
                path: path.to_path_buf(),
                message: "the model's config has no [backbone]".into(),
            })?;
            b.weights = w.to_string_lossy().into_owned();
        }
        let mut model = Self::from_config(&cfg).map_err(|e| match e {
            Error::Weights { path: wp, message } => Error::Model {
                path: path.to_path_buf(),
                message: format!(
                    "its backbone weights {}: {message}; pass the file the model was fitted \
                     with (SHA-256 {}) with --weights",
                    wp.display(),
                    header.backbone.weights_sha256
                ),
            },
            other => other,
        })?;
        if model.weights.sha256 != header.backbone.weights_sha256 {
            return Err(Error::Model {
                path: path.to_path_buf(),
                message: format!(
                    "fitted with backbone weights of SHA-256 {}, but {} has SHA-256 {}; the bank \
                     is meaningless with other weights (pass the right file with --weights)",
                    header.backbone.weights_sha256, model.weights.file, model.weights.sha256
                ),
            });
        }
        if model.backbone.name() != header.backbone.arch
            || model.backbone.layers() != header.backbone.layers.as_slice()
        {
            return Err(Error::Model {
                path: path.to_path_buf(),
                message: format!(
                    "header names backbone {} {:?} but its config builds {} {:?}",
                    header.backbone.arch,
                    header.backbone.layers,
                    model.backbone.name(),
                    model.backbone.layers()
                ),
            });
        }
        model.set_bank(bank)?;
        model.threshold = header.threshold;
        model.score_range = header.score_range;
        model.fitted_on = Some((header.dataset, header.num_train, header.bank_rows_full));
        Ok(model)
    }

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
        let maps = self.backbone.forward(x)?;
        self.aggregator.aggregate(maps)
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
        let head = &paths[..self.batch_size.min(paths.len())];
        let first = self.extract_images(&self.decode(head)?)?;
        progress.advance(head.len() as u64);
        let mut all = Array2::zeros((paths.len() * first.patches_per_image(), first.dim()));
        all.slice_mut(s![..first.features.nrows(), ..])
            .assign(&first.features);
        self.extract_into(
            &paths[head.len()..],
            &mut all,
            first.features.nrows(),
            progress,
        )?;
        progress.finish();
        PatchFeatures::new(all, paths.len(), first.grid_h, first.grid_w)
    }

    /// Extracts `paths` batch by batch into rows `row..` of `out`; returns the row after the
    /// last one written.
    fn extract_into(
        &self,
        paths: &[PathBuf],
        out: &mut Array2<f32>,
        mut row: usize,
        progress: &dyn Progress,
    ) -> Result<usize> {
        for chunk in paths.chunks(self.batch_size) {
            let pf = self.extract_images(&self.decode(chunk)?)?;
            out.slice_mut(s![row..row + pf.features.nrows(), ..])
                .assign(&pf.features);
            row += pf.features.nrows();
            progress.advance(chunk.len() as u64);
        }
        Ok(row)
    }

    /// Fits the memory bank on defect-free images. When the training features would exceed
    /// `fit.max_feature_memory_mb`, fitting streams in chunks (see [`crate::config::FitConfig`]).
    pub fn fit(&mut self, train: &[PathBuf], progress: &dyn Progress) -> Result<FitStats> {
        if train.is_empty() {
            return Err(Error::InvalidArgument("no training images".into()));
        }
        let t0 = Instant::now();
        let n = train.len();
        let budget = self
            .config
            .fit
            .max_feature_memory_mb
            .saturating_mul(1 << 20);
        // The first batch tells the feature size per image.
        progress.start(n as u64, "feature extraction");
        let head = &train[..self.batch_size.min(n)];
        let first = self.extract_images(&self.decode(head)?)?;
        progress.advance(head.len() as u64);
        let ppi = first.patches_per_image();
        let dim = first.dim();
        let per_image = ppi * dim * 4;
        let total_rows = n * ppi;
        let chunk_images = if budget == 0 || per_image * n <= budget {
            n
        } else {
            (budget / 2 / per_image).max(self.batch_size).max(1)
        };
        let mut extract_seconds = 0.0;
        let mut sample_seconds = 0.0;
        let (bank, chunks) = if chunk_images >= n {
            // Everything fits: one matrix, one selection (the paper's procedure).
            let mut all = Array2::<f32>::zeros((total_rows, dim));
            all.slice_mut(s![..first.features.nrows(), ..])
                .assign(&first.features);
            self.extract_into(
                &train[head.len()..],
                &mut all,
                first.features.nrows(),
                progress,
            )?;
            drop(first);
            progress.finish();
            extract_seconds += t0.elapsed().as_secs_f64();
            let t1 = Instant::now();
            let selected = self.sampler.select(all.view(), progress)?;
            sample_seconds += t1.elapsed().as_secs_f64();
            (all.select(ndarray::Axis(0), &selected), 1)
        } else {
            // Merge and reduce: each chunk keeps twice its share; a final pass picks the bank.
            let target = self.config.sample_size().resolve(total_rows);
            if target * dim * 4 * 2 > budget {
                return Err(Error::config(
                    "fit.max_feature_memory_mb",
                    format!(
                        "the bank alone ({target} rows x {dim} x 4 bytes, kept twice while \
                         merging = {} MiB) exceeds the bound of {} MiB: raise it or lower \
                         sampler.ratio",
                        (target * dim * 8) >> 20,
                        self.config.fit.max_feature_memory_mb
                    ),
                ));
            }
            let mut union: Vec<Array2<f32>> = Vec::new();
            let mut chunks = 0;
            for start in (0..n).step_by(chunk_images) {
                let end = (start + chunk_images).min(n);
                let rows = (end - start) * ppi;
                let mut feats = Array2::<f32>::zeros((rows, dim));
                // The first chunk begins with the batch already extracted.
                let (from, row) = if start == 0 {
                    feats
                        .slice_mut(s![..first.features.nrows(), ..])
                        .assign(&first.features);
                    (head.len(), first.features.nrows())
                } else {
                    (start, 0)
                };
                let te = Instant::now();
                self.extract_into(&train[from..end], &mut feats, row, progress)?;
                extract_seconds += te.elapsed().as_secs_f64();
                let keep = ((2 * target * rows).div_ceil(total_rows)).clamp(1, rows);
                let ts = Instant::now();
                let sel = build_sampler(&self.config, patchcore_sampler::SampleSize::Count(keep))
                    .select(feats.view(), &patchcore_core::NoProgress)?;
                sample_seconds += ts.elapsed().as_secs_f64();
                union.push(feats.select(ndarray::Axis(0), &sel));
                chunks += 1;
            }
            progress.finish();
            let views: Vec<_> = union.iter().map(|a| a.view()).collect();
            let merged = ndarray::concatenate(ndarray::Axis(0), &views)
                .map_err(|e| Error::Shape(e.to_string()))?;
            drop(union);
            let ts = Instant::now();
            let sel = build_sampler(&self.config, patchcore_sampler::SampleSize::Count(target))
                .select(merged.view(), progress)?;
            sample_seconds += ts.elapsed().as_secs_f64();
            tracing::info!(
                chunks,
                images_per_chunk = chunk_images,
                "streamed fit: features of {n} images exceed fit.max_feature_memory_mb"
            );
            (merged.select(ndarray::Axis(0), &sel), chunks)
        };
        let t2 = Instant::now();
        let bank_rows = bank.nrows();
        self.set_bank(bank)?;
        self.fitted_on = Some(("images".into(), n, total_rows));
        Ok(FitStats {
            num_images: n,
            bank_rows_full: total_rows,
            bank_rows,
            feature_dim: dim,
            extract_seconds,
            sample_seconds,
            index_seconds: t2.elapsed().as_secs_f64(),
            chunks,
        })
    }

    fn decode(&self, paths: &[PathBuf]) -> Result<Vec<image::RgbImage>> {
        paths
            .par_iter()
            .map(|p| load_rgb_with(p, &self.limits))
            .collect()
    }

    /// Installs a memory bank (e.g. one fitted elsewhere).
    pub fn set_bank(&mut self, bank: Array2<f32>) -> Result<()> {
        let index: Box<dyn NearestNeighborIndex> = match self.nn.kind {
            NnKind::Exact => Box::new(ExactIndex::new(bank)?),
            NnKind::Ivf => Box::new(IvfIndex::new(
                bank,
                self.nn.nlist,
                self.nn.nprobe,
                10,
                self.seed,
            )?),
            NnKind::LinfaLinear => Box::new(LinfaIndex::new(bank, LinfaAlgorithm::LinearSearch)?),
            NnKind::LinfaKdtree => Box::new(LinfaIndex::new(bank, LinfaAlgorithm::KdTree)?),
            NnKind::LinfaBalltree => Box::new(LinfaIndex::new(bank, LinfaAlgorithm::BallTree)?),
        };
        self.index = Some(index);
        Ok(())
    }

    /// The fitted index, or an error if [`PatchCore::fit`] has not run.
    pub fn index(&self) -> Result<&dyn NearestNeighborIndex> {
        self.index
            .as_deref()
            .ok_or_else(|| Error::InvalidArgument("the model is not fitted: call fit first".into()))
    }

    /// Scores decoded images.
    pub fn predict_images(&self, images: &[image::RgbImage]) -> Result<Vec<Prediction>> {
        self.predict_images_timed(images, &mut StageTimes::default())
    }

    /// As [`PatchCore::predict_images`], adding each stage's seconds to `times`.
    pub fn predict_images_timed(
        &self,
        images: &[image::RgbImage],
        times: &mut StageTimes,
    ) -> Result<Vec<Prediction>> {
        let index = self.index()?;
        let t = Instant::now();
        let feats = self.extract_images(images)?;
        times.extract += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let scores = self.scorer.score(&feats, index)?;
        times.search_and_score += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let c = self.geometry.crop as usize;
        let out = scores
            .into_par_iter()
            .map(|s| Prediction {
                score: s.score,
                anomaly_map: self.scorer.anomaly_map(s.patch_scores.view(), c, c),
            })
            .collect();
        times.maps += t.elapsed().as_secs_f64();
        Ok(out)
    }

    /// Scores one decoded image.
    pub fn predict(&self, image: &image::RgbImage) -> Result<Prediction> {
        Ok(self.predict_images(std::slice::from_ref(image))?.remove(0))
    }

    /// Scores one image file (decoded under the model's [`ImageLimits`]).
    pub fn predict_path(&self, path: &Path) -> Result<Prediction> {
        self.predict(&load_rgb_with(path, &self.limits)?)
    }

    /// Scores image files in batches.
    pub fn predict_paths(
        &self,
        paths: &[PathBuf],
        progress: &dyn Progress,
    ) -> Result<Vec<Prediction>> {
        self.predict_paths_timed(paths, progress, &mut StageTimes::default())
    }

    /// As [`PatchCore::predict_paths`], adding each stage's seconds to `times`.
    pub fn predict_paths_timed(
        &self,
        paths: &[PathBuf],
        progress: &dyn Progress,
        times: &mut StageTimes,
    ) -> Result<Vec<Prediction>> {
        progress.start(paths.len() as u64, "scoring");
        let mut out = Vec::with_capacity(paths.len());
        for chunk in paths.chunks(self.batch_size) {
            let t = Instant::now();
            let images: Vec<image::RgbImage> = chunk
                .par_iter()
                .map(|p| load_rgb_with(p, &self.limits))
                .collect::<Result<_>>()?;
            times.decode += t.elapsed().as_secs_f64();
            out.extend(self.predict_images_timed(&images, times)?);
            progress.advance(chunk.len() as u64);
        }
        progress.finish();
        Ok(out)
    }
}
