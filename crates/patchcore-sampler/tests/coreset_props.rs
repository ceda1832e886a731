//! proptest invariants of the samplers on small random inputs.
//!
//! Case counts: 256 random inputs per property (512 for the cheap pruned-vs-plain equality),
//! each with up to 120 points in up to 12 dimensions, so every property is checked on
//! thousands of greedy steps, degenerate inputs (n = 1, duplicated rows, k >= n) included.

use std::collections::HashSet;

use ndarray::Array2;
use patchcore_core::NoProgress;
use patchcore_sampler::{
    GreedyCoreset, GreedyVariant, IdentitySampler, ProjDim, Projection, RandomSampler, SampleSize,
    Sampler, covering_radius, greedy_k_center, greedy_k_center_partitioned, greedy_k_center_pruned,
};
use proptest::prelude::*;

fn matrix(max_n: usize, max_d: usize) -> impl Strategy<Value = Array2<f32>> {
    (1usize..max_n, 1usize..max_d).prop_flat_map(|(n, d)| {
        // Coarse values produce duplicated rows and exact ties.
        prop_oneof![
            prop::collection::vec(-10.0f32..10.0, n * d),
            prop::collection::vec((-3i32..3).prop_map(|v| v as f32), n * d),
        ]
        .prop_map(move |v| Array2::from_shape_vec((n, d), v).unwrap())
    })
}

fn greedy(k: usize, projection: Projection, seed: u64, variant: GreedyVariant) -> GreedyCoreset {
    GreedyCoreset::new(SampleSize::Count(k), variant)
        .and_then(|g| g.with_projection(projection))
        .expect("valid parameters")
        .with_seed(seed)
}

fn projections() -> impl Strategy<Value = Projection> {
    prop_oneof![
        Just(Projection::None),
        (1usize..6).prop_map(|d| Projection::Gaussian(ProjDim::Fixed(d))),
        (1usize..6).prop_map(|d| Projection::Sparse {
            dim: ProjDim::Fixed(d),
            density: Some(1.0 / 3.0)
        }),
    ]
}

fn variants() -> impl Strategy<Value = GreedyVariant> {
    prop_oneof![
        Just(GreedyVariant::Plain),
        Just(GreedyVariant::Pruned),
        (1usize..12).prop_map(|starts| GreedyVariant::Approximate { starts }),
    ]
}

