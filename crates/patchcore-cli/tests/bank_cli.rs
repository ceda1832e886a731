//! `patchcore bank status` and `patchcore bank push` through the real binary, on a model fitted
//! on a generated data set. Without the feature `qdrant`, push says which build it needs; with
//! it (`.ci/run` builds it), the bank goes to the in-process engine, a second push reuses the
//! collection, and the rewritten model predicts the scores of the original.

use std::path::Path;
use std::process::{Command, Output};

use patchcore_data::synthetic::{SyntheticSpec, generate};

fn patchcore(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_patchcore"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("runs")
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A fitted model `m.patchcore` and its data set under `d`; returns the category.
fn fitted(d: &Path) -> String {
    let spec = SyntheticSpec {
        train: 5,
        test_good: 2,
        test_per_defect: 2,
        ..Default::default()
    };
    generate(&d.join("data"), &spec).unwrap();
    ok(patchcore(
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
    ));
    spec.category
}

#[test]
fn bank_status_reads_the_model_file_alone() {
    let dir = tempfile::tempdir().unwrap();
    fitted(dir.path());
    let text = ok(patchcore(&["bank", "status", "m.patchcore"], dir.path()));
    assert!(text.contains("index     exact"), "{text}");
    assert!(text.contains("bank 0") && text.contains("rows x"), "{text}");
    assert!(text.contains("in this process"), "{text}");
    let missing = patchcore(&["bank", "status", "nope.patchcore"], dir.path());
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("nope.patchcore"));
}

#[cfg(not(feature = "qdrant"))]
#[test]
fn bank_push_names_the_build_it_needs() {
    let dir = tempfile::tempdir().unwrap();
    fitted(dir.path());
    let out = patchcore(
        &["bank", "push", "m.patchcore", "--embedded-path", "engine"],
        dir.path(),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--features qdrant"), "{err}");
}

#[cfg(feature = "qdrant")]
#[test]
fn bank_push_moves_the_bank_to_qdrant_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let category = fitted(d);
    let push = |out: &str| {
        ok(patchcore(
            &[
                "bank",
                "push",
                "m.patchcore",
                "--embedded-path",
                "engine",
                "--out",
                out,
            ],
            d,
        ))
    };
    let first = push("q.patchcore");
    assert!(
        first.contains("(created)") && first.contains("collection patchcore-"),
        "{first}"
    );
    let second = push("q2.patchcore");
    assert!(second.contains("already there, reused"), "{second}");
    let status = ok(patchcore(&["bank", "status", "q.patchcore"], d));
    assert!(status.contains("index     qdrant"), "{status}");
    assert!(status.contains("Complete"), "{status}");
    assert!(
        status.contains("recorded  bank 0: qdrant embedded"),
        "{status}"
    );
    // The rewritten model scores as the original: the engine's distances are the exact
    // index's up to float rounding (it sums squared differences, the GEMM index expands
    // |q|^2 + |m|^2 - 2 q.m). Verdicts are not compared: the calibrated threshold is one of
    // the test images' scores, so rounding can flip the verdict of that very image.
    let images = format!("data/{category}/test");
    let scores = |model: &str| -> Vec<(String, f64)> {
        let text = ok(patchcore(
            &["predict", "--model", model, &images, "--quiet"],
            d,
        ));
        let mut rows: Vec<(String, f64)> = text
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                (f[0].to_string(), f[1].parse().unwrap())
            })
            .collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        rows
    };
    let (a, b) = (scores("m.patchcore"), scores("q.patchcore"));
    assert_eq!(a.len(), 6);
    for ((pa, sa), (pb, sb)) in a.iter().zip(&b) {
        assert_eq!(pa, pb);
        assert!((sa - sb).abs() <= 1e-5 * sa.abs(), "{pa}: {sa} vs {sb}");
    }
}
