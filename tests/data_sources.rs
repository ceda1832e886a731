//! Bring-your-own-data: image-level-only MVTec layouts, plain folders, CSV / JSON-lines
//! manifests, training-image limits, grayscale and non-square images.

use std::path::Path;

use patchcore::core::Error;
use patchcore::data::synthetic::{SyntheticSpec, generate};
use patchcore::data::{MvtecCategory, TrainLimit, list_images};
use patchcore::eval::{EvaluateOptions, evaluate, open_categories};
use patchcore::model::Config;

const MODEL: &str = r#"
[backbone]
arch = "efficientnet_lite0"
layers = ["blocks.2", "blocks.4"]
[sampler]
kind = "greedy_coreset"
ratio = 0.05
"#;

fn spec() -> SyntheticSpec {
    SyntheticSpec {
        train: 6,
        test_good: 4,
        test_per_defect: 4,
        ..Default::default()
    }
}

fn opts(root: &Path, out: Option<&Path>) -> EvaluateOptions {
    EvaluateOptions {
        data_root: root.into(),
        categories: vec![],
        output: out.map(Into::into),
        quiet: true,
    }
}

#[test]
fn mvtec_layout_without_masks_is_evaluated_at_image_level() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), &spec()).unwrap();
    let cat = dir.path().join(spec().category);
    std::fs::remove_dir_all(cat.join("ground_truth")).unwrap();
    let out = tempfile::tempdir().unwrap();
    let cfg = Config::from_toml_str(MODEL, None).unwrap();
    let report = evaluate(&cfg, &opts(dir.path(), Some(out.path()))).unwrap();
    let r = &report.categories[&spec().category];
    assert!(r.image_auroc >= 0.9, "{}", r.image_auroc);
    assert_eq!(r.pixel_auroc, None);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("report.json")).unwrap())
            .unwrap();
    let c = &json["categories"][&spec().category];
    assert!(c.get("pixel_auroc").is_none(), "absent, not zero or NaN");
    assert!(
        c["pixel_metrics_absent"]
            .as_str()
            .unwrap()
            .contains("no ground-truth masks")
    );
    assert!(json["mean"].get("pixel_auroc").is_none());
    let md = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    assert!(md.contains("are absent: no ground-truth masks"), "{md}");
}

#[test]
fn masks_for_some_defect_types_only_and_partial_masks() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), &spec()).unwrap();
    let cat = dir.path().join(spec().category);
    // Masks for `scratch` only: image level only, no error.
    std::fs::remove_dir_all(cat.join("ground_truth/spot")).unwrap();
    let c = MvtecCategory::open(dir.path(), &spec().category).unwrap();
    assert!(c.pixel_metrics_unavailable().unwrap().contains("4 of 8"));
    // One mask missing among masked ones: an error naming the image...
    std::fs::remove_file(cat.join("ground_truth/scratch/002_mask.png")).unwrap();
    let err = MvtecCategory::open(dir.path(), &spec().category).unwrap_err();
    assert!(matches!(err, Error::Dataset { .. }));
    assert!(
        err.to_string().contains("scratch/002.png")
            && err.to_string().contains("allow_partial_masks"),
        "{err}"
    );
    // ... unless the config allows it.
    let cfg = Config::from_toml_str(
        &format!("[data]\nallow_partial_masks = true\n{MODEL}"),
        None,
    )
    .unwrap();
    let cats = open_categories(&cfg, &opts(dir.path(), None)).unwrap();
    assert!(cats[0].pixel_metrics_unavailable().is_some());
}

