//! Anomaly-detection metrics, exact and with sklearn's tie handling.
//!
//! * [`auroc`]: area under the ROC curve, the trapezoid over every distinct threshold
//!   (equal scores form one step), as `sklearn.metrics.roc_auc_score`.
//! * [`image_metrics`]: AUROC, AUPR (average precision, as
//!   `sklearn.metrics.average_precision_score`), F1-max and its threshold.
//! * [`PixelMetrics`]: the same over every pixel of a category plus AUPRO (PRO integrated up
//!   to an FPR limit over the 8-connected regions of the masks, normalised by the limit, as
//!   MVTec and anomalib), accumulated map by map: one `(f32, u32)` pair per pixel, sorted once.
//! * [`ci`]: 95% intervals for AUROC: DeLong, and a seeded stratified bootstrap over test
//!   images (image and pixel AUROC, paired over the runs of several seeds).

#![warn(missing_docs)]

pub mod ci;
mod curves;
mod pro;

pub use curves::PrSummary;
pub use pro::connected_components;

use patchcore_core::{Error, Result};
use rayon::prelude::*;

/// AUROC of `scores` against binary `labels` (`true` = anomalous).
///
/// Errors when a class is absent (the curve is undefined) or a score is NaN.
pub fn auroc(scores: &[f32], labels: &[bool]) -> Result<f64> {
    Ok(image_metrics(scores, labels)?.auroc)
}

/// Image-level metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageMetrics {
    /// ROC curve points `(fpr, tpr)`, at most 512.
    pub roc: Vec<(f64, f64)>,
    /// Area under the ROC curve.
    pub auroc: f64,
    /// Average precision (sklearn's `average_precision_score`).
    pub aupr: f64,
    /// Largest F1 over all thresholds.
    pub f1_max: f64,
    /// Score threshold achieving `f1_max` (images scoring at least this are anomalous).
    pub f1_threshold: f32,
}

/// AUROC, AUPR and F1-max of image scores.
pub fn image_metrics(scores: &[f32], labels: &[bool]) -> Result<ImageMetrics> {
    if scores.len() != labels.len() {
        return Err(Error::Shape(format!(
            "{} scores for {} labels",
            scores.len(),
            labels.len()
        )));
    }
    if scores.iter().any(|s| s.is_nan()) {
        return Err(Error::NonFinite("metrics over NaN scores".into()));
    }
    let mut pairs: Vec<(f32, bool)> = scores.iter().copied().zip(labels.iter().copied()).collect();
    pairs.par_sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
    let (auroc, pr, roc) = curves::sweep_with_roc(&pairs, 512)?;
    Ok(ImageMetrics {
        roc,
        auroc,
        aupr: pr.aupr,
        f1_max: pr.f1_max,
        f1_threshold: pr.f1_threshold,
    })
}

/// Pixel-level metrics of a category.
/// Pixel-level metrics of a category.
#[derive(Debug, Clone, PartialEq)]
pub struct PixelMetricValues {
    /// ROC curve points `(fpr, tpr)`, at most 512.
    pub roc: Vec<(f64, f64)>,
    /// Area under the pixel ROC curve.
    pub auroc: f64,
    /// Pixel average precision.
    pub aupr: f64,
    /// Largest pixel F1 over all thresholds.
    pub f1_max: f64,
    /// Map value achieving `f1_max`.
    pub f1_threshold: f32,
    /// AUPRO up to `fpr_limit`, normalised to [0, 1].
    pub aupro: f64,
    /// The FPR limit of the AUPRO.
    pub fpr_limit: f64,
    /// Number of ground-truth regions (8-connected components over all masks).
    pub regions: usize,
}

/// Pixel metrics accumulated one anomaly map at a time.
///
/// Each pixel is kept as `(score, region)` (8 bytes; region 0 = background), never as a copy
/// of the maps in f64.
#[derive(Debug, Default, Clone)]
pub struct PixelMetrics {
    pairs: Vec<(f32, u32)>,
    sizes: Vec<u64>,
}

impl PixelMetrics {
    /// An empty accumulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one `[height, width]` map with its mask (`mask[i] != 0` = defect).
    pub fn add(&mut self, map: &[f32], mask: &[u8], height: usize, width: usize) -> Result<()> {
        if map.len() != mask.len() || map.len() != height * width {
            return Err(Error::Shape(format!(
                "anomaly map of {} pixels, mask of {}, for {height}x{width}",
                map.len(),
                mask.len()
            )));
        }
        if map.iter().any(|v| v.is_nan()) {
            return Err(Error::NonFinite("anomaly map holds NaN".into()));
        }
        let (labels, n) = connected_components(mask, height, width);
        let base = self.sizes.len() as u32;
        let mut sizes = vec![0u64; n as usize];
        for &l in &labels {
            if l > 0 {
                sizes[l as usize - 1] += 1;
            }
        }
        self.sizes.extend(sizes);
        self.pairs.extend(
            map.iter()
                .zip(&labels)
                .map(|(&v, &l)| (v, if l == 0 { 0 } else { base + l })),
        );
        Ok(())
    }

    /// Number of pixels added.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// `true` if no pixel was added.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// All metrics, AUPRO integrated up to `fpr_limit` (MVTec: 0.3).
    pub fn finish(mut self, fpr_limit: f64) -> Result<PixelMetricValues> {
        if !(fpr_limit > 0.0 && fpr_limit <= 1.0) {
            return Err(Error::InvalidArgument(format!(
                "FPR limit must be in (0, 1], got {fpr_limit}"
            )));
        }
        self.pairs.par_sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
        let labelled: Vec<(f32, bool)> = self.pairs.iter().map(|&(v, r)| (v, r != 0)).collect();
        let (auroc, pr, roc) = curves::sweep_with_roc(&labelled, 512)?;
        drop(labelled);
        let aupro = pro::aupro_sorted(&self.pairs, &self.sizes, fpr_limit);
        Ok(PixelMetricValues {
            roc,
            auroc,
            aupr: pr.aupr,
            f1_max: pr.f1_max,
            f1_threshold: pr.f1_threshold,
            aupro,
            fpr_limit,
            regions: self.sizes.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_inverse_and_ties() {
        assert_eq!(
            auroc(&[0.1, 0.2, 0.8, 0.9], &[false, false, true, true]).unwrap(),
            1.0
        );
        assert_eq!(
            auroc(&[0.9, 0.8, 0.2, 0.1], &[false, false, true, true]).unwrap(),
            0.0
        );
        // All tied: the diagonal.
        assert_eq!(auroc(&[0.5; 4], &[false, true, false, true]).unwrap(), 0.5);
        // sklearn: roc_auc_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
        assert_eq!(
            auroc(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]).unwrap(),
            0.75
        );
    }

    #[test]
    fn one_class_is_an_error() {
        assert!(auroc(&[0.1, 0.2], &[true, true]).is_err());
        assert!(auroc(&[0.1, f32::NAN], &[true, false]).is_err());
    }
}
