//! The torchvision ResNet family (He et al. 2016, "v1.5": stride on the 3x3 conv) and the
//! wide variants (Zagoruyko & Komodakis 2016), with torchvision key names and BatchNorm
//! folded into the convolutions at load time.

use burn::tensor::module::max_pool2d;
use burn::tensor::ops::MaxPoolOptions;
use burn::tensor::{Device, Tensor};
use patchcore_core::{Error, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use crate::Backbone;
use crate::host::{HostConv, HostMap, is_host_device, max_pool_3x3_s2};
use crate::layers::{Act, ConvBn, PaddingMode, Taps, check_input, resolve_taps};
use crate::weights::{NamedTensor, TensorMap};

/// Tappable layers and their strides.
pub const RESNET_LAYERS: [(&str, usize); 5] = [
    ("stem", 4),
    ("layer1", 4),
    ("layer2", 8),
    ("layer3", 16),
    ("layer4", 32),
];

const PLANES: [usize; 4] = [64, 128, 256, 512];
const BN_EPS: f32 = 1e-5;

/// Residual block design.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockKind {
    /// Two 3x3 convolutions (resnet18/34), expansion 1.
    Basic,
    /// 1x1 - 3x3 - 1x1 (resnet50 and deeper, wide variants), expansion 4.
    Bottleneck,
}

/// A ResNet architecture: torchvision's `ResNet(block, layers, width_per_group=...)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResNetSpec {
    /// Name for reports.
    pub name: String,
    /// Residual block type (BasicBlock or Bottleneck).
    pub block: BlockKind,
    /// Blocks per stage `[layer1, layer2, layer3, layer4]`.
    pub layers: [usize; 4],
    /// Bottleneck width per group (64 standard, 128 for the wide variants).
    pub width_per_group: usize,
}

impl ResNetSpec {
    /// torchvision presets: resnet18/34/50/101/152, wide_resnet50_2, wide_resnet101_2.
    pub fn preset(name: &str) -> Result<Self> {
        let (block, layers, wpg) = match name {
            "resnet18" => (BlockKind::Basic, [2, 2, 2, 2], 64),
            "resnet34" => (BlockKind::Basic, [3, 4, 6, 3], 64),
            "resnet50" => (BlockKind::Bottleneck, [3, 4, 6, 3], 64),
            "resnet101" => (BlockKind::Bottleneck, [3, 4, 23, 3], 64),
            "resnet152" => (BlockKind::Bottleneck, [3, 8, 36, 3], 64),
            "wide_resnet50_2" => (BlockKind::Bottleneck, [3, 4, 6, 3], 128),
            "wide_resnet101_2" => (BlockKind::Bottleneck, [3, 4, 23, 3], 128),
            other => {
                return Err(Error::config(
                    "backbone.arch",
                    format!(
                        "unknown ResNet `{other}`; allowed: resnet18, resnet34, resnet50, resnet101, \
                         resnet152, wide_resnet50_2, wide_resnet101_2"
                    ),
                ));
            }
        };
        Ok(Self {
            name: name.to_string(),
            block,
            layers,
            width_per_group: wpg,
        })
    }

    fn expansion(&self) -> usize {
        match self.block {
            BlockKind::Basic => 1,
            BlockKind::Bottleneck => 4,
        }
    }