#[test]
fn folder_source_with_split_and_train_limit() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), &spec()).unwrap();
    let cat = dir.path().join(spec().category);
    let toml = format!(
        "[data]\nsource = \"folder\"\ntrain_limit = 4\n[data.folder]\nname = \"parts\"\nnormal_dir = \"{n}\"\n\
         abnormal_dirs = [\"{a}\", \"{b}\"]\nnormal_test_ratio = 0.34\n{MODEL}",
        n = cat.join("train/good").display(),
        a = cat.join("test/scratch").display(),
        b = cat.join("test/spot").display(),
    );
    let cfg = Config::from_toml_str(&toml, None).unwrap();
    let cats = open_categories(&cfg, &opts(Path::new("/nonexistent"), None)).unwrap();
    assert_eq!(cats[0].name, "parts");
    assert_eq!(
        cats[0].train.len(),
        4,
        "6 normal images, 2 held out, 4 kept"
    );
    assert_eq!(cats[0].test.iter().filter(|t| !t.anomalous).count(), 2);
    assert_eq!(
        cats[0]
            .test
            .iter()
            .filter(|t| t.defect_type == "scratch")
            .count(),
        4
    );
    // Same seed, same split.
    let again = open_categories(&cfg, &opts(Path::new("/nonexistent"), None)).unwrap();
    assert_eq!(cats[0].train, again[0].train);
    let report = evaluate(&cfg, &opts(Path::new("/nonexistent"), None)).unwrap();
    let r = &report.categories["parts"];
    assert_eq!(r.num_train, 4);
    assert!(r.image_auroc >= 0.9 && r.pixel_auroc.is_none(), "{r:?}");
    // Conflicting options are named.
    let bad = toml.replace(
        "normal_test_ratio = 0.34",
        "normal_test_ratio = 0.34\ntest_normal_dir = \"x\"",
    );
    let err = open_categories(
        &Config::from_toml_str(&bad, None).unwrap(),
        &opts(Path::new("/x"), None),
    )
    .unwrap_err();
    assert!(err.to_string().contains("normal_test_ratio"), "{err}");
}

#[test]
fn folder_source_with_masks_matched_by_stem() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), &spec()).unwrap();
    let cat = dir.path().join(spec().category);
    let toml = format!(
        "[data]\nsource = \"folder\"\n[data.folder]\nnormal_dir = \"{n}\"\ntest_normal_dir = \"{g}\"\n\
         abnormal_dirs = [\"{a}\"]\nmask_dir = \"{m}\"\n{MODEL}",
        n = cat.join("train/good").display(),
        g = cat.join("test/good").display(),
        a = cat.join("test/scratch").display(),
        m = cat.join("ground_truth/scratch").display(),
    );
    let cfg = Config::from_toml_str(&toml, None).unwrap();
    let report = evaluate(&cfg, &opts(Path::new("/x"), None)).unwrap();
    let r = &report.categories["folder"];
    assert!(r.pixel_auroc.unwrap() >= 0.9, "{r:?}");
    // Two abnormal folders with the same stems cannot share one mask folder.
    let dup = toml.replace(
        &format!("[\"{}\"]", cat.join("test/scratch").display()),
        &format!(
            "[\"{}\", \"{}\"]",
            cat.join("test/scratch").display(),
            cat.join("test/spot").display()
        ),
    );
    let err = open_categories(
        &Config::from_toml_str(&dup, None).unwrap(),
        &opts(Path::new("/x"), None),
    )
    .unwrap_err();
    assert!(err.to_string().contains("duplicate stem"), "{err}");
}

fn write_gray(path: &Path, w: u32, h: u32, defect: bool, seed: u32) {
    let img = image::GrayImage::from_fn(w, h, |x, y| {
        let v = 120.0 + 40.0 * ((x as f32 * 0.7 + seed as f32).sin() * (y as f32 * 0.5).cos());
        let d =
            defect && (x as i32 - w as i32 / 2).abs() < 12 && (y as i32 - h as i32 / 2).abs() < 12;
        image::Luma([if d { 10 } else { v as u8 }])
    });
    img.save(path).unwrap();
}

