//! A deterministic synthetic data set in the MVTec AD layout.
//!
//! Every image is a woven-looking surface: two sinusoidal gratings (fixed orientation and
//! period, random phase per image) over a base colour, with per-pixel noise and a slight
//! brightness jitter. Defective images carry one drawn defect inside the central crop:
//! `scratch` (a dark line, 2-4 px thick) or `spot` (a reddish blot, radius 6-14 px). Masks
//! mark exactly the painted pixels. The same [`SyntheticSpec`] always gives byte-identical
//! files.

use std::f32::consts::PI;
use std::path::Path;

use image::{GrayImage, Luma, Rgb, RgbImage};
use patchcore_core::{Error, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntheticSpec {
    /// Category folder name.
    pub category: String,
    /// Image side in pixels.
    pub size: u32,
    /// Training (defect-free) images.
    pub train: usize,
    /// Defect-free test images.
    pub test_good: usize,
    /// Images per defect type (`scratch`, `spot`).
    pub test_per_defect: usize,
    /// Seed of every drawn texture and defect.
    pub seed: u64,
}

impl Default for SyntheticSpec {
    fn default() -> Self {
        Self {
            category: "synthetic_weave".into(),
            size: 256,
            train: 24,
            test_good: 10,
            test_per_defect: 10,
            seed: 2022,
        }
    }
}

/// The defect types drawn.
pub const DEFECT_TYPES: [&str; 2] = ["scratch", "spot"];

fn surface(rng: &mut ChaCha8Rng, size: u32) -> RgbImage {
    surface_wh(rng, size, size)
}

fn surface_wh(rng: &mut ChaCha8Rng, width: u32, height: u32) -> RgbImage {
    let phase1: f32 = rng.random_range(0.0..2.0 * PI);
    let phase2: f32 = rng.random_range(0.0..2.0 * PI);
    let gain: f32 = rng.random_range(0.95..1.05);
    let (c1, s1) = (0.5f32.cos(), 0.5f32.sin());
    let (c2, s2) = ((0.5 + PI / 2.0).cos(), (0.5 + PI / 2.0).sin());
    let base = [150.0f32, 128.0, 96.0];
    let mut img = RgbImage::new(width, height);
    for y in 0..height {
        for x in 0..width {
            let (xf, yf) = (x as f32, y as f32);
            let g1 = (2.0 * PI * (xf * c1 + yf * s1) / 9.0 + phase1).sin();
            let g2 = (2.0 * PI * (xf * c2 + yf * s2) / 13.0 + phase2).sin();
            let noise: f32 = rng.random_range(-8.0..8.0);
            let v = 18.0 * g1 + 12.0 * g2 + noise;
            let px = base.map(|b| ((b + v) * gain).clamp(0.0, 255.0) as u8);
            img.put_pixel(x, y, Rgb(px));
        }
    }
    img
}

/// Sizes of the drawn defects.
#[derive(Debug, Clone, Copy)]
struct DefectSizes {
    /// Defects lie within this fraction of the image from each border.
    margin: f32,
    scratch_len: (f32, f32),
    scratch_half: (f32, f32),
    spot_radius: (f32, f32),
}

/// The 256-px set's defects: scratches of 30-70 px, spots of radius 6-14 px, in the centre.
const STANDARD_DEFECTS: DefectSizes = DefectSizes {
    margin: 0.2,
    scratch_len: (30.0, 70.0),
    scratch_half: (1.0, 2.0),
    spot_radius: (6.0, 14.0),
};

fn draw_defect(rng: &mut ChaCha8Rng, img: &mut RgbImage, kind: &str) -> GrayImage {
    draw_defect_sized(rng, img, kind, STANDARD_DEFECTS)
}

/// Paints one defect and returns its mask; only the pixels of its bounding box are visited
/// (in row-major order, so the noise drawn per painted pixel does not depend on the box).
fn draw_defect_sized(
    rng: &mut ChaCha8Rng,
    img: &mut RgbImage,
    kind: &str,
    sizes: DefectSizes,
) -> GrayImage {
    let (w, h) = img.dimensions();
    let mut mask = GrayImage::new(w, h);
    let (lo_x, hi_x) = (w as f32 * sizes.margin, w as f32 * (1.0 - sizes.margin));
    let (lo_y, hi_y) = (h as f32 * sizes.margin, h as f32 * (1.0 - sizes.margin));
    let span = |a: f32, b: f32, max: u32| {
        let lo = (a.floor().max(0.0) as u32).min(max);
        let hi = ((b.ceil() + 1.0).max(0.0) as u32).min(max);
        lo..hi
    };
    match kind {
        "scratch" => {
            let (x0, y0) = (rng.random_range(lo_x..hi_x), rng.random_range(lo_y..hi_y));
            let angle: f32 = rng.random_range(0.0..PI);
            let len: f32 = rng.random_range(sizes.scratch_len.0..sizes.scratch_len.1);
            let (x1, y1) = (
                (x0 + len * angle.cos()).clamp(lo_x, hi_x),
                (y0 + len * angle.sin()).clamp(lo_y, hi_y),
            );
            let half: f32 = rng.random_range(sizes.scratch_half.0..sizes.scratch_half.1);
            let (dx, dy) = (x1 - x0, y1 - y0);
            let l2 = (dx * dx + dy * dy).max(1e-6);
            for y in span(y0.min(y1) - half, y0.max(y1) + half, h) {
                for x in span(x0.min(x1) - half, x0.max(x1) + half, w) {
                    let (px, py) = (x as f32 - x0, y as f32 - y0);
                    let t = ((px * dx + py * dy) / l2).clamp(0.0, 1.0);
                    let (ex, ey) = (px - t * dx, py - t * dy);
                    if ex * ex + ey * ey <= half * half {
                        let n: u8 = rng.random_range(0..20);
                        img.put_pixel(x, y, Rgb([40 + n, 32 + n, 30 + n]));
                        mask.put_pixel(x, y, Luma([255]));
                    }
                }
            }
        }
        _ => {
            let (cx, cy) = (rng.random_range(lo_x..hi_x), rng.random_range(lo_y..hi_y));
            let r = sizes.spot_radius;
            let (rx, ry) = (rng.random_range(r.0..r.1), rng.random_range(r.0..r.1));
            for y in span(cy - ry, cy + ry, h) {
                for x in span(cx - rx, cx + rx, w) {
                    let (ex, ey) = ((x as f32 - cx) / rx, (y as f32 - cy) / ry);
                    if ex * ex + ey * ey <= 1.0 {
                        let n: u8 = rng.random_range(0..25);
                        img.put_pixel(x, y, Rgb([190 + n, 60 + n, 40 + n]));
                        mask.put_pixel(x, y, Luma([255]));
                    }
                }
            }
        }
    }
    mask
}

/// A large-image data set for tiling: the same surface at `width x height` with small
/// defects anywhere but the outer 5 % (scratches 10-20 px long and 2-3 px thick, spots of
/// radius 5-10 px), where resizing to a 224-px network input erases them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LargeSpec {
    /// Category folder name.
    pub category: String,
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
    /// Training (defect-free) images.
    pub train: usize,
    /// Defect-free test images.
    pub test_good: usize,
    /// Images per defect type (`scratch`, `spot`).
    pub test_per_defect: usize,
    /// Write images as JPEG (quality 92) instead of PNG (masks are always PNG): 12-megapixel
    /// sets of hundreds of images fit on a small disk.
    pub jpeg: bool,
    /// Seed of every drawn texture and defect.
    pub seed: u64,
}

