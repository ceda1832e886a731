use std::path::{Path, PathBuf};

use patchcore_core::{Error, Result};
use rand::SeedableRng;

/// File extensions treated as images (the decoders compiled in: PNG and JPEG).
pub const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// One test image with its ground truth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestSample {
    /// The image file.
    pub path: PathBuf,
    /// Folder name under `test/` (`good`, `broken_large`, ...).
    pub defect_type: String,
    /// `true` for anomalous images (every type but `good`).
    pub anomalous: bool,
    /// The ground-truth mask (`None` for `good` images).
    pub mask: Option<PathBuf>,
}

/// One MVTec AD category on disk.
#[derive(Debug, Clone)]
pub struct MvtecCategory {
    /// Category name (the folder name for the MVTec layout).
    pub name: String,
    /// The category folder (paths in reports are relative to it).
    pub root: PathBuf,
    /// `train/good` images, sorted by file name.
    pub train: Vec<PathBuf>,
    /// `test/*` images, sorted by defect type then file name.
    pub test: Vec<TestSample>,
}

/// Image files of a folder, sorted by name. Non-image files are skipped with a warning.
pub fn list_images(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut out = Vec::new();
    for entry in rd {
        let p = entry.map_err(|e| Error::io(dir, e))?.path();
        if !p.is_file() {
            continue;
        }
        let ext = p
            .extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase());
        match ext {
            Some(e) if IMAGE_EXTENSIONS.contains(&e.as_str()) => out.push(p),
            _ => tracing::warn!("skipping non-image file {}", p.display()),
        }
    }
    out.sort();
    // Two files of one stem (000.png and 000.jpg) make mask matching and reports ambiguous.
    let mut seen: std::collections::HashMap<std::ffi::OsString, &PathBuf> =
        std::collections::HashMap::new();
    for p in &out {
        let stem = p.file_stem().unwrap_or_default().to_os_string();
        if let Some(first) = seen.insert(stem.clone(), p) {
            return Err(Error::Dataset {
                path: dir.to_path_buf(),
                message: format!(
                    "two images share the stem `{}`: {} and {}; keep one",
                    stem.to_string_lossy(),
                    first.display(),
                    p.display()
                ),
            });
        }
    }
    Ok(out)
}

