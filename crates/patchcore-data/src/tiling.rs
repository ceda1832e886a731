//! Tiling large images at their native resolution (the `[tiling]` config section).
//!
//! A [`TileLayout`] covers a `width x height` image with square tiles of side `tile` placed
//! every `stride` pixels from the top-left corner; where the last step would run past the
//! border, the last tile is shifted back to end exactly at the border (no padding, no pixel
//! lost, no pixel invented). `stride <= tile`, so every pixel lies in at least one tile.
//! [`TileLayout::stitch`] is the inverse for per-pixel maps: every pixel takes the mean (or
//! the max) of the tiles that cover it.

use image::RgbImage;
use ndarray::{Array2, ArrayView2, s};
use patchcore_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// How tiles feed the memory bank.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TilingMode {
    /// No tiling: images are resized and centre-cropped (`data.resize`, `data.crop`).
    #[default]
    Off,
    /// Every tile of every training image feeds one memory bank; any image at least one
    /// tile large can be scored.
    Shared,
    /// One memory bank per tile position (fixed-pose parts); every image must have the
    /// training images' size.
    PerPosition,
}

/// How overlapping tiles combine in the stitched map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Blend {
    /// The mean of the covering tiles' values.
    #[default]
    Mean,
    /// The largest of the covering tiles' values.
    Max,
}

/// The `[tiling]` config section, unchecked; [`TilingParams::check`] validates it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TilingParams {
    /// "off" (default), "shared" or "per_position".
    #[serde(default)]
    pub mode: TilingMode,
    /// Tile side in pixels of the image as decoded; also the network input (no resize).
    #[serde(default = "d_tile")]
    pub tile: u32,
    /// Pixels between tile origins, in `1..=tile`; 0 (default) = `tile` (no overlap).
    #[serde(default)]
    pub stride: u32,
    /// Overlaps in the stitched map: "mean" (default) or "max".
    #[serde(default)]
    pub blend: Blend,
    /// Above this many training rows (tiles x patches) a `greedy_coreset` with the default
    /// `greedy = "pruned"` runs partitioned (linear cost) instead; 0 = never switch.
    #[serde(default = "d_partitioned_above")]
    pub partitioned_above_rows: usize,
}
fn d_tile() -> u32 {
    224
}
fn d_partitioned_above() -> usize {
    200_000
}

impl Default for TilingParams {
    fn default() -> Self {
        Self {
            mode: TilingMode::Off,
            tile: d_tile(),
            stride: 0,
            blend: Blend::Mean,
            partitioned_above_rows: d_partitioned_above(),
        }
    }
}

/// Smallest tile side: below it the stride-16 feature maps of the backbones shrink to a
/// single cell.
pub const MIN_TILE: u32 = 32;

impl TilingParams {
    /// `None` for `mode = "off"`, else the checked tiling; errors name the `tiling.*` key.
    pub fn check(&self) -> Result<Option<Tiling>> {
        if self.mode == TilingMode::Off {
            return Ok(None);
        }
        if self.tile < MIN_TILE {
            return Err(Error::config(
                "tiling.tile",
                format!("must be at least {MIN_TILE} pixels, got {}", self.tile),
            ));
        }
        let stride = if self.stride == 0 {
            self.tile
        } else {
            self.stride
        };
        if stride > self.tile {
            return Err(Error::config(
                "tiling.stride",
                format!(
                    "{stride} is larger than tiling.tile ({}): tiles would leave gaps of {} \
                     pixels; use a stride in 1..={} (0 = the tile)",
                    self.tile,
                    stride - self.tile,
                    self.tile
                ),
            ));
        }
        Ok(Some(Tiling {
            mode: self.mode,
            tile: self.tile,
            stride,
            blend: self.blend,
            partitioned_above_rows: self.partitioned_above_rows,
        }))
    }
}

/// A checked tiling (mode shared or per_position), from [`TilingParams::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tiling {
    mode: TilingMode,
    tile: u32,
    stride: u32,
    blend: Blend,
    partitioned_above_rows: usize,
}

impl Tiling {
    /// Shared or per-position banks.
    pub fn mode(&self) -> TilingMode {
        self.mode
    }
    /// Tile side in pixels.
    pub fn tile(&self) -> u32 {
        self.tile
    }
    /// Pixels between tile origins.
    pub fn stride(&self) -> u32 {
        self.stride
    }
    /// The blend of overlapping tiles.
    pub fn blend(&self) -> Blend {
        self.blend
    }
    /// Training rows above which the default greedy runs partitioned (0 = never).
    pub fn partitioned_above_rows(&self) -> usize {
        self.partitioned_above_rows
    }

