//! `report.json` and `report.md`.

use std::fmt::Write as _;
use std::path::Path;

use patchcore_core::io::write_atomic;
use patchcore_core::{Error, Result};
use serde_json::{Value, json};

use crate::results::{AUPRO_FPR_LIMIT, IntervalReport, Report, Spread};

pub mod html;
pub mod table;

pub use table::{Cell, Column, Table};

/// The JSON document (stable key order).
pub fn to_json(report: &Report) -> Result<Value> {
    let mut cats = serde_json::Map::new();
    for (name, c) in &report.categories {
        let mut v = serde_json::to_value(c).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let per_image: Vec<Value> = c
            .scores
            .iter()
            .enumerate()
            .map(|(i, (p, t, s))| {
                let mut v = json!({"path": p, "defect_type": t, "score": s});
                if c.seed_scores.len() > 1 {
                    let per_seed: Vec<f32> = c.seed_scores.iter().map(|r| r[i]).collect();
                    v.as_object_mut()
                        .expect("object")
                        .insert("scores_per_seed".into(), json!(per_seed));
                }
                v
            })
            .collect();
        v.as_object_mut()
            .expect("object")
            .insert("images".into(), Value::Array(per_image));
        cats.insert(name.clone(), v);
    }
    let mut mean = serde_json::Map::new();
    type Metric = fn(&crate::results::CategoryResult) -> Option<f64>;
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
        "seeds": report.config.run_seeds(),
        "overrides": Value::Object(report.config.overrides.iter().map(|(k, v)| {
            (k.clone(), serde_json::to_value(v).unwrap_or(Value::Null))
        }).collect()),
        "provenance": serde_json::to_value(&report.provenance).map_err(|e| Error::InvalidArgument(e.to_string()))?,
        "mean": mean,
    }))
}

