//! The real pipeline on MVTec AD bottle (`<shared>/datasets/mvtec_ad_256`), default config.
//! Fails loudly when the data set is missing.

use patchcore::eval::{EvaluateOptions, evaluate};
use patchcore::model::Config;
use patchcore_testkit::shared_dir;

#[test]
fn bottle_reaches_the_paper_level_with_effnet_lite0() {
    let root = shared_dir().join("datasets/mvtec_ad_256");
    assert!(
        root.join("bottle/train/good").is_dir(),
        "MVTec AD bottle not found at {} (set PATCHCORE_SHARED_DIR)",
        root.display()
    );
    let out = tempfile::tempdir().unwrap();
    let cfg = Config::from_file(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../configs/mvtec_effnet_lite0.toml"),
    )
    .unwrap();
    let report = evaluate(
        &cfg,
        &EvaluateOptions {
            data_root: root,
            categories: vec!["bottle".into()],
            output: Some(out.path().to_path_buf()),
            quiet: true,
        },
    )
    .unwrap();
    let r = &report.categories["bottle"];
    eprintln!(
        "bottle: image AUROC {:.4}, pixel AUROC {:.4}, fit {:.1} s",
        r.image_auroc,
        r.pixel_auroc.unwrap_or(f64::NAN),
        r.fit_seconds
    );
    assert_eq!((r.num_train, r.num_test), (209, 83));
    assert_eq!(r.bank_rows_full, 209 * 28 * 28);
    assert_eq!(r.bank_rows, (209.0f64 * 784.0 * 0.01).ceil() as usize);
    assert!(r.image_auroc >= 0.995, "image AUROC {}", r.image_auroc);
    let pixel = r.pixel_auroc.expect("bottle has masks");
    assert!(pixel >= 0.980, "pixel AUROC {pixel}");

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("report.json")).unwrap())
            .unwrap();
    let b = &json["categories"]["bottle"];
    for key in [
        "image_auroc",
        "pixel_auroc",
        "num_train",
        "num_test",
        "fit_seconds",
        "infer_ms_per_image",
    ] {
        assert!(
            b[key].is_number(),
            "report.json lacks categories.bottle.{key}"
        );
    }
    assert_eq!(json["config"]["backbone"]["arch"], "efficientnet_lite0");
    assert!(json["mean"]["image_auroc"].is_number());
    assert_eq!(b["images"].as_array().unwrap().len(), 83);
    let md = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    assert!(md.contains("| bottle |"));
    let html = std::fs::read_to_string(out.path().join("report.html")).unwrap();
    assert_eq!(
        html.matches("<svg").count(),
        2,
        "image and pixel ROC curves"
    );
    assert_eq!(
        html.matches("data:image/png;base64,").count(),
        24 + 4 + 4,
        "grid, worst FPs, worst FNs"
    );
    let aupro = b["pixel_aupro"].as_f64().unwrap();
    assert!(aupro > 0.85, "AUPRO {aupro}");
}
