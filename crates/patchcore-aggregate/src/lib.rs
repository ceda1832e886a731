//! Turns backbone feature maps into *locally aware patch features* (PatchCore §3.1).
//!
//! The contract is [`FeatureAggregator`]; [`LocallyAware`] is the implementation of the
//! paper (as anomalib does it): every map is averaged over its `p x p` neighbourhood
//! (stride 1, zero padding `p/2`, padded cells counted, as `AvgPool2d(p, 1, p/2)`), deeper
//! maps are resized bilinearly (`align_corners = false`) to the grid of the first map, the
//! maps are concatenated on channels, and each cell becomes one feature row. An optional
//! adaptive average pooling over the feature axis projects rows to a fixed width.
//! [`Official`] is the variant of the official implementation (patches unfolded and
//! interpolated, per-layer and final adaptive average pooling to fixed widths).

#![warn(missing_docs)]

use burn::tensor::module::{avg_pool2d, conv2d, interpolate};
use burn::tensor::ops::{AvgPoolOptions, ConvOptions, InterpolateMode, InterpolateOptions};
use burn::tensor::{Tensor, TensorData};
use ndarray::Array2;
use patchcore_core::{Error, PatchFeatures, Result};
use serde::{Deserialize, Serialize};

/// Combines per-layer backbone maps into patch-feature rows.
///
/// Contract:
/// * `maps[l]` is `[B, C_l, H_l, W_l]`, all with the same `B`, on one device; the first map
///   defines the output grid (`H_0 x W_0`, the shallowest tap);
/// * the result has `B * H_0 * W_0` rows of width [`FeatureAggregator::output_dim`], in the
///   row order of [`PatchFeatures`];
/// * an empty list, differing batch sizes or non-finite output are errors.
pub trait FeatureAggregator: Send + Sync {
    /// Aggregates the maps of one batch.
    fn aggregate(&self, maps: Vec<Tensor<4>>) -> Result<PatchFeatures>;
    /// Width of the output rows for the given per-layer channel counts.
    fn output_dim(&self, channels: &[usize]) -> usize;
}

/// Locally aware patch features with optional fixed-width projection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocallyAware {
    /// Neighbourhood size `p` (odd; the paper uses 3).
    pub neighbourhood: usize,
    /// If set, rows are adaptive-average-pooled to this width.
    pub target_dim: Option<usize>,
}

impl Default for LocallyAware {
    fn default() -> Self {
        Self {
            neighbourhood: 3,
            target_dim: None,
        }
    }
}

impl LocallyAware {
    /// Checked constructor: `neighbourhood` must be odd and positive, `target_dim` positive.
    pub fn new(neighbourhood: usize, target_dim: Option<usize>) -> Result<Self> {
        if neighbourhood == 0 || neighbourhood.is_multiple_of(2) {
            return Err(Error::config(
                "aggregator.neighbourhood",
                format!("must be an odd positive integer (1, 3, 5, ...), got {neighbourhood}"),
            ));
        }
        if target_dim == Some(0) {
            return Err(Error::config(
                "aggregator.target_dim",
                "must be positive (or 0 for none in config files)",
            ));
        }
        Ok(Self {
            neighbourhood,
            target_dim,
        })
    }

    /// The neighbourhood average of one map (identity for `p = 1`).
    pub fn pool(&self, map: Tensor<4>) -> Tensor<4> {
        let p = self.neighbourhood;
        if p == 1 {
            return map;
        }
        avg_pool2d(
            map,
            AvgPoolOptions::new([p, p])
                .with_stride([1, 1])
                .with_padding([p / 2, p / 2])
                .with_count_include_pad(true),
        )
    }

    /// Pooled, resized and concatenated maps: `[B, sum C_l, H_0, W_0]`.
    pub fn embedding_map(&self, maps: Vec<Tensor<4>>) -> Result<Tensor<4>> {
        let first = maps
            .first()
            .ok_or_else(|| Error::InvalidArgument("no feature maps to aggregate".into()))?;
        let [b, _, h, w] = first.dims();
        let mut parts = Vec::with_capacity(maps.len());
        for (l, m) in maps.into_iter().enumerate() {
            let [bl, _, hl, wl] = m.dims();
            if bl != b {
                return Err(Error::Shape(format!(
                    "map {l} has batch {bl}, map 0 has {b}"
                )));
            }
            let pooled = self.pool(m);
            let resized = if (hl, wl) == (h, w) {
                pooled
            } else {
                interpolate(
                    pooled,
                    InterpolateOptions::new(InterpolateMode::Bilinear)
                        .with_align_corners(false)
                        .with_output_size([h, w]),
                )
            };
            parts.push(resized);
        }
        Ok(Tensor::cat(parts, 1))
    }
}

