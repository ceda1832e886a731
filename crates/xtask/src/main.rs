//! `cargo xtask`: the project's development tooling, kept out of the published `patchcore`
//! binary (it needs the unpublished test kit and the evaluation crate).
//!
//! * `cargo xtask bench [--suite ...]`: component throughput, coreset, latency, growth, serve
//!   and index suites, printed as Markdown tables for docs/BENCHMARKS.md.
//! * `cargo xtask conformance [--device D]`: the backend parity suite against the reference
//!   tensors.
//! * `cargo xtask synth-large --out DIR`: the generated large-image data set with small
//!   defects (MVTec layout) for the tiling benchmark (`scripts/tiling_bench.py`).

mod bench;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use patchcore_core::{Error, Result};
use patchcore_device::ComputeDevice;

#[derive(Parser)]
#[command(name = "xtask", about = "patchcore-rs development tooling")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Measure component throughput (backbones per device and batch, coreset, k-NN) and print
    /// Markdown tables for docs/BENCHMARKS.md.
    Bench(Box<bench::Args>),
    /// Run the backend conformance suite (fixture parity of backbones and aggregation, and an
    /// end-to-end comparison with flex on MVTec AD bottle) on each device; print one table.
    /// Exits non-zero if a check fails.
    Conformance {
        /// Devices to check, e.g. flex, ndarray, libtorch, libtorch-cuda:0, cuda:0. Default:
        /// every CPU backend of this build.
        #[arg(long = "device")]
        devices: Vec<String>,
        /// Also write the checks as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Write the generated large-image data set (woven surface, defects of 10-20 px) in the
    /// MVTec AD layout under OUT/CATEGORY.
    SynthLarge {
        /// Data root to write into.
        #[arg(long)]
        out: PathBuf,
        /// Category folder name.
        #[arg(long, default_value = "synthetic_large")]
        category: String,
        #[arg(long, default_value_t = 1600)]
        width: u32,
        #[arg(long, default_value_t = 1200)]
        height: u32,
        /// Training images.
        #[arg(long, default_value_t = 10)]
        train: usize,
        /// Defect-free test images.
        #[arg(long, default_value_t = 6)]
        test_good: usize,
        /// Test images per defect type (scratch, spot).
        #[arg(long, default_value_t = 6)]
        test_per_defect: usize,
        /// JPEG images (quality 92) instead of PNG.
        #[arg(long)]
        jpeg: bool,
        #[arg(long, default_value_t = 2022)]
        seed: u64,
    },
}

/// Parses device names (`flex`, `cuda:0`, ...).
pub(crate) fn parse_devices(names: &[String]) -> Result<Vec<ComputeDevice>> {
    names.iter().map(|d| d.parse()).collect()
}

/// The `patchcore` binary the serve suite starts: `$PATCHCORE_BIN`, else the one beside this
/// executable (`cargo build --release -p patchcore-cli` puts it there).
pub(crate) fn patchcore_exe() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("PATCHCORE_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(|e| Error::io("current_exe", e))?;
    let beside = exe.with_file_name(format!("patchcore{}", std::env::consts::EXE_SUFFIX));
    if beside.is_file() {
        Ok(beside)
    } else {
        Err(Error::InvalidArgument(format!(
            "no `patchcore` binary at {}: run `cargo build --release -p patchcore-cli` first, \
             or set PATCHCORE_BIN",
            beside.display()
        )))
    }
}

/// `cargo xtask conformance`: the backend parity suite on each device; fails if any check does.
fn conformance(devices: &[String], json: Option<&std::path::Path>) -> Result<()> {
    use patchcore_testkit::conformance;
    let devices = if devices.is_empty() {
        ComputeDevice::compiled_cpu()
    } else {
        parse_devices(devices)?
    };
    let mut checks = conformance::aggregation()?;
    for d in devices {
        eprintln!("conformance on {d} ...");
        checks.extend(conformance::run(d)?);
    }
    print!("{}", conformance::table(&checks));
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&checks)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        patchcore_core::io::write_atomic(path, text.as_bytes())?;
    }
    let failed = checks.iter().filter(|c| !c.passed()).count();
    if failed > 0 {
        return Err(Error::InvalidArgument(format!(
            "{failed} of {} conformance checks failed",
            checks.len()
        )));
    }
    Ok(())
}

/// The same allocator as the `patchcore` binary, so that timings compare.
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
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Bench(args) => bench::dispatch(&args),
        Command::Conformance { devices, json } => conformance(&devices, json.as_deref()),
        Command::SynthLarge {
            out,
            category,
            width,
            height,
            train,
            test_good,
            test_per_defect,
            jpeg,
            seed,
        } => patchcore_data::synthetic::generate_large(
            &out,
            &patchcore_data::synthetic::LargeSpec {
                category,
                width,
                height,
                train,
                test_good,
                test_per_defect,
                jpeg,
                seed,
            },
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
