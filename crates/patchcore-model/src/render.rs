//! Anomaly maps as pictures and at the original image size: what `predict`, the service
//! and the reports show.

use image::{Rgb, RgbImage};
use ndarray::Array2;

/// A jet-like colour for `t` in [0, 1].
pub fn jet(t: f32) -> [f32; 3] {
    let t = t.clamp(0.0, 1.0);
    let r = (1.5 - (4.0 * t - 3.0).abs()).clamp(0.0, 1.0);
    let g = (1.5 - (4.0 * t - 2.0).abs()).clamp(0.0, 1.0);
    let b = (1.5 - (4.0 * t - 1.0).abs()).clamp(0.0, 1.0);
    [r * 255.0, g * 255.0, b * 255.0]
}

/// An anomaly map in the jet colour scale (blue = `range.0`, red = `range.1`).
pub fn heatmap_image(map: &ndarray::Array2<f32>, range: (f32, f32)) -> RgbImage {
    let (h, w) = map.dim();
    let (lo, hi) = range;
    let span = if hi > lo { hi - lo } else { 1.0 };
    let mut img = RgbImage::new(w as u32, h as u32);
    for (&v, px) in map.iter().zip(img.pixels_mut()) {
        let c = jet((v - lo) / span);
        *px = Rgb([c[0] as u8, c[1] as u8, c[2] as u8]);
    }
    img
}

/// The input (at the map's size) with the anomaly map blended in as a jet heatmap, values
/// normalised over `range` (low, high).
pub fn heatmap_overlay(
    input: &RgbImage,
    map: &ndarray::Array2<f32>,
    range: (f32, f32),
) -> RgbImage {
    let (h, w) = map.dim();
    let (lo, hi) = range;
    let span = if hi > lo { hi - lo } else { 1.0 };
    let mut img = RgbImage::new(w as u32, h as u32);
    for (i, (&v, px)) in map.iter().zip(input.pixels()).enumerate() {
        let c = jet((v - lo) / span);
        let p = px.0;
        let mix = |k: usize| (0.55 * p[k] as f32 + 0.45 * c[k]) as u8;
        img.put_pixel(
            (i % w) as u32,
            (i / w) as u32,
            Rgb([mix(0), mix(1), mix(2)]),
        );
    }
    img
}

/// Brings a map at the crop geometry back to the original image: placed in the resized frame
/// (the border outside the crop takes the nearest map value), then resized bilinearly to the
/// original size.
pub fn full_resolution_map(
    map: &Array2<f32>,
    geometry: patchcore_data::Geometry,
    h0: usize,
    w0: usize,
) -> Array2<f32> {
    let r = geometry.resize as usize;
    let c = geometry.crop as usize;
    let o = ((r - c) as f32 / 2.0).round() as usize;
    let frame = Array2::from_shape_fn((r, r), |(y, x)| {
        map[[
            y.saturating_sub(o).min(c - 1),
            x.saturating_sub(o).min(c - 1),
        ]]
    });
    patchcore_score::resize_bilinear(frame.view(), h0, w0)
}
