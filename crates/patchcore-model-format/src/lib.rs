//! The `.patchcore` fitted-model file format, without any tensor framework (a downstream tool
//! can inspect or validate model files with this crate alone, and the format reader is fuzzed
//! cheaply: `fuzz/`).
//!
//! Layout (docs/MODEL_FILE.md):
//! * tensor `memory_bank`: float32 `[rows, dim]`, the selected patch features.
//! * metadata `patchcore.header`: a JSON object with at least `format` (= [`MODEL_FORMAT`]),
//!   `format_version`, `bank_rows` and `feature_dim`; patchcore-model gives it its full type.
//! * metadata `patchcore.sha256`: SHA-256 (hex) of the header JSON bytes followed by the bank's
//!   little-endian bytes. A flipped bit anywhere in either is detected on load.

#![warn(missing_docs)]

use std::collections::HashMap;

use ndarray::Array2;
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use sha2::{Digest, Sha256};

/// The `format` value of every model header.
pub const MODEL_FORMAT: &str = "patchcore-rs model";
/// The newest format version this build reads and the one it writes.
///
/// * 1: the first format.
/// * 2: the header's config holds the tagged sections of the component crates: `[sampler]`,
///   `[nn]` and `[aggregator]` carry only their `kind`'s keys, and a sampler or index given as
///   a trait object is recorded as `kind = "custom"` with its `name`. Version-1 headers are
///   still read (patchcore-model migrates their config).
pub const MODEL_FORMAT_VERSION: u32 = 2;
/// Safetensors metadata key of the JSON header.
pub const HEADER_KEY: &str = "patchcore.header";
/// Safetensors metadata key of the checksum.
pub const CHECKSUM_KEY: &str = "patchcore.sha256";
/// Tensor name of the memory bank.
pub const BANK_TENSOR: &str = "memory_bank";

/// Why bytes are not a valid model file (or a bank cannot be written). The messages say what
/// is wrong; the caller adds the file name.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// The bytes are not a (valid, current, intact) model file.
    #[error("{0}")]
    Invalid(String),
    /// The bank holds NaN or infinite values.
    #[error("{0}")]
    NonFinite(String),
    /// Header and bank disagree on the bank's shape.
    #[error("{0}")]
    Shape(String),
}

fn invalid(m: impl Into<String>) -> FormatError {
    FormatError::Invalid(m.into())
}

/// SHA-256 (hex) of the header JSON followed by the bank bytes.
pub fn checksum(header_json: &[u8], bank_bytes: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(header_json);
    h.update(bank_bytes);
    format!("{:x}", h.finalize())
}

fn header_dims(v: &serde_json::Value) -> Option<(usize, usize)> {
    Some((
        v.get("bank_rows")?.as_u64()? as usize,
        v.get("feature_dim")?.as_u64()? as usize,
    ))
}

/// Serialises a header (JSON text) and bank to the file format's bytes. The header's
/// `bank_rows` / `feature_dim` must match the bank; NaN or infinite values are refused.
pub fn encode(header_json: &str, bank: &Array2<f32>) -> Result<Vec<u8>, FormatError> {
    let (rows, dim) = bank.dim();
    let v: serde_json::Value = serde_json::from_str(header_json)
        .map_err(|e| invalid(format!("header is not JSON: {e}")))?;
    if header_dims(&v) != Some((rows, dim)) {
        return Err(FormatError::Shape(format!(
            "bank is {rows}x{dim} but the header says {:?}",
            header_dims(&v)
        )));
    }
    if bank.iter().any(|x| !x.is_finite()) {
        return Err(FormatError::NonFinite(
            "the memory bank holds NaN or infinite values; refusing to save it".into(),
        ));
    }
    let bytes: Vec<u8> = bank.iter().flat_map(|x| x.to_le_bytes()).collect();
    let sum = checksum(header_json.as_bytes(), &bytes);
    let view = TensorView::new(Dtype::F32, vec![rows, dim], &bytes)
        .map_err(|e| invalid(format!("safetensors: {e}")))?;
    let meta = HashMap::from([
        (HEADER_KEY.to_string(), header_json.to_string()),
        (CHECKSUM_KEY.to_string(), sum),
    ]);
    safetensors::serialize([(BANK_TENSOR, view)], Some(meta))
        .map_err(|e| invalid(format!("safetensors: {e}")))
}

