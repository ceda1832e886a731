//! The sweep's comparison table, built from the `report.json` of every run: the same code
//! for an in-process sweep and for `patchcore sweep --merge` over runs done elsewhere.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use patchcore_core::io::write_atomic;
use patchcore_core::{Error, Result};
use serde_json::Value;

use super::table::{PlotSpec, RunRow, SweepTable, show};
use crate::report::{Cell, Column, Table};
use crate::results::Spread;

/// Every `report.json` under `dir` (the folder itself and up to three levels below).
fn reports_under(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> Result<()> {
    let here = dir.join("report.json");
    if here.is_file() {
        out.push(here);
        return Ok(());
    }
    if depth == 0 {
        return Ok(());
    }
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut subs: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    subs.sort();
    for s in subs {
        reports_under(&s, depth - 1, out)?;
    }
    Ok(())
}

fn bad(path: &Path, what: &str) -> Error {
    Error::Dataset {
        path: path.to_path_buf(),
        message: format!("not a report.json of `patchcore evaluate`: {what}"),
    }
}

fn read_run(path: &Path) -> Result<RunRow> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let v: Value = serde_json::from_str(&text).map_err(|e| bad(path, &e.to_string()))?;
    let point: Vec<(String, Value)> = v["overrides"]
        .as_object()
        .ok_or_else(|| bad(path, "no `overrides`"))?
        .iter()
        .filter(|(k, _)| k.as_str() != "seeds")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let seeds: Vec<u64> = v["seeds"]
        .as_array()
        .ok_or_else(|| bad(path, "no `seeds`"))?
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    let cats = v["categories"]
        .as_object()
        .ok_or_else(|| bad(path, "no standard-protocol `categories`"))?;
    if cats.is_empty() {
        return Err(bad(
            path,
            "no standard-protocol categories (low-shot runs are not tabled)",
        ));
    }
    let mut metrics = BTreeMap::new();
    for m in super::PLOT_METRICS {
        // Per seed: the mean over the categories that have the metric.
        let per_cat: Vec<Vec<f64>> = cats
            .values()
            .filter_map(|c| c["spread"][m]["values"].as_array())
            .map(|a| a.iter().filter_map(Value::as_f64).collect())
            .collect();
        if per_cat.is_empty() {
            continue;
        }
        let per_seed: Vec<f64> = (0..seeds.len())
            .map(|i| per_cat.iter().filter_map(|c| c.get(i)).sum::<f64>() / per_cat.len() as f64)
            .collect();
        if let Some(s) = Spread::of(per_seed) {
            metrics.insert(m.to_string(), s);
        }
    }
    let mut intervals = BTreeMap::new();
    if cats.len() == 1 {
        let c = cats.values().next().expect("one");
        for m in ["image_auroc", "pixel_auroc"] {
            if let (Some(lo), Some(hi)) = (
                c["intervals"][m]["lo"].as_f64(),
                c["intervals"][m]["hi"].as_f64(),
            ) {
                intervals.insert(m.to_string(), (lo, hi));
            }
        }
    }
    let sum = |k: &str| cats.values().filter_map(|c| c[k].as_f64()).sum::<f64>();
    let n = cats.len() as f64;
    Ok(RunRow {
        point,
        seeds,
        categories: cats.keys().cloned().collect(),
        metrics,
        intervals,
        fit_seconds: sum("fit_seconds"),
        predict_ms: sum("infer_ms_per_image") / n,
        bank_rows: sum("bank_rows") / n,
        run_sha256: v["provenance"]["run_sha256"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        report: path.to_path_buf(),
    })
}

/// Orders JSON values: numbers by value, then everything else by its text.
fn cmp_values(a: &Value, b: &Value) -> std::cmp::Ordering {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.to_string().cmp(&b.to_string()),
    }
}

