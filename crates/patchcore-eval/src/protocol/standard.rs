//! The standard protocol: fit on every training image, score the whole test split, compute
//! image and pixel metrics (and the HTML section when asked).

use std::path::PathBuf;
use std::time::Instant;

use ndarray::Array2;
use patchcore_core::{Error, Result};
use patchcore_data::{MvtecCategory, load_mask, load_rgb};
use patchcore_metrics::ci::{self, BootstrapSpec, PixelHistograms};
use patchcore_metrics::{PixelMetricValues, PixelMetrics, image_metrics};
use patchcore_nn::NearestNeighborIndex;
use rayon::prelude::*;
use std::collections::BTreeMap;

use super::ensemble::combine_members;
use crate::config::ProtocolConfig;
use crate::progress::Bar;
use crate::results::{AUPRO_FPR_LIMIT, CategoryResult, IntervalReport, Spread};
use patchcore_model::Config;
use patchcore_model::config::MetricsResolution;
use patchcore_model::render::full_resolution_map;
use patchcore_model::{PatchCore, StageTimes, TrainImages};

/// How a category is evaluated: the seeds of its runs and the intervals' bootstrap.
#[derive(Debug, Clone)]
pub(crate) struct RunSpec {
    pub seeds: Vec<u64>,
    pub bootstrap: BootstrapSpec,
    pub quiet: bool,
    pub html: bool,
}

impl RunSpec {
    pub(crate) fn of(
        cfg: &Config,
        protocol: &ProtocolConfig,
        seeds: Vec<u64>,
        quiet: bool,
        html: bool,
    ) -> Self {
        Self {
            seeds,
            bootstrap: BootstrapSpec {
                resamples: protocol.bootstrap_resamples,
                level: protocol.ci_level,
                seed: cfg.seed,
            },
            quiet,
            html,
        }
    }
}

/// Bins of the per-image pixel-score histograms behind the pixel AUROC interval.
const PIXEL_BINS: usize = 4096;

/// One ensemble member's image scores and anomaly maps over the test set.
type MemberOutput = (Vec<f32>, Vec<Array2<f32>>);

/// What one seed's run measured.
struct SeedRun {
    image: patchcore_metrics::ImageMetrics,
    pixel: Option<PixelMetricValues>,
    hist: Option<PixelHistograms>,
}

/// Full-resolution overlay files of a report section: (path relative to the report, bytes).
type OverlayFiles = Vec<(String, Vec<u8>)>;

/// Per-seed runs, their image scores, the HTML section and the files it links to.
type Measured = (Vec<SeedRun>, Vec<Vec<f32>>, String, OverlayFiles);

/// What fitting every member for every seed and scoring the test split produced.
struct Scored {
    /// `members[seed][member]` = (scores, maps).
    members: Vec<Vec<MemberOutput>>,
    extract_seconds: f64,
    index_seconds: f64,
    coreset_per_seed: Vec<f64>,
    /// The selection algorithm of each member's first seed.
    coreset_algorithm: Vec<String>,
    bank_rows: usize,
    bank_rows_full: usize,
    feature_dim: usize,
    test_times: StageTimes,
}

/// Fits every member's banks (features extracted once, one coreset and index per seed) and
/// scores the test split against each seed's index (each test batch extracted once).
fn fit_and_score(
    models: &mut [PatchCore],
    cat: &MvtecCategory,
    seeds: &[u64],
    bar: &Bar,
) -> Result<Scored> {
    let paths: Vec<PathBuf> = cat.test.iter().map(|t| t.path.clone()).collect();
    let mut out = Scored {
        members: seeds
            .iter()
            .map(|_| Vec::with_capacity(models.len()))
            .collect(),
        extract_seconds: 0.0,
        index_seconds: 0.0,
        coreset_per_seed: vec![0.0; seeds.len()],
        coreset_algorithm: Vec::new(),
        bank_rows: 0,
        bank_rows_full: 0,
        feature_dim: 0,
        test_times: StageTimes::default(),
    };
    for model in models.iter_mut() {
        tracing::info!(category = %cat.name, backbone = model.backbone().name(), train = cat.train.len(), test = cat.test.len(), seeds = ?seeds, "fitting");
        let fits = model.fit_bank_sets(TrainImages::Paths(&cat.train), seeds, bar)?;
        let mut fitted_size = None;
        let mut indices = Vec::with_capacity(seeds.len());
        for (i, ((set, stats), &seed)) in fits.into_iter().zip(seeds).enumerate() {
            if i == 0 {
                out.coreset_algorithm.push(stats.sampler.clone());
                out.bank_rows += stats.bank_rows;
                out.bank_rows_full += stats.bank_rows_full;
                out.feature_dim += stats.feature_dim;
            }
            out.extract_seconds += stats.extract_seconds;
            out.coreset_per_seed[i] += stats.sample_seconds;
            let t = Instant::now();
            fitted_size = set.image_size;
            let built = set
                .banks
                .into_iter()
                .map(|bank| model.build_index_for_seed(bank, seed))
                .collect::<Result<Vec<_>>>()?;
            indices.push(built);
            out.index_seconds += t.elapsed().as_secs_f64();
            tracing::info!(
                category = %cat.name,
                seed,
                bank = stats.bank_rows,
                of = stats.bank_rows_full,
                dim = stats.feature_dim,
                coreset_seconds = format!("{:.2}", stats.sample_seconds),
                "memory bank ready"
            );
        }
        let refs: Vec<Vec<&dyn NearestNeighborIndex>> = indices
            .iter()
            .map(|set| set.iter().map(|b| b.as_ref()).collect())
            .collect();
        let preds =
            model.predict_paths_multi(&paths, &refs, fitted_size, bar, &mut out.test_times)?;
        for (slot, p) in out.members.iter_mut().zip(preds) {
            let scores: Vec<f32> = p.iter().map(|p| p.score).collect();
            slot.push((scores, p.into_iter().map(|p| p.anomaly_map).collect()));
        }
    }
    Ok(out)
}

