//! What the evaluation protocols measure: per-category results, low-shot spreads and the
//! whole report. Plain data, serialised into report.json; the protocols fill it in, the
//! report writers read it.

use std::collections::BTreeMap;

use serde::Serialize;

use patchcore_model::Config;
use patchcore_model::StageTimes;

/// FPR limit of the AUPRO (MVTec's and anomalib's).
pub const AUPRO_FPR_LIMIT: f64 = 0.3;

/// A confidence interval as reports show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IntervalReport {
    /// Lower bound.
    pub lo: f64,
    /// Upper bound.
    pub hi: f64,
    /// Coverage (e.g. 0.95).
    pub level: f64,
    /// How it was computed.
    pub method: String,
    /// Bootstrap resamples.
    pub resamples: usize,
}

/// Results of one category. With several seeds (`seeds = [..]`), every metric field is the
/// mean over seeds; `spread` holds mean, standard deviation and the per-seed values.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CategoryResult {
    /// Seeds of the runs, in the order of every `spread` entry's values.
    pub seeds: Vec<u64>,
    /// Area under the ROC curve of the image scores.
    pub image_auroc: f64,
    /// Average precision of the image scores.
    pub image_aupr: f64,
    /// Largest F1 of the image scores over all thresholds.
    pub image_f1_max: f64,
    /// Image score threshold achieving `image_f1_max` (first seed's run).
    pub image_f1_threshold: f32,
    /// Absent when the test split lacks masks (see `pixel_metrics_absent`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pixel_auroc: Option<f64>,
    /// Average precision over every map pixel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pixel_aupr: Option<f64>,
    /// Largest pixel F1 over all thresholds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pixel_f1_max: Option<f64>,
    /// AUPRO integrated up to FPR 0.3 over 8-connected ground-truth regions, normalised.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pixel_aupro: Option<f64>,
    /// Why pixel metrics are absent, if they are.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pixel_metrics_absent: Option<String>,
    /// Training images.
    pub num_train: usize,
    /// Test images.
    pub num_test: usize,
    /// Anomalous test images.
    pub num_test_anomalous: usize,
    /// Patch features before subsampling (summed over ensemble members).
    pub bank_rows_full: usize,
    /// Memory-bank rows kept (summed over ensemble members).
    pub bank_rows: usize,
    /// Feature width (summed over ensemble members).
    pub feature_dim: usize,
    /// Seconds of fitting every seed's bank (extraction once, subsampling and index per
    /// seed).
    pub fit_seconds: f64,
    /// Seconds of training-feature extraction (once for all seeds unless streamed).
    pub extract_seconds: f64,
    /// Seconds of subsampling, summed over seeds.
    pub coreset_seconds: f64,
    /// The selection algorithm that ran (`Sampler::name`; per ensemble member, comma
    /// separated), e.g. `greedy_coreset_partitioned` where a tiled fit switched to it.
    pub coreset_algorithm: String,
    /// Milliseconds per test image of one seed's model: decoding and extraction (done once
    /// for all seeds) plus one seed's search, scoring and maps.
    pub infer_ms_per_image: f64,
    /// Seconds per test stage (decode, extraction, search + scoring, maps), all test images
    /// and seeds.
    pub test_stage_seconds: StageTimes,
    /// Per metric (`image_auroc`, ..., `coreset_seconds`): mean, sample standard deviation
    /// and per-seed values.
    pub spread: BTreeMap<String, Spread>,
    /// Confidence intervals of `image_auroc` and `pixel_auroc` (for the seed mean).
    pub intervals: BTreeMap<String, IntervalReport>,
    /// Per test image: (path relative to the category, defect type, score of the first
    /// seed).
    #[serde(skip)]
    pub scores: Vec<(String, String, f32)>,
    /// Per seed, per test image: the score (in the order of `scores`).
    #[serde(skip)]
    pub seed_scores: Vec<Vec<f32>>,
    /// Per seed: the per-image pixel-score histograms of the pixel AUROC interval (empty
    /// without pixel metrics).
    #[serde(skip)]
    pub pixel_histograms: Vec<patchcore_metrics::ci::PixelHistograms>,
    /// The category's section of report.html (empty when no report is written).
    #[serde(skip)]
    pub html: String,
    /// Files the section links to (path relative to the report, bytes): the overlays of a
    /// tiled model at full resolution, shown downscaled on the page.
    #[serde(skip)]
    pub overlay_files: Vec<(String, Vec<u8>)>,
}

