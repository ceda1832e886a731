//! `patchcore`: fit and evaluate PatchCore from a config file, predict with model files,
//! serve them over HTTP, sweep config keys. (Benchmarks and the backend conformance suite are
//! development tooling: `cargo xtask bench`, `cargo xtask conformance`.)

mod bank;
mod evaluate;
mod predict;
mod serve;
mod sweep;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "patchcore",
    version,
    about = "PatchCore industrial anomaly detection (Roth et al., CVPR 2022)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fit on train/good of each category, score test/, write report.json and report.md.
    ///
    /// Without --data-root, a deterministic synthetic data set in the MVTec AD layout is
    /// generated under `<output>/synthetic-data` and evaluated (the demo).
    Evaluate(evaluate::Args),
    /// Sweep config keys over a grid (the [sweep] section of a config): every point is a full
    /// evaluation with its seeds; one table (md, html, csv) compares them. --plan writes one
    /// command per run for any scheduler; --merge tables finished runs.
    Sweep(sweep::Args),
    /// Serve the model files of a folder over HTTP: prediction with micro-batching, limits,
    /// reload on SIGHUP or file change, Prometheus metrics, a web page at / (docs/SERVE.md).
    Serve(serve::Args),
    /// Where a model's memory bank is searched (`status`), and moving it into a Qdrant
    /// collection shared by many stations (`push`, needs --features qdrant).
    #[command(subcommand)]
    Bank(bank::BankCommand),
    /// Fit one category's memory bank and write it as a model file (safetensors + JSON
    /// header; docs/MODEL_FILE.md). The decision threshold is F1-max on the category's
    /// labelled test split unless --threshold is given.
    Fit {
        /// Experiment config (TOML). Default: the compiled-in configs/mvtec_effnet_lite0.toml.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Folder holding MVTec AD categories.
        #[arg(long)]
        data_root: Option<PathBuf>,
        /// The category to fit (required when the data root holds several).
        #[arg(long)]
        category: Option<String>,
        /// Where to write the model.
        #[arg(long)]
        model: PathBuf,
        /// Store this image-score threshold instead of calibrating one.
        #[arg(long)]
        threshold: Option<f32>,
        /// No progress bars.
        #[arg(long)]
        quiet: bool,
    },
    /// Score images with a model file: one line per image (path, score, verdict); folders are
    /// walked. With --output, writes predictions.jsonl and heatmap overlays under maps/.
    /// Unreadable images are reported and skipped; the exit status is 2 if any were.
    Predict {
        /// The model file written by `patchcore fit`.
        #[arg(long)]
        model: PathBuf,
        /// Image files or folders.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// Folder for predictions.jsonl and maps/.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Run on this device instead of the model's (flex, ndarray, libtorch, cuda:0, ...).
        #[arg(long)]
        device: Option<String>,
        /// Backbone weights file, if not where the model's config says (SHA-256 must match).
        #[arg(long)]
        weights: Option<PathBuf>,
        /// Override the model's threshold.
        #[arg(long)]
        threshold: Option<f32>,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
}

fn run(cli: Cli) -> patchcore_core::Result<()> {
    match cli.command {
        Command::Fit {
            config,
            data_root,
            category,
            model,
            threshold,
            quiet,
        } => predict::fit(
            config.as_deref(),
            data_root,
            category,
            &model,
            threshold,
            quiet,
        ),
        Command::Predict {
            model,
            inputs,
            output,
            device,
            weights,
            threshold,
            quiet,
        } => {
            let failures = predict::predict(
                &model,
                &inputs,
                output.as_deref(),
                device,
                weights,
                threshold,
                quiet,
            )?;
            if failures > 0 {
                eprintln!("{failures} image(s) could not be read (listed above)");
                std::process::exit(2);
            }
            Ok(())
        }
        Command::Evaluate(args) => evaluate::run(&args),
        Command::Sweep(args) => sweep::run(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Bank(cmd) => bank::run(&cmd),
    }
}

/// mimalloc keeps freed pages for reuse: every forward pass allocates and frees the same
/// large activation buffers, which glibc's malloc returns to the kernel and faults back in
/// (a third of `evaluate`'s system time on bottle went to those page faults).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PATCHCORE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
