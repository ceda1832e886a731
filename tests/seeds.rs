//! Seeds in the standard protocol: features are extracted once and reused, yet every seed's
//! run equals a run of that seed alone; reports give mean, standard deviation, per-seed
//! values and the bootstrap intervals, in json, md and html.

use patchcore::data::synthetic::{SyntheticSpec, generate};
use patchcore::eval::{CategoryResult, EvaluateOptions, evaluate};
use patchcore::model::Config;

fn run(cfg: &Config, data: &std::path::Path, out: Option<&std::path::Path>) -> CategoryResult {
    let report = evaluate(
        cfg,
        &EvaluateOptions {
            data_root: data.into(),
            categories: vec![],
            output: out.map(Into::into),
            quiet: true,
        },
    )
    .unwrap();
    report.categories.into_values().next().unwrap()
}

#[test]
fn every_seed_of_a_multi_seed_run_equals_its_own_run() {
    let data = tempfile::tempdir().unwrap();
    let spec = SyntheticSpec {
        train: 5,
        test_good: 4,
        test_per_defect: 3,
        ..Default::default()
    };
    generate(data.path(), &spec).unwrap();
    let mut cfg = Config::default_experiment().unwrap();
    cfg.sampler
        .set_size(patchcore::sampler::SampleSize::Ratio(0.02))
        .unwrap();
    cfg.protocol
        .set("bootstrap_resamples", toml::Value::Integer(200));
    cfg.seeds = Some(vec![3, 4, 5]);
    let out = tempfile::tempdir().unwrap();
    let all = run(&cfg, data.path(), Some(out.path()));
    assert_eq!(all.seeds, vec![3, 4, 5]);
    assert_eq!(all.seed_scores.len(), 3);
    for (i, seed) in [3u64, 4, 5].into_iter().enumerate() {
        let mut one = cfg.clone();
        one.seeds = Some(vec![seed]);
        let alone = run(&one, data.path(), None);
        assert_eq!(
            alone.seed_scores[0], all.seed_scores[i],
            "seed {seed}: same scores"
        );
        for m in ["image_auroc", "pixel_auroc", "pixel_aupro"] {
            assert_eq!(
                alone.spread[m].values[0], all.spread[m].values[i],
                "seed {seed}: {m}"
            );
        }
    }
    // Different seeds pick different coresets.
    assert_ne!(all.seed_scores[0], all.seed_scores[1]);
    let s = &all.spread["pixel_aupro"];
    assert_eq!(s.values.len(), 3);
    assert!((s.mean - all.pixel_aupro.unwrap()).abs() < 1e-12);
    assert!(s.std > 0.0);
    for m in ["image_auroc", "pixel_auroc"] {
        let i = &all.intervals[m];
        assert!(
            i.lo <= i.hi && i.level == 0.95 && i.resamples == 200,
            "{m}: {i:?}"
        );
    }

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("report.json")).unwrap())
            .unwrap();
    let cat = &json["categories"][&spec.category];
    assert_eq!(
        cat["spread"]["image_auroc"]["values"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert!(cat["intervals"]["pixel_auroc"]["lo"].is_number());
    assert_eq!(
        cat["images"][0]["scores_per_seed"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(json["seeds"], serde_json::json!([3, 4, 5]));
    assert_eq!(json["provenance"]["run_sha256"].as_str().unwrap().len(), 64);
    let md = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    assert!(
        md.contains(" ± ") && md.contains("## Per seed") && md.contains("95% CI"),
        "{md}"
    );
    let html = std::fs::read_to_string(out.path().join("report.html")).unwrap();
    assert!(html.contains("<table id=\"summary\" class=\"sortable\""));
    assert!(html.contains("<table id=\"per-seed\""));
    assert!(html.contains("<table id=\"config\""));
    assert!(
        !html.contains("<pre>"),
        "the summary is a rendered table, not Markdown source"
    );
}
