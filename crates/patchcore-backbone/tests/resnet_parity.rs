//! torchvision ResNet parity on `fixtures/resnet_{wide,basic}_tiny.{pth,safetensors}`, and the
//! loader's refusals (wrong architecture, truncated file, NaN weights).

use burn::tensor::{Tensor, TensorData};
use patchcore_backbone::{Backbone, BlockKind, ResNet, ResNetSpec, TensorMap};
use patchcore_core::Error;
use patchcore_device::ComputeDevice;
use patchcore_testkit::fixtures::{Fixture, rel_errors};
use patchcore_testkit::shared_dir;

fn tiny(block: BlockKind, wpg: usize) -> ResNetSpec {
    ResNetSpec {
        name: "tiny".into(),
        block,
        layers: [1, 1, 1, 1],
        width_per_group: wpg,
    }
}

fn layers(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn check(stem: &str, spec: ResNetSpec, taps: &[&str], device: ComputeDevice) {
    let fx = Fixture::open(&format!("{stem}.safetensors")).expect("fixture");
    let map =
        TensorMap::read(&shared_dir().join(format!("fixtures/{stem}.pth"))).expect("read .pth");
    let dev = device.burn_device().expect("CPU backend");
    let net = ResNet::from_tensors(spec, map, &layers(taps), &dev).expect("build");
    let x = fx.f32("x").unwrap();
    let outs = net
        .forward(Tensor::<4>::from_data(
            TensorData::new(x.values, x.shape),
            &dev,
        ))
        .unwrap();
    for (name, out) in taps.iter().zip(outs) {
        let expect = fx.f32(name).unwrap();
        assert_eq!(out.dims().to_vec(), expect.shape, "{name} shape");
        let got = out.into_data().try_into_vec::<f32>().unwrap();
        let (l2, max) = rel_errors(&got, &expect.values);
        assert!(
            l2 <= 1e-4 && max <= 1e-3,
            "{stem} {device} {name}: rel L2 {l2:e}, rel max {max:e}"
        );
    }
}

#[test]
fn wide_bottleneck_matches_torchvision() {
    for device in ComputeDevice::ALL {
        check(
            "resnet_wide_tiny",
            tiny(BlockKind::Bottleneck, 128),
            &["layer1", "layer2", "layer3"],
            device,
        );
    }
}

// The basic-block fixture (`resnet_basic_tiny`) on every backend is part of the conformance
// suite (tests/conformance.rs).

#[test]
fn taps_are_returned_in_requested_order_and_layer4_needs_its_weights() {
    let map = TensorMap::read(&shared_dir().join("fixtures/resnet_basic_tiny.pth")).unwrap();
    let dev = ComputeDevice::Flex.burn_device().expect("CPU backend");
    let net = ResNet::from_tensors(
        tiny(BlockKind::Basic, 64),
        map.clone(),
        &layers(&["layer3", "layer2"]),
        &dev,
    )
    .unwrap();
    assert_eq!(net.channels(), vec![256, 128]);
    assert_eq!(net.strides(), vec![16, 8]);
    // The fixture stops after layer3: tapping layer4 must name the first missing tensor.
    let err = ResNet::from_tensors(tiny(BlockKind::Basic, 64), map, &layers(&["layer4"]), &dev)
        .unwrap_err();
    assert!(err.to_string().contains("layer4.0.conv1.weight"), "{err}");
}

#[test]
fn wrong_architecture_is_rejected_with_key_and_shapes() {
    let dev = ComputeDevice::Flex.burn_device().expect("CPU backend");
    let wide = || TensorMap::read(&shared_dir().join("fixtures/resnet_wide_tiny.pth")).unwrap();
    // Wide weights into a standard-width bottleneck: the first conv's shape differs.
    let err = ResNet::from_tensors(
        tiny(BlockKind::Bottleneck, 64),
        wide(),
        &layers(&["layer2"]),
        &dev,
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Weights { .. }), "{msg}");
    assert!(
        msg.contains("layer1.0.conv1.weight")
            && msg.contains("[128, 64, 1, 1]")
            && msg.contains("[64, 64, 1, 1]"),
        "{msg}"
    );
    // Bottleneck weights into a BasicBlock ResNet.
    let err = ResNet::from_tensors(
        tiny(BlockKind::Basic, 64),
        wide(),
        &layers(&["layer1"]),
        &dev,
    )
    .unwrap_err();
    assert!(err.to_string().contains("layer1.0.conv1.weight"), "{err}");
    // resnet18 has two blocks per stage: the tiny file lacks layer1.1.
    let basic = TensorMap::read(&shared_dir().join("fixtures/resnet_basic_tiny.pth")).unwrap();
    let err = ResNet::from_tensors(
        ResNetSpec::preset("resnet18").unwrap(),
        basic,
        &layers(&["layer1"]),
        &dev,
    )
    .unwrap_err();
    assert!(err.to_string().contains("layer1.1."), "{err}");
    // A file with more blocks than the architecture: extra tensors are named.
    let mut extra = TensorMap::read(&shared_dir().join("fixtures/resnet_basic_tiny.pth")).unwrap();
    let t = extra.tensors["layer1.0.conv1.weight"].clone();
    extra.tensors.insert("layer1.1.conv1.weight".into(), t);
    let err = ResNet::from_tensors(
        tiny(BlockKind::Basic, 64),
        extra,
        &layers(&["layer1"]),
        &dev,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("layer1.1.conv1.weight")
            && err.to_string().contains("another architecture"),
        "{err}"
    );
}

