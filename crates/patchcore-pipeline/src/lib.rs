//! The config-driven runner of patchcore-rs.
//!
//! * [`Config`]: the experiment (TOML + `PATCHCORE_*` overrides), validated.
//! * [`PatchCore`]: the assembled model — backbone, aggregator, memory bank index, scorer —
//!   with [`PatchCore::fit`] and [`PatchCore::predict`], for embedding in other programs.
//! * [`evaluate()`]: fit on `train/good` of each MVTec AD category, score `test/`, and write
//!   `report.json` and `report.md`.
//! * [`fit_model()`] and [`model_file`]: fit once, save a `.patchcore` file, and
//!   [`PatchCore::load`] it elsewhere to score new images.
//! * [`sweep`]: grids over any config keys, in process with resume or planned as one command
//!   per run for any scheduler, merged into one comparison table.

#![warn(missing_docs)]

pub mod config;
pub mod model;
pub mod progress;
pub mod protocol;
pub mod report;
pub mod results;
pub mod sweep;

pub use config::Config;
pub use model::file as model_file;
pub use model::{
    FitStats, FittedOn, LoadOptions, PatchCore, PatchCoreBuilder, Prediction, StageTimes,
    TrainImages, WeightsInfo,
};
pub use protocol::{
    EvaluateOptions, FitOptions, FittedCategory, combine_members, evaluate, evaluate_with,
    fit_model, full_resolution_map, open_categories,
};
pub use report::html::{heatmap_image, heatmap_overlay};
pub use report::peak_rss_bytes;
pub use results::{BackboneReport, CategoryResult, IntervalReport, LowShotResult, Report, Spread};
