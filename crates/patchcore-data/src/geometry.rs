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

/// Why image bytes were refused, before or while decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRejection {
    /// No bytes at all.
    Empty,
    /// Neither PNG nor JPEG (by signature).
    UnknownFormat,
    /// The header cannot be read.
    BadHeader(String),
    /// More pixels than `max_pixels` (read from the header; nothing was decoded).
    TooLarge {
        /// Width from the header.
        width: u32,
        /// Height from the header.
        height: u32,
        /// The limit.
        max_pixels: u64,
    },
    /// A side shorter than `min_side`.
    TooSmall {
        /// Width from the header.
        width: u32,
        /// Height from the header.
        height: u32,
        /// The limit.
        min_side: u32,
    },
    /// The header was fine but the pixel data is not (truncated or corrupt).
    Corrupt(String),
}

impl std::fmt::Display for ImageRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImageRejection::Empty => write!(f, "empty file (0 bytes)"),
            ImageRejection::UnknownFormat => {
                write!(f, "not a recognised image format (PNG or JPEG expected)")
            }
            ImageRejection::BadHeader(e) => write!(f, "cannot read the image header: {e}"),
            ImageRejection::TooLarge {
                width,
                height,
                max_pixels,
            } => write!(
                f,
                "{width}x{height} = {} pixels exceeds the limit of {max_pixels} \
                 (data.max_image_pixels); refused before decoding",
                *width as u64 * *height as u64
            ),
            ImageRejection::TooSmall {
                width,
                height,
                min_side,
            } => write!(
                f,
                "{width}x{height} is smaller than {min_side} pixels on a side (data.min_image_side)"
            ),
            ImageRejection::Corrupt(e) => write!(f, "cannot decode (truncated or corrupt?): {e}"),
        }
    }
}

/// What an image's header says, read before any pixel is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageProbe {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes the decoder allocates for the pixels in their own format (e.g. 6 per pixel for
    /// 16-bit RGB).
    pub decoded_bytes: u64,
    /// Bytes [`decode_rgb_bytes`] holds at its peak: the decoded pixels plus their 8-bit RGB
    /// copy where the format is not already 8-bit RGB.
    pub peak_rgb_bytes: u64,
}

fn reader(
    bytes: &[u8],
) -> std::result::Result<image::ImageReader<std::io::Cursor<&[u8]>>, ImageRejection> {
    image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ImageRejection::BadHeader(e.to_string()))
}

/// Reads the format, the dimensions and the pixel format from the header and checks them
/// against `limits`; decodes nothing. A service budgets memory with
/// [`ImageProbe::peak_rgb_bytes`] before calling [`decode_rgb_bytes`].
pub fn probe_bytes(
    bytes: &[u8],
    limits: &ImageLimits,
) -> std::result::Result<ImageProbe, ImageRejection> {
    use image::ImageDecoder as _;
    if bytes.is_empty() {
        return Err(ImageRejection::Empty);
    }
    let r = reader(bytes)?;
    if r.format().is_none() {
        return Err(ImageRejection::UnknownFormat);
    }
    let decoder = r.into_decoder().map_err(|e| match e {
        image::ImageError::Unsupported(_) => ImageRejection::UnknownFormat,
        e => ImageRejection::BadHeader(e.to_string()),
    })?;
    let (width, height) = decoder.dimensions();
    if (width as u64) * (height as u64) > limits.max_pixels {
        return Err(ImageRejection::TooLarge {
            width,
            height,
            max_pixels: limits.max_pixels,
        });
    }
    if width.min(height) < limits.min_side {
        return Err(ImageRejection::TooSmall {
            width,
            height,
            min_side: limits.min_side,
        });
    }
    let decoded_bytes = decoder.total_bytes();
    let rgb8 = width as u64 * height as u64 * 3;
    let peak_rgb_bytes = if decoder.color_type() == image::ColorType::Rgb8 {
        decoded_bytes
    } else {
        decoded_bytes + rgb8
    };
    Ok(ImageProbe {
        width,
        height,
        decoded_bytes,
        peak_rgb_bytes,
    })
}

