//! The GEMM index agrees with brute force and with every linfa-nn adapter.

use ndarray::Array2;
use patchcore_nn::{ExactIndex, LinfaAlgorithm, LinfaIndex, NearestNeighborIndex};
use proptest::prelude::*;

fn brute(bank: &Array2<f32>, q: &Array2<f32>, k: usize) -> Vec<Vec<f64>> {
    q.rows()
        .into_iter()
        .map(|qr| {
            let mut d: Vec<f64> = bank
                .rows()
                .into_iter()
                .map(|m| {
                    m.iter()
                        .zip(qr.iter())
                        .map(|(a, b)| ((a - b) as f64).powi(2))
                        .sum::<f64>()
                        .sqrt()
                })
                .collect();
            d.sort_by(|a, b| a.total_cmp(b));
            d.truncate(k);
            d
        })
        .collect()
}

fn mat(n: usize, d: usize) -> impl Strategy<Value = Array2<f32>> {
    prop::collection::vec(-3.0f32..3.0, n * d)
        .prop_map(move |v| Array2::from_shape_vec((n, d), v).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn exact_and_linfa_match_brute_force(
        (bank, q, k) in (1usize..300, 1usize..40, 1usize..20, 1usize..12)
            .prop_flat_map(|(n, nq, d, k)| (mat(n, d), mat(nq, d), Just(k)))
    ) {
        let expect = brute(&bank, &q, k);
        let mut indices: Vec<Box<dyn NearestNeighborIndex>> = vec![Box::new(ExactIndex::new(bank.clone()).unwrap())];
        for alg in [LinfaAlgorithm::LinearSearch, LinfaAlgorithm::KdTree, LinfaAlgorithm::BallTree] {
            indices.push(Box::new(LinfaIndex::new(bank.clone(), alg).unwrap()));
        }
        for index in &indices {
            let nn = index.search(q.view(), k).unwrap();
            let kk = k.min(bank.nrows());
            prop_assert_eq!(nn.distances.ncols(), kk);
            for (r, exp) in expect.iter().enumerate() {
                prop_assert_eq!(exp.len(), kk);
                for (j, &e) in exp.iter().enumerate() {
                    let got = nn.distances[[r, j]] as f64;
                    prop_assert!((got - e).abs() <= 2e-3 * e.max(1.0), "{} row {} rank {}: {} vs {}", index.name(), r, j, got, e);
                    // The returned index really is at that distance.
                    let i = nn.indices[[r, j]];
                    let d: f64 = bank.row(i).iter().zip(q.row(r).iter()).map(|(a, b)| ((a - b) as f64).powi(2)).sum::<f64>().sqrt();
                    prop_assert!((d - got).abs() <= 2e-3 * d.max(1.0));
                }
            }
        }
    }
}

#[test]
fn rejects_bad_queries() {
    let bank = Array2::<f32>::ones((4, 3));
    let idx = ExactIndex::new(bank).unwrap();
    assert!(idx.search(Array2::<f32>::ones((2, 5)).view(), 1).is_err());
    assert!(idx.search(Array2::<f32>::ones((2, 3)).view(), 0).is_err());
    let mut bad = Array2::<f32>::ones((2, 3));
    bad[[0, 1]] = f32::NAN;
    assert!(idx.search(bad.view(), 1).is_err());
    assert!(ExactIndex::new(Array2::<f32>::zeros((0, 3))).is_err());
}

#[test]
fn ivf_is_exact_with_every_cell_probed_and_accurate_on_clustered_data() {
    use patchcore_nn::{IvfIndex, recall_at_1};
    // 40 clusters of 50 points in 32-d; queries drawn near the clusters.
    let mut s = 7u64;
    let mut next = || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    };
    let centres: Vec<Vec<f32>> = (0..40)
        .map(|_| (0..32).map(|_| next() * 20.0).collect())
        .collect();
    let bank = Array2::from_shape_fn((2000, 32), |(i, j)| centres[i % 40][j] + next());
    let queries = Array2::from_shape_fn((300, 32), |(i, j)| centres[(i * 7) % 40][j] + next());
    let exact = ExactIndex::new(bank.clone()).unwrap();
    let all = IvfIndex::new(bank.clone(), 45, 45, 5, 0).unwrap();
    assert_eq!(
        recall_at_1(&exact, &all, queries.view()).unwrap(),
        1.0,
        "nprobe = nlist is exact"
    );
    let e = exact.search(queries.view(), 5).unwrap();
    let a = all.search(queries.view(), 5).unwrap();
    for (x, y) in e.distances.iter().zip(a.distances.iter()) {
        assert!((x - y).abs() <= 1e-3 * x.max(1.0));
    }
    let ivf = IvfIndex::new(bank, 0, 4, 10, 0).unwrap();
    assert_eq!(ivf.nlist(), 45);
    let recall = recall_at_1(&exact, &ivf, queries.view()).unwrap();
    assert!(
        recall >= 0.95,
        "recall@1 {recall} with 4 of 45 cells probed"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(6))]

    /// Banks past the exact index's 2048-row bank block and queries past its 128-row query
    /// block: the blocked search must still return the brute-force neighbours.
    #[test]
    fn exact_matches_brute_force_past_its_blocks(
        (bank, q, k) in (2049usize..5000, 129usize..300, 1usize..8, 1usize..10)
            .prop_flat_map(|(n, nq, d, k)| (mat(n, d), mat(nq, d), Just(k)))
    ) {
        let expect = brute(&bank, &q, k);
        let index = ExactIndex::new(bank.clone()).unwrap();
        let nn = index.search(q.view(), k).unwrap();
        for (r, exp) in expect.iter().enumerate() {
            for (j, e) in exp.iter().enumerate() {
                let got = nn.distances[[r, j]] as f64;
                prop_assert!((got - e).abs() <= 2e-3 * e.max(1.0), "row {} rank {}: {} vs {}", r, j, got, e);
            }
        }
        // k = 1 takes its own fast path.
        let one = index.search(q.view(), 1).unwrap();
        for (r, exp) in expect.iter().enumerate() {
            prop_assert!((one.distances[[r, 0]] as f64 - exp[0]).abs() <= 2e-3 * exp[0].max(1.0));
        }
    }
}