    /// Floating-point operations (2 per multiply-add) of every convolution of a forward pass
    /// up to and including stage `last` (1..=4: `layer1`..`layer4`; 0: the stem alone) on a
    /// `side` x `side` input: what GFLOP/s figures of the backbone divide by. Bias, batch
    /// norm, activations and pooling are not counted.
    pub fn conv_flops(&self, side: usize, last: usize) -> f64 {
        let conv = |cin: usize, cout: usize, k: usize, res: usize| {
            2.0 * (cin * cout * k * k) as f64 * (res * res) as f64
        };
        // Stem: 7x7 stride 2 padding 3, then 3x3 max pooling stride 2 padding 1.
        let mut res = (side + 6 - 7) / 2 + 1;
        let mut flops = conv(3, 64, 7, res);
        res = (res - 1) / 2 + 1;
        let mut inp = 64;
        for (l, (&n, &planes)) in self.layers.iter().zip(&PLANES).enumerate().take(last) {
            for b in 0..n {
                let stride = if b == 0 && l > 0 { 2 } else { 1 };
                let out_res = (res - 1) / stride + 1;
                let out = planes * self.expansion();
                flops += match self.block {
                    BlockKind::Basic => {
                        conv(inp, planes, 3, out_res) + conv(planes, planes, 3, out_res)
                    }
                    BlockKind::Bottleneck => {
                        let w = planes * self.width_per_group / 64;
                        conv(inp, w, 1, res) + conv(w, w, 3, out_res) + conv(w, out, 1, out_res)
                    }
                };
                if stride != 1 || inp != out {
                    flops += conv(inp, out, 1, out_res);
                }
                inp = out;
                res = out_res;
            }
        }
        flops
    }

    /// Output channels of a tap.
    pub fn channels(&self, layer: usize) -> usize {
        if layer == 0 {
            64
        } else {
            PLANES[layer - 1] * self.expansion()
        }
    }

    /// Every convolution of the network: (stage 0..=4, conv key, bn key, in, out, kernel,
    /// stride). Stage 0 is the stem.
    fn convs(&self) -> Vec<(usize, String, String, usize, usize, usize, usize)> {
        let mut v = vec![(0, "conv1".to_string(), "bn1".to_string(), 3, 64, 7, 2)];
        let mut inplanes = 64;
        for (l, (&n, &planes)) in self.layers.iter().zip(&PLANES).enumerate() {
            let stage_stride = if l == 0 { 1 } else { 2 };
            for b in 0..n {
                let stride = if b == 0 { stage_stride } else { 1 };
                let p = format!("layer{}.{b}", l + 1);
                let out = planes * self.expansion();
                match self.block {
                    BlockKind::Basic => {
                        v.push((
                            l + 1,
                            format!("{p}.conv1"),
                            format!("{p}.bn1"),
                            inplanes,
                            planes,
                            3,
                            stride,
                        ));
                        v.push((
                            l + 1,
                            format!("{p}.conv2"),
                            format!("{p}.bn2"),
                            planes,
                            planes,
                            3,
                            1,
                        ));
                    }
                    BlockKind::Bottleneck => {
                        let width = planes * self.width_per_group / 64;
                        v.push((
                            l + 1,
                            format!("{p}.conv1"),
                            format!("{p}.bn1"),
                            inplanes,
                            width,
                            1,
                            1,
                        ));
                        v.push((
                            l + 1,
                            format!("{p}.conv2"),
                            format!("{p}.bn2"),
                            width,
                            width,
                            3,
                            stride,
                        ));
                        v.push((
                            l + 1,
                            format!("{p}.conv3"),
                            format!("{p}.bn3"),
                            width,
                            out,
                            1,
                            1,
                        ));
                    }
                }
                if b == 0 && (stride != 1 || inplanes != out) {
                    v.push((
                        l + 1,
                        format!("{p}.downsample.0"),
                        format!("{p}.downsample.1"),
                        inplanes,
                        out,
                        1,
                        stride,
                    ));
                }
                inplanes = out;
            }
        }
        v
    }

    /// The state-dict entries (key, shape, stage) of the feature layers, classifier excluded.
    pub fn state_dict_shapes(&self) -> Vec<(String, Vec<usize>, usize)> {
        let mut out = Vec::new();
        for (stage, conv, bn, cin, cout, k, _) in self.convs() {
            out.push((format!("{conv}.weight"), vec![cout, cin, k, k], stage));
            for s in ["weight", "bias", "running_mean", "running_var"] {
                out.push((format!("{bn}.{s}"), vec![cout], stage));
            }
        }
        out
    }

