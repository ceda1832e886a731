//! The config-driven runner of patchcore-rs.
//!
//! * [`Config`]: the experiment (TOML + `PATCHCORE_*` overrides), validated.
//! * [`PatchCore`]: the assembled model — backbone, aggregator, memory bank index, scorer —
//!   with [`PatchCore::fit`] and [`PatchCore::predict`], for embedding in other programs.
//! * [`evaluate()`]: fit on `train/good` of each MVTec AD category, score `test/`, and write
//!   `report.json` and `report.md`.

pub mod config;
mod evaluate;
mod html;
mod model;
pub mod progress;
mod report;

pub use config::Config;
pub use evaluate::{
    BackboneReport, CategoryResult, EvaluateOptions, LowShotResult, Report, Spread,
    combine_members, evaluate, full_resolution_map, open_categories,
};
pub use model::{FitStats, PatchCore, Prediction, StageTimes, WeightsInfo};
