//! `report.json` and `report.md`.

use std::fmt::Write as _;
use std::path::Path;

use patchcore_core::io::write_atomic;
use patchcore_core::{Error, Result};
use serde_json::{Value, json};

use crate::results::{AUPRO_FPR_LIMIT, Report, Spread};

pub mod html;

/// The JSON document (stable key order).
pub fn to_json(report: &Report) -> Result<Value> {
    let mut cats = serde_json::Map::new();
    for (name, c) in &report.categories {
        let mut v = serde_json::to_value(c).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let per_image: Vec<Value> = c
            .scores
            .iter()
            .map(|(p, t, s)| json!({"path": p, "defect_type": t, "score": s}))
            .collect();
        v.as_object_mut()
            .expect("object")
            .insert("images".into(), Value::Array(per_image));
        cats.insert(name.clone(), v);
    }
    let mut mean = serde_json::Map::new();
    type Metric = fn(&crate::CategoryResult) -> Option<f64>;
    let metrics: [(&str, Metric); 7] = [
        ("image_auroc", |c| Some(c.image_auroc)),
        ("image_aupr", |c| Some(c.image_aupr)),
        ("image_f1_max", |c| Some(c.image_f1_max)),
        ("pixel_auroc", |c| c.pixel_auroc),
        ("pixel_aupr", |c| c.pixel_aupr),
        ("pixel_f1_max", |c| c.pixel_f1_max),
        ("pixel_aupro", |c| c.pixel_aupro),
    ];
    for (name, metric) in metrics {
        if let Some(v) = report.mean_of(metric) {
            mean.insert(name.into(), json!(v));
        }
    }
    Ok(json!({
        "patchcore_version": env!("CARGO_PKG_VERSION"),
        "git_revision": env!("PATCHCORE_GIT_REV"),
        "peak_rss_bytes": peak_rss_bytes(),
        "aupro_fpr_limit": AUPRO_FPR_LIMIT,
        "config": serde_json::to_value(&report.config).map_err(|e| Error::InvalidArgument(e.to_string()))?,
        "seed": report.config.seed,
        "device": report.config.device.to_string(),
        "threads": rayon::current_num_threads(),
        "data_root": report.data_root,
        "geometry": geometry_text(&report.config),
        "backbones": serde_json::to_value(&report.backbones).map_err(|e| Error::InvalidArgument(e.to_string()))?,
        "categories": Value::Object(cats),
        "low_shot": serde_json::to_value(&report.low_shot).map_err(|e| Error::InvalidArgument(e.to_string()))?,
        "mean": mean,
    }))
}

/// The input geometry and where pixel metrics are computed, in words.
pub fn geometry_text(cfg: &crate::Config) -> String {
    let (r, c) = (cfg.data.resize, cfg.data.crop);
    let where_ = match cfg.data.metrics_resolution {
        crate::config::MetricsResolution::Crop => {
            format!(
                "masks resized (nearest) and cropped the same way; pixel metrics at the {c}x{c} crop"
            )
        }
        crate::config::MetricsResolution::Full => format!(
            "pixel metrics at each image's original resolution: maps placed in the {r}x{r} frame \
             (border = nearest map value) and resized bilinearly, against the original masks"
        ),
    };
    format!("resize {r}x{r} (bilinear), centre crop {c}x{c}; {where_}")
}

