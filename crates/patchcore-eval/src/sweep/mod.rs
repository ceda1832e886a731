//! Sweeps: a grid over any config keys, each point a full evaluation (all its seeds), run in
//! this process with resume, or written as one self-contained command per point for any
//! scheduler (GNU parallel, a Slurm array, a Kubernetes Job) and merged afterwards. Both
//! paths build the comparison table from the runs' `report.json` files ([`merge`]).
//!
//! A sweep is the `[sweep]` section of a config file:
//!
//! ```toml
//! [sweep]
//! "sampler.ratio" = [0.01, 0.1]          # any dotted config key, a list of values
//! "aggregator.neighbourhood" = [1, 3]
//! plot = { x = "sampler.ratio", series = "aggregator.neighbourhood", metric = "image_auroc" }
//! ```
//!
//! The runs are the cartesian product of the lists, in the order the keys are written (the
//! last key varies fastest). Every other key comes from the rest of the file; `seeds = [..]`
//! (or `--seeds`) gives each run its seeds.

mod merge;
mod mixing;
mod plot;
mod table;

use std::path::{Path, PathBuf};

use patchcore_core::{Error, Result};

use patchcore_model::Config;

use crate::protocol::{EvaluateOptions, evaluate, open_categories};
use crate::provenance::provenance;

pub use merge::{EXPECTED_POINTS, merge, merge_planned, write_tables};
pub use table::{PlotSpec, RunRow, SweepTable};

/// One swept key and its values.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepAxis {
    /// Dotted config key (`sampler.ratio`).
    pub key: String,
    /// Its values, in order.
    pub values: Vec<toml::Value>,
}

/// A sweep: the axes of the grid and the plot.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SweepSpec {
    /// Swept keys, in the order written.
    pub axes: Vec<SweepAxis>,
    /// The plot.
    pub plot: PlotSpec,
}

/// One point of the grid: the overrides that make its config.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepPoint {
    /// `(key, value)` per axis, in axis order.
    pub overrides: Vec<(String, toml::Value)>,
}

/// A TOML value as the sweep shows it (strings without quotes).
pub fn value_text(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl SweepPoint {
    /// A folder name for the run: `key=value` pairs joined by `__`, characters outside
    /// `[A-Za-z0-9._=+-]` replaced by `_`. Where that changed anything (or a value holds
    /// `__`), `~` and 8 hex digits of the SHA-256 of the unescaped name follow, so values such
    /// as `a/b` and `a_b` get different folders.
    pub fn id(&self) -> String {
        let raw = self
            .overrides
            .iter()
            .map(|(k, v)| format!("{k}={}", value_text(v)))
            .collect::<Vec<_>>()
            .join("__");
        let safe: String = raw
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._=+-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let ambiguous = self
            .overrides
            .iter()
            .any(|(_, v)| value_text(v).contains("__"));
        if safe == raw && !ambiguous {
            return safe;
        }
        use sha2::Digest as _;
        let h = sha2::Sha256::digest(raw.as_bytes());
        format!("{safe}~{:02x}{:02x}{:02x}{:02x}", h[0], h[1], h[2], h[3])
    }
}

const PLOT_METRICS: [&str; 7] = [
    "image_auroc",
    "image_aupr",
    "image_f1_max",
    "pixel_auroc",
    "pixel_aupr",
    "pixel_f1_max",
    "pixel_aupro",
];

fn flatten_axes(prefix: &str, t: &toml::Table, out: &mut Vec<SweepAxis>) -> Result<()> {
    for (k, v) in t {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(sub) => flatten_axes(&key, sub, out)?,
            toml::Value::Array(a) if !a.is_empty() => out.push(SweepAxis {
                key,
                values: a.clone(),
            }),
            _ => {
                return Err(Error::config(
                    format!("sweep.{key}"),
                    "give a non-empty list of values, e.g. \"sampler.ratio\" = [0.01, 0.1]",
                ));
            }
        }
    }
    Ok(())
}

