//! Test support of patchcore-rs. Not published: the component crates take it as a
//! dev-dependency only, and the `patchcore` binary for its `conformance` and `bench` commands.
//!
//! * [`fixtures`]: reading the reference tensors in `<shared>/fixtures/*.safetensors`;
//! * [`lcg_matrix`]: cheap reproducible matrices for benchmarks and tests;
//! * [`shared_dir`]: where the out-of-repo data sets and fixtures live;
//! * [`http`]: a minimal HTTP/1.1 client for the service tests;
//! * `conformance` (feature `conformance`): the backend parity suite.

#![warn(missing_docs)]

#[cfg(feature = "conformance")]
pub mod conformance;
pub mod fixtures;
pub mod http;

use std::path::PathBuf;

pub use fixtures::{Fixture, rel_errors};

/// A deterministic `[rows, cols]` matrix of values in `[-0.5, 0.5)` from a 64-bit LCG
/// seeded with `seed`: cheap reproducible inputs for benchmarks (no RNG dependency).
pub fn lcg_matrix(rows: usize, cols: usize, seed: u64) -> ndarray::Array2<f32> {
    let mut s = seed;
    ndarray::Array2::from_shape_fn((rows, cols), |_| {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    })
}

/// Environment variable that overrides the location of the shared data folder.
pub const SHARED_DIR_ENV: &str = "PATCHCORE_SHARED_DIR";

/// The folder holding `datasets/` and `fixtures/` (never part of the repository).
///
/// `$PATCHCORE_SHARED_DIR` if set; else `shared/` beside the workspace root found by walking up
/// from the current directory (the folder holding `Cargo.lock`; tests run inside the
/// workspace); else `../shared` beside the workspace this crate was compiled in.
pub fn shared_dir() -> PathBuf {
    if let Some(p) = std::env::var_os(SHARED_DIR_ENV) {
        return PathBuf::from(p);
    }
    if let Ok(cwd) = std::env::current_dir() {
        for dir in cwd.ancestors() {
            if dir.join("Cargo.lock").is_file()
                && let Some(parent) = dir.parent()
            {
                return parent.join("shared");
            }
        }
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared")
}

/// CRC-32 (IEEE, as PNG chunks use): for tests that write PNG files by hand.
pub fn png_crc32(bytes: &[u8]) -> u32 {
    let mut c = 0xffff_ffffu32;
    for &b in bytes {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}
