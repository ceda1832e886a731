//! The PatchCore model of patchcore-rs: what a program that inspects images needs, and
//! nothing of the research workflow (protocols, reports and sweeps live in `patchcore-eval`).
//!
//! * [`Config`]: the experiment's model sections (TOML + `PATCHCORE_*` overrides), validated;
//!   sections owned by other crates (`[protocol]`, `[serve]`) are kept as written
//!   ([`config::Section`]).
//! * [`PatchCore`]: an assembled, unfitted model — backbone, aggregator, sampler, index
//!   builder, scorer — built from a config ([`PatchCore::from_config`]) or with components of
//!   your own ([`PatchCoreBuilder`]). [`PatchCore::fit`] consumes it and returns a
//!   [`FittedPatchCore`], the only type that predicts, saves and is loaded from a
//!   `.patchcore` file ([`model_file`]).
//! * [`render`]: anomaly maps as heatmap pictures and at the original image size.

#![warn(missing_docs)]

pub mod config;
mod model;
pub mod render;

pub use config::Config;
pub use model::file as model_file;
pub use model::{
    BankSet, FitStats, Fitted, FittedOn, FittedPatchCore, LoadOptions, PatchCore, PatchCoreBuilder,
    Prediction, SeededSampler, StageTimes, TrainImages, Unfitted, WeightsInfo,
};
