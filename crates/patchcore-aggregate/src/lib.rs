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
//!
//! No tensor framework: the maps are `ndarray` arrays on the host (the model converts its
//! backbone's output once), and the few operations are written out in [`ops`] with the
//! reference implementations' arithmetic. Parameters come as unchecked, serializable
//! structs ([`LocallyAwareParams`], [`OfficialParams`], the `[aggregator]` section
//! [`AggregatorParams`]) whose `check()` returns the aggregator, its fields private.

#![warn(missing_docs)]

use ndarray::{Array2, Array4, Axis};
use patchcore_core::{Error, PatchFeatures, Result};
use rayon::prelude::*;

pub mod ops;

pub use ops::adaptive_avg_pool1d;
use ops::{avg_pool_plane, bilinear_plane};

/// Combines per-layer backbone maps into patch-feature rows.
///
/// Contract:
/// * `maps[l]` is `[B, C_l, H_l, W_l]` (standard layout), all with the same `B`; the first
///   map defines the output grid (`H_0 x W_0`, the shallowest tap);
/// * the result has `B * H_0 * W_0` rows of width [`FeatureAggregator::output_dim`], in the
///   row order of [`PatchFeatures`];
/// * an empty list, differing batch sizes or non-finite output are errors.
pub trait FeatureAggregator: Send + Sync {
    /// A short name: the `[aggregator]` kind for the built-in ones. A model file records only
    /// aggregators its config describes; any other name makes a model unsaveable.
    fn name(&self) -> &str;
    /// Aggregates the maps of one batch.
    fn aggregate(&self, maps: &[Array4<f32>]) -> Result<PatchFeatures>;
    /// Width of the output rows for the given per-layer channel counts.
    fn output_dim(&self, channels: &[usize]) -> usize;
}

/// The first map's `(B, H, W)`, after checking that there is one and every map has its batch.
fn grid_of(maps: &[Array4<f32>]) -> Result<(usize, usize, usize)> {
    let first = maps
        .first()
        .ok_or_else(|| Error::InvalidArgument("no feature maps to aggregate".into()))?;
    let (b, _, h, w) = first.dim();
    for (l, m) in maps.iter().enumerate() {
        if m.dim().0 != b {
            return Err(Error::Shape(format!(
                "map {l} has batch {}, map 0 has {b}",
                m.dim().0
            )));
        }
        if m.dim().2 == 0 || m.dim().3 == 0 {
            return Err(Error::Shape(format!(
                "map {l} has an empty grid {:?}",
                m.dim()
            )));
        }
    }
    Ok((b, h, w))
}

/// One plane per `(image, channel)` of `planes` `[B, C, H, W]` made by `make`, written as
/// columns `offset..offset + C` of `rows` `[B * H * W, D]`.
fn scatter_columns(rows: &mut Array2<f32>, planes: &[f32], b: usize, c: usize, offset: usize) {
    let hw = rows.nrows() / b;
    rows.axis_chunks_iter_mut(Axis(0), hw)
        .into_par_iter()
        .enumerate()
        .for_each(|(bi, mut block)| {
            let img = &planes[bi * c * hw..(bi + 1) * c * hw];
            for (cell, mut row) in block.rows_mut().into_iter().enumerate() {
                for ch in 0..c {
                    row[offset + ch] = img[ch * hw + cell];
                }
            }
        });
}

/// Adaptive average pooling of every row to `width`.
fn pool_rows(rows: &Array2<f32>, width: usize) -> Array2<f32> {
    let mut out = Array2::<f32>::zeros((rows.nrows(), width));
    out.axis_iter_mut(Axis(0))
        .into_par_iter()
        .zip(rows.axis_iter(Axis(0)))
        .for_each(|(mut dst, src)| {
            adaptive_avg_pool1d(
                src.as_slice().expect("contiguous"),
                dst.as_slice_mut().expect("contiguous"),
            );
        });
    out
}

/// Locally aware patch features with optional fixed-width projection. Built by
/// [`LocallyAwareParams::check`] or [`LocallyAware::new`].
#[derive(Debug, Clone, PartialEq)]
pub struct LocallyAware {
    neighbourhood: usize,
    target_dim: Option<usize>,
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
        params::check_neighbourhood("aggregator.neighbourhood", neighbourhood)?;
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

