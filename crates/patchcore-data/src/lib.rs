//! Image data for PatchCore.
//!
//! * [`load_rgb`] / [`load_mask`]: decoding with the `image` crate (PNG, JPEG), grayscale
//!   and palette images expanded to RGB, errors naming the file.
//! * [`Geometry`]: resize (bilinear) then centre crop, ImageNet normalisation; masks follow
//!   the same geometry with nearest-neighbour resizing.
//! * [`MvtecCategory`]: the MVTec AD layout `<cat>/train/good`, `<cat>/test/<type>`,
//!   `<cat>/ground_truth/<type>/<stem>_mask.png`.
//! * [`Tiling`] / [`TileLayout`]: large images cut into tiles at their native resolution
//!   (`[tiling]`) and per-pixel maps stitched back.
//! * [`synthetic`]: a deterministic MVTec-style data set (textured surfaces with drawn
//!   defects and their masks) for demos and tests.

#![warn(missing_docs)]

mod geometry;
mod mvtec;
mod sources;
pub mod synthetic;
mod tiling;

pub use geometry::{
    Geometry, IMAGENET_MEAN, IMAGENET_STD, ImageLimits, ImageProbe, ImageRejection, decode_bytes,
    decode_rgb_bytes, load_mask, load_rgb, load_rgb_with, probe_bytes,
};
pub use mvtec::{
    IMAGE_EXTENSIONS, MvtecCategory, TestSample, TrainLimit, discover_categories, list_images,
};
pub use sources::{FolderSpec, open_folder, open_manifest};
pub use tiling::{Blend, MIN_TILE, TileLayout, Tiling, TilingMode, TilingParams};
