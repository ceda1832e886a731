//! Fit once, save the model file, load it elsewhere and score single images: the library
//! counterpart of `patchcore fit` and `patchcore predict`.
//!
//! ```text
//! cargo run --release -p patchcore --example fit_predict -- <data_root> <category> <image>...
//! ```
//! Without arguments it fits the synthetic demo data set (MVTec layout, generated in a
//! temporary folder) and scores two of its test images.

use std::path::PathBuf;

use patchcore::data::synthetic::{SyntheticSpec, generate};
use patchcore::data::{list_images, load_rgb};
use patchcore::eval::{FitOptions, fit_model};
use patchcore::{Config, FittedPatchCore};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let tmp = std::env::temp_dir().join(format!("patchcore-fit-predict-{}", std::process::id()));
    let (root, category, images) = if args.len() >= 3 {
        (
            PathBuf::from(&args[0]),
            args[1].clone(),
            args[2..].iter().map(PathBuf::from).collect(),
        )
    } else {
        let spec = SyntheticSpec {
            train: 8,
            test_good: 4,
            test_per_defect: 4,
            ..Default::default()
        };
        generate(&tmp, &spec)?;
        let cat = tmp.join(&spec.category);
        let mut imgs = list_images(&cat.join("test/good"))?[..1].to_vec();
        imgs.extend(list_images(&cat.join("test/scratch"))?[..1].to_vec());
        (tmp.clone(), spec.category, imgs)
    };

    // Fit: memory bank from train/good, threshold calibrated on the labelled test split.
    let cfg = Config::default_experiment()?;
    let fitted = fit_model(
        &cfg,
        &FitOptions {
            data_root: root,
            category: Some(category.clone()),
            threshold: None,
            quiet: true,
        },
    )?;
    let model_path = tmp.join(format!("{category}.patchcore"));
    fitted.model.save(&model_path)?;
    println!("saved {}", model_path.display());

    // Elsewhere: load and score decoded images one at a time.
    let model = FittedPatchCore::load(&model_path)?;
    for path in &images {
        let image = load_rgb(path)?;
        let p = model.predict(&image)?;
        let verdict = match model.verdict(p.score) {
            Some(true) => "anomalous",
            Some(false) => "normal",
            None => "no threshold",
        };
        println!(
            "{}: score {:.4} ({verdict}), anomaly map {:?}",
            path.display(),
            p.score,
            p.anomaly_map.dim()
        );
    }
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}
