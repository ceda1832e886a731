//! The sweep's comparison table, built from the `report.json` of every run: the same code
//! for an in-process sweep and for `patchcore sweep --merge` over runs done elsewhere.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use patchcore_core::io::write_atomic;
use patchcore_core::{Error, Result};
use serde_json::Value;

use super::mixing::{base_config, check_one_sweep};
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
        base: base_config(&v),
        data_sha256: v["provenance"]["data_sha256"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        code_version: format!(
            "patchcore-rs {} ({})",
            v["patchcore_version"].as_str().unwrap_or("?"),
            v["git_revision"].as_str().unwrap_or("?")
        ),
        ci_level: v["protocol"]["ci_level"].as_f64().unwrap_or(0.95),
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

/// The file `patchcore sweep --plan` writes into the runs folder: one expected point id (run
/// folder name) per line.
pub const EXPECTED_POINTS: &str = "expected_points.txt";

/// [`merge`] checked against the plan: for each of `dirs` holding an [`EXPECTED_POINTS`] file
/// (a planned runs folder), every listed point must have a finished report (else an error
/// naming the missing ones, or, with `allow_partial`, a table that lists them), and run
/// folders not in the list are named in a warning and left out. Folders without the file
/// are merged as [`merge`] does.
pub fn merge_planned(dirs: &[PathBuf], plot: &PlotSpec, allow_partial: bool) -> Result<SweepTable> {
    let mut sources: Vec<PathBuf> = Vec::new();
    let mut missing: Vec<String> = Vec::new();
    for d in dirs {
        let list = d.join(EXPECTED_POINTS);
        if !list.is_file() {
            sources.push(d.clone());
            continue;
        }
        let text = std::fs::read_to_string(&list).map_err(|e| Error::io(&list, e))?;
        let expected: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        for id in &expected {
            let run = d.join(id);
            if run.join("report.json").is_file() {
                sources.push(run);
            } else {
                missing.push(run.display().to_string());
            }
        }
        let rd = std::fs::read_dir(d).map_err(|e| Error::io(d, e))?;
        let mut outside: Vec<String> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .filter(|p| {
                let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
                !expected.iter().any(|id| Some(id.to_string()) == name)
            })
            .map(|p| p.display().to_string())
            .collect();
        outside.sort();
        if !outside.is_empty() {
            tracing::warn!(
                "not tabled, outside the plan of {}: {}",
                d.display(),
                outside.join(", ")
            );
        }
    }
    if !missing.is_empty() && !allow_partial {
        return Err(Error::InvalidArgument(format!(
            "{} planned point(s) have no finished report: {} (rerun them, or pass \
             --allow-partial for a table that lists them as missing)",
            missing.len(),
            missing.join(", ")
        )));
    }
    if sources.is_empty() {
        return Err(Error::InvalidArgument(
            "no planned point has a finished report yet".to_string(),
        ));
    }
    let mut table = merge(&sources, plot)?;
    table.missing = missing;
    Ok(table)
}

/// Reads the report.json of every run under `dirs` (each a run folder or a folder of run
/// folders) into one table. Every run must sweep the same keys and share everything else:
/// the non-swept config, the data, the code version and the interval level (see
/// `mixing::check_one_sweep`); the same point found twice is kept once when both reports have the
/// same run hash and refused otherwise.
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
    check_one_sweep(&runs)?;
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
        missing: Vec::new(),
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
        let level = self.runs.first().map_or(0.95, |r| r.ci_level) * 100.0;
        for (name, key) in metric_cols {
            columns.push(Column::num_csv(
                name,
                &[&format!("{key}_mean"), &format!("{key}_std")],
            ));
            if key.ends_with("auroc") {
                columns.push(Column::num_csv(
                    format!("{name} {level:.0}% CI"),
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
             categories first); intervals: {:.0}% stratified bootstrap over test images (one \
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
                .join(", "),
            self.runs.first().map_or(0.95, |r| r.ci_level) * 100.0
        );
        if !self.missing.is_empty() {
            let _ = writeln!(
                s,
                "**Partial table:** {} planned point(s) have no report: {}.\n",
                self.missing.len(),
                self.missing.join(", ")
            );
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A minimal report.json of one run at `sampler.ratio = ratio`.
    fn report(dir: &Path, ratio: f64, k: u64, data: &str, git: &str) -> PathBuf {
        let d = dir.join(format!("r{ratio}-{k}-{data}-{git}"));
        std::fs::create_dir_all(&d).unwrap();
        let v = json!({
            "patchcore_version": "0.1.0",
            "git_revision": git,
            "config": {"sampler": {"ratio": ratio}, "scorer": {"num_neighbors": k}, "seed": 0},
            "overrides": {"sampler.ratio": ratio},
            "seeds": [0],
            "protocol": {"ci_level": 0.95},
            "provenance": {"run_sha256": format!("{ratio}{k}{data}{git}"), "data_sha256": data},
            "categories": {"bottle": {
                "spread": {"image_auroc": {"values": [0.9]}},
                "fit_seconds": 1.0, "infer_ms_per_image": 2.0, "bank_rows": 10.0,
            }},
        });
        std::fs::write(d.join("report.json"), v.to_string()).unwrap();
        d
    }

    #[test]
    fn runs_of_different_base_configs_data_or_code_are_refused_by_name() {
        let t = tempfile::tempdir().unwrap();
        let plot = PlotSpec::default();
        let a = report(t.path(), 0.1, 3, "d1", "g1");
        let b = report(t.path(), 0.2, 3, "d1", "g1");
        let table = merge(&[a.clone(), b], &plot).unwrap();
        assert_eq!(table.runs.len(), 2);
        let other_k = report(t.path(), 0.2, 5, "d1", "g1");
        let e = merge(&[a.clone(), other_k], &plot).unwrap_err().to_string();
        assert!(e.contains("`scorer.num_neighbors` (3 vs 5)"), "{e}");
        let other_data = report(t.path(), 0.2, 3, "d2", "g1");
        let e = merge(&[a.clone(), other_data], &plot)
            .unwrap_err()
            .to_string();
        assert!(e.contains("the data"), "{e}");
        let other_code = report(t.path(), 0.2, 3, "d1", "g2");
        let e = merge(&[a, other_code], &plot).unwrap_err().to_string();
        assert!(e.contains("the code"), "{e}");
    }

    #[test]
    fn a_planned_merge_reports_missing_points_and_leaves_out_foreign_runs() {
        let t = tempfile::tempdir().unwrap();
        let plot = PlotSpec::default();
        let a = report(t.path(), 0.1, 3, "d1", "g1");
        let foreign = report(t.path(), 0.7, 9, "d9", "g9");
        let name = |p: &Path| p.file_name().unwrap().to_string_lossy().into_owned();
        std::fs::write(
            t.path().join(EXPECTED_POINTS),
            format!("{}\nnever-ran\n", name(&a)),
        )
        .unwrap();
        let dirs = [t.path().to_path_buf()];
        let e = merge_planned(&dirs, &plot, false).unwrap_err().to_string();
        assert!(
            e.contains("never-ran") && e.contains("--allow-partial"),
            "{e}"
        );
        // Partial: the foreign run (another config, data and code) is not tabled, which
        // would otherwise be refused as a mixed sweep.
        let table = merge_planned(&dirs, &plot, true).unwrap();
        assert_eq!(table.runs.len(), 1);
        assert_eq!(table.missing.len(), 1);
        assert!(table.to_markdown().contains("Partial table"));
        assert!(merge(&[a, foreign], &plot).is_err());
    }

    #[test]
    fn the_table_prints_the_interval_level_of_the_runs() {
        let t = tempfile::tempdir().unwrap();
        let a = report(t.path(), 0.1, 3, "d1", "g1");
        let text = std::fs::read_to_string(a.join("report.json")).unwrap();
        std::fs::write(a.join("report.json"), text.replace("0.95", "0.9")).unwrap();
        let table = merge(&[a], &PlotSpec::default()).unwrap();
        let md = table.to_markdown();
        assert!(md.contains("90% stratified bootstrap"), "{md}");
        assert!(md.contains("image AUROC 90% CI"), "{md}");
        assert!(!md.contains("95%"), "{md}");
    }
}