    /// Neighbourhood size `p` (odd; the paper uses 3).
    pub fn neighbourhood(&self) -> usize {
        self.neighbourhood
    }

    /// The width rows are adaptive-average-pooled to, if any.
    pub fn target_dim(&self) -> Option<usize> {
        self.target_dim
    }

    /// The neighbourhood average of one map `[B, C, H, W]` (a copy for `p = 1`).
    pub fn pool(&self, map: &Array4<f32>) -> Array4<f32> {
        let (_, _, h, w) = map.dim();
        let src = map.as_standard_layout();
        let mut out = Array4::<f32>::zeros(map.raw_dim());
        out.as_slice_mut()
            .expect("standard layout")
            .par_chunks_mut(h * w)
            .zip(src.as_slice().expect("standard layout").par_chunks(h * w))
            .for_each(|(dst, plane)| avg_pool_plane(plane, h, w, self.neighbourhood, dst));
        out
    }

    /// Pooled, resized and concatenated maps: `[B, sum C_l, H_0, W_0]`.
    pub fn embedding_map(&self, maps: &[Array4<f32>]) -> Result<Array4<f32>> {
        let (b, h, w) = grid_of(maps)?;
        let parts: Vec<Array4<f32>> = maps
            .iter()
            .map(|m| resize_map(&self.pool(m), h, w))
            .collect();
        let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
        let out = ndarray::concatenate(Axis(1), &views).map_err(|e| Error::Shape(e.to_string()))?;
        debug_assert_eq!(out.dim().0, b);
        Ok(out.as_standard_layout().into_owned())
    }
}

/// Bilinear resize of every plane of `[B, C, h, w]` to `[B, C, oh, ow]` (a copy when the
/// grid is already that).
pub fn resize_map(map: &Array4<f32>, oh: usize, ow: usize) -> Array4<f32> {
    let (b, c, h, w) = map.dim();
    let src = map.as_standard_layout();
    if (h, w) == (oh, ow) {
        return src.into_owned();
    }
    let mut out = Array4::<f32>::zeros((b, c, oh, ow));
    out.as_slice_mut()
        .expect("standard layout")
        .par_chunks_mut(oh * ow)
        .zip(src.as_slice().expect("standard layout").par_chunks(h * w))
        .for_each(|(dst, plane)| bilinear_plane(plane, h, w, dst, oh, ow));
    out
}

impl FeatureAggregator for LocallyAware {
    fn name(&self) -> &str {
        "locally_aware"
    }

    fn aggregate(&self, maps: &[Array4<f32>]) -> Result<PatchFeatures> {
        let (b, h, w) = grid_of(maps)?;
        let channels: Vec<usize> = maps.iter().map(|m| m.dim().1).collect();
        let d: usize = channels.iter().sum();
        let mut features = Array2::<f32>::zeros((b * h * w, d));
        let mut offset = 0;
        for m in maps {
            let planes = resize_map(&self.pool(m), h, w);
            let c = m.dim().1;
            scatter_columns(
                &mut features,
                planes.as_slice().expect("standard layout"),
                b,
                c,
                offset,
            );
            offset += c;
        }
        if let Some(t) = self.target_dim {
            features = pool_rows(&features, t);
        }
        let pf = PatchFeatures::new(features, b, h, w)?;
        pf.check_finite("aggregated patch features")?;
        Ok(pf)
    }

    fn output_dim(&self, channels: &[usize]) -> usize {
        self.target_dim.unwrap_or_else(|| channels.iter().sum())
    }
}

