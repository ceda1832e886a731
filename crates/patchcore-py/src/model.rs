//! The assembled model, and (feature `evaluate`) the evaluation protocol.

use std::path::PathBuf;

use ndarray::{Array3, IxDyn};
use numpy::{PyArrayDyn, PyReadonlyArrayDyn};
use patchcore_core::{Error, NoProgress};
use patchcore_model::{Config, FittedPatchCore, PatchCore, TrainImages};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString};

use crate::arrays::{out, view};
use crate::to_py;

/// An `[h, w, 3]` uint8 RGB array as an image.
fn rgb_of(a: &PyReadonlyArrayDyn<'_, u8>) -> PyResult<image::RgbImage> {
    let v = view(a);
    let (h, w) = match *v.shape() {
        [h, w, 3] if h > 0 && w > 0 => (h, w),
        _ => {
            return Err(to_py(Error::Shape(format!(
                "an image must be an [height, width, 3] uint8 RGB array, got shape {:?}",
                v.shape()
            ))));
        }
    };
    let data: Vec<u8> = v.iter().copied().collect();
    image::RgbImage::from_raw(w as u32, h as u32, data)
        .ok_or_else(|| to_py(Error::Shape("image buffer does not fit its shape".into())))
}

/// One image argument: a path or an `[h, w, 3]` uint8 array.
enum ImageArg {
    Path(PathBuf),
    Array(image::RgbImage),
}

fn image_arg(obj: &Bound<'_, PyAny>) -> PyResult<ImageArg> {
    if let Ok(path) = obj.extract::<PathBuf>() {
        return Ok(ImageArg::Path(path));
    }
    let a: PyReadonlyArrayDyn<'_, u8> = obj.extract().map_err(|_| {
        pyo3::exceptions::PyTypeError::new_err(
            "an image is a path (str or os.PathLike) or an [height, width, 3] uint8 array",
        )
    })?;
    Ok(ImageArg::Array(rgb_of(&a)?))
}

/// The images of `args`, files decoded under `limits`.
fn decode(
    args: Vec<ImageArg>,
    limits: patchcore_data::ImageLimits,
) -> PyResult<Vec<image::RgbImage>> {
    args.into_iter()
        .map(|a| match a {
            ImageArg::Path(p) => patchcore_data::load_rgb_with(&p, &limits),
            ImageArg::Array(img) => Ok(img),
        })
        .collect::<patchcore_core::Result<_>>()
        .map_err(to_py)
}

/// A config from a TOML file path, TOML text, or a dict of the same keys (JSON-like).
fn config_of(obj: &Bound<'_, PyAny>) -> PyResult<Config> {
    if let Ok(s) = obj.cast::<PyString>() {
        let s: String = s.extract()?;
        let s = s.as_str();
        let path = std::path::Path::new(s);
        return if path.is_file() {
            Config::from_file(path).map_err(to_py)
        } else {
            Config::from_toml_str(s, None).map_err(to_py)
        };
    }
    if let Ok(path) = obj.extract::<PathBuf>() {
        return Config::from_file(&path).map_err(to_py);
    }
    let json = obj
        .py()
        .import("json")?
        .call_method1("dumps", (obj,))?
        .extract::<String>()?;
    let cfg: Config =
        serde_json::from_str(&json).map_err(|e| to_py(Error::config("<dict>", e.to_string())))?;
    cfg.validate().map_err(to_py)?;
    Ok(cfg)
}

/// A model before and after fitting (Python has one class for both: predicting before
/// fitting is a run-time error here, where Rust's types rule it out).
// One model per Python object: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
enum Model {
    Unfitted(PatchCore),
    Fitted(FittedPatchCore),
}

/// PatchCore: fit on defect-free images, score new ones.
#[pyclass(name = "PatchCore", module = "patchcore_rs")]
pub(crate) struct PyPatchCore {
    /// `None` only while a fit runs (fitting consumes the unfitted model).
    inner: Option<Model>,
}

impl PyPatchCore {
    fn model(&self) -> PyResult<&Model> {
        self.inner
            .as_ref()
            .ok_or_else(|| to_py(Error::InvalidArgument("the model is being fitted".into())))
    }

    fn fitted(&self) -> PyResult<&FittedPatchCore> {
        match self.model()? {
            Model::Fitted(m) => Ok(m),
            Model::Unfitted(_) => Err(to_py(Error::InvalidArgument(
                "the model is not fitted: call fit first (or load a model file)".into(),
            ))),
        }
    }

    fn config_ref(&self) -> PyResult<&Config> {
        Ok(match self.model()? {
            Model::Unfitted(m) => m.config(),
            Model::Fitted(m) => m.config(),
        })
    }

    fn limits(&self) -> PyResult<patchcore_data::ImageLimits> {
        Ok(match self.model()? {
            Model::Unfitted(m) => m.limits(),
            Model::Fitted(m) => m.limits(),
        })
    }
}

