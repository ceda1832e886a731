//! The Qdrant index against the in-process exact index on the banks and queries of
//! `cargo xtask bench --suite indices` (clustered synthetic features at PatchCore's widths,
//! 784 queries = one image's patches): build (upload included) once, then the median search
//! time at k = 1 and k = 9. Rows: `exact` (GEMM), `qdrant embedded` (qdrant-edge, exact search)
//! and, when `PATCHCORE_QDRANT_URL` is set, the server.
//!
//! `cargo run --release -p patchcore-qdrant --features embedded,server --example indices_bench`
//! (results in docs/BENCHMARKS.md, section "Qdrant").

use std::time::{Duration, Instant};

use ndarray::Array2;
use patchcore_nn::{ExactBuilder, IndexBuilder};
use patchcore_qdrant::{QdrantBuilder, QdrantParams};
use patchcore_testkit::lcg_matrix;

/// As xtask's: `centres` random centres, every row a centre plus noise.
fn clustered(rows: usize, cols: usize, centres: usize, seed: u64) -> Array2<f32> {
    let c = lcg_matrix(centres, cols, seed);
    let noise = lcg_matrix(rows, cols, seed + 1);
    Array2::from_shape_fn((rows, cols), |(i, j)| {
        4.0 * c[[(i * 7919) % centres, j]] + noise[[i, j]]
    })
}

/// Median of at least 3 runs and 2 s.
fn time_it(mut f: impl FnMut()) -> f64 {
    f();
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < 3 || start.elapsed() < Duration::from_secs(2) {
        let t = Instant::now();
        f();
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(|a, b| a.total_cmp(b));
    times[times.len() / 2]
}

fn main() -> patchcore_core::Result<()> {
    let scratch = tempfile::tempdir().map_err(|e| patchcore_core::Error::io("tempdir", e))?;
    let mut builders: Vec<(String, Box<dyn IndexBuilder>)> = vec![
        ("exact (GEMM, in-process)".into(), Box::new(ExactBuilder)),
        (
            "qdrant embedded (exact)".into(),
            Box::new(QdrantBuilder::from_params(&QdrantParams {
                embedded_path: Some(scratch.path().to_path_buf()),
                ..Default::default()
            })?),
        ),
    ];
    if let Ok(url) = std::env::var("PATCHCORE_QDRANT_URL") {
        builders.push((
            format!("qdrant {url} (exact)"),
            Box::new(QdrantBuilder::from_params(&QdrantParams {
                url: Some(url),
                ..Default::default()
            })?),
        ));
    }
    println!("| index | bank | queries | build (ms) | search k=1 (ms) | search k=9 (ms) |");
    println!("|---|---|---:|---:|---:|---:|");
    for (nb, dim, nq) in [(1_640, 152, 784), (16_384, 152, 784), (4_096, 1536, 784)] {
        let bank = clustered(nb, dim, 64, 3);
        let queries = clustered(nq, dim, 64, 5);
        for (name, b) in &builders {
            let t = Instant::now();
            let index = b.build(bank.clone())?;
            let build = t.elapsed().as_secs_f64();
            let k1 = time_it(|| {
                index.search(queries.view(), 1).expect("search");
            });
            let k9 = time_it(|| {
                index.search(queries.view(), 9).expect("search");
            });
            println!(
                "| {name} | {nb} x {dim} | {nq} | {:.1} | {:.1} | {:.1} |",
                build * 1e3,
                k1 * 1e3,
                k9 * 1e3
            );
        }
    }
    Ok(())
}
