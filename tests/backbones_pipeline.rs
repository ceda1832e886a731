//! ResNet backbones and backbone ensembles through the whole pipeline.

use ndarray::Array2;
use patchcore::data::synthetic::{SyntheticSpec, generate};
use patchcore::eval::{EvaluateOptions, combine_members, evaluate};
use patchcore::model::Config;
use patchcore::model::config::expand_home;

fn tiny_data() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let spec = SyntheticSpec {
        train: 3,
        test_good: 2,
        test_per_defect: 2,
        ..Default::default()
    };
    generate(dir.path(), &spec).unwrap();
    (dir, spec.category)
}

fn repo_config(name: &str) -> Config {
    Config::from_file(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../configs")
            .join(name),
    )
    .unwrap()
}

#[test]
fn wide_resnet50_2_config_runs_end_to_end_and_labels_random_weights() {
    let cfg = repo_config("wide_resnet50_2.toml");
    let b = cfg.backbone.as_ref().unwrap();
    assert!(
        b.weights.starts_with("~/"),
        "home-relative path kept, not joined to configs/: {}",
        b.weights
    );
    let real = expand_home(&b.weights).is_file();
    let (data, cat) = tiny_data();
    let out = tempfile::tempdir().unwrap();
    let report = evaluate(
        &cfg,
        &EvaluateOptions {
            data_root: data.path().into(),
            categories: vec![cat.clone()],
            output: Some(out.path().into()),
            quiet: true,
        },
    )
    .unwrap();
    let r = &report.categories[&cat];
    assert_eq!(
        r.feature_dim, 1024,
        "1536-d features projected to target_dim 1024"
    );
    assert_eq!(r.bank_rows_full, 3 * 28 * 28);
    assert!(r.image_auroc.is_finite() && r.pixel_auroc.unwrap().is_finite());
    assert_eq!(report.backbones[0].arch, "wide_resnet50_2");
    assert_eq!(report.backbones[0].pretrained, real);
    let md = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("report.json")).unwrap())
            .unwrap();
    if !real {
        assert!(
            md.contains("WARNING") && md.contains("NOT pretrained"),
            "{md}"
        );
        assert_eq!(json["backbones"][0]["pretrained"], false);
    }
}

#[test]
fn ensemble_of_effnet_and_resnet18_is_scored_and_reported_per_member() {
    let mut cfg = repo_config("ensemble_effnet_resnet18.toml");
    // No resnet18 checkpoint can be downloaded here: its member runs on random weights.
    cfg.ensemble[1].weights = "random".into();
    let (data, cat) = tiny_data();
    let report = evaluate(
        &cfg,
        &EvaluateOptions {
            data_root: data.path().into(),
            categories: vec![cat.clone()],
            output: None,
            quiet: true,
        },
    )
    .unwrap();
    assert_eq!(report.backbones.len(), 2);
    assert!(report.backbones[0].pretrained && !report.backbones[1].pretrained);
    let r = &report.categories[&cat];
    assert_eq!(
        r.feature_dim,
        152 + 384,
        "per-member widths are summed in the report"
    );
    assert_eq!(r.bank_rows_full, 2 * 3 * 784);
}

#[test]
fn ensemble_scores_are_min_max_normalised_then_averaged() {
    let m1 = (
        vec![0.0f32, 10.0, 5.0],
        vec![
            Array2::from_elem((2, 2), 1.0f32),
            Array2::from_elem((2, 2), 3.0),
        ],
    );
    let m2 = (
        vec![100.0f32, 300.0, 300.0],
        vec![
            Array2::from_elem((2, 2), 0.0f32),
            Array2::from_elem((2, 2), 2.0),
        ],
    );
    let (s, maps) = combine_members(vec![m1, m2]);
    assert_eq!(s, vec![0.0, 1.0, 0.75]);
    assert!(maps[0].iter().all(|v| *v == 0.0));
    assert!(maps[1].iter().all(|v| *v == 1.0));
    // One member passes through untouched.
    let (s, _) = combine_members(vec![(
        vec![3.0, 4.0],
        vec![Array2::zeros((1, 1)), Array2::zeros((1, 1))],
    )]);
    assert_eq!(s, vec![3.0, 4.0]);
}