#[pymethods]
impl PyPatchCore {
    /// Builds the model a config describes (a TOML path or text, or a dict); fetches the
    /// backbone weights as the config says.
    #[staticmethod]
    fn from_config(py: Python<'_>, config: &Bound<'_, PyAny>) -> PyResult<Self> {
        let cfg = config_of(config)?;
        let inner = py.detach(|| PatchCore::from_config(&cfg)).map_err(to_py)?;
        Ok(Self {
            inner: Some(Model::Unfitted(inner)),
        })
    }

    /// Loads a `.patchcore` model file.
    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let inner = py.detach(|| FittedPatchCore::load(&path)).map_err(to_py)?;
        Ok(Self {
            inner: Some(Model::Fitted(inner)),
        })
    }

    /// Fits the memory bank on defect-free images: a list of paths or of `[h, w, 3]` uint8
    /// arrays. Returns a dict of what the fit measured.
    fn fit(&mut self, py: Python<'_>, images: &Bound<'_, PyList>) -> PyResult<Py<PyAny>> {
        if images.is_empty() {
            return Err(to_py(Error::InvalidArgument("no training images".into())));
        }
        let args: Vec<ImageArg> = images
            .iter()
            .map(|o| image_arg(&o))
            .collect::<PyResult<_>>()?;
        let limits = self.limits()?;
        let config = self.config_ref()?.clone();
        // Fitting consumes the unfitted model (a fitted one fits again from its components).
        let unfitted = match self.inner.take().expect("checked by limits()") {
            Model::Unfitted(m) => m,
            Model::Fitted(m) => m.unfit(),
        };
        let fitted = if args.iter().all(|a| matches!(a, ImageArg::Path(_))) {
            let paths: Vec<PathBuf> = args
                .into_iter()
                .map(|a| match a {
                    ImageArg::Path(p) => p,
                    ImageArg::Array(_) => unreachable!("checked"),
                })
                .collect();
            py.detach(|| unfitted.fit(&paths, &NoProgress))
        } else {
            match decode(args, limits) {
                Ok(decoded) => {
                    py.detach(|| unfitted.fit_source(TrainImages::Decoded(&decoded), &NoProgress))
                }
                Err(e) => {
                    self.inner = Some(Model::Unfitted(unfitted));
                    return Err(e);
                }
            }
        };
        let fitted = match fitted {
            Ok(f) => f,
            Err(e) => {
                // The failed fit took the model: rebuild it from its config.
                let rebuilt = py
                    .detach(|| PatchCore::from_config(&config))
                    .map_err(to_py)?;
                self.inner = Some(Model::Unfitted(rebuilt));
                return Err(to_py(e));
            }
        };
        let stats = fitted
            .fit_stats()
            .cloned()
            .expect("a fit records its stats");
        self.inner = Some(Model::Fitted(fitted));
        let d = pyo3::types::PyDict::new(py);
        d.set_item("num_images", stats.num_images)?;
        d.set_item("bank_rows_full", stats.bank_rows_full)?;
        d.set_item("bank_rows", stats.bank_rows)?;
        d.set_item("feature_dim", stats.feature_dim)?;
        d.set_item("extract_seconds", stats.extract_seconds)?;
        d.set_item("sample_seconds", stats.sample_seconds)?;
        d.set_item("chunks", stats.chunks)?;
        Ok(d.into_any().unbind())
    }

    /// Scores one image (a path or an `[h, w, 3]` uint8 array): `(score, anomaly_map)`, the
    /// map `[crop, crop]` float32 at the network input geometry.
    fn predict<'py>(
        &self,
        py: Python<'py>,
        image: &Bound<'py, PyAny>,
    ) -> PyResult<(f32, Bound<'py, PyArrayDyn<f32>>)> {
        let arg = image_arg(image)?;
        let model = self.fitted()?;
        let p = py
            .detach(|| match &arg {
                ImageArg::Path(path) => model.predict_path(path),
                ImageArg::Array(img) => model.predict(img),
            })
            .map_err(to_py)?;
        Ok((p.score, out(py, p.anomaly_map.into_dyn())))
    }

    /// Scores several images at once: `(scores [n], maps [n, h, w])`: `[crop, crop]` maps, or
    /// for a tiled model the images' own size (images of one size only).
    fn predict_batch<'py>(
        &self,
        py: Python<'py>,
        images: &Bound<'py, PyList>,
    ) -> PyResult<(Py<PyAny>, Py<PyAny>)> {
        let args: Vec<ImageArg> = images
            .iter()
            .map(|o| image_arg(&o))
            .collect::<PyResult<_>>()?;
        let model = self.fitted()?;
        let decoded = decode(args, model.limits())?;
        if decoded.is_empty() {
            return Err(to_py(Error::InvalidArgument("no images to score".into())));
        }
        let preds = py
            .detach(|| model.predict_images(&decoded))
            .map_err(to_py)?;
        // A tiled model's maps have each image's size: one array needs one size.
        let (h, w) = preds[0].anomaly_map.dim();
        if let Some(p) = preds.iter().find(|p| p.anomaly_map.dim() != (h, w)) {
            return Err(to_py(Error::InvalidArgument(format!(
                "a tiled model's maps have each image's size ({h}x{w} and {}x{}): pass images \
                 of one size to predict_batch, or call predict per image",
                p.anomaly_map.nrows(),
                p.anomaly_map.ncols()
            ))));
        }
        let mut maps = Array3::<f32>::zeros((preds.len(), h, w));
        for (mut m, p) in maps.outer_iter_mut().zip(&preds) {
            m.assign(&p.anomaly_map);
        }
        let scores: Vec<f32> = preds.iter().map(|p| p.score).collect();
        let scores = ndarray::ArrayD::from_shape_vec(IxDyn(&[scores.len()]), scores).expect("1-D");
        Ok((
            out(py, scores).into_any().unbind(),
            out(py, maps.into_dyn()).into_any().unbind(),
        ))
    }

    /// Writes the fitted model to a `.patchcore` file (atomically).
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let model = self.fitted()?;
        py.detach(|| model.save(&path)).map_err(to_py)
    }

    /// Decision threshold on image scores, if the model has one.
    #[getter]
    fn threshold(&self) -> Option<f32> {
        self.fitted().ok()?.threshold().map(|t| t.value)
    }

    /// Whether `score` is anomalous under the threshold (`None` without one).
    fn verdict(&self, score: f32) -> Option<bool> {
        self.fitted().ok()?.verdict(score)
    }

    /// The memory bank `[rows, dim]`, once fitted or loaded.
    #[getter]
    fn memory_bank<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyArrayDyn<f32>>> {
        Some(out(py, self.fitted().ok()?.bank().into_dyn()))
    }

    /// The model's config as a dict.
    #[getter]
    fn config(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let text = serde_json::to_string(self.config_ref()?)
            .map_err(|e| to_py(Error::External(e.to_string())))?;
        Ok(py.import("json")?.call_method1("loads", (text,))?.unbind())
    }

    fn __repr__(&self) -> String {
        let (backbone, rows) = match &self.inner {
            Some(Model::Fitted(m)) => (m.backbone(), m.index().len()),
            Some(Model::Unfitted(m)) => (m.backbone(), 0),
            None => return "PatchCore(<fitting>)".into(),
        };
        format!(
            "PatchCore(backbone={:?}, layers={:?}, bank_rows={})",
            backbone.name(),
            backbone.layers(),
            rows
        )
    }
}

