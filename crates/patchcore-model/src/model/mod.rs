//! The assembled model: [`PatchCore`] holds one component of each kind behind its trait. It is
//! built from a config ([`PatchCore::from_config`]) or from trait objects
//! ([`PatchCoreBuilder`]); fitting consumes it and returns a [`FittedPatchCore`], which
//! predicts and is saved to and loaded from `.patchcore` files ([`file`](mod@file)).

mod assemble;
pub mod file;
mod fit;
mod persist;
mod predict;
mod tiled_fit;
mod tiled_predict;

use std::path::PathBuf;

use ndarray::Array2;
use patchcore_aggregate::FeatureAggregator;
use patchcore_backbone::Backbone;
use patchcore_core::Result;
use patchcore_data::{Geometry, ImageLimits, Tiling, TilingMode};
use patchcore_device::ComputeDevice;
use patchcore_nn::{IndexBuilder, NearestNeighborIndex};
use patchcore_sampler::Sampler;
use patchcore_score::Scorer;

use crate::config::{Config, MetricsResolution};
use file::Threshold;

pub use assemble::PatchCoreBuilder;
pub use fit::{SeededSampler, TrainImages};
pub use tiled_fit::BankSet;

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
    /// The selection algorithm that ran (`Sampler::name`), e.g. `greedy_coreset_partitioned`
    /// where a tiled fit switched to the partitioned greedy above
    /// `tiling.partitioned_above_rows`.
    pub sampler: String,
    /// Memory banks (1, or one per tile position).
    pub banks: usize,
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
    /// The anomaly map: `[crop, crop]` at the network input geometry, or for a tiled model
    /// (`[tiling]`) `[height, width]` at the image's own resolution.
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

/// The state of a model whose memory bank is not fitted yet: it extracts features and fits.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unfitted;

/// The state of a fitted model: its memory banks' indices and what it was fitted on.
pub struct Fitted {
    /// One index, or one per tile position (`tiling.mode = "per_position"`).
    indices: Vec<Box<dyn NearestNeighborIndex>>,
    /// The training images' size `(width, height)` of a tiled fit (required at predict
    /// time by per-position banks).
    image_size: Option<(u32, u32)>,
    fitted_on: FittedOn,
    stats: Option<FitStats>,
    threshold: Option<Threshold>,
    score_range: Option<(f32, f32)>,
}

/// A fitted PatchCore model: the only kind that predicts, saves, and that
/// [`FittedPatchCore::load`] returns. A model that is not fitted cannot predict: the methods
/// do not exist on [`PatchCore`] (`PatchCore<Unfitted>`).
pub type FittedPatchCore = PatchCore<Fitted>;

/// An assembled PatchCore model, in state `S`: [`Unfitted`] (the default; it fits) or
/// [`Fitted`] ([`FittedPatchCore`]; it predicts).
///
/// Its components and the settings taken from its config are fixed at construction, so that
/// what [`FittedPatchCore::save`] writes is what [`FittedPatchCore::load`] rebuilds. The
/// decision threshold and score range of a fitted model are free to set.
pub struct PatchCore<S = Unfitted> {
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
    /// `[tiling]` when on; the geometry is then one tile, unresized.
    tiling: Option<Tiling>,
    /// Images per backbone forward call (`data.forward_batch_size`, resolved for the device).
    forward_batch: usize,
    weights: WeightsInfo,
    limits: ImageLimits,
    config: Config,
    state: S,
}

impl<S> std::fmt::Debug for PatchCore<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PatchCore")
            .field("state", &std::any::type_name::<S>().rsplit("::").next())
            .field("backbone", &self.backbone.name())
            .field("layers", &self.backbone.layers())
            .field("aggregator", &self.aggregator.name())
            .field(
                "sampler",
                &self.sampler.as_ref().map(|s| s.name().to_string()),
            )
            .field("index", &self.index_builder.name())
            .field("scorer", &self.scorer.name())
            .field("geometry", &self.geometry)
            .finish()
    }
}

impl PatchCore {
    /// Builds the components named by a validated single-backbone config (weights are
    /// fetched and read here). For an ensemble config, build one model per
    /// [`Config::member`]. [`PatchCoreBuilder`] swaps in components of your own.
    pub fn from_config(cfg: &Config) -> Result<Self> {
        PatchCoreBuilder::new(cfg.clone()).build()
    }

    /// Installs a memory bank (e.g. one fitted elsewhere) through the model's index builder:
    /// the fitted model.
    /// A model with `tiling.mode = "per_position"` needs [`PatchCore::with_banks`].
    pub fn with_bank(self, bank: Array2<f32>, fitted_on: FittedOn) -> Result<FittedPatchCore> {
        self.with_banks(
            BankSet {
                banks: vec![bank],
                image_size: None,
            },
            fitted_on,
        )
    }

    /// Installs memory banks through the model's index builder: one bank, or for
    /// `tiling.mode = "per_position"` one per tile position of `image_size` (row-major, as
    /// [`patchcore_data::TileLayout::origins`]).
    pub fn with_banks(self, set: BankSet, fitted_on: FittedOn) -> Result<FittedPatchCore> {
        self.check_bank_set(&set)?;
        let indices = set
            .banks
            .into_iter()
            .map(|b| self.index_builder.build(b))
            .collect::<Result<Vec<_>>>()?;
        Ok(self.with_indices(indices, set.image_size, fitted_on, None))
    }

