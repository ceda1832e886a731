//! Scoring images with a fitted model.

use std::path::{Path, PathBuf};
use std::time::Instant;

use patchcore_core::{PatchFeatures, Progress, Result};
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
        let index = self.index();
        let t = Instant::now();
        let feats = self.extract_images(images)?;
        times.extract += t.elapsed().as_secs_f64();
        self.score_features(&feats, index, times)
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

    /// Scores image files against several indices (e.g. the banks of several seeds): each
    /// batch is decoded and extracted once, then scored against every index. Returns one
    /// prediction list per index.
    pub fn predict_paths_multi(
        &self,
        paths: &[PathBuf],
        indices: &[&dyn NearestNeighborIndex],
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
            let t = Instant::now();
            let feats = self.extract_images(&images)?;
            times.extract += t.elapsed().as_secs_f64();
            for (o, index) in out.iter_mut().zip(indices) {
                o.extend(self.score_features(&feats, *index, times)?);
            }
            progress.advance(chunk.len() as u64);
        }
        progress.finish();
        Ok(out)
    }
}
