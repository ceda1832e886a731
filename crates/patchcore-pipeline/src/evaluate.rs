use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use ndarray::Array2;
use patchcore_core::{Error, Result};
use patchcore_data::{
    MvtecCategory, TrainLimit, discover_categories, load_mask, load_rgb, open_folder, open_manifest,
};
use patchcore_metrics::{PixelMetricValues, PixelMetrics, image_metrics};
use rayon::prelude::*;
use serde::Serialize;

use crate::config::{Config, DataSource, MetricsResolution, ProtocolKind, TrainSelection};
use crate::model::{PatchCore, StageTimes};
use crate::progress::Bar;

/// What to evaluate and where to write.
#[derive(Debug, Clone)]
pub struct EvaluateOptions {
    /// Folder holding MVTec AD categories (`data.source = "mvtec"` only).
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
    /// Average precision of the image scores.
    pub image_aupr: f64,
    pub image_f1_max: f64,
    /// Image score threshold achieving `image_f1_max`.
    pub image_f1_threshold: f32,
    /// Absent when the test split lacks masks (see `pixel_metrics_absent`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pixel_auroc: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pixel_aupr: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pixel_f1_max: Option<f64>,
    /// AUPRO integrated up to FPR 0.3 over 8-connected ground-truth regions, normalised.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pixel_aupro: Option<f64>,
    /// Why pixel metrics are absent, if they are.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pixel_metrics_absent: Option<String>,
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
    /// Seconds per test stage (decode, extraction, search + scoring, maps), all test images.
    pub test_stage_seconds: StageTimes,
    /// Per test image: (path relative to the category, defect type, score).
    #[serde(skip)]
    pub scores: Vec<(String, String, f32)>,
    /// The category's section of report.html (empty when no report is written).
    #[serde(skip)]
    pub html: String,
}

/// A whole evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub config: Config,
    pub data_root: String,
    pub categories: BTreeMap<String, CategoryResult>,
    /// Per backbone: architecture, tapped layers and weights.
    pub backbones: Vec<BackboneReport>,
    /// Low-shot protocol results per category (empty for the standard protocol).
    pub low_shot: BTreeMap<String, Vec<LowShotResult>>,
}

/// Mean, sample standard deviation and the values of a metric over seeds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Spread {
    pub mean: f64,
    pub std: f64,
    pub values: Vec<f64>,
}

impl Spread {
    fn of(values: Vec<f64>) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let var = if values.len() > 1 {
            values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)
        } else {
            0.0
        };
        Some(Self {
            mean,
            std: var.sqrt(),
            values,
        })
    }
}

/// One training-set size of the low-shot protocol.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LowShotResult {
    /// Training images used.
    pub shots: usize,
    /// Seeds run (one per run; "first" selection runs once).
    pub seeds: Vec<u64>,
    pub image_auroc: Spread,
    pub image_f1_max: Spread,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pixel_auroc: Option<Spread>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pixel_aupro: Option<Spread>,
    pub fit_seconds: Spread,
}

/// Fits on `k` images for every configured size and seed; the test split is always whole.
fn run_low_shot(
    cfg: &Config,
    models: &mut [PatchCore],
    cat: &MvtecCategory,
    quiet: bool,
) -> Result<Vec<LowShotResult>> {
    let seeds: Vec<u64> = match cfg.protocol.selection {
        TrainSelection::First => vec![cfg.protocol.seeds[0]],
        TrainSelection::Random => cfg.protocol.seeds.clone(),
    };
    let mut out = Vec::new();
    for &k in &cfg.protocol.shots {
        if k > cat.train.len() {
            tracing::warn!(category = %cat.name, shots = k, available = cat.train.len(), "skipping: fewer training images");
            continue;
        }
        let mut runs = Vec::new();
        for &seed in &seeds {
            let mut c = cat.clone();
            c.limit_train(match cfg.protocol.selection {
                TrainSelection::First => TrainLimit::First(k),
                TrainSelection::Random => TrainLimit::Random { k, seed },
            });
            let r = evaluate_category(models, &c, quiet, false)?;
            tracing::info!(category = %cat.name, shots = k, seed, image_auroc = format!("{:.4}", r.image_auroc), "low-shot run");
            runs.push(r);
        }
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
        });
    }
    Ok(out)
}