/// Fits and evaluates `category` (or every category) under `data_root` with `config`;
/// returns report.json's content as a dict. With `output`, also writes the reports there.
#[cfg(feature = "evaluate")]
#[pyfunction]
#[pyo3(signature = (config, data_root, category=None, output=None))]
fn evaluate(
    py: Python<'_>,
    config: &Bound<'_, PyAny>,
    data_root: PathBuf,
    category: Option<String>,
    output: Option<PathBuf>,
) -> PyResult<Py<PyAny>> {
    let cfg = config_of(config)?;
    let opts = patchcore_eval::EvaluateOptions {
        data_root,
        categories: category.into_iter().collect(),
        output,
        quiet: true,
    };
    let json = py
        .detach(|| -> patchcore_core::Result<String> {
            let report = patchcore_eval::evaluate(&cfg, &opts)?;
            let value = patchcore_eval::report::to_json(&report)?;
            serde_json::to_string(&value).map_err(|e| Error::External(e.to_string()))
        })
        .map_err(to_py)?;
    Ok(py.import("json")?.call_method1("loads", (json,))?.unbind())
}

/// Decodes an image file to an `[h, w, 3]` uint8 RGB array, as the model reads it (gray,
/// palette, 16-bit and alpha images converted; size limits checked before decoding).
#[pyfunction]
fn load_image<'py>(py: Python<'py>, path: PathBuf) -> PyResult<Bound<'py, PyArrayDyn<u8>>> {
    let img = py
        .detach(|| patchcore_data::load_rgb(&path))
        .map_err(to_py)?;
    let (w, h) = img.dimensions();
    let a = ndarray::ArrayD::from_shape_vec(IxDyn(&[h as usize, w as usize, 3]), img.into_raw())
        .map_err(|e| to_py(Error::Shape(e.to_string())))?;
    Ok(out(py, a))
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyPatchCore>()?;
    m.add_function(wrap_pyfunction!(load_image, m)?)?;
    #[cfg(feature = "evaluate")]
    m.add_function(wrap_pyfunction!(evaluate, m)?)?;
    Ok(())
}
