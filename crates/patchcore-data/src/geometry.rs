use std::path::Path;

use image::imageops::{self, FilterType};
use image::{DynamicImage, GrayImage, RgbImage};
use patchcore_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// ImageNet channel means (RGB).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations (RGB).
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

fn decode(path: &Path) -> Result<DynamicImage> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if bytes.is_empty() {
        return Err(Error::Image {
            path: path.to_path_buf(),
            message: "empty file".into(),
        });
    }
    image::load_from_memory(&bytes).map_err(|e| Error::Image {
        path: path.to_path_buf(),
        message: format!("cannot decode: {e}"),
    })
}

/// Decodes an image as 8-bit RGB (grayscale, palette, 16-bit and alpha images converted).
pub fn load_rgb(path: &Path) -> Result<RgbImage> {
    let img = decode(path)?;
    if img.width() == 0 || img.height() == 0 {
        return Err(Error::Image {
            path: path.to_path_buf(),
            message: "image has no pixels".into(),
        });
    }
    Ok(img.to_rgb8())
}

/// Decodes a ground-truth mask as 8-bit grayscale.
pub fn load_mask(path: &Path) -> Result<GrayImage> {
    Ok(decode(path)?.to_luma8())
}

/// PatchCore's input geometry: resize to `resize x resize`, centre-crop `crop x crop`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Geometry {
    pub resize: u32,
    pub crop: u32,
}

impl Default for Geometry {
    fn default() -> Self {
        Self {
            resize: 256,
            crop: 224,
        }
    }
}

impl Geometry {
    /// Checked constructor: `0 < crop <= resize`.
    pub fn new(resize: u32, crop: u32) -> Result<Self> {
        if resize == 0 {
            return Err(Error::config("data.resize", "must be positive"));
        }
        if crop == 0 || crop > resize {
            return Err(Error::config(
                "data.crop",
                format!("must be in 1..={resize} (data.resize), got {crop}"),
            ));
        }
        Ok(Self { resize, crop })
    }

    fn offset(&self) -> u32 {
        // torchvision CenterCrop: int(round((size - crop) / 2))
        ((self.resize - self.crop) as f32 / 2.0).round() as u32
    }

    /// Resized and cropped RGB image (what the network sees, before normalisation).
    pub fn apply_rgb(&self, img: &RgbImage) -> RgbImage {
        let resized = if img.dimensions() == (self.resize, self.resize) {
            img.clone()
        } else {
            imageops::resize(img, self.resize, self.resize, FilterType::Triangle)
        };
        let o = self.offset();
        imageops::crop_imm(&resized, o, o, self.crop, self.crop).to_image()
    }

    /// The normalised CHW tensor values `[3, crop, crop]`: `(x/255 - mean) / std` in f32.
    pub fn to_tensor_values(&self, img: &RgbImage) -> Vec<f32> {
        let c = self.apply_rgb(img);
        let n = (self.crop * self.crop) as usize;
        let mut out = vec![0f32; 3 * n];
        for (i, p) in c.pixels().enumerate() {
            for ch in 0..3 {
                out[ch * n + i] = (p.0[ch] as f32 / 255.0 - IMAGENET_MEAN[ch]) / IMAGENET_STD[ch];
            }
        }
        out
    }

    /// The mask through the same geometry (nearest neighbour), as 0/1 values, row-major.
    pub fn mask_values(&self, mask: &GrayImage) -> Vec<u8> {
        let resized = if mask.dimensions() == (self.resize, self.resize) {
            mask.clone()
        } else {
            imageops::resize(mask, self.resize, self.resize, FilterType::Nearest)
        };
        let o = self.offset();
        imageops::crop_imm(&resized, o, o, self.crop, self.crop)
            .to_image()
            .pixels()
            .map(|p| u8::from(p.0[0] > 127))
            .collect()
    }
}
