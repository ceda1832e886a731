//! `[protocol]`, `[fit]` and `[serve]`: the evaluation protocol, the memory bound of fitting
//! and the inspection service's batching and limits.

use serde::{Deserialize, Serialize};

use super::TrainSelection;

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

/// `[serve]`: how `patchcore serve` batches and bounds the requests for a model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    /// How long the first request of a batch waits for others (up to `data.batch_size`
    /// images), in milliseconds; 0 = no waiting (batches form only from queued requests).
    #[serde(default = "d_window")]
    pub batch_window_ms: u64,
    /// Requests waiting for a model at most; more get 503 with Retry-After.
    #[serde(default = "d_queue")]
    pub queue_capacity: usize,
    /// Longest time a request may take, queueing included, in milliseconds (then 504).
    #[serde(default = "d_timeout")]
    pub request_timeout_ms: u64,
}
fn d_window() -> u64 {
    5
}
fn d_queue() -> usize {
    64
}
fn d_timeout() -> u64 {
    30_000
}
impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            batch_window_ms: d_window(),
            queue_capacity: d_queue(),
            request_timeout_ms: d_timeout(),
        }
    }
}

impl ServeConfig {
    /// Range checks naming the key.
    pub fn validate(&self) -> patchcore_core::Result<()> {
        use patchcore_core::Error;
        if self.batch_window_ms > 10_000 {
            return Err(Error::config(
                "serve.batch_window_ms",
                format!("at most 10000 ms, got {}", self.batch_window_ms),
            ));
        }
        if self.queue_capacity == 0 {
            return Err(Error::config("serve.queue_capacity", "must be at least 1"));
        }
        if self.request_timeout_ms == 0 {
            return Err(Error::config(
                "serve.request_timeout_ms",
                "must be positive",
            ));
        }
        Ok(())
    }
}
