//! Shared types of patchcore-rs, free of any tensor framework.
//!
//! Every component crate (sampler, nearest-neighbour index, scorer, metrics, data) speaks in
//! the types defined here, so that each can be used alone by a downstream crate without
//! compiling burn:
//!
//! * [`Error`] / [`Result`]: the one error type, with messages a user can act on.
//! * [`PatchFeatures`]: a batch of patch-feature grids, `[batch * height * width, dim]` rows in
//!   row-major grid order (row = `b*H*W + y*W + x`), the hand-off from aggregation to the
//!   memory bank and the scorer.
//! * [`Progress`]: the progress sink long operations report to.
//! * [`io::write_atomic`]: atomic file writes.
//!
//! The burn device choice lives in `patchcore-device`; test support (fixture reader,
//! synthetic matrices, the shared-folder lookup) in the unpublished `patchcore-testkit`.

#![warn(missing_docs)]

pub mod dispatch;
mod error;
mod features;
pub mod io;
mod progress;

pub use error::{Error, Result};
pub use features::PatchFeatures;
pub use progress::{NoProgress, Progress};
