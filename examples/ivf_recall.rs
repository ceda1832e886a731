//! recall@1 of the IVF index against the exact index on real patch features, and the
//! memory bank it searches (`nn.kind = "ivf"`; paper-size banks are where it matters).
//!
//! ```text
//! cargo run --release -p patchcore --example ivf_recall -- <mvtec_root> <category> [ratio]
//! ```

use std::path::PathBuf;
use std::time::Instant;

use patchcore::core::NoProgress;
use patchcore::data::MvtecCategory;
use patchcore::nn::{ExactIndex, IvfIndex, NearestNeighborIndex, recall_at_1};
use patchcore::{Config, PatchCore};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = PathBuf::from(
        args.first()
            .map(String::as_str)
            .unwrap_or("../shared/datasets/mvtec_ad_256"),
    );
    let category = args.get(1).map(String::as_str).unwrap_or("bottle");
    let ratio: f64 = args.get(2).map(|r| r.parse()).transpose()?.unwrap_or(0.1);
    let cat = MvtecCategory::open(&root, category)?;
    let mut cfg = Config::default_experiment()?;
    cfg.sampler
        .set_size(patchcore::sampler::SampleSize::Ratio(ratio))?;
    let model = PatchCore::from_config(&cfg)?.fit(&cat.train, &NoProgress)?;
    let bank = model.bank();
    let test: Vec<PathBuf> = cat.test.iter().map(|t| t.path.clone()).collect();
    let queries = model.extract_paths(&test, &NoProgress)?.features;
    println!(
        "bank {} x {}, {} test patches",
        bank.nrows(),
        bank.ncols(),
        queries.nrows()
    );
    let exact = ExactIndex::new(bank.clone())?;
    let t = Instant::now();
    exact.search(queries.view(), 1)?;
    println!("| index | nlist | nprobe | recall@1 | search (s) |\n|---|---:|---:|---:|---:|");
    println!(
        "| exact GEMM | | | 1.0000 | {:.2} |",
        t.elapsed().as_secs_f64()
    );
    for nprobe in [1, 4, 8, 16, 32] {
        let ivf = IvfIndex::new(bank.clone(), 0, nprobe, 10, 0)?;
        let t = Instant::now();
        ivf.search(queries.view(), 1)?;
        let secs = t.elapsed().as_secs_f64();
        let recall = recall_at_1(&exact, &ivf, queries.view())?;
        println!(
            "| IVF-flat | {} | {nprobe} | {recall:.4} | {secs:.2} |",
            ivf.nlist()
        );
    }
    Ok(())
}