    /// Randomly initialised weights as torchvision does (Kaiming normal, fan-out, ReLU gain;
    /// BatchNorm weight 1, bias 0, running statistics 0/1), seeded. **Not pretrained**: for
    /// plumbing tests and runs where no real weights file exists.
    pub fn random_weights(&self, seed: u64) -> TensorMap {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut map = TensorMap {
            path: format!("<random init, seed {seed}>").into(),
            ..TensorMap::default()
        };
        for (key, shape, _) in self.state_dict_shapes() {
            let n: usize = shape.iter().product();
            let values = if shape.len() == 4 {
                let fan_out = (shape[0] * shape[2] * shape[3]) as f32;
                let std = (2.0 / fan_out).sqrt();
                (0..n)
                    .map(|_| rng.sample::<f32, _>(StandardNormal) * std)
                    .collect()
            } else if key.ends_with(".weight") || key.ends_with("running_var") {
                vec![1.0; n]
            } else {
                vec![0.0; n]
            };
            map.tensors.insert(key, NamedTensor { shape, values });
        }
        map
    }
}

#[derive(Debug, Clone)]
struct ResBlock {
    convs: Vec<ConvBn>,
    downsample: Option<ConvBn>,
}

impl ResBlock {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let identity = match &self.downsample {
            Some(d) => d.forward(x.clone(), PaddingMode::Symmetric),
            None => x.clone(),
        };
        let mut y = x;
        for c in &self.convs {
            y = c.forward(y, PaddingMode::Symmetric);
        }
        burn::tensor::activation::relu(y + identity)
    }
}

/// A residual block's convolutions for the host kernels (CPU backends); the last convolution
/// carries the residual add and the ReLU that follows it.
#[derive(Debug, Clone)]
struct HostResBlock {
    convs: Vec<HostConv>,
    downsample: Option<HostConv>,
}

impl HostResBlock {
    fn new(b: &ResBlock) -> Result<Self> {
        let mut convs = b
            .convs
            .iter()
            .map(HostConv::from_conv_bn)
            .collect::<Result<Vec<_>>>()?;
        let last = convs.pop().expect("a residual block has convolutions");
        // relu(conv(y) + identity): the block's last convolution has no activation of its own.
        debug_assert_eq!(last.act(), Act::None);
        convs.push(last.with_act(Act::Relu));
        Ok(Self {
            convs,
            downsample: b
                .downsample
                .as_ref()
                .map(HostConv::from_conv_bn)
                .transpose()?,
        })
    }

    fn forward(&self, x: &HostMap) -> Result<HostMap> {
        let pad = PaddingMode::Symmetric;
        let identity = match &self.downsample {
            Some(d) => Some(d.conv(x, pad, None)?),
            None => None,
        };
        let (last, inner) = self.convs.split_last().expect("non-empty");
        let mut y: Option<HostMap> = None;
        for c in inner {
            y = Some(c.conv(y.as_ref().unwrap_or(x), pad, None)?);
        }
        last.conv(
            y.as_ref().unwrap_or(x),
            pad,
            Some(identity.as_ref().unwrap_or(x)),
        )
    }
}

/// The whole network for the host kernels.
#[derive(Debug, Clone)]
struct HostResNet {
    stem: HostConv,
    stages: Vec<Vec<HostResBlock>>,
}

/// A torchvision ResNet feature extractor.
#[derive(Debug, Clone)]
pub struct ResNet {
    spec: ResNetSpec,
    stem: ConvBn,
    stages: Vec<Vec<ResBlock>>,
    layers: Vec<String>,
    tap_ids: Vec<usize>,
    device: Device,
    /// On the CPU backends, the network runs on the host kernels (crate::host); `stages` is
    /// then empty.
    host: Option<HostResNet>,
}

