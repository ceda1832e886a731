//! `patchcore fit` and `patchcore predict`.

use std::io::Write;
use std::path::{Path, PathBuf};

use patchcore_core::{Error, Progress, Result};
use patchcore_data::{Geometry, load_rgb_with};
use patchcore_device::ComputeDevice;
use patchcore_eval::progress::Bar;
use patchcore_eval::{FitOptions, fit_model};
use patchcore_model::config::DataSource;
use patchcore_model::render::heatmap_overlay;
use patchcore_model::{Config, FittedPatchCore, LoadOptions};
use rayon::prelude::*;

/// `patchcore fit`: fit one category and write the model file.
pub fn fit(
    config: Option<&Path>,
    data_root: Option<PathBuf>,
    category: Option<String>,
    model_path: &Path,
    threshold: Option<f32>,
    quiet: bool,
) -> Result<()> {
    let cfg = match config {
        Some(p) => Config::from_file(p)?,
        None => Config::default_experiment()?,
    };
    let data_root = match (cfg.data.source, data_root) {
        (DataSource::Mvtec, Some(d)) => d,
        (DataSource::Mvtec, None) => {
            return Err(Error::InvalidArgument(
                "--data-root is required for the \"mvtec\" source".into(),
            ));
        }
        (_, Some(_)) => {
            return Err(Error::config(
                "data.source",
                "--data-root applies to the \"mvtec\" source; this config reads its data from \
                 data.folder / data.manifest",
            ));
        }
        (_, None) => PathBuf::new(),
    };
    let fitted = fit_model(
        &cfg,
        &FitOptions {
            data_root,
            category,
            threshold,
            quiet,
        },
    )?;
    fitted.model.save(model_path)?;
    let header = fitted.model.header()?;
    let size = std::fs::metadata(model_path)
        .map(|m| m.len())
        .unwrap_or_default();
    println!(
        "wrote {} ({:.1} MiB): {} on {} training images of {}, bank {} x {} (of {} rows), fit {:.1} s",
        model_path.display(),
        size as f64 / (1 << 20) as f64,
        header.backbone.arch,
        header.num_train,
        header.dataset,
        header.bank_rows,
        header.feature_dim,
        header.bank_rows_full,
        fitted.stats.extract_seconds + fitted.stats.sample_seconds + fitted.stats.index_seconds
    );
    match &header.threshold {
        Some(t) => println!("threshold {:.6} ({})", t.value, t.source),
        None => println!("no threshold stored: pass --threshold to `fit` or `predict`"),
    }
    Ok(())
}

/// Image files under the given paths: files as given, folders walked recursively (sorted);
/// files that are not images by extension are skipped with a warning.
pub fn collect_images(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| Error::io(dir, e))?
            .map(|e| e.map(|e| e.path()).map_err(|e| Error::io(dir, e)))
            .collect::<Result<_>>()?;
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out)?;
            } else if is_image(&p) {
                out.push(p);
            } else {
                tracing::warn!("skipping non-image file {}", p.display());
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    for p in inputs {
        if p.is_dir() {
            walk(p, &mut out)?;
        } else if p.exists() {
            out.push(p.clone());
        } else {
            return Err(Error::io(
                p,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or folder"),
            ));
        }
    }
    if out.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "no images found under {}",
            inputs
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(out)
}

fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .map(|e| patchcore_data::IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        .unwrap_or(false)
}

/// Decoded images of a chunk (in parallel): the readable ones with their paths, and the
/// errors of the others (reported and skipped; the rest is still scored).
type Decoded = (Vec<PathBuf>, Vec<image::RgbImage>, Vec<(PathBuf, Error)>);

fn decode_chunk(chunk: &[PathBuf], model: &FittedPatchCore) -> Decoded {
    let limits = model.limits();
    // An image a tiled model cannot score (smaller than a tile; another size than
    // per-position banks) is reported like an unreadable one.
    let decoded: Vec<(PathBuf, Result<image::RgbImage>)> = chunk
        .par_iter()
        .map(|p| {
            let img = load_rgb_with(p, &limits).and_then(|img| {
                let (w, h) = img.dimensions();
                model.check_image_size(w, h).map_err(|e| Error::Dataset {
                    path: p.clone(),
                    message: e.to_string(),
                })?;
                Ok(img)
            });
            (p.clone(), img)
        })
        .collect();
    let (mut good, mut images, mut errors) = (Vec::new(), Vec::new(), Vec::new());
    for (p, r) in decoded {
        match r {
            Ok(img) => {
                good.push(p);
                images.push(img);
            }
            Err(e) => errors.push((p, e)),
        }
    }
    (good, images, errors)
}

