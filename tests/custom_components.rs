//! Components given as trait objects: the streamed fit uses the sampler it was given, custom
//! samplers and indices are recorded in model files and the index must be supplied to load,
//! components a file cannot describe make `save` fail with their name, and version-1 model
//! files still load.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use ndarray::{Array2, ArrayView2};
use patchcore::core::{Error, NoProgress, PatchFeatures, Progress, Result};
use patchcore::data::MvtecCategory;
use patchcore::data::synthetic::{SyntheticSpec, generate};
use patchcore::model::model_file::{self, MODEL_FORMAT_VERSION};
use patchcore::model::{Config, FittedPatchCore, LoadOptions, PatchCore, PatchCoreBuilder};
use patchcore::nn::{ExactBuilder, IndexBuilder, IndexParams, NearestNeighborIndex};
use patchcore::sampler::{RandomSampler, SampleSize, Sampler, SamplerParams};
use patchcore::score::{ImageScore, PatchCoreScorer, Scorer};

/// A random sampler under another name that counts its selections.
struct CountingSampler {
    inner: RandomSampler,
    calls: AtomicUsize,
}

impl Sampler for CountingSampler {
    fn name(&self) -> &str {
        "counting_random"
    }
    fn size(&self) -> SampleSize {
        self.inner.size()
    }
    fn select_count(
        &self,
        features: ArrayView2<'_, f32>,
        count: usize,
        progress: &dyn Progress,
    ) -> Result<Vec<usize>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.select_count(features, count, progress)
    }
}

fn counting(ratio: f64) -> CountingSampler {
    CountingSampler {
        inner: RandomSampler::new(SampleSize::Ratio(ratio), 3),
        calls: AtomicUsize::new(0),
    }
}

/// The exact index under another name.
struct MyExact;

impl IndexBuilder for MyExact {
    fn name(&self) -> &str {
        "my_exact"
    }
    fn build(&self, bank: Array2<f32>) -> Result<Box<dyn NearestNeighborIndex>> {
        ExactBuilder.build(bank)
    }
}

/// PatchCore's scorer behind a type the file cannot describe.
struct WrappedScorer(PatchCoreScorer);

impl Scorer for WrappedScorer {
    fn name(&self) -> &str {
        "wrapped_patchcore"
    }
    fn score(
        &self,
        features: &PatchFeatures,
        index: &dyn NearestNeighborIndex,
    ) -> Result<Vec<ImageScore>> {
        self.0.score(features, index)
    }
    fn anomaly_map(&self, patch_scores: ArrayView2<'_, f32>, h: usize, w: usize) -> Array2<f32> {
        self.0.anomaly_map(patch_scores, h, w)
    }
}

fn data(train: usize) -> (tempfile::TempDir, MvtecCategory) {
    let dir = tempfile::tempdir().unwrap();
    let spec = SyntheticSpec {
        train,
        test_good: 1,
        test_per_defect: 1,
        ..Default::default()
    };
    generate(dir.path(), &spec).unwrap();
    let cat = MvtecCategory::open(dir.path(), &spec.category).unwrap();
    (dir, cat)
}

fn config(bound_mb: usize) -> Config {
    let mut cfg = Config::default_experiment().unwrap();
    cfg.data.batch_size = 2;
    cfg.fit.max_feature_memory_mb = bound_mb;
    cfg
}

#[test]
fn the_streamed_fit_uses_the_sampler_it_was_given() {
    let (_dir, cat) = data(8);
    // 8 images x 784 patches x 152 x 4 bytes = 3.8 MiB; a 2 MiB bound streams 4 chunks.
    let model = PatchCoreBuilder::new(config(2))
        .sampler(Box::new(counting(0.05)))
        .build()
        .unwrap();
    let model = model.fit(&cat.train, &NoProgress).unwrap();
    let stats = model.fit_stats().cloned().unwrap();
    assert_eq!(stats.chunks, 4);
    assert_eq!(
        stats.bank_rows,
        (0.05f64 * (8 * 784) as f64).ceil() as usize
    );
    assert_eq!(model.config().sampler.kind(), "counting_random");
    assert_eq!(model.sampler().map(|s| s.name()), Some("counting_random"));
    let in_memory = PatchCoreBuilder::new(config(0))
        .sampler(Box::new(counting(0.05)))
        .build()
        .unwrap();
    assert_eq!(
        in_memory
            .fit(&cat.train, &NoProgress)
            .unwrap()
            .fit_stats()
            .unwrap()
            .chunks,
        1
    );
}

#[test]
fn every_selection_of_a_streamed_fit_goes_through_the_given_sampler() {
    let (_dir, cat) = data(8);
    let sampler = std::sync::Arc::new(counting(0.05));
    struct Shared(std::sync::Arc<CountingSampler>);
    impl Sampler for Shared {
        fn name(&self) -> &str {
            self.0.name()
        }
        fn size(&self) -> SampleSize {
            self.0.size()
        }
        fn select_count(
            &self,
            f: ArrayView2<'_, f32>,
            count: usize,
            p: &dyn Progress,
        ) -> Result<Vec<usize>> {
            self.0.select_count(f, count, p)
        }
    }
    let model = PatchCoreBuilder::new(config(2))
        .sampler(Box::new(Shared(sampler.clone())))
        .build()
        .unwrap();
    let model = model.fit(&cat.train, &NoProgress).unwrap();
    let stats = model.fit_stats().cloned().unwrap();
    assert_eq!(
        sampler.calls.load(Ordering::SeqCst),
        stats.chunks + 1,
        "a selection per chunk plus the final one"
    );
}