    fn with_indices(
        self,
        indices: Vec<Box<dyn NearestNeighborIndex>>,
        image_size: Option<(u32, u32)>,
        fitted_on: FittedOn,
        stats: Option<FitStats>,
    ) -> FittedPatchCore {
        self.into_state(Fitted {
            indices,
            image_size,
            fitted_on,
            stats,
            threshold: None,
            score_range: None,
        })
    }
}

impl FittedPatchCore {
    /// Drops the memory bank: the unfitted model, with the same components, to fit again.
    pub fn unfit(self) -> PatchCore {
        self.into_state(Unfitted)
    }

    /// The fitted index (for per-position banks: the first position's; see
    /// [`FittedPatchCore::indices`]).
    pub fn index(&self) -> &dyn NearestNeighborIndex {
        self.state.indices[0].as_ref()
    }

    /// Every fitted index: one, or one per tile position (row-major).
    pub fn indices(&self) -> Vec<&dyn NearestNeighborIndex> {
        self.state.indices.iter().map(|i| i.as_ref()).collect()
    }

    /// The training images' size `(width, height)` of a tiled fit, where they shared one.
    pub fn fitted_image_size(&self) -> Option<(u32, u32)> {
        self.state.image_size
    }

    /// What the bank was fitted on.
    pub fn fitted_on(&self) -> &FittedOn {
        &self.state.fitted_on
    }

    /// Records what the bank was fitted on (a data set name for reports and model files).
    pub fn set_fitted_on(&mut self, fitted_on: FittedOn) {
        self.state.fitted_on = fitted_on;
    }

    /// Timings and sizes of the fit that made this model (`None` for a loaded model).
    pub fn fit_stats(&self) -> Option<&FitStats> {
        self.state.stats.as_ref()
    }

    /// The decision threshold on image scores (set by `patchcore fit`, read from the model
    /// file, or set by hand).
    pub fn threshold(&self) -> Option<&Threshold> {
        self.state.threshold.as_ref()
    }

    /// Sets (or clears) the decision threshold.
    pub fn set_threshold(&mut self, threshold: Option<Threshold>) {
        self.state.threshold = threshold;
    }

    /// Smallest and largest image score seen when the threshold was chosen.
    pub fn score_range(&self) -> Option<(f32, f32)> {
        self.state.score_range
    }

    /// Sets (or clears) the score range used to normalise scores and heatmaps.
    pub fn set_score_range(&mut self, range: Option<(f32, f32)>) {
        self.state.score_range = range;
    }

    /// A copy of the memory bank, read back from the index (every index keeps the bank's rows
    /// in their original order); per-position banks one after the other, in position order.
    pub fn bank(&self) -> Array2<f32> {
        let d = self.index().dim();
        let n = self.state.indices.iter().map(|i| i.len()).sum();
        let mut bank = Array2::zeros((n, d));
        let rows = self
            .state
            .indices
            .iter()
            .flat_map(|index| (0..index.len()).map(move |i| index.row(i)));
        for (mut out, row) in bank.rows_mut().into_iter().zip(rows) {
            out.assign(&row);
        }
        bank
    }

    /// Rows of each bank (one entry, or one per tile position).
    pub fn bank_rows_per_position(&self) -> Vec<usize> {
        self.state.indices.iter().map(|i| i.len()).collect()
    }

    /// Whether an image score is anomalous under the model's threshold (`None` without one).
    pub fn verdict(&self, score: f32) -> Option<bool> {
        self.threshold().map(|t| score > t.value)
    }
}

impl<S> PatchCore<S> {
    fn into_state<T>(self, state: T) -> PatchCore<T> {
        PatchCore {
            backbone: self.backbone,
            aggregator: self.aggregator,
            sampler: self.sampler,
            index_builder: self.index_builder,
            scorer: self.scorer,
            undescribed: self.undescribed,
            geometry: self.geometry,
            tiling: self.tiling,
            forward_batch: self.forward_batch,
            weights: self.weights,
            limits: self.limits,
            config: self.config,
            state,
        }
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

    /// Resize and crop of the network input (for a tiled model: one tile, unresized).
    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// The checked `[tiling]`, when the model tiles its images.
    pub fn tiling(&self) -> Option<Tiling> {
        self.tiling
    }

    /// Whether the model keeps one bank per tile position.
    pub fn per_position(&self) -> bool {
        self.tiling
            .is_some_and(|t| t.mode() == TilingMode::PerPosition)
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

    /// Where evaluation computes pixel metrics (`data.metrics_resolution`; always `full`,
    /// the masks' own resolution, for a tiled model, whose maps have the image's size).
    pub fn metrics_resolution(&self) -> MetricsResolution {
        if self.tiling.is_some() {
            MetricsResolution::Full
        } else {
            self.config.data.metrics_resolution
        }
    }

    /// The backbone weights used.
    pub fn weights(&self) -> &WeightsInfo {
        &self.weights
    }

    /// Size limits applied when decoding images.
    pub fn limits(&self) -> ImageLimits {
        self.limits
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
            // No random choice: one builder (one client) for every seed.
            patchcore_nn::IndexParams::Custom { .. } | patchcore_nn::IndexParams::Qdrant(_) => {
                self.index_builder.build(bank)
            }
            _ if seed == self.config.seed => self.index_builder.build(bank),
            p => p.check(seed)?.build(bank),
        }
    }
}
