//! Threshold sweeps shared by the image and pixel metrics.

use patchcore_core::{Error, Result};

/// Precision-recall summaries over every distinct threshold of scores sorted descending.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PrSummary {
    /// Average precision `sum_n (R_n - R_{n-1}) P_n` (sklearn's `average_precision_score`).
    pub aupr: f64,
    /// Max over thresholds `t` of `2PR / (P + R)` for the prediction `score >= t`.
    pub f1_max: f64,
    /// The threshold achieving `f1_max` (the lowest score still predicted anomalous).
    pub f1_threshold: f32,
}

/// AUROC, AP and F1-max from `(score, positive)` pairs sorted by descending score, and up to
/// `max_points` ROC points `(fpr, tpr)` (evenly spaced over the thresholds, endpoints kept;
/// 0 = none).
/// AUROC, the precision-recall summary and the ROC points `(fpr, tpr)`.
pub(crate) type Sweep = (f64, PrSummary, Vec<(f64, f64)>);

pub(crate) fn sweep_with_roc(sorted: &[(f32, bool)], max_points: usize) -> Result<Sweep> {
    let mut roc = Vec::new();
    let distinct = if max_points > 0 {
        1 + sorted.windows(2).filter(|w| w[0].0 != w[1].0).count()
    } else {
        0
    };
    let stride = (distinct / max_points.max(1)).max(1);
    let mut step = 0usize;
    if max_points > 0 {
        roc.push((0.0, 0.0));
    }
    let pos = sorted.iter().filter(|p| p.1).count() as f64;
    let neg = sorted.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return Err(Error::InvalidArgument(format!(
            "the metrics need both classes; got {pos} anomalous and {neg} normal samples"
        )));
    }
    let (mut tp, mut fp) = (0f64, 0f64);
    let (mut prev_tpr, mut prev_fpr) = (0f64, 0f64);
    let mut auroc = 0f64;
    let mut ap = 0f64;
    let mut best = PrSummary {
        aupr: 0.0,
        f1_max: 0.0,
        f1_threshold: f32::INFINITY,
    };
    let mut i = 0;
    while i < sorted.len() {
        let t = sorted[i].0;
        while i < sorted.len() && sorted[i].0 == t {
            if sorted[i].1 {
                tp += 1.0
            } else {
                fp += 1.0
            }
            i += 1;
        }
        let (tpr, fpr) = (tp / pos, fp / neg);
        auroc += (fpr - prev_fpr) * (tpr + prev_tpr) / 2.0;
        let precision = tp / (tp + fp);
        ap += (tpr - prev_tpr) * precision;
        if tp > 0.0 {
            let f1 = 2.0 * precision * tpr / (precision + tpr);
            if f1 > best.f1_max {
                best.f1_max = f1;
                best.f1_threshold = t;
            }
        }
        prev_tpr = tpr;
        prev_fpr = fpr;
        if max_points > 0 {
            step += 1;
            if step.is_multiple_of(stride) || i == sorted.len() {
                roc.push((fpr, tpr));
            }
        }
    }
    best.aupr = ap;
    Ok((auroc, best, roc))
}