/// Parses and verifies a model file's bytes: format, version, checksum, bank dtype and shape
/// against the header, finite values. Returns the header JSON text and the bank.
pub fn decode(bytes: &[u8]) -> Result<(String, Array2<f32>), FormatError> {
    if bytes.is_empty() {
        return Err(invalid("empty file (0 bytes)"));
    }
    let st = SafeTensors::deserialize(bytes).map_err(|e| {
        invalid(format!(
            "not a patchcore model (unreadable safetensors: {e}); truncated or corrupt?"
        ))
    })?;
    let (_, meta) = SafeTensors::read_metadata(bytes)
        .map_err(|e| invalid(format!("unreadable safetensors header: {e}")))?;
    let meta = meta
        .metadata()
        .as_ref()
        .ok_or_else(|| invalid("a safetensors file, but not a patchcore model (no metadata)"))?;
    let json = meta.get(HEADER_KEY).ok_or_else(|| {
        invalid(format!(
            "a safetensors file, but not a patchcore model (no `{HEADER_KEY}` metadata)"
        ))
    })?;
    // Format and version first, so that a newer file gets the right message even if its header
    // has fields this build does not know.
    let probe: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| invalid(format!("model header is not valid JSON: {e}")))?;
    if probe.get("format").and_then(|v| v.as_str()) != Some(MODEL_FORMAT) {
        return Err(invalid(format!(
            "header `format` is not \"{MODEL_FORMAT}\""
        )));
    }
    let version = probe
        .get("format_version")
        .and_then(|v| v.as_u64())
        .ok_or_else(|| invalid("header has no numeric `format_version`"))?;
    if version > MODEL_FORMAT_VERSION as u64 {
        return Err(invalid(format!(
            "format version {version} is newer than this build reads ({MODEL_FORMAT_VERSION}); \
             upgrade patchcore-rs or refit the model"
        )));
    }
    let stored_sum = meta
        .get(CHECKSUM_KEY)
        .ok_or_else(|| invalid(format!("no `{CHECKSUM_KEY}` checksum")))?;
    let bank = st
        .tensor(BANK_TENSOR)
        .map_err(|_| invalid(format!("no `{BANK_TENSOR}` tensor")))?;
    if checksum(json.as_bytes(), bank.data()) != *stored_sum {
        return Err(invalid(
            "checksum mismatch: the file was modified or corrupted after it was written; refit \
             or restore it",
        ));
    }
    let (rows, dim) = header_dims(&probe)
        .ok_or_else(|| invalid("header has no numeric `bank_rows` / `feature_dim`"))?;
    let shape = bank.shape().to_vec();
    if bank.dtype() != Dtype::F32 || shape != [rows, dim] {
        return Err(invalid(format!(
            "`{BANK_TENSOR}` is {:?} {shape:?}, the header says F32 [{rows}, {dim}]",
            bank.dtype()
        )));
    }
    if rows == 0 || dim == 0 {
        return Err(invalid("the memory bank is empty"));
    }
    let values: Vec<f32> = bank
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if values.iter().any(|v| !v.is_finite()) {
        return Err(invalid("the memory bank holds NaN or infinite values"));
    }
    let bank = Array2::from_shape_vec((rows, dim), values).map_err(|e| invalid(e.to_string()))?;
    Ok((json.clone(), bank))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(rows: usize, dim: usize) -> String {
        format!(
            "{{\"format\":\"{MODEL_FORMAT}\",\"format_version\":1,\"bank_rows\":{rows},\"feature_dim\":{dim}}}"
        )
    }

    #[test]
    fn round_trip_and_a_flipped_bit() {
        let bank = Array2::from_shape_fn((3, 2), |(i, j)| (i * 2 + j) as f32);
        let bytes = encode(&header(3, 2), &bank).unwrap();
        let (json, back) = decode(&bytes).unwrap();
        assert_eq!((json, back), (header(3, 2), bank.clone()));
        let mut bad = bytes.clone();
        let n = bad.len();
        bad[n - 2] ^= 1;
        assert!(decode(&bad).unwrap_err().to_string().contains("checksum"));
        assert!(matches!(
            encode(&header(2, 2), &bank),
            Err(FormatError::Shape(_))
        ));
    }
}