/// Per seed: the members combined, image and pixel metrics; the HTML section of the first
/// seed when asked. Returns the runs, their image scores, the section and the
/// full-resolution overlays it links to.
fn measure_seeds(
    members: Vec<Vec<MemberOutput>>,
    cat: &MvtecCategory,
    labels: &[bool],
    model: &PatchCore,
    html: bool,
) -> Result<Measured> {
    let geometry = model.geometry();
    let resolution = model.metrics_resolution();
    let masks = if cat.pixel_metrics_unavailable().is_some() {
        None
    } else {
        Some(load_masks(cat, geometry)?)
    };
    let mut runs = Vec::with_capacity(members.len());
    let mut seed_scores = Vec::with_capacity(members.len());
    let mut section = String::new();
    let mut files = OverlayFiles::new();
    for (i, m) in members.into_iter().enumerate() {
        let (scores, maps) = combine_members(m);
        let image = image_metrics(&scores, labels)?;
        let (pixel, hist) = match &masks {
            None => (None, None),
            Some(masks) => {
                let (p, h) = pixel_metrics_of(&maps, masks, geometry, resolution)?;
                (Some(p), Some(h))
            }
        };
        if i == 0 && html {
            let tiled = model.tiling().is_some();
            let full_masks = masks.as_ref().filter(|_| tiled).map(Masks::full);
            (section, files) = html_section(
                cat,
                &scores,
                &maps,
                full_masks
                    .as_deref()
                    .or(masks.as_ref().map(|m| m.crop.as_slice())),
                &image,
                pixel.as_ref(),
                (!tiled).then_some(geometry),
            )?;
        }
        seed_scores.push(scores);
        runs.push(SeedRun { image, pixel, hist });
    }
    Ok((runs, seed_scores, section, files))
}

/// Per-seed values of every metric and their spread, with the coreset seconds.
fn spread_of(runs: &[SeedRun], coreset_per_seed: &[f64]) -> BTreeMap<String, Spread> {
    let mut spread = BTreeMap::new();
    type Metric = fn(&SeedRun) -> Option<f64>;
    let metrics: [(&str, Metric); 7] = [
        ("image_auroc", |r| Some(r.image.auroc)),
        ("image_aupr", |r| Some(r.image.aupr)),
        ("image_f1_max", |r| Some(r.image.f1_max)),
        ("pixel_auroc", |r| r.pixel.as_ref().map(|p| p.auroc)),
        ("pixel_aupr", |r| r.pixel.as_ref().map(|p| p.aupr)),
        ("pixel_f1_max", |r| r.pixel.as_ref().map(|p| p.f1_max)),
        ("pixel_aupro", |r| r.pixel.as_ref().map(|p| p.aupro)),
    ];
    for (name, f) in metrics {
        if let Some(s) = Spread::of(runs.iter().filter_map(f).collect()) {
            spread.insert(name.to_string(), s);
        }
    }
    spread.insert(
        "coreset_seconds".into(),
        Spread::of(coreset_per_seed.to_vec()).expect("one seed at least"),
    );
    spread
}