/// Peak resident memory of this process (Linux `VmHWM`), if known.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The Markdown summary.
pub fn to_markdown(report: &Report) -> String {
    let mut s = String::new();
    let cfg = &report.config;
    let size = match cfg.sampler.size() {
        Some(patchcore_sampler::SampleSize::Count(c)) => format!("{c} rows"),
        Some(patchcore_sampler::SampleSize::Ratio(r)) => format!("{}%", r * 100.0),
        None => String::new(),
    };
    let projection = match &cfg.sampler {
        patchcore_sampler::SamplerParams::GreedyCoreset(p)
        | patchcore_sampler::SamplerParams::ApproximateGreedyCoreset(p) => match p.projection() {
            patchcore_sampler::Projection::None => "none".to_string(),
            p => format!("{p:?}"),
        },
        _ => "none".to_string(),
    };
    let backbones = report
        .backbones
        .iter()
        .map(|b| {
            format!(
                "`{}` layers {:?} (weights SHA-256 `{}`)",
                b.arch,
                b.layers,
                &b.sha256_short()
            )
        })
        .collect::<Vec<_>>()
        .join(" + ");
    let _ = writeln!(s, "# PatchCore evaluation\n");
    for b in report.backbones.iter().filter(|b| !b.pretrained) {
        let _ = writeln!(
            s,
            "> **WARNING: `{}` ran on {}.** These numbers test the plumbing, not PatchCore.\n",
            b.arch, b.weights_file
        );
    }
    let _ = writeln!(
        s,
        "Backbone {backbones}; sampler `{}` {size} (projection {projection}), \
         eq. 7 k = {}, sigma {}, device `{}`, {} threads, seed {}. Input: {geometry}.\n",
        cfg.sampler.kind(),
        cfg.scorer.num_neighbors,
        cfg.scorer.sigma,
        cfg.device,
        rayon::current_num_threads(),
        cfg.seed,
        geometry = geometry_text(cfg),
    );
    let _ = writeln!(
        s,
        "| category | image AUROC | image AUPR | image F1-max | pixel AUROC | pixel AUPRO@0.3 | pixel F1-max | train | test | bank rows | fit (s) | extract (s) | coreset (s) | infer (ms/img) |"
    );
    let _ = writeln!(
        s,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let opt = |v: Option<f64>| v.map(|p| format!("{p:.4}")).unwrap_or_else(|| "—".into());
    for (name, c) in &report.categories {
        let _ = writeln!(
            s,
            "| {name} | {:.4} | {:.4} | {:.4} | {} | {} | {} | {} | {} | {} / {} | {:.1} | {:.1} | {:.1} | {:.1} |",
            c.image_auroc,
            c.image_aupr,
            c.image_f1_max,
            opt(c.pixel_auroc),
            opt(c.pixel_aupro),
            opt(c.pixel_f1_max),
            c.num_train,
            c.num_test,
            c.bank_rows,
            c.bank_rows_full,
            c.fit_seconds,
            c.extract_seconds,
            c.coreset_seconds,
            c.infer_ms_per_image
        );
    }
    let bold = |v: Option<f64>| {
        v.map(|p| format!("**{p:.4}**"))
            .unwrap_or_else(|| "—".into())
    };
    let _ = writeln!(
        s,
        "| **mean** | {} | {} | {} | {} | {} | {} | | | | | | | |",
        bold(report.mean_of(|c| Some(c.image_auroc))),
        bold(report.mean_of(|c| Some(c.image_aupr))),
        bold(report.mean_of(|c| Some(c.image_f1_max))),
        bold(report.mean_of(|c| c.pixel_auroc)),
        bold(report.mean_of(|c| c.pixel_aupro)),
        bold(report.mean_of(|c| c.pixel_f1_max)),
    );
    for (name, c) in &report.categories {
        if let Some(why) = &c.pixel_metrics_absent {
            let _ = writeln!(s, "\nPixel metrics of `{name}` are absent: {why}.");
        }
    }
    if !report.low_shot.is_empty() {
        let _ = writeln!(
            s,
            "\n## Low-shot protocol\n\nMean ± sample standard deviation over seeds {:?} ({} selection); the test split is always whole.\n",
            cfg.protocol.seeds,
            serde_json::to_value(cfg.protocol.selection)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        );
        let _ = writeln!(
            s,
            "| category | train images | image AUROC | image F1-max | pixel AUROC | pixel AUPRO@0.3 | fit (s) |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|");
        let pm = |v: &Spread| format!("{:.4} ± {:.4}", v.mean, v.std);
        for (name, rows) in &report.low_shot {
            for r in rows {
                let _ = writeln!(
                    s,
                    "| {name} | {} | {} | {} | {} | {} | {:.1} |",
                    r.shots,
                    pm(&r.image_auroc),
                    pm(&r.image_f1_max),
                    r.pixel_auroc.as_ref().map(pm).unwrap_or_else(|| "—".into()),
                    r.pixel_aupro.as_ref().map(pm).unwrap_or_else(|| "—".into()),
                    r.fit_seconds.mean
                );
            }
        }
    }
    for b in &report.backbones {
        let _ = writeln!(s, "\nWeights of `{}`: `{}`.", b.arch, b.weights_file);
    }
    s
}

/// Writes `report.json`, `report.md` and `report.html` into `dir` atomically.
pub fn write(report: &Report, dir: &Path) -> Result<()> {
    let json = to_json(report)?;
    let text =
        serde_json::to_string_pretty(&json).map_err(|e| Error::InvalidArgument(e.to_string()))?;
    write_atomic(&dir.join("report.json"), format!("{text}\n").as_bytes())?;
    let md = to_markdown(report);
    write_atomic(&dir.join("report.md"), md.as_bytes())?;
    let sections: Vec<String> = report.categories.values().map(|c| c.html.clone()).collect();
    write_atomic(
        &dir.join("report.html"),
        html::page(&md, &sections).as_bytes(),
    )?;
    Ok(())
}
