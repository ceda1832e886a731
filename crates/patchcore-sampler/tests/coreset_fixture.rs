//! Greedy k-center against `fixtures/coreset.safetensors` (numpy reference, float64).

use ndarray::Array2;
use patchcore_core::NoProgress;
use patchcore_sampler::{covering_radius, greedy_k_center, greedy_k_center_pruned};
use patchcore_testkit::fixtures::Fixture;

fn points(fx: &Fixture, name: &str) -> Array2<f32> {
    let a = fx.f32(name).unwrap();
    Array2::from_shape_vec((a.shape[0], a.shape[1]), a.values).unwrap()
}

fn check(fx: &Fixture, pts: &Array2<f32>, prefix: &str) {
    let expect: Vec<usize> = fx
        .i64(&format!("{prefix}.indices"))
        .unwrap()
        .values
        .iter()
        .map(|&i| i as usize)
        .collect();
    let run = greedy_k_center(pts.view(), expect.len(), 0, &NoProgress).unwrap();
    assert_eq!(run.indices, expect, "{prefix}: selection order differs");
    let pruned = greedy_k_center_pruned(pts.view(), expect.len(), 0, &NoProgress).unwrap();
    assert_eq!(
        pruned.indices, expect,
        "{prefix}: pruned selection order differs"
    );
    let picked = fx.f64(&format!("{prefix}.picked_distance")).unwrap().values;
    for (i, (a, b)) in run.picked_distance.iter().zip(&picked).enumerate() {
        assert!(
            (*a as f64 - b).abs() <= 1e-4 * b.max(1.0),
            "{prefix}: picked distance {i}: {a} vs {b}"
        );
    }
    let radius = fx.f64(&format!("{prefix}.radius")).unwrap().values[0];
    assert!(
        (run.radius as f64 - radius).abs() <= 1e-4 * radius,
        "{prefix}: radius {} vs {radius}",
        run.radius
    );
    let r2 = covering_radius(pts.view(), &run.indices);
    assert!((r2 - run.radius).abs() <= 1e-5 * run.radius.max(1.0));
}

#[test]
fn projected_selection_matches_reference() {
    let fx = Fixture::open("coreset.safetensors").expect("fixture");
    let x = points(&fx, "X");
    let p = points(&fx, "P");
    // Our own projection of X by the stored P must reproduce the stored XP.
    let xp_ours = x.dot(&p);
    let xp = points(&fx, "XP");
    let max = xp_ours
        .iter()
        .zip(xp.iter())
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(max < 1e-4, "X @ P differs from the stored XP by {max}");
    check(&fx, &xp, "proj");
    let run = greedy_k_center(xp.view(), 300, 0, &NoProgress).unwrap();
    let r_x = covering_radius(x.view(), &run.indices) as f64;
    let expect = fx.f64("proj.radius_in_X").unwrap().values[0];
    assert!(
        (r_x - expect).abs() <= 1e-4 * expect,
        "radius in X {r_x} vs {expect}"
    );
}

#[test]
fn unprojected_selection_matches_reference() {
    let fx = Fixture::open("coreset.safetensors").expect("fixture");
    let x = points(&fx, "X");
    check(&fx, &x, "noproj");
}
