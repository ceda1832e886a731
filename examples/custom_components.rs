//! A sampler and an index written outside the workspace, against the public traits only,
//! put into PatchCore: fit, save, load, predict and evaluate on MVTec AD bottle.
//!
//! * `KMeansPlusPlus`: k-means++ seeding (D² sampling, Arthur & Vassilvitskii 2007) as the
//!   memory-bank sampler, a randomised cousin of the greedy k-center coreset;
//! * `BruteForceF64`: an exact index that accumulates distances in f64.
//!
//! ```sh
//! cargo run --release -p patchcore --example custom_components -- [DATA_ROOT] [TRAIN_LIMIT]
//! ```
//! DATA_ROOT defaults to `<shared>/datasets/mvtec_ad_256` (`PATCHCORE_SHARED_DIR`), the
//! training set to the first 32 bottle images (the sampler is single-threaded).

use std::path::PathBuf;

use ndarray::{Array2, ArrayView1, ArrayView2};
use patchcore::core::{Error, NoProgress, Progress, Result};
use patchcore::data::MvtecCategory;
use patchcore::eval::{EvaluateOptions, evaluate_with};
use patchcore::model::{Config, FittedPatchCore, LoadOptions, PatchCore, PatchCoreBuilder};
use patchcore::nn::{IndexBuilder, NearestNeighborIndex, Neighbors};
use patchcore::sampler::{SampleSize, Sampler};

/// SplitMix64: a small seeded generator, enough for D² sampling.
struct SplitMix(u64);

impl SplitMix {
    fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn sq_dist(a: ArrayView1<'_, f32>, b: ArrayView1<'_, f32>) -> f64 {
    a.iter()
        .zip(b.iter())
        .map(|(x, y)| {
            let d = (*x - *y) as f64;
            d * d
        })
        .sum()
}

/// k-means++ seeding as a memory-bank sampler: each next row is drawn with probability
/// proportional to its squared distance to the rows already kept.
struct KMeansPlusPlus {
    size: SampleSize,
    seed: u64,
}

impl Sampler for KMeansPlusPlus {
    fn name(&self) -> &str {
        "kmeans_pp"
    }

    fn size(&self) -> SampleSize {
        self.size
    }

    fn select_count(
        &self,
        features: ArrayView2<'_, f32>,
        count: usize,
        progress: &dyn Progress,
    ) -> Result<Vec<usize>> {
        let n = features.nrows();
        if n == 0 {
            return Err(Error::InvalidArgument("no rows to sample".into()));
        }
        let k = count.clamp(1, n);
        progress.start(k as u64, "k-means++ seeding");
        let mut rng = SplitMix(self.seed);
        let mut picked = vec![(rng.next_f64() * n as f64) as usize % n];
        let mut d2: Vec<f64> = (0..n)
            .map(|i| sq_dist(features.row(i), features.row(picked[0])))
            .collect();
        while picked.len() < k {
            let total: f64 = d2.iter().sum();
            let next = if total > 0.0 {
                let mut target = rng.next_f64() * total;
                d2.iter()
                    .position(|&d| {
                        target -= d;
                        target < 0.0
                    })
                    .unwrap_or(n - 1)
            } else {
                // Every row coincides with a kept one: take the first not yet kept.
                (0..n).find(|i| !picked.contains(i)).expect("k <= n")
            };
            picked.push(next);
            for (i, d) in d2.iter_mut().enumerate() {
                *d = d.min(sq_dist(features.row(i), features.row(next)));
            }
            progress.advance(1);
        }
        progress.finish();
        Ok(picked)
    }
}

/// Exact k-NN by a full scan with f64 accumulation.
struct BruteForceF64 {
    bank: Array2<f32>,
}

impl NearestNeighborIndex for BruteForceF64 {
    fn name(&self) -> &str {
        "brute_force_f64"
    }

    fn len(&self) -> usize {
        self.bank.nrows()
    }

    fn dim(&self) -> usize {
        self.bank.ncols()
    }

    fn row(&self, i: usize) -> ArrayView1<'_, f32> {
        self.bank.row(i)
    }

    fn search(&self, queries: ArrayView2<'_, f32>, k: usize) -> Result<Neighbors> {
        if k == 0 || queries.ncols() != self.dim() {
            return Err(Error::InvalidArgument(format!(
                "k = {k}, queries of width {} for a bank of width {}",
                queries.ncols(),
                self.dim()
            )));
        }
        let k = k.min(self.len());
        let mut distances = Array2::zeros((queries.nrows(), k));
        let mut indices = Array2::zeros((queries.nrows(), k));
        for (r, q) in queries.rows().into_iter().enumerate() {
            let mut all: Vec<(f64, usize)> = self
                .bank
                .rows()
                .into_iter()
                .enumerate()
                .map(|(i, m)| (sq_dist(q, m), i))
                .collect();
            all.sort_by(|a, b| a.0.total_cmp(&b.0));
            for (j, (d, i)) in all.into_iter().take(k).enumerate() {
                distances[[r, j]] = d.sqrt() as f32;
                indices[[r, j]] = i;
            }
        }
        Ok(Neighbors { distances, indices })
    }
}

