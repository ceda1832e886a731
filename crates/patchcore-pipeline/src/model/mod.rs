//! The assembled model: [`PatchCore`] holds one component of each kind behind its trait and
//! runs fit and predict. It is built from a config ([`PatchCore::from_config`]) or from trait
//! objects ([`PatchCoreBuilder`]), saved to and loaded from `.patchcore` files ([`file`](mod@file)).

mod assemble;
pub mod file;
mod fit;
mod persist;
mod predict;

use std::path::PathBuf;

use ndarray::Array2;
use patchcore_aggregate::FeatureAggregator;
use patchcore_backbone::Backbone;
use patchcore_core::{Error, Result};
use patchcore_data::{Geometry, ImageLimits};
use patchcore_device::ComputeDevice;
use patchcore_nn::{IndexBuilder, NearestNeighborIndex};
use patchcore_sampler::Sampler;
use patchcore_score::Scorer;

use crate::config::{Config, MetricsResolution};

pub use assemble::PatchCoreBuilder;
pub use fit::{SeededSampler, TrainImages};

/// Timings and sizes of a fit.
#[derive(Debug, Clone, PartialEq)]
pub struct FitStats {
    /// Training images.
    pub num_images: usize,
    /// Rows before subsampling.
    pub bank_rows_full: usize,
    /// Rows kept.
    pub bank_rows: usize,
    /// Feature width.
    pub feature_dim: usize,
    /// Seconds of decoding, backbone and aggregation.
    pub extract_seconds: f64,
    /// Seconds of subsampling.
    pub sample_seconds: f64,
    /// Seconds of index construction.
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

/// Overrides for [`PatchCore::load_with`].
#[derive(Default)]
pub struct LoadOptions {
    /// Run on this device instead of the one in the model's config.
    pub device: Option<ComputeDevice>,
    /// Read the backbone weights from this file (its SHA-256 must match the model's).
    pub weights: Option<PathBuf>,
    /// The index builder of a model saved with a custom index (`[nn] kind = "custom"`); its
    /// name must be the one the file records. Refused for a model whose index the file
    /// describes.
    pub index: Option<Box<dyn IndexBuilder>>,
    /// A sampler for refitting a model saved with a custom sampler (the bank needs none).
    pub sampler: Option<Box<dyn Sampler>>,
}

impl std::fmt::Debug for LoadOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadOptions")
            .field("device", &self.device)
            .field("weights", &self.weights)
            .field("index", &self.index.as_ref().map(|b| b.name().to_string()))
            .field(
                "sampler",
                &self.sampler.as_ref().map(|s| s.name().to_string()),
            )
            .finish()
    }
}

/// What the bank was fitted on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FittedOn {
    /// Data set or category name.
    pub dataset: String,
    /// Training images.
    pub num_train: usize,
    /// Rows before selection.
    pub rows_full: usize,
}

/// An assembled PatchCore model.
///
/// Its components and the settings taken from its config are fixed at construction, so that
/// what [`PatchCore::save`] writes is what [`PatchCore::load`] rebuilds. The decision threshold
/// and score range are free to set.
pub struct PatchCore {
    backbone: Box<dyn Backbone>,
    aggregator: Box<dyn FeatureAggregator>,
    /// `None` for a model loaded from a file whose sampler was custom and not supplied.
    sampler: Option<Box<dyn Sampler>>,
    index_builder: Box<dyn IndexBuilder>,
    scorer: Box<dyn Scorer>,
    /// Components the config does not describe (`"backbone"`, `"aggregator"`, `"scorer"`):
    /// a model holding one cannot be saved.
    undescribed: Vec<(&'static str, String)>,
    geometry: Geometry,
    /// Images per backbone forward call (`data.forward_batch_size`, resolved for the device).
    forward_batch: usize,
    weights: WeightsInfo,
    limits: ImageLimits,
    config: Config,
    index: Option<Box<dyn NearestNeighborIndex>>,
    fitted_on: Option<FittedOn>,
    /// Decision threshold on image scores (set by `patchcore fit`, by [`PatchCore::load`], or
    /// by hand).
    pub threshold: Option<file::Threshold>,
    /// Smallest and largest image score seen when the threshold was chosen.
    pub score_range: Option<(f32, f32)>,
}

impl PatchCore {
    /// Builds the components named by a validated single-backbone config (weights are
    /// fetched and read here). For an ensemble config, build one model per
    /// [`Config::member`]. [`PatchCoreBuilder`] swaps in components of your own.
    pub fn from_config(cfg: &Config) -> Result<Self> {
        PatchCoreBuilder::new(cfg.clone()).build()
    }