impl SweepSpec {
    /// The `[sweep]` section of a config file's text.
    pub fn from_toml_str(text: &str) -> Result<Self> {
        let doc: toml::Table =
            toml::from_str(text).map_err(|e| Error::config("<toml>", e.to_string()))?;
        let Some(sweep) = doc.get("sweep") else {
            return Err(Error::config(
                "sweep",
                "the config has no [sweep] section listing the keys to sweep",
            ));
        };
        let mut sweep = sweep
            .as_table()
            .ok_or_else(|| Error::config("sweep", "must be a table"))?
            .clone();
        let mut plot = PlotSpec::default();
        if let Some(p) = sweep.remove("plot") {
            let p = p
                .as_table()
                .ok_or_else(|| Error::config("sweep.plot", "must be a table"))?;
            for (k, v) in p {
                let s = v
                    .as_str()
                    .ok_or_else(|| Error::config(format!("sweep.plot.{k}"), "must be a string"))?
                    .to_string();
                match k.as_str() {
                    "x" => plot.x = Some(s),
                    "series" => plot.series = Some(s),
                    "metric" => plot.metric = s,
                    _ => {
                        return Err(Error::config(
                            format!("sweep.plot.{k}"),
                            "unknown key (x, series, metric)",
                        ));
                    }
                }
            }
        }
        let mut axes = Vec::new();
        flatten_axes("", &sweep, &mut axes)?;
        if axes.is_empty() {
            return Err(Error::config("sweep", "list at least one key to sweep"));
        }
        let spec = Self { axes, plot };
        spec.validate()?;
        Ok(spec)
    }

    /// Reads the `[sweep]` section of a config file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_toml_str(&text)
    }

    fn validate(&self) -> Result<()> {
        for (name, key) in [("x", &self.plot.x), ("series", &self.plot.series)] {
            if let Some(k) = key
                && !self.axes.iter().any(|a| &a.key == k)
            {
                return Err(Error::config(
                    format!("sweep.plot.{name}"),
                    format!("`{k}` is not a swept key"),
                ));
            }
        }
        if !PLOT_METRICS.contains(&self.plot.metric.as_str()) {
            return Err(Error::config(
                "sweep.plot.metric",
                format!("`{}`: one of {PLOT_METRICS:?}", self.plot.metric),
            ));
        }
        Ok(())
    }

    /// The grid: every combination of the axes' values, the last axis varying fastest.
    pub fn points(&self) -> Vec<SweepPoint> {
        let mut points = vec![SweepPoint { overrides: vec![] }];
        for axis in &self.axes {
            points = points
                .into_iter()
                .flat_map(|p| {
                    axis.values.iter().map(move |v| {
                        let mut o = p.overrides.clone();
                        o.push((axis.key.clone(), v.clone()));
                        SweepPoint { overrides: o }
                    })
                })
                .collect();
        }
        points
    }
}

/// Where and on what a sweep runs.
#[derive(Debug, Clone)]
pub struct SweepOptions {
    /// The config file holding the `[sweep]` section.
    pub config: PathBuf,
    /// Folder holding MVTec AD categories (`data.source = "mvtec"`).
    pub data_root: PathBuf,
    /// Categories to run (empty = all under the data root).
    pub categories: Vec<String>,
    /// The sweep folder: `runs/<point id>/` per run, the tables at the top.
    pub output: PathBuf,
    /// Seeds of every run, overriding the config's.
    pub seeds: Option<Vec<u64>>,
    /// No progress bars.
    pub quiet: bool,
}

impl SweepOptions {
    fn overrides(&self, point: &SweepPoint) -> Vec<(String, toml::Value)> {
        let mut o = point.overrides.clone();
        o.extend(self.seeds.as_deref().map(seeds_override));
        o
    }

    /// The run folder of a point.
    pub fn run_dir(&self, point: &SweepPoint) -> PathBuf {
        self.output.join("runs").join(point.id())
    }
}

/// What an in-process sweep did.
#[derive(Debug, Clone)]
pub struct SweepOutcome {
    /// The comparison table.
    pub table: SweepTable,
    /// Runs evaluated now.
    pub ran: usize,
    /// Runs skipped because a finished report with the same run hash was there.
    pub resumed: usize,
}

