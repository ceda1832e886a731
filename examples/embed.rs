//! Embedding PatchCore in another program: fit on a folder of good images, score others.
//!
//! ```text
//! cargo run --release --example embed -- <train_dir> <image>...
//! ```
//! Without arguments it generates the synthetic demo data set and uses it.

use std::path::PathBuf;

use patchcore::core::NoProgress;
use patchcore::data::list_images;
use patchcore::data::synthetic::{SyntheticSpec, generate};
use patchcore::{Config, PatchCore};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let (train_dir, images) = if args.is_empty() {
        let root = std::env::temp_dir().join("patchcore-embed-demo");
        let spec = SyntheticSpec::default();
        generate(&root, &spec)?;
        let cat = root.join(&spec.category);
        let mut imgs = list_images(&cat.join("test/good"))?[..2].to_vec();
        imgs.extend(list_images(&cat.join("test/scratch"))?[..2].to_vec());
        (cat.join("train/good"), imgs)
    } else {
        (args[0].clone(), args[1..].to_vec())
    };

    // The default experiment; any component can be swapped through the config.
    let cfg = Config::default_experiment()?;
    let model = PatchCore::from_config(&cfg)?;
    let model = model.fit(&list_images(&train_dir)?, &NoProgress)?;
    let stats = model.fit_stats().cloned().expect("fitted");
    println!(
        "memory bank: {} of {} patch features",
        stats.bank_rows, stats.bank_rows_full
    );
    for path in images {
        let p = model.predict_path(&path)?;
        let peak = p.anomaly_map.iter().copied().fold(f32::MIN, f32::max);
        println!(
            "{}\tscore {:.3}\tmap peak {:.3}",
            path.display(),
            p.score,
            peak
        );
    }
    Ok(())
}