/// PyTorch `adaptive_avg_pool1d` over a row: output `j` averages
/// `input[floor(j*n/m) .. ceil((j+1)*n/m)]`.
pub fn adaptive_avg_pool1d(input: &[f32], out: &mut [f32]) {
    let n = input.len();
    let m = out.len();
    for (j, o) in out.iter_mut().enumerate() {
        let start = j * n / m;
        let end = ((j + 1) * n).div_ceil(m);
        let s: f32 = input[start..end].iter().sum();
        *o = s / (end - start) as f32;
    }
}

impl FeatureAggregator for LocallyAware {
    fn aggregate(&self, maps: Vec<Tensor<4>>) -> Result<PatchFeatures> {
        let emb = self.embedding_map(maps)?;
        let [b, d, h, w] = emb.dims();
        let rows = emb.permute([0, 2, 3, 1]).reshape([b * h * w, d]);
        let values = rows
            .into_data()
            .try_into_vec_as::<f32>()
            .map_err(|e| Error::Shape(format!("reading aggregated features: {e:?}")))?;
        let mut features = Array2::from_shape_vec((b * h * w, d), values)
            .map_err(|e| Error::Shape(e.to_string()))?;
        if let Some(t) = self.target_dim {
            let mut out = Array2::<f32>::zeros((b * h * w, t));
            for (src, mut dst) in features.rows().into_iter().zip(out.rows_mut()) {
                adaptive_avg_pool1d(
                    src.as_slice().expect("contiguous"),
                    dst.as_slice_mut().expect("contiguous"),
                );
            }
            features = out;
        }
        let pf = PatchFeatures::new(features, b, h, w)?;
        pf.check_finite("aggregated patch features")?;
        Ok(pf)
    }

    fn output_dim(&self, channels: &[usize]) -> usize {
        self.target_dim.unwrap_or_else(|| channels.iter().sum())
    }
}

fn resize_to(x: Tensor<4>, h: usize, w: usize) -> Tensor<4> {
    let [_, _, hl, wl] = x.dims();
    if (hl, wl) == (h, w) {
        return x;
    }
    interpolate(
        x,
        InterpolateOptions::new(InterpolateMode::Bilinear)
            .with_align_corners(false)
            .with_output_size([h, w]),
    )
}

/// Rows `[B*H*W, C]` of a `[B, C, H, W]` map, in [`PatchFeatures`] order.
fn rows_of(x: Tensor<4>) -> Result<Array2<f32>> {
    let [b, c, h, w] = x.dims();
    let values = x
        .permute([0, 2, 3, 1])
        .reshape([b * h * w, c])
        .into_data()
        .try_into_vec_as::<f32>()
        .map_err(|e| Error::Shape(format!("reading features: {e:?}")))?;
    Array2::from_shape_vec((b * h * w, c), values).map_err(|e| Error::Shape(e.to_string()))
}

/// Adaptive average pooling of every row to `width`.
fn pool_rows(rows: &Array2<f32>, width: usize) -> Array2<f32> {
    let mut out = Array2::<f32>::zeros((rows.nrows(), width));
    for (src, mut dst) in rows.rows().into_iter().zip(out.rows_mut()) {
        adaptive_avg_pool1d(
            src.as_slice().expect("contiguous"),
            dst.as_slice_mut().expect("contiguous"),
        );
    }
    out
}

