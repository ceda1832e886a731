//! `[protocol]`: the evaluation protocol. The section is owned here; the model's config
//! keeps it as written ([`patchcore_model::config::Section`]).

use patchcore_core::{Error, Result};
use patchcore_model::Config;
use patchcore_model::config::TrainSelection;
use serde::{Deserialize, Serialize};

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

/// The evaluation protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtocolConfig {
    /// "standard" (default) or "low_shot".
    #[serde(default)]
    pub kind: ProtocolKind,
    /// Training-set sizes of the low-shot protocol (the paper: 1, 2, 5, 10, 16, 20, 50).
    #[serde(default = "d_shots")]
    pub shots: Vec<usize>,
    /// Seeds of the low-shot runs when the top-level `seeds` is absent (one run per seed and
    /// size; the seed draws the training subset and drives the sampler).
    #[serde(default = "d_seeds")]
    pub seeds: Vec<u64>,
    /// "random" (seeded subsets, default) or "first" (the first k in sorted order; one run).
    #[serde(default = "d_selection")]
    pub selection: TrainSelection,
    /// Resamples of the stratified bootstrap over test images behind the image and pixel
    /// AUROC intervals (>= 100).
    #[serde(default = "d_resamples")]
    pub bootstrap_resamples: usize,
    /// Coverage of the intervals.
    #[serde(default = "d_ci_level")]
    pub ci_level: f64,
}
fn d_resamples() -> usize {
    1000
}
fn d_ci_level() -> f64 {
    0.95
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
            bootstrap_resamples: d_resamples(),
            ci_level: d_ci_level(),
        }
    }
}

impl ProtocolConfig {
    /// The `[protocol]` section of `cfg`, parsed and checked (errors name the key).
    pub fn of(cfg: &Config) -> Result<Self> {
        let p: Self = cfg.protocol.parse("protocol")?;
        p.validate()?;
        Ok(p)
    }

    /// Range checks; each error names its `protocol.*` key.
    pub fn validate(&self) -> Result<()> {
        if self.shots.is_empty() || self.shots.contains(&0) {
            return Err(Error::config(
                "protocol.shots",
                "list training-set sizes >= 1, e.g. [1, 2, 5, 10]",
            ));
        }
        if self.seeds.is_empty() {
            return Err(Error::config("protocol.seeds", "list at least one seed"));
        }
        if self.bootstrap_resamples < 100 {
            return Err(Error::config(
                "protocol.bootstrap_resamples",
                format!(
                    "must be at least 100 for a percentile interval, got {}",
                    self.bootstrap_resamples
                ),
            ));
        }
        if !(self.ci_level > 0.5 && self.ci_level < 1.0) {
            return Err(Error::config(
                "protocol.ci_level",
                format!("must be in (0.5, 1), got {}", self.ci_level),
            ));
        }
        Ok(())
    }

    /// The seeds of the low-shot protocol: the config's top-level `seeds` when given, else
    /// `protocol.seeds`.
    pub fn low_shot_seeds(&self, cfg: &Config) -> Vec<u64> {
        cfg.seeds.clone().unwrap_or_else(|| self.seeds.clone())
    }
}

/// Checks every section of `cfg` that evaluation reads (the model's sections are checked when
/// the config is loaded; this adds `[protocol]`).
pub fn check_config(cfg: &Config) -> Result<ProtocolConfig> {
    ProtocolConfig::of(cfg)
}