#[test]
fn truncated_and_corrupt_files_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(shared_dir().join("fixtures/resnet_basic_tiny.pth")).unwrap();
    let cut = dir.path().join("cut.pth");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let err = TensorMap::read(&cut).unwrap_err();
    assert!(
        matches!(err, Error::Weights { .. }) && err.to_string().contains("cut.pth"),
        "{err}"
    );
    let empty = dir.path().join("empty.pth");
    std::fs::write(&empty, b"").unwrap();
    assert!(TensorMap::read(&empty).is_err());
    assert!(
        TensorMap::read(&dir.path().join("missing.pth"))
            .unwrap_err()
            .to_string()
            .contains("not found")
    );
}

#[test]
fn nan_weights_are_rejected() {
    // A safetensors file whose first conv holds a NaN.
    let dir = tempfile::tempdir().unwrap();
    let mut values = vec![0.1f32; 64 * 3 * 7 * 7];
    values[5] = f32::NAN;
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![64, 3, 7, 7], &bytes)
            .unwrap();
    let path = dir.path().join("nan.safetensors");
    safetensors::serialize_to_file(vec![("conv1.weight", view)], None, &path).unwrap();
    let err = TensorMap::read(&path).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("conv1.weight") && msg.contains("non-finite"),
        "{msg}"
    );
}

#[test]
fn random_init_builds_every_preset() {
    let dev = ComputeDevice::Flex.burn_device().expect("CPU backend");
    for name in ["resnet18", "resnet34", "resnet50", "wide_resnet50_2"] {
        let spec = ResNetSpec::preset(name).unwrap();
        let map = spec.random_weights(0);
        let net = ResNet::from_tensors(spec, map, &layers(&["layer2", "layer3"]), &dev).unwrap();
        let x = Tensor::<4>::zeros([1, 3, 64, 64], &dev);
        let outs = net.forward(x).unwrap();
        assert_eq!(outs[0].dims()[1], net.channels()[0]);
        assert_eq!(outs[1].dims()[2], 4);
    }
    assert!(ResNetSpec::preset("resnet19").is_err());
}

#[test]
fn safetensors_weights_load_like_the_pth() {
    // Write the .pth tensors to a .safetensors file with torchvision key names.
    let map = TensorMap::read(&shared_dir().join("fixtures/resnet_basic_tiny.pth")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("basic.safetensors");
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = map
        .tensors
        .iter()
        .map(|(k, t)| {
            (
                k.clone(),
                t.shape.clone(),
                t.values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            )
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = bytes
        .iter()
        .map(|(k, s, b)| {
            (
                k.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                    .unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, &path).unwrap();
    let from_st = TensorMap::read(&path).unwrap();
    assert_eq!(from_st.tensors.len(), map.tensors.len());
    let dev = ComputeDevice::Flex.burn_device().expect("CPU backend");
    let fx = Fixture::open("resnet_basic_tiny.safetensors").unwrap();
    let net = ResNet::from_tensors(
        tiny(BlockKind::Basic, 64),
        from_st,
        &layers(&["layer2"]),
        &dev,
    )
    .unwrap();
    let x = fx.f32("x").unwrap();
    let out = net
        .forward(Tensor::<4>::from_data(
            TensorData::new(x.values, x.shape),
            &dev,
        ))
        .unwrap()
        .remove(0);
    let (l2, _) = rel_errors(
        &out.into_data().try_into_vec::<f32>().unwrap(),
        &fx.f32("layer2").unwrap().values,
    );
    assert!(l2 <= 1e-4, "rel L2 {l2:e}");
}