/// What one backbone of a report ran on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackboneReport {
    pub arch: String,
    pub layers: Vec<String>,
    pub weights_file: String,
    pub weights_sha256: String,
    pub pretrained: bool,
}

impl BackboneReport {
    /// The first 12 hex digits of the weights' SHA-256.
    pub fn sha256_short(&self) -> &str {
        &self.weights_sha256[..self.weights_sha256.len().min(12)]
    }
}

impl Report {
    /// Mean of a metric over the categories that have it (`None` if none has).
    pub fn mean_of(&self, metric: impl Fn(&CategoryResult) -> Option<f64>) -> Option<f64> {
        let v: Vec<f64> = self.categories.values().filter_map(metric).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    }

    /// Mean image AUROC over categories, and mean pixel AUROC over the categories that
    /// have pixel metrics (`None` if none has).
    pub fn mean(&self) -> (f64, Option<f64>) {
        let n = self.categories.len().max(1) as f64;
        let pix: Vec<f64> = self
            .categories
            .values()
            .filter_map(|c| c.pixel_auroc)
            .collect();
        (
            self.categories.values().map(|c| c.image_auroc).sum::<f64>() / n,
            (!pix.is_empty()).then(|| pix.iter().sum::<f64>() / pix.len() as f64),
        )
    }
}

/// Min-max normalises each member's values over the whole test set and averages them
/// (the official implementation's ensemble rule). One member passes through unchanged.
pub fn combine_members(
    mut members: Vec<(Vec<f32>, Vec<Array2<f32>>)>,
) -> (Vec<f32>, Vec<Array2<f32>>) {
    if members.len() == 1 {
        return members.pop().expect("one member");
    }
    let norm = |lo: f32, hi: f32| {
        let span = if hi > lo { hi - lo } else { 1.0 };
        move |v: f32| (v - lo) / span
    };
    let n = members.len() as f32;
    let mut scores = vec![0f32; members[0].0.len()];
    let mut maps: Vec<Array2<f32>> = members[0]
        .1
        .iter()
        .map(|m| Array2::zeros(m.dim()))
        .collect();
    for (s, m) in &members {
        let f = norm(
            s.iter().copied().fold(f32::INFINITY, f32::min),
            s.iter().copied().fold(f32::NEG_INFINITY, f32::max),
        );
        for (acc, v) in scores.iter_mut().zip(s) {
            *acc += f(*v) / n;
        }
        let lo = m
            .iter()
            .flat_map(|a| a.iter())
            .copied()
            .fold(f32::INFINITY, f32::min);
        let hi = m
            .iter()
            .flat_map(|a| a.iter())
            .copied()
            .fold(f32::NEG_INFINITY, f32::max);
        let f = norm(lo, hi);
        for (acc, a) in maps.iter_mut().zip(m) {
            acc.zip_mut_with(a, |x, y| *x += f(*y) / n);
        }
    }
    (scores, maps)
}