#[test]
fn manifests_in_csv_and_jsonl_with_grayscale_non_square_images() {
    let dir = tempfile::tempdir().unwrap();
    let img_dir = dir.path().join("imgs");
    std::fs::create_dir_all(&img_dir).unwrap();
    let mut csv = String::from("path,label,split\n");
    let mut jsonl = String::new();
    for i in 0..10 {
        let name = format!("n{i}.png");
        write_gray(&img_dir.join(&name), 320, 200, false, i);
        let split = if i < 7 { "train" } else { "test" };
        csv.push_str(&format!("imgs/{name},good,{split}\n"));
        jsonl.push_str(&format!(
            "{{\"path\": \"imgs/{name}\", \"label\": 0, \"split\": \"{split}\"}}\n"
        ));
    }
    for i in 0..3 {
        let name = format!("d{i}.png");
        write_gray(&img_dir.join(&name), 320, 200, true, i);
        csv.push_str(&format!("imgs/{name},defect,\n"));
        jsonl.push_str(&format!(
            "{{\"path\": \"imgs/{name}\", \"label\": \"1\"}}\n"
        ));
    }
    std::fs::write(dir.path().join("labels.csv"), &csv).unwrap();
    std::fs::write(dir.path().join("labels.jsonl"), &jsonl).unwrap();
    for file in ["labels.csv", "labels.jsonl"] {
        let toml = format!(
            "[data]\nsource = \"manifest\"\n[data.manifest]\npath = \"{file}\"\nname = \"line3\"\n{MODEL}"
        );
        let cfg_path = dir.path().join("exp.toml");
        std::fs::write(&cfg_path, &toml).unwrap();
        let cfg = Config::from_file(&cfg_path).unwrap();
        let report = evaluate(&cfg, &opts(Path::new("/x"), None)).unwrap();
        let r = &report.categories["line3"];
        assert_eq!(
            (r.num_train, r.num_test, r.num_test_anomalous),
            (7, 6, 3),
            "{file}"
        );
        assert!(r.image_auroc >= 0.9, "{file}: {}", r.image_auroc);
        assert!(r.pixel_auroc.is_none());
    }
    // A bad label names the row.
    std::fs::write(
        dir.path().join("bad.csv"),
        "path,label\nimgs/n0.png,maybe\n",
    )
    .unwrap();
    let toml =
        format!("[data]\nsource = \"manifest\"\n[data.manifest]\npath = \"bad.csv\"\n{MODEL}");
    std::fs::write(dir.path().join("bad.toml"), &toml).unwrap();
    let cfg = Config::from_file(&dir.path().join("bad.toml")).unwrap();
    let err = open_categories(&cfg, &opts(Path::new("/x"), None)).unwrap_err();
    assert!(
        err.to_string().contains("bad.csv:2") && err.to_string().contains("maybe"),
        "{err}"
    );
}

#[test]
fn train_limit_first_and_random() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), &spec()).unwrap();
    let mut c = MvtecCategory::open(dir.path(), &spec().category).unwrap();
    let all = c.train.clone();
    let mut r1 = c.clone();
    c.limit_train(TrainLimit::First(2));
    assert_eq!(c.train, all[..2].to_vec());
    r1.limit_train(TrainLimit::Random { k: 3, seed: 5 });
    let mut r2 = MvtecCategory::open(dir.path(), &spec().category).unwrap();
    r2.limit_train(TrainLimit::Random { k: 3, seed: 5 });
    assert_eq!(r1.train, r2.train);
    assert_eq!(r1.train.len(), 3);
    assert!(r1.train.windows(2).all(|w| w[0] < w[1]) && r1.train.iter().all(|p| all.contains(p)));
    assert_eq!(
        list_images(&dir.path().join(spec().category).join("train/good"))
            .unwrap()
            .len(),
        6
    );
}

#[test]
fn source_tables_must_match_the_source() {
    let err =
        Config::from_toml_str(&format!("[data]\nsource = \"folder\"\n{MODEL}"), None).unwrap_err();
    assert!(err.to_string().contains("data.folder"), "{err}");
    let err = Config::from_toml_str(&format!("[data.manifest]\npath = \"x.csv\"\n{MODEL}"), None)
        .unwrap_err();
    assert!(err.to_string().contains("data.manifest"), "{err}");
}
