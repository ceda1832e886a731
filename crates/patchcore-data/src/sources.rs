//! Data sources beyond the MVTec AD layout: plain folders (as anomalib's Folder data module)
//! and CSV / JSON-lines manifests. Both produce a [`MvtecCategory`] (the generic
//! train/test description every runner consumes).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use patchcore_core::{Error, Result};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::mvtec::check_partial_masks;
use crate::mvtec::{MvtecCategory, TestSample, list_images};

/// A data set made of plain folders.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FolderSpec {
    /// Name used in reports.
    #[serde(default = "d_name")]
    pub name: String,
    /// Defect-free images (training, and test when `test_normal_dir` is absent).
    pub normal_dir: PathBuf,
    /// Defect-free test images. When absent, `normal_test_ratio` of `normal_dir` is held out.
    #[serde(default)]
    pub test_normal_dir: Option<PathBuf>,
    /// One or several folders of anomalous test images; the folder name is the defect type.
    pub abnormal_dirs: Vec<PathBuf>,
    /// Masks of anomalous images, matched by file stem (`<stem>.*` or `<stem>_mask.*`).
    /// Absent: image-level evaluation only.
    #[serde(default)]
    pub mask_dir: Option<PathBuf>,
    /// Fraction of `normal_dir` held out for testing when there is no `test_normal_dir`.
    #[serde(default)]
    pub normal_test_ratio: Option<f64>,
}
fn d_name() -> String {
    "folder".into()
}

fn ds(path: &Path, message: impl Into<String>) -> Error {
    Error::Dataset {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Splits `normal` into (train, test) with `ratio` held out by a seeded shuffle; both sorted.
fn split_normal(
    mut normal: Vec<PathBuf>,
    ratio: f64,
    seed: u64,
    at: &Path,
) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    if !(ratio > 0.0 && ratio < 1.0) {
        return Err(Error::config(
            "normal_test_ratio",
            format!("must be in (0, 1), got {ratio}"),
        ));
    }
    let n_test = ((normal.len() as f64) * ratio).round().max(1.0) as usize;
    if normal.len() < 2 || n_test >= normal.len() {
        return Err(ds(
            at,
            format!(
                "{} normal images cannot be split into train and test",
                normal.len()
            ),
        ));
    }
    normal.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let mut test = normal.split_off(normal.len() - n_test);
    normal.sort();
    test.sort();
    Ok((normal, test))
}

fn mask_index(dir: &Path) -> Result<HashMap<String, PathBuf>> {
    let mut map = HashMap::new();
    for p in list_images(dir)? {
        let stem = p
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let key = stem.strip_suffix("_mask").unwrap_or(&stem).to_string();
        if let Some(prev) = map.insert(key.clone(), p.clone()) {
            return Err(ds(
                &p,
                format!(
                    "two masks for stem `{key}` ({} and {})",
                    prev.display(),
                    p.display()
                ),
            ));
        }
    }
    Ok(map)
}

/// The anomalous test images of folder `d` (its name is their defect type), with their masks
/// matched by file stem when there is a mask folder; images without a mask are added to
/// `unmasked`. `seen` holds the stems of every folder read so far (a stem must be unique
/// across folders when masks are matched by it).
fn abnormal_samples(
    d: &Path,
    masks: Option<&HashMap<String, PathBuf>>,
    seen: &mut HashMap<String, PathBuf>,
    unmasked: &mut Vec<PathBuf>,
) -> Result<Vec<TestSample>> {
    if !d.is_dir() {
        return Err(ds(d, "data.folder.abnormal_dirs entry is not a folder"));
    }
    let kind = d
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "abnormal".into());
    let mut out = Vec::new();
    for path in list_images(d)? {
        let stem = path
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let mask = masks.and_then(|m| m.get(&stem).cloned());
        if masks.is_some() {
            if let Some(prev) = seen.insert(stem.clone(), path.clone()) {
                return Err(ds(
                    &path,
                    format!(
                        "duplicate stem `{stem}` (also {}): masks are matched by stem",
                        prev.display()
                    ),
                ));
            }
            if mask.is_none() {
                unmasked.push(path.clone());
            }
        }
        out.push(TestSample {
            path,
            defect_type: kind.clone(),
            anomalous: true,
            mask,
        });
    }
    Ok(out)
}

