//! Confidence intervals for AUROC: DeLong's closed form (image scores) and a seeded,
//! stratified percentile bootstrap over test images (image and pixel AUROC, paired over the
//! runs of several seeds).
//!
//! The bootstrap resamples *test images*, keeping the number of normal and anomalous images
//! fixed (stratified), so every resample has both classes. With several runs (coreset seeds)
//! of one test set, each resample draws one multiset of images and evaluates the mean AUROC
//! over the runs on it: the interval is that of the reported seed-mean under test-set
//! sampling. Pixel AUROC is resampled from per-image score histograms (see
//! [`PixelHistograms`]); the binning error is removed by shifting the interval by the
//! difference between the exact and the binned AUROC of the full test set.

use patchcore_core::{Error, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A two-sided interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    /// Lower bound.
    pub lo: f64,
    /// Upper bound.
    pub hi: f64,
}

impl Interval {
    /// Whether `v` lies in the closed interval.
    pub fn contains(&self, v: f64) -> bool {
        self.lo <= v && v <= self.hi
    }
}

/// How a bootstrap runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BootstrapSpec {
    /// Number of resamples (>= 100 for a 95% percentile interval).
    pub resamples: usize,
    /// Coverage, e.g. 0.95.
    pub level: f64,
    /// Seed of the resampling stream (ChaCha8).
    pub seed: u64,
}

impl BootstrapSpec {
    /// Checks the spec and that there are `runs` to resample.
    fn check(&self, runs: usize) -> Result<()> {
        if runs == 0 {
            return Err(Error::InvalidArgument("no runs to bootstrap".into()));
        }
        if self.resamples < 100 {
            return Err(Error::InvalidArgument(format!(
                "a bootstrap needs at least 100 resamples, got {}",
                self.resamples
            )));
        }
        if !(self.level > 0.0 && self.level < 1.0) {
            return Err(Error::InvalidArgument(format!(
                "interval level must be in (0, 1), got {}",
                self.level
            )));
        }
        Ok(())
    }
}

/// The standard normal quantile `z` with `P(Z <= z) = p` (Acklam's rational approximation,
/// relative error below 1.2e-9).
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let p_low = 0.02425;
    if p < p_low {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - p_low {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -normal_quantile(1.0 - p)
    }
}

fn split_classes(scores: &[f32], labels: &[bool]) -> Result<(Vec<f64>, Vec<f64>)> {
    if scores.len() != labels.len() {
        return Err(Error::Shape(format!(
            "{} scores but {} labels",
            scores.len(),
            labels.len()
        )));
    }
    let pos: Vec<f64> = scores
        .iter()
        .zip(labels)
        .filter(|(_, l)| **l)
        .map(|(s, _)| *s as f64)
        .collect();
    let neg: Vec<f64> = scores
        .iter()
        .zip(labels)
        .filter(|(_, l)| !**l)
        .map(|(s, _)| *s as f64)
        .collect();
    if pos.len() < 2 || neg.len() < 2 {
        return Err(Error::InvalidArgument(format!(
            "an AUROC interval needs at least 2 samples of each class; got {} anomalous and {} \
             normal",
            pos.len(),
            neg.len()
        )));
    }
    Ok((pos, neg))
}

/// Midranks (1-based, ties averaged) of `v`.
fn midranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            r[k] = rank;
        }
        i = j + 1;
    }
    r
}