fn evaluate_category(
    models: &mut [PatchCore],
    cat: &MvtecCategory,
    quiet: bool,
    html: bool,
) -> Result<CategoryResult> {
    let bar = Bar::new(quiet);
    let paths: Vec<PathBuf> = cat.test.iter().map(|t| t.path.clone()).collect();
    let mut members = Vec::with_capacity(models.len());
    let (mut fit_seconds, mut extract_seconds, mut coreset_seconds, mut infer_seconds) =
        (0.0, 0.0, 0.0, 0.0);
    let (mut bank_rows, mut bank_rows_full, mut feature_dim) = (0, 0, 0);
    let mut test_times = StageTimes::default();
    for model in models.iter_mut() {
        tracing::info!(category = %cat.name, backbone = model.backbone.name(), train = cat.train.len(), test = cat.test.len(), "fitting");
        let t0 = Instant::now();
        let stats = model.fit(&cat.train, &bar)?;
        let fit = t0.elapsed().as_secs_f64();
        tracing::info!(
            category = %cat.name,
            bank = stats.bank_rows,
            of = stats.bank_rows_full,
            dim = stats.feature_dim,
            seconds = format!("{fit:.2}"),
            "memory bank ready"
        );
        fit_seconds += fit;
        extract_seconds += stats.extract_seconds;
        coreset_seconds += stats.sample_seconds;
        bank_rows += stats.bank_rows;
        bank_rows_full += stats.bank_rows_full;
        feature_dim += stats.feature_dim;
        let t1 = Instant::now();
        let preds = model.predict_paths_timed(&paths, &bar, &mut test_times)?;
        infer_seconds += t1.elapsed().as_secs_f64();
        let scores: Vec<f32> = preds.iter().map(|p| p.score).collect();
        members.push((
            scores,
            preds.into_iter().map(|p| p.anomaly_map).collect::<Vec<_>>(),
        ));
    }
    let (scores, maps) = combine_members(members);
    let labels: Vec<bool> = cat.test.iter().map(|t| t.anomalous).collect();
    let image = image_metrics(&scores, &labels)?;

    let pixel_metrics_absent = cat.pixel_metrics_unavailable();
    let geometry = models[0].geometry;
    let (pixel, masks) = if pixel_metrics_absent.is_some() {
        (None, None)
    } else {
        let (p, m) = pixel_metrics_of(cat, &maps, geometry, models[0].metrics_resolution)?;
        (Some(p), Some(m))
    };

    let rel = |p: &PathBuf| {
        p.strip_prefix(&cat.root)
            .unwrap_or(p)
            .to_string_lossy()
            .into_owned()
    };
    let html = if html {
        let lo = maps
            .iter()
            .flat_map(|m| m.iter())
            .copied()
            .fold(f32::INFINITY, f32::min);
        let hi = maps
            .iter()
            .flat_map(|m| m.iter())
            .copied()
            .fold(f32::NEG_INFINITY, f32::max);
        let inputs: Vec<image::RgbImage> = cat
            .test
            .par_iter()
            .map(|t| load_rgb(&t.path).map(|img| geometry.apply_rgb(&img)))
            .collect::<Result<_>>()?;
        let shown: Vec<crate::html::Shown<'_>> = cat
            .test
            .iter()
            .zip(inputs)
            .enumerate()
            .map(|(i, (t, input))| crate::html::Shown {
                name: rel(&t.path),
                defect_type: t.defect_type.clone(),
                score: scores[i],
                anomalous: t.anomalous,
                input,
                map: &maps[i],
                mask: masks
                    .as_ref()
                    .filter(|_| t.mask.is_some())
                    .map(|m| m[i].as_slice()),
            })
            .collect();
        let view = crate::html::CategoryView {
            name: &cat.name,
            image_roc: &image.roc,
            image_auroc: image.auroc,
            pixel_roc: pixel.as_ref().map(|p| p.roc.as_slice()),
            pixel_auroc: pixel.as_ref().map(|p| p.auroc),
            image_threshold: image.f1_threshold,
            pixel_threshold: pixel.as_ref().map(|p| p.f1_threshold),
            map_range: (lo, hi),
        };
        crate::html::category_section(&view, &shown, 24)
    } else {
        String::new()
    };

    Ok(CategoryResult {
        image_auroc: image.auroc,
        image_aupr: image.aupr,
        image_f1_max: image.f1_max,
        image_f1_threshold: image.f1_threshold,
        pixel_auroc: pixel.as_ref().map(|p| p.auroc),
        pixel_aupr: pixel.as_ref().map(|p| p.aupr),
        pixel_f1_max: pixel.as_ref().map(|p| p.f1_max),
        pixel_aupro: pixel.as_ref().map(|p| p.aupro),
        pixel_metrics_absent,
        num_train: cat.train.len(),
        num_test: cat.test.len(),
        num_test_anomalous: labels.iter().filter(|l| **l).count(),
        bank_rows_full,
        bank_rows,
        feature_dim,
        fit_seconds,
        extract_seconds,
        coreset_seconds,
        infer_ms_per_image: infer_seconds * 1000.0 / cat.test.len() as f64,
        test_stage_seconds: test_times,
        scores: cat
            .test
            .iter()
            .zip(&scores)
            .map(|(t, s)| (rel(&t.path), t.defect_type.clone(), *s))
            .collect(),
        html,
    })
}

/// FPR limit of the AUPRO (MVTec's and anomalib's).
pub const AUPRO_FPR_LIMIT: f64 = 0.3;