/// A whole evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The experiment (samplers and indices as the models had them).
    pub config: Config,
    /// Where the categories were read.
    pub data_root: String,
    /// Standard-protocol results per category.
    pub categories: BTreeMap<String, CategoryResult>,
    /// Per backbone: architecture, tapped layers and weights.
    pub backbones: Vec<BackboneReport>,
    /// Low-shot protocol results per category (empty for the standard protocol).
    pub low_shot: BTreeMap<String, Vec<LowShotResult>>,
    /// Hashes of the config, data and weights (`None` when not computed).
    pub provenance: Option<crate::provenance::Provenance>,
    /// The protocol that ran (the config's `[protocol]`, defaults filled in).
    pub protocol: crate::config::ProtocolConfig,
}

/// Mean, sample standard deviation and the values of a metric over seeds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Spread {
    /// Mean over seeds.
    pub mean: f64,
    /// Sample standard deviation (0 for one value).
    pub std: f64,
    /// The per-seed values.
    pub values: Vec<f64>,
}

impl Spread {
    /// Mean and sample standard deviation of `values` (`None` when empty).
    pub fn of(values: Vec<f64>) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let var = if values.len() > 1 {
            values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)
        } else {
            0.0
        };
        Some(Self {
            mean,
            std: var.sqrt(),
            values,
        })
    }
}

/// One training-set size of the low-shot protocol.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LowShotResult {
    /// Training images used.
    pub shots: usize,
    /// Seeds run (one per run; "first" selection runs once).
    pub seeds: Vec<u64>,
    /// Image AUROC over seeds.
    pub image_auroc: Spread,
    /// Image F1-max over seeds.
    pub image_f1_max: Spread,
    /// Pixel AUROC over seeds, when masks exist.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pixel_auroc: Option<Spread>,
    /// Pixel AUPRO over seeds, when masks exist.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pixel_aupro: Option<Spread>,
    /// Fit seconds over seeds.
    pub fit_seconds: Spread,
    /// Intervals of the seed mean of `image_auroc` and `pixel_auroc` (bootstrap over test
    /// images, paired over the seeds' runs).
    pub intervals: BTreeMap<String, IntervalReport>,
}

/// What one backbone of a report ran on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackboneReport {
    /// Architecture name.
    pub arch: String,
    /// Tapped layers.
    pub layers: Vec<String>,
    /// The weights file, or a description of the random initialisation.
    pub weights_file: String,
    /// SHA-256 of the weights file (`-` for random weights).
    pub weights_sha256: String,
    /// `false` for random weights.
    pub pretrained: bool,
}

impl BackboneReport {
    /// The backbone of a model.
    pub fn of(m: &patchcore_model::PatchCore) -> Self {
        Self {
            arch: m.backbone().name().to_string(),
            layers: m.backbone().layers().to_vec(),
            weights_file: m.weights().file.clone(),
            weights_sha256: m.weights().sha256.clone(),
            pretrained: m.weights().pretrained,
        }
    }

    /// The first 12 hex digits of the weights' SHA-256.
    pub fn sha256_short(&self) -> &str {
        &self.weights_sha256[..self.weights_sha256.len().min(12)]
    }
}

impl Report {
    /// Mean of a metric over the categories that have it (`None` if none has).
    pub fn mean_of(&self, metric: impl Fn(&CategoryResult) -> Option<f64>) -> Option<f64> {
        let v: Vec<f64> = self.categories.values().filter_map(metric).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    }

    /// Mean image AUROC over categories, and mean pixel AUROC over the categories that
    /// have pixel metrics (`None` if none has).
    pub fn mean(&self) -> (f64, Option<f64>) {
        let n = self.categories.len().max(1) as f64;
        let pix: Vec<f64> = self
            .categories
            .values()
            .filter_map(|c| c.pixel_auroc)
            .collect();
        (
            self.categories.values().map(|c| c.image_auroc).sum::<f64>() / n,
            (!pix.is_empty()).then(|| pix.iter().sum::<f64>() / pix.len() as f64),
        )
    }
}