    /// The tiles of a `width x height` image; an error naming `tiling.tile` when a tile does
    /// not fit in the image.
    pub fn layout(&self, width: u32, height: u32) -> Result<TileLayout> {
        if self.tile > width || self.tile > height {
            return Err(Error::config(
                "tiling.tile",
                format!(
                    "a {t}x{t} tile does not fit in a {width}x{height} image: lower \
                     tiling.tile to at most {} or turn tiling off (mode = \"off\")",
                    width.min(height),
                    t = self.tile
                ),
            ));
        }
        Ok(TileLayout {
            width,
            height,
            tile: self.tile,
            xs: starts(width, self.tile, self.stride),
            ys: starts(height, self.tile, self.stride),
        })
    }
}

/// Tile origins along one side: every `stride` from 0, the last one shifted to end at `len`.
fn starts(len: u32, tile: u32, stride: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut x = 0;
    while x + tile < len {
        out.push(x);
        x += stride;
    }
    out.push(len - tile);
    out
}

/// Where the tiles of one image size lie, row-major (all tiles of the top row first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TileLayout {
    width: u32,
    height: u32,
    tile: u32,
    xs: Vec<u32>,
    ys: Vec<u32>,
}

impl TileLayout {
    /// The image size it covers, `(width, height)`.
    pub fn image_size(&self) -> (u32, u32) {
        (self.width, self.height)
    }
    /// Tile side.
    pub fn tile(&self) -> u32 {
        self.tile
    }
    /// Number of tiles.
    pub fn len(&self) -> usize {
        self.xs.len() * self.ys.len()
    }
    /// Always false: a layout has at least one tile.
    pub fn is_empty(&self) -> bool {
        false
    }
    /// Tiles per row and per column, `(columns, rows)`.
    pub fn grid(&self) -> (usize, usize) {
        (self.xs.len(), self.ys.len())
    }
    /// Top-left corners `(x, y)`, row-major.
    pub fn origins(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.ys
            .iter()
            .flat_map(|&y| self.xs.iter().map(move |&x| (x, y)))
    }

    /// The tiles of `img` (which must have the layout's size), row-major.
    pub fn cut(&self, img: &RgbImage) -> Result<Vec<RgbImage>> {
        if img.dimensions() != (self.width, self.height) {
            return Err(Error::Shape(format!(
                "image is {:?}, the tile layout is for {}x{}",
                img.dimensions(),
                self.width,
                self.height
            )));
        }
        Ok(self
            .origins()
            .map(|(x, y)| image::imageops::crop_imm(img, x, y, self.tile, self.tile).to_image())
            .collect())
    }

