//! The state every route shares: the models, the metrics, the token and the admission
//! limits (decoders at once, the decode budget, the body policy).

use std::sync::Arc;

use crate::body::BodyPolicy;
use crate::metrics::Metrics;
use crate::registry::Registry;

/// Shared state of the routes.
pub struct AppState {
    pub registry: Arc<Registry>,
    pub metrics: Arc<Metrics>,
    pub token: Option<String>,
    /// Decodes at once, at most one per core: more only adds threads and memory.
    pub decoders: Arc<tokio::sync::Semaphore>,
    /// How request bodies must arrive.
    pub body: BodyPolicy,
    /// The decode budget in KiB, shared by every model: each decode reserves its peak
    /// memory (read from the image header) until the full-size image is dropped.
    pub budget: Arc<tokio::sync::Semaphore>,
    /// The whole budget in KiB.
    pub budget_kib: u32,
}
