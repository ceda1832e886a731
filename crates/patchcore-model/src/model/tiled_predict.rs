//! Scoring with a tiled model: an image is cut into the tiles of its size, every tile is
//! scored (against the shared bank, or the bank of its position), and the tiles' maps are
//! stitched into one map at the image's resolution.
//!
//! * Patch scores: each tile's grid is upsampled to the tile (the scorer's
//!   [`Scorer::upsample`](patchcore_score::Scorer::upsample)), the tiles are stitched with
//!   `tiling.blend` (mean or max where they overlap), and the stitched map is smoothed once
//!   ([`Scorer::smooth`](patchcore_score::Scorer::smooth): the Gaussian of `scorer.sigma`
//!   over the whole image, so tile borders leave no seam).
//! * Image score: eq. 7 applied to the patch with the largest 1-NN distance over all tiles
//!   (the score of the tile holding it): the untiled rule, over every patch of the image.

use std::time::Instant;

use image::RgbImage;
use ndarray::{Array2, s};
use patchcore_core::{Error, PatchFeatures, Result};
use patchcore_data::{TileLayout, Tiling, TilingMode};
use patchcore_nn::NearestNeighborIndex;
use patchcore_score::ImageScore;
use rayon::prelude::*;

use super::{PatchCore, Prediction, StageTimes};

/// One image's tiles, extracted.
pub(super) struct TiledFeatures {
    layout: TileLayout,
    feats: PatchFeatures,
}

impl super::FittedPatchCore {
    /// Whether this model can score a `width x height` image: always for an untiled model;
    /// for a tiled one the tile must fit, and per-position banks need the training size.
    pub fn check_image_size(&self, width: u32, height: u32) -> Result<()> {
        match self.tiling {
            None => Ok(()),
            Some(t) => self
                .predict_layout(t, (width, height), self.fitted_image_size())
                .map(|_| ()),
        }
    }
}

impl<S: Sync> PatchCore<S> {
    /// The tile layout of an image of `(width, height)` for this model, checked against the
    /// size per-position banks were fitted at.
    pub(super) fn predict_layout(
        &self,
        tiling: Tiling,
        size: (u32, u32),
        fitted: Option<(u32, u32)>,
    ) -> Result<TileLayout> {
        if tiling.mode() == TilingMode::PerPosition
            && let Some(f) = fitted
            && f != size
        {
            return Err(Error::InvalidArgument(format!(
                "this model keeps one memory bank per tile position of {}x{} images (tiling.mode \
                 = \"per_position\"); the image is {}x{}: crop or resize it to {}x{} first, or \
                 fit with mode = \"shared\", which scores any size",
                f.0, f.1, size.0, size.1, f.0, f.1
            )));
        }
        tiling.layout(size.0, size.1)
    }

    /// The tiles of each image, extracted (one image's tiles per extraction call, its forward
    /// calls in parallel).
    pub(super) fn extract_tiled(
        &self,
        tiling: Tiling,
        images: &[RgbImage],
        fitted: Option<(u32, u32)>,
    ) -> Result<Vec<TiledFeatures>> {
        images
            .iter()
            .map(|img| {
                let layout = self.predict_layout(tiling, img.dimensions(), fitted)?;
                let feats = self.extract_images(&layout.cut(img)?)?;
                Ok(TiledFeatures { layout, feats })
            })
            .collect()
    }

    /// Scores one image's tiles against `indices` (one shared index, or one per position).
    pub(super) fn score_tiled(
        &self,
        tiling: Tiling,
        tiled: &TiledFeatures,
        indices: &[&dyn NearestNeighborIndex],
        times: &mut StageTimes,
    ) -> Result<Prediction> {
        let t = Instant::now();
        let TiledFeatures { layout, feats } = tiled;
        let tiles: Vec<ImageScore> = if indices.len() == 1 {
            self.scorer.score(feats, indices[0])?
        } else {
            if indices.len() != layout.len() {
                let (w, h) = layout.image_size();
                return Err(Error::InvalidArgument(format!(
                    "{} per-position banks, but a {w}x{h} image has {} tiles: the banks were \
                     fitted on images of another size (tiling.mode = \"per_position\" needs \
                     the training size)",
                    indices.len(),
                    layout.len()
                )));
            }
            let ppi = feats.patches_per_image();
            (0..layout.len())
                .into_par_iter()
                .map(|i| {
                    let rows = feats.features.slice(s![i * ppi..(i + 1) * ppi, ..]);
                    let one = PatchFeatures::new(rows.to_owned(), 1, feats.grid_h, feats.grid_w)?;
                    Ok(self.scorer.score(&one, indices[i])?.remove(0))
                })
                .collect::<Result<_>>()?
        };
        let worst = tiles
            .iter()
            .map(|s| s.patch_scores.fold(f32::NEG_INFINITY, |a, &b| a.max(b)))
            .enumerate()
            .fold(
                (0, f32::NEG_INFINITY),
                |a, (i, m)| if m > a.1 { (i, m) } else { a },
            );
        let score = tiles[worst.0].score;
        times.search_and_score += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let side = layout.tile() as usize;
        let up: Vec<Array2<f32>> = tiles
            .par_iter()
            .map(|s| self.scorer.upsample(s.patch_scores.view(), side, side))
            .collect();
        let views: Vec<_> = up.iter().map(|m| m.view()).collect();
        let stitched = layout.stitch(&views, tiling.blend())?;
        drop(up);
        let anomaly_map = self.scorer.smooth(stitched);
        times.maps += t.elapsed().as_secs_f64();
        Ok(Prediction { score, anomaly_map })
    }
}