pub(crate) fn evaluate_category(
    models: &mut [PatchCore],
    cat: &MvtecCategory,
    spec: &RunSpec,
) -> Result<CategoryResult> {
    let bar = Bar::new(spec.quiet);
    let seeds = &spec.seeds;
    let scored = fit_and_score(models, cat, seeds, &bar)?;
    let labels: Vec<bool> = cat.test.iter().map(|t| t.anomalous).collect();
    let (runs, seed_scores, html, overlay_files) =
        measure_seeds(scored.members, cat, &labels, &models[0], spec.html)?;
    let spread = spread_of(&runs, &scored.coreset_per_seed);
    let mean = |k: &str| spread.get(k).map(|s: &Spread| s.mean);

    // Intervals for the seed mean, resampling test images.
    let score_refs: Vec<&[f32]> = seed_scores.iter().map(Vec::as_slice).collect();
    let hists: Vec<&PixelHistograms> = runs.iter().filter_map(|r| r.hist.as_ref()).collect();
    let intervals = intervals_of(&score_refs, &hists, &labels, &spec.bootstrap, &cat.name);

    let test_times = scored.test_times;
    let n_test = cat.test.len() as f64;
    let n_seeds = seeds.len() as f64;
    let per_seed_test = test_times.decode
        + test_times.extract
        + (test_times.search_and_score + test_times.maps) / n_seeds;
    let coreset_seconds: f64 = scored.coreset_per_seed.iter().sum();
    let first = &runs[0];
    Ok(CategoryResult {
        seeds: seeds.clone(),
        image_auroc: mean("image_auroc").expect("always measured"),
        image_aupr: mean("image_aupr").expect("always measured"),
        image_f1_max: mean("image_f1_max").expect("always measured"),
        image_f1_threshold: first.image.f1_threshold,
        pixel_auroc: mean("pixel_auroc"),
        pixel_aupr: mean("pixel_aupr"),
        pixel_f1_max: mean("pixel_f1_max"),
        pixel_aupro: mean("pixel_aupro"),
        pixel_metrics_absent: cat.pixel_metrics_unavailable(),
        num_train: cat.train.len(),
        num_test: cat.test.len(),
        num_test_anomalous: labels.iter().filter(|l| **l).count(),
        bank_rows_full: scored.bank_rows_full,
        bank_rows: scored.bank_rows,
        feature_dim: scored.feature_dim,
        fit_seconds: scored.extract_seconds + coreset_seconds + scored.index_seconds,
        extract_seconds: scored.extract_seconds,
        coreset_seconds,
        coreset_algorithm: scored.coreset_algorithm.join(", "),
        infer_ms_per_image: per_seed_test * 1000.0 / n_test,
        test_stage_seconds: test_times,
        spread,
        intervals,
        scores: cat
            .test
            .iter()
            .zip(&seed_scores[0])
            .map(|(t, s)| (relative(cat, &t.path), t.defect_type.clone(), *s))
            .collect(),
        seed_scores,
        pixel_histograms: runs.into_iter().filter_map(|r| r.hist).collect(),
        html,
        overlay_files,
    })
}

/// The image and pixel AUROC intervals of the mean over runs on one test set: `scores` and
/// `hists` hold one entry per run (seed), images in the same order as `labels`. A metric
/// whose interval cannot be computed (too few images of a class) is left out with a warning.
pub(crate) fn intervals_of(
    scores: &[&[f32]],
    hists: &[&PixelHistograms],
    labels: &[bool],
    bs: &BootstrapSpec,
    category: &str,
) -> BTreeMap<String, IntervalReport> {
    let mut intervals = BTreeMap::new();
    let method = format!(
        "stratified percentile bootstrap over test images ({} resamples, seed {}), paired over \
         {} run(s)",
        bs.resamples,
        bs.seed,
        scores.len()
    );
    let report = |i: ci::Interval, method: String| IntervalReport {
        lo: i.lo,
        hi: i.hi,
        level: bs.level,
        method,
        resamples: bs.resamples,
    };
    match ci::bootstrap_image_auroc(scores, labels, bs) {
        Ok(i) => {
            intervals.insert("image_auroc".to_string(), report(i, method.clone()));
        }
        Err(e) => tracing::warn!(category, "no image AUROC interval: {e}"),
    }
    if !hists.is_empty() {
        match ci::bootstrap_pixel_auroc(hists, labels, bs) {
            Ok(i) => {
                intervals.insert(
                    "pixel_auroc".to_string(),
                    report(
                        i,
                        format!(
                            "{method}; pixels binned into {PIXEL_BINS} score bins per image, \
                             shifted by the exact-minus-binned AUROC"
                        ),
                    ),
                );
            }
            Err(e) => tracing::warn!(category, "no pixel AUROC interval: {e}"),
        }
    }
    intervals
}

/// Smallest and largest value over all maps.
fn value_range(maps: &[Array2<f32>]) -> (f32, f32) {
    maps.iter()
        .flat_map(|m| m.iter())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        })
}

/// A test image's path relative to its category, as reports show it.
fn relative(cat: &MvtecCategory, p: &std::path::Path) -> String {
    p.strip_prefix(&cat.root)
        .unwrap_or(p)
        .to_string_lossy()
        .into_owned()
}