/// Reads a folder data set. Relative folders are resolved against `base`.
pub fn open_folder(
    spec: &FolderSpec,
    base: &Path,
    seed: u64,
    allow_partial_masks: bool,
) -> Result<MvtecCategory> {
    let abs = |p: &Path| {
        if p.is_relative() {
            base.join(p)
        } else {
            p.to_path_buf()
        }
    };
    let normal_dir = abs(&spec.normal_dir);
    if !normal_dir.is_dir() {
        return Err(ds(&normal_dir, "data.folder.normal_dir is not a folder"));
    }
    let normal = list_images(&normal_dir)?;
    if normal.is_empty() {
        return Err(ds(&normal_dir, "no images in data.folder.normal_dir"));
    }
    let (train, test_normal) = match (&spec.test_normal_dir, spec.normal_test_ratio) {
        (Some(_), Some(_)) => {
            return Err(Error::config(
                "data.folder.normal_test_ratio",
                "conflicts with test_normal_dir: give one or the other",
            ));
        }
        (Some(d), None) => {
            let d = abs(d);
            if !d.is_dir() {
                return Err(ds(&d, "data.folder.test_normal_dir is not a folder"));
            }
            (normal, list_images(&d)?)
        }
        (None, r) => split_normal(normal, r.unwrap_or(0.2), seed, &normal_dir)?,
    };
    if spec.abnormal_dirs.is_empty() {
        return Err(Error::config(
            "data.folder.abnormal_dirs",
            "list at least one folder of anomalous images",
        ));
    }
    let masks = match &spec.mask_dir {
        Some(d) => {
            let d = abs(d);
            if !d.is_dir() {
                return Err(ds(&d, "data.folder.mask_dir is not a folder"));
            }
            Some(mask_index(&d)?)
        }
        None => None,
    };
    let mut test: Vec<TestSample> = test_normal
        .into_iter()
        .map(|path| TestSample {
            path,
            defect_type: "good".into(),
            anomalous: false,
            mask: None,
        })
        .collect();
    let (mut unmasked, mut seen) = (Vec::new(), HashMap::new());
    for d in &spec.abnormal_dirs {
        let d = abs(d);
        test.extend(abnormal_samples(
            &d,
            masks.as_ref(),
            &mut seen,
            &mut unmasked,
        )?);
    }
    check_partial_masks(&unmasked, allow_partial_masks)?;
    let cat = MvtecCategory {
        name: spec.name.clone(),
        root: normal_dir,
        train,
        test,
    };
    cat.check_test_split()?;
    Ok(cat)
}

/// The rows of a CSV or JSONL manifest, each with where it was read (`file:line`).
fn manifest_rows(path: &Path) -> Result<Vec<(String, Row)>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let is_jsonl = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("jsonl"));
    let mut rows: Vec<(String, Row)> = Vec::new();
    if is_jsonl {
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let at = format!("{}:{}", path.display(), i + 1);
            let row: Row =
                serde_json::from_str(line).map_err(|e| ds(path, format!("line {}: {e}", i + 1)))?;
            rows.push((at, row));
        }
    } else {
        let mut rdr = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_reader(text.as_bytes());
        for (i, rec) in rdr.deserialize::<Row>().enumerate() {
            let row = rec.map_err(|e| {
                ds(
                    path,
                    format!(
                        "row {}: {e} (header must be path,label[,mask_path][,split])",
                        i + 2
                    ),
                )
            })?;
            rows.push((format!("{}:{}", path.display(), i + 2), row));
        }
    }
    Ok(rows)
}

/// One manifest row.
#[derive(Debug, Clone, Deserialize)]
struct Row {
    path: String,
    label: Label,
    #[serde(default)]
    mask_path: Option<String>,
    #[serde(default)]
    split: Option<String>,
}

