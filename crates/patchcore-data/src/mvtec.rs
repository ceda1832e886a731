use std::path::{Path, PathBuf};

use patchcore_core::{Error, Result};

const IMAGE_EXTENSIONS: [&str; 5] = ["png", "jpg", "jpeg", "bmp", "tif"];

/// One test image with its ground truth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestSample {
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
    pub name: String,
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
    /// Reads the layout of `<data_root>/<name>`. Every anomalous test image must have its
    /// mask `ground_truth/<type>/<stem>_mask.png`.
    pub fn open(data_root: &Path, name: &str) -> Result<Self> {
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
        let mut test = Vec::new();
        for defect_type in subdirs(&test_dir)? {
            let anomalous = defect_type != "good";
            for path in list_images(&test_dir.join(&defect_type))? {
                let mask = if anomalous {
                    let stem = path
                        .file_stem()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into_owned();
                    let m = root
                        .join("ground_truth")
                        .join(&defect_type)
                        .join(format!("{stem}_mask.png"));
                    if !m.is_file() {
                        return Err(ds_err(
                            &path,
                            format!(
                                "anomalous test image has no mask (expected {})",
                                m.display()
                            ),
                        ));
                    }
                    Some(m)
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
        if test.is_empty() {
            return Err(ds_err(&test_dir, "no test images".into()));
        }
        if !test.iter().any(|t| t.anomalous) || test.iter().all(|t| t.anomalous) {
            return Err(ds_err(
                &test_dir,
                "the test split needs both good and anomalous images for AUROC".into(),
            ));
        }
        Ok(Self {
            name: name.to_string(),
            root,
            train,
            test,
        })
    }
}