/// `patchcore predict`: score images with a model file.
#[allow(clippy::too_many_arguments)]
pub fn predict(
    model_path: &Path,
    inputs: &[PathBuf],
    output: Option<&Path>,
    device: Option<String>,
    weights: Option<PathBuf>,
    threshold: Option<f32>,
    quiet: bool,
) -> Result<usize> {
    let device: Option<ComputeDevice> = device.map(|d| d.parse()).transpose()?;
    let mut model = FittedPatchCore::load_with(
        model_path,
        LoadOptions {
            device,
            weights,
            ..Default::default()
        },
    )?;
    let header = model.header()?;
    if let Some(t) = threshold {
        model.set_threshold(Some(patchcore_model::model_file::Threshold {
            value: t,
            source: "user (--threshold)".into(),
        }));
    }
    let paths = collect_images(inputs)?;
    let mut stems: std::collections::HashMap<&std::ffi::OsStr, usize> =
        std::collections::HashMap::new();
    for p in &paths {
        *stems.entry(p.file_stem().unwrap_or_default()).or_default() += 1;
    }
    let bar = Bar::new(quiet);
    bar.start(paths.len() as u64, "scoring");
    let map_dir = output.map(|o| o.join("maps"));
    let mut records = Vec::with_capacity(paths.len());
    let mut failures = 0;
    let stdout = std::io::stdout();
    for chunk in paths.chunks(model.batch_size()) {
        let (good, images, errors) = decode_chunk(chunk, &model);
        for (p, e) in errors {
            failures += 1;
            bar.suspend(&|| eprintln!("error: {e}"));
            records.push(serde_json::json!({
                "path": p.to_string_lossy(),
                "error": e.to_string(),
            }));
        }
        if good.is_empty() {
            bar.advance(chunk.len() as u64);
            continue;
        }
        let preds = model.predict_images(&images)?;
        for ((p, img), pred) in good.iter().zip(&images).zip(preds) {
            let verdict = match model.verdict(pred.score) {
                Some(true) => "anomalous",
                Some(false) => "normal",
                None => "-",
            };
            bar.suspend(&|| {
                let mut out = stdout.lock();
                let _ = writeln!(out, "{}\t{:.6}\t{verdict}", p.display(), pred.score);
            });
            let mut rec = serde_json::json!({
                "path": p.to_string_lossy(),
                "score": pred.score,
                "verdict": verdict,
            });
            if let Some(n) = header.normalized(pred.score) {
                rec["normalized_score"] = serde_json::json!(n);
            }
            if let Some(dir) = &map_dir {
                let unique = stems[p.file_stem().unwrap_or_default()] == 1;
                let name = write_map(&model, dir, p, unique, img, &pred.anomaly_map)?;
                rec["map"] = serde_json::json!(format!("maps/{name}"));
            }
            records.push(rec);
        }
        bar.advance(chunk.len() as u64);
    }
    bar.finish();
    if let Some(o) = output {
        let mut text = String::new();
        for r in &records {
            text.push_str(&r.to_string());
            text.push('\n');
        }
        patchcore_core::io::write_atomic(&o.join("predictions.jsonl"), text.as_bytes())?;
    }
    Ok(failures)
}

/// Writes the heatmap overlay of one image under `dir` (atomically); returns its file name.
fn write_map(
    model: &FittedPatchCore,
    dir: &Path,
    p: &Path,
    unique_stem: bool,
    img: &image::RgbImage,
    map: &ndarray::Array2<f32>,
) -> Result<String> {
    let range = model.score_range().unwrap_or_else(|| {
        let lo = map.iter().copied().fold(f32::INFINITY, f32::min);
        let hi = map.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        (lo, hi)
    });
    let geometry: Geometry = model.geometry();
    // A tiled model's map has the image's own size.
    let png = if model.tiling().is_some() {
        heatmap_overlay(img, map, range)
    } else {
        heatmap_overlay(&geometry.apply_rgb(img), map, range)
    };
    let name = map_name(p, unique_stem);
    let target = dir.join(&name);
    let mut bytes = Vec::new();
    png.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .map_err(|e| Error::External(format!("encoding {}: {e}", target.display())))?;
    patchcore_core::io::write_atomic(&target, &bytes)?;
    Ok(name)
}

/// A unique PNG name for an input: its stem when no other input shares it, else its path with
/// separators flattened, so that images of one name in different folders do not collide.
fn map_name(p: &Path, unique_stem: bool) -> String {
    if unique_stem {
        format!(
            "{}.png",
            p.file_stem().unwrap_or_default().to_string_lossy()
        )
    } else {
        let flat: String = p
            .with_extension("")
            .components()
            .filter_map(|c| match c {
                std::path::Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("__");
        format!("{flat}.png")
    }
}
