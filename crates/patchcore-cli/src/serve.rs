//! `patchcore serve`: the model files of a folder behind HTTP (patchcore-serve).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use patchcore_core::{Error, Result};
use patchcore_serve::{ServeOptions, ServeOverrides, read_token_file, serve, shutdown_signal};

/// The command line of `patchcore serve`.
#[derive(clap::Args)]
pub struct Args {
    /// Folder of `*.patchcore` files; each is served under its file stem.
    #[arg(long)]
    pub models: PathBuf,
    /// Address to listen on. Localhost by default; binding elsewhere without --token-file is
    /// allowed but warned about.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,
    /// File whose first line is the token every route but /healthz and /readyz requires
    /// (`Authorization: Bearer <token>`).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Run every model on this device instead of its config's (flex, ndarray, ...).
    #[arg(long)]
    pub device: Option<String>,
    /// Backbone weights file, if not where the models' configs say (SHA-256 must match).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Micro-batching window in ms (overrides every model's serve.batch_window_ms).
    #[arg(long)]
    pub batch_window_ms: Option<u64>,
    /// Queue bound per model (overrides serve.queue_capacity); more requests get 503.
    #[arg(long)]
    pub queue_capacity: Option<usize>,
    /// Per-request deadline in ms (overrides serve.request_timeout_ms); then 504.
    #[arg(long)]
    pub request_timeout_ms: Option<u64>,
    /// Largest request body in bytes (413 above).
    #[arg(long, default_value_t = 32 << 20)]
    pub max_body_bytes: usize,
    /// How often the folder is checked for new, changed or removed model files, in ms
    /// (SIGHUP checks at once).
    #[arg(long, default_value_t = 2000)]
    pub reload_interval_ms: u64,
    /// A request head (and a keep-alive connection's next one) must arrive within this many
    /// ms, or the connection is closed [default: 10000].
    #[arg(long)]
    pub header_timeout_ms: Option<u64>,
    /// A body may take this many ms regardless of its rate [default: 5000].
    #[arg(long)]
    pub body_grace_ms: Option<u64>,
    /// Bytes per second a body must average after the grace period, else 408 [default:
    /// 32768; 0 = no limit].
    #[arg(long)]
    pub body_min_rate: Option<u64>,
    /// Memory the image decodes in progress may reserve together, in MiB; an image that
    /// needs more than all of it is refused (413) [default: 1024].
    #[arg(long)]
    pub decode_budget_mb: Option<u64>,
    /// Open connections at most; more wait in the listen backlog [default: 1024].
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// On SIGTERM, how long open connections may finish before they are closed, in ms
    /// [default: 10000].
    #[arg(long)]
    pub drain_timeout_ms: Option<u64>,
}

/// Runs the command until SIGTERM or Ctrl-C.
pub fn run(args: &Args) -> Result<()> {
    let token = args
        .token_file
        .as_deref()
        .map(read_token_file)
        .transpose()?;
    if token.is_none() && !args.bind.ip().is_loopback() {
        tracing::warn!(
            "binding to {} without --token-file: anyone who reaches it can use the models",
            args.bind
        );
    }
    let defaults = ServeOptions::new(&args.models);
    let ms = |v: Option<u64>, d: Duration| v.map_or(d, Duration::from_millis);
    let opts = ServeOptions {
        token,
        device: args.device.as_deref().map(str::parse).transpose()?,
        weights: args.weights.clone(),
        overrides: ServeOverrides {
            batch_window_ms: args.batch_window_ms,
            queue_capacity: args.queue_capacity,
            request_timeout_ms: args.request_timeout_ms,
        },
        max_body_bytes: args.max_body_bytes,
        reload_interval: Duration::from_millis(args.reload_interval_ms.max(100)),
        header_timeout: ms(args.header_timeout_ms, defaults.header_timeout),
        body_grace: ms(args.body_grace_ms, defaults.body_grace),
        body_min_rate: args.body_min_rate.unwrap_or(defaults.body_min_rate),
        decode_budget_bytes: args
            .decode_budget_mb
            .map_or(defaults.decode_budget_bytes, |mb| mb << 20),
        max_connections: args.max_connections.unwrap_or(defaults.max_connections),
        drain_timeout: ms(args.drain_timeout_ms, defaults.drain_timeout),
        ..defaults
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::External(format!("cannot start the async runtime: {e}")))?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.bind)
            .await
            .map_err(|e| Error::External(format!("cannot listen on {}: {e}", args.bind)))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::External(e.to_string()))?;
        println!("serving {} on http://{addr}/", args.models.display());
        serve(listener, opts, shutdown_signal()).await
    })
}
