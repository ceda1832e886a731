//! The memory bank searched in Qdrant's in-process engine (`nn.kind = "qdrant"`,
//! `embedded_path`) gives bottle the metrics of the exact index at the same seed.
//! Needs the feature `qdrant`: `cargo nextest run --release -p patchcore --features qdrant
//! --test qdrant_bottle` (run by `.ci/run`). Fails loudly when the data set is missing.
#![cfg(feature = "qdrant")]

use patchcore::eval::{EvaluateOptions, evaluate};
use patchcore::model::Config;
use patchcore::nn::{IndexParams, QdrantParams};
use patchcore_testkit::shared_dir;

fn run(cfg: &Config, out: &std::path::Path) -> serde_json::Value {
    let root = shared_dir().join("datasets/mvtec_ad_256");
    assert!(
        root.join("bottle/train/good").is_dir(),
        "MVTec AD bottle not found at {} (set PATCHCORE_SHARED_DIR)",
        root.display()
    );
    evaluate(
        cfg,
        &EvaluateOptions {
            data_root: root,
            categories: vec!["bottle".into()],
            output: Some(out.to_path_buf()),
            quiet: true,
        },
    )
    .unwrap();
    let text = std::fs::read_to_string(out.join("report.json")).unwrap();
    serde_json::from_str::<serde_json::Value>(&text).unwrap()["categories"]["bottle"].clone()
}

#[test]
fn bottle_through_qdrant_matches_the_exact_index() {
    let cfg = Config::from_file(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../configs/mvtec_effnet_lite0.toml"),
    )
    .unwrap();
    assert_eq!(cfg.nn, IndexParams::Exact {}, "the default config's index");
    let dir = tempfile::tempdir().unwrap();
    let exact = run(&cfg, &dir.path().join("exact"));
    let mut q = cfg.clone();
    q.nn = IndexParams::Qdrant(QdrantParams {
        embedded_path: Some(dir.path().join("engine")),
        ..Default::default()
    });
    let qdrant = run(&q, &dir.path().join("qdrant"));
    // The collection exists under the engine folder, named after the bank's hash.
    let collections: Vec<String> = std::fs::read_dir(dir.path().join("engine"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(collections.len(), 1, "{collections:?}");
    assert!(collections[0].starts_with("patchcore-"), "{collections:?}");
    for key in ["image_auroc", "pixel_auroc", "pixel_aupro", "image_f1_max"] {
        let (a, b) = (exact[key].as_f64(), qdrant[key].as_f64());
        eprintln!("{key}: exact {a:?}, qdrant {b:?}");
        let (a, b) = (a.unwrap(), b.unwrap());
        assert!((a - b).abs() <= 1e-6, "{key}: exact {a}, qdrant {b}");
    }
    assert_eq!(exact["bank_rows"], qdrant["bank_rows"]);
    eprintln!(
        "infer ms per image: exact {}, qdrant {}; fit s: exact {}, qdrant {}",
        exact["infer_ms_per_image"],
        qdrant["infer_ms_per_image"],
        exact["fit_seconds"],
        qdrant["fit_seconds"]
    );
    let scores = |r: &serde_json::Value| -> Vec<f64> {
        r["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["score"].as_f64().unwrap())
            .collect()
    };
    let (se, sq) = (scores(&exact), scores(&qdrant));
    assert_eq!(se.len(), 83);
    let worst = se
        .iter()
        .zip(&sq)
        .map(|(a, b)| (a - b).abs() / a.abs().max(1e-6))
        .fold(0.0f64, f64::max);
    eprintln!("largest relative difference of an image score: {worst:.2e}");
    assert!(
        worst <= 1e-4,
        "image scores differ by up to {worst:.2e} (relative)"
    );
}
