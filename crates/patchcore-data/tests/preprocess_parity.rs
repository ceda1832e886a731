//! Decoding, crop and normalisation against `fixtures/effnet_lite0.safetensors` (`input.*`).

use patchcore_data::{Geometry, MvtecCategory, load_rgb};
use patchcore_testkit::fixtures::Fixture;
use patchcore_testkit::shared_dir;

#[test]
fn preprocessing_matches_reference() {
    let fx = Fixture::open("effnet_lite0.safetensors").expect("fixture");
    let path = shared_dir().join("datasets/mvtec_ad_256/bottle/train/good/000.png");
    let img = load_rgb(&path).expect("image");
    let raw = fx.u8("input.raw_u8").unwrap();
    assert_eq!(raw.shape, vec![256, 256, 3]);
    assert_eq!(img.as_raw(), &raw.values, "decoded pixels differ from PIL");
    let g = Geometry::default();
    let crop = fx.u8("input.crop_u8").unwrap();
    assert_eq!(
        g.apply_rgb(&img).as_raw(),
        &crop.values,
        "centre crop differs"
    );
    let x = fx.f32("input.x").unwrap();
    let ours = g.to_tensor_values(&img);
    assert_eq!(ours.len(), x.values.len());
    let max = ours
        .iter()
        .zip(&x.values)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(max <= 1e-6, "normalised input differs by {max}");
}

#[test]
fn bottle_layout_is_complete() {
    let root = shared_dir().join("datasets/mvtec_ad_256");
    let cat = MvtecCategory::open(&root, "bottle").expect("bottle category");
    assert_eq!(cat.train.len(), 209);
    assert_eq!(cat.test.len(), 83);
    assert_eq!(cat.test.iter().filter(|t| t.anomalous).count(), 63);
    assert!(
        cat.test
            .iter()
            .filter(|t| t.anomalous)
            .all(|t| t.mask.is_some())
    );
}

#[test]
fn masks_follow_the_geometry() {
    let g = Geometry::new(8, 4).unwrap();
    let mut m = image::GrayImage::new(8, 8);
    m.put_pixel(2, 2, image::Luma([255]));
    m.put_pixel(0, 0, image::Luma([255]));
    let v = g.mask_values(&m);
    assert_eq!(v.len(), 16);
    assert_eq!(
        v.iter().map(|&x| x as usize).sum::<usize>(),
        1,
        "only the pixel inside the crop remains"
    );
    assert_eq!(v[0], 1);
    assert!(Geometry::new(224, 256).is_err());
}
