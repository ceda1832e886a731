//! PatchCore's memory bank from three component crates alone, on feature maps of your own
//! backbone (here: synthetic two-layer maps of a striped texture; in practice whatever network
//! you run, converted to `[B, C, H, W]` arrays).
//!
//! 1. `patchcore-aggregate`: locally aware patch features (3x3 average, deeper map upsampled,
//!    concatenated) from the maps of defect-free images;
//! 2. `patchcore-sampler`: a greedy k-center coreset of 10 % of the patches, from checked
//!    parameters;
//! 3. `patchcore-nn`: an exact index over the bank; a test image's patch scores are the
//!    distances to the nearest bank rows, its score the largest.
//!
//! Exits non-zero unless the defective test image scores above every defect-free one and its
//! worst patch lies on the defect.

use ndarray::Array4;
use patchcore_aggregate::{FeatureAggregator, LocallyAwareParams};
use patchcore_core::NoProgress;
use patchcore_nn::{ExactBuilder, IndexBuilder};
use patchcore_sampler::{GreedyParams, Sampler};

/// Two feature maps of one image: `[1, 8, 16, 16]` (stride 8) and `[1, 16, 8, 8]` (stride
/// 16) of a striped texture with per-image phase `seed`; with `defect`, a bright blob around
/// cell (11, 5) of the first map.
fn maps(seed: u64, defect: bool) -> [Array4<f32>; 2] {
    let phase = (seed % 7) as f32 * 0.3;
    let shallow = Array4::from_shape_fn((1, 8, 16, 16), |(_, c, y, x)| {
        let stripe = ((x as f32 + phase) * 0.8 + c as f32).sin();
        let blob = if defect && y.abs_diff(11) <= 1 && x.abs_diff(5) <= 1 {
            3.0
        } else {
            0.0
        };
        stripe + blob
    });
    let deep = Array4::from_shape_fn((1, 16, 8, 8), |(_, c, y, x)| {
        ((x as f32 * 2.0 + phase) * 0.4 + c as f32 * 0.5).cos() + 0.1 * y as f32
    });
    [shallow, deep]
}

fn main() -> patchcore_core::Result<()> {
    let aggregator = LocallyAwareParams::default().check()?;
    // Defect-free training images: every patch of every image in one matrix.
    let mut rows = Vec::new();
    for seed in 0..12 {
        rows.push(aggregator.aggregate(&maps(seed, false))?.features);
    }
    let views: Vec<_> = rows.iter().map(|r| r.view()).collect();
    let features = ndarray::concatenate(ndarray::Axis(0), &views)
        .map_err(|e| patchcore_core::Error::Shape(e.to_string()))?;
    let sampler = GreedyParams {
        ratio: Some(0.1),
        projection_dim: 16,
        ..GreedyParams::default()
    }
    .check()?
    .with_seed(0);
    let keep = sampler.select(features.view(), &NoProgress)?;
    let bank = features.select(ndarray::Axis(0), &keep);
    println!(
        "{} patch features of width {} -> memory bank of {} rows ({})",
        features.nrows(),
        features.ncols(),
        bank.nrows(),
        sampler.name()
    );
    let index = ExactBuilder.build(bank)?;
    let score = |defect: bool, seed: u64| -> patchcore_core::Result<(f32, usize)> {
        let patches = aggregator.aggregate(&maps(seed, defect))?;
        let nn = index.search(patches.features.view(), 1)?;
        let dists = nn.distances.column(0);
        let (worst, &s) = dists
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .expect("patches");
        Ok((s, worst))
    };
    let good: Vec<f32> = (100..104)
        .map(|seed| score(false, seed).map(|s| s.0))
        .collect::<patchcore_core::Result<_>>()?;
    let (bad, worst) = score(true, 100)?;
    println!("defect-free test images: {good:?}; defective: {bad} at cell {worst}");
    let max_good = good.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let (wy, wx) = (worst / 16, worst % 16);
    if bad <= max_good || wy.abs_diff(11) > 2 || wx.abs_diff(5) > 2 {
        return Err(patchcore_core::Error::InvalidArgument(format!(
            "the defect was not found: score {bad} vs {max_good}, worst cell ({wy}, {wx})"
        )));
    }
    println!("ok: the defect scores highest, at cell ({wy}, {wx})");
    Ok(())
}
