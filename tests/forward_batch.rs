//! `data.forward_batch_size`: cutting a batch into parallel forward calls gives each image
//! exactly the features it gets alone, and one batched call gives the same within float32
//! rounding.

use patchcore::data::synthetic::{SyntheticSpec, generate};
use patchcore::data::{MvtecCategory, load_rgb};
use patchcore::model::{Config, PatchCore};

fn model(forward_batch: usize) -> PatchCore {
    let cfg = Config::from_toml_str(
        &format!(
            "[data]\nbatch_size = 3\nforward_batch_size = {forward_batch}\n[backbone]\n\
             arch = \"efficientnet_lite0\"\nlayers = [\"blocks.2\", \"blocks.4\"]\n\
             [sampler]\nkind = \"greedy_coreset\"\nratio = 0.05\n"
        ),
        None,
    )
    .unwrap();
    PatchCore::from_config(&cfg).unwrap()
}

#[test]
fn parallel_forward_calls_match_single_images_and_one_batched_call() {
    let dir = tempfile::tempdir().unwrap();
    let spec = SyntheticSpec {
        train: 3,
        test_good: 1,
        test_per_defect: 1,
        ..Default::default()
    };
    generate(dir.path(), &spec).unwrap();
    let cat = MvtecCategory::open(dir.path(), &spec.category).unwrap();
    let images: Vec<_> = cat.train.iter().map(|p| load_rgb(p).unwrap()).collect();

    let split = model(1);
    assert_eq!(split.forward_batch(), 1);
    let all = split.extract_images(&images).unwrap();
    assert_eq!(all.batch, 3);
    for (b, img) in images.iter().enumerate() {
        let alone = split.extract_images(std::slice::from_ref(img)).unwrap();
        assert_eq!(
            all.image(b),
            alone.image(0),
            "image {b} differs from its own forward"
        );
    }

    let batched = model(3);
    assert_eq!(batched.forward_batch(), 3);
    let one_call = batched.extract_images(&images).unwrap();
    let scale = all.features.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = all
        .features
        .iter()
        .zip(one_call.features.iter())
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        diff <= 1e-4 * scale,
        "batched vs split: {diff} (scale {scale})"
    );
}