/// Pixel metrics of a category's maps against its masks sent through `geometry`.
fn pixel_metrics_of(
    cat: &MvtecCategory,
    maps: &[Array2<f32>],
    geometry: patchcore_data::Geometry,
    resolution: MetricsResolution,
) -> Result<(PixelMetricValues, Vec<Vec<u8>>)> {
    // Masks at the crop geometry (always: the HTML overlays use them), checked against their
    // images' sizes.
    let loaded: Vec<(Option<image::GrayImage>, (u32, u32))> = cat
        .test
        .par_iter()
        .map(|t| -> Result<_> {
            let dims = image::image_dimensions(&t.path).map_err(|e| Error::Image {
                path: t.path.clone(),
                message: e.to_string(),
            })?;
            let mask = match &t.mask {
                None => None,
                Some(m) => {
                    let mask = load_mask(m)?;
                    if mask.dimensions() != dims {
                        return Err(Error::Dataset {
                            path: m.clone(),
                            message: format!(
                                "mask is {:?} but its image is {:?}",
                                mask.dimensions(),
                                dims
                            ),
                        });
                    }
                    Some(mask)
                }
            };
            Ok((mask, dims))
        })
        .collect::<Result<_>>()?;
    let n = (geometry.crop * geometry.crop) as usize;
    let masks: Vec<Vec<u8>> = loaded
        .iter()
        .map(|(m, _)| {
            m.as_ref()
                .map(|m| geometry.mask_values(m))
                .unwrap_or_else(|| vec![0u8; n])
        })
        .collect();
    let mut pixel = PixelMetrics::new();
    for ((map, m), (full_mask, (w0, h0))) in maps.iter().zip(&masks).zip(&loaded) {
        match resolution {
            MetricsResolution::Crop => {
                let (h, w) = map.dim();
                pixel.add(map.as_slice().expect("contiguous"), m, h, w)?;
            }
            MetricsResolution::Full => {
                let full = full_resolution_map(map, geometry, *h0 as usize, *w0 as usize);
                let mask: Vec<u8> = match full_mask {
                    Some(fm) => fm.pixels().map(|p| u8::from(p.0[0] > 127)).collect(),
                    None => vec![0u8; full.len()],
                };
                pixel.add(
                    full.as_slice().expect("contiguous"),
                    &mask,
                    *h0 as usize,
                    *w0 as usize,
                )?;
            }
        }
    }
    Ok((pixel.finish(AUPRO_FPR_LIMIT)?, masks))
}

/// Brings a map at the crop geometry back to the original image: placed in the resized frame
/// (the border outside the crop takes the nearest map value), then resized bilinearly to the
/// original size.
pub fn full_resolution_map(
    map: &Array2<f32>,
    geometry: patchcore_data::Geometry,
    h0: usize,
    w0: usize,
) -> Array2<f32> {
    let r = geometry.resize as usize;
    let c = geometry.crop as usize;
    let o = ((r - c) as f32 / 2.0).round() as usize;
    let frame = Array2::from_shape_fn((r, r), |(y, x)| {
        map[[
            y.saturating_sub(o).min(c - 1),
            x.saturating_sub(o).min(c - 1),
        ]]
    });
    patchcore_score::resize_bilinear(frame.view(), h0, w0)
}

/// The categories a config and options describe, layouts checked, train limit applied.
pub fn open_categories(cfg: &Config, opts: &EvaluateOptions) -> Result<Vec<MvtecCategory>> {
    let base = cfg.base_dir.clone().unwrap_or_default();
    let allow = cfg.data.allow_partial_masks;
    let mut cats = match cfg.data.source {
        DataSource::Mvtec => {
            let names = if opts.categories.is_empty() {
                discover_categories(&opts.data_root)?
            } else {
                opts.categories.clone()
            };
            names
                .iter()
                .map(|c| MvtecCategory::open_with(&opts.data_root, c, allow))
                .collect::<Result<Vec<_>>>()?
        }
        DataSource::Folder => {
            let spec = cfg.data.folder.as_ref().expect("validated");
            vec![open_folder(spec, &base, cfg.seed, allow)?]
        }
        DataSource::Manifest => {
            let m = cfg.data.manifest.as_ref().expect("validated");
            let path = if m.path.is_relative() {
                base.join(&m.path)
            } else {
                m.path.clone()
            };
            vec![open_manifest(
                &path,
                &m.name,
                m.normal_test_ratio,
                cfg.seed,
                allow,
            )?]
        }
    };
    if cfg.data.train_limit > 0 {
        let limit = match cfg.data.train_selection {
            TrainSelection::First => TrainLimit::First(cfg.data.train_limit),
            TrainSelection::Random => TrainLimit::Random {
                k: cfg.data.train_limit,
                seed: cfg.seed,
            },
        };
        for c in &mut cats {
            c.limit_train(limit);
        }
    }
    for c in &cats {
        if let Some(why) = c.pixel_metrics_unavailable() {
            tracing::warn!(category = %c.name, "pixel metrics absent: {why}");
        }
    }
    Ok(cats)
}

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
    pub quiet: bool,
}