/// AUROC and its DeLong variance (DeLong, DeLong & Clarke-Pearson 1988; the fast midrank
/// form of Sun & Xu 2014).
pub fn delong_auroc(scores: &[f32], labels: &[bool]) -> Result<(f64, f64)> {
    let (pos, neg) = split_classes(scores, labels)?;
    let (m, n) = (pos.len(), neg.len());
    let all: Vec<f64> = pos.iter().chain(&neg).copied().collect();
    let r_all = midranks(&all);
    let r_pos = midranks(&pos);
    let r_neg = midranks(&neg);
    let auc = (r_all[..m].iter().sum::<f64>() - (m * (m + 1)) as f64 / 2.0) / (m * n) as f64;
    // Structural components.
    let v10: Vec<f64> = (0..m).map(|i| (r_all[i] - r_pos[i]) / n as f64).collect();
    let v01: Vec<f64> = (0..n)
        .map(|j| 1.0 - (r_all[m + j] - r_neg[j]) / m as f64)
        .collect();
    let var = |v: &[f64]| {
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (v.len() - 1) as f64
    };
    Ok((auc, var(&v10) / m as f64 + var(&v01) / n as f64))
}

/// DeLong's normal interval for the AUROC of `scores`, clipped to [0, 1].
pub fn delong_interval(scores: &[f32], labels: &[bool], level: f64) -> Result<Interval> {
    let (auc, var) = delong_auroc(scores, labels)?;
    let z = normal_quantile(0.5 + level / 2.0);
    let half = z * var.sqrt();
    Ok(Interval {
        lo: (auc - half).max(0.0),
        hi: (auc + half).min(1.0),
    })
}

/// Per-sample multiplicities of `resamples` stratified bootstrap draws: every draw takes as
/// many samples of each class as there are, with replacement.
fn stratified_draws(labels: &[bool], spec: &BootstrapSpec) -> Vec<Vec<u32>> {
    let pos: Vec<usize> = (0..labels.len()).filter(|&i| labels[i]).collect();
    let neg: Vec<usize> = (0..labels.len()).filter(|&i| !labels[i]).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    (0..spec.resamples)
        .map(|_| {
            let mut w = vec![0u32; labels.len()];
            for class in [&pos, &neg] {
                for _ in 0..class.len() {
                    w[class[rng.random_range(0..class.len())]] += 1;
                }
            }
            w
        })
        .collect()
}

/// AUROC of weighted samples visited in ascending score order (`order`), ties counted half.
fn weighted_auroc(scores: &[f32], labels: &[bool], order: &[usize], w: &[u32]) -> f64 {
    let (mut neg_below, mut area) = (0f64, 0f64);
    let (mut tot_pos, mut tot_neg) = (0f64, 0f64);
    let mut i = 0;
    while i < order.len() {
        let s = scores[order[i]];
        let (mut p, mut n) = (0f64, 0f64);
        while i < order.len() && scores[order[i]] == s {
            let k = order[i];
            if labels[k] {
                p += w[k] as f64;
            } else {
                n += w[k] as f64;
            }
            i += 1;
        }
        area += p * (neg_below + n / 2.0);
        neg_below += n;
        tot_pos += p;
        tot_neg += n;
    }
    area / (tot_pos * tot_neg)
}

fn percentile_interval(mut stats: Vec<f64>, level: f64) -> Interval {
    stats.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let x = q * (stats.len() - 1) as f64;
        let (i, f) = (x.floor() as usize, x - x.floor());
        if i + 1 < stats.len() {
            stats[i] * (1.0 - f) + stats[i + 1] * f
        } else {
            stats[i]
        }
    };
    let a = (1.0 - level) / 2.0;
    Interval {
        lo: at(a),
        hi: at(1.0 - a),
    }
}

/// Stratified percentile bootstrap interval of the mean image AUROC over `runs` (one score
/// per test image each, the same test images in the same order), paired over runs.
pub fn bootstrap_image_auroc(
    runs: &[&[f32]],
    labels: &[bool],
    spec: &BootstrapSpec,
) -> Result<Interval> {
    spec.check(runs.len())?;
    for r in runs {
        split_classes(r, labels)?;
    }
    let orders: Vec<Vec<usize>> = runs
        .iter()
        .map(|s| {
            let mut o: Vec<usize> = (0..s.len()).collect();
            o.sort_by(|&a, &b| s[a].total_cmp(&s[b]));
            o
        })
        .collect();
    let stats: Vec<f64> = stratified_draws(labels, spec)
        .iter()
        .map(|w| {
            runs.iter()
                .zip(&orders)
                .map(|(s, o)| weighted_auroc(s, labels, o, w))
                .sum::<f64>()
                / runs.len() as f64
        })
        .collect();
    Ok(percentile_interval(stats, spec.level))
}

