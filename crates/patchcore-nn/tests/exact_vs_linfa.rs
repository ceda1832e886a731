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
                for j in 0..kk {
                    let got = nn.distances[[r, j]] as f64;
                    prop_assert!((got - exp[j]).abs() <= 2e-3 * exp[j].max(1.0), "{} row {} rank {}: {} vs {}", index.name(), r, j, got, exp[j]);
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