/// The input geometry and where pixel metrics are computed, in words.
pub fn geometry_text(cfg: &patchcore_model::Config) -> String {
    let (r, c) = (cfg.data.resize, cfg.data.crop);
    let where_ = match cfg.data.metrics_resolution {
        patchcore_model::config::MetricsResolution::Crop => {
            format!(
                "masks resized (nearest) and cropped the same way; pixel metrics at the {c}x{c} crop"
            )
        }
        patchcore_model::config::MetricsResolution::Full => format!(
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

/// A metric cell: the mean, `± std` when several seeds ran (CSV: mean and std columns).
pub fn spread_cell(s: Option<&Spread>, fallback: Option<f64>) -> Cell {
    match (s, fallback) {
        (Some(s), _) if s.values.len() > 1 => Cell {
            text: format!("{:.4} ± {:.4}", s.mean, s.std),
            value: Some(s.mean),
            csv: Some(vec![format!("{}", s.mean), format!("{}", s.std)]),
        },
        (Some(s), _) => Cell {
            text: format!("{:.4}", s.mean),
            value: Some(s.mean),
            csv: Some(vec![format!("{}", s.mean), "0".into()]),
        },
        (None, Some(v)) => Cell {
            text: format!("{v:.4}"),
            value: Some(v),
            csv: Some(vec![format!("{v}"), String::new()]),
        },
        (None, None) => Cell {
            csv: Some(vec![String::new(), String::new()]),
            ..Cell::none()
        },
    }
}

/// An interval cell `[lo, hi]` (CSV: lo and hi columns).
pub fn interval_cell(i: Option<&IntervalReport>) -> Cell {
    match i {
        Some(i) => Cell {
            text: format!("[{:.4}, {:.4}]", i.lo, i.hi),
            value: Some(i.lo),
            csv: Some(vec![format!("{}", i.lo), format!("{}", i.hi)]),
        },
        None => Cell {
            csv: Some(vec![String::new(), String::new()]),
            ..Cell::none()
        },
    }
}

/// The per-category results as a table (one row per category and a mean row).
pub fn summary_table(report: &Report) -> Table {
    let level = report.protocol.ci_level * 100.0;
    let mut t = Table {
        columns: vec![
            Column::text("category"),
            Column::num_csv("image AUROC", &["image_auroc_mean", "image_auroc_std"]),
            Column::num_csv(
                format!("image AUROC {level:.0}% CI"),
                &["image_auroc_ci_lo", "image_auroc_ci_hi"],
            ),
            Column::num_csv("pixel AUROC", &["pixel_auroc_mean", "pixel_auroc_std"]),
            Column::num_csv(
                format!("pixel AUROC {level:.0}% CI"),
                &["pixel_auroc_ci_lo", "pixel_auroc_ci_hi"],
            ),
            Column::num_csv("pixel AUPRO@0.3", &["pixel_aupro_mean", "pixel_aupro_std"]),
            Column::num_csv("image AUPR", &["image_aupr_mean", "image_aupr_std"]),
            Column::num_csv("image F1-max", &["image_f1_max_mean", "image_f1_max_std"]),
            Column::num_csv("pixel F1-max", &["pixel_f1_max_mean", "pixel_f1_max_std"]),
            Column::num("train"),
            Column::num("test"),
            Column::num("bank rows"),
            Column::num("fit (s)"),
            Column::num("extract (s)"),
            Column::num("coreset (s)"),
            Column::num("infer (ms/img)"),
        ],
        rows: Vec::new(),
    };
    for (name, c) in &report.categories {
        let m = |k: &str, v: Option<f64>| spread_cell(c.spread.get(k), v);
        t.rows.push(vec![
            Cell::text(name),
            m("image_auroc", Some(c.image_auroc)),
            interval_cell(c.intervals.get("image_auroc")),
            m("pixel_auroc", c.pixel_auroc),
            interval_cell(c.intervals.get("pixel_auroc")),
            m("pixel_aupro", c.pixel_aupro),
            m("image_aupr", Some(c.image_aupr)),
            m("image_f1_max", Some(c.image_f1_max)),
            m("pixel_f1_max", c.pixel_f1_max),
            Cell::num(c.num_train as f64, 0),
            Cell::num(c.num_test as f64, 0),
            Cell {
                text: format!("{} / {}", c.bank_rows, c.bank_rows_full),
                value: Some(c.bank_rows as f64),
                csv: None,
            },
            Cell::num(c.fit_seconds, 1),
            Cell::num(c.extract_seconds, 1),
            Cell::num(c.coreset_seconds, 1),
            Cell::num(c.infer_ms_per_image, 1),
        ]);
    }
    if report.categories.len() > 1 {
        let mean = |f: &dyn Fn(&crate::results::CategoryResult) -> Option<f64>| {
            spread_cell(None, report.mean_of(f))
        };
        let mut row = vec![
            Cell::text("mean"),
            mean(&|c| Some(c.image_auroc)),
            interval_cell(None),
            mean(&|c| c.pixel_auroc),
            interval_cell(None),
            mean(&|c| c.pixel_aupro),
            mean(&|c| Some(c.image_aupr)),
            mean(&|c| Some(c.image_f1_max)),
            mean(&|c| c.pixel_f1_max),
        ];
        row.extend((0..7).map(|_| Cell::text("")));
        t.rows.push(row);
    }
    t
}

/// Per category and seed: the metrics of each run (shown when several seeds ran).
pub fn per_seed_table(report: &Report) -> Option<Table> {
    if report.categories.values().all(|c| c.seeds.len() < 2) {
        return None;
    }
    let mut t = Table {
        columns: vec![
            Column::text("category"),
            Column::num("seed"),
            Column::num("image AUROC"),
            Column::num("pixel AUROC"),
            Column::num("pixel AUPRO@0.3"),
            Column::num("coreset (s)"),
        ],
        rows: Vec::new(),
    };
    for (name, c) in &report.categories {
        for (i, seed) in c.seeds.iter().enumerate() {
            let v = |k: &str, d: usize| {
                c.spread
                    .get(k)
                    .and_then(|s| s.values.get(i))
                    .map(|v| Cell::num(*v, d))
                    .unwrap_or_else(Cell::none)
            };
            t.rows.push(vec![
                Cell::text(name),
                Cell::num(*seed as f64, 0),
                v("image_auroc", 4),
                v("pixel_auroc", 4),
                v("pixel_aupro", 4),
                v("coreset_seconds", 2),
            ]);
        }
    }
    Some(t)
}

/// The low-shot results as a table.
pub fn low_shot_table(report: &Report) -> Option<Table> {
    if report.low_shot.is_empty() {
        return None;
    }
    let level = report.protocol.ci_level * 100.0;
    let mut t = Table {
        columns: vec![
            Column::text("category"),
            Column::num("train images"),
            Column::num("image AUROC"),
            Column::num(format!("image AUROC {level:.0}% CI")),
            Column::num("image F1-max"),
            Column::num("pixel AUROC"),
            Column::num(format!("pixel AUROC {level:.0}% CI")),
            Column::num("pixel AUPRO@0.3"),
            Column::num("fit (s)"),
        ],
        rows: Vec::new(),
    };
    for (name, rows) in &report.low_shot {
        for r in rows {
            t.rows.push(vec![
                Cell::text(name),
                Cell::num(r.shots as f64, 0),
                spread_cell(Some(&r.image_auroc), None),
                interval_cell(r.intervals.get("image_auroc")),
                spread_cell(Some(&r.image_f1_max), None),
                spread_cell(r.pixel_auroc.as_ref(), None),
                interval_cell(r.intervals.get("pixel_auroc")),
                spread_cell(r.pixel_aupro.as_ref(), None),
                Cell::num(r.fit_seconds.mean, 1),
            ]);
        }
    }
    Some(t)
}

/// What ran, in one paragraph (Markdown; inline code in backticks).
fn run_summary(report: &Report) -> String {
    let cfg = &report.config;
    let size = match cfg.sampler.size() {
        Some(patchcore_sampler::SampleSize::Count(c)) => format!("{c} rows"),
        Some(patchcore_sampler::SampleSize::Ratio(r)) => format!("{}%", r * 100.0),
        None => String::new(),
    };
    let projection = match cfg.sampler.projection() {
        Some((projection, always)) => {
            use patchcore_sampler::{ProjDim, Projection};
            let width = |d: ProjDim| match d {
                ProjDim::Fixed(k) => format!("{k} dims"),
                ProjDim::JohnsonLindenstrauss { eps } => format!("JL width at eps {eps}"),
            };
            let always = if always {
                ", even above the feature width"
            } else {
                ""
            };
            match projection {
                Projection::None => "none".to_string(),
                Projection::Gaussian(d) => format!("Gaussian, {}{always}", width(d)),
                Projection::Sparse { dim, density } => format!(
                    "sparse (density {}), {}{always}",
                    density
                        .map(|d| d.to_string())
                        .unwrap_or_else(|| "1/sqrt(d)".into()),
                    width(dim)
                ),
            }
        }
        None => "none".to_string(),
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
    let seeds = cfg.run_seeds();
    let seeds_text = if seeds.len() > 1 {
        format!(
            "seeds {seeds:?} (metrics: mean ± sample standard deviation over seeds; features \
             extracted once, one coreset and index per seed)"
        )
    } else {
        format!("seed {}", seeds[0])
    };
    format!(
        "Backbone {backbones}; sampler `{}` {size} (projection {projection}), eq. 7 k = {}, \
         sigma {}, device `{}`, {} threads, {seeds_text}. Input: {geometry}. Intervals: {:.0}% \
         stratified percentile bootstrap over test images, {} resamples (seed {}), for the \
         seed mean.",
        cfg.sampler.kind(),
        cfg.scorer.num_neighbors,
        cfg.scorer.sigma,
        cfg.device,
        rayon::current_num_threads(),
        report.protocol.ci_level * 100.0,
        report.protocol.bootstrap_resamples,
        cfg.seed,
        geometry = geometry_text(cfg),
    )
}

/// The Markdown summary.
pub fn to_markdown(report: &Report) -> String {
    let mut s = String::new();
    let cfg = &report.config;
    let _ = writeln!(s, "# PatchCore evaluation\n");
    for b in report.backbones.iter().filter(|b| !b.pretrained) {
        let _ = writeln!(
            s,
            "> **WARNING: `{}` ran on {}.** These numbers test the plumbing, not PatchCore.\n",
            b.arch, b.weights_file
        );
    }
    let _ = writeln!(s, "{}\n", run_summary(report));
    if !report.categories.is_empty() {
        s.push_str(&summary_table(report).to_markdown());
    }
    for (name, c) in &report.categories {
        if let Some(why) = &c.pixel_metrics_absent {
            let _ = writeln!(s, "\nPixel metrics of `{name}` are absent: {why}.");
        }
    }
    if let Some(t) = per_seed_table(report) {
        let _ = writeln!(s, "\n## Per seed\n");
        s.push_str(&t.to_markdown());
    }
    if let Some(t) = low_shot_table(report) {
        let _ = writeln!(
            s,
            "\n## Low-shot protocol\n\nMean ± sample standard deviation over seeds {:?} ({} selection); the test split is always whole.\n",
            report.protocol.low_shot_seeds(cfg),
            serde_json::to_value(report.protocol.selection)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        );
        s.push_str(&t.to_markdown());
    }
    for b in &report.backbones {
        let _ = writeln!(s, "\nWeights of `{}`: `{}`.", b.arch, b.weights_file);
    }
    s
}

/// Flattens a JSON value into `(dotted key, value)` pairs (arrays of scalars stay whole).
pub(crate) fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        Value::Array(a) if a.iter().any(|x| x.is_object()) => {
            for (i, v) in a.iter().enumerate() {
                flatten(&format!("{prefix}[{i}]"), v, out);
            }
        }
        Value::Null => {}
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

/// The HTML summary: the run paragraph, the results tables and the config as a table.
pub fn summary_html(report: &Report) -> Result<String> {
    let mut s = String::new();
    for b in report.backbones.iter().filter(|b| !b.pretrained) {
        let _ = writeln!(
            s,
            "<p class=\"warn\"><strong>WARNING: {} ran on {}.</strong> These numbers test the \
             plumbing, not PatchCore.</p>",
            html::esc(&b.arch),
            html::esc(&b.weights_file)
        );
    }
    let _ = writeln!(s, "<p>{}</p>", html::inline_code(&run_summary(report)));
    if !report.categories.is_empty() {
        s.push_str(&summary_table(report).to_html("summary", true));
    }
    for (name, c) in &report.categories {
        if let Some(why) = &c.pixel_metrics_absent {
            let _ = writeln!(
                s,
                "<p class=\"note\">Pixel metrics of {} are absent: {}.</p>",
                html::esc(name),
                html::esc(why)
            );
        }
    }
    if let Some(t) = per_seed_table(report) {
        s.push_str("<h2>Per seed</h2>");
        s.push_str(&t.to_html("per-seed", true));
    }
    if let Some(t) = low_shot_table(report) {
        s.push_str("<h2>Low-shot protocol</h2>");
        s.push_str(&t.to_html("low-shot", true));
    }
    let cfg =
        serde_json::to_value(&report.config).map_err(|e| Error::InvalidArgument(e.to_string()))?;
    let mut pairs = Vec::new();
    flatten("", &cfg, &mut pairs);
    let config = Table {
        columns: vec![Column::text("config key"), Column::text("value")],
        rows: pairs
            .into_iter()
            .map(|(k, v)| vec![Cell::text(k), Cell::text(v)])
            .collect(),
    };
    s.push_str("<details><summary>Config</summary>");
    s.push_str(&config.to_html("config", false));
    s.push_str("</details>");
    Ok(s)
}

/// Writes `report.json`, `report.md` and `report.html` into `dir` atomically.
pub fn write(report: &Report, dir: &Path) -> Result<()> {
    let json = to_json(report)?;
    let text =
        serde_json::to_string_pretty(&json).map_err(|e| Error::InvalidArgument(e.to_string()))?;
    write_atomic(&dir.join("report.json"), format!("{text}\n").as_bytes())?;
    let md = to_markdown(report);
    write_atomic(&dir.join("report.md"), md.as_bytes())?;
    for (rel, bytes) in report.categories.values().flat_map(|c| &c.overlay_files) {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        write_atomic(&path, bytes)?;
    }
    let sections: Vec<String> = report.categories.values().map(|c| c.html.clone()).collect();
    write_atomic(
        &dir.join("report.html"),
        html::page(&summary_html(report)?, &sections).as_bytes(),
    )?;
    Ok(())
}
