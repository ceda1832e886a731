//! Anomaly-detection metrics, exact and with sklearn's tie handling.
//!
//! * [`auroc`]: area under the ROC curve, the trapezoid over every distinct threshold
//!   (equal scores form one step), as `sklearn.metrics.roc_auc_score`.
//! * [`PixelAuroc`]: the same over every pixel of a category, accumulated map by map.

use patchcore_core::{Error, Result};
use rayon::prelude::*;

/// AUROC of `scores` against binary `labels` (`true` = anomalous).
///
/// Errors when a class is absent (the curve is undefined) or a score is NaN.
pub fn auroc(scores: &[f32], labels: &[bool]) -> Result<f64> {
    if scores.len() != labels.len() {
        return Err(Error::Shape(format!(
            "{} scores for {} labels",
            scores.len(),
            labels.len()
        )));
    }
    if scores.iter().any(|s| s.is_nan()) {
        return Err(Error::NonFinite("AUROC over NaN scores".into()));
    }
    let mut pairs: Vec<(f32, bool)> = scores.iter().copied().zip(labels.iter().copied()).collect();
    pairs.par_sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
    auroc_sorted_desc(&pairs)
}

fn auroc_sorted_desc(pairs: &[(f32, bool)]) -> Result<f64> {
    let pos = pairs.iter().filter(|p| p.1).count() as f64;
    let neg = pairs.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return Err(Error::InvalidArgument(format!(
            "AUROC needs both classes; got {pos} anomalous and {neg} normal samples"
        )));
    }
    let (mut tp, mut fp) = (0f64, 0f64);
    let (mut prev_tpr, mut prev_fpr) = (0f64, 0f64);
    let mut area = 0f64;
    let mut i = 0;
    while i < pairs.len() {
        let t = pairs[i].0;
        while i < pairs.len() && pairs[i].0 == t {
            if pairs[i].1 {
                tp += 1.0
            } else {
                fp += 1.0
            }
            i += 1;
        }
        let (tpr, fpr) = (tp / pos, fp / neg);
        area += (fpr - prev_fpr) * (tpr + prev_tpr) / 2.0;
        prev_tpr = tpr;
        prev_fpr = fpr;
    }
    Ok(area)
}

/// Pixel-level AUROC accumulated one anomaly map at a time.
///
/// Keeps one `(f32, bool)` pair per pixel (5 bytes packed in 8), never a copy of the maps in
/// f64; [`PixelAuroc::finish`] sorts once.
#[derive(Debug, Default, Clone)]
pub struct PixelAuroc {
    pairs: Vec<(f32, bool)>,
}

impl PixelAuroc {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one map with its mask (`mask[i] != 0` = defect). Lengths must match.
    pub fn add(&mut self, map: &[f32], mask: &[u8]) -> Result<()> {
        if map.len() != mask.len() {
            return Err(Error::Shape(format!(
                "anomaly map of {} pixels, mask of {}",
                map.len(),
                mask.len()
            )));
        }
        if map.iter().any(|v| v.is_nan()) {
            return Err(Error::NonFinite("anomaly map holds NaN".into()));
        }
        self.pairs
            .extend(map.iter().copied().zip(mask.iter().map(|&m| m != 0)));
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

    /// The AUROC over every pixel added.
    pub fn finish(mut self) -> Result<f64> {
        self.pairs.par_sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
        auroc_sorted_desc(&self.pairs)
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