/// Per-image counts of normal and anomalous pixels over fixed score bins: what the pixel
/// AUROC bootstrap resamples. Bins are uniform over the `[lo, hi]` range given at creation.
#[derive(Debug, Clone, PartialEq)]
pub struct PixelHistograms {
    lo: f32,
    scale: f32,
    bins: usize,
    /// Per image: `bins` normal counts then `bins` anomalous counts.
    counts: Vec<Vec<u32>>,
    /// Exact pixel AUROC of all images, set by the caller (shifts the interval).
    exact: Option<f64>,
}

impl PixelHistograms {
    /// Empty histograms with `bins` uniform bins over `[lo, hi]`.
    pub fn new(lo: f32, hi: f32, bins: usize) -> Self {
        let span = if hi > lo { hi - lo } else { 1.0 };
        Self {
            lo,
            scale: bins as f32 / span,
            bins: bins.max(2),
            counts: Vec::new(),
            exact: None,
        }
    }

    /// Adds one image's map and mask (nonzero = anomalous), pixels in the same order.
    pub fn add(&mut self, map: &[f32], mask: &[u8]) -> Result<()> {
        if map.len() != mask.len() {
            return Err(Error::Shape(format!(
                "map has {} pixels but mask {}",
                map.len(),
                mask.len()
            )));
        }
        let b = self.bins;
        let mut c = vec![0u32; 2 * b];
        for (v, m) in map.iter().zip(mask) {
            let k = (((v - self.lo) * self.scale) as isize).clamp(0, b as isize - 1) as usize;
            c[if *m != 0 { b + k } else { k }] += 1;
        }
        self.counts.push(c);
        Ok(())
    }

    /// Records the exact pixel AUROC of all images added (from [`crate::PixelMetrics`]).
    pub fn set_exact(&mut self, auroc: f64) {
        self.exact = Some(auroc);
    }

    /// Images added.
    pub fn len(&self) -> usize {
        self.counts.len()
    }

    /// Whether no image was added.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// Pixels counted over all images added: (normal, anomalous).
    pub fn pixel_counts(&self) -> (u64, u64) {
        let b = self.bins;
        self.counts.iter().fold((0, 0), |(n, a), c| {
            let sum = |s: &[u32]| s.iter().map(|&v| v as u64).sum::<u64>();
            (n + sum(&c[..b]), a + sum(&c[b..]))
        })
    }

    /// AUROC of the images weighted by `w` (ties within a bin counted half).
    fn auroc(&self, w: &[u32], acc: &mut [f64]) -> f64 {
        let b = self.bins;
        acc.iter_mut().for_each(|a| *a = 0.0);
        for (c, &wi) in self.counts.iter().zip(w) {
            if wi == 0 {
                continue;
            }
            let wf = wi as f64;
            for (a, v) in acc.iter_mut().zip(c) {
                *a += wf * *v as f64;
            }
        }
        let (neg, pos) = acc.split_at(b);
        let (mut below, mut area, mut tn, mut tp) = (0f64, 0f64, 0f64, 0f64);
        for k in 0..b {
            area += pos[k] * (below + neg[k] / 2.0);
            below += neg[k];
            tn += neg[k];
            tp += pos[k];
        }
        if tn == 0.0 || tp == 0.0 {
            return f64::NAN;
        }
        area / (tp * tn)
    }
}

