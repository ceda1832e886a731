//! proptest invariants of the samplers on small random inputs.

use std::collections::HashSet;

use ndarray::Array2;
use patchcore_core::NoProgress;
use patchcore_sampler::{GreedyCoreset, RandomSampler, SampleSize, Sampler, covering_radius};
use proptest::prelude::*;

fn matrix() -> impl Strategy<Value = Array2<f32>> {
    (1usize..120, 1usize..12).prop_flat_map(|(n, d)| {
        prop::collection::vec(-10.0f32..10.0, n * d)
            .prop_map(move |v| Array2::from_shape_vec((n, d), v).unwrap())
    })
}

fn greedy(k: usize, proj: Option<usize>, seed: u64) -> GreedyCoreset {
    GreedyCoreset {
        size: SampleSize::Count(k),
        projection_dim: proj,
        seed,
        start: None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn selection_is_a_subset_of_requested_size(x in matrix(), k in 1usize..60, seed in 0u64..1000, proj in prop::option::of(1usize..6)) {
        let n = x.nrows();
        for sampler in [&greedy(k, proj, seed) as &dyn Sampler, &RandomSampler { size: SampleSize::Count(k), seed }] {
            let sel = sampler.select(x.view(), &NoProgress).unwrap();
            prop_assert_eq!(sel.len(), k.min(n));
            prop_assert!(sel.iter().all(|&i| i < n));
            let set: HashSet<_> = sel.iter().collect();
            prop_assert_eq!(set.len(), sel.len(), "repeated index");
        }
    }

    #[test]
    fn covering_radius_never_increases_with_size(x in matrix(), seed in 0u64..1000) {
        let n = x.nrows();
        let mut last = f32::INFINITY;
        for k in 1..=n.min(25) {
            let sel = greedy(k, None, seed).select(x.view(), &NoProgress).unwrap();
            let r = covering_radius(x.view(), &sel);
            prop_assert!(r <= last + 1e-5, "radius grew from {} to {} at k={}", last, r, k);
            last = r;
        }
        // Keeping every row covers everything.
        let all = greedy(n, None, seed).select(x.view(), &NoProgress).unwrap();
        prop_assert_eq!(covering_radius(x.view(), &all), 0.0);
    }

    #[test]
    fn same_seed_same_selection(x in matrix(), k in 1usize..40, seed in 0u64..1000) {
        let a = greedy(k, Some(3), seed).select(x.view(), &NoProgress).unwrap();
        let b = greedy(k, Some(3), seed).select(x.view(), &NoProgress).unwrap();
        prop_assert_eq!(a, b);
        let a = RandomSampler { size: SampleSize::Count(k), seed }.select(x.view(), &NoProgress).unwrap();
        let b = RandomSampler { size: SampleSize::Count(k), seed }.select(x.view(), &NoProgress).unwrap();
        prop_assert_eq!(a, b);
    }
}
