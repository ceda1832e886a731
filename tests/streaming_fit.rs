//! Memory-bounded fitting: with `fit.max_feature_memory_mb` below the size of the training
//! features, fitting streams in chunks (merge and reduce) and still builds a bank of the
//! requested size that covers every training patch nearly as well as the in-memory greedy.

use patchcore::core::NoProgress;
use patchcore::data::MvtecCategory;
use patchcore::data::synthetic::{SyntheticSpec, generate};
use patchcore::model::{Config, FittedPatchCore, PatchCore};
use patchcore::nn::{ExactIndex, NearestNeighborIndex};

fn config(bound_mb: usize) -> Config {
    Config::from_toml_str(
        &format!(
            "[data]\nbatch_size = 2\n[backbone]\narch = \"efficientnet_lite0\"\n\
             layers = [\"blocks.2\", \"blocks.4\"]\n[sampler]\nkind = \"greedy_coreset\"\n\
             ratio = 0.05\n[fit]\nmax_feature_memory_mb = {bound_mb}\n"
        ),
        None,
    )
    .unwrap()
}

#[test]
fn streamed_fit_is_bounded_and_covers_like_the_in_memory_fit() {
    let dir = tempfile::tempdir().unwrap();
    let spec = SyntheticSpec {
        train: 8,
        test_good: 3,
        test_per_defect: 3,
        ..Default::default()
    };
    generate(dir.path(), &spec).unwrap();
    let cat = MvtecCategory::open(dir.path(), &spec.category).unwrap();

    // 8 images x 784 patches x 152 x 4 bytes = 3.8 MiB of features.
    let whole = PatchCore::from_config(&config(0)).unwrap();
    let whole = whole.fit(&cat.train, &NoProgress).unwrap();
    let a = whole.fit_stats().cloned().unwrap();
    let streamed = PatchCore::from_config(&config(2)).unwrap();
    let streamed = streamed.fit(&cat.train, &NoProgress).unwrap();
    let b = streamed.fit_stats().cloned().unwrap();
    assert_eq!(a.chunks, 1);
    assert_eq!(b.chunks, 4, "2 MiB bound: chunks of 2 images");
    assert_eq!(a.bank_rows, b.bank_rows, "same bank size");
    assert_eq!(a.bank_rows, (0.05f64 * (8 * 784) as f64).ceil() as usize);

    // Covering radius over every training patch: the streamed bank is within 1.5x.
    let feats = whole
        .extract_paths(&cat.train, &NoProgress)
        .unwrap()
        .features;
    let radius = |m: &FittedPatchCore| {
        let idx = ExactIndex::new(m.bank()).unwrap();
        let nn = idx.search(feats.view(), 1).unwrap();
        nn.distances.iter().copied().fold(0.0f32, f32::max)
    };
    let (ra, rb) = (radius(&whole), radius(&streamed));
    assert!(rb <= 1.5 * ra, "streamed radius {rb} vs in-memory {ra}");

    // A bound below the bank itself is an error naming the key.
    let tiny = PatchCore::from_config(&config(1)).unwrap();
    let mut cfg = config(1);
    cfg.sampler
        .set_size(patchcore::sampler::SampleSize::Ratio(0.5))
        .unwrap();
    let tiny_big = PatchCore::from_config(&cfg).unwrap();
    assert!(tiny.fit(&cat.train, &NoProgress).is_ok());
    let e = tiny_big
        .fit(&cat.train, &NoProgress)
        .unwrap_err()
        .to_string();
    assert!(e.contains("fit.max_feature_memory_mb"), "{e}");
}

#[test]
fn the_bound_can_be_set_from_the_environment() {
    // The variables are passed in, not set on the process: other tests in this binary read
    // config from the environment concurrently under `cargo test`.
    let env = [(
        "PATCHCORE_FIT__MAX_FEATURE_MEMORY_MB".to_string(),
        "123".to_string(),
    )];
    let text = patchcore::model::config::DEFAULT_CONFIG_TOML;
    let cfg = Config::from_toml_str_with_env(text, None, env.clone()).unwrap();
    assert_eq!(cfg.fit.max_feature_memory_mb, 123);
    // Sampler and index sections are tagged enums: their keys are overridden the same way.
    let env = [
        ("PATCHCORE_SAMPLER__RATIO".to_string(), "0.1".to_string()),
        ("PATCHCORE_NN__KIND".to_string(), "ivf".to_string()),
        ("PATCHCORE_NN__NPROBE".to_string(), "4".to_string()),
        ("PATCHCORE_SHARED_DIR".to_string(), "/elsewhere".to_string()),
    ];
    let cfg = Config::from_toml_str_with_env(text, None, env).unwrap();
    assert_eq!(
        cfg.sampler.size(),
        Some(patchcore::sampler::SampleSize::Ratio(0.1))
    );
    match cfg.nn {
        patchcore::nn::IndexParams::Ivf(p) => assert_eq!(p.nprobe, 4),
        other => panic!("expected ivf, got {other:?}"),
    }
}