fn subdirs(dir: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        if entry.path().is_dir() {
            out.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    out.sort();
    Ok(out)
}

/// Category folders under `root` (those holding `train/good`), sorted.
pub fn discover_categories(root: &Path) -> Result<Vec<String>> {
    if !root.is_dir() {
        return Err(Error::Dataset {
            path: root.to_path_buf(),
            message: "data root is not a folder".into(),
        });
    }
    let cats: Vec<String> = subdirs(root)?
        .into_iter()
        .filter(|c| root.join(c).join("train").join("good").is_dir())
        .collect();
    if cats.is_empty() {
        return Err(Error::Dataset {
            path: root.to_path_buf(),
            message: "no category folder with train/good found (expected the MVTec AD layout)"
                .into(),
        });
    }
    Ok(cats)
}

impl MvtecCategory {
    /// Reads the layout of `<data_root>/<name>`, requiring complete masks where a defect
    /// type has a `ground_truth/<type>/` folder (see [`MvtecCategory::open_with`]).
    pub fn open(data_root: &Path, name: &str) -> Result<Self> {
        Self::open_with(data_root, name, false)
    }

    /// Reads the layout of `<data_root>/<name>`.
    ///
    /// Masks are `ground_truth/<type>/<stem>_mask.png`. A defect type without a
    /// `ground_truth/<type>/` folder (or a category without `ground_truth/`) has no masks: the
    /// category is then evaluated at image level only. Inside a folder that exists, every
    /// image must have its mask; the error lists those that do not, unless
    /// `allow_partial_masks`.
    pub fn open_with(data_root: &Path, name: &str, allow_partial_masks: bool) -> Result<Self> {
        let root = data_root.join(name);
        let ds_err = |path: &Path, message: String| Error::Dataset {
            path: path.to_path_buf(),
            message,
        };
        if !root.is_dir() {
            return Err(ds_err(
                &root,
                format!("category `{name}` not found under {}", data_root.display()),
            ));
        }
        let train_dir = root.join("train").join("good");
        if !train_dir.is_dir() {
            return Err(ds_err(&train_dir, "missing train/good folder".into()));
        }
        let train = list_images(&train_dir)?;
        if train.is_empty() {
            return Err(ds_err(&train_dir, "no training images".into()));
        }
        let test_dir = root.join("test");
        if !test_dir.is_dir() {
            return Err(ds_err(&test_dir, "missing test folder".into()));
        }
        let good_gt = root.join("ground_truth").join("good");
        if good_gt.is_dir() && !list_images(&good_gt)?.is_empty() {
            return Err(ds_err(
                &good_gt,
                "masks for `good` images: good images are defect-free by definition, so their \
                 masks would be empty; remove ground_truth/good"
                    .into(),
            ));
        }
        let mut test = Vec::new();
        let mut unmasked = Vec::new();
        for defect_type in subdirs(&test_dir)? {
            let anomalous = defect_type != "good";
            let gt_dir = root.join("ground_truth").join(&defect_type);
            for path in list_images(&test_dir.join(&defect_type))? {
                let mask = if anomalous && gt_dir.is_dir() {
                    let stem = path
                        .file_stem()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into_owned();
                    let m = gt_dir.join(format!("{stem}_mask.png"));
                    if m.is_file() {
                        Some(m)
                    } else {
                        unmasked.push(path.clone());
                        None
                    }
                } else {
                    None
                };
                test.push(TestSample {
                    path,
                    defect_type: defect_type.clone(),
                    anomalous,
                    mask,
                });
            }
        }
        check_partial_masks(&unmasked, allow_partial_masks)?;
        let cat = Self {
            name: name.to_string(),
            root,
            train,
            test,
        };
        cat.check_test_split()?;
        Ok(cat)
    }
}

/// Errors when some anomalous images of a masked set lack masks (unless allowed).
pub(crate) fn check_partial_masks(unmasked: &[PathBuf], allow: bool) -> Result<()> {
    if unmasked.is_empty() || allow {
        return Ok(());
    }
    let shown: Vec<String> = unmasked
        .iter()
        .take(5)
        .map(|p| p.display().to_string())
        .collect();
    Err(Error::Dataset {
        path: unmasked[0].clone(),
        message: format!(
            "{} anomalous test image(s) have no mask although others of their kind do: {}{}; add \
             the masks, or set data.allow_partial_masks = true to evaluate at image level only",
            unmasked.len(),
            shown.join(", "),
            if unmasked.len() > 5 { ", ..." } else { "" }
        ),
    })
}

/// How to limit the number of training images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrainLimit {
    /// The first `k` in sorted path order.
    First(usize),
    /// `k` drawn without replacement by a seeded generator (kept in sorted order).
    Random {
        /// Images to keep.
        k: usize,
        /// Seed of the draw.
        seed: u64,
    },
}

impl MvtecCategory {
    /// Errors unless the test split has both good and anomalous images.
    pub fn check_test_split(&self) -> Result<()> {
        if self.train.is_empty() {
            return Err(Error::Dataset {
                path: self.root.clone(),
                message: "no training images".into(),
            });
        }
        if !self.test.iter().any(|t| t.anomalous) || self.test.iter().all(|t| t.anomalous) {
            return Err(Error::Dataset {
                path: self.root.clone(),
                message: "the test split needs both good and anomalous images for AUROC".into(),
            });
        }
        Ok(())
    }

    /// `None` when pixel metrics can be computed (every anomalous test image has a mask),
    /// else the reason they cannot, for the report.
    pub fn pixel_metrics_unavailable(&self) -> Option<String> {
        let anomalous = self.test.iter().filter(|t| t.anomalous).count();
        let missing = self
            .test
            .iter()
            .filter(|t| t.anomalous && t.mask.is_none())
            .count();
        match missing {
            0 => None,
            m if m == anomalous => {
                Some("no ground-truth masks: evaluated at image level only".into())
            }
            m => Some(format!(
                "{m} of {anomalous} anomalous test images have no mask: evaluated at image level only"
            )),
        }
    }

    /// Keeps at most `limit` training images.
    pub fn limit_train(&mut self, limit: TrainLimit) {
        match limit {
            TrainLimit::First(k) => self.train.truncate(k.max(1)),
            TrainLimit::Random { k, seed } => {
                let k = k.max(1).min(self.train.len());
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
                let mut idx = rand::seq::index::sample(&mut rng, self.train.len(), k).into_vec();
                idx.sort_unstable();
                self.train = idx.into_iter().map(|i| self.train[i].clone()).collect();
            }
        }
    }
}