/// A label as text (CSV, JSON strings), number or boolean (JSON).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Label {
    Bool(bool),
    Int(i64),
    Text(String),
}

fn parse_label(label: &Label, at: &str) -> Result<bool> {
    let text = match label {
        Label::Bool(b) => return Ok(*b),
        Label::Int(i) => i.to_string(),
        Label::Text(t) => t.clone(),
    };
    match text.trim().to_ascii_lowercase().as_str() {
        "0" | "good" | "normal" | "ok" => Ok(false),
        "1" | "anomalous" | "abnormal" | "defect" | "bad" | "ng" => Ok(true),
        other => Err(Error::InvalidArgument(format!(
            "{at}: label `{other}`; allowed: 0/good/normal/ok or 1/anomalous/abnormal/defect/bad/ng"
        ))),
    }
}

/// Reads a manifest: CSV with a header `path,label[,mask_path][,split]`, or JSON lines
/// (`.jsonl`) with the same keys. Paths are relative to the manifest's folder. Rows without
/// `split`: anomalous images go to test; normal ones are split by `normal_test_ratio`
/// (default 0.2) with `seed`.
pub fn open_manifest(
    path: &Path,
    name: &str,
    normal_test_ratio: Option<f64>,
    seed: u64,
    allow_partial_masks: bool,
) -> Result<MvtecCategory> {
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let rows = manifest_rows(path)?;
    if rows.is_empty() {
        return Err(ds(path, "the manifest lists no images"));
    }
    let (mut train, mut test, mut unsplit) = (Vec::new(), Vec::new(), Vec::new());
    let mut unmasked = Vec::new();
    let any_mask = rows
        .iter()
        .any(|(_, r)| r.mask_path.as_deref().is_some_and(|m| !m.is_empty()));
    for (at, r) in rows {
        let anomalous = parse_label(&r.label, &at)?;
        let p = base.join(&r.path);
        if !p.is_file() {
            return Err(ds(&p, format!("listed at {at} but not found")));
        }
        let mask = r.mask_path.filter(|m| !m.is_empty()).map(|m| base.join(m));
        if let Some(m) = &mask {
            if !m.is_file() {
                return Err(ds(m, format!("mask listed at {at} but not found")));
            }
            if !anomalous {
                return Err(ds(m, format!("{at}: a normal image has a mask")));
            }
        }
        let split = r.split.as_deref().map(|s| s.trim().to_ascii_lowercase());
        match split.as_deref() {
            Some("train") if anomalous => {
                return Err(ds(&p, format!("{at}: anomalous image in the train split")));
            }
            Some("train") => train.push(p),
            Some("test") | None if anomalous => {
                if any_mask && mask.is_none() {
                    unmasked.push(p.clone());
                }
                test.push(TestSample {
                    path: p,
                    defect_type: "anomalous".into(),
                    anomalous,
                    mask,
                });
            }
            Some("test") => test.push(TestSample {
                path: p,
                defect_type: "good".into(),
                anomalous,
                mask: None,
            }),
            None => unsplit.push(p),
            Some(other) => {
                return Err(ds(
                    path,
                    format!("{at}: split `{other}`; allowed: train, test"),
                ));
            }
        }
    }
    if !unsplit.is_empty() {
        unsplit.sort();
        let (tr, te) = split_normal(unsplit, normal_test_ratio.unwrap_or(0.2), seed, path)?;
        train.extend(tr);
        test.extend(te.into_iter().map(|path| TestSample {
            path,
            defect_type: "good".into(),
            anomalous: false,
            mask: None,
        }));
    }
    check_partial_masks(&unmasked, allow_partial_masks)?;
    train.sort();
    test.sort_by(|a, b| (&a.defect_type, &a.path).cmp(&(&b.defect_type, &b.path)));
    let cat = MvtecCategory {
        name: name.to_string(),
        root: base,
        train,
        test,
    };
    cat.check_test_split()?;
    Ok(cat)
}
