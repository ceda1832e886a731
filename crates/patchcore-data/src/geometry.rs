use std::path::Path;

use image::imageops::{self, FilterType};
use image::{DynamicImage, GrayImage, RgbImage};
use patchcore_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// ImageNet channel means (RGB).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations (RGB).
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Limits checked before an image is decoded (dimensions come from the header alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageLimits {
    /// Largest `width * height` accepted; larger images are refused before decoding.
    pub max_pixels: u64,
    /// Smallest side accepted, in pixels (PatchCore's stride-16 features need some image).
    pub min_side: u32,
}

impl Default for ImageLimits {
    fn default() -> Self {
        Self {
            max_pixels: 64_000_000,
            min_side: 32,
        }
    }
}

fn decode(path: &Path, limits: &ImageLimits) -> Result<DynamicImage> {
    let img_err = |message: String| Error::Image {
        path: path.to_path_buf(),
        message,
    };
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if bytes.is_empty() {
        return Err(img_err("empty file (0 bytes)".into()));
    }
    let reader = || {
        image::ImageReader::new(std::io::Cursor::new(&bytes))
            .with_guessed_format()
            .map_err(|e| img_err(format!("cannot read: {e}")))
    };
    let r = reader()?;
    if r.format().is_none() {
        return Err(img_err(
            "not a recognised image format (PNG or JPEG expected)".into(),
        ));
    }
    let (w, h) = r
        .into_dimensions()
        .map_err(|e| img_err(format!("cannot read the image header: {e}")))?;
    if (w as u64) * (h as u64) > limits.max_pixels {
        return Err(img_err(format!(
            "{w}x{h} = {} pixels exceeds the limit of {} (data.max_image_pixels); refused \
             before decoding",
            w as u64 * h as u64,
            limits.max_pixels
        )));
    }
    if w.min(h) < limits.min_side {
        return Err(img_err(format!(
            "{w}x{h} is smaller than {} pixels on a side (data.min_image_side)",
            limits.min_side
        )));
    }
    let mut r = reader()?;
    let mut lim = image::Limits::default();
    lim.max_image_width = Some(w);
    lim.max_image_height = Some(h);
    r.limits(lim);
    r.decode()
        .map_err(|e| img_err(format!("cannot decode (truncated or corrupt?): {e}")))
}

/// Decodes an image as 8-bit RGB (grayscale, palette, 16-bit and alpha images converted),
/// with the default [`ImageLimits`].
pub fn load_rgb(path: &Path) -> Result<RgbImage> {
    load_rgb_with(path, &ImageLimits::default())
}

/// As [`load_rgb`] with explicit limits.
pub fn load_rgb_with(path: &Path, limits: &ImageLimits) -> Result<RgbImage> {
    Ok(decode(path, limits)?.to_rgb8())
}

/// Decodes a ground-truth mask as 8-bit grayscale.
pub fn load_mask(path: &Path) -> Result<GrayImage> {
    Ok(decode(
        path,
        &ImageLimits {
            min_side: 1,
            ..ImageLimits::default()
        },
    )?
    .to_luma8())
}

/// PatchCore's input geometry: resize to `resize x resize`, centre-crop `crop x crop`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Geometry {
    /// Side of the square images are resized to (bilinear).
    pub resize: u32,
    /// Side of the centre crop taken from the resized image.
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
