//! The research workflow of patchcore-rs, on top of the model (`patchcore-model`):
//!
//! * [`evaluate()`]: fit on `train/good` of each MVTec AD category (or a folder / manifest
//!   data source), score `test/`, compute image and pixel metrics with intervals over seeds
//!   and test images, and write `report.json`, `report.md` and `report.html`; the standard
//!   and low-shot protocols and backbone ensembles, configured by the `[protocol]` section
//!   ([`ProtocolConfig`]).
//! * [`fit_model()`]: fit one category for a `.patchcore` model file, with the decision
//!   threshold calibrated on its labelled test split.
//! * [`sweep`]: grids over any config keys, in process with resume or planned as one command
//!   per run for any scheduler, merged into one comparison table.
//!
//! Modules depend one way: `protocol` → `report`, `results`, `provenance`, `config`,
//! `progress`; `report` → `results`, `config`; `results` → `provenance`, `config`;
//! `sweep` → `protocol`, `report`, `results`, `provenance` (checked by
//! `scripts/check_module_deps.py` in CI).

#![warn(missing_docs)]

pub mod config;
pub mod progress;
pub mod protocol;
pub mod provenance;
pub mod report;
pub mod results;
pub mod sweep;

pub use config::{ProtocolConfig, ProtocolKind, check_config};
pub use protocol::{
    EvaluateOptions, FitOptions, FittedCategory, combine_members, evaluate, evaluate_with,
    fit_model, open_categories,
};
pub use report::peak_rss_bytes;
pub use results::{BackboneReport, CategoryResult, IntervalReport, LowShotResult, Report, Spread};
