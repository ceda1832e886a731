//! The low-shot protocol from its config file, on a small generated data set.

use patchcore::data::synthetic::{SyntheticSpec, generate};
use patchcore::eval::{EvaluateOptions, evaluate};
use patchcore::model::Config;

#[test]
fn low_shot_protocol_reports_mean_and_spread_per_size() {
    let data = tempfile::tempdir().unwrap();
    let spec = SyntheticSpec {
        train: 6,
        test_good: 3,
        test_per_defect: 3,
        ..Default::default()
    };
    generate(data.path(), &spec).unwrap();
    let mut cfg = Config::from_file(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../configs/low_shot_effnet_lite0.toml"),
    )
    .unwrap();
    cfg.protocol
        .set("shots", toml::Value::try_from(vec![1, 2, 50]).unwrap());
    cfg.protocol
        .set("seeds", toml::Value::try_from(vec![0, 1]).unwrap());
    let out = tempfile::tempdir().unwrap();
    let report = evaluate(
        &cfg,
        &EvaluateOptions {
            data_root: data.path().into(),
            categories: vec![],
            output: Some(out.path().into()),
            quiet: true,
        },
    )
    .unwrap();
    let rows = &report.low_shot[&spec.category];
    assert_eq!(
        rows.iter().map(|r| r.shots).collect::<Vec<_>>(),
        vec![1, 2],
        "k = 50 > 6 images is skipped"
    );
    for r in rows {
        assert_eq!(r.image_auroc.values.len(), 2, "one run per seed");
        let mean = r.image_auroc.values.iter().sum::<f64>() / 2.0;
        assert!((r.image_auroc.mean - mean).abs() < 1e-12);
        assert!(r.pixel_aupro.is_some());
        for m in ["image_auroc", "pixel_auroc"] {
            let i = &r.intervals[m];
            assert!(0.0 <= i.lo && i.lo <= i.hi && i.hi <= 1.0, "{m}: {i:?}");
        }
    }
    let md = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    assert!(
        md.contains("## Low-shot protocol") && md.contains(" ± ") && md.contains("95% CI"),
        "{md}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("report.json")).unwrap())
            .unwrap();
    assert_eq!(json["low_shot"][&spec.category][0]["shots"], 1);
    assert!(json["low_shot"][&spec.category][1]["image_auroc"]["std"].is_number());
}