    /// The config this model was built from. Components supplied as trait objects show as
    /// `kind = "custom"` (sampler, index); a custom backbone, aggregator or scorer is listed by
    /// [`PatchCore::undescribed_components`] instead.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Components the config does not describe, as (role, name): a model holding any cannot
    /// be saved.
    pub fn undescribed_components(&self) -> &[(&'static str, String)] {
        &self.undescribed
    }

    /// The feature extractor.
    pub fn backbone(&self) -> &dyn Backbone {
        self.backbone.as_ref()
    }

    /// The patch-feature aggregator.
    pub fn aggregator(&self) -> &dyn FeatureAggregator {
        self.aggregator.as_ref()
    }

    /// The memory-bank sampler (`None` after loading a model whose sampler was custom).
    pub fn sampler(&self) -> Option<&dyn Sampler> {
        self.sampler.as_deref()
    }

    /// The builder of the nearest-neighbour index.
    pub fn index_builder(&self) -> &dyn IndexBuilder {
        self.index_builder.as_ref()
    }

    /// The scorer.
    pub fn scorer(&self) -> &dyn Scorer {
        self.scorer.as_ref()
    }

    /// Resize and crop of the network input.
    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// Images decoded and scored together (`data.batch_size`).
    pub fn batch_size(&self) -> usize {
        self.config.data.batch_size
    }

    /// Images per backbone forward call (`data.forward_batch_size` resolved for the device):
    /// a batch is cut into calls of this size that run in parallel.
    pub fn forward_batch(&self) -> usize {
        self.forward_batch
    }

    /// Where evaluation computes pixel metrics (`data.metrics_resolution`).
    pub fn metrics_resolution(&self) -> MetricsResolution {
        self.config.data.metrics_resolution
    }

    /// The backbone weights used.
    pub fn weights(&self) -> &WeightsInfo {
        &self.weights
    }

    /// Size limits applied when decoding images.
    pub fn limits(&self) -> ImageLimits {
        self.limits
    }

    /// What the bank was fitted on, once fitted or loaded.
    pub fn fitted_on(&self) -> Option<&FittedOn> {
        self.fitted_on.as_ref()
    }

    /// Records what the bank was fitted on (a data set name for reports and model files).
    pub fn set_fitted_on(&mut self, fitted_on: FittedOn) {
        self.fitted_on = Some(fitted_on);
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

    /// Installs a memory bank (e.g. one fitted elsewhere) through the model's index builder.
    pub fn set_bank(&mut self, bank: Array2<f32>) -> Result<()> {
        self.index = Some(self.index_builder.build(bank)?);
        Ok(())
    }

    /// Builds an index over `bank` with the model's index builder, its random choices (IVF
    /// k-means) drawn from `seed`: the model's own builder for the config's seed or a custom
    /// index, else one from the config's `[nn]` reseeded. Installs nothing.
    pub fn build_index_for_seed(
        &self,
        bank: Array2<f32>,
        seed: u64,
    ) -> Result<Box<dyn NearestNeighborIndex>> {
        match &self.config.nn {
            patchcore_nn::IndexParams::Custom { .. } => self.index_builder.build(bank),
            _ if seed == self.config.seed => self.index_builder.build(bank),
            p => p.clone().with_seed(seed).build(bank),
        }
    }

    /// The fitted index, or an error if [`PatchCore::fit`] has not run.
    pub fn index(&self) -> Result<&dyn NearestNeighborIndex> {
        self.index
            .as_deref()
            .ok_or_else(|| Error::InvalidArgument("the model is not fitted: call fit first".into()))
    }
}
