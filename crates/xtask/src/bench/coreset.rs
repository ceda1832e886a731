//! The coreset and rules suites: selection time and raw-space covering radius on real
//! training features.

use std::path::PathBuf;
use std::time::Instant;

use ndarray::Array2;
use patchcore_core::{NoProgress, Result};
use patchcore_nn::{ExactIndex, NearestNeighborIndex};
use patchcore_sampler::{GreedyVariant, ProjDim, Projection, SampleSize, Sampler};

use super::{Args, greedy};

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
pub(super) fn raw_radius(feats: &Array2<f32>, sel: &[usize]) -> Result<f32> {
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
    let seeds = patchcore_eval::sweep::parse_seeds(&a.seeds)?;
    let synthetic_images = a.synthetic_images;
    let (train, tmp) = coreset_images(data_root, category, synthetic_images)?;
    let cfg = patchcore_model::Config::default_experiment()?;
    let model = patchcore_model::PatchCore::from_config(&cfg)?;
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
        let s = patchcore_eval::Spread::of(v.to_vec()).expect("one seed at least");
        (s.mean, s.std)
    };
    for &r in ratios {
        let size = SampleSize::ratio(r)?;
        let k = size.resolve(n);
        let sampler = |variant, seed| {
            greedy(
                size,
                Projection::Gaussian(ProjDim::Fixed(128)),
                seed,
                None,
                variant,
            )
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
    let seeds = patchcore_eval::sweep::parse_seeds(seeds)?;
    let cat = patchcore_data::MvtecCategory::open(data_root, category)?;
    let cfgs: Vec<patchcore_model::Config> = configs
        .iter()
        .map(|p| patchcore_model::Config::from_file(p))
        .collect::<Result<_>>()?;
    let model = patchcore_model::PatchCore::from_config(&cfgs[0])?;
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
        let s = patchcore_eval::Spread::of(v.to_vec()).expect("one seed at least");
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
