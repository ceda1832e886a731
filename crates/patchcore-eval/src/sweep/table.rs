//! The data of a sweep's comparison: its runs (as their reports describe them) and what its
//! plot shows. Read by `merge`, drawn by `plot`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

use crate::results::Spread;

/// One run of a sweep, as its report.json describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    /// The swept keys' values, in axis order (the report's `overrides`).
    pub point: Vec<(String, Value)>,
    /// Seeds of the run.
    pub seeds: Vec<u64>,
    /// Categories evaluated.
    pub categories: Vec<String>,
    /// Per metric, over seeds: the per-seed values are means over the categories.
    pub metrics: BTreeMap<String, Spread>,
    /// Image and pixel AUROC intervals (single-category runs only).
    pub intervals: BTreeMap<String, (f64, f64)>,
    /// Seconds of fitting, summed over categories.
    pub fit_seconds: f64,
    /// Milliseconds per test image, mean over categories.
    pub predict_ms: f64,
    /// Memory-bank rows, mean over categories.
    pub bank_rows: f64,
    /// The run hash of the report.
    pub run_sha256: String,
    /// The resolved config as dotted keys, the swept keys and the seeds left out: what
    /// every run of one sweep shares.
    pub base: BTreeMap<String, Value>,
    /// The data hash of the report.
    pub data_sha256: String,
    /// The code that computed it (version and git revision).
    pub code_version: String,
    /// The confidence level of its intervals (`protocol.ci_level`).
    pub ci_level: f64,
    /// The report file.
    pub report: PathBuf,
}

/// A sweep's runs and its plot.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepTable {
    /// Swept keys, in axis order.
    pub keys: Vec<String>,
    /// Runs, sorted by their swept values in axis order.
    pub runs: Vec<RunRow>,
    /// Planned points without a finished report, when a partial table was accepted
    /// (`--allow-partial`); the tables say so.
    pub missing: Vec<String>,
    /// The plot.
    pub plot: PlotSpec,
}

/// What the sweep's plot shows: `metric` against the swept key `x`, one line per value of
/// the swept key `series` (or per combination of the other keys).
#[derive(Debug, Clone, PartialEq)]
pub struct PlotSpec {
    /// Key on the horizontal axis (default: the first swept key).
    pub x: Option<String>,
    /// Key whose values get one line each (default: the second swept key).
    pub series: Option<String>,
    /// Metric on the vertical axis: `image_auroc` (default), `pixel_auroc`, `pixel_aupro`,
    /// `image_aupr`, `image_f1_max`, `pixel_aupr`, `pixel_f1_max`.
    pub metric: String,
}

impl Default for PlotSpec {
    fn default() -> Self {
        Self {
            x: None,
            series: None,
            metric: "image_auroc".into(),
        }
    }
}

/// A swept value as the table shows it.
pub fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