/// Builds [`BruteForceF64`] indices.
struct BruteForceBuilder;

impl IndexBuilder for BruteForceBuilder {
    fn name(&self) -> &str {
        "brute_force_f64"
    }

    fn build(&self, bank: Array2<f32>) -> Result<Box<dyn NearestNeighborIndex>> {
        if bank.is_empty() || bank.iter().any(|v| !v.is_finite()) {
            return Err(Error::InvalidArgument(
                "the bank must be non-empty and finite".into(),
            ));
        }
        Ok(Box::new(BruteForceF64 { bank }))
    }
}

/// The default experiment with both custom components.
fn custom_model(cfg: &Config) -> Result<PatchCore> {
    PatchCoreBuilder::new(cfg.clone())
        .sampler(Box::new(KMeansPlusPlus {
            size: SampleSize::Ratio(0.01),
            seed: cfg.seed,
        }))
        .index_builder(Box::new(BruteForceBuilder))
        .build()
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = args
        .first()
        .map(PathBuf::from)
        .unwrap_or_else(|| patchcore_testkit::shared_dir().join("datasets/mvtec_ad_256"));
    let train_limit: usize = match args.get(1) {
        Some(s) => s
            .parse()
            .map_err(|_| Error::InvalidArgument(format!("TRAIN_LIMIT `{s}` is not a number")))?,
        None => 32,
    };
    let mut cfg = Config::default_experiment()?;
    cfg.data.train_limit = train_limit;

    // Fit.
    let mut cat = MvtecCategory::open(&root, "bottle")?;
    cat.train.truncate(train_limit);
    let model = custom_model(&cfg)?;
    let model = model.fit(&cat.train, &NoProgress)?;
    let stats = model.fit_stats().cloned().expect("fitted");
    println!(
        "fit: {} of {} rows kept by `{}`, index `{}`",
        stats.bank_rows,
        stats.bank_rows_full,
        model.sampler().map(|s| s.name()).unwrap_or("-"),
        model.index().name()
    );

    // Save: the file records both components as `kind = "custom"` with their names.
    let dir = std::env::temp_dir().join(format!("patchcore-custom-{}", std::process::id()));
    let path = dir.join("bottle.patchcore");
    model.save(&path)?;
    let header = model.header()?;
    println!(
        "saved {}: sampler {:?}, nn {:?}",
        path.display(),
        header.config.sampler,
        header.config.nn
    );

    // Load: the custom index must be supplied, under its recorded name.
    let refused = FittedPatchCore::load(&path)
        .err()
        .ok_or_else(|| Error::InvalidArgument("loaded without its custom index".into()))?;
    println!("loading without the index builder is refused: {refused}");
    let loaded = FittedPatchCore::load_with(
        &path,
        LoadOptions {
            index: Some(Box::new(BruteForceBuilder)),
            ..Default::default()
        },
    )?;

    // Predict: the loaded model scores exactly as the fitted one.
    let image = patchcore::data::load_rgb(&cat.test[0].path)?;
    let (a, b) = (model.predict(&image)?, loaded.predict(&image)?);
    if a.score != b.score || a.anomaly_map != b.anomaly_map {
        return Err(Error::InvalidArgument(format!(
            "loaded model scores {} where the fitted one scores {}",
            b.score, a.score
        )));
    }
    println!(
        "predict {}: score {:.4} (fitted and loaded agree)",
        cat.test[0].path.display(),
        a.score
    );
    std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;

    // Evaluate: the standard protocol with models built by `custom_model`.
    let report = evaluate_with(
        &cfg,
        &EvaluateOptions {
            data_root: root,
            categories: vec!["bottle".into()],
            output: None,
            quiet: true,
        },
        &custom_model,
    )?;
    let r = &report.categories["bottle"];
    println!(
        "evaluate bottle ({} train images): image AUROC {:.4}, pixel AUROC {:.4}, sampler `{}`",
        r.num_train,
        r.image_auroc,
        r.pixel_auroc.unwrap_or(f64::NAN),
        report.config.sampler.kind()
    );
    if r.image_auroc < 0.9 {
        return Err(Error::InvalidArgument(format!(
            "image AUROC {:.4} is implausibly low for bottle",
            r.image_auroc
        )));
    }
    Ok(())
}
