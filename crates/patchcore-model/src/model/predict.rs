//! Scoring images with a fitted model.

use std::path::{Path, PathBuf};
use std::time::Instant;

use patchcore_core::{Error, PatchFeatures, Progress, Result};
use patchcore_data::load_rgb_with;
use patchcore_nn::NearestNeighborIndex;
use rayon::prelude::*;

use super::{FittedPatchCore, PatchCore, Prediction, StageTimes};

impl FittedPatchCore {
    /// Scores decoded images.
    pub fn predict_images(&self, images: &[image::RgbImage]) -> Result<Vec<Prediction>> {
        self.predict_images_timed(images, &mut StageTimes::default())
    }

    /// As [`FittedPatchCore::predict_images`], adding each stage's seconds to `times`.
    pub fn predict_images_timed(
        &self,
        images: &[image::RgbImage],
        times: &mut StageTimes,
    ) -> Result<Vec<Prediction>> {
        let indices = self.indices();
        self.predict_with(images, &[indices], self.fitted_image_size(), times)
            .map(|mut v| v.remove(0))
    }

    /// Scores one decoded image.
    pub fn predict(&self, image: &image::RgbImage) -> Result<Prediction> {
        Ok(self.predict_images(std::slice::from_ref(image))?.remove(0))
    }

    /// Scores one image file (decoded under the model's image limits).
    pub fn predict_path(&self, path: &Path) -> Result<Prediction> {
        self.predict(&load_rgb_with(path, &self.limits)?)
    }

    /// Scores image files in batches.
    pub fn predict_paths(
        &self,
        paths: &[PathBuf],
        progress: &dyn Progress,
    ) -> Result<Vec<Prediction>> {
        self.predict_paths_timed(paths, progress, &mut StageTimes::default())
    }

    /// As [`FittedPatchCore::predict_paths`], adding each stage's seconds to `times`.
    pub fn predict_paths_timed(
        &self,
        paths: &[PathBuf],
        progress: &dyn Progress,
        times: &mut StageTimes,
    ) -> Result<Vec<Prediction>> {
        progress.start(paths.len() as u64, "scoring");
        let mut out = Vec::with_capacity(paths.len());
        for chunk in paths.chunks(self.batch_size()) {
            let t = Instant::now();
            let images = self.decode(chunk)?;
            times.decode += t.elapsed().as_secs_f64();
            out.extend(self.predict_images_timed(&images, times)?);
            progress.advance(chunk.len() as u64);
        }
        progress.finish();
        Ok(out)
    }
}

impl<S: Sync> PatchCore<S> {
    /// Scores patch features (from [`PatchCore::extract_images`]) against `index`: image
    /// scores (eq. 7) and anomaly maps.
    pub fn score_features(
        &self,
        feats: &PatchFeatures,
        index: &dyn NearestNeighborIndex,
        times: &mut StageTimes,
    ) -> Result<Vec<Prediction>> {
        let t = Instant::now();
        let scores = self.scorer.score(feats, index)?;
        times.search_and_score += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let c = self.geometry.crop as usize;
        let out = scores
            .into_par_iter()
            .map(|s| Prediction {
                score: s.score,
                anomaly_map: self.scorer.anomaly_map(s.patch_scores.view(), c, c),
            })
            .collect();
        times.maps += t.elapsed().as_secs_f64();
        Ok(out)
    }

    /// Scores decoded images against several sets of indices (each one index, or for
    /// per-position banks one per tile position): extracted once, scored against every set.
    /// Returns one prediction list per set. `fitted`: the image size per-position banks
    /// were fitted at (an image of another size is refused).
    pub fn predict_with(
        &self,
        images: &[image::RgbImage],
        sets: &[Vec<&dyn NearestNeighborIndex>],
        fitted: Option<(u32, u32)>,
        times: &mut StageTimes,
    ) -> Result<Vec<Vec<Prediction>>> {
        let t = Instant::now();
        match self.tiling {
            None => {
                let feats = self.extract_images(images)?;
                times.extract += t.elapsed().as_secs_f64();
                sets.iter()
                    .map(|set| {
                        let index = set.first().ok_or_else(|| {
                            Error::InvalidArgument("an empty set of indices".into())
                        })?;
                        self.score_features(&feats, *index, times)
                    })
                    .collect()
            }
            Some(tiling) => {
                let tiled = self.extract_tiled(tiling, images, fitted)?;
                times.extract += t.elapsed().as_secs_f64();
                sets.iter()
                    .map(|set| {
                        tiled
                            .iter()
                            .map(|f| self.score_tiled(tiling, f, set, times))
                            .collect()
                    })
                    .collect()
            }
        }
    }

    /// Scores image files against several sets of indices (e.g. the banks of several
    /// seeds; each set one index, or one per tile position): each batch is decoded and
    /// extracted once, then scored against every set. Returns one prediction list per set.
    pub fn predict_paths_multi(
        &self,
        paths: &[PathBuf],
        indices: &[Vec<&dyn NearestNeighborIndex>],
        fitted: Option<(u32, u32)>,
        progress: &dyn Progress,
        times: &mut StageTimes,
    ) -> Result<Vec<Vec<Prediction>>> {
        progress.start(paths.len() as u64, "scoring");
        let mut out: Vec<Vec<Prediction>> = indices
            .iter()
            .map(|_| Vec::with_capacity(paths.len()))
            .collect();
        for chunk in paths.chunks(self.batch_size()) {
            let t = Instant::now();
            let images = self.decode(chunk)?;
            times.decode += t.elapsed().as_secs_f64();
            let preds = self.predict_with(&images, indices, fitted, times)?;
            for (o, p) in out.iter_mut().zip(preds) {
                o.extend(p);
            }
            progress.advance(chunk.len() as u64);
        }
        progress.finish();
        Ok(out)
    }
}
