//! The standard protocol: fit on every training image, score the whole test split, compute
//! image and pixel metrics (and the HTML section when asked).

use std::path::PathBuf;
use std::time::Instant;

use ndarray::Array2;
use patchcore_core::{Error, Result};
use patchcore_data::{MvtecCategory, load_mask, load_rgb};
use patchcore_metrics::{PixelMetricValues, PixelMetrics, image_metrics};
use rayon::prelude::*;

use super::ensemble::combine_members;
use crate::config::MetricsResolution;
use crate::model::{PatchCore, StageTimes};
use crate::progress::Bar;
use crate::results::{AUPRO_FPR_LIMIT, CategoryResult};

pub(crate) fn evaluate_category(
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
        tracing::info!(category = %cat.name, backbone = model.backbone().name(), train = cat.train.len(), test = cat.test.len(), "fitting");
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
    let geometry = models[0].geometry();
    let (pixel, masks) = if pixel_metrics_absent.is_some() {
        (None, None)
    } else {
        let (p, m) = pixel_metrics_of(cat, &maps, geometry, models[0].metrics_resolution())?;
        (Some(p), Some(m))
    };

    let rel = |p: &PathBuf| relative(cat, p);
    let html = if html {
        html_section(
            cat,
            &scores,
            &maps,
            masks.as_deref(),
            &image,
            pixel.as_ref(),
            geometry,
        )?
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
    geometry: patchcore_data::Geometry,
) -> Result<String> {
    let rel = |p: &PathBuf| relative(cat, p);
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
    };
    Ok(crate::report::html::category_section(&view, &shown, 24))
}

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