/// The official patchcore-inspection aggregation (`PatchMaker` + `Preprocessing` +
/// `Aggregator`):
/// 1. per layer, the `p x p` patch around every cell (`F.unfold`, zero padding `p/2`), its
///    `C*p*p` values ordered (channel, ky, kx);
/// 2. deeper layers: the `C*p*p` patch planes resized bilinearly to the first layer's grid
///    (the patches are interpolated, not the feature map);
/// 3. per layer, each patch vector adaptive-average-pooled to `pretrain_embed_dim`;
/// 4. the layers stacked (layer-major) and pooled again to `target_embed_dim`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Official {
    /// Patch size `p` (odd; the paper uses 3).
    pub patchsize: usize,
    /// Per-layer width after step 3 (official default 1024).
    pub pretrain_embed_dim: usize,
    /// Final width (official default 1024).
    pub target_embed_dim: usize,
}

impl Default for Official {
    fn default() -> Self {
        Self {
            patchsize: 3,
            pretrain_embed_dim: 1024,
            target_embed_dim: 1024,
        }
    }
}

impl Official {
    /// Checked constructor.
    pub fn new(
        patchsize: usize,
        pretrain_embed_dim: usize,
        target_embed_dim: usize,
    ) -> Result<Self> {
        LocallyAware::new(patchsize, None).map_err(|_| {
            Error::config(
                "aggregator.neighbourhood",
                format!("must be an odd positive integer, got {patchsize}"),
            )
        })?;
        if pretrain_embed_dim == 0 {
            return Err(Error::config(
                "aggregator.pretrain_embed_dim",
                "must be positive",
            ));
        }
        if target_embed_dim == 0 {
            return Err(Error::config(
                "aggregator.target_embed_dim",
                "must be positive",
            ));
        }
        Ok(Self {
            patchsize,
            pretrain_embed_dim,
            target_embed_dim,
        })
    }

    /// `F.unfold` as a grouped one-hot convolution: `[B, C, H, W] -> [B, C*p*p, H, W]`,
    /// channel `c*p*p + ky*p + kx` holding the value at offset `(ky - p/2, kx - p/2)`.
    pub fn unfold(&self, x: Tensor<4>) -> Tensor<4> {
        let p = self.patchsize;
        let [_, c, _, _] = x.dims();
        let mut w = vec![0f32; c * p * p * p * p];
        for o in 0..c * p * p {
            let k = o % (p * p);
            w[o * p * p + k] = 1.0;
        }
        let weight = Tensor::<4>::from_data(TensorData::new(w, [c * p * p, 1, p, p]), &x.device());
        conv2d(
            x,
            weight,
            None,
            ConvOptions::new([1, 1], [p / 2, p / 2], [1, 1], c),
        )
    }

    /// Steps 1-2: the unfolded patch planes of every layer on the first layer's grid.
    pub fn patch_planes(&self, maps: Vec<Tensor<4>>) -> Result<Vec<Tensor<4>>> {
        let first = maps
            .first()
            .ok_or_else(|| Error::InvalidArgument("no feature maps to aggregate".into()))?;
        let [b, _, h, w] = first.dims();
        maps.into_iter()
            .enumerate()
            .map(|(l, m)| {
                if m.dims()[0] != b {
                    return Err(Error::Shape(format!(
                        "map {l} has batch {}, map 0 has {b}",
                        m.dims()[0]
                    )));
                }
                Ok(resize_to(self.unfold(m), h, w))
            })
            .collect()
    }

    /// Steps 1-3: per-layer pooled patch rows `[B*H*W, pretrain_embed_dim]`.
    pub fn per_layer(&self, maps: Vec<Tensor<4>>) -> Result<(Vec<Array2<f32>>, [usize; 3])> {
        let planes = self.patch_planes(maps)?;
        let [b, _, h, w] = planes[0].dims();
        let rows = planes
            .into_iter()
            .map(|p| rows_of(p).map(|r| pool_rows(&r, self.pretrain_embed_dim)))
            .collect::<Result<Vec<_>>>()?;
        Ok((rows, [b, h, w]))
    }
}

