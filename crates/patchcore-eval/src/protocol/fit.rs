//! Fitting one category's model for a model file, with its decision threshold.

use std::path::PathBuf;

use patchcore_core::{Error, Result};
use patchcore_metrics::image_metrics;

use super::{EvaluateOptions, open_categories};
use crate::progress::Bar;
use patchcore_model::Config;
use patchcore_model::model_file::Threshold;
use patchcore_model::{FitStats, FittedOn, FittedPatchCore, PatchCore};

/// What to fit a model file on.
#[derive(Debug, Clone)]
pub struct FitOptions {
    /// Folder holding MVTec AD categories (`data.source = "mvtec"` only).
    pub data_root: PathBuf,
    /// The category; may be omitted when the data root (or the folder / manifest source) has
    /// exactly one.
    pub category: Option<String>,
    /// A decision threshold to store instead of calibrating one on the test split.
    pub threshold: Option<f32>,
    /// No progress bars.
    pub quiet: bool,
}

/// A model fitted by [`fit_model`], with what its calibration measured.
pub struct FittedCategory {
    /// The fitted model, threshold set.
    pub model: FittedPatchCore,
    /// What the fit measured.
    pub stats: FitStats,
    /// Test images and their scores, when the test split was scored for the threshold.
    pub test_scores: Vec<(PathBuf, f32)>,
    /// Image AUROC on the test split, when it was scored.
    pub image_auroc: Option<f64>,
}

/// Fits one category's memory bank for a model file. Unless `opts.threshold` is given, the
/// decision threshold is the image-score threshold of F1-max on the category's labelled test
/// split (anomalib's adaptive threshold), and the split's score range is kept for normalised
/// scores; without a labelled test split no threshold is stored.
pub fn fit_model(cfg: &Config, opts: &FitOptions) -> Result<FittedCategory> {
    if !cfg.ensemble.is_empty() {
        return Err(Error::config(
            "ensemble",
            "a model file holds one backbone; ensembles run in `patchcore evaluate` only",
        ));
    }
    let eval_opts = EvaluateOptions {
        data_root: opts.data_root.clone(),
        categories: opts.category.iter().cloned().collect(),
        output: None,
        quiet: opts.quiet,
    };
    let mut cats = open_categories(cfg, &eval_opts)?;
    if cats.len() != 1 {
        return Err(Error::InvalidArgument(format!(
            "{} categories under {}: name one with --category ({})",
            cats.len(),
            opts.data_root.display(),
            cats.iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let cat = cats.remove(0);
    let bar = Bar::new(opts.quiet);
    let mut model = PatchCore::from_config(cfg)?.fit(&cat.train, &bar)?;
    let stats = model
        .fit_stats()
        .cloned()
        .expect("a fitted model has its fit stats");
    model.set_fitted_on(FittedOn {
        dataset: cat.name.clone(),
        num_train: cat.train.len(),
        rows_full: stats.bank_rows_full,
    });
    let mut test_scores = Vec::new();
    let mut image_auroc = None;
    let labelled = cat.test.iter().any(|t| t.anomalous) && cat.test.iter().any(|t| !t.anomalous);
    if let Some(t) = opts.threshold {
        if !t.is_finite() {
            return Err(Error::InvalidArgument(format!(
                "threshold {t} is not finite"
            )));
        }
        model.set_threshold(Some(Threshold {
            value: t,
            source: "user".into(),
        }));
    } else if labelled {
        let paths: Vec<PathBuf> = cat.test.iter().map(|t| t.path.clone()).collect();
        let preds = model.predict_paths(&paths, &bar)?;
        let scores: Vec<f32> = preds.iter().map(|p| p.score).collect();
        let labels: Vec<bool> = cat.test.iter().map(|t| t.anomalous).collect();
        let m = image_metrics(&scores, &labels)?;
        model.set_threshold(Some(Threshold {
            value: m.f1_threshold,
            source: format!(
                "F1-max on the {} test split ({} images, image AUROC {:.4})",
                cat.name,
                scores.len(),
                m.auroc
            ),
        }));
        model.set_score_range(Some((
            scores.iter().copied().fold(f32::INFINITY, f32::min),
            scores.iter().copied().fold(f32::NEG_INFINITY, f32::max),
        )));
        image_auroc = Some(m.auroc);
        test_scores = paths.into_iter().zip(scores).collect();
    } else {
        tracing::warn!(
            category = %cat.name,
            "no labelled test split: the model has no threshold (pass --threshold to set one)"
        );
    }
    Ok(FittedCategory {
        model,
        stats,
        test_scores,
        image_auroc,
    })
}