/// The run hash a finished report in `dir` records, if any.
fn finished_run_hash(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("report.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["provenance"]["run_sha256"].as_str().map(str::to_string)
}

/// Runs every point of the grid in this process, skipping a point whose run folder holds a
/// finished report with the same config, data and weights hashes, then writes the tables
/// (`sweep.md`, `sweep.html`, `sweep.csv`) into the sweep folder.
pub fn run_sweep(spec: &SweepSpec, opts: &SweepOptions) -> Result<SweepOutcome> {
    let points = spec.points();
    // Build and validate every config before running any point.
    let configs: Vec<Config> = points
        .iter()
        .map(|p| Config::from_file_with(&opts.config, &opts.overrides(p)))
        .collect::<Result<_>>()?;
    let (mut ran, mut resumed) = (0, 0);
    for (i, (point, cfg)) in points.iter().zip(&configs).enumerate() {
        let dir = opts.run_dir(point);
        let eval_opts = EvaluateOptions {
            data_root: opts.data_root.clone(),
            categories: opts.categories.clone(),
            output: Some(dir.clone()),
            quiet: opts.quiet,
        };
        let cats = open_categories(cfg, &eval_opts)?;
        let hash = provenance(cfg, &cats)?.run_sha256;
        if finished_run_hash(&dir).as_deref() == Some(hash.as_str()) {
            tracing::info!(run = %point.id(), "finished earlier with the same config, data, weights and code: skipped");
            resumed += 1;
            continue;
        }
        tracing::info!(run = %point.id(), "sweep run {}/{}", i + 1, points.len());
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        evaluate(cfg, &eval_opts)?;
        ran += 1;
    }
    let table = merge_grid(&points, opts, &spec.plot)?;
    write_tables(&table, &opts.output)?;
    Ok(SweepOutcome {
        table,
        ran,
        resumed,
    })
}

/// The table of the grid's own run folders: a folder under `runs/` that is no point of the
/// grid (left from an earlier grid) is listed in the log, not tabled; a point without a
/// finished report is an error naming it.
fn merge_grid(points: &[SweepPoint], opts: &SweepOptions, plot: &PlotSpec) -> Result<SweepTable> {
    let dirs: Vec<PathBuf> = points.iter().map(|p| opts.run_dir(p)).collect();
    let missing: Vec<String> = dirs
        .iter()
        .filter(|d| !d.join("report.json").is_file())
        .map(|d| d.display().to_string())
        .collect();
    if !missing.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "grid points without a finished report: {}",
            missing.join(", ")
        )));
    }
    let runs = opts.output.join("runs");
    if let Ok(rd) = std::fs::read_dir(&runs) {
        let mut outside: Vec<String> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir() && !dirs.contains(p))
            .map(|p| p.display().to_string())
            .collect();
        outside.sort();
        if !outside.is_empty() {
            tracing::warn!(
                "not tabled, outside this sweep's grid: {}",
                outside.join(", ")
            );
        }
    }
    merge(&dirs, plot)
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/=+,:@".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).map_err(|e| Error::io(p, e))
}

/// One self-contained shell command per point: `patchcore evaluate` with the point's
/// overrides (`--set`), writing into the point's run folder. `exe` is the program to call.
/// Every config is validated first.
pub fn plan(spec: &SweepSpec, opts: &SweepOptions, exe: &str) -> Result<Vec<String>> {
    let config = absolute(&opts.config)?;
    let data_root = absolute(&opts.data_root)?;
    let output = absolute(&opts.output)?;
    spec.points()
        .iter()
        .map(|p| {
            Config::from_file_with(&opts.config, &opts.overrides(p))?;
            let mut args = vec![
                shell_quote(exe),
                "evaluate".into(),
                "--quiet".into(),
                "--config".into(),
                shell_quote(&config.to_string_lossy()),
                "--data-root".into(),
                shell_quote(&data_root.to_string_lossy()),
            ];
            for c in &opts.categories {
                args.push("--category".into());
                args.push(shell_quote(c));
            }
            args.push("--output".into());
            args.push(shell_quote(
                &output.join("runs").join(p.id()).to_string_lossy(),
            ));
            for (k, v) in &p.overrides {
                args.push("--set".into());
                args.push(shell_quote(&format!("{k}={v}")));
            }
            if let Some(seeds) = &opts.seeds {
                args.push("--seeds".into());
                args.push(
                    seeds
                        .iter()
                        .map(u64::to_string)
                        .collect::<Vec<_>>()
                        .join(","),
                );
            }
            Ok(args.join(" "))
        })
        .collect()
}

