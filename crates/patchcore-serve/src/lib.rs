//! `patchcore serve`: fitted models behind HTTP, for camera stations and browsers.
//!
//! * Every `*.patchcore` file of a folder is served under its file stem.
//! * `POST /v1/models/{name}/predict` takes a raw image body or a multipart form and answers
//!   JSON with the score, the normalised score, the verdict, the threshold, timings and, on
//!   request (`?heatmap=png|overlay`), the heatmap as a base64 PNG.
//! * `GET /v1/models`, `GET /healthz`, `GET /readyz`, `GET /metrics` (Prometheus text), and a
//!   web page at `/` compiled into the binary.
//! * Concurrent requests for a model are micro-batched (up to `data.batch_size` images within
//!   `serve.batch_window_ms`); each model's queue is bounded (`serve.queue_capacity`; full =
//!   503 with Retry-After); bodies are bounded in size and must arrive at a minimum rate
//!   before a request takes a slot; images are checked from their header before decoding
//!   and their decode memory reserved from a server-wide budget; queued requests hold the
//!   image resized for the model, not the decode; every request has a deadline
//!   (`serve.request_timeout_ms`).
//! * Connections are bounded in number, request heads must arrive within a timeout, HTTP/2
//!   is refused with GOAWAY `HTTP_1_1_REQUIRED`, and requests with both `Content-Length`
//!   and `Transfer-Encoding` or HTTP/1.1 without `Host` are answered 400.
//! * Model files are reloaded on SIGHUP and when a periodic check sees them change; a file
//!   that fails to load is refused and logged, and the model's previous version keeps
//!   serving. Shutdown (SIGTERM, Ctrl-C) stops accepting, lets what is in flight finish for
//!   at most the drain time, closes the rest and exits.
//! * With a token, every route but the health routes needs `Authorization: Bearer <token>`
//!   (or HTTP Basic with the token as password, which browsers prompt for), compared in
//!   constant time. No route takes a path from the client.
//!
//! docs/SERVE.md documents the API.

#![warn(missing_docs)]

mod body;
mod config;
mod conn;
mod error;
mod framing;
mod http;
mod metrics;
mod predict;
mod registry;
mod state;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use patchcore_core::{Error, Result};
use patchcore_device::ComputeDevice;

pub use config::ServeConfig;
pub use metrics::Metrics;
pub use registry::{Registry, ReloadReport};

/// Settings of `[serve]` overridden for every model (command-line flags).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServeOverrides {
    /// `serve.batch_window_ms`.
    pub batch_window_ms: Option<u64>,
    /// `serve.queue_capacity`.
    pub queue_capacity: Option<usize>,
    /// `serve.request_timeout_ms`.
    pub request_timeout_ms: Option<u64>,
}

/// What to serve and how.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The folder of `*.patchcore` files.
    pub models_dir: PathBuf,
    /// The bearer token; `None` = no authentication (bind to localhost then).
    pub token: Option<String>,
    /// Run every model on this device instead of its config's.
    pub device: Option<ComputeDevice>,
    /// Read the backbone weights from this file (SHA-256 checked against each model's).
    pub weights: Option<PathBuf>,
    /// Per-model settings overridden for all models.
    pub overrides: ServeOverrides,
    /// Largest request body in bytes (413 above).
    pub max_body_bytes: usize,
    /// How often the models folder is checked for changed files (SIGHUP checks at once).
    pub reload_interval: Duration,
    /// A request head must arrive within this time (also the idle time of a keep-alive
    /// connection), or the connection is closed.
    pub header_timeout: Duration,
    /// A body may take this long regardless of its rate.
    pub body_grace: Duration,
    /// Bytes per second a body must average after `body_grace` (408 below; 0 = no limit).
    pub body_min_rate: u64,
    /// Memory the decodes in progress may reserve together, in bytes (each reserves its
    /// peak, read from the image header; an image needing more than all of it is 413).
    pub decode_budget_bytes: u64,
    /// Open connections at most; more wait in the listen backlog.
    pub max_connections: usize,
    /// On shutdown, how long open connections may finish before they are closed.
    pub drain_timeout: Duration,
}