#[test]
fn custom_sampler_and_index_are_recorded_and_the_index_must_be_supplied() {
    let (dir, cat) = data(3);
    let model = PatchCoreBuilder::new(config(0))
        .sampler(Box::new(counting(0.02)))
        .index_builder(Box::new(MyExact))
        .build()
        .unwrap();
    let model = model.fit(&cat.train, &NoProgress).unwrap();
    let path = dir.path().join("custom.patchcore");
    model.save(&path).unwrap();
    let (header, _) = model_file::read(&path).unwrap();
    assert_eq!(
        header.config.sampler,
        SamplerParams::Custom {
            name: "counting_random".into()
        }
    );
    assert_eq!(
        header.config.nn,
        IndexParams::Custom {
            name: "my_exact".into()
        }
    );

    let err = FittedPatchCore::load(&path).expect_err("custom index required");
    assert!(matches!(err, Error::Model { .. }), "{err}");
    assert!(err.to_string().contains("my_exact"), "{err}");
    let wrong = FittedPatchCore::load_with(
        &path,
        LoadOptions {
            index: Some(Box::new(ExactBuilder)),
            ..Default::default()
        },
    )
    .expect_err("another index refused");
    assert!(wrong.to_string().contains("my_exact"), "{wrong}");

    let loaded = FittedPatchCore::load_with(
        &path,
        LoadOptions {
            index: Some(Box::new(MyExact)),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(
        loaded.sampler().is_none(),
        "the custom sampler is not rebuilt"
    );
    let test: Vec<PathBuf> = cat.test.iter().map(|t| t.path.clone()).collect();
    let a = model.predict_paths(&test, &NoProgress).unwrap();
    let b = loaded.predict_paths(&test, &NoProgress).unwrap();
    assert_eq!(a, b, "the loaded model scores as the saved one");

    // Refitting the loaded model needs a sampler.
    let refit = FittedPatchCore::load_with(
        &path,
        LoadOptions {
            index: Some(Box::new(MyExact)),
            ..Default::default()
        },
    )
    .unwrap();
    let e = refit
        .unfit()
        .fit(&cat.train, &NoProgress)
        .unwrap_err()
        .to_string();
    assert!(e.contains("counting_random"), "{e}");

    // An index builder for a model whose index the file describes is refused.
    let plain = PatchCore::from_config(&config(0)).unwrap();
    let plain = plain.fit(&cat.train, &NoProgress).unwrap();
    let plain_path = dir.path().join("plain.patchcore");
    plain.save(&plain_path).unwrap();
    let e = FittedPatchCore::load_with(
        &plain_path,
        LoadOptions {
            index: Some(Box::new(MyExact)),
            ..Default::default()
        },
    )
    .expect_err("builder refused for a described index");
    assert!(e.to_string().contains("exact"), "{e}");
}

#[test]
fn a_component_the_file_cannot_describe_makes_save_fail_with_its_name() {
    let (dir, cat) = data(2);
    let model = PatchCoreBuilder::new(config(0))
        .scorer(Box::new(WrappedScorer(PatchCoreScorer::default())))
        .build()
        .unwrap();
    assert_eq!(model.undescribed_components().len(), 1);
    let model = model.fit(&cat.train, &NoProgress).unwrap();
    let path = dir.path().join("scorer.patchcore");
    let e = model.save(&path).unwrap_err();
    assert!(matches!(e, Error::Model { .. }), "{e}");
    assert!(e.to_string().contains("scorer"), "{e}");
    assert!(!path.exists(), "nothing written");
}

#[test]
fn version_1_model_files_still_load() {
    let (dir, cat) = data(2);
    let model = PatchCore::from_config(&config(0)).unwrap();
    let model = model.fit(&cat.train, &NoProgress).unwrap();
    let header = model.header().unwrap();
    let bank = model.bank();
    assert_eq!(header.format_version, MODEL_FORMAT_VERSION);

    // What version 1 wrote: every key of the sampler, nn and aggregator sections.
    let mut v1 = serde_json::to_value(&header).unwrap();
    v1["format_version"] = 1.into();
    v1["config"]["sampler"] = serde_json::json!({
        "kind": "greedy_coreset", "ratio": 0.01, "count": null, "greedy": "pruned",
        "approx_starts": 10, "projection": "gaussian", "projection_dim": 128,
        "projection_eps": 0.9, "sparse_density": 0.0
    });
    v1["config"]["nn"] = serde_json::json!({"kind": "exact", "nlist": 0, "nprobe": 8});
    v1["config"]["aggregator"] = serde_json::json!({
        "kind": "locally_aware", "neighbourhood": 3, "target_dim": 0,
        "pretrain_embed_dim": 1024, "target_embed_dim": 1024
    });
    let bytes = patchcore::model_format::encode(&v1.to_string(), &bank).unwrap();
    let path = dir.path().join("v1.patchcore");
    std::fs::write(&path, &bytes).unwrap();
    let (read, read_bank) = model_file::read(&path).unwrap();
    assert_eq!(read.config, header.config, "migrated to the same config");
    assert_eq!(read_bank, bank);
    let loaded = FittedPatchCore::load(&path).unwrap();
    let test: Vec<PathBuf> = cat.test.iter().map(|t| t.path.clone()).collect();
    assert_eq!(
        loaded.predict_paths(&test, &NoProgress).unwrap(),
        model.predict_paths(&test, &NoProgress).unwrap()
    );
}