/// Reads the report.json of every run under `dirs` (each a run folder or a folder of run
/// folders) into one table. Every run must sweep the same keys; the same point found twice
/// is kept once when both reports have the same run hash and refused otherwise.
pub fn merge(dirs: &[PathBuf], plot: &PlotSpec) -> Result<SweepTable> {
    let mut files = Vec::new();
    for d in dirs {
        reports_under(d, 3, &mut files)?;
    }
    if files.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "no report.json under {}",
            dirs.iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let mut runs: Vec<RunRow> = files.iter().map(|f| read_run(f)).collect::<Result<_>>()?;
    let keys: Vec<String> = runs[0].point.iter().map(|(k, _)| k.clone()).collect();
    for r in &runs {
        let k: Vec<&String> = r.point.iter().map(|(k, _)| k).collect();
        if k != keys.iter().collect::<Vec<_>>() {
            return Err(Error::InvalidArgument(format!(
                "{} sweeps {:?} but {} sweeps {:?}: merge runs of one sweep",
                r.report.display(),
                k,
                runs[0].report.display(),
                keys
            )));
        }
    }
    runs.sort_by(|a, b| {
        a.point
            .iter()
            .zip(&b.point)
            .map(|((_, x), (_, y))| cmp_values(x, y))
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let mut deduped: Vec<RunRow> = Vec::with_capacity(runs.len());
    for r in runs {
        if let Some(prev) = deduped.last()
            && prev.point == r.point
        {
            if prev.run_sha256 == r.run_sha256 {
                continue;
            }
            return Err(Error::InvalidArgument(format!(
                "{} and {} are the same sweep point with different config, data or weights \
                 hashes",
                prev.report.display(),
                r.report.display()
            )));
        }
        deduped.push(r);
    }
    let mut plot = plot.clone();
    plot.x = plot.x.or_else(|| keys.first().cloned());
    plot.series = plot
        .series
        .or_else(|| keys.iter().find(|k| Some(*k) != plot.x.as_ref()).cloned());
    Ok(SweepTable {
        keys,
        runs: deduped,
        plot,
    })
}

impl SweepTable {
    /// The comparison table: swept values, metrics as mean ± std over seeds, the AUROC
    /// intervals, fit time, predict time and bank rows.
    pub fn table(&self) -> Table {
        let mut columns: Vec<Column> = self.keys.iter().map(Column::text).collect();
        let metric_cols = [
            ("image AUROC", "image_auroc"),
            ("pixel AUROC", "pixel_auroc"),
            ("pixel AUPRO@0.3", "pixel_aupro"),
            ("image F1-max", "image_f1_max"),
        ];
        for (name, key) in metric_cols {
            columns.push(Column::num_csv(
                name,
                &[&format!("{key}_mean"), &format!("{key}_std")],
            ));
            if key.ends_with("auroc") {
                columns.push(Column::num_csv(
                    format!("{name} 95% CI"),
                    &[&format!("{key}_ci_lo"), &format!("{key}_ci_hi")],
                ));
            }
        }
        columns.extend([
            Column::text("seeds"),
            Column::num("bank rows"),
            Column::num("fit (s)"),
            Column::num("predict (ms/img)"),
        ]);
        let rows = self
            .runs
            .iter()
            .map(|r| {
                let mut row: Vec<Cell> = r
                    .point
                    .iter()
                    .map(|(_, v)| Cell {
                        text: show(v),
                        value: v.as_f64(),
                        csv: None,
                    })
                    .collect();
                for (_, key) in metric_cols {
                    row.push(crate::report::spread_cell(r.metrics.get(key), None));
                    if key.ends_with("auroc") {
                        row.push(match r.intervals.get(key) {
                            Some((lo, hi)) => Cell {
                                text: format!("[{lo:.4}, {hi:.4}]"),
                                value: Some(*lo),
                                csv: Some(vec![format!("{lo}"), format!("{hi}")]),
                            },
                            None => Cell {
                                csv: Some(vec![String::new(), String::new()]),
                                ..Cell::none()
                            },
                        });
                    }
                }
                row.push(Cell::text(
                    r.seeds
                        .iter()
                        .map(u64::to_string)
                        .collect::<Vec<_>>()
                        .join(" "),
                ));
                row.push(Cell::num(r.bank_rows, 0));
                row.push(Cell::num(r.fit_seconds, 1));
                row.push(Cell::num(r.predict_ms, 1));
                row
            })
            .collect();
        Table { columns, rows }
    }

    /// The Markdown page.
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        let cats: Vec<&String> = self.runs.iter().flat_map(|r| &r.categories).collect();
        let mut cats: Vec<&String> = cats;
        cats.sort();
        cats.dedup();
        let _ = writeln!(
            s,
            "# PatchCore sweep\n\n{} runs over {}; categories: {}. Metrics: mean ± sample \
             standard deviation over each run's seeds (per-seed values averaged over the \
             categories first); intervals: 95% stratified bootstrap over test images (one \
             category only).\n",
            self.runs.len(),
            self.keys
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(" x "),
            cats.iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        s.push_str(&self.table().to_markdown());
        let _ = writeln!(
            s,
            "\nThe plot ({} against `{}`, one line per `{}`) is in sweep.html.",
            self.plot.metric,
            self.plot.x.as_deref().unwrap_or("-"),
            self.plot.series.as_deref().unwrap_or("-")
        );
        s
    }

    /// The HTML page: the sortable table and the plot.
    pub fn to_html(&self) -> String {
        let md_intro = self.to_markdown();
        let intro = md_intro.lines().nth(2).unwrap_or_default();
        format!(
            r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>PatchCore sweep</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; font-size: 13px; margin: 0.5em 0 1em; }}
th, td {{ border: 1px solid #ccc; padding: 3px 7px; }}
th {{ background: #f0f0f0; cursor: pointer; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
</style></head><body>
<h1>PatchCore sweep</h1>
<p>{}</p>
{}
<h2>{} against {}</h2>
{}
</body></html>
"#,
            crate::report::html::inline_code(intro),
            self.table().to_html("sweep", true),
            self.plot.metric,
            self.plot.x.as_deref().unwrap_or("-"),
            super::plot::svg(self),
        )
    }
}

/// Writes `sweep.md`, `sweep.html` and `sweep.csv` into `dir` atomically.
pub fn write_tables(table: &SweepTable, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    write_atomic(&dir.join("sweep.md"), table.to_markdown().as_bytes())?;
    write_atomic(&dir.join("sweep.html"), table.to_html().as_bytes())?;
    write_atomic(&dir.join("sweep.csv"), table.table().to_csv().as_bytes())?;
    Ok(())
}
