//! The scorer against hand-computed values.

use ndarray::Array2;
use patchcore_core::PatchFeatures;
use patchcore_nn::ExactIndex;
use patchcore_score::{PatchCoreScorer, Scorer};

#[test]
fn patch_scores_are_nearest_distances_and_eq7_reweights() {
    // Bank: points on a line at 0, 1, 2, 10 (1-D features).
    let bank = Array2::from_shape_vec((4, 1), vec![0.0f32, 1.0, 2.0, 10.0]).unwrap();
    let index = ExactIndex::new(bank).unwrap();
    // One image, 2x2 grid: patches at 0.5, 1.0, 4.0, 2.0.
    let feats = Array2::from_shape_vec((4, 1), vec![0.5f32, 1.0, 4.0, 2.0]).unwrap();
    let pf = PatchFeatures::new(feats, 1, 2, 2).unwrap();

    let plain = PatchCoreScorer::new(1, 4.0)
        .unwrap()
        .score(&pf, &index)
        .unwrap();
    assert_eq!(
        plain[0].patch_scores.as_slice().unwrap(),
        &[0.5, 0.0, 2.0, 0.0]
    );
    assert_eq!(plain[0].score, 2.0);

    // k = 3: m_test = 4, m* = 2, N_3(m*) = {2, 1, 0} (10 is farther from 2 than 0 is).
    // distances from m_test: 2, 3, 4 -> weight = 1 - e^2 / (e^2 + e^3 + e^4).
    let w = 1.0 - (2f32).exp() / ((2f32).exp() + (3f32).exp() + (4f32).exp());
    let rew = PatchCoreScorer::new(3, 4.0)
        .unwrap()
        .score(&pf, &index)
        .unwrap();
    assert!(
        (rew[0].score - w * 2.0).abs() < 1e-6,
        "{} vs {}",
        rew[0].score,
        w * 2.0
    );
}

#[test]
fn anomaly_map_has_requested_size_and_peak_near_the_defect() {
    let scorer = PatchCoreScorer::default();
    let mut grid = Array2::<f32>::zeros((28, 28));
    grid[[7, 20]] = 5.0;
    let map = scorer.anomaly_map(grid.view(), 224, 224);
    assert_eq!(map.dim(), (224, 224));
    let (pos, _) = map.indexed_iter().fold(
        ((0, 0), f32::MIN),
        |a, (i, &v)| if v > a.1 { (i, v) } else { a },
    );
    // Cell (7, 20) covers pixels 56..64 x 160..168.
    assert!(
        (56..64).contains(&pos.0) && (160..168).contains(&pos.1),
        "peak at {pos:?}"
    );
}

#[test]
fn rejects_invalid_parameters() {
    assert!(PatchCoreScorer::new(0, 4.0).is_err());
    assert!(PatchCoreScorer::new(9, -1.0).is_err());
    assert!(PatchCoreScorer::new(9, f32::NAN).is_err());
}
