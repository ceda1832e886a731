//! `[serve]`: how the service batches and bounds the requests for a model. The section is
//! owned here; the model's config keeps it as written, so a model file carries it.

use patchcore_core::Result;
use patchcore_model::Config;
use serde::{Deserialize, Serialize};

/// `[serve]`: how `patchcore serve` batches and bounds the requests for a model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    /// How long the first request of a batch waits for others (up to `data.batch_size`
    /// images), in milliseconds; 0 = no waiting (batches form only from queued requests).
    #[serde(default = "d_window")]
    pub batch_window_ms: u64,
    /// Requests waiting for a model at most; more get 503 with Retry-After.
    #[serde(default = "d_queue")]
    pub queue_capacity: usize,
    /// Longest time a request may take, queueing included, in milliseconds (then 504).
    #[serde(default = "d_timeout")]
    pub request_timeout_ms: u64,
}
fn d_window() -> u64 {
    5
}
fn d_queue() -> usize {
    64
}
fn d_timeout() -> u64 {
    30_000
}
impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            batch_window_ms: d_window(),
            queue_capacity: d_queue(),
            request_timeout_ms: d_timeout(),
        }
    }
}

impl ServeConfig {
    /// Range checks naming the key.
    pub fn validate(&self) -> Result<()> {
        use patchcore_core::Error;
        if self.batch_window_ms > 10_000 {
            return Err(Error::config(
                "serve.batch_window_ms",
                format!("at most 10000 ms, got {}", self.batch_window_ms),
            ));
        }
        if self.queue_capacity == 0 {
            return Err(Error::config("serve.queue_capacity", "must be at least 1"));
        }
        if self.request_timeout_ms == 0 {
            return Err(Error::config(
                "serve.request_timeout_ms",
                "must be positive",
            ));
        }
        Ok(())
    }
}

impl ServeConfig {
    /// The `[serve]` section of `cfg`, parsed and checked (errors name the key).
    pub fn of(cfg: &Config) -> Result<Self> {
        let s: Self = cfg.serve.parse("serve")?;
        s.validate()?;
        Ok(s)
    }
}
