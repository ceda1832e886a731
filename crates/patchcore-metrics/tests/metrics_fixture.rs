//! Image and pixel AUROC, AUPR, F1-max and AUPRO against sklearn and anomalib
//! (`fixtures/metrics.safetensors`), to 1e-6.

/// `sklearn.metrics.average_precision_score` (scikit-learn 1.9.1, numpy 2.4.6) of the fixture's
/// `image.labels` / `image.scores`, and of `pixel.masks` / `pixel.maps` flattened: computed
/// with that script on the stored tensors (the fixture itself does not carry AP).
const IMAGE_AP_SKLEARN: f64 = 0.7229950205071515;
const PIXEL_AP_SKLEARN: f64 = 0.1403648981006569;

/// Average precision from its definition, `sum_t (R(t) - R(t_prev)) P(t)` over the distinct
/// scores t in descending order, positives being `score >= t`: an independent check of the
/// crate's sorted-sweep implementation, ties included.
fn average_precision_by_definition(scores: &[f32], labels: &[bool]) -> f64 {
    let mut thresholds: Vec<f32> = scores.to_vec();
    thresholds.sort_by(|a, b| b.total_cmp(a));
    thresholds.dedup();
    let p = labels.iter().filter(|l| **l).count() as f64;
    let (mut ap, mut prev_recall) = (0.0, 0.0);
    for t in thresholds {
        let (mut tp, mut pp) = (0.0, 0.0);
        for (s, l) in scores.iter().zip(labels) {
            if *s >= t {
                pp += 1.0;
                if *l {
                    tp += 1.0;
                }
            }
        }
        let recall = tp / p;
        ap += (recall - prev_recall) * (tp / pp);
        prev_recall = recall;
    }
    ap
}

use patchcore_metrics::auroc;
use patchcore_testkit::fixtures::Fixture;

#[test]
fn image_auroc_matches_sklearn() {
    let fx = Fixture::open("metrics.safetensors").expect("fixture");
    let scores = fx.f32("image.scores").unwrap().values;
    let labels: Vec<bool> = fx
        .i64("image.labels")
        .unwrap()
        .values
        .iter()
        .map(|&l| l == 1)
        .collect();
    let expect = fx.f64("image.auroc_sklearn").unwrap().values[0];
    let got = auroc(&scores, &labels).unwrap();
    assert!(
        (got - expect).abs() <= 1e-6,
        "image AUROC {got} vs sklearn {expect}"
    );
}

#[test]
fn image_aupr_and_f1max_match_sklearn() {
    use patchcore_metrics::image_metrics;
    let fx = Fixture::open("metrics.safetensors").expect("fixture");
    let scores = fx.f32("image.scores").unwrap().values;
    let labels: Vec<bool> = fx
        .i64("image.labels")
        .unwrap()
        .values
        .iter()
        .map(|&l| l == 1)
        .collect();
    let m = image_metrics(&scores, &labels).unwrap();
    let auroc = fx.f64("image.auroc_sklearn").unwrap().values[0];
    let f1 = fx.f64("image.f1max_sklearn").unwrap().values[0];
    assert!((m.auroc - auroc).abs() <= 1e-6, "{} vs {auroc}", m.auroc);
    assert!(
        (m.f1_max - f1).abs() <= 1e-6,
        "F1-max {} vs sklearn {f1}",
        m.f1_max
    );
    // The threshold reproduces the F1-max.
    let tp = scores
        .iter()
        .zip(&labels)
        .filter(|(s, l)| **s >= m.f1_threshold && **l)
        .count() as f64;
    let pp = scores.iter().filter(|s| **s >= m.f1_threshold).count() as f64;
    let p = labels.iter().filter(|l| **l).count() as f64;
    let f1_at = 2.0 * (tp / pp) * (tp / p) / (tp / pp + tp / p);
    assert!((f1_at - m.f1_max).abs() < 1e-12);
    assert!(
        (m.aupr - IMAGE_AP_SKLEARN).abs() <= 1e-6,
        "AUPR {} vs sklearn {IMAGE_AP_SKLEARN}",
        m.aupr
    );
    let by_def = average_precision_by_definition(&scores, &labels);
    assert!(
        (m.aupr - by_def).abs() <= 1e-9,
        "AUPR {} vs definition {by_def}",
        m.aupr
    );
    // Ties: scores rounded to one decimal form plateaus, which must count as one threshold.
    let coarse: Vec<f32> = scores.iter().map(|s| (s * 10.0).round() / 10.0).collect();
    let m = image_metrics(&coarse, &labels).unwrap();
    let by_def = average_precision_by_definition(&coarse, &labels);
    assert!(
        (m.aupr - by_def).abs() <= 1e-9,
        "tied AUPR {} vs {by_def}",
        m.aupr
    );
}

#[test]
fn pixel_metrics_match_sklearn_and_anomalib_aupro() {
    use patchcore_metrics::PixelMetrics;
    let fx = Fixture::open("metrics.safetensors").expect("fixture");
    let maps = fx.f32("pixel.maps").unwrap();
    let masks = fx.u8("pixel.masks").unwrap();
    let (h, w) = (maps.shape[1], maps.shape[2]);
    let mut acc = PixelMetrics::new();
    for i in 0..maps.shape[0] {
        let r = i * h * w..(i + 1) * h * w;
        acc.add(&maps.values[r.clone()], &masks.values[r], h, w)
            .unwrap();
    }
    let m = acc.finish(0.3).unwrap();
    assert_eq!(m.regions, 30, "8-connectivity regions, as anomalib's");
    let check = |name: &str, got: f64| {
        let expect = fx.f64(name).unwrap().values[0];
        assert!((got - expect).abs() <= 1e-6, "{name}: {got} vs {expect}");
    };
    check("pixel.auroc_sklearn", m.auroc);
    check("pixel.f1max_sklearn", m.f1_max);
    check("pixel.aupro_reference", m.aupro);
    check("pixel.aupro_anomalib", m.aupro);
    assert!(
        (m.aupr - PIXEL_AP_SKLEARN).abs() <= 1e-6,
        "pixel AUPR {} vs sklearn {PIXEL_AP_SKLEARN}",
        m.aupr
    );
}
