//! PatchCore (Roth et al., CVPR 2022, "Towards Total Recall in Industrial Anomaly
//! Detection") in Rust.

//!
//! This facade re-exports the component crates, each usable alone:
//!
//! | module | crate | trait / role |
//! |---|---|---|
//! | [`core`] | `patchcore-core` | shared types, errors, progress (no tensor framework) |
//! | [`device`] | `patchcore-device` | which burn backend runs the tensor work |
//! | [`backbone`] | `patchcore-backbone` | [`Backbone`](backbone::Backbone) |
//! | [`aggregate`] | `patchcore-aggregate` | [`FeatureAggregator`](aggregate::FeatureAggregator) |
//! | [`sampler`] | `patchcore-sampler` | [`Sampler`](sampler::Sampler) |
//! | [`nn`] | `patchcore-nn` | [`NearestNeighborIndex`](nn::NearestNeighborIndex) |
//! | [`score`] | `patchcore-score` | [`Scorer`](score::Scorer) |
//! | [`data`] | `patchcore-data` | images, geometry, MVTec AD layout |
//! | [`metrics`] | `patchcore-metrics` | AUROC, AUPR, F1-max, AUPRO |
//! | [`model_format`] | `patchcore-model-format` | the `.patchcore` file format |
//! | [`model`] | `patchcore-model` | [`Config`], [`PatchCore`] / [`FittedPatchCore`]: assembly, fit, predict, model files |
//! | [`eval`] | `patchcore-eval` | protocols, metrics with intervals, reports, sweeps |

#![warn(missing_docs)]

pub use patchcore_aggregate as aggregate;
pub use patchcore_backbone as backbone;
pub use patchcore_core as core;
pub use patchcore_data as data;
pub use patchcore_device as device;
pub use patchcore_eval as eval;
pub use patchcore_metrics as metrics;
pub use patchcore_model as model;
pub use patchcore_model::{Config, FittedPatchCore, PatchCore};
pub use patchcore_model_format as model_format;
pub use patchcore_nn as nn;
#[cfg(feature = "qdrant")]
pub use patchcore_qdrant as qdrant;
pub use patchcore_sampler as sampler;
pub use patchcore_score as score;
