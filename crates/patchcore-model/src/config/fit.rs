//! `[fit]`: the memory bound of fitting.

use serde::{Deserialize, Serialize};

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
