use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::{Tensor, TensorData};
use ndarray::{Array2, s};
use patchcore_aggregate::{FeatureAggregator, LocallyAware, Official};
use patchcore_backbone::{Backbone, EfficientNetLite0, ResNet, ResNetSpec, TensorMap};
use patchcore_core::{Error, PatchFeatures, Progress, Result};
use patchcore_data::{Geometry, load_rgb};
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
    /// The weights used.
    pub weights: WeightsInfo,
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
        let device = cfg.device.burn_device();
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
        let size = cfg.sample_size();
        let greedy = |variant| {
            Box::new(GreedyCoreset {
                size,
                projection: cfg.projection(),
                seed: cfg.seed,
                start: None,
                variant,
            })
        };
        let sampler: Box<dyn Sampler> = match cfg.sampler.kind {
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
        };
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
            metrics_resolution: cfg.data.metrics_resolution,
            weights,
            index: None,
        })
    }

    /// Patch features of decoded images (one backbone pass).
    pub fn extract_images(&self, images: &[image::RgbImage]) -> Result<PatchFeatures> {
        if images.is_empty() {
            return Err(Error::InvalidArgument(
                "no images to extract features from".into(),
            ));
        }
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
        let mut out: Option<(Array2<f32>, usize, usize)> = None;
        progress.start(paths.len() as u64, "feature extraction");
        let mut row = 0;
        for chunk in paths.chunks(self.batch_size) {
            let images: Vec<image::RgbImage> = chunk
                .par_iter()
                .map(|p| load_rgb(p))
                .collect::<Result<_>>()?;
            let pf = self.extract_images(&images)?;
            let (all, _, _) = out.get_or_insert_with(|| {
                (
                    Array2::zeros((paths.len() * pf.patches_per_image(), pf.dim())),
                    pf.grid_h,
                    pf.grid_w,
                )
            });
            all.slice_mut(s![row..row + pf.features.nrows(), ..])
                .assign(&pf.features);
            row += pf.features.nrows();
            progress.advance(chunk.len() as u64);
        }
        progress.finish();
        let (all, h, w) = out.ok_or_else(|| Error::InvalidArgument("no images given".into()))?;
        PatchFeatures::new(all, paths.len(), h, w)
    }

    /// Fits the memory bank on defect-free images.
    pub fn fit(&mut self, train: &[PathBuf], progress: &dyn Progress) -> Result<FitStats> {
        let t0 = Instant::now();
        let feats = self.extract_paths(train, progress)?;
        let extract_seconds = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        let selected = self.sampler.select(feats.features.view(), progress)?;
        let bank = feats.features.select(ndarray::Axis(0), &selected);
        let sample_seconds = t1.elapsed().as_secs_f64();
        let t2 = Instant::now();
        self.set_bank(bank)?;
        Ok(FitStats {
            num_images: train.len(),
            bank_rows_full: feats.features.nrows(),
            bank_rows: selected.len(),
            feature_dim: feats.dim(),
            extract_seconds,
            sample_seconds,
            index_seconds: t2.elapsed().as_secs_f64(),
        })
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

    /// Scores one image file.
    pub fn predict(&self, path: &Path) -> Result<Prediction> {
        let img = load_rgb(path)?;
        Ok(self.predict_images(std::slice::from_ref(&img))?.remove(0))
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
                .map(|p| load_rgb(p))
                .collect::<Result<_>>()?;
            times.decode += t.elapsed().as_secs_f64();
            out.extend(self.predict_images_timed(&images, times)?);
            progress.advance(chunk.len() as u64);
        }
        progress.finish();
        Ok(out)
    }
}
