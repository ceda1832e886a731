//! Image and pixel AUROC against sklearn (`fixtures/metrics.safetensors`), to 1e-6.

use patchcore_core::fixtures::Fixture;
use patchcore_metrics::auroc;

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
    assert!(m.aupr > 0.0 && m.aupr <= 1.0);
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
}