impl Default for LargeSpec {
    fn default() -> Self {
        Self {
            category: "synthetic_large".into(),
            width: 1600,
            height: 1200,
            train: 10,
            test_good: 6,
            test_per_defect: 6,
            jpeg: false,
            seed: 2022,
        }
    }
}

const SMALL_DEFECTS: DefectSizes = DefectSizes {
    margin: 0.05,
    scratch_len: (10.0, 20.0),
    scratch_half: (1.0, 1.5),
    spot_radius: (5.0, 10.0),
};

/// Writes the large data set under `<root>/<spec.category>/`. Each image draws from its own
/// stream seeded from `seed` and its position, so the same spec gives the same files.
pub fn generate_large(root: &Path, spec: &LargeSpec) -> Result<()> {
    if spec.width < 32 || spec.height < 32 || spec.train == 0 || spec.test_good == 0 {
        return Err(Error::InvalidArgument(format!(
            "synthetic spec too small: {spec:?}"
        )));
    }
    let cat = root.join(&spec.category);
    let ext = if spec.jpeg { "jpg" } else { "png" };
    let mut jobs: Vec<(String, Option<&str>)> = (0..spec.train)
        .map(|i| (format!("train/good/{i:03}"), None))
        .collect();
    jobs.extend((0..spec.test_good).map(|i| (format!("test/good/{i:03}"), None)));
    for kind in DEFECT_TYPES {
        jobs.extend((0..spec.test_per_defect).map(|i| (format!("test/{kind}/{i:03}"), Some(kind))));
    }
    for (k, (stem, kind)) in jobs.iter().enumerate() {
        let mut rng = ChaCha8Rng::seed_from_u64(spec.seed ^ (k as u64).wrapping_mul(0x9E37_79B9));
        let mut img = surface_wh(&mut rng, spec.width, spec.height);
        if let Some(kind) = kind {
            let mask = draw_defect_sized(&mut rng, &mut img, kind, SMALL_DEFECTS);
            let name = stem.replacen("test/", "ground_truth/", 1);
            save_gray(&mask, &cat.join(format!("{name}_mask.png")))?;
        }
        let path = cat.join(format!("{stem}.{ext}"));
        if spec.jpeg {
            save_jpeg(&img, &path)?;
        } else {
            save_rgb(&img, &path)?;
        }
    }
    Ok(())
}