    /// One `[height, width]` map from one `[tile, tile]` map per tile (row-major): each
    /// pixel the mean or the max of the tiles covering it.
    pub fn stitch(&self, tiles: &[ArrayView2<'_, f32>], blend: Blend) -> Result<Array2<f32>> {
        let t = self.tile as usize;
        if tiles.len() != self.len() || tiles.iter().any(|m| m.dim() != (t, t)) {
            return Err(Error::Shape(format!(
                "stitching needs {} maps of {t}x{t}, got {} ({:?})",
                self.len(),
                tiles.len(),
                tiles.first().map(|m| m.dim())
            )));
        }
        let (h, w) = (self.height as usize, self.width as usize);
        let fill = match blend {
            Blend::Mean => 0.0,
            Blend::Max => f32::NEG_INFINITY,
        };
        let mut acc = Array2::<f32>::from_elem((h, w), fill);
        let mut count = Array2::<u16>::zeros((h, w));
        for ((x, y), m) in self.origins().zip(tiles) {
            let (x, y) = (x as usize, y as usize);
            let mut a = acc.slice_mut(s![y..y + t, x..x + t]);
            match blend {
                Blend::Mean => a += m,
                Blend::Max => a.zip_mut_with(m, |a, &v| *a = a.max(v)),
            }
            count
                .slice_mut(s![y..y + t, x..x + t])
                .mapv_inplace(|c| c + 1);
        }
        if blend == Blend::Mean {
            acc.zip_mut_with(&count, |a, &c| *a /= f32::from(c));
        }
        Ok(acc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiling(mode: TilingMode, tile: u32, stride: u32, blend: Blend) -> Tiling {
        TilingParams {
            mode,
            tile,
            stride,
            blend,
            ..TilingParams::default()
        }
        .check()
        .unwrap()
        .unwrap()
    }

    #[test]
    fn off_is_none_and_bad_keys_are_named() {
        assert!(TilingParams::default().check().unwrap().is_none());
        let bad = |tile, stride| {
            TilingParams {
                mode: TilingMode::Shared,
                tile,
                stride,
                ..TilingParams::default()
            }
            .check()
            .unwrap_err()
            .to_string()
        };
        assert!(bad(16, 0).contains("tiling.tile"), "{}", bad(16, 0));
        let gap = bad(224, 300);
        assert!(
            gap.contains("tiling.stride") && gap.contains("gaps"),
            "{gap}"
        );
    }

    #[test]
    fn layout_covers_every_pixel_with_a_shifted_last_tile() {
        let t = tiling(TilingMode::Shared, 224, 224, Blend::Mean);
        let l = t.layout(1600, 1200).unwrap();
        assert_eq!(l.grid(), (8, 6));
        let xs: Vec<u32> = l.origins().take(8).map(|o| o.0).collect();
        assert_eq!(xs, vec![0, 224, 448, 672, 896, 1120, 1344, 1376]);
        let ys: Vec<u32> = l.origins().step_by(8).map(|o| o.1).collect();
        assert_eq!(ys, vec![0, 224, 448, 672, 896, 976]);
        // Exactly one tile when the image is the tile; overlap when the stride is shorter.
        assert_eq!(t.layout(224, 224).unwrap().len(), 1);
        let o = tiling(TilingMode::Shared, 64, 48, Blend::Mean);
        let l = o.layout(100, 64).unwrap();
        assert_eq!(l.origins().collect::<Vec<_>>(), vec![(0, 0), (36, 0)]);
        let err = t.layout(900, 200).unwrap_err().to_string();
        assert!(
            err.contains("tiling.tile") && err.contains("900x200"),
            "{err}"
        );
    }

    #[test]
    fn cut_then_stitch_gives_the_map_back() {
        for blend in [Blend::Mean, Blend::Max] {
            for (w, h, tile, stride) in [(130, 97, 40, 40), (130, 97, 40, 17), (64, 64, 64, 1)] {
                let t = tiling(TilingMode::Shared, tile, stride, blend);
                let l = t.layout(w, h).unwrap();
                let map = Array2::from_shape_fn((h as usize, w as usize), |(y, x)| {
                    ((x * 7 + y * 13) % 29) as f32 * 0.37 - 3.0
                });
                let tiles: Vec<_> = l
                    .origins()
                    .map(|(x, y)| {
                        let (x, y, t) = (x as usize, y as usize, tile as usize);
                        map.slice(s![y..y + t, x..x + t])
                    })
                    .collect();
                let back = l.stitch(&tiles, blend).unwrap();
                let err = (&back - &map).mapv(f32::abs).fold(0f32, |a, &b| a.max(b));
                assert!(err < 1e-5, "{blend:?} {w}x{h} t{tile} s{stride}: {err}");
            }
        }
    }

    #[test]
    fn blends_differ_where_tiles_disagree() {
        let t = tiling(TilingMode::Shared, 32, 16, Blend::Mean);
        let l = t.layout(48, 32).unwrap();
        let a = Array2::<f32>::zeros((32, 32));
        let b = Array2::<f32>::ones((32, 32));
        let mean = l.stitch(&[a.view(), b.view()], Blend::Mean).unwrap();
        let max = l.stitch(&[a.view(), b.view()], Blend::Max).unwrap();
        let row = |m: &Array2<f32>| [m[[5, 0]], m[[5, 15]], m[[5, 16]], m[[5, 31]], m[[5, 32]]];
        assert_eq!(row(&mean), [0.0, 0.0, 0.5, 0.5, 1.0]);
        assert_eq!(row(&max), [0.0, 0.0, 1.0, 1.0, 1.0]);
        assert!(l.stitch(&[a.view()], Blend::Mean).is_err());
    }

    #[test]
    fn cut_takes_the_pixels_at_the_origins() {
        let t = tiling(TilingMode::PerPosition, 32, 32, Blend::Mean);
        let img = RgbImage::from_fn(50, 40, |x, y| image::Rgb([x as u8, y as u8, 0]));
        let l = t.layout(50, 40).unwrap();
        let tiles = l.cut(&img).unwrap();
        assert_eq!(tiles.len(), 4);
        assert_eq!(tiles[3].get_pixel(0, 0).0, [18, 8, 0]);
        assert!(l.cut(&RgbImage::new(40, 50)).is_err());
    }
}