/// Decodes image bytes under `limits`: the format and the dimensions are checked from the
/// header before any pixel is decoded, and the decoder may not allocate beyond them.
pub fn decode_bytes(
    bytes: &[u8],
    limits: &ImageLimits,
) -> std::result::Result<DynamicImage, ImageRejection> {
    let ImageProbe { width, height, .. } = probe_bytes(bytes, limits)?;
    let mut r = reader(bytes)?;
    let mut lim = image::Limits::default();
    lim.max_image_width = Some(width);
    lim.max_image_height = Some(height);
    r.limits(lim);
    r.decode()
        .map_err(|e| ImageRejection::Corrupt(e.to_string()))
}

/// [`decode_bytes`] as 8-bit RGB (grayscale, palette, 16-bit and alpha converted).
pub fn decode_rgb_bytes(
    bytes: &[u8],
    limits: &ImageLimits,
) -> std::result::Result<RgbImage, ImageRejection> {
    Ok(decode_bytes(bytes, limits)?.to_rgb8())
}

fn decode(path: &Path, limits: &ImageLimits) -> Result<DynamicImage> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    decode_bytes(&bytes, limits).map_err(|r| Error::Image {
        path: path.to_path_buf(),
        message: r.to_string(),
    })
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

    /// The first half of [`Geometry::apply_rgb`]: the image resized to `resize x resize`
    /// (bilinear; unchanged, copied, when it already has that size). `apply_rgb` of the
    /// result equals `apply_rgb` of the original, bit for bit: a service can hold this
    /// instead of a full-size decode until the model takes it.
    pub fn resize_rgb(&self, img: &RgbImage) -> RgbImage {
        if img.dimensions() == (self.resize, self.resize) {
            img.clone()
        } else {
            imageops::resize(img, self.resize, self.resize, FilterType::Triangle)
        }
    }

    /// Resized and cropped RGB image (what the network sees, before normalisation).
    pub fn apply_rgb(&self, img: &RgbImage) -> RgbImage {
        let resized = self.resize_rgb(img);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn png(img: DynamicImage) -> Vec<u8> {
        let mut buf = std::io::Cursor::new(Vec::new());
        img.write_to(&mut buf, image::ImageFormat::Png).unwrap();
        buf.into_inner()
    }

    #[test]
    fn probe_reads_the_pixel_format_without_decoding() {
        let limits = ImageLimits::default();
        let rgb8 = png(DynamicImage::ImageRgb8(RgbImage::new(40, 50)));
        let p = probe_bytes(&rgb8, &limits).unwrap();
        assert_eq!((p.width, p.height), (40, 50));
        assert_eq!((p.decoded_bytes, p.peak_rgb_bytes), (6000, 6000));
        let rgb16 = png(DynamicImage::ImageRgb16(image::ImageBuffer::new(40, 50)));
        let p = probe_bytes(&rgb16, &limits).unwrap();
        assert_eq!((p.decoded_bytes, p.peak_rgb_bytes), (12_000, 18_000));
        let gray = png(DynamicImage::ImageLuma8(GrayImage::new(40, 50)));
        assert_eq!(
            probe_bytes(&gray, &limits).unwrap().peak_rgb_bytes,
            2000 + 6000
        );
        let tiny = ImageLimits {
            max_pixels: 1999,
            min_side: 1,
        };
        assert!(matches!(
            probe_bytes(&rgb8, &tiny),
            Err(ImageRejection::TooLarge { .. })
        ));
        assert_eq!(probe_bytes(b"", &limits), Err(ImageRejection::Empty));
        assert_eq!(
            probe_bytes(b"plain text", &limits),
            Err(ImageRejection::UnknownFormat)
        );
    }

    #[test]
    fn resizing_first_gives_the_same_network_input() {
        let g = Geometry::new(64, 56).unwrap();
        let img = RgbImage::from_fn(97, 61, |x, y| {
            image::Rgb([(x * 7 + y) as u8, (x * y) as u8, (y * 3) as u8])
        });
        let held = g.resize_rgb(&img);
        assert_eq!(held.dimensions(), (64, 64));
        assert_eq!(g.apply_rgb(&held), g.apply_rgb(&img));
    }
}
