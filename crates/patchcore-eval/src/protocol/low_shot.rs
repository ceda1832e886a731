//! The low-shot protocol (paper §4.4, Fig. 5): fit on `k` training images for every `k` in
//! `protocol.shots` and every seed, test on the whole test split.

use patchcore_core::Result;
use patchcore_data::{MvtecCategory, TrainLimit};

use patchcore_model::config::TrainSelection;
use patchcore_model::{Config, PatchCore};

use super::standard::{RunSpec, evaluate_category, intervals_of};
use crate::config::ProtocolConfig;
use crate::results::{CategoryResult, LowShotResult, Spread};

/// Fits on `k` images for every configured size and seed; the test split is always whole.
pub(crate) fn run_low_shot(
    cfg: &Config,
    protocol: &ProtocolConfig,
    models: &mut [PatchCore],
    cat: &MvtecCategory,
    quiet: bool,
) -> Result<Vec<LowShotResult>> {
    let seeds: Vec<u64> = match protocol.selection {
        TrainSelection::First => vec![protocol.low_shot_seeds(cfg)[0]],
        TrainSelection::Random => protocol.low_shot_seeds(cfg),
    };
    let mut out = Vec::new();
    for &k in &protocol.shots {
        if k > cat.train.len() {
            tracing::warn!(category = %cat.name, shots = k, available = cat.train.len(), "skipping: fewer training images");
            continue;
        }
        let mut runs = Vec::new();
        for &seed in &seeds {
            let mut c = cat.clone();
            c.limit_train(match protocol.selection {
                TrainSelection::First => TrainLimit::First(k),
                TrainSelection::Random => TrainLimit::Random { k, seed },
            });
            // The seed draws the subset and drives the sampler.
            let r = evaluate_category(
                models,
                &c,
                &RunSpec::of(cfg, protocol, vec![seed], quiet, false),
            )?;
            tracing::info!(category = %cat.name, shots = k, seed, image_auroc = format!("{:.4}", r.image_auroc), "low-shot run");
            runs.push(r);
        }
        let labels: Vec<bool> = cat.test.iter().map(|t| t.anomalous).collect();
        let scores: Vec<&[f32]> = runs.iter().map(|r| r.seed_scores[0].as_slice()).collect();
        let hists: Vec<&patchcore_metrics::ci::PixelHistograms> = runs
            .iter()
            .filter_map(|r| r.pixel_histograms.first())
            .collect();
        let spec = RunSpec::of(cfg, protocol, seeds.clone(), quiet, false);
        let intervals = intervals_of(&scores, &hists, &labels, &spec.bootstrap, &cat.name);
        let col = |f: &dyn Fn(&CategoryResult) -> Option<f64>| {
            Spread::of(runs.iter().filter_map(f).collect())
        };
        out.push(LowShotResult {
            shots: k,
            seeds: seeds.clone(),
            image_auroc: col(&|r| Some(r.image_auroc)).expect("at least one run"),
            image_f1_max: col(&|r| Some(r.image_f1_max)).expect("at least one run"),
            pixel_auroc: col(&|r| r.pixel_auroc),
            pixel_aupro: col(&|r| r.pixel_aupro),
            fit_seconds: col(&|r| Some(r.fit_seconds)).expect("at least one run"),
            intervals,
        });
    }
    Ok(out)
}