/// Validates the weights in network order (the first mismatch is reported): layers up to the
/// deepest tap must be complete; deeper ones are checked where present, then dropped; any
/// other tensor but the classifier's is an error.
fn check_state_dict(spec: &ResNetSpec, map: &mut TensorMap, deepest: usize) -> Result<()> {
    for (key, shape, stage) in spec.state_dict_shapes() {
        if stage <= deepest || map.tensors.contains_key(&key) {
            map.check(&key, &shape)?;
        }
    }
    for (key, _, stage) in spec.state_dict_shapes() {
        if stage > deepest {
            map.tensors.remove(&key);
        }
    }
    let leftover: Vec<String> = map
        .tensors
        .keys()
        .filter(|k| !k.starts_with("fc."))
        .filter(|k| !spec.state_dict_shapes().iter().any(|(s, _, _)| s == *k))
        .cloned()
        .collect();
    if !leftover.is_empty() {
        return Err(Error::Weights {
            path: map.path.clone(),
            message: format!(
                "{} tensors are not part of {} (first: {:?}); the file is for another architecture",
                leftover.len(),
                spec.name,
                &leftover[..leftover.len().min(3)]
            ),
        });
    }
    Ok(())
}

impl ResNet {
    /// Builds the network from torchvision-named tensors, tapping `layers` (names from
    /// [`RESNET_LAYERS`]).
    ///
    /// Every tensor up to the deepest tap must be present with its shape (the error names the
    /// key and both shapes); deeper feature tensors may be absent but, when present, must fit
    /// the architecture too; tensors that belong to no layer of the architecture are an error
    /// (the file is for another architecture); the classifier (`fc.*`) is ignored. No work is
    /// done past the deepest tap.
    pub fn from_tensors(
        spec: ResNetSpec,
        mut map: TensorMap,
        layers: &[String],
        device: &Device,
    ) -> Result<Self> {
        let tap_ids = resolve_taps(layers, &RESNET_LAYERS, &spec.name)?;
        let deepest = *tap_ids.iter().max().expect("non-empty");
        check_state_dict(&spec, &mut map, deepest)?;
        let mut stem = None;
        let mut stages: Vec<Vec<ResBlock>> = (0..4).map(|_| Vec::new()).collect();
        let convs = spec.convs();
        let per_block = match spec.block {
            BlockKind::Basic => 2,
            BlockKind::Bottleneck => 3,
        };
        let mut i = 0;
        while i < convs.len() {
            let (stage, conv, bn, cin, cout, k, stride) = &convs[i];
            if *stage > deepest {
                break;
            }
            if *stage == 0 {
                stem = Some(ConvBn::load(
                    &mut map,
                    conv,
                    bn,
                    *cin,
                    *cout,
                    *k,
                    *stride,
                    1,
                    Act::Relu,
                    BN_EPS,
                    device,
                )?);
                i += 1;
                continue;
            }
            let mut block = ResBlock {
                convs: Vec::new(),
                downsample: None,
            };
            for j in 0..per_block {
                let (_, conv, bn, cin, cout, k, stride) = &convs[i + j];
                let act = if j + 1 == per_block {
                    Act::None
                } else {
                    Act::Relu
                };
                block.convs.push(ConvBn::load(
                    &mut map, conv, bn, *cin, *cout, *k, *stride, 1, act, BN_EPS, device,
                )?);
            }
            i += per_block;
            if let Some((_, conv, bn, cin, cout, k, stride)) =
                convs.get(i).filter(|c| c.1.ends_with("downsample.0"))
            {
                block.downsample = Some(ConvBn::load(
                    &mut map,
                    conv,
                    bn,
                    *cin,
                    *cout,
                    *k,
                    *stride,
                    1,
                    Act::None,
                    BN_EPS,
                    device,
                )?);
                i += 1;
            }
            stages[stage - 1].push(block);
        }
        stages.truncate(deepest);
        let host = if is_host_device(device) {
            let host = HostResNet {
                stem: HostConv::from_conv_bn(stem.as_ref().expect("the stem is always loaded"))?,
                stages: stages
                    .iter()
                    .map(|blocks| blocks.iter().map(HostResBlock::new).collect::<Result<_>>())
                    .collect::<Result<Vec<Vec<_>>>>()?,
            };
            // The host kernels hold their own copy of the weights; drop burn's.
            stages.clear();
            Some(host)
        } else {
            None
        };
        Ok(Self {
            spec,
            stem: stem.expect("the stem is always loaded"),
            stages,
            layers: layers.to_vec(),
            tap_ids,
            device: device.clone(),
            host,
        })
    }

