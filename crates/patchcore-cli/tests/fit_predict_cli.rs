//! `patchcore fit` then `patchcore predict` through the real binary, on a generated data set:
//! one line per image, predictions.jsonl, heatmap PNGs, and a corrupt image reported and
//! skipped with exit status 2.

use std::path::Path;
use std::process::Command;

use patchcore_data::synthetic::{SyntheticSpec, generate};

fn patchcore(args: &[&str], cwd: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_patchcore"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("runs")
}

#[test]
fn fit_then_predict_a_folder() {
    let dir = tempfile::tempdir().unwrap();
    let spec = SyntheticSpec {
        train: 6,
        test_good: 3,
        test_per_defect: 3,
        ..Default::default()
    };
    generate(&dir.path().join("data"), &spec).unwrap();
    let d = dir.path();
    let out = patchcore(
        &[
            "fit",
            "--data-root",
            "data",
            "--category",
            &spec.category,
            "--model",
            "m.patchcore",
            "--quiet",
        ],
        d,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("wrote m.patchcore") && text.contains("threshold"),
        "{text}"
    );

    // No inputs is a usage error.
    let out = patchcore(&["predict", "--model", "m.patchcore", "--quiet"], d);
    assert!(!out.status.success());

    // A corrupt image among the inputs: reported, skipped, exit status 2.
    let test = d.join("data").join(&spec.category).join("test");
    std::fs::write(
        test.join("good").join("broken.png"),
        b"\x89PNG\r\n\x1a\nbroken",
    )
    .unwrap();
    let test_arg = test.to_string_lossy().into_owned();
    let out = patchcore(
        &[
            "predict",
            "--model",
            "m.patchcore",
            &test_arg,
            "--output",
            "pred",
            "--quiet",
        ],
        d,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("broken.png"), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    let n_images = spec.test_good + 2 * spec.test_per_defect;
    assert_eq!(lines.len(), n_images, "{stdout}");
    for l in &lines {
        let f: Vec<&str> = l.split('\t').collect();
        assert_eq!(f.len(), 3, "{l}");
        assert!(f[1].parse::<f32>().unwrap().is_finite());
        assert!(f[2] == "normal" || f[2] == "anomalous", "{l}");
    }
    // Defective images are flagged more often than good ones.
    let flagged = |kind: &str| {
        lines
            .iter()
            .filter(|l| l.contains(&format!("/{kind}/")) && l.ends_with("anomalous"))
            .count()
    };
    assert!(
        flagged("scratch") + flagged("spot") > flagged("good"),
        "{stdout}"
    );

    let jsonl = std::fs::read_to_string(d.join("pred/predictions.jsonl")).unwrap();
    assert_eq!(
        jsonl.lines().count(),
        n_images + 1,
        "one record per input, errors included"
    );
    let maps = std::fs::read_dir(d.join("pred/maps")).unwrap().count();
    assert_eq!(maps, n_images);
    let scored = jsonl
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v.get("map").is_some())
        .unwrap();
    let png = d.join("pred").join(scored["map"].as_str().unwrap());
    assert_eq!(image::image_dimensions(png).unwrap(), (224, 224));
}