impl ServeOptions {
    /// Defaults for a models folder: no token, 32 MiB bodies, a check every 2 s, headers
    /// within 10 s, bodies at 32 KiB/s after 5 s, a 1 GiB decode budget, 1024 connections,
    /// a 10 s drain.
    pub fn new(models_dir: impl Into<PathBuf>) -> Self {
        Self {
            models_dir: models_dir.into(),
            token: None,
            device: None,
            weights: None,
            overrides: ServeOverrides::default(),
            max_body_bytes: 32 << 20,
            reload_interval: Duration::from_secs(2),
            header_timeout: Duration::from_secs(10),
            body_grace: Duration::from_secs(5),
            body_min_rate: 32 << 10,
            decode_budget_bytes: 1 << 30,
            max_connections: 1024,
            drain_timeout: Duration::from_secs(10),
        }
    }
}

/// Reads a token file: its first line, trimmed; an empty token is refused.
pub fn read_token_file(path: &std::path::Path) -> Result<String> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let token = text.lines().next().unwrap_or("").trim().to_string();
    if token.len() < 8 {
        return Err(Error::InvalidArgument(format!(
            "{}: the token must be at least 8 characters on the first line",
            path.display()
        )));
    }
    Ok(token)
}

/// Serves `opts.models_dir` on `listener` until `shutdown` completes, then lets the requests
/// in flight finish for at most `opts.drain_timeout` and returns. Loads the models first (a folder without loadable model
/// is served, with `/readyz` answering 503, until one appears).
pub async fn serve(
    listener: tokio::net::TcpListener,
    opts: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    if !opts.models_dir.is_dir() {
        return Err(Error::InvalidArgument(format!(
            "{} is not a folder of .patchcore model files",
            opts.models_dir.display()
        )));
    }
    let metrics = Arc::new(Metrics::default());
    let registry = Arc::new(Registry::new(opts.clone(), metrics.clone()));
    let first = registry.reload().await;
    tracing::info!(
        loaded = ?first.loaded,
        failed = first.failed.len(),
        "serving {}",
        opts.models_dir.display()
    );
    // The SIGHUP handler is installed before the first request can be answered.
    #[cfg(unix)]
    let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    #[cfg(not(unix))]
    let hup = None;
    let watcher = tokio::spawn(watch(registry.clone(), opts.reload_interval, hup));
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let budget_kib = (opts.decode_budget_bytes / 1024).clamp(
        1,
        tokio::sync::Semaphore::MAX_PERMITS.min(u32::MAX as usize) as u64,
    ) as u32;
    let state = Arc::new(state::AppState {
        registry,
        metrics,
        token: opts.token.clone(),
        decoders: Arc::new(tokio::sync::Semaphore::new(cores)),
        body: body::BodyPolicy {
            max_bytes: opts.max_body_bytes,
            grace: opts.body_grace,
            min_rate: opts.body_min_rate,
        },
        budget: Arc::new(tokio::sync::Semaphore::new(budget_kib as usize)),
        budget_kib,
    });
    let app = http::router(state, opts.max_body_bytes);
    let limits = conn::ConnLimits {
        header_timeout: opts.header_timeout,
        drain_timeout: opts.drain_timeout,
        max_connections: opts.max_connections.max(1),
    };
    conn::run(listener, app, limits, shutdown).await;
    watcher.abort();
    Ok(())
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = Option<()>;

/// Reloads on SIGHUP and every `interval`.
async fn watch(registry: Arc<Registry>, interval: Duration, mut hup: Hangup) {
    let mut tick = tokio::time::interval(interval);
    tick.tick().await;
    loop {
        #[cfg(unix)]
        {
            let hup_recv = async {
                match hup.as_mut() {
                    Some(h) => {
                        h.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = tick.tick() => {}
                _ = hup_recv => tracing::info!("SIGHUP: reloading the models"),
            }
        }
        #[cfg(not(unix))]
        {
            let _ = &mut hup;
            tick.tick().await;
        }
        let r = registry.reload().await;
        if !r.loaded.is_empty() || !r.removed.is_empty() {
            tracing::info!(loaded = ?r.loaded, removed = ?r.removed, "models reloaded");
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutting down: finishing the requests in flight");
}