/// The official patchcore-inspection aggregation (`PatchMaker` + `Preprocessing` +
/// `Aggregator`):
/// 1. per layer, the `p x p` patch around every cell (`F.unfold`, zero padding `p/2`), its
///    `C*p*p` values ordered (channel, ky, kx);
/// 2. deeper layers: the `C*p*p` patch planes resized bilinearly to the first layer's grid
///    (the patches are interpolated, not the feature map);
/// 3. per layer, each patch vector adaptive-average-pooled to `pretrain_embed_dim`;
/// 4. the layers stacked (layer-major) and pooled again to `target_embed_dim`.
///
/// Built by [`OfficialParams::check`] or [`Official::new`].
#[derive(Debug, Clone, PartialEq)]
pub struct Official {
    patchsize: usize,
    pretrain_embed_dim: usize,
    target_embed_dim: usize,
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
        OfficialParams {
            neighbourhood: patchsize,
            pretrain_embed_dim,
            target_embed_dim,
        }
        .check()
    }

    /// Patch size `p`.
    pub fn patchsize(&self) -> usize {
        self.patchsize
    }

    /// Per-layer width after step 3.
    pub fn pretrain_embed_dim(&self) -> usize {
        self.pretrain_embed_dim
    }

    /// Final width.
    pub fn target_embed_dim(&self) -> usize {
        self.target_embed_dim
    }

    /// `F.unfold` keeping the grid: `[B, C, H, W] -> [B, C*p*p, H, W]`, channel
    /// `c*p*p + ky*p + kx` holding the value at offset `(ky - p/2, kx - p/2)` (0 outside).
    pub fn unfold(&self, x: &Array4<f32>) -> Array4<f32> {
        let p = self.patchsize;
        let r = p / 2;
        let (b, c, h, w) = x.dim();
        let src = x.as_standard_layout();
        let src = src.as_slice().expect("standard layout");
        let mut out = Array4::<f32>::zeros((b, c * p * p, h, w));
        out.as_slice_mut()
            .expect("standard layout")
            .par_chunks_mut(h * w)
            .enumerate()
            .for_each(|(i, dst)| {
                let (bc, k) = (i / (p * p), i % (p * p));
                let plane = &src[bc * h * w..(bc + 1) * h * w];
                let (dy, dx) = ((k / p) as isize - r as isize, (k % p) as isize - r as isize);
                for y in 0..h {
                    let sy = y as isize + dy;
                    if sy < 0 || sy >= h as isize {
                        continue;
                    }
                    for x in 0..w {
                        let sx = x as isize + dx;
                        if sx >= 0 && sx < w as isize {
                            dst[y * w + x] = plane[sy as usize * w + sx as usize];
                        }
                    }
                }
            });
        out
    }

    /// Steps 1-2: the unfolded patch planes of every layer on the first layer's grid.
    pub fn patch_planes(&self, maps: &[Array4<f32>]) -> Result<Vec<Array4<f32>>> {
        let (_, h, w) = grid_of(maps)?;
        Ok(maps
            .iter()
            .map(|m| resize_map(&self.unfold(m), h, w))
            .collect())
    }

    /// Steps 1-3: per-layer pooled patch rows `[B*H*W, pretrain_embed_dim]`.
    pub fn per_layer(&self, maps: &[Array4<f32>]) -> Result<(Vec<Array2<f32>>, [usize; 3])> {
        let (b, h, w) = grid_of(maps)?;
        let rows = self
            .patch_planes(maps)?
            .iter()
            .map(|planes| {
                let c = planes.dim().1;
                let mut rows = Array2::<f32>::zeros((b * h * w, c));
                scatter_columns(&mut rows, planes.as_slice().expect("standard"), b, c, 0);
                pool_rows(&rows, self.pretrain_embed_dim)
            })
            .collect();
        Ok((rows, [b, h, w]))
    }
}

impl FeatureAggregator for Official {
    fn name(&self) -> &str {
        "official"
    }

    fn aggregate(&self, maps: &[Array4<f32>]) -> Result<PatchFeatures> {
        let (layers, [b, h, w]) = self.per_layer(maps)?;
        let n = b * h * w;
        let pd = self.pretrain_embed_dim;
        let width = layers.len() * pd;
        let mut out = Array2::<f32>::zeros((n, self.target_embed_dim));
        out.axis_iter_mut(Axis(0))
            .into_par_iter()
            .enumerate()
            .for_each_init(
                || vec![0f32; width],
                |stacked, (r, mut dst)| {
                    for (l, rows) in layers.iter().enumerate() {
                        stacked[l * pd..(l + 1) * pd]
                            .copy_from_slice(rows.row(r).as_slice().expect("contiguous"));
                    }
                    adaptive_avg_pool1d(stacked, dst.as_slice_mut().expect("contiguous"));
                },
            );
        let pf = PatchFeatures::new(out, b, h, w)?;
        pf.check_finite("aggregated patch features")?;
        Ok(pf)
    }

    fn output_dim(&self, _channels: &[usize]) -> usize {
        self.target_embed_dim
    }
}

mod params;
pub use params::{AggregatorParams, LocallyAwareParams, OfficialParams};