    /// The architecture.
    pub fn spec(&self) -> &ResNetSpec {
        &self.spec
    }
}

impl Backbone for ResNet {
    fn name(&self) -> &str {
        &self.spec.name
    }

    fn layers(&self) -> &[String] {
        &self.layers
    }

    fn channels(&self) -> Vec<usize> {
        self.tap_ids
            .iter()
            .map(|&id| self.spec.channels(id))
            .collect()
    }

    fn strides(&self) -> Vec<usize> {
        self.tap_ids.iter().map(|&id| RESNET_LAYERS[id].1).collect()
    }

    fn device(&self) -> &Device {
        &self.device
    }

    fn forward(&self, x: Tensor<4>) -> Result<Vec<Tensor<4>>> {
        check_input(&x, &self.strides())?;
        let mut taps = Taps::new(&self.tap_ids);
        if let Some(host) = &self.host {
            let stem = host
                .stem
                .conv(&HostMap::from_tensor(x)?, PaddingMode::Symmetric, None)?;
            let mut m = max_pool_3x3_s2(&stem);
            if taps.wants(0) {
                taps.record(0, &m.to_tensor(&self.device));
            }
            for (s, blocks) in host.stages.iter().enumerate() {
                for b in blocks {
                    m = b.forward(&m)?;
                }
                if taps.wants(s + 1) {
                    taps.record(s + 1, &m.to_tensor(&self.device));
                }
            }
            return Ok(taps.finish());
        }
        let y = self.stem.forward(x, PaddingMode::Symmetric);
        let mut y = max_pool2d(
            y,
            MaxPoolOptions::new([3, 3])
                .with_stride([2, 2])
                .with_padding([1, 1]),
        );
        taps.record(0, &y);
        for (s, blocks) in self.stages.iter().enumerate() {
            for b in blocks {
                y = b.forward(y);
            }
            taps.record(s + 1, &y);
        }
        Ok(taps.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conv_flops_match_hand_counts() {
        // ResNet18 to layer3 at 224: stem 236,027,904; layer1 4 x 231,211,008; layer2 and
        // layer3 each 115,605,504 + 231,211,008 + 12,845,056 (downsample) + 2 x 231,211,008.
        let r18 = ResNetSpec::preset("resnet18").unwrap();
        assert_eq!(r18.conv_flops(224, 0), 236_027_904.0);
        assert_eq!(r18.conv_flops(224, 3), 2_805_039_104.0);
        // torchvision's published count for the whole ResNet50 is 4.09 GMACs (convolutions
        // and the final linear layer, 2.05 M MACs); layer4 included here.
        let r50 = ResNetSpec::preset("resnet50").unwrap();
        let gmacs = r50.conv_flops(224, 4) / 2e9;
        assert!((gmacs + 0.002 - 4.09).abs() < 0.01, "{gmacs}");
        // Wide ResNet50-2: 11.4 GMACs whole (torchvision).
        let w = ResNetSpec::preset("wide_resnet50_2").unwrap();
        let gmacs = w.conv_flops(224, 4) / 2e9;
        assert!((gmacs + 0.002 - 11.4).abs() < 0.05, "{gmacs}");
    }
}