/// A model fitted by [`fit_model`], with what its calibration measured.
pub struct FittedCategory {
    pub model: PatchCore,
    pub stats: crate::model::FitStats,
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
    let mut model = PatchCore::from_config(cfg)?;
    let stats = model.fit(&cat.train, &bar)?;
    model.fitted_on = Some((cat.name.clone(), cat.train.len(), stats.bank_rows_full));
    let mut test_scores = Vec::new();
    let mut image_auroc = None;
    let labelled = cat.test.iter().any(|t| t.anomalous) && cat.test.iter().any(|t| !t.anomalous);
    if let Some(t) = opts.threshold {
        if !t.is_finite() {
            return Err(Error::InvalidArgument(format!(
                "threshold {t} is not finite"
            )));
        }
        model.threshold = Some(crate::model_file::Threshold {
            value: t,
            source: "user".into(),
        });
    } else if labelled {
        let paths: Vec<PathBuf> = cat.test.iter().map(|t| t.path.clone()).collect();
        let preds = model.predict_paths(&paths, &bar)?;
        let scores: Vec<f32> = preds.iter().map(|p| p.score).collect();
        let labels: Vec<bool> = cat.test.iter().map(|t| t.anomalous).collect();
        let m = image_metrics(&scores, &labels)?;
        model.threshold = Some(crate::model_file::Threshold {
            value: m.f1_threshold,
            source: format!(
                "F1-max on the {} test split ({} images, image AUROC {:.4})",
                cat.name,
                scores.len(),
                m.auroc
            ),
        });
        model.score_range = Some((
            scores.iter().copied().fold(f32::INFINITY, f32::min),
            scores.iter().copied().fold(f32::NEG_INFINITY, f32::max),
        ));
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

/// Fits and evaluates every requested category, then writes the reports.
pub fn evaluate(cfg: &Config, opts: &EvaluateOptions) -> Result<Report> {
    // Check the whole layout before any expensive work.
    let cats = open_categories(cfg, opts)?;
    let mut models: Vec<PatchCore> = (0..cfg.backbones().len())
        .map(|i| PatchCore::from_config(&cfg.member(i)))
        .collect::<Result<_>>()?;
    for m in &models {
        if !m.weights.pretrained {
            tracing::warn!(
                "backbone {} runs on RANDOM weights ({}): the results say nothing about PatchCore",
                m.backbone.name(),
                m.weights.file
            );
        }
    }
    let mut results = BTreeMap::new();
    let mut low_shot = BTreeMap::new();
    for cat in &cats {
        if cfg.protocol.kind == ProtocolKind::LowShot {
            low_shot.insert(
                cat.name.clone(),
                run_low_shot(cfg, &mut models, cat, opts.quiet)?,
            );
            continue;
        }
        let r = evaluate_category(&mut models, cat, opts.quiet, opts.output.is_some())?;
        tracing::info!(
            category = %cat.name,
            image_auroc = format!("{:.4}", r.image_auroc),
            pixel_auroc = r.pixel_auroc.map(|p| format!("{p:.4}")).unwrap_or_else(|| "absent".into()),
            "evaluated"
        );
        results.insert(cat.name.clone(), r);
    }
    let report = Report {
        config: cfg.clone(),
        data_root: opts.data_root.to_string_lossy().into_owned(),
        categories: results,
        low_shot,
        backbones: models
            .iter()
            .map(|m| BackboneReport {
                arch: m.backbone.name().to_string(),
                layers: m.backbone.layers().to_vec(),
                weights_file: m.weights.file.clone(),
                weights_sha256: m.weights.sha256.clone(),
                pretrained: m.weights.pretrained,
            })
            .collect(),
    };
    if let Some(out) = &opts.output {
        crate::report::write(&report, out)?;
    }
    Ok(report)
}
