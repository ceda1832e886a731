//! The latency suite: the predict path at batch 1 and larger batches, per device.

use std::path::PathBuf;
use std::time::Duration;

use patchcore_core::{NoProgress, Result};
use patchcore_device::ComputeDevice;

use super::time_it;
/// Batch-1 latency of the whole predict path (decode excluded: backbone, aggregation, search,
/// eq. 7, upsampling, blur) with the default experiment fitted on `category`, and the per-image
/// time at larger batches, on each device.
pub fn latency(
    data_root: &std::path::Path,
    category: &str,
    configs: &[PathBuf],
    devices: &[ComputeDevice],
    batches: &[usize],
    min_time: f64,
) -> Result<()> {
    let cat = patchcore_data::MvtecCategory::open(data_root, category)?;
    let images: Vec<image::RgbImage> = cat
        .test
        .iter()
        .take(32)
        .map(|t| patchcore_data::load_rgb(&t.path))
        .collect::<Result<_>>()?;
    let experiments: Vec<(String, patchcore_model::Config)> = if configs.is_empty() {
        vec![(
            "default experiment".to_string(),
            patchcore_model::Config::default_experiment()?,
        )]
    } else {
        configs
            .iter()
            .map(|p| {
                Ok((
                    p.display().to_string(),
                    patchcore_model::Config::from_file(p)?,
                ))
            })
            .collect::<Result<_>>()?
    };
    println!("## Predict latency, {category} (decode excluded)\n");
    println!(
        "| experiment | device | batch | ms / batch | ms / image | of which (mean ms / batch): extract | search + eq. 7 | maps |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for (name, base) in &experiments {
        for &device in devices {
            let mut cfg = base.clone();
            cfg.device = device;
            let model =
                patchcore_model::PatchCore::from_config(&cfg)?.fit(&cat.train, &NoProgress)?;
            for &b in batches {
                let batch: Vec<image::RgbImage> = images.iter().cycle().take(b).cloned().collect();
                let mut stages = patchcore_model::StageTimes::default();
                let mut runs = 0usize;
                let secs = time_it(3, Duration::from_secs_f64(min_time), || {
                    std::hint::black_box(
                        model
                            .predict_images_timed(&batch, &mut stages)
                            .expect("predict"),
                    );
                    runs += 1;
                });
                let per_run = |v: f64| v * 1e3 / runs as f64;
                println!(
                    "| {name} | {device} | {b} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
                    secs * 1e3,
                    secs * 1e3 / b as f64,
                    per_run(stages.extract),
                    per_run(stages.search_and_score),
                    per_run(stages.maps)
                );
            }
        }
    }
    Ok(())
}
