//! `patchcore evaluate`: fit and evaluate from a config, print the table, write the reports.

use std::path::{Path, PathBuf};

use patchcore_core::{Error, Result};
use patchcore_data::synthetic::{SyntheticSpec, generate};
use patchcore_eval::{EvaluateOptions, Report, evaluate};
use patchcore_model::Config;
use patchcore_model::config::DataSource;

/// The command line of `patchcore evaluate`.
#[derive(clap::Args)]
pub struct Args {
    /// Experiment config (TOML). Default: the compiled-in configs/mvtec_effnet_lite0.toml.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Folder holding MVTec AD categories (e.g. ../shared/datasets/mvtec_ad_256).
    #[arg(long)]
    pub data_root: Option<PathBuf>,
    /// Category to evaluate (repeatable). Default: every category under the data root.
    #[arg(long = "category")]
    pub categories: Vec<String>,
    /// Output folder for the reports.
    #[arg(long, default_value = "out")]
    pub output: PathBuf,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
    /// Fit on at most this many training images (overrides data.train_limit).
    #[arg(long)]
    pub train_limit: Option<usize>,
    /// Override a config key (repeatable), e.g. --set sampler.ratio=0.1; the value is read as
    /// TOML (numbers, "strings", [lists], booleans), else as a string.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Seeds of repeated runs (overrides `seeds`): 0..5 (end excluded), 0..=4 or 0,1,2.
    /// Features are extracted once; each seed fits its own coreset and index.
    #[arg(long)]
    pub seeds: Option<String>,
}

/// The overrides of `--set` and `--seeds`, in order.
pub fn overrides(set: &[String], seeds: Option<&str>) -> Result<Vec<(String, toml::Value)>> {
    let mut o = set
        .iter()
        .map(|s| patchcore_model::config::parse_override(s))
        .collect::<Result<Vec<_>>>()?;
    if let Some(s) = seeds {
        o.push(patchcore_eval::sweep::seeds_override(
            &patchcore_eval::sweep::parse_seeds(s)?,
        ));
    }
    Ok(o)
}

/// Runs the command.
pub fn run(args: &Args) -> Result<()> {
    let mut cfg = Config::load(
        args.config.as_deref(),
        &overrides(&args.set, args.seeds.as_deref())?,
    )?;
    if let Some(k) = args.train_limit {
        cfg.data.train_limit = k;
    }
    let (data_root, categories) = data_of(
        &cfg,
        args.data_root.as_deref(),
        &args.categories,
        &args.output,
    )?;
    let report = evaluate(
        &cfg,
        &EvaluateOptions {
            data_root,
            categories,
            output: Some(args.output.clone()),
            quiet: args.quiet,
        },
    )?;
    print_low_shot(&report);
    if !report.categories.is_empty() {
        print_categories(&report);
    }
    println!(
        "reports: {}, {} and {}",
        args.output.join("report.json").display(),
        args.output.join("report.md").display(),
        args.output.join("report.html").display()
    );
    Ok(())
}

/// The data root and categories: the command line's, none for the folder and manifest
/// sources, or the synthetic demo set generated under the output folder.
pub fn data_of(
    cfg: &Config,
    data_root: Option<&Path>,
    categories: &[String],
    output: &Path,
) -> Result<(PathBuf, Vec<String>)> {
    let mvtec = cfg.data.source == DataSource::Mvtec;
    if !mvtec && (data_root.is_some() || !categories.is_empty()) {
        return Err(Error::config(
            "data.source",
            "--data-root and --category apply to the \"mvtec\" source; this config reads \
             its data from data.folder / data.manifest",
        ));
    }
    Ok(match data_root {
        Some(d) => (d.to_path_buf(), categories.to_vec()),
        None if !mvtec => (PathBuf::new(), vec![]),
        None => demo_data(output)?,
    })
}

/// Generates the synthetic demo data set under `output`.
fn demo_data(output: &Path) -> Result<(PathBuf, Vec<String>)> {
    let spec = SyntheticSpec::default();
    let root = output.join("synthetic-data");
    tracing::info!(
        "no --data-root: generating the synthetic demo data set in {}",
        root.display()
    );
    generate(&root, &spec)?;
    Ok((root, vec![spec.category]))
}

fn print_low_shot(report: &Report) {
    for (name, rows) in &report.low_shot {
        for r in rows {
            println!(
                "{name:<24} k={:<4} image AUROC {:.4} ± {:.4}   pixel AUROC {}",
                r.shots,
                r.image_auroc.mean,
                r.image_auroc.std,
                r.pixel_auroc
                    .as_ref()
                    .map(|p| format!("{:.4} ± {:.4}", p.mean, p.std))
                    .unwrap_or_else(|| "absent".into())
            );
        }
    }
}

fn print_categories(report: &Report) {
    println!(
        "{:<24} {:>17} {:>18} {:>17} {:>9} {:>14}",
        "category",
        "image AUROC",
        format!("{:.0}% CI", report.protocol.ci_level * 100.0),
        "pixel AUROC",
        "fit (s)",
        "infer (ms/img)"
    );
    let pm =
        |c: &patchcore_eval::CategoryResult, k: &str, v: Option<f64>| match (c.spread.get(k), v) {
            (Some(s), _) if s.values.len() > 1 => format!("{:.4} ± {:.4}", s.mean, s.std),
            (_, Some(v)) => format!("{v:.4}"),
            _ => "absent".into(),
        };
    for (name, c) in &report.categories {
        println!(
            "{:<24} {:>17} {:>18} {:>17} {:>9.1} {:>14.1}",
            name,
            pm(c, "image_auroc", Some(c.image_auroc)),
            c.intervals
                .get("image_auroc")
                .map(|i| format!("[{:.4}, {:.4}]", i.lo, i.hi))
                .unwrap_or_else(|| "—".into()),
            pm(c, "pixel_auroc", c.pixel_auroc),
            c.fit_seconds,
            c.infer_ms_per_image
        );
    }
    let (img, pix) = report.mean();
    let pix = pix
        .map(|p| format!("{p:.4}"))
        .unwrap_or_else(|| "absent".into());
    println!("{:<24} {:>17.4} {:>18} {:>17}", "mean", img, "", pix);
    for (name, c) in &report.categories {
        if let Some(why) = &c.pixel_metrics_absent {
            println!("{name}: pixel metrics absent: {why}");
        }
    }
}
