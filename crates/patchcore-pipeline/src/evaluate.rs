use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use patchcore_core::{Error, Result};
use patchcore_data::{MvtecCategory, discover_categories, load_mask};
use patchcore_metrics::{PixelAuroc, auroc};
use rayon::prelude::*;
use serde::Serialize;

use crate::config::Config;
use crate::model::PatchCore;
use crate::progress::Bar;

/// What to evaluate and where to write.
#[derive(Debug, Clone)]
pub struct EvaluateOptions {
    /// Folder holding MVTec AD categories.
    pub data_root: PathBuf,
    /// Categories to run; empty = every category found under `data_root`.
    pub categories: Vec<String>,
    /// Where `report.json` and `report.md` go; `None` writes nothing.
    pub output: Option<PathBuf>,
    /// Suppress progress bars.
    pub quiet: bool,
}

/// Results of one category.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CategoryResult {
    pub image_auroc: f64,
    pub pixel_auroc: f64,
    pub num_train: usize,
    pub num_test: usize,
    pub num_test_anomalous: usize,
    pub bank_rows_full: usize,
    pub bank_rows: usize,
    pub feature_dim: usize,
    pub fit_seconds: f64,
    pub extract_seconds: f64,
    pub coreset_seconds: f64,
    pub infer_ms_per_image: f64,
    /// Per test image: (path relative to the category, defect type, score).
    #[serde(skip)]
    pub scores: Vec<(String, String, f32)>,
}

/// A whole evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub config: Config,
    pub data_root: String,
    pub categories: BTreeMap<String, CategoryResult>,
    pub weights_file: String,
    pub weights_sha256: String,
}

impl Report {
    /// Mean of image and pixel AUROC over categories.
    pub fn mean(&self) -> (f64, f64) {
        let n = self.categories.len().max(1) as f64;
        (
            self.categories.values().map(|c| c.image_auroc).sum::<f64>() / n,
            self.categories.values().map(|c| c.pixel_auroc).sum::<f64>() / n,
        )
    }
}

fn evaluate_category(
    model: &mut PatchCore,
    cat: &MvtecCategory,
    quiet: bool,
) -> Result<CategoryResult> {
    let bar = Bar::new(quiet);
    tracing::info!(category = %cat.name, train = cat.train.len(), test = cat.test.len(), "fitting");
    let t0 = Instant::now();
    let stats = model.fit(&cat.train, &bar)?;
    let fit_seconds = t0.elapsed().as_secs_f64();
    tracing::info!(
        category = %cat.name,
        bank = stats.bank_rows,
        of = stats.bank_rows_full,
        dim = stats.feature_dim,
        seconds = format!("{fit_seconds:.2}"),
        "memory bank ready"
    );
    let t1 = Instant::now();
    let paths: Vec<PathBuf> = cat.test.iter().map(|t| t.path.clone()).collect();
    let preds = model.predict_paths(&paths, &bar)?;
    let infer_seconds = t1.elapsed().as_secs_f64();

    let scores: Vec<f32> = preds.iter().map(|p| p.score).collect();
    let labels: Vec<bool> = cat.test.iter().map(|t| t.anomalous).collect();
    let image_auroc = auroc(&scores, &labels)?;

    let geometry = model.geometry;
    let masks: Vec<Vec<u8>> = cat
        .test
        .par_iter()
        .map(|t| -> Result<Vec<u8>> {
            let n = (geometry.crop * geometry.crop) as usize;
            match &t.mask {
                None => Ok(vec![0u8; n]),
                Some(m) => {
                    let mask = load_mask(m)?;
                    let img_dims = image::image_dimensions(&t.path).map_err(|e| Error::Image {
                        path: t.path.clone(),
                        message: e.to_string(),
                    })?;
                    if mask.dimensions() != img_dims {
                        return Err(Error::Dataset {
                            path: m.clone(),
                            message: format!(
                                "mask is {:?} but its image is {:?}",
                                mask.dimensions(),
                                img_dims
                            ),
                        });
                    }
                    Ok(geometry.mask_values(&mask))
                }
            }
        })
        .collect::<Result<_>>()?;
    let mut pixel = PixelAuroc::new();
    for (p, m) in preds.iter().zip(&masks) {
        pixel.add(p.anomaly_map.as_slice().expect("contiguous"), m)?;
    }
    let pixel_auroc = pixel.finish()?;
    let rel = |p: &PathBuf| {
        p.strip_prefix(&cat.root)
            .unwrap_or(p)
            .to_string_lossy()
            .into_owned()
    };
    Ok(CategoryResult {
        image_auroc,
        pixel_auroc,
        num_train: cat.train.len(),
        num_test: cat.test.len(),
        num_test_anomalous: labels.iter().filter(|l| **l).count(),
        bank_rows_full: stats.bank_rows_full,
        bank_rows: stats.bank_rows,
        feature_dim: stats.feature_dim,
        fit_seconds,
        extract_seconds: stats.extract_seconds,
        coreset_seconds: stats.sample_seconds,
        infer_ms_per_image: infer_seconds * 1000.0 / cat.test.len() as f64,
        scores: cat
            .test
            .iter()
            .zip(&scores)
            .map(|(t, s)| (rel(&t.path), t.defect_type.clone(), *s))
            .collect(),
    })
}

/// Fits and evaluates every requested category, then writes the reports.
pub fn evaluate(cfg: &Config, opts: &EvaluateOptions) -> Result<Report> {
    let categories = if opts.categories.is_empty() {
        discover_categories(&opts.data_root)?
    } else {
        opts.categories.clone()
    };
    // Check the whole layout before any expensive work.
    let cats: Vec<MvtecCategory> = categories
        .iter()
        .map(|c| MvtecCategory::open(&opts.data_root, c))
        .collect::<Result<_>>()?;
    let mut model = PatchCore::from_config(cfg)?;
    let mut results = BTreeMap::new();
    for cat in &cats {
        let r = evaluate_category(&mut model, cat, opts.quiet)?;
        tracing::info!(
            category = %cat.name,
            image_auroc = format!("{:.4}", r.image_auroc),
            pixel_auroc = format!("{:.4}", r.pixel_auroc),
            "evaluated"
        );
        results.insert(cat.name.clone(), r);
    }
    let report = Report {
        config: cfg.clone(),
        data_root: opts.data_root.to_string_lossy().into_owned(),
        categories: results,
        weights_file: model.weights.0.to_string_lossy().into_owned(),
        weights_sha256: model.weights.1.clone(),
    };
    if let Some(out) = &opts.output {
        crate::report::write(&report, out)?;
    }
    Ok(report)
}
