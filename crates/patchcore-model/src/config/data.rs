//! `[data]`: input geometry, batching, image limits and where the images come from.

use std::path::PathBuf;

use patchcore_device::ComputeDevice;
use serde::{Deserialize, Serialize};

/// Input geometry and batching.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Images are resized to `resize x resize` (bilinear) ...
    #[serde(default = "d_resize")]
    pub resize: u32,
    /// ... then centre-cropped to `crop x crop`. Masks follow (nearest).
    #[serde(default = "d_crop")]
    pub crop: u32,
    /// Images decoded and scored together (one step of the progress bar).
    #[serde(default = "d_batch")]
    pub batch_size: usize,
    /// Images per backbone forward call. A batch of `batch_size` images is cut into calls of
    /// this many images that run in parallel on the thread pool; 0 (default) picks per device:
    /// 1 on the CPU devices (flex, ndarray, LibTorch CPU), where batch-1 forwards run in
    /// parallel keep both cores busier and the activations in cache, and the whole batch on
    /// the GPUs.
    #[serde(default)]
    pub forward_batch_size: usize,
    /// Where the images come from: "mvtec" (default; `--data-root` and `--category`),
    /// "folder" (the `[data.folder]` table) or "manifest" (the `[data.manifest]` table).
    #[serde(default)]
    pub source: DataSource,
    /// Use at most this many training images (0 = all), for every source.
    #[serde(default)]
    pub train_limit: usize,
    /// Which images `train_limit` keeps: "first" (sorted order) or "random" (seeded).
    #[serde(default)]
    pub train_selection: TrainSelection,
    /// Where pixel metrics are computed: "crop" (default: maps and masks at the network's
    /// crop geometry, as anomalib) or "full" (maps brought back to each image's original size
    /// and compared with the original masks).
    #[serde(default)]
    pub metrics_resolution: MetricsResolution,
    /// Anomalous images without masks among masked ones: evaluate at image level only
    /// instead of failing.
    #[serde(default)]
    pub allow_partial_masks: bool,
    /// Images with more pixels (width x height) are refused before decoding.
    #[serde(default = "d_max_pixels")]
    pub max_image_pixels: u64,
    /// Images with a side shorter than this are refused.
    #[serde(default = "d_min_side")]
    pub min_image_side: u32,
    /// The folder data set (`source = "folder"`).
    #[serde(default)]
    pub folder: Option<patchcore_data::FolderSpec>,
    /// The manifest data set (`source = "manifest"`).
    #[serde(default)]
    pub manifest: Option<ManifestConfig>,
}

/// Resolution of the pixel metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum MetricsResolution {
    /// Maps and masks at the network's crop geometry (anomalib).
    #[default]
    Crop,
    /// Maps brought back to each image's original size, compared with the original masks.
    Full,
}

/// Data source kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DataSource {
    /// Folders in the MVTec AD layout (`--data-root`, `--category`).
    #[default]
    Mvtec,
    /// Folders of good and bad images (`[data.folder]`).
    Folder,
    /// A CSV or JSON-lines list of images (`[data.manifest]`).
    Manifest,
}

/// How `train_limit` picks images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TrainSelection {
    /// The first images in sorted order.
    #[default]
    First,
    /// A seeded random subset.
    Random,
}

/// A CSV / JSON-lines manifest data set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestConfig {
    /// `.csv` (header `path,label[,mask_path][,split]`) or `.jsonl`; relative to the config file.
    pub path: PathBuf,
    /// Name used in reports.
    #[serde(default = "d_manifest_name")]
    pub name: String,
    /// Fraction of unsplit normal images held out for testing (default 0.2).
    #[serde(default)]
    pub normal_test_ratio: Option<f64>,
}
fn d_manifest_name() -> String {
    "manifest".into()
}
fn d_resize() -> u32 {
    256
}
fn d_crop() -> u32 {
    224
}
fn d_batch() -> usize {
    8
}
fn d_max_pixels() -> u64 {
    patchcore_data::ImageLimits::default().max_pixels
}
fn d_min_side() -> u32 {
    patchcore_data::ImageLimits::default().min_side
}
impl DataConfig {
    /// Range and consistency checks of `[data]`; errors name the `data.*` key.
    pub fn validate(&self) -> patchcore_core::Result<()> {
        use patchcore_core::Error;
        patchcore_data::Geometry::new(self.resize, self.crop)?;
        if self.max_image_pixels == 0 {
            return Err(Error::config(
                "data.max_image_pixels",
                "must be positive (default 64000000)",
            ));
        }
        if self.min_image_side == 0 || self.min_image_side as u64 > self.max_image_pixels {
            return Err(Error::config(
                "data.min_image_side",
                "must be at least 1 and fit within data.max_image_pixels (default 32)",
            ));
        }
        match (self.source, &self.folder, &self.manifest) {
            (DataSource::Folder, None, _) => {
                return Err(Error::config(
                    "data.folder",
                    "source = \"folder\" needs a [data.folder] table",
                ));
            }
            (DataSource::Manifest, _, None) => {
                return Err(Error::config(
                    "data.manifest",
                    "source = \"manifest\" needs a [data.manifest] table",
                ));
            }
            (DataSource::Mvtec, Some(_), _) | (DataSource::Manifest, Some(_), _) => {
                return Err(Error::config(
                    "data.folder",
                    "set data.source = \"folder\" to use this table",
                ));
            }
            (DataSource::Mvtec, _, Some(_)) | (DataSource::Folder, _, Some(_)) => {
                return Err(Error::config(
                    "data.manifest",
                    "set data.source = \"manifest\" to use this table",
                ));
            }
            _ => {}
        }
        if let Some(r) = self
            .folder
            .as_ref()
            .and_then(|f| f.normal_test_ratio)
            .or(self.manifest.as_ref().and_then(|m| m.normal_test_ratio))
            && !(r > 0.0 && r < 1.0)
        {
            return Err(Error::config(
                "data.*.normal_test_ratio",
                format!("must be in (0, 1), got {r}"),
            ));
        }
        if self.batch_size == 0 {
            return Err(Error::config("data.batch_size", "must be at least 1"));
        }
        if self.forward_batch_size > self.batch_size {
            return Err(Error::config(
                "data.forward_batch_size",
                format!(
                    "must be at most data.batch_size ({}): a batch is cut into forward calls of this size; 0 picks per device",
                    self.batch_size
                ),
            ));
        }
        Ok(())
    }

    /// Images per backbone forward call on `device` (resolves `forward_batch_size = 0`),
    /// never more than `batch_size`.
    pub fn forward_batch_for(&self, device: ComputeDevice) -> usize {
        let n = match self.forward_batch_size {
            0 if device.is_gpu() => self.batch_size,
            0 => 1,
            n => n,
        };
        n.clamp(1, self.batch_size.max(1))
    }
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            resize: d_resize(),
            crop: d_crop(),
            batch_size: d_batch(),
            forward_batch_size: 0,
            source: DataSource::Mvtec,
            train_limit: 0,
            metrics_resolution: MetricsResolution::Crop,
            train_selection: TrainSelection::First,
            allow_partial_masks: false,
            max_image_pixels: d_max_pixels(),
            min_image_side: d_min_side(),
            folder: None,
            manifest: None,
        }
    }
}