fn save_jpeg(img: &RgbImage, path: &Path) -> Result<()> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
    }
    let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    let mut out = std::io::BufWriter::new(file);
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 92)
        .encode_image(img)
        .map_err(|e| Error::Image {
            path: path.to_path_buf(),
            message: format!("cannot write: {e}"),
        })
}

fn save_rgb(img: &RgbImage, path: &Path) -> Result<()> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
    }
    img.save(path).map_err(|e| Error::Image {
        path: path.to_path_buf(),
        message: format!("cannot write: {e}"),
    })
}

fn save_gray(img: &GrayImage, path: &Path) -> Result<()> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
    }
    img.save(path).map_err(|e| Error::Image {
        path: path.to_path_buf(),
        message: format!("cannot write: {e}"),
    })
}

/// Writes the data set under `<root>/<spec.category>/`. Existing files are overwritten.
pub fn generate(root: &Path, spec: &SyntheticSpec) -> Result<()> {
    if spec.size < 32 || spec.train == 0 || spec.test_good == 0 || spec.test_per_defect == 0 {
        return Err(Error::InvalidArgument(format!(
            "synthetic spec too small: {spec:?}"
        )));
    }
    let cat = root.join(&spec.category);
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    for i in 0..spec.train {
        save_rgb(
            &surface(&mut rng, spec.size),
            &cat.join(format!("train/good/{i:03}.png")),
        )?;
    }
    for i in 0..spec.test_good {
        save_rgb(
            &surface(&mut rng, spec.size),
            &cat.join(format!("test/good/{i:03}.png")),
        )?;
    }
    for kind in DEFECT_TYPES {
        for i in 0..spec.test_per_defect {
            let mut img = surface(&mut rng, spec.size);
            let mask = draw_defect(&mut rng, &mut img, kind);
            save_rgb(&img, &cat.join(format!("test/{kind}/{i:03}.png")))?;
            save_gray(
                &mask,
                &cat.join(format!("ground_truth/{kind}/{i:03}_mask.png")),
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MvtecCategory;

    #[test]
    fn generates_a_valid_deterministic_category() {
        let base = std::env::temp_dir().join(format!("pc-synth-{}", std::process::id()));
        let spec = SyntheticSpec {
            train: 3,
            test_good: 2,
            test_per_defect: 2,
            size: 64,
            ..Default::default()
        };
        generate(&base.join("a"), &spec).unwrap();
        generate(&base.join("b"), &spec).unwrap();
        let cat = MvtecCategory::open(&base.join("a"), &spec.category).unwrap();
        assert_eq!(cat.train.len(), 3);
        assert_eq!(cat.test.len(), 6);
        for t in &cat.test {
            let other = base
                .join("b")
                .join(t.path.strip_prefix(base.join("a")).unwrap());
            assert_eq!(
                std::fs::read(&t.path).unwrap(),
                std::fs::read(other).unwrap()
            );
            if let Some(m) = &t.mask {
                let mask = crate::load_mask(m).unwrap();
                assert!(
                    mask.pixels().any(|p| p.0[0] == 255),
                    "empty mask {}",
                    m.display()
                );
            }
        }
        std::fs::remove_dir_all(&base).unwrap();
    }
}
