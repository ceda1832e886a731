//! The growth suite: fit time and peak memory by training-set size, one child process per
//! size.

use std::path::PathBuf;
use std::time::Instant;

use patchcore_core::{NoProgress, Result};
use patchcore_sampler::{GreedyVariant, ProjDim, Projection, SampleSize, Sampler};

use super::coreset::raw_radius;
use super::greedy;

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
    let cfg = patchcore_model::Config::default_experiment()?;
    let model = patchcore_model::PatchCore::from_config(&cfg)?;
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
        let sampler = |variant| {
            greedy(
                size,
                Projection::Gaussian(ProjDim::Fixed(128)),
                0,
                None,
                variant,
            )
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
        let rss = patchcore_eval::peak_rss_bytes().unwrap_or(0) as f64 / (1 << 20) as f64;
        println!(
            "| {} | {rows} | {r} | {k} | {extract:.2} | {exact_s} | {exact_rel} | {tp:.2} | {:.2} | {ratio} | {rss:.0} |",
            train.len(),
            tp / extract
        );
    }
    Ok(())
}
