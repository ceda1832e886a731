//! The fitted-model file (`.patchcore`): a safetensors file holding the memory bank, with a
//! JSON header in the safetensors metadata that says everything else needed to score. The
//! bytes are read and written by the framework-free `patchcore-model-format` crate; this module
//! gives the header its type.
//!
//! Layout (docs/MODEL_FILE.md):
//! * tensor `memory_bank`: float32 `[rows, dim]`, the selected patch features.
//! * metadata `patchcore.header`: [`ModelHeader`] as JSON: format name and version, the full
//!   config, backbone identity and weights SHA-256, geometry, threshold and score range; for
//!   a tiled model the rows of each bank ([`TiledBanks`]: per-position banks are stored one
//!   after the other in `memory_bank`).
//! * metadata `patchcore.sha256`: SHA-256 (hex) of the header JSON bytes followed by the bank's
//!   little-endian bytes. A flipped bit anywhere in either is detected on load.
//!
//! Nothing executable is stored (no pickle); the backbone weights are referenced by SHA-256,
//! not copied, so a model is small (the bottle model at 1 % is about 1 MB).

use std::path::{Path, PathBuf};

use ndarray::Array2;
use patchcore_core::{Error, Result};
use patchcore_model_format::{self as format, FormatError};
use serde::{Deserialize, Serialize};

use crate::config::Config;

pub use patchcore_model_format::{
    BANK_TENSOR, CHECKSUM_KEY, HEADER_KEY, MODEL_FORMAT, MODEL_FORMAT_VERSION,
};

/// Where a model's decision threshold came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Threshold {
    /// Image scores above this are anomalous.
    pub value: f32,
    /// How it was chosen, e.g. `F1-max on bottle test split (83 images)` or `user`.
    pub source: String,
}

/// Which backbone weights the bank was computed with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackboneIdentity {
    /// Architecture name (`Backbone::name`).
    pub arch: String,
    /// Tapped layers.
    pub layers: Vec<String>,
    /// SHA-256 of the weights file (`-` for random weights).
    pub weights_sha256: String,
    /// The file used at fit time (informational; any file with the same SHA-256 will do).
    pub weights_file: String,
    /// `false` for randomly initialised weights.
    pub pretrained: bool,
}

/// Everything about a fitted model except the bank itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelHeader {
    /// Always [`MODEL_FORMAT`].
    pub format: String,
    /// Format version; a reader refuses newer versions than it knows.
    pub format_version: u32,
    /// `patchcore-rs <version>` that wrote the file.
    pub created_by: String,
    /// The experiment config the model was fitted with (device included; override it when
    /// loading on another machine).
    pub config: Config,
    /// The backbone the bank was computed with.
    pub backbone: BackboneIdentity,
    /// Resize then centre crop.
    pub geometry: patchcore_data::Geometry,
    /// Rows of the memory bank.
    pub bank_rows: usize,
    /// Width of the memory bank.
    pub feature_dim: usize,
    /// Rows before coreset selection.
    pub bank_rows_full: usize,
    /// Training images the bank came from.
    pub num_train: usize,
    /// Name of the data set / category fitted on.
    pub dataset: String,
    /// Decision threshold on image scores, if one was set.
    pub threshold: Option<Threshold>,
    /// Smallest and largest image score seen when the threshold was chosen (for normalised
    /// scores: `(s - threshold) / (max - min) + 0.5`, clipped to [0, 1], as anomalib).
    pub score_range: Option<(f32, f32)>,
    /// The banks of a tiled model (`[tiling]`); absent for an untiled one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tiled: Option<TiledBanks>,
    /// Where the bank's index lives when it is not in the process (one entry per bank, e.g.
    /// `qdrant http://host:6334 collection patchcore-1a2b3c4d5e6f7a8b`); empty for the
    /// in-process indices. Loading reconnects through the config's `[nn]`; this says where.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub index_locations: Vec<String>,
}

/// How the `memory_bank` tensor of a tiled model splits into banks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TiledBanks {
    /// Rows of each bank, in order (one entry for `shared`, one per tile position, row-major,
    /// for `per_position`); they sum to `bank_rows`.
    pub bank_rows: Vec<usize>,
    /// The training images' `(width, height)`, where they shared one (always for
    /// `per_position`).
    pub image_size: Option<(u32, u32)>,
}

impl ModelHeader {
    /// A score normalised so that the threshold maps to 0.5 (anomalib's min-max rule), if a
    /// threshold and score range are known.
    pub fn normalized(&self, score: f32) -> Option<f32> {
        let t = self.threshold.as_ref()?.value;
        let (lo, hi) = self.score_range?;
        let span = if hi > lo { hi - lo } else { 1.0 };
        Some(((score - t) / span + 0.5).clamp(0.0, 1.0))
    }
}

