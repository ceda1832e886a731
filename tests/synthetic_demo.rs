//! The README's main command without a data root: the generated demo data set must be a
//! meaningful demo (image AUROC >= 0.9).

use patchcore::data::synthetic::{SyntheticSpec, generate};
use patchcore::eval::{EvaluateOptions, evaluate};
use patchcore::model::Config;

#[test]
fn synthetic_demo_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let spec = SyntheticSpec::default();
    generate(dir.path(), &spec).unwrap();
    let cfg = Config::default_experiment().unwrap();
    let report = evaluate(
        &cfg,
        &EvaluateOptions {
            data_root: dir.path().to_path_buf(),
            categories: vec![],
            output: None,
            quiet: true,
        },
    )
    .unwrap();
    let r = &report.categories[&spec.category];
    eprintln!(
        "synthetic: image AUROC {:.4}, pixel AUROC {:.4}",
        r.image_auroc,
        r.pixel_auroc.unwrap()
    );
    assert!(r.image_auroc >= 0.9, "image AUROC {}", r.image_auroc);
    assert!(
        r.pixel_auroc.unwrap() >= 0.9,
        "pixel AUROC {:?}",
        r.pixel_auroc
    );
}
