//! The components suites: backbones per device and batch, the samplers, the k-NN indices.

use std::time::{Duration, Instant};

use rayon::prelude::*;

use burn::tensor::{Tensor, TensorData};
use ndarray::Array2;
use patchcore_backbone::ResNetSpec;
use patchcore_core::{NoProgress, Result};
use patchcore_device::ComputeDevice;
use patchcore_nn::{ExactIndex, NearestNeighborIndex};
use patchcore_sampler::{GreedyVariant, ProjDim, Projection, SampleSize, Sampler};
use patchcore_testkit::lcg_matrix;

use super::{build, greedy, sgemm_peak, time_it};

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
    if with_kernels {
        kernels(min_time, peak)?;
    }
    Ok(())
}

/// The greedy coreset and the exact 1-NN at PatchCore's sizes, against the sgemm peak.
fn kernels(min_time: Duration, peak: f64) -> Result<()> {
    println!("\n## Greedy coreset (1%, 128-d projection) and exact 1-NN\n");
    println!("| operation | size | ms | GFLOP/s | % of sgemm peak |");
    println!("|---|---|---:|---:|---:|");
    println!(
        "| sgemm (gemm crate) | 2048 x 2048 x 2048 | {:.1} | {peak:.1} | 100 |",
        2.0 * 2048f64.powi(3) / peak / 1e6
    );
    let feats = lcg_matrix(40_960, 152, 7);
    let s = greedy(
        SampleSize::Ratio(0.01),
        Projection::Gaussian(ProjDim::Fixed(128)),
        0,
        Some(0),
        GreedyVariant::Pruned,
    );
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
    use patchcore_nn::{IndexParams, IvfParams};
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
            let index = p.check(0)?.build(bank.clone())?;
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
            Box::new(greedy(size, projection, 0, Some(0), GreedyVariant::Plain)),
        ),
        (
            "greedy, pruned",
            Box::new(greedy(size, projection, 0, Some(0), GreedyVariant::Pruned)),
        ),
        (
            "approximate greedy (10 starts)",
            Box::new(greedy(
                size,
                projection,
                0,
                None,
                GreedyVariant::Approximate { starts: 10 },
            )),
        ),
        ("random", Box::new(RandomSampler::new(size, 0))),
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
