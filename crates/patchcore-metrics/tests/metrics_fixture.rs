//! Image and pixel AUROC against sklearn (`fixtures/metrics.safetensors`), to 1e-6.

use patchcore_core::fixtures::Fixture;
use patchcore_metrics::{PixelAuroc, auroc};

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
fn pixel_auroc_matches_sklearn() {
    let fx = Fixture::open("metrics.safetensors").expect("fixture");
    let maps = fx.f32("pixel.maps").unwrap();
    let masks = fx.u8("pixel.masks").unwrap();
    let per = maps.shape[1] * maps.shape[2];
    let mut acc = PixelAuroc::new();
    for i in 0..maps.shape[0] {
        acc.add(
            &maps.values[i * per..(i + 1) * per],
            &masks.values[i * per..(i + 1) * per],
        )
        .unwrap();
    }
    assert_eq!(acc.len(), 20 * 64 * 64);
    let got = acc.finish().unwrap();
    let expect = fx.f64("pixel.auroc_sklearn").unwrap().values[0];
    assert!(
        (got - expect).abs() <= 1e-6,
        "pixel AUROC {got} vs sklearn {expect}"
    );
}
