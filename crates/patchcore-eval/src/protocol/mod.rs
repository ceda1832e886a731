//! The evaluation protocols: standard (fit on every training image), low-shot (fit on `k`
//! images per seed) and ensembles (several backbones, normalised and averaged), over the
//! categories a data source describes; and fitting one category for a model file.

mod ensemble;
mod fit;
mod low_shot;
mod standard;

use std::collections::BTreeMap;
use std::path::PathBuf;

use patchcore_core::Result;
use patchcore_data::{MvtecCategory, TrainLimit, discover_categories, open_folder, open_manifest};

use patchcore_model::config::{DataSource, TrainSelection};
use patchcore_model::{Config, PatchCore};

use crate::config::{ProtocolConfig, ProtocolKind};
use crate::results::{BackboneReport, Report};

pub use ensemble::combine_members;
pub use fit::{FitOptions, FittedCategory, fit_model};

/// What to evaluate and where to write.
#[derive(Debug, Clone)]
pub struct EvaluateOptions {
    /// Folder holding MVTec AD categories (`data.source = "mvtec"` only).
    pub data_root: PathBuf,
    /// Categories to run; empty = every category found under `data_root`.
    pub categories: Vec<String>,
    /// Where `report.json` and `report.md` go; `None` writes nothing.
    pub output: Option<PathBuf>,
    /// Suppress progress bars.
    pub quiet: bool,
}

/// The categories a config and options describe, layouts checked, train limit applied.
pub fn open_categories(cfg: &Config, opts: &EvaluateOptions) -> Result<Vec<MvtecCategory>> {
    let base = cfg.base_dir.clone().unwrap_or_default();
    let allow = cfg.data.allow_partial_masks;
    let mut cats = match cfg.data.source {
        DataSource::Mvtec => {
            let names = if opts.categories.is_empty() {
                discover_categories(&opts.data_root)?
            } else {
                opts.categories.clone()
            };
            names
                .iter()
                .map(|c| MvtecCategory::open_with(&opts.data_root, c, allow))
                .collect::<Result<Vec<_>>>()?
        }
        DataSource::Folder => {
            let spec = cfg.data.folder.as_ref().expect("validated");
            vec![open_folder(spec, &base, cfg.seed, allow)?]
        }
        DataSource::Manifest => {
            let m = cfg.data.manifest.as_ref().expect("validated");
            let path = if m.path.is_relative() {
                base.join(&m.path)
            } else {
                m.path.clone()
            };
            vec![open_manifest(
                &path,
                &m.name,
                m.normal_test_ratio,
                cfg.seed,
                allow,
            )?]
        }
    };
    if cfg.data.train_limit > 0 {
        let limit = match cfg.data.train_selection {
            TrainSelection::First => TrainLimit::First(cfg.data.train_limit),
            TrainSelection::Random => TrainLimit::Random {
                k: cfg.data.train_limit,
                seed: cfg.seed,
            },
        };
        for c in &mut cats {
            c.limit_train(limit);
        }
    }
    for c in &cats {
        if let Some(why) = c.pixel_metrics_unavailable() {
            tracing::warn!(category = %c.name, "pixel metrics absent: {why}");
        }
    }
    Ok(cats)
}

/// Fits and evaluates every requested category, then writes the reports.
pub fn evaluate(cfg: &Config, opts: &EvaluateOptions) -> Result<Report> {
    evaluate_with(cfg, opts, &PatchCore::from_config)
}

/// As [`evaluate`], with the models built by `build` from each single-backbone member config
/// ([`Config::member`]): the way to evaluate models holding components of your own
/// ([`patchcore_model::PatchCoreBuilder`]). The report's config shows their samplers and indices as
/// each model's config does.
pub fn evaluate_with(
    cfg: &Config,
    opts: &EvaluateOptions,
    build: &dyn Fn(&Config) -> Result<PatchCore>,
) -> Result<Report> {
    // Check the protocol and the whole layout before any expensive work.
    let protocol = ProtocolConfig::of(cfg)?;
    let cats = open_categories(cfg, opts)?;
    let provenance = crate::provenance::provenance(cfg, &cats)?;
    let mut models: Vec<PatchCore> = (0..cfg.backbones().len())
        .map(|i| build(&cfg.member(i)))
        .collect::<Result<_>>()?;
    for m in &models {
        if !m.weights().pretrained {
            tracing::warn!(
                "backbone {} runs on RANDOM weights ({}): the results say nothing about PatchCore",
                m.backbone().name(),
                m.weights().file
            );
        }
    }
    let mut results = BTreeMap::new();
    let mut low_shot = BTreeMap::new();
    for cat in &cats {
        if protocol.kind == ProtocolKind::LowShot {
            low_shot.insert(
                cat.name.clone(),
                low_shot::run_low_shot(cfg, &protocol, &mut models, cat, opts.quiet)?,
            );
            continue;
        }
        let spec = standard::RunSpec::of(
            cfg,
            &protocol,
            cfg.run_seeds(),
            opts.quiet,
            opts.output.is_some(),
        );
        let r = standard::evaluate_category(&mut models, cat, &spec)?;
        tracing::info!(
            category = %cat.name,
            image_auroc = format!("{:.4}", r.image_auroc),
            pixel_auroc = r.pixel_auroc.map(|p| format!("{p:.4}")).unwrap_or_else(|| "absent".into()),
            "evaluated"
        );
        results.insert(cat.name.clone(), r);
    }
    let mut config = cfg.clone();
    config.protocol = patchcore_model::config::Section::of(&protocol)?;
    config.sampler = models[0].config().sampler.clone();
    config.nn = models[0].config().nn.clone();
    let report = Report {
        config,
        data_root: opts.data_root.to_string_lossy().into_owned(),
        categories: results,
        low_shot,
        backbones: models.iter().map(BackboneReport::of).collect(),
        provenance: Some(provenance),
        protocol,
    };
    if let Some(out) = &opts.output {
        crate::report::write(&report, out)?;
    }
    Ok(report)
}