/// An [`Error::Model`] naming the model file.
pub(crate) fn model_err(path: &Path, message: impl Into<String>) -> Error {
    Error::Model {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Serialises a header and bank to the file format's bytes.
pub fn to_bytes(header: &ModelHeader, bank: &Array2<f32>) -> Result<Vec<u8>> {
    let json = serde_json::to_string(header).map_err(|e| Error::External(e.to_string()))?;
    format::encode(&json, bank).map_err(|e| match e {
        FormatError::NonFinite(m) => Error::NonFinite(m),
        FormatError::Shape(m) => Error::Shape(m),
        FormatError::Invalid(m) => Error::External(m),
    })
}

/// Writes a model file atomically (temporary file, then rename).
pub fn write(path: &Path, header: &ModelHeader, bank: &Array2<f32>) -> Result<()> {
    patchcore_core::io::write_atomic(path, &to_bytes(header, bank)?)
}

/// Parses and verifies a model file's bytes; `path` only names the file in errors.
pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<(ModelHeader, Array2<f32>)> {
    let (json, bank) = format::decode(bytes).map_err(|e| model_err(path, e.to_string()))?;
    let mut value: serde_json::Value = serde_json::from_str(&json)
        .map_err(|e| model_err(path, format!("model header does not parse: {e}")))?;
    let version = value.get("format_version").and_then(|v| v.as_u64());
    if let Some(config) = value.get_mut("config") {
        if version == Some(1) {
            migrate_v1_config(config);
        }
        split_greedy_keys(config);
    }
    let header: ModelHeader = serde_json::from_value(value)
        .map_err(|e| model_err(path, format!("model header does not parse: {e}")))?;
    Ok((header, bank))
}

/// Version 1 wrote every key of `[sampler]`, `[nn]` and `[aggregator]` whatever their `kind`;
/// version 2's tagged sections take only their kind's keys. Drops the others.
fn migrate_v1_config(config: &mut serde_json::Value) {
    let keep = |section: &str, kind: &str| -> &'static [&'static str] {
        match (section, kind) {
            ("sampler", "greedy_coreset" | "approximate_greedy_coreset") => &[
                "ratio",
                "count",
                "greedy",
                "approx_starts",
                "projection",
                "projection_dim",
                "projection_eps",
                "sparse_density",
            ],
            ("sampler", "random") => &["ratio", "count"],
            ("nn", "ivf") => &["nlist", "nprobe"],
            ("aggregator", "locally_aware") => &["neighbourhood", "target_dim"],
            ("aggregator", "official") => {
                &["neighbourhood", "pretrain_embed_dim", "target_embed_dim"]
            }
            _ => &[],
        }
    };
    for section in ["sampler", "nn", "aggregator"] {
        if let Some(serde_json::Value::Object(map)) = config.get_mut(section) {
            let kind = map
                .get("kind")
                .and_then(|k| k.as_str())
                .unwrap_or_default()
                .to_string();
            let kept = keep(section, &kind);
            map.retain(|k, v| k == "kind" || (kept.contains(&k.as_str()) && !v.is_null()));
        }
    }
}

/// Files written before the exact and the approximate greedy had parameter types of their own
/// carry both kinds' keys in `[sampler]` (`approx_starts` beside `greedy = "pruned"`); each
/// kind now takes only its own. Drops the other kind's keys (a no-op for newer files).
fn split_greedy_keys(config: &mut serde_json::Value) {
    let Some(serde_json::Value::Object(map)) = config.get_mut("sampler") else {
        return;
    };
    let foreign: &[&str] = match map.get("kind").and_then(|k| k.as_str()) {
        Some("greedy_coreset") => &["approx_starts"],
        Some("approximate_greedy_coreset") => &["greedy", "block_picks"],
        _ => &[],
    };
    map.retain(|k, _| !foreign.contains(&k.as_str()));
}

/// Reads and verifies a model file.
pub fn read(path: &Path) -> Result<(ModelHeader, Array2<f32>)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    from_bytes(path, &bytes)
}

/// A model file's default name for a category: `<category>.patchcore`.
pub fn default_name(category: &str) -> PathBuf {
    PathBuf::from(format!("{category}.patchcore"))
}

/// A model file's header and its banks: one per tile position of a per-position tiled model
/// (the header's `tiled.bank_rows`), else one. Reads no weights: `patchcore bank`.
pub fn read_banks(path: &Path) -> Result<(ModelHeader, Vec<Array2<f32>>)> {
    let (header, bank) = read(path)?;
    let banks = split_banks(path, &header, bank)?;
    Ok((header, banks))
}

/// The file's `memory_bank` split into the banks its header lists.
pub(crate) fn split_banks(
    path: &Path,
    header: &ModelHeader,
    bank: Array2<f32>,
) -> Result<Vec<Array2<f32>>> {
    let Some(t) = &header.tiled else {
        return Ok(vec![bank]);
    };
    if t.bank_rows.iter().sum::<usize>() != bank.nrows() || t.bank_rows.contains(&0) {
        return Err(model_err(
            path,
            format!(
                "the header lists banks of {:?} rows, the file's memory bank has {} rows",
                t.bank_rows,
                bank.nrows()
            ),
        ));
    }
    let mut start = 0;
    Ok(t.bank_rows
        .iter()
        .map(|&r| {
            start += r;
            bank.slice(ndarray::s![start - r..start, ..]).to_owned()
        })
        .collect())
}