/// The override that sets `seeds` (`--seeds`).
pub fn seeds_override(seeds: &[u64]) -> (String, toml::Value) {
    (
        "seeds".into(),
        toml::Value::Array(
            seeds
                .iter()
                .map(|s| toml::Value::Integer(*s as i64))
                .collect(),
        ),
    )
}

/// Parses a seed list: `0..5` (end excluded), `0..=4`, or `0,1,2`.
pub fn parse_seeds(s: &str) -> Result<Vec<u64>> {
    let bad = || {
        Error::InvalidArgument(format!(
            "`{s}`: give seeds as a range (0..5, 0..=4) or a list (0,1,2)"
        ))
    };
    let num = |t: &str| t.trim().parse::<u64>().map_err(|_| bad());
    let seeds: Vec<u64> = if let Some((a, b)) = s.split_once("..=") {
        (num(a)?..=num(b)?).collect()
    } else if let Some((a, b)) = s.split_once("..") {
        (num(a)?..num(b)?).collect()
    } else {
        s.split(',').map(num).collect::<Result<_>>()?
    };
    if seeds.is_empty() {
        return Err(bad());
    }
    Ok(seeds)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"
seed = 0
[sweep]
"sampler.ratio" = [0.01, 0.1]
aggregator.neighbourhood = [1, 3]
"sampler.projection" = ["gaussian"]
plot = { x = "sampler.ratio", series = "aggregator.neighbourhood" }
"#;

    #[test]
    fn the_grid_is_the_cartesian_product_in_written_order() {
        let spec = SweepSpec::from_toml_str(TEXT).unwrap();
        let keys: Vec<&str> = spec.axes.iter().map(|a| a.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "sampler.ratio",
                "aggregator.neighbourhood",
                "sampler.projection"
            ]
        );
        let points = spec.points();
        assert_eq!(points.len(), 4);
        assert_eq!(
            points[1].id(),
            "sampler.ratio=0.01__aggregator.neighbourhood=3__sampler.projection=gaussian"
        );
        assert_eq!(spec.plot.x.as_deref(), Some("sampler.ratio"));
        assert_eq!(spec.plot.metric, "image_auroc");
    }

    #[test]
    fn point_ids_of_different_values_never_collide() {
        let point = |v: &str| SweepPoint {
            overrides: vec![("backbone.weights".into(), toml::Value::String(v.into()))],
        };
        let ids: Vec<String> = ["a/b", "a_b", "a b", "a__b", "plain"]
            .iter()
            .map(|v| point(v).id())
            .collect();
        let unique: std::collections::BTreeSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "{ids:?}");
        assert_eq!(ids[1], "backbone.weights=a_b", "plain ids stay readable");
        assert!(ids[0].starts_with("backbone.weights=a_b~"), "{}", ids[0]);
        assert!(ids.iter().all(|i| !i.contains('/')));
    }

    #[test]
    fn bad_sweeps_name_the_key() {
        let e = SweepSpec::from_toml_str("[sweep]\n\"sampler.ratio\" = 0.1\n").unwrap_err();
        assert!(e.to_string().contains("sweep.sampler.ratio"), "{e}");
        let e = SweepSpec::from_toml_str(
            "[sweep]\n\"sampler.ratio\" = [0.1]\nplot = { x = \"nn.kind\" }\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("not a swept key"), "{e}");
        assert!(SweepSpec::from_toml_str("seed = 1\n").is_err());
    }

    #[test]
    fn seeds_parse_as_ranges_or_lists() {
        assert_eq!(parse_seeds("0..5").unwrap(), vec![0, 1, 2, 3, 4]);
        assert_eq!(parse_seeds("2..=3").unwrap(), vec![2, 3]);
        assert_eq!(parse_seeds("7,1").unwrap(), vec![7, 1]);
        assert!(parse_seeds("3..3").is_err());
        assert!(parse_seeds("a").is_err());
    }

    #[test]
    fn shell_quoting_keeps_plain_words_and_quotes_the_rest() {
        assert_eq!(shell_quote("sampler.ratio=0.1"), "sampler.ratio=0.1");
        assert_eq!(
            shell_quote("sampler.kind=\"random\""),
            "'sampler.kind=\"random\"'"
        );
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
    }
}
