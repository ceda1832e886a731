//! Ensembles: several backbones fitted and scored on their own, their scores and maps
//! min-max normalised over the test set and averaged, as the official implementation does.

use ndarray::Array2;

/// Min-max normalises each member's values over the whole test set and averages them
/// (the official implementation's ensemble rule). One member passes through unchanged.
pub fn combine_members(
    mut members: Vec<(Vec<f32>, Vec<Array2<f32>>)>,
) -> (Vec<f32>, Vec<Array2<f32>>) {
    if members.len() == 1 {
        return members.pop().expect("one member");
    }
    let norm = |lo: f32, hi: f32| {
        let span = if hi > lo { hi - lo } else { 1.0 };
        move |v: f32| (v - lo) / span
    };
    let n = members.len() as f32;
    let mut scores = vec![0f32; members[0].0.len()];
    let mut maps: Vec<Array2<f32>> = members[0]
        .1
        .iter()
        .map(|m| Array2::zeros(m.dim()))
        .collect();
    for (s, m) in &members {
        let f = norm(
            s.iter().copied().fold(f32::INFINITY, f32::min),
            s.iter().copied().fold(f32::NEG_INFINITY, f32::max),
        );
        for (acc, v) in scores.iter_mut().zip(s) {
            *acc += f(*v) / n;
        }
        let lo = m
            .iter()
            .flat_map(|a| a.iter())
            .copied()
            .fold(f32::INFINITY, f32::min);
        let hi = m
            .iter()
            .flat_map(|a| a.iter())
            .copied()
            .fold(f32::NEG_INFINITY, f32::max);
        let f = norm(lo, hi);
        for (acc, a) in maps.iter_mut().zip(m) {
            acc.zip_mut_with(a, |x, y| *x += f(*y) / n);
        }
    }
    (scores, maps)
}