/// The optimal k-center radius by brute force over all k-subsets (tiny inputs only).
fn optimal_radius(x: &Array2<f32>, k: usize) -> f32 {
    fn rec(x: &Array2<f32>, k: usize, from: usize, chosen: &mut Vec<usize>, best: &mut f32) {
        if chosen.len() == k {
            *best = best.min(covering_radius(x.view(), chosen));
            return;
        }
        for i in from..x.nrows() {
            chosen.push(i);
            rec(x, k, i + 1, chosen, best);
            chosen.pop();
        }
    }
    let mut best = f32::INFINITY;
    rec(x, k.min(x.nrows()), 0, &mut Vec::new(), &mut best);
    best
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn selection_is_a_subset_of_requested_size(
        x in matrix(120, 12), k in 1usize..60, seed in 0u64..1000, proj in projections(), variant in variants()
    ) {
        let n = x.nrows();
        let g = greedy(k, proj, seed, variant);
        let r = RandomSampler::new(SampleSize::Count(k), seed);
        for sampler in [&g as &dyn Sampler, &r] {
            let sel = sampler.select(x.view(), &NoProgress).unwrap();
            prop_assert_eq!(sel.len(), k.min(n), "{}", sampler.name());
            prop_assert!(sel.iter().all(|&i| i < n));
            let set: HashSet<_> = sel.iter().collect();
            prop_assert_eq!(set.len(), sel.len(), "repeated index from {}", sampler.name());
        }
        prop_assert_eq!(IdentitySampler.select(x.view(), &NoProgress).unwrap(), (0..n).collect::<Vec<_>>());
    }

    #[test]
    fn covering_radius_never_increases_with_size(x in matrix(80, 8), seed in 0u64..1000, variant in variants()) {
        let n = x.nrows();
        let mut last = f32::INFINITY;
        for k in 1..=n.min(25) {
            let sel = greedy(k, Projection::None, seed, variant).select(x.view(), &NoProgress).unwrap();
            let r = covering_radius(x.view(), &sel);
            prop_assert!(r <= last + 1e-5, "radius grew from {} to {} at k={}", last, r, k);
            last = r;
        }
        let all = greedy(n, Projection::None, seed, variant).select(x.view(), &NoProgress).unwrap();
        prop_assert_eq!(covering_radius(x.view(), &all), 0.0);
    }

    #[test]
    fn greedy_is_a_two_approximation(x in matrix(10, 4), k in 1usize..4, seed in 0u64..1000) {
        let opt = optimal_radius(&x, k);
        let sel = greedy(k, Projection::None, seed, GreedyVariant::Plain).select(x.view(), &NoProgress).unwrap();
        let r = covering_radius(x.view(), &sel);
        prop_assert!(r <= 2.0 * opt * (1.0 + 1e-5) + 1e-6, "greedy radius {} > 2 x optimum {}", r, opt);
    }

    #[test]
    fn same_seed_same_selection(x in matrix(120, 12), k in 1usize..40, seed in 0u64..1000, proj in projections(), variant in variants()) {
        let a = greedy(k, proj, seed, variant).select(x.view(), &NoProgress).unwrap();
        let b = greedy(k, proj, seed, variant).select(x.view(), &NoProgress).unwrap();
        prop_assert_eq!(a, b);
        let a = RandomSampler::new(SampleSize::Count(k), seed).select(x.view(), &NoProgress).unwrap();
        let b = RandomSampler::new(SampleSize::Count(k), seed).select(x.view(), &NoProgress).unwrap();
        prop_assert_eq!(a, b);
    }

    #[test]
    fn greedy_beats_random_on_clustered_data(
        centres in prop::collection::vec(prop::collection::vec(-100.0f32..100.0, 3), 6),
        jitter in prop::collection::vec(-1.0f32..1.0, 6 * 10 * 3),
        seed in 0u64..1000,
    ) {
        // Six tight clusters of ten points; k = 6.
        let x = Array2::from_shape_fn((60, 3), |(i, j)| centres[i / 10][j] + jitter[i * 3 + j]);
        let sel = greedy(6, Projection::None, seed, GreedyVariant::Plain).select(x.view(), &NoProgress).unwrap();
        let g = covering_radius(x.view(), &sel);
        let random_mean: f32 = (0..20u64)
            .map(|s| {
                let sel = RandomSampler::new(SampleSize::Count(6), seed * 100 + s).select(x.view(), &NoProgress).unwrap();
                covering_radius(x.view(), &sel)
            })
            .sum::<f32>()
            / 20.0;
        prop_assert!(g <= random_mean + 1e-4, "greedy {} vs random mean {}", g, random_mean);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn pruned_greedy_equals_plain_greedy(x in matrix(120, 12), k in 1usize..80, start_frac in 0.0f64..1.0) {
        let start = ((x.nrows() as f64 * start_frac) as usize).min(x.nrows() - 1);
        let plain = greedy_k_center(x.view(), k, start, &NoProgress).unwrap();
        let pruned = greedy_k_center_pruned(x.view(), k, start, &NoProgress).unwrap();
        prop_assert_eq!(&plain.indices, &pruned.indices);
        prop_assert_eq!(plain.radius, pruned.radius);
    }
}

/// The partitioned greedy's invariants on any input: `k` distinct rows; every row within the
/// reported radius of a kept row (checked against the rows themselves); the picks after the
/// blocks' starts in order of decreasing distance; the same selection for the same seed.
fn check_partitioned(
    x: &Array2<f32>,
    k: usize,
    block_picks: usize,
    seed: u64,
) -> Result<(), TestCaseError> {
    let n = x.nrows();
    let run = greedy_k_center_partitioned(x.view(), k, block_picks, seed, &NoProgress).unwrap();
    prop_assert_eq!(run.indices.len(), k.min(n));
    let set: HashSet<_> = run.indices.iter().collect();
    prop_assert_eq!(set.len(), run.indices.len());
    let r = covering_radius(x.view(), &run.indices);
    prop_assert!(
        r <= run.radius * (1.0 + 1e-5) + 1e-6,
        "covering radius {} > reported {}",
        r,
        run.radius
    );
    let later: Vec<f32> = run
        .picked_distance
        .iter()
        .copied()
        .skip_while(|&v| v == 0.0)
        .collect();
    prop_assert!(
        later.windows(2).all(|w| w[0] >= w[1]),
        "picks out of order: {:?}",
        later
    );
    let again = greedy_k_center_partitioned(x.view(), k, block_picks, seed, &NoProgress).unwrap();
    prop_assert_eq!(&run.indices, &again.indices);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn partitioned_greedy_covers_within_its_radius(
        x in matrix(120, 12), k in 1usize..60, block_picks in 1usize..12, seed in 0u64..1000
    ) {
        check_partitioned(&x, k, block_picks, seed)?;
    }

    #[test]
    fn partitioned_greedy_with_one_block_is_the_exact_greedy(
        x in matrix(120, 12), k in 1usize..40, seed in 0u64..1000
    ) {
        // block_picks >= k: one block holding every row.
        let run = greedy_k_center_partitioned(x.view(), k, k, seed, &NoProgress).unwrap();
        let exact = greedy_k_center_pruned(x.view(), k, run.indices[0], &NoProgress).unwrap();
        prop_assert_eq!(&run.indices, &exact.indices);
        prop_assert_eq!(run.radius, exact.radius);
    }
}

/// Clustered rows (a few centres plus jitter) of low width: cheap enough to go past the
/// greedy's 4096-row parallel chunk and the pruned variant's cluster splitting, where the
/// small properties above never reach.
fn large_matrix() -> impl Strategy<Value = Array2<f32>> {
    (4097usize..9000, 1usize..6, 1usize..40, any::<u64>()).prop_map(|(n, d, centres, seed)| {
        let c = patchcore_testkit::lcg_matrix(centres, d, seed);
        let noise = patchcore_testkit::lcg_matrix(n, d, seed.wrapping_add(1));
        Array2::from_shape_fn((n, d), |(i, j)| 8.0 * c[[i % centres, j]] + noise[[i, j]])
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn large_inputs_pruned_equals_plain_and_covering_holds(
        x in large_matrix(), k in 1usize..64, start_frac in 0.0f64..1.0
    ) {
        let n = x.nrows();
        let start = ((n as f64 * start_frac) as usize).min(n - 1);
        let plain = greedy_k_center(x.view(), k, start, &NoProgress).unwrap();
        let pruned = greedy_k_center_pruned(x.view(), k, start, &NoProgress).unwrap();
        prop_assert_eq!(&plain.indices, &pruned.indices);
        prop_assert_eq!(plain.radius, pruned.radius);
        // Coverage: every row lies within the reported radius of a kept row (checked in f64
        // against the rows themselves, not the greedy's own bookkeeping).
        let r = covering_radius(x.view(), &pruned.indices);
        prop_assert!((r - pruned.radius).abs() <= 1e-4 * pruned.radius.max(1.0), "{} vs {}", r, pruned.radius);
        let set: HashSet<_> = pruned.indices.iter().collect();
        prop_assert_eq!(set.len(), k.min(n));
    }

    #[test]
    fn large_inputs_partitioned_covers_within_its_radius(
        x in large_matrix(), k in 16usize..200, block_picks in 2usize..16, seed in 0u64..1000
    ) {
        // Many blocks (k / block_picks of them), so the merge extends blocks.
        check_partitioned(&x, k, block_picks, seed)?;
    }
}