/// Stratified percentile bootstrap interval of the mean pixel AUROC over `runs` (one
/// [`PixelHistograms`] per seed, the same test images in the same order), resampling test
/// images with the strata given by `labels` (the image labels). Each run's interval is
/// shifted by its exact-minus-binned AUROC when the exact value was recorded.
pub fn bootstrap_pixel_auroc(
    runs: &[&PixelHistograms],
    labels: &[bool],
    spec: &BootstrapSpec,
) -> Result<Interval> {
    spec.check(runs.len())?;
    for r in runs {
        if r.len() != labels.len() {
            return Err(Error::Shape(format!(
                "{} image histograms but {} labels",
                r.len(),
                labels.len()
            )));
        }
    }
    let mut acc = vec![0f64; 2 * runs.iter().map(|r| r.bins).max().unwrap_or(2)];
    let ones = vec![1u32; labels.len()];
    let shift: f64 = runs
        .iter()
        .map(|r| {
            let full = r.auroc(&ones, &mut acc[..2 * r.bins]);
            r.exact.map(|e| e - full).unwrap_or(0.0)
        })
        .sum::<f64>()
        / runs.len() as f64;
    let draws = stratified_draws(labels, spec);
    let stats: Vec<f64> = draws
        .iter()
        .map(|w| {
            runs.iter()
                .map(|r| r.auroc(w, &mut acc[..2 * r.bins]))
                .sum::<f64>()
                / runs.len() as f64
        })
        .filter(|v| v.is_finite())
        .collect();
    if stats.len() < spec.resamples / 2 {
        return Err(Error::InvalidArgument(
            "too few resamples hold both normal and anomalous pixels for a pixel AUROC interval"
                .into(),
        ));
    }
    let i = percentile_interval(stats, spec.level);
    Ok(Interval {
        lo: (i.lo + shift).clamp(0.0, 1.0),
        hi: (i.hi + shift).clamp(0.0, 1.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auroc;

    fn lcg(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 33) as f32) / (1u64 << 31) as f32
            })
            .collect()
    }

    /// Scores of two overlapping classes: positives shifted by `shift`.
    fn two_classes(n_pos: usize, n_neg: usize, shift: f32) -> (Vec<f32>, Vec<bool>) {
        let u = lcg(n_pos + n_neg, 3);
        let scores = (0..n_pos + n_neg)
            .map(|i| u[i] + if i < n_pos { shift } else { 0.0 })
            .collect();
        let labels = (0..n_pos + n_neg).map(|i| i < n_pos).collect();
        (scores, labels)
    }

    #[test]
    fn normal_quantile_known_values() {
        assert!((normal_quantile(0.975) - 1.959_963_985).abs() < 1e-8);
        assert!((normal_quantile(0.5)).abs() < 1e-12);
        assert!((normal_quantile(0.01) + 2.326_347_874).abs() < 1e-8);
    }

    #[test]
    fn delong_auc_equals_exact_auroc_with_ties() {
        let scores = [0.1, 0.4, 0.4, 0.8, 0.35, 0.4, 0.9, 0.2];
        let labels = [false, false, true, true, false, true, true, false];
        let (auc, var) = delong_auroc(&scores, &labels).unwrap();
        assert!((auc - auroc(&scores, &labels).unwrap()).abs() < 1e-12);
        assert!(var > 0.0);
    }

    #[test]
    fn delong_variance_matches_the_reference_value() {
        // By hand from the structural components: V10 = (0.75, 1, 1, 1) and
        // V01 = (1, 1, 0.75, 1), each of sample variance 1/64, so the variance is
        // 1/64/4 + 1/64/4 = 0.0078125 (AUC 0.9375).
        let scores = [0.1, 0.3, 0.5, 0.2, 0.4, 0.8, 0.7, 0.9];
        let labels = [false, false, false, false, true, true, true, true];
        let (auc, var) = delong_auroc(&scores, &labels).unwrap();
        assert!((auc - 0.9375).abs() < 1e-12);
        assert!((var - 0.007_812_5).abs() < 1e-12, "{var}");
    }

    #[test]
    fn bootstrap_agrees_with_delong_and_covers_the_estimate() {
        let (scores, labels) = two_classes(60, 90, 0.35);
        let spec = BootstrapSpec {
            resamples: 2000,
            level: 0.95,
            seed: 1,
        };
        let b = bootstrap_image_auroc(&[&scores], &labels, &spec).unwrap();
        let d = delong_interval(&scores, &labels, 0.95).unwrap();
        let a = auroc(&scores, &labels).unwrap();
        assert!(b.contains(a) && d.contains(a));
        assert!(
            (b.lo - d.lo).abs() < 0.02 && (b.hi - d.hi).abs() < 0.02,
            "{b:?} {d:?}"
        );
        // Seeded: the same spec gives the same interval.
        assert_eq!(
            b,
            bootstrap_image_auroc(&[&scores], &labels, &spec).unwrap()
        );
    }

    #[test]
    fn more_test_images_give_a_narrower_interval() {
        let spec = BootstrapSpec {
            resamples: 500,
            level: 0.95,
            seed: 0,
        };
        let (s1, l1) = two_classes(20, 20, 0.3);
        let (s2, l2) = two_classes(200, 200, 0.3);
        let w1 = bootstrap_image_auroc(&[&s1], &l1, &spec).unwrap();
        let w2 = bootstrap_image_auroc(&[&s2], &l2, &spec).unwrap();
        assert!(w2.hi - w2.lo < 0.7 * (w1.hi - w1.lo), "{w1:?} {w2:?}");
    }

    #[test]
    fn binned_pixel_auroc_is_close_to_exact_and_the_interval_covers_it() {
        // 30 images of 16x16: anomalous images have a bright square.
        let (h, w) = (16, 16);
        let mut metrics = crate::PixelMetrics::new();
        let mut maps = Vec::new();
        let mut masks = Vec::new();
        let mut labels = Vec::new();
        for i in 0..30 {
            let noise = lcg(h * w, 100 + i as u64);
            let anomalous = i % 3 == 0;
            let mask: Vec<u8> = (0..h * w)
                .map(|p| u8::from(anomalous && (p / w) % 16 < 5 && p % w < 5))
                .collect();
            let map: Vec<f32> = noise
                .iter()
                .zip(&mask)
                .map(|(n, m)| n + 0.6 * *m as f32)
                .collect();
            metrics.add(&map, &mask, h, w).unwrap();
            maps.push(map);
            masks.push(mask);
            labels.push(anomalous);
        }
        let exact = metrics.finish(0.3).unwrap().auroc;
        let mut hist = PixelHistograms::new(0.0, 1.6, 4096);
        for (m, k) in maps.iter().zip(&masks) {
            hist.add(m, k).unwrap();
        }
        let anomalous: u64 = masks.iter().flatten().map(|&m| m as u64).sum();
        assert_eq!(
            hist.pixel_counts(),
            (30 * (h * w) as u64 - anomalous, anomalous)
        );
        let binned = hist.auroc(&[1; 30], &mut vec![0.0; 2 * 4096]);
        assert!((binned - exact).abs() < 1e-3, "{binned} vs {exact}");
        hist.set_exact(exact);
        let spec = BootstrapSpec {
            resamples: 300,
            level: 0.95,
            seed: 5,
        };
        let i = bootstrap_pixel_auroc(&[&hist], &labels, &spec).unwrap();
        assert!(i.contains(exact) && i.hi - i.lo > 0.0, "{i:?} vs {exact}");
    }

    #[test]
    fn bad_inputs_are_refused() {
        let spec = BootstrapSpec {
            resamples: 10,
            level: 0.95,
            seed: 0,
        };
        assert!(
            bootstrap_image_auroc(&[&[0.1, 0.2, 0.3, 0.4]], &[true, true, false, false], &spec)
                .is_err()
        );
        assert!(delong_auroc(&[0.1, 0.2], &[true, false]).is_err());
    }
}