/// The category's section of report.html: ROC curves and the overlays of the test images.
fn html_section(
    cat: &MvtecCategory,
    scores: &[f32],
    maps: &[Array2<f32>],
    masks: Option<&[Vec<u8>]>,
    image: &patchcore_metrics::ImageMetrics,
    pixel: Option<&PixelMetricValues>,
    geometry: Option<patchcore_data::Geometry>,
) -> Result<(String, OverlayFiles)> {
    let rel = |p: &PathBuf| relative(cat, p);
    let (lo, hi) = value_range(maps);
    // Through the model's geometry, or as decoded for a tiled model (maps at full size).
    let inputs: Vec<image::RgbImage> = cat
        .test
        .par_iter()
        .map(|t| {
            load_rgb(&t.path).map(|img| match geometry {
                Some(g) => g.apply_rgb(&img),
                None => img,
            })
        })
        .collect::<Result<_>>()?;
    let shown: Vec<crate::report::html::Shown<'_>> = cat
        .test
        .iter()
        .zip(inputs)
        .enumerate()
        .map(|(i, (t, input))| crate::report::html::Shown {
            name: rel(&t.path),
            defect_type: t.defect_type.clone(),
            score: scores[i],
            anomalous: t.anomalous,
            input,
            map: &maps[i],
            mask: masks.filter(|_| t.mask.is_some()).map(|m| m[i].as_slice()),
        })
        .collect();
    let view = crate::report::html::CategoryView {
        name: &cat.name,
        image_roc: &image.roc,
        image_auroc: image.auroc,
        pixel_roc: pixel.map(|p| p.roc.as_slice()),
        pixel_auroc: pixel.map(|p| p.auroc),
        image_threshold: image.f1_threshold,
        pixel_threshold: pixel.map(|p| p.f1_threshold),
        map_range: (lo, hi),
        full_size: Default::default(),
    };
    let section = crate::report::html::category_section(&view, &shown, 24);
    Ok((section, view.full_size.into_inner()))
}

/// A category's masks: at the crop geometry (metrics at the crop, HTML overlays) and as
/// loaded with their images' sizes (metrics at full resolution).
pub(crate) struct Masks {
    crop: Vec<Vec<u8>>,
    loaded: Vec<(Option<image::GrayImage>, (u32, u32))>,
}

impl Masks {
    /// The masks at their own resolution as 0/1 values (all zero for good images).
    fn full(&self) -> Vec<Vec<u8>> {
        self.loaded
            .iter()
            .map(|(m, (w, h))| match m {
                Some(m) => m.pixels().map(|p| u8::from(p.0[0] > 127)).collect(),
                None => vec![0u8; *w as usize * *h as usize],
            })
            .collect()
    }
}

/// Loads a category's masks, checked against their images' sizes.
fn load_masks(cat: &MvtecCategory, geometry: patchcore_data::Geometry) -> Result<Masks> {
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
    let crop = loaded
        .iter()
        .map(|(m, _)| {
            m.as_ref()
                .map(|m| geometry.mask_values(m))
                .unwrap_or_else(|| vec![0u8; n])
        })
        .collect();
    Ok(Masks { crop, loaded })
}

/// Pixel metrics of a category's maps against its masks, and the per-image histograms of
/// the pixel AUROC interval.
fn pixel_metrics_of(
    maps: &[Array2<f32>],
    masks: &Masks,
    geometry: patchcore_data::Geometry,
    resolution: MetricsResolution,
) -> Result<(PixelMetricValues, PixelHistograms)> {
    let (lo, hi) = value_range(maps);
    let mut hist = PixelHistograms::new(lo, hi, PIXEL_BINS);
    let mut pixel = PixelMetrics::new();
    for ((map, m), (full_mask, (w0, h0))) in maps.iter().zip(&masks.crop).zip(&masks.loaded) {
        match resolution {
            MetricsResolution::Crop => {
                let (h, w) = map.dim();
                let values = map.as_slice().expect("contiguous");
                pixel.add(values, m, h, w)?;
                hist.add(values, m)?;
            }
            MetricsResolution::Full => {
                // A tiled model's maps already have the image's size.
                let full = if map.dim() == (*h0 as usize, *w0 as usize) {
                    map.clone()
                } else {
                    full_resolution_map(map, geometry, *h0 as usize, *w0 as usize)
                };
                let mask: Vec<u8> = match full_mask {
                    Some(fm) => fm.pixels().map(|p| u8::from(p.0[0] > 127)).collect(),
                    None => vec![0u8; full.len()],
                };
                let values = full.as_slice().expect("contiguous");
                pixel.add(values, &mask, *h0 as usize, *w0 as usize)?;
                hist.add(values, &mask)?;
            }
        }
    }
    let values = pixel.finish(AUPRO_FPR_LIMIT)?;
    hist.set_exact(values.auroc);
    Ok((values, hist))
}