impl FeatureAggregator for Official {
    fn aggregate(&self, maps: Vec<Tensor<4>>) -> Result<PatchFeatures> {
        let (layers, [b, h, w]) = self.per_layer(maps)?;
        let n = b * h * w;
        let width = layers.len() * self.pretrain_embed_dim;
        let mut stacked = vec![0f32; width];
        let mut out = Array2::<f32>::zeros((n, self.target_embed_dim));
        for (r, mut dst) in out.rows_mut().into_iter().enumerate() {
            for (l, rows) in layers.iter().enumerate() {
                stacked[l * self.pretrain_embed_dim..(l + 1) * self.pretrain_embed_dim]
                    .copy_from_slice(rows.row(r).as_slice().expect("contiguous"));
            }
            adaptive_avg_pool1d(&stacked, dst.as_slice_mut().expect("contiguous"));
        }
        let pf = PatchFeatures::new(out, b, h, w)?;
        pf.check_finite("aggregated patch features")?;
        Ok(pf)
    }

    fn output_dim(&self, _channels: &[usize]) -> usize {
        self.target_embed_dim
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adaptive_pool_matches_torch_rule() {
        // torch.nn.functional.adaptive_avg_pool1d(torch.arange(5.)[None], 3) == [0.5, 2, 3.5]
        let mut out = [0f32; 3];
        adaptive_avg_pool1d(&[0., 1., 2., 3., 4.], &mut out);
        assert_eq!(out, [0.5, 2.0, 3.5]);
        // upsampling repeats: 2 -> 4
        let mut up = [0f32; 4];
        adaptive_avg_pool1d(&[1., 3.], &mut up);
        assert_eq!(up, [1., 1., 3., 3.]);
    }

    #[test]
    fn rejects_even_neighbourhood() {
        assert!(LocallyAware::new(2, None).is_err());
        assert!(LocallyAware::new(3, Some(0)).is_err());
    }
}

/// Parameters of [`LocallyAware`] as config keys.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocallyAwareParams {
    /// Neighbourhood (patch) size p: 1, 3, 5, ... (odd).
    #[serde(default = "d_neigh")]
    pub neighbourhood: usize,
    /// Project rows to this width by adaptive average pooling; 0 keeps the concatenation.
    #[serde(default)]
    pub target_dim: usize,
}

/// Parameters of [`Official`] as config keys.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfficialParams {
    /// Patch size p: 1, 3, 5, ... (odd).
    #[serde(default = "d_neigh")]
    pub neighbourhood: usize,
    /// Per-layer width (default 1024).
    #[serde(default = "d_embed")]
    pub pretrain_embed_dim: usize,
    /// Final width (default 1024).
    #[serde(default = "d_embed")]
    pub target_embed_dim: usize,
}
fn d_neigh() -> usize {
    3
}
fn d_embed() -> usize {
    1024
}

/// The `[aggregator]` config section: how backbone maps become patch-feature rows.
///
/// Tagged by `kind` (default `locally_aware`); each variant holds its aggregator's parameters.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum AggregatorParams {
    /// Neighbourhood average of each map, deeper maps upsampled, concatenated (anomalib).
    LocallyAware(LocallyAwareParams),
    /// Unfolded patches, interpolated, adaptive-average-pooled per layer and overall (the
    /// official implementation).
    Official(OfficialParams),
}

impl Default for AggregatorParams {
    fn default() -> Self {
        AggregatorParams::LocallyAware(LocallyAwareParams {
            neighbourhood: d_neigh(),
            target_dim: 0,
        })
    }
}

impl AggregatorParams {
    /// The `kind` key's value.
    pub fn kind(&self) -> &'static str {
        match self {
            AggregatorParams::LocallyAware(_) => "locally_aware",
            AggregatorParams::Official(_) => "official",
        }
    }

    /// The neighbourhood (patch) size.
    pub fn neighbourhood(&self) -> usize {
        match self {
            AggregatorParams::LocallyAware(p) => p.neighbourhood,
            AggregatorParams::Official(p) => p.neighbourhood,
        }
    }

    /// Range checks; errors name the `aggregator.*` key.
    pub fn validate(&self) -> Result<()> {
        self.build().map(|_| ())
    }

    /// Builds the aggregator.
    pub fn build(&self) -> Result<Box<dyn FeatureAggregator>> {
        Ok(match self {
            AggregatorParams::LocallyAware(p) => Box::new(LocallyAware::new(
                p.neighbourhood,
                (p.target_dim > 0).then_some(p.target_dim),
            )?),
            AggregatorParams::Official(p) => Box::new(Official::new(
                p.neighbourhood,
                p.pretrain_embed_dim,
                p.target_embed_dim,
            )?),
        })
    }
}
