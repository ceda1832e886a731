//! The fitted-model file (`.patchcore`): a safetensors file holding the memory bank, with a
//! JSON header in the safetensors metadata that says everything else needed to score.
//!
//! Layout (docs/MODEL_FILE.md):
//! * tensor `memory_bank`: float32 `[rows, dim]`, the selected patch features.
//! * metadata `patchcore.header`: [`ModelHeader`] as JSON: format name and version, the full
//!   config, backbone identity and weights SHA-256, geometry, threshold and score range.
//! * metadata `patchcore.sha256`: SHA-256 (hex) of the header JSON bytes followed by the bank's
//!   little-endian bytes. A flipped bit anywhere in either is detected on load.
//!
//! Nothing executable is stored (no pickle); the backbone weights are referenced by SHA-256,
//! not copied, so a model is small (the bottle model at 1 % is about 1 MB).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ndarray::Array2;
use patchcore_core::{Error, Result};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::Config;

/// The `format` value of every model header.
pub const MODEL_FORMAT: &str = "patchcore-rs model";
/// The newest format version this build reads and the one it writes.
pub const MODEL_FORMAT_VERSION: u32 = 1;
/// Safetensors metadata key of the JSON header.
pub const HEADER_KEY: &str = "patchcore.header";
/// Safetensors metadata key of the checksum.
pub const CHECKSUM_KEY: &str = "patchcore.sha256";
/// Tensor name of the memory bank.
pub const BANK_TENSOR: &str = "memory_bank";

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
    pub arch: String,
    pub layers: Vec<String>,
    /// SHA-256 of the weights file (`-` for random weights).
    pub weights_sha256: String,
    /// The file used at fit time (informational; any file with the same SHA-256 will do).
    pub weights_file: String,
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
    pub backbone: BackboneIdentity,
    /// Resize then centre crop.
    pub geometry: patchcore_data::Geometry,
    pub bank_rows: usize,
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

fn model_err(path: &Path, message: impl Into<String>) -> Error {
    Error::Model {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn checksum(header_json: &[u8], bank_bytes: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(header_json);
    h.update(bank_bytes);
    format!("{:x}", h.finalize())
}

/// Serialises a header and bank to the file format's bytes.
pub fn to_bytes(header: &ModelHeader, bank: &Array2<f32>) -> Result<Vec<u8>> {
    let (rows, dim) = bank.dim();
    if (rows, dim) != (header.bank_rows, header.feature_dim) {
        return Err(Error::Shape(format!(
            "bank is {rows}x{dim} but the header says {}x{}",
            header.bank_rows, header.feature_dim
        )));
    }
    if bank.iter().any(|v| !v.is_finite()) {
        return Err(Error::NonFinite(
            "the memory bank holds NaN or infinite values; refusing to save it".into(),
        ));
    }
    let json = serde_json::to_vec(header).map_err(|e| Error::External(e.to_string()))?;
    let bytes: Vec<u8> = bank.iter().flat_map(|v| v.to_le_bytes()).collect();
    let sum = checksum(&json, &bytes);
    let view = TensorView::new(Dtype::F32, vec![rows, dim], &bytes)
        .map_err(|e| Error::External(format!("safetensors: {e}")))?;
    let meta = HashMap::from([
        (
            HEADER_KEY.to_string(),
            String::from_utf8(json).expect("JSON is UTF-8"),
        ),
        (CHECKSUM_KEY.to_string(), sum),
    ]);
    safetensors::serialize([(BANK_TENSOR, view)], Some(meta))
        .map_err(|e| Error::External(format!("safetensors: {e}")))
}

/// Writes a model file atomically (temporary file, then rename).
pub fn write(path: &Path, header: &ModelHeader, bank: &Array2<f32>) -> Result<()> {
    patchcore_core::io::write_atomic(path, &to_bytes(header, bank)?)
}

/// Parses and verifies a model file's bytes; `path` only names the file in errors.
pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<(ModelHeader, Array2<f32>)> {
    if bytes.is_empty() {
        return Err(model_err(path, "empty file (0 bytes)"));
    }
    let st = SafeTensors::deserialize(bytes).map_err(|e| {
        model_err(
            path,
            format!("not a patchcore model (unreadable safetensors: {e}); truncated or corrupt?"),
        )
    })?;
    let (_, meta) = SafeTensors::read_metadata(bytes)
        .map_err(|e| model_err(path, format!("unreadable safetensors header: {e}")))?;
    let meta = meta.metadata().as_ref().ok_or_else(|| {
        model_err(
            path,
            "a safetensors file, but not a patchcore model (no metadata)",
        )
    })?;
    let json = meta.get(HEADER_KEY).ok_or_else(|| {
        model_err(
            path,
            format!("a safetensors file, but not a patchcore model (no `{HEADER_KEY}` metadata)"),
        )
    })?;
    // Read format and version first, so that a newer file gets the right message even if its
    // header has fields this build does not know.
    let probe: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| model_err(path, format!("model header is not valid JSON: {e}")))?;
    if probe.get("format").and_then(|v| v.as_str()) != Some(MODEL_FORMAT) {
        return Err(model_err(
            path,
            format!("header `format` is not \"{MODEL_FORMAT}\""),
        ));
    }
    let version = probe
        .get("format_version")
        .and_then(|v| v.as_u64())
        .ok_or_else(|| model_err(path, "header has no numeric `format_version`"))?;
    if version > MODEL_FORMAT_VERSION as u64 {
        return Err(model_err(
            path,
            format!(
                "format version {version} is newer than this build reads ({MODEL_FORMAT_VERSION}); \
                 upgrade patchcore-rs or refit the model"
            ),
        ));
    }
    let stored_sum = meta
        .get(CHECKSUM_KEY)
        .ok_or_else(|| model_err(path, format!("no `{CHECKSUM_KEY}` checksum")))?;
    let bank = st
        .tensor(BANK_TENSOR)
        .map_err(|_| model_err(path, format!("no `{BANK_TENSOR}` tensor")))?;
    if checksum(json.as_bytes(), bank.data()) != *stored_sum {
        return Err(model_err(
            path,
            "checksum mismatch: the file was modified or corrupted after it was written; refit \
             or restore it",
        ));
    }
    let header: ModelHeader = serde_json::from_str(json)
        .map_err(|e| model_err(path, format!("model header does not parse: {e}")))?;
    let shape = bank.shape().to_vec();
    if bank.dtype() != Dtype::F32 || shape != [header.bank_rows, header.feature_dim] {
        return Err(model_err(
            path,
            format!(
                "`{BANK_TENSOR}` is {:?} {shape:?}, the header says F32 [{}, {}]",
                bank.dtype(),
                header.bank_rows,
                header.feature_dim
            ),
        ));
    }
    if header.bank_rows == 0 || header.feature_dim == 0 {
        return Err(model_err(path, "the memory bank is empty"));
    }
    let values: Vec<f32> = bank
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if values.iter().any(|v| !v.is_finite()) {
        return Err(model_err(
            path,
            "the memory bank holds NaN or infinite values",
        ));
    }
    let bank = Array2::from_shape_vec((header.bank_rows, header.feature_dim), values)
        .map_err(|e| model_err(path, e.to_string()))?;
    Ok((header, bank))
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
