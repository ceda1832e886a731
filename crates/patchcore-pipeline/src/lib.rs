//! The config-driven runner of patchcore-rs.
//!
//! * [`Config`]: the experiment (TOML + `PATCHCORE_*` overrides), validated.
//! * [`PatchCore`]: the assembled model — backbone, aggregator, memory bank index, scorer —
//!   with [`PatchCore::fit`] and [`PatchCore::predict`], for embedding in other programs.
//! * [`evaluate()`]: fit on `train/good` of each MVTec AD category, score `test/`, and write
//!   `report.json` and `report.md`.
//! * [`fit_model()`] and [`model_file`]: fit once, save a `.patchcore` file, and
//!   [`PatchCore::load`] it elsewhere to score new images.
//! * [`conformance`]: the same parity checks against every compiled burn backend.

pub mod config;
pub mod conformance;
mod evaluate;
mod html;
mod model;
pub mod model_file;
pub mod progress;
mod report;

pub use config::Config;
pub use evaluate::{
    BackboneReport, CategoryResult, EvaluateOptions, FitOptions, FittedCategory, LowShotResult,
    Report, Spread, combine_members, evaluate, fit_model, full_resolution_map, open_categories,
};
pub use html::heatmap_overlay;
pub use model::{FitStats, LoadOptions, PatchCore, Prediction, StageTimes, WeightsInfo};
pub use report::peak_rss_bytes;
